#!/bin/sh
# The stand-in's entry point, with the contract of AWS's: the handler is the one argument (the image's
# CMD). With AWS_LAMBDA_RUNTIME_API set (in Lambda, or under an RIE started from outside), the runtime
# interface client polls it; without, the Runtime Interface Emulator starts the runtime and listens on
# 8080 (docker run -p 9000:8080 ...), as AWS's own entry point does.
if [ $# -ne 1 ]; then
  echo "entrypoint requires the handler name to be the first argument" 1>&2
  exit 142
fi
export _HANDLER="$1"
export PYTHONPATH="/var/runtime${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "${AWS_LAMBDA_RUNTIME_API}" ]; then
  exec /usr/local/bin/aws-lambda-rie /var/lang/bin/python3 -m awslambdaric "$_HANDLER"
fi
exec /var/lang/bin/python3 -m awslambdaric "$_HANDLER"

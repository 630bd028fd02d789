#!/bin/sh
# The stand-in's entry point, with the contract of AWS's: the handler is the one argument (the image's
# CMD); with AWS_LAMBDA_RUNTIME_API set, the runtime interface client polls it.
if [ $# -ne 1 ]; then
  echo "entrypoint requires the handler name to be the first argument" 1>&2
  exit 142
fi
export _HANDLER="$1"
if [ -z "${AWS_LAMBDA_RUNTIME_API}" ]; then
  echo "this stand-in has no Runtime Interface Emulator: set AWS_LAMBDA_RUNTIME_API to a Runtime API" 1>&2
  exit 1
fi
export PYTHONPATH="/var/runtime${PYTHONPATH:+:$PYTHONPATH}"
exec /var/lang/bin/python3 -m awslambdaric "$_HANDLER"

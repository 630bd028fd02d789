"""TensorFlow's start-up noise kept off the terminal, every other line of standard error kept.

TensorFlow's C++ side logs, on every start, that oneDNN is on, which instructions the binary could use, and
that absl's logging is not initialised, and the converter logs each pass: lines written straight to file
descriptor 2 before absl reads any setting (TF_CPP_MIN_LOG_LEVEL does not reach them). So standard error goes
through a pipe to a small child process that drops exactly NOISE's lines (INFO lines, and two converter
warnings known to be harmless) and copies the rest: a C++ warning or error (W or E) still shows. The child
outlives a crash of this process (an abort, a kill): it reads until the pipe closes, so the last words of a
dying process are still shown.
"""

import atexit
import os
import subprocess
import sys

NOISE = (
    "All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:",  # the C++ side's INFO lines (oneDNN, cpu_feature_guard, the converter's MLIR passes)
    "To enable the following instructions:",  # cpu_feature_guard's second line
    "tf_tfl_flatbuffer_helpers.cc",  # the converter: "Ignored output_format", options it does not use
    "INFO:tensorflow:",  # TensorFlow's own copy of a Python log line the root logger shows too
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
)

COPY = """
import sys
noise = sys.argv[1:]
for line in sys.stdin.buffer:
    if not any(n.encode() in line for n in noise):
        sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()
"""


def drop_tensorflow_noise() -> None:
    """From now on, this process's standard error (file descriptor 2, so C++ too) without NOISE's lines."""
    read, write = os.pipe()
    stderr = os.dup(2)
    child = subprocess.Popen([sys.executable, "-c", COPY, *NOISE], stdin=read, stdout=stderr, close_fds=True)
    os.close(read)
    os.dup2(write, 2)
    os.close(write)

    def restore():
        sys.stderr.flush()
        os.dup2(stderr, 2)  # closes the pipe's last write end: the child copies what is left and exits
        child.wait()

    atexit.register(restore)

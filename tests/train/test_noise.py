"""TensorFlow's start-up lines dropped from standard error, everything else kept, even from a dying process."""

import subprocess
import sys

from harness import REPO

SCRIPT = """
import os, sys, warnings
from train.noise import drop_tensorflow_noise
drop_tensorflow_noise()
import tensorflow as tf
tf.reduce_sum(tf.ones((64, 64)) @ tf.ones((64, 64)))  # oneDNN's kernels: its second round of start-up lines
warnings.warn("a real Python warning")
os.write(2, b"W0000 00:00:1.2 3 some_op.cc:1] a real C++ warning\\n")
print("last words", file=sys.stderr)
sys.stderr.flush()
{ending}
"""


def run(ending: str) -> subprocess.CompletedProcess:
    code = SCRIPT.format(ending=ending)
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_tensorflow_start_up_lines_are_dropped_and_real_warnings_kept():
    done = run("")
    assert done.returncode == 0, done.stderr
    assert "oneDNN" not in done.stderr and "absl::InitializeLog" not in done.stderr
    assert "cpu_feature_guard" not in done.stderr and "I0000" not in done.stderr
    assert "a real Python warning" in done.stderr and "a real C++ warning" in done.stderr
    assert done.stderr.rstrip().endswith("last words")


def test_a_process_that_aborts_still_shows_its_last_words():
    """The filter is a separate process: it copies what the pipe holds after this one dies of SIGABRT."""
    done = run("os.abort()")
    assert done.returncode < 0 and "last words" in done.stderr and "oneDNN" not in done.stderr

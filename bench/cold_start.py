"""Cold start: a fresh process (the Lambda's TensorFlow-free Python) to its first prediction, per variant.

    .venv/bin/python -m bench.cold_start [--runs 10]

Measures process start, imports, interpreter load and the first invoke,
as Lambda's init plus first request would (minus the container's own start).
"""

import argparse
import base64
import os
import statistics
import subprocess
import time

from bench.common import BUNDLE, REPO, python_for_serving, sample_images

CHILD = """
import base64, sys, time
from lambda_fn.app import lambda_handler
loaded = time.time()
answer = lambda_handler({"image": sys.stdin.read()}, None)
assert "label" in answer, answer
print(loaded, time.time())
"""


def once(python, variant_dir, image_b64) -> tuple[float, float]:
    env = {**os.environ, "MODEL_DIR": str(variant_dir), "PYTHONPATH": str(REPO)}
    started = time.time()
    out = subprocess.run(
        [str(python), "-c", CHILD], input=image_b64, capture_output=True, text=True, env=env, cwd=REPO, check=True
    ).stdout.split()
    loaded, answered = map(float, out[-2:])
    return loaded - started, answered - started


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=10)
    args = p.parse_args(argv)
    python = python_for_serving()
    image = base64.b64encode(sample_images(1)[0].read_bytes()).decode()
    print(f"python: {python}; median of {args.runs} fresh processes")
    print("| variant | model file (MB) | to handler loaded (ms) | to first prediction (ms) |")
    print("| --- | --- | --- | --- |")
    for variant in sorted(d for d in BUNDLE.iterdir() if (d / "model.tflite").is_file()):
        runs = [once(python, variant, image) for _ in range(args.runs)]
        size = (variant / "model.tflite").stat().st_size / 1e6
        print(
            f"| {variant.name} | {size:.1f} | {statistics.median(r[0] for r in runs) * 1000:.0f} "
            f"| {statistics.median(r[1] for r in runs) * 1000:.0f} |"
        )


if __name__ == "__main__":
    main()

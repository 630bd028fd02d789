"""Xception's forward pass at 299x299 on each Keras backend installed, on this machine's CPU.

    .venv/bin/python -m bench.backends [--images 32] [--batch 8]

Each backend runs in a fresh process (Keras picks its backend once, at
import). The figure is images per second of `predict` after a warm-up
batch: the rate at which the frozen base fills the feature cache.
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys

from bench.common import REPO, machine

PROBE = """
import json, sys, time, numpy as np, keras
from train.backbone import BACKBONES, DEFAULT_BACKBONE
images, batch = int(sys.argv[1]), int(sys.argv[2])
backbone = BACKBONES[DEFAULT_BACKBONE]
shape = (backbone.size, backbone.size, 3)
base = backbone.constructor(weights=None, include_top=False, input_shape=shape)
x = np.random.default_rng(0).uniform(-1, 1, (images, *shape)).astype("float32")
base.predict(x[:batch], batch_size=batch, verbose=0)
started = time.perf_counter()
base.predict(x, batch_size=batch, verbose=0)
print(json.dumps({"backend": keras.backend.backend(), "images_per_s": images / (time.perf_counter() - started)}))
"""
MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=32)
    p.add_argument("--batch", type=int, default=8)
    args = p.parse_args(argv)
    print(f"machine: {machine()}; {args.images} images, batch {args.batch}")
    print("| Keras backend | images/s (the default backbone at its own size, CPU) |")
    print("| --- | --- |")
    for backend, module in MODULES.items():
        if importlib.util.find_spec(module) is None:
            print(f"| {backend} | not installed |")
            continue
        out = subprocess.check_output(
            [sys.executable, "-c", PROBE, str(args.images), str(args.batch)],
            cwd=REPO,
            env={**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(REPO)},
            text=True,
            stderr=subprocess.DEVNULL,
        )
        print(f"| {backend} | {json.loads(out.splitlines()[-1])['images_per_s']:.1f} |")


if __name__ == "__main__":
    main()

"""Xception's forward pass at 299x299 on each Keras backend installed, on this machine's CPU.

    python -m bench.backends [--images 32] [--batch 8]

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

from bench.common import REPO
from bench.results import Field, Table, record

PROBE = """
import importlib, json, sys, time, numpy as np, keras
from train.backbone import BACKBONES, DEFAULT_BACKBONE
images, batch = int(sys.argv[1]), int(sys.argv[2])
backbone = BACKBONES[DEFAULT_BACKBONE]
shape = (backbone.size, backbone.size, 3)
base = backbone.constructor(weights=None, include_top=False, input_shape=shape)
x = np.random.default_rng(0).uniform(-1, 1, (images, *shape)).astype("float32")
base.predict(x[:batch], batch_size=batch, verbose=0)
started = time.perf_counter()
base.predict(x, batch_size=batch, verbose=0)
rate = images / (time.perf_counter() - started)
version = importlib.import_module(keras.backend.backend()).__version__
print(json.dumps({"version": version, "images_per_s": rate}))
"""
MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
FIELDS = [
    Field("backend", "Keras backend"),
    Field("version", "version"),
    Field(
        "images_per_s",
        "images/s (the default backbone at its own size, random weights)",
        "images/s",
        absent="not installed",
    ),
]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=32)
    p.add_argument("--batch", type=int, default=8)
    args = p.parse_args(argv)
    records = []
    for backend, module in MODULES.items():
        if importlib.util.find_spec(module) is None:
            records.append({"backend": backend, "version": None, "images_per_s": None})
            continue
        out = subprocess.check_output(
            [sys.executable, "-c", PROBE, str(args.images), str(args.batch)],
            cwd=REPO,
            env={**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(REPO)},
            text=True,
            stderr=subprocess.DEVNULL,
        )
        probe = json.loads(out.splitlines()[-1])
        records.append(
            {"backend": backend, "version": probe["version"], "images_per_s": round(probe["images_per_s"], 1)}
        )
    notes = [f"{args.images} images in batches of {args.batch}, after one warm-up batch"]
    record(__spec__.name, argv, "The Keras backends on this CPU", [Table("backends", FIELDS, records)], notes)


if __name__ == "__main__":
    main()

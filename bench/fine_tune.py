"""What pays in fine-tuning on a CPU: batch size, TensorFlow's thread pools, bfloat16 (one run, one cache).

    python -m bench.fine_tune [--images 32] [--epochs 2]

Fine-tuning the top of the base on cached activations is the larger half of `make run` once the fill is on
LiteRT. Each setting trains the cpu preset's layers on the same class-balanced subset (--images per class),
from one cache filled once, first (float32 activations on LiteRT, as make run fills it), in a fresh process: thread
pools and the dtype policy are fixed when TensorFlow starts. The last epoch is timed (the first traces) and
scaled to the whole training split. `mixed_bfloat16` computes the top's convolutions in bfloat16 (variables
stay float32): it pays only where the CPU has bfloat16 arithmetic (AVX512_BF16, AMX), and a change of
precision is adopted only once a full run shows it keeps the accuracy.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from bench.results import Field, Table, bfloat16, record
from harness import REPO

SETTINGS = [  # (name, batch size, dtype policy, TensorFlow's inter-op threads: 0 = its default)
    ("make run's (float32, batch 32)", 32, "float32", 0),
    ("batch 64", 64, "float32", 0),
    ("batch 16", 16, "float32", 0),
    ("one inter-op thread", 32, "float32", 1),
    ("mixed_bfloat16", 32, "mixed_bfloat16", 0),
    ("mixed_bfloat16, batch 64", 64, "mixed_bfloat16", 0),
    ("make run's again, last (the run's drift)", 32, "float32", 0),
]


def one_setting(data: Path, cache: Path, batch: int, policy: str, inter: int, epochs: int) -> dict:
    """In this process: TensorFlow set up first, then the cpu preset fine-tuned on data's subset (epochs 0: the
    cache filled, nothing trained)."""
    import keras
    import tensorflow as tf

    if inter:
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    keras.config.set_dtype_policy(policy)
    from bench.training import fine_tune_epoch_seconds
    from train.config import parse_args

    config = parse_args(["--preset", "cpu", "--data", str(data), "--cache", str(cache), "--batch-size", str(batch)])
    if not epochs:
        from train.train import prepare

        return {"seconds": 0.0, "fill_s": prepare(config).stats["seconds"], "images": 0}
    seconds, fill_s, n, _ = fine_tune_epoch_seconds(replace(config, input="cache"), epochs)
    return {"seconds": seconds, "fill_s": fill_s, "images": n}


FIELDS = [
    Field("setting", "setting"),
    Field("batch", "batch", "images"),
    Field("policy", "dtype policy"),
    Field("inter_op_threads", "inter-op threads", "threads", absent="default"),
    Field("epoch_s", "seconds per epoch", "s"),
    Field("full_epoch_s", "per full epoch", "s"),
    Field("speed_up", "speed-up", "ratio", "{:.2f}x"),
]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=32, help="training images per class")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--one", help=argparse.SUPPRESS)  # a setting, as JSON: what each fresh process runs
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(one_setting(**json.loads(args.one), epochs=args.epochs)))
        return
    from bench.training import subset
    from train.data import default_data_dir, scan_dataset

    full_train = len(scan_dataset(default_data_dir())[1]["train"])
    records, measured = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        data = subset(default_data_dir(), Path(tmp) / "data", args.images)
        fill = ("the fill, untimed", 32, "float32", 0)  # in a process of its own: no setting pays for it
        for name, batch, policy, inter in [fill, *SETTINGS]:
            setting = {"data": str(data), "cache": str(Path(tmp) / "cache"), "batch": batch, "policy": policy}
            epochs = 0 if name == fill[0] else args.epochs
            command = [sys.executable, "-m", "bench.fine_tune", "--epochs", str(epochs), "--one"]
            out = subprocess.run(
                [*command, json.dumps({**setting, "inter": inter})],
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)},
                capture_output=True,
                text=True,
                check=True,
            )
            measured[name] = json.loads(out.stdout.strip().splitlines()[-1])
    reference = measured[SETTINGS[0][0]]["seconds"]
    for name, batch, policy, inter in SETTINGS:
        m = measured[name]
        scaled = m["seconds"] * full_train / m["images"]
        records.append(
            {
                "setting": name,
                "batch": batch,
                "policy": policy,
                "inter_op_threads": inter or None,
                "epoch_s": round(m["seconds"], 1),
                "full_epoch_s": round(scaled),
                "speed_up": reference / m["seconds"],
            }
        )
    notes = [
        f"{measured[SETTINGS[0][0]]['images']} training images, the last of {args.epochs} epochs, scaled to "
        f"{full_train}; the cache filled once, first, in a process of its own ({measured[fill[0]]['fill_s']:.0f} s)",
        f"this CPU's bfloat16 arithmetic: {', '.join(bfloat16()) or 'none'}",
    ]
    record(__spec__.name, argv, "What pays in fine-tuning on a CPU", [Table("settings", FIELDS, records)], notes)


if __name__ == "__main__":
    main()

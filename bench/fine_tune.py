"""What pays in fine-tuning on a CPU: batch size, TensorFlow's thread pools, bfloat16, the Keras backend (one run).

    python -m bench.fine_tune [--images 32] [--epochs 2] [--backbone NAME] [--backends tensorflow,jax,torch]
                              [train.train flags, e.g. --weights none]

Fine-tuning the top of the base on cached activations is the larger half of `make run` once the fill is on
LiteRT. Each setting fine-tunes the cpu preset's layers of --backbone with make train's recipe
(train/fine_tune.py, through bench.training) on the same class-balanced subset (--images per class), in a fresh
process: the Keras backend, TensorFlow's thread pools and the dtype policy are fixed when it starts. Without
--backends the settings are TensorFlow's; with it, make run's recipe once per backend named. Each backend's cache
is filled once, first, in a process of its own (float32 activations; on LiteRT for TensorFlow, as make run fills
it, in Keras for the others: the engine is part of the cache's key). The last epoch is timed (the first traces)
and scaled to the whole training split. Its rate is the epoch's work as make train's budget counts it (about
three forward passes through the trainable part per training image, one per validation image: train/budget.py)
over its seconds, and its share is of this machine's cores x single-thread sgemm, the floor make run is held to.
`mixed_bfloat16` computes the top's convolutions in bfloat16 (variables stay float32): it pays only where the
CPU has bfloat16 arithmetic (AVX512_BF16, AMX), and a change of precision is adopted only once a full run shows
it keeps the accuracy. A setting that fails says why in its row.
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from bench.backends import MODULES
from bench.results import RESULTS, Field, Table, bfloat16, record
from harness import REPO
from train.backbone import BACKBONES, DEFAULT_BACKBONE


@dataclass(frozen=True)
class Setting:
    name: str
    batch: int | None = None  # None: the preset's (make run's)
    policy: str = "float32"  # the Keras dtype policy
    inter: int = 0  # TensorFlow's inter-op threads (0: its default); TensorFlow's alone
    backend: str = "tensorflow"


SETTINGS = [
    Setting("make run's (float32, batch 32)", 32),
    Setting("batch 64", 64),
    Setting("batch 16", 16),
    Setting("one inter-op thread", 32, inter=1),
    Setting("mixed_bfloat16", 32, "mixed_bfloat16"),
    Setting("mixed_bfloat16, batch 64", 64, "mixed_bfloat16"),
    Setting("make run's again, last (the run's drift)", 32),
]


def recipe(backend: str) -> Setting:
    """make run's recipe on a Keras backend."""
    return Setting(f"make run's recipe on {backend}", backend=backend)


def one_setting(flags: list[str], batch: int | None, policy: str, inter: int, epochs: int) -> dict:
    """In this process (its Keras backend chosen by KERAS_BACKEND): TensorFlow's thread pools set up first where
    asked, then the preset's top fine-tuned on flags' data (epochs 0: the cache filled, nothing trained)."""
    import keras

    backend = keras.backend.backend()
    if inter:
        if backend != "tensorflow":
            raise SystemExit(f"inter-op threads are TensorFlow's setting; this process runs Keras on {backend}")
        import tensorflow as tf

        tf.config.threading.set_inter_op_parallelism_threads(inter)
    keras.config.set_dtype_policy(policy)
    from bench.training import fine_tune_epoch_seconds
    from train.config import parse_args

    config = parse_args([*flags, *(["--batch-size", str(batch)] if batch else [])])
    ran = {"backend": backend, "version": importlib.import_module(backend).__version__, "batch": config.batch_size}
    if not epochs:
        from train.train import prepare

        return {**ran, "fill_s": prepare(config).stats["seconds"]}
    timing = fine_tune_epoch_seconds(replace(config, input="cache"), epochs)
    return {**ran, "seconds": timing.seconds, "images": timing.images, "gflop": timing.gflop}


def in_fresh_process(setting: Setting, flags: list[str], epochs: int) -> dict:
    """one_setting in a process of its own on setting's backend; a failure comes back as {"error": its last line}."""
    knobs = {k: v for k, v in asdict(setting).items() if k not in ("name", "backend")}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.fine_tune",
            "--epochs",
            str(epochs),
            "--one",
            json.dumps({"flags": flags, **knobs}),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "KERAS_BACKEND": setting.backend},
        capture_output=True,
        text=True,
    )
    if out.returncode:
        said = [line for line in out.stderr.splitlines() if line.strip()] or [f"exit status {out.returncode}"]
        return {"error": said[-1].strip()[:300]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(setting: Setting, fill: dict, flags: list[str], epochs: int) -> dict:
    """The setting's epochs timed, where its backend's cache was filled."""
    if "error" in fill:
        return {"error": f"filling its cache: {fill['error']}"}
    return in_fresh_process(setting, flags, epochs)


def backends(text: str) -> list[str]:
    """--backends: installed Keras backends, comma-separated, each once."""
    named = [b.strip() for b in text.split(",") if b.strip()]
    if unknown := [b for b in named if b not in MODULES]:
        raise argparse.ArgumentTypeError(f"{', '.join(unknown)}: not a Keras backend; choose from {', '.join(MODULES)}")
    if absent := [b for b in named if importlib.util.find_spec(MODULES[b]) is None]:
        raise argparse.ArgumentTypeError(f"{', '.join(absent)}: not installed in this environment")
    if not named or len(set(named)) < len(named):
        raise argparse.ArgumentTypeError(f"{text!r}: name each backend once, e.g. tensorflow,jax,torch")
    return named


FIELDS = [
    Field("setting", "setting"),
    Field("backend", "Keras backend"),
    Field("version", "its version"),
    Field("batch", "batch", "images"),
    Field("policy", "dtype policy"),
    Field("inter_op_threads", "inter-op threads", "threads", absent="default"),
    Field("epoch_s", "seconds per epoch", "s"),
    Field("full_epoch_s", "per full epoch", "s"),
    Field("gflops", "GFLOP/s", "GFLOP/s", "{:.1f}"),
    Field("floor_share", "of cores x sgemm", "fraction", "{:.0%}"),
    Field("speed_up", "speed-up", "ratio", "{:.2f}x"),
    Field("note", "failed", absent=""),
]


def row(setting: Setting, m: dict, full_train: int, rate: float, reference: float | None) -> dict:
    """A setting's record: its figures, or where it failed, what it said."""
    knobs = {"setting": setting.name, "backend": setting.backend, "version": m.get("version")}
    knobs |= {
        "batch": m.get("batch", setting.batch),
        "policy": setting.policy,
        "inter_op_threads": setting.inter or None,
    }
    if "error" in m:
        return {**knobs, "note": m["error"]}
    gflops = m["gflop"] / m["seconds"]
    return {
        **knobs,
        "epoch_s": round(m["seconds"], 2),
        "full_epoch_s": round(m["seconds"] * full_train / m["images"]),
        "gflops": round(gflops, 4),
        "floor_share": round(gflops / rate, 6),
        "speed_up": round(reference / m["seconds"], 3) if reference else None,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=32, help="training images per class")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--backbone", default=DEFAULT_BACKBONE, choices=sorted(BACKBONES))
    p.add_argument("--backends", type=backends, help="make run's recipe on each of these Keras backends, in order")
    p.add_argument("--results", type=Path, default=RESULTS, help="where the result is written")
    p.add_argument("--one", help=argparse.SUPPRESS)  # a setting, as JSON: what each fresh process runs
    args, rest = p.parse_known_args(sys.argv[1:] if argv is None else argv)
    if args.one:
        print(json.dumps(one_setting(**json.loads(args.one), epochs=args.epochs)))
        return
    from bench.training import subset
    from train.budget import machine_rate
    from train.config import parse_args
    from train.data import scan_dataset

    flags = ["--preset", "cpu", "--backbone", args.backbone, *rest]
    config = parse_args(flags)  # refused here, once, rather than in every process
    if config.fine_tune_from is None:
        p.error(f"preset {config.preset!r} fine-tunes nothing: bench.fine_tune times fine-tuning (--fine-tune-from)")
    settings = [recipe(b) for b in args.backends] if args.backends else SETTINGS
    full_train, rate = len(scan_dataset(config.data)[1]["train"]), machine_rate()
    with tempfile.TemporaryDirectory() as tmp:
        data = subset(config.data, Path(tmp) / "data", args.images)
        flags += ["--data", str(data), "--cache", str(Path(tmp) / "cache")]
        # each backend's cache filled in a process of its own: no setting pays for it
        fills = {s.backend: in_fresh_process(s, flags, 0) for s in settings}
        measured = [measure(s, fills[s.backend], flags, args.epochs) for s in settings]
    reference = measured[0].get("seconds")
    records = [row(s, m, full_train, rate.gflops, reference) for s, m in zip(settings, measured, strict=True)]
    filled = ", ".join(f"{b} {m['fill_s']:.0f} s" for b, m in fills.items() if "fill_s" in m)
    images = next((m["images"] for m in measured if "images" in m), 0)
    notes = [
        f"{config.backbone} at {config.size}x{config.size}, fine-tuning from {config.fine_tune_from} "
        f"({config.first_trainable}); {images} training images, the last of {args.epochs} epochs, scaled to "
        f"{full_train}; each backend's cache filled once, first, in a process of its own ({filled or 'none filled'})",
        f"this machine's floor (train/budget.py): {os.cpu_count()} cores x one core's sgemm, {rate}",
        f"this CPU's bfloat16 arithmetic: {', '.join(bfloat16()) or 'none'}",
    ]
    key = None if (args.backbone, args.backends) == (DEFAULT_BACKBONE, None) else args.backbone
    title = f"What pays in fine-tuning on a CPU{'' if key is None else f': {args.backbone}'}"
    record(__spec__.name, argv, title, [Table("settings", FIELDS, records)], notes, folder=args.results, key=key)


if __name__ == "__main__":
    main()

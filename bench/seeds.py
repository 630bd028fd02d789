"""The recipe's accuracy over seeds: `make train` and `make convert` once per seed, in one fresh clone.

    python -m bench.seeds [--seeds 1 2] [--cache ../make-run-clone/artifacts/cache] [--backbone NAME]

Seeds change the head's initialisation, the order of batches and dropout, not the cached views
(`--augmentation-seed` fixes those), so every seed trains on one cache: filled by the first seed's run, or an
existing one given with --cache (a cache whose key differs is filled again, not misread). The test split has
372 images, so one image is 0.27 points and a seed-to-seed spread of a point is noise, not a trend. Recorded
per seed: the epoch kept and its validation accuracy, the test accuracy of the reloaded Keras checkpoint and
of each variant the gates passed, and training's minutes (without the fill where the cache was filled).
"""

import argparse
import json
import shlex
import statistics
from pathlib import Path

from bench.common import fresh_clone, timed_make
from bench.results import Field, Table, record
from harness import REPO


def fields(variants: list[str]) -> list[Field]:
    """A seed's figures; a variant its gate refused has no test accuracy."""
    return [
        Field("seed", "seed"),
        Field("epoch_kept", "epoch kept", "epoch"),
        Field("validation", "validation accuracy", "fraction"),
        Field("test_keras", "test (Keras)", "fraction"),
        *[Field(f"test_{v}", f"test ({v})", "fraction", absent="refused") for v in variants],
        Field("training_min", "training minutes without the fill", "min"),
    ]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    p.add_argument("--clone", type=Path, default=REPO.parent / "seeds-clone", help="where to clone (emptied)")
    p.add_argument(
        "--cache", type=Path, help="a cache folder to share (default: the clone's own, filled by the first seed)"
    )
    p.add_argument("--backbone", help="make run's BACKBONE (default: the registry's default; its own section)")
    args = p.parse_args(argv)
    backbone = [f"BACKBONE={args.backbone}"] if args.backbone else []
    clone = fresh_clone(args.clone)
    cache = ["--cache", str(args.cache.resolve())] if args.cache else []
    records: list[dict] = []
    variants: list[str] = []
    for seed in args.seeds:
        flags = shlex.join(["--seed", str(seed), *cache])
        train_s = timed_make(clone, "train", f"TRAIN_FLAGS={flags}", *backbone)
        timed_make(clone, "convert")
        run = clone / "artifacts" / "runs" / "latest"
        meta = json.loads((run / "run.json").read_text())
        report = json.loads((run / "report.json").read_text())
        gates = json.loads((clone / "artifacts" / "bundle" / "conversion.json").read_text())
        variants = variants or list(gates)
        fill_s = meta["inputs"]["seconds"]
        records.append(
            {
                "seed": seed,
                "epoch_kept": meta["best_epoch"],
                "validation": meta["best_val_accuracy"],
                "test_keras": round(report["test"]["accuracy"], 4),
                **{f"test_{v}": round(gates[v]["test_accuracy"], 4) if gates[v]["passed"] else None for v in variants},
                "training_min": round((train_s - fill_s) / 60, 1),
            }
        )
    served = [r["test_float32"] for r in records if r["test_float32"] is not None]
    notes = [f"float32 test accuracy: mean {statistics.mean(served):.4f} over seeds {args.seeds}"] if served else []
    table = Table("seeds", fields(variants), records, "Accuracy by seed")
    title = f"The recipe's accuracy over seeds{f': {args.backbone}' if args.backbone else ''}"
    record(__spec__.name, argv, title, [table], notes, key=args.backbone)


if __name__ == "__main__":
    main()

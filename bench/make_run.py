"""`make run` from a fresh clone, timed by stage, as a multiple of the floor its work sets on this machine.

    python -m bench.make_run [--clone ../make-run-clone] [--make-flags "TRAIN_FLAGS=--seed 2 BACKBONE=..."]

Clones this repository's HEAD beside it (so that ../shared is the clone's too), builds the clone's virtual
environments (timed apart: a user does it once), then times `make train` and `make convert`, and splits
training's time with the run's own records (run.json: the cache's fill; history.json: each epoch). The floor
is the reference recipe's work, about 430 TFLOP (the fill 12,613 image-views x 14.7 GFLOP; the head 3 epochs;
fine-tuning 8 epochs forward and backward with validation; test; the gates), over cores x this machine's
single-thread sgemm rate: the time a perfect engine would take. Doing less work the accuracy does not need
counts as much as doing it faster. Another backbone's run (BACKBONE=...) has a section of its own, its floor
the work its own make train counted (run.json's budget, without the gates).
"""

import argparse
import json
import os
import shlex
from pathlib import Path

from bench.common import fresh_clone, timed_make
from bench.results import Field, Table, record
from harness import REPO
from train.backbone import DEFAULT_BACKBONE
from train.budget import sgemm_one_thread

FLOOR_TFLOP = 430  # the reference recipe's work (issue "make run on a CPU close to what the machine can do")
STAGES = [Field("stage", "stage"), Field("minutes", "minutes", "min")]
BUDGET = [
    Field("stage", "stage"),
    Field("work", "work"),
    Field("tflop", "TFLOP", "TFLOP"),
    Field("estimated_min", "estimated (min)", "min"),
    Field("took_min", "took (min)", "min"),
]
MODELS = [
    Field("model", "model"),
    Field("validation", "validation accuracy", "fraction"),
    Field("test", "test accuracy", "fraction"),
]


def du_gb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e9, 2)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clone", type=Path, default=REPO.parent / "make-run-clone", help="where to clone (emptied)")
    p.add_argument("--make-flags", default="", help="variables for make run, e.g. 'TRAIN_FLAGS=--seed 2'")
    p.add_argument("--key", help="make_run.<key>.json (default: the backbone's name, none for the default's)")
    args = p.parse_args(argv)
    fresh_clone(args.clone)
    flags = shlex.split(args.make_flags)
    install_s = timed_make(args.clone, ".venv/.installed-tensorflow-cpu")
    train_s = timed_make(args.clone, "train", *flags)
    convert_s = timed_make(args.clone, "convert", *flags)
    run = args.clone / "artifacts" / "runs" / "latest"
    meta = json.loads((run / "run.json").read_text())
    history = json.loads((run / "history.json").read_text())
    report = json.loads((run / "report.json").read_text())
    conversion = json.loads((args.clone / "artifacts" / "bundle" / "conversion.json").read_text())
    head_epochs = meta["config"]["head_epochs"]
    fill_s, epochs = meta["inputs"]["seconds"], history["seconds"]
    head_s, tune_s = sum(epochs[:head_epochs]), sum(epochs[head_epochs:])
    total_s = train_s + convert_s
    sgemm = sgemm_one_thread()
    cores = os.cpu_count() or 1
    default = meta["backbone"] == DEFAULT_BACKBONE
    floor_tflop = FLOOR_TFLOP if default else sum(s["gflop"] for s in meta["budget"]["stages"]) / 1000
    floor_s = floor_tflop * 1000 / (cores * sgemm)
    cache_gb = du_gb(args.clone / "artifacts" / "cache")
    stages = [
        ("the cache's fill (prepare: every view and validation through the frozen layers)", fill_s),
        (f"head, {head_epochs} epochs", head_s),
        (f"fine-tuning, {len(epochs) - head_epochs} epochs of {meta['config']['fine_tune_epochs']}", tune_s),
        ("the rest of make train (start-up, test evaluation, plots)", train_s - fill_s - head_s - tune_s),
        ("make convert (conversion and the gates)", convert_s),
        ("**make run**", total_s),
    ]
    accuracy = [
        {
            "model": "Keras checkpoint, reloaded (report.json)",
            "validation": meta["best_val_accuracy"],
            "test": round(report["test"]["accuracy"], 4),
        },
        *[
            {
                "model": f"{variant} ({'passed' if gate['passed'] else 'refused'})",
                "validation": None,
                "test": round(gate["test_accuracy"], 4),
            }
            for variant, gate in conversion.items()
        ],
    ]
    notes = [
        f"the floor: {floor_tflop:.0f} TFLOP over {cores} cores x {sgemm:.1f} GFLOP/s = {floor_s / 60:.1f} min; "
        f"make run took {total_s / floor_s:.2f}x the floor",
        f"best checkpoint {meta['best_checkpoint']} (epoch {meta['best_epoch']}); seed {meta['config']['seed']}",
        f"peak memory of training {meta['peak_rss_mb']} MB; the cache on disk {cache_gb} GB",
        f"building the clone's .venv first (not in the figures): {install_s / 60:.1f} min",
    ]
    tables = [
        Table("stages", STAGES, [{"stage": s, "minutes": round(took / 60, 1)} for s, took in stages], "Time by stage"),
        Table("models", MODELS, accuracy, "The model it made"),
    ]
    budget = meta.get("budget")  # make train's estimates at its start, and what each stage took
    if budget:
        estimates = [
            {
                "stage": s["name"],
                "work": s["work"],
                "tflop": round(s["gflop"] / 1000, 1),
                "estimated_min": round(s["estimate_s"] / 60, 1),
                "took_min": round(s["actual_s"] / 60, 1),
            }
            for s in budget["stages"]
        ]
        rate = f"make train's budget at {budget['rate_gflops']:.0f} GFLOP/s"
        tables.insert(1, Table("budget", BUDGET, estimates, rate))
    title = "make run from a fresh clone, against its floor" + ("" if default else f": {meta['backbone']}")
    key = args.key or (None if default else meta["backbone"])  # a key of its own: another CPU class, say
    record(__spec__.name, argv, title, tables, notes, key=key)


if __name__ == "__main__":
    main()

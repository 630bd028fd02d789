"""Sweep one hyper-parameter of the head on cached features, as the course does.

    python -m train.sweep head_lr                    # 0.0001 0.001 0.01 0.1
    python -m train.sweep inner --values 10 100 1000
    python -m train.sweep dropout --head-epochs 20   # any train.train flag applies

The preset is `frozen` (the head alone on cached pooled features) unless
--preset names another. Writes artifacts/sweeps/<param>/: one plot of validation accuracy per epoch
for each value, and the best epoch per value (results.json, results.md).
"""

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import keras

from project.paths import ARTIFACTS
from train import model as models
from train.config import TrainConfig, parse_args
from train.report import plot_sweep
from train.train import fit_phases, prepare

SWEEPS: dict[str, list[float]] = {  # the course's grids
    "head_lr": [0.0001, 0.001, 0.01, 0.1],
    "inner": [10, 100, 1000],
    "dropout": [0.0, 0.2, 0.5, 0.8],
}
OUT = ARTIFACTS / "sweeps"

log = logging.getLogger("sweep")


def sweep(config: TrainConfig, param: str, values: list[float]) -> dict:
    """Validation accuracy per epoch for each value; the inputs (and the cache) are prepared once."""
    prepared = prepare(config)
    curves = {}
    for value in values:
        keras.utils.set_random_seed(config.seed)  # same initial weights for every value
        overrides: dict[str, Any] = {param: value}
        setting = replace(config, **overrides)
        net = models.build(setting.backbone_entry, setting, len(prepared.classes))
        history = fit_phases(setting, net, prepared.train_batches, prepared.val_batches, callbacks=[], best=None)
        curves[value] = [round(a, 4) for a in history["val_accuracy"]]
    return curves


def best_epochs(curves: dict) -> list[dict]:
    return [
        {"value": value, "best_epoch": curve.index(max(curve)) + 1, "val_accuracy": max(curve)}
        for value, curve in curves.items()
    ]


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("param", choices=sorted(SWEEPS))
    p.add_argument("--values", nargs="+", type=float, help="default: the course's grid for the parameter")
    p.add_argument("--sweep-out", type=Path, help="default: artifacts/sweeps/<param>")
    own, rest = p.parse_known_args(sys.argv[1:] if argv is None else argv)
    config = parse_args(rest if "--preset" in rest else ["--preset", "frozen", *rest])
    cast = int if own.param == "inner" else float
    values: list[float] = [cast(v) for v in own.values] if own.values else SWEEPS[own.param]

    curves = sweep(config, own.param, values)
    out = own.sweep_out or OUT / own.param
    out.mkdir(parents=True, exist_ok=True)
    plot_sweep(own.param, curves, out / "val_accuracy.png")
    table = best_epochs(curves)
    (out / "results.json").write_text(json.dumps({"param": own.param, "curves": curves, "best": table}, indent=2))
    lines = [f"| {own.param} | best epoch | val accuracy |", "| --- | --- | --- |"]
    lines += [f"| {row['value']} | {row['best_epoch']} | {row['val_accuracy']:.3f} |" for row in table]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

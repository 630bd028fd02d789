"""Sweep one hyper-parameter of the head on cached features, as the course does.

    python -m train.sweep learning_rate              # 0.0001 0.001 0.01 0.1
    python -m train.sweep inner --values 10 100 1000
    python -m train.sweep dropout --epochs 20        # any train.train flag applies

Writes artifacts/sweeps/<param>/: one plot of validation accuracy per epoch
for each value, and the best epoch per value (results.json, results.md).
"""

import argparse
import json
import logging
import sys
from pathlib import Path

import keras

from train import model as models
from train.data import REPO_ROOT, scan_dataset
from train.report import plot_sweep
from train.train import extract_features, fit_head, parse_args

SWEEPS = {  # the course's grids
    "learning_rate": [0.0001, 0.001, 0.01, 0.1],
    "inner": [10, 100, 1000],
    "dropout": [0.0, 0.2, 0.5, 0.8],
}
OUT = REPO_ROOT / "artifacts" / "sweeps"

log = logging.getLogger("sweep")


def sweep(args, param: str, values: list) -> dict:
    classes, items = scan_dataset(args.data)
    weights_id = models.weights_identity(args.weights, args.seed)
    base = models.make_base(args.weights, args.size)
    _, _, extractor = models.make_model(base, args.inner, args.dropout, len(classes))
    train_views, train_kept, val_features, val_kept, _ = extract_features(args, extractor, classes, items, weights_id)
    curves = {}
    for value in values:
        keras.utils.set_random_seed(args.seed)  # same initial weights for every value
        setting = {"learning_rate": args.learning_rate, "inner": args.inner, "dropout": args.dropout, param: value}
        _, head, _ = models.make_model(base, setting["inner"], setting["dropout"], len(classes))
        models.compile_for_training(head, setting["learning_rate"])
        history = fit_head(head, train_views, [i.label for i in train_kept], val_features,
                           [i.label for i in val_kept], args, callbacks=[]).history
        curves[value] = [round(a, 4) for a in history["val_accuracy"]]
    return curves


def best_epochs(curves: dict) -> list[dict]:
    return [{"value": value, "best_epoch": curve.index(max(curve)) + 1, "val_accuracy": max(curve)}
            for value, curve in curves.items()]


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("param", choices=sorted(SWEEPS))
    p.add_argument("--values", nargs="+", type=float, help="default: the course's grid for the parameter")
    p.add_argument("--sweep-out", type=Path, help="default: artifacts/sweeps/<param>")
    own, rest = p.parse_known_args(sys.argv[1:] if argv is None else argv)
    args = parse_args(rest)
    cast = int if own.param == "inner" else float
    values = [cast(v) for v in own.values] if own.values else SWEEPS[own.param]

    curves = sweep(args, own.param, values)
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

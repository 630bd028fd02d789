"""The recipe's options (label smoothing, reviewed photos repeated, the wide augmentation, mixup) in one tiny run:
each reaches what it changes, and the run records them."""

import json

import numpy as np

from harness.dataset import TINY_COLOURS, tiny_training_flags, write_image
from harness.reviewed import decide
from train.config import parse_args
from train.train import train

SHOP_PHOTOS = 9


def test_a_cpu_run_with_every_recipe_option_on_trains_and_records_them(tmp_path):
    rng, file, shop = np.random.default_rng(3), tmp_path / "reviewed.jsonl", tmp_path / "shop"
    for k in range(SHOP_PHOTOS):
        name = sorted(TINY_COLOURS)[k % 3]
        write_image(shop / f"{name}-{k}.jpg", TINY_COLOURS[name], rng)
        decide(file, f"shop/{name}-{k}.jpg", shop / f"{name}-{k}.jpg", name)
    options = ["--label-smoothing", "0.1", "--reviewed-repeats", "3", "--augmentation", "wide", "--mixup", "0.2"]
    flags = tiny_training_flags(tmp_path, "--preset", "cpu", *options, "--reviewed", str(file))
    report = train(parse_args(flags))
    config, reviewed, inputs = report["config"], report["reviewed"], report["inputs"]
    recorded = [config[k] for k in ("label_smoothing", "reviewed_repeats", "augmentation", "mixup")]
    assert recorded == [0.1, 3, "wide", 0.2]
    trained = reviewed["trained_on"]
    assert 0 < trained < SHOP_PHOTOS and reviewed["repeats"] == 3
    assert inputs["train_per_epoch"] == 9 + 3 * trained  # the dataset's 9 once, the shop's photos 3 times
    assert [s["computed"] for s in inputs["train"]] == [9 + trained] * 2  # each photo's views cached once
    folders = sorted(p.name for p in (tmp_path / "cache").glob("xception-*"))
    assert len(folders) == 3 and sum("view0" in f for f in folders) == 1  # views 1 and 2 (wide), the plain view
    assert len(report["history"]["loss"]) == 2 and np.isfinite(report["history"]["loss"]).all()
    assert json.loads((tmp_path / "run" / "run.json").read_text())["reviewed"]["repeats"] == 3

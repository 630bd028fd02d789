"""What fit() reads (train/inputs.py): with --reviewed-repeats, the shop's photos appear that many times an epoch,
the dataset's once, on images as on the cache (the cache's side: tests/train/test_features.py, test_recipe.py)."""

import numpy as np
import pytest

from train.config import parse_args
from train.data import read_images, scan_dataset
from train.inputs import image_inputs, repeats


def test_only_the_named_images_are_repeated(tiny_dataset):
    _, items = scan_dataset(tiny_dataset)
    shop = {items["train"][1].path, items["train"][4].path}
    counts = repeats(items["train"], shop, 3)
    assert counts.tolist() == [3 if k in (1, 4) else 1 for k in range(len(items["train"]))]
    assert repeats(items["train"], shop, 1).tolist() == [1] * len(items["train"])  # the default: as before


@pytest.mark.parametrize("n", [1, 4])
def test_on_images_a_repeated_photo_is_that_many_rows_of_an_epoch(tiny_dataset, n):
    classes, items = scan_dataset(tiny_dataset)
    config = parse_args(["--preset", "gpu", "--weights", "none", "--size", "71", "--reviewed-repeats", str(n)])
    shop = [items["train"][0], items["train"][7]]
    train, val, stats = image_inputs(config, classes, items, {i.path for i in shop})
    assert len(train.targets) == stats["train_per_epoch"] == len(items["train"]) + 2 * (n - 1)
    assert len(val.targets) == len(items["validation"])  # validation is never repeated
    rows = np.concatenate([train[k][0] for k in range(len(train))])
    labels = np.concatenate([train[k][1] for k in range(len(train))]).argmax(1)
    images, _, _ = read_images(items["train"], 71, "bilinear")
    for k, item in enumerate(items["train"]):
        same = [r for r in range(len(rows)) if np.array_equal(rows[r], images[k])]
        assert len(same) == (n if item in shop else 1) and set(labels[same]) == {item.label}

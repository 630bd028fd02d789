"""What fit() reads (train/inputs.py): with --reviewed-repeats, the shop's photos appear that many times an epoch,
the dataset's once, on images as on the cache (the cache's side: tests/train/test_features.py, test_recipe.py);
with --mixup, fine-tuning's batches are convex mixes of their rows, inputs and targets alike."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from train.config import parse_args
from train.data import read_images, scan_dataset
from train.inputs import EpochBatches, MixedBatches, image_inputs, one_hot, repeats


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


def linear_batches(n: int, batch_size: int, seed: int) -> tuple[EpochBatches, np.ndarray]:
    """Batches whose inputs are a fixed linear function of their one-hot targets (x = y W): a mix that treats
    inputs and targets alike keeps x = y W."""
    weights = np.random.default_rng(seed).standard_normal((3, 2 * 4 * 5)).astype(np.float32)
    targets = one_hot(np.arange(n) % 3, 3)
    return EpochBatches(
        lambda idx, _: (targets[idx] @ weights).reshape(-1, 2, 4, 5), targets, batch_size, seed
    ), weights


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 40), batch_size=st.integers(1, 16), alpha=st.floats(0.01, 4.0), seed=st.integers(0, 2**31))
def test_mixup_mixes_inputs_and_targets_by_the_same_weights_into_convex_combinations(n, batch_size, alpha, seed):
    batches, weights = linear_batches(n, batch_size, seed)
    mixed = MixedBatches(batches, alpha, seed)
    assert len(mixed) == len(batches)
    for k in range(len(mixed)):
        x, y = mixed[k]
        assert x.shape == batches[k][0].shape and x.dtype == y.dtype == np.float32
        assert np.all(y >= 0) and np.allclose(y.sum(1), 1)  # each target a distribution over the classes
        np.testing.assert_allclose(x.reshape(len(y), -1), y @ weights, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(x, mixed[k][0])  # drawn from (seed, epoch, batch): the same when read again


def test_mixup_draws_anew_each_epoch_and_a_small_alpha_mixes_little():
    batches, _ = linear_batches(32, 32, 0)
    mixed = MixedBatches(batches, 0.2, 1)
    first = mixed[0][1]
    mixed.on_epoch_end()
    assert batches.epoch == 1 and not np.array_equal(first, mixed[0][1])
    top = np.concatenate([MixedBatches(linear_batches(32, 32, s)[0], 0.05, s)[0][1].max(1) for s in range(20)])
    assert np.median(top) > 0.95 and top.min() >= 0.5  # Beta(0.05, 0.05): nearly always one row, barely mixed

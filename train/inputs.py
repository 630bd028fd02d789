"""What fit() reads: batches of cached activations (a CPU's way) or of uint8 pixels (an accelerator's way).

Either way a batch is (inputs, one-hot targets), the training split's order reshuffled every epoch and
validation's kept as it is. The shop's reviewed photos (train/reviewed.py) may appear several times an epoch
(--reviewed-repeats): a hundred photos among three thousand would otherwise barely move the loss.
"""

import math
from pathlib import Path

import keras
import numpy as np

from train.config import TrainConfig
from train.data import Item, check_classes_present, read_images
from train.features import FillPlan, fill_stores


class EpochBatches(keras.utils.PyDataset):
    """Batches of make_batch(indices, epoch) and one-hot targets; shuffled anew each epoch if shuffle."""

    def __init__(self, make_batch, targets: np.ndarray, batch_size: int, seed: int, shuffle=True, **kwargs):
        super().__init__(**kwargs)
        self.make_batch, self.targets, self.batch_size, self.shuffle = make_batch, targets, batch_size, shuffle
        self.rng = np.random.default_rng(seed)
        self.epoch, self.order = 0, self.new_order()

    def new_order(self) -> np.ndarray:
        return self.rng.permutation(len(self.targets)) if self.shuffle else np.arange(len(self.targets))

    def __len__(self):
        return math.ceil(len(self.targets) / self.batch_size)

    def __getitem__(self, i):
        indices = self.order[i * self.batch_size : (i + 1) * self.batch_size]
        return self.make_batch(indices, self.epoch), self.targets[indices]

    def on_epoch_end(self):
        self.epoch += 1
        self.order = self.new_order()


def mixed(rows: np.ndarray, lam: np.ndarray, partner: np.ndarray) -> np.ndarray:
    """lam rows + (1 - lam) rows[partner], row by row."""
    lam = lam.reshape(-1, *[1] * (rows.ndim - 1))
    return lam * rows + (1 - lam) * rows[partner]


class MixedBatches(keras.utils.PyDataset):
    """Another dataset's batches mixed up (Zhang et al. 2018): each row x_i, y_i becomes lam x_i + (1 - lam) x_j,
    lam y_i + (1 - lam) y_j, with j a random row of the same batch and lam ~ Beta(alpha, alpha) per row; drawn
    from (seed, epoch, batch), so a run is reproducible. On cached activations the mix is of what the frozen
    layers computed (manifold mixup), which the top and the head then learn to read linearly."""

    def __init__(self, batches: EpochBatches, alpha: float, seed: int):
        super().__init__()
        self.batches, self.alpha, self.seed = batches, alpha, seed

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, i):
        x, y = self.batches[i]
        rng = np.random.default_rng([self.seed, self.batches.epoch, i])
        lam = rng.beta(self.alpha, self.alpha, len(y)).astype(np.float32)
        partner = rng.permutation(len(y))
        return mixed(x, lam, partner), mixed(y, lam, partner)

    def on_epoch_end(self):
        self.batches.on_epoch_end()


def one_hot(labels, n_classes: int) -> np.ndarray:
    return np.eye(n_classes, dtype=np.float32)[np.asarray(labels)]


def repeats(kept: list[Item], repeated: set[Path], n: int) -> np.ndarray:
    """How many times each kept training image appears an epoch: n for those in repeated (the shop's), else 1."""
    return np.array([n if item.path in repeated else 1 for item in kept], int)


def cache_inputs(config: TrainConfig, plan: FillPlan, classes, items, repeated: set[Path]):
    """Training and validation batches of cached activations at the cut; the stores filled first. The training
    images in repeated (the shop's) appear config.reviewed_repeats times an epoch, each copy another view."""
    splits = fill_stores(config, plan, classes, items)
    train_split = splits["train"]
    splits["train"] = train_split.repeated(repeats(train_split.kept, repeated, config.reviewed_repeats))
    train, val = (
        EpochBatches(
            splits[split].rows,
            one_hot([i.label for i in splits[split].kept], len(classes)),
            config.batch_size,
            config.seed,
            shuffle=split == "train",
        )
        for split in ("train", "validation")
    )
    stats = {
        "cut": plan.keys["validation", 0].cut,
        "train": splits["train"].stats,
        "train_per_epoch": len(splits["train"].kept),
        "validation": splits["validation"].stats[0],
        "bytes": sum(len(s) * s.row_bytes for split in splits.values() for s in split.stores),
    }
    return train, val, stats


def image_inputs(config: TrainConfig, classes, items, repeated: set[Path]):
    """Training and validation batches of uint8 pixels, held in memory; the model augments and normalises them.
    The training images in repeated (the shop's) appear config.reviewed_repeats times an epoch."""
    n, batches = len(classes), {}
    for split in ("train", "validation"):
        images, kept, skipped = read_images(items[split], config.size, config.interpolation)
        check_classes_present(kept, items[split], classes)
        if split == "train":
            order = np.repeat(np.arange(len(kept)), repeats(kept, repeated, config.reviewed_repeats))
            images, kept = images[order], [kept[k] for k in order]
        # threads index the next batches while the accelerator runs this one
        batches[split] = EpochBatches(
            lambda idx, _, images=images: images[idx],
            one_hot([i.label for i in kept], n),
            config.batch_size,
            config.seed,
            shuffle=split == "train",
            workers=4,
        )
    return batches["train"], batches["validation"], {"cut": "images", "train_per_epoch": len(batches["train"].targets)}

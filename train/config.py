"""The training recipe: every setting with its default, the named presets, and the command line.

A preset is a named set of defaults; any flag given on the command line
wins over it. `auto` (what `make run` uses) picks `gpu` when the Keras
backend sees a GPU and `cpu` otherwise. The figures behind each preset are
in docs/benchmarks-history.md.
"""

import argparse
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from lambda_fn.preprocess import RESIZES
from train.backbone import BACKBONES, DEFAULT_BACKBONE, Backbone, default_weights
from train.data import CACHE, REPO_ROOT, default_data_dir

OUT = REPO_ROOT / "artifacts" / "runs"


@dataclass(frozen=True)
class TrainConfig:
    data: Path = field(default_factory=default_data_dir)  # dataset folder (env FASHION_DATA)
    # base weights: a .weights.h5 file, 'imagenet' (Keras downloads them), None (random), or 'default':
    # $FASHION_WEIGHTS, else the copy beside the project, else 'imagenet'
    weights: str | None = "default"
    backbone: str = DEFAULT_BACKBONE  # a name in train/backbone.py
    size: int = 0  # input size (0: the backbone's own)
    interpolation: str = "bilinear"  # Pillow resize filter; recorded so serving resizes the same way
    # where training reads its inputs: "cache" (activations of the frozen part,
    # computed once; fast on a CPU) or "images" (the whole model every step; a GPU's way)
    input: str = "cache"
    augment: bool = True  # the course's shear/zoom/flip augmentation
    views: int = 4  # input=cache: augmented views cached per image; epoch e shows image i view (e+i) mod K
    inner: int = 100  # units in the head's hidden Dense layer
    dropout: float = 0.2  # dropout rate after it
    batch_size: int = 32
    head_epochs: int = 3  # epochs of the head alone, base frozen
    head_lr: float = 1e-3  # Adam, for the head
    # a cut in the backbone's `cuts`, or a role ("cached", "images") naming one: unfreeze from there up; or None
    fine_tune_from: str | None = "cached"
    fine_tune_epochs: int = 10  # epochs of head + top of the base together
    # stop fine-tuning after this many epochs without a better validation accuracy (0: never); the best
    # checkpoint is the one kept either way
    fine_tune_patience: int = 0
    fine_tune_lr: float = 2e-4  # Adam, cosine-decayed over the fine-tuning epochs ...
    fine_tune_lr_floor: float = 0.05  # ... to this fraction of it
    seed: int = 1  # weights' initialisation, shuffling, dropout
    augmentation_seed: int = 1  # the cached views (kept apart from seed so that seeds share a cache)
    version: int = 1  # the N in <backbone>_vN_<epoch>_<val_accuracy>.h5
    out: Path | None = None  # run folder (default: artifacts/runs/<backbone>_vN)
    cache: Path = CACHE  # feature cache folder
    preset: str = "custom"  # the preset these defaults came from (recorded in run.json)

    @property
    def run_dir(self) -> Path:
        return self.out or OUT / f"{self.backbone}_v{self.version}"

    @property
    def backbone_entry(self) -> Backbone:
        """The registry's entry for `backbone` (train/backbone.py)."""
        return BACKBONES[self.backbone]

    @property
    def first_trainable(self) -> str | None:
        """The layer fine-tuning unfreezes from (the cut `fine_tune_from` names), or None."""
        return self.backbone_entry.cuts[self.fine_tune_from] if self.fine_tune_from else None


PRESETS = {
    # The CPU reference: the top blocks fine-tuned on cached activations (Xception: blocks 13-14).
    "cpu": dict(
        input="cache",
        views=4,
        head_epochs=3,
        head_lr=1e-3,
        fine_tune_from="cached",
        fine_tune_epochs=8,
        fine_tune_patience=2,  # the best epochs of two seeds were the 5th and 6th of 8 (docs/benchmarks-history.md)
        fine_tune_lr=2e-4,
    ),
    # The GPU recipe (measured on an H100): a deeper top fine-tuned on images (Xception: the last 40
    # layers), a fresh augmented view of every image every epoch, on the device.
    "gpu": dict(
        input="images",
        head_epochs=3,
        head_lr=1e-3,
        fine_tune_from="images",
        fine_tune_epochs=12,
        fine_tune_lr=2e-4,
    ),
    # The earlier reference: frozen base, the head alone on cached pooled features.
    "frozen": dict(input="cache", views=4, head_epochs=30, head_lr=5e-4, fine_tune_from=None, fine_tune_epochs=0),
    # The course's quick model: 150x150, no augmentation, 10 epochs of the head.
    "quick": dict(
        input="cache", size=150, augment=False, head_epochs=10, head_lr=1e-3, fine_tune_from=None, fine_tune_epochs=0
    ),
}
PRESET_NAMES = ["auto", *PRESETS]


def sees_gpu() -> bool:
    """Whether the Keras backend in use (KERAS_BACKEND) has a GPU to train on."""
    import keras

    if keras.backend.backend() == "torch":  # Keras' device listing covers jax and tensorflow only
        import torch

        return torch.cuda.is_available()
    return bool(keras.distribution.list_devices("gpu"))


def parse_args(argv=None) -> TrainConfig:
    p = argparse.ArgumentParser(
        prog="python -m train.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--preset",
        choices=PRESET_NAMES,
        default="auto",
        help="named defaults: gpu, cpu, frozen, quick; auto = gpu if the backend sees one, else cpu",
    )
    p.add_argument("--data", type=Path, help="dataset folder (env FASHION_DATA)")
    p.add_argument(
        "--weights",
        help="base weights: a .weights.h5 file, 'imagenet' (downloads) or 'none' "
        "(env FASHION_WEIGHTS; default: the copy beside the project, else imagenet)",
    )
    p.add_argument("--backbone", choices=sorted(BACKBONES))
    p.add_argument("--size", type=int)
    p.add_argument("--interpolation", choices=sorted(RESIZES))
    p.add_argument("--input", choices=["cache", "images"])
    p.add_argument("--augment", action=argparse.BooleanOptionalAction)
    p.add_argument("--views", type=int)
    p.add_argument("--inner", type=int)
    p.add_argument("--dropout", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--head-epochs", type=int)
    p.add_argument("--head-lr", type=float)
    p.add_argument(
        "--fine-tune-from",
        help="where fine-tuning starts: a role (cached, images) or a cut of the backbone ("
        + "; ".join(f"{b.name}: {', '.join(b.cuts)}" for b in BACKBONES.values())
        + ") or 'none'",
    )
    p.add_argument("--fine-tune-epochs", type=int)
    p.add_argument("--fine-tune-patience", type=int)
    p.add_argument("--fine-tune-lr", type=float)
    p.add_argument("--fine-tune-lr-floor", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--augmentation-seed", type=int)
    p.add_argument("--version", type=int)
    p.add_argument("--out", type=Path, help="run folder (default: artifacts/runs/<backbone>_vN)")
    p.add_argument("--cache", type=Path, help="feature cache folder")
    args = vars(p.parse_args(argv))
    preset = args.pop("preset")
    if preset == "auto":
        preset = "gpu" if sees_gpu() else "cpu"
    given = {k: v for k, v in args.items() if v is not None}
    try:
        return resolve(TrainConfig(**{**PRESETS[preset], **given, "preset": preset}))
    except ValueError as err:
        p.error(str(err))


def resolve(config: TrainConfig) -> TrainConfig:
    """Fill the defaults that depend on others and refuse what cannot work, naming it."""
    backbone = BACKBONES[config.backbone]
    weights = default_weights(backbone) if config.weights == "default" else config.weights
    fine_tune_from = None if config.fine_tune_from in (None, "none") else config.fine_tune_from
    if fine_tune_from in backbone.roles:  # a preset's role, named by the backbone
        fine_tune_from = backbone.roles[fine_tune_from]
    if fine_tune_from is not None and fine_tune_from not in backbone.cuts:
        raise ValueError(
            f"--fine-tune-from {fine_tune_from!r} is not a cut of {backbone.name}; "
            f"choose from {', '.join([*backbone.roles, *backbone.cuts])} or 'none'"
        )
    size = config.size or backbone.size
    if size < backbone.min_size:
        raise ValueError(f"--size {size} is too small: {backbone.name} needs at least {backbone.min_size} pixels")
    if config.input == "images" and fine_tune_from is None:
        raise ValueError(
            "--input images trains on a frozen base the slow way: use --input cache for --fine-tune-from none"
        )
    if config.fine_tune_patience < 0:
        raise ValueError("--fine-tune-patience must be 0 (never stop early) or more")
    if config.input == "cache" and config.augment and config.views < 1:
        raise ValueError("--views must be at least 1 to cache augmented views (or pass --no-augment)")
    return replace(
        config,
        size=size,
        weights=None if weights == "none" else weights,
        fine_tune_from=fine_tune_from,
        fine_tune_epochs=config.fine_tune_epochs if fine_tune_from else 0,
    )


def as_dict(config: TrainConfig) -> dict:
    return {f.name: str(v) if isinstance(v := getattr(config, f.name), Path) else v for f in fields(config)}

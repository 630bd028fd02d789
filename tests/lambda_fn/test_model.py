import json
import shutil

import numpy as np
import pytest

from lambda_fn.model import RUNTIME, Model, release, runtime_cannot_serve


def test_missing_bundle_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="no serving bundle .* run `make run`, or point MODEL_DIR"):
        Model(tmp_path)


def test_logits_for_one_image(tiny_bundle):
    model = Model(tiny_bundle, threads=1)
    x = np.zeros((1, model.input.size, model.input.size, 3), np.float32)
    logits = model.logits(x)
    assert logits.shape == (1, len(model.labels)) and np.isfinite(logits).all()
    np.testing.assert_array_equal(logits, model.logits(x))  # the same input, the same answer


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("interpolation", "mitchell", "interpolation 'mitchell' is not one of \\['bicubic'"),
        ("std", [1, 0, 1], "std \\(1, 0, 1\\) has a zero"),
        ("mean", [0, 0], "mean \\(0, 0\\) is not three numbers"),
        ("channels", "GBR", "channels 'GBR' is not one of"),
        ("pixels_version", 3, "converted and gated with pixels of version 3; this code makes version 5"),
        ("crop", 0.875, "unknown fields \\['crop'\\]"),
    ],
)
def test_a_bundle_whose_input_this_function_cannot_make_is_refused(tiny_bundle, tmp_path, field, value, words):
    shutil.copytree(tiny_bundle, tmp_path / "b")
    meta = json.loads((tmp_path / "b" / "model.json").read_text())
    meta["input"][field] = value
    (tmp_path / "b" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=words):
        Model(tmp_path / "b")


@pytest.mark.parametrize(
    "runtime, runtime_version, needed, refused",
    [
        ("tflite-runtime", "2.14.0", "2.17.0", True),  # int8-dynamic's FULLY_CONNECTED version 12
        ("tflite-runtime", "2.14.0", "1.15.0", False),  # float16
        ("ai-edge-litert", "2.3.0", "2.17.0", False),  # numbered apart: its own loader decides
        ("tflite-runtime", "2.14.0", None, False),  # a bundle from before the field
    ],
)
def test_runtime_versions_are_compared_on_tensorflows_scale(runtime, runtime_version, needed, refused):
    assert runtime_cannot_serve(needed, runtime, runtime_version) is refused


@pytest.mark.parametrize("variant", ["float32", "int8-dynamic"])
def test_each_variant_serves_or_is_refused_naming_the_runtime_it_needs(tiny_bundles, variant):
    """On LiteRT both serve; on tflite-runtime 2.14 (make test's third pass) int8-dynamic is refused."""
    bundle = tiny_bundles / variant
    needed = json.loads((bundle / "model.json").read_text())["min_runtime_version"]
    if variant == "int8-dynamic":
        assert release(needed) > release("2.14.0")  # so the tflite-runtime pass does test a refusal
    if runtime_cannot_serve(needed):
        with pytest.raises(RuntimeError, match=rf"needs a TensorFlow Lite runtime of release {needed} .* {RUNTIME}"):
            Model(bundle)
    else:
        model = Model(bundle, threads=1)
        x = np.zeros((1, model.input.size, model.input.size, 3), np.float32)
        assert np.isfinite(model.logits(x)).all()

import json
import shutil

import numpy as np
import pytest

from lambda_fn.model import Model


def test_missing_bundle_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="no serving bundle .* run `make run`, or point MODEL_DIR"):
        Model(tmp_path)


def test_logits_for_one_image(tiny_bundle):
    model = Model(tiny_bundle, threads=1)
    x = np.zeros((1, model.input_size, model.input_size, 3), np.float32)
    logits = model.logits(x)
    assert logits.shape == (1, len(model.labels)) and np.isfinite(logits).all()
    np.testing.assert_array_equal(logits, model.logits(x))  # the same input, the same answer


def test_a_bundle_for_another_backbones_preprocessing_is_refused(tiny_bundle, tmp_path):
    shutil.copytree(tiny_bundle, tmp_path / "b")
    meta = json.loads((tmp_path / "b" / "model.json").read_text())
    (tmp_path / "b" / "model.json").write_text(json.dumps({**meta, "preprocessing": "resnet50"}))
    with pytest.raises(ValueError, match="asks for 'resnet50' preprocessing; this function implements 'xception'"):
        Model(tmp_path / "b")

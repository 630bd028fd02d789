"""int8's conversion paths on the tiny model: real conversions, the real debugger, the Lambda's LiteRT."""

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from convert import convert as conv
from convert import int8
from lambda_fn.model import Model
from lambda_fn.settings import DEFAULT_MAX_DECODED_BYTES
from train.data import Item


@given(st.lists(st.integers(0, 5), max_size=60), st.integers(1, 8), st.integers(0, 3))
def test_stratified_takes_each_class_alike(labels, per_class, seed):
    items = [Item(Path(f"{k}.jpg"), label) for k, label in enumerate(labels)]
    chosen = int8.stratified(items, per_class, seed)
    assert len({i.path for i in chosen}) == len(chosen) and set(chosen) <= set(items)
    assert Counter(i.label for i in chosen) == {lab: min(per_class, n) for lab, n in Counter(labels).items()}
    assert [i.label for i in chosen] == sorted(i.label for i in chosen)
    assert chosen == int8.stratified(items, per_class, seed)  # seeded: the same set every conversion


@pytest.fixture(scope="module")
def saved(tiny_run, tmp_path_factory):
    """The tiny run's SavedModel and its representative images, as convert.convert makes them."""
    from train.export import export_saved_model

    checkpoint, meta = conv.resolve_checkpoint(tiny_run, None)
    folder = export_saved_model(conv.load_keras_model(checkpoint), tmp_path_factory.mktemp("int8") / "saved")
    items = conv.scan_for(meta, Path(meta["config"]["data"]))
    return folder, conv.representative_images(meta, items["train"])


@pytest.fixture(scope="module")
def debugged(saved):
    """The debugger run on the tiny model, and its errors per layer (read before any model is made of it)."""
    found = int8.debugger(*saved)
    return found, int8.layer_errors(found)


def test_int8_full_is_integer_only_and_float32_is_not(saved):
    from train.export import tflite_bytes

    folder, representative = saved
    assert int8.float_ops(int8.full(folder, representative)) == []
    assert "CONV_2D" in int8.float_ops(tflite_bytes(folder))


def test_the_debugger_measures_every_quantised_layer_in_graph_order(debugged):
    _, errors = debugged
    assert errors[0].op == "CONV_2D" and errors[-1].op == "FULLY_CONNECTED"  # the stem first, the logits last
    assert all(math.isfinite(e.error_per_scale) and e.error_per_scale >= 0 and e.scale > 0 for e in errors)
    ranked = int8.worst(errors, 3)
    assert [e.error_per_scale for e in ranked] == sorted((e.error_per_scale for e in errors), reverse=True)[:3]


def test_the_layers_named_are_kept_in_float_and_no_others(debugged):
    found, errors = debugged
    named = [e for e in errors if e.op in ("CONV_2D", "FULLY_CONNECTED")][-2:]
    mixed = int8.with_float_layers(found, [e.tensor for e in named])
    assert sorted(int8.float_ops(mixed)) == sorted(e.op for e in named)


@pytest.fixture(scope="module")
def calibrated(convert_counted):
    """convert.convert asked for both variants that calibrate on training images, its decodings counted."""
    return convert_counted(["float32", "int8-full", "int8-mixed"])


def test_both_calibrated_variants_share_one_decoding_of_the_representative_images(calibrated, saved):
    _, summary, decoded = calibrated
    assert set(summary) == {"float32", "int8-full", "int8-mixed"}
    (representative,) = decoded  # one call of the decoder for training images, however many variants use them
    assert len(representative) == len(saved[1]) == 18  # the tiny run's every training image: 6 of each class


def test_int8_mixed_is_gated_like_every_variant_and_serves_on_litert(calibrated, debugged, tmp_path):
    """Through convert.convert: run on the Lambda's model class over both splits, written only if it passed;
    and a model with layers in float, in a bundle, answers a real photo's bytes on that class."""
    out, summary, _ = calibrated
    mixed = summary["int8-mixed"]
    assert mixed["images"] == 9 and mixed["test_images"] == 9 and mixed["latency_ms_1_thread"] > 0
    assert (out / "int8-mixed").is_dir() == mixed["passed"] == (not mixed["failures"])
    assert json.loads((out / "conversion.json").read_text())["int8-mixed"] == mixed
    bundle = tmp_path / "mixed"
    bundle.mkdir()
    float32 = json.loads((out / "float32" / "model.json").read_text())
    (bundle / "model.json").write_text(json.dumps({**float32, "variant": "int8-mixed"}))
    found, errors = debugged
    (bundle / "model.tflite").write_bytes(int8.with_float_layers(found, int8.first_layers(errors)))
    model = Model(bundle, threads=1)
    photo = (out / "float32" / float32["checks"][0]["file"]).read_bytes()
    logits = model.logits(model.input_of(photo, DEFAULT_MAX_DECODED_BYTES))
    assert logits.shape == (1, len(model.labels)) and np.isfinite(logits).all()

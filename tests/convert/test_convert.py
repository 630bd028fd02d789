import json
import re
import shutil

import keras
import numpy as np
import pytest

from convert import convert as conv
from convert.variants import VARIANTS
from harness.dataset import TINY_CLASSES
from lambda_fn.preprocess import PIXELS_VERSION


@pytest.fixture(scope="module")
def converted(convert_counted):
    return convert_counted(["float32", "float16"])


def test_tiny_checkpoint_converts_and_passes_the_gate(converted, tiny_run):
    out, summary, _ = converted
    parity = summary["float32"]
    assert parity["passed"] and parity["max_abs_logit_diff"] <= 1e-4 and parity["top1_agreement"] == 1.0
    assert parity["images"] == 9 and parity["keras_accuracy"] == parity["tflite_accuracy"]
    for variant, figures in summary.items():  # whatever passes is written, whatever fails is not
        assert (out / variant / "model.tflite").is_file() == figures["passed"], variant
    assert json.loads((out / "conversion.json").read_text()) == summary


def test_no_training_image_is_decoded_without_an_int8_variant_that_calibrates(converted):
    _, summary, decoded = converted
    assert set(summary) == {"float32", "float16"} and decoded == []


def test_bundle_json_holds_what_the_lambda_needs(converted, tiny_run):
    out, _, _ = converted
    meta = json.loads((out / "float32" / "model.json").read_text())
    run = json.loads((tiny_run / "run.json").read_text())
    assert meta["labels"] == sorted(TINY_CLASSES)
    assert meta["input"] == {
        "size": 71,
        "interpolation": "bilinear",
        "mean": [127.5] * 3,  # Xception's [-1, 1], as data
        "std": [127.5] * 3,
        "channels": "RGB",
        "pixels_version": PIXELS_VERSION,
    }
    assert meta["source_checkpoint"] == run["best_checkpoint"]
    assert meta["source_sha256"] == conv.file_digest(tiny_run / run["best_checkpoint"])
    assert meta["tflite_sha256"] == conv.file_digest(out / "float32" / "model.tflite")
    assert meta["parity"]["passed"] is True


def convert_from(monkeypatch, model: keras.Model):
    """Make the converter see `model` instead of the checkpoint, as a broken conversion would."""
    real = conv.export_saved_model
    monkeypatch.setattr(conv, "export_saved_model", lambda checkpoint, folder: real(model, folder))


def checkpoint_of(run):
    return keras.models.load_model(run / json.loads((run / "run.json").read_text())["best_checkpoint"])


def test_altered_weights_are_refused_and_nothing_is_written(tiny_run, tmp_path, monkeypatch, capsys):
    model = checkpoint_of(tiny_run)
    head = model.get_layer("head")
    head.set_weights([w + 0.05 for w in head.get_weights()])
    convert_from(monkeypatch, model)
    assert conv.main([str(tiny_run), "--out", str(tmp_path / "out"), "--variants", "float32"]) == 1
    assert "float32 refused: max abs logit difference" in capsys.readouterr().err
    assert not (tmp_path / "out" / "float32").exists()


def test_different_input_scaling_is_refused(tiny_run, tmp_path, monkeypatch):
    model = checkpoint_of(tiny_run)
    # a model that scales [-1, 1] inputs back to raw [0, 255] pixels before the network
    raw_pixels = keras.Sequential([keras.Input((71, 71, 3)), keras.layers.Rescaling(127.5, offset=127.5), model])
    convert_from(monkeypatch, raw_pixels)
    summary = conv.convert(tiny_run, tmp_path / "out", variants=["float32"])
    assert not summary["float32"]["passed"]
    assert any("max abs logit difference" in f for f in summary["float32"]["failures"])


def test_stale_bundle_is_removed_when_the_gate_refuses(tiny_run, tmp_path, monkeypatch):
    (tmp_path / "out" / "float32").mkdir(parents=True)
    (tmp_path / "out" / "float32" / "model.tflite").write_bytes(b"an older model")
    model = checkpoint_of(tiny_run)
    model.get_layer("head").set_weights([w * 2 for w in model.get_layer("head").get_weights()])
    convert_from(monkeypatch, model)
    conv.convert(tiny_run, tmp_path / "out", variants=["float32"])
    assert not (tmp_path / "out" / "float32").exists()


def test_missing_checkpoint_is_a_clear_error(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    for h5 in run.glob("*.h5"):
        h5.unlink()
    assert conv.main([str(run), "--out", str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_unreadable_checkpoint_is_a_clear_error(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    for h5 in run.glob("*.h5"):
        h5.write_bytes(b"not hdf5 at all")
    with pytest.raises(conv.ConversionError, match="cannot read .* as a Keras model"):
        conv.convert(run, tmp_path / "out")


def test_checkpoint_without_run_metadata(tmp_path):
    (tmp_path / "model.h5").write_bytes(b"")
    with pytest.raises(conv.ConversionError, match="no run metadata at .*run.json: pass a training run folder"):
        conv.convert(tmp_path / "model.h5", tmp_path / "out")


def test_unknown_variant_is_named_with_those_accepted(tiny_run, tmp_path, capsys):
    accepted = re.escape(str(list(VARIANTS)))  # the table's names, int8-mixed among them
    with pytest.raises(conv.ConversionError, match=rf"unknown variant\(s\) \['int4'\]; choose from {accepted}$"):
        conv.convert(tiny_run, tmp_path / "out", variants=["float32", "int4"])
    with pytest.raises(SystemExit):
        conv.main(["--help"])
    assert f"from {list(VARIANTS)}" in " ".join(capsys.readouterr().out.split())  # argparse wraps the line


@pytest.mark.parametrize("given", ["1", "0", "-0.5", "98", "nan", "inf"])
def test_a_promise_that_cannot_be_made_is_refused_before_any_work(tmp_path, capsys, given):
    """--target-precision is a share strictly between 0 and 1: refused by name before the checkpoint is read."""
    assert conv.main([str(tmp_path / "no-run"), "--out", str(tmp_path / "out"), "--target-precision", given]) == 2
    err = capsys.readouterr().err
    assert f"--target-precision {float(given)!r} is not a share strictly between 0 and 1" in err
    assert "no run metadata" not in err and not (tmp_path / "out").exists()


def test_keras_format_checkpoints_convert_too(tiny_run, tmp_path):
    model = checkpoint_of(tiny_run)
    model.save(tmp_path / "model.keras")
    summary = conv.convert(
        tmp_path / "model.keras", tmp_path / "out", variants=["float32"], run_json=tiny_run / "run.json"
    )
    assert summary["float32"]["passed"]
    assert json.loads((tmp_path / "out" / "float32" / "model.json").read_text())["source_checkpoint"] == "model.keras"
    np.testing.assert_equal(summary["float32"]["top1_agreement"], 1.0)


def test_agreement_on_the_test_split_is_recorded(converted):
    out, summary, _ = converted
    for figures in summary.values():
        assert figures["test_images"] == 9 and 0 <= figures["test_top1_agreement"] <= 1
    assert summary["float32"]["test_top1_agreement"] == 1.0
    assert "top-1 agreement val / test" in conv.table(summary) and "100.00% / 100.00%" in conv.table(summary)


def test_unreadable_images_are_skipped_as_in_training_and_recorded(tiny_run, tmp_path, caplog):
    """A corrupt file that training skips with a warning must not crash conversion."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    data = tmp_path / "data"
    shutil.copytree(json.loads((tiny_run / "run.json").read_text())["config"]["data"], data)
    bad = data / "validation" / "hat" / "hat-0.jpg"
    bad.write_text("not a jpeg")
    summary = conv.convert(run, tmp_path / "out", variants=["float32"], data=data)
    assert summary["float32"]["passed"] and summary["float32"]["images"] == 8
    assert str(bad) in caplog.text and "not a readable image" in caplog.text
    meta = json.loads((tmp_path / "out" / "float32" / "model.json").read_text())
    assert meta["skipped_images"] == [str(bad)]
    # the PreTraffic hook's photos are readable ones, one a class, hat's included
    assert [c["truth"] for c in meta["checks"]] == meta["labels"]
    assert all((tmp_path / "out" / "float32" / c["file"]).read_bytes() != bad.read_bytes() for c in meta["checks"])


def test_model_json_holds_each_calibration_figure_once(converted):
    """What serves (temperature, threshold, the promise's proof) is in "calibration"; "parity" keeps the figures
    behind it, and none of the served keys again."""
    out, _, _ = converted
    meta = json.loads((out / "float32" / "model.json").read_text())
    assert {"temperature", "min_confidence", "proof"} <= meta["calibration"].keys()
    assert not meta["calibration"].keys() & meta["parity"]["calibration"].keys()
    assert "test" in meta["parity"]["calibration"]

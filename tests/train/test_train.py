import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests.conftest import REPO, make_tiny_dataset
from train.data import load_image, scan_dataset
from train.train import BestCheckpoint, parse_args, train
from train import model as models


def test_run_keeps_one_best_checkpoint_and_reports(tiny_run):
    meta = json.loads((tiny_run / "run.json").read_text())
    checkpoints = list(tiny_run.glob("*.h5"))
    assert [c.name for c in checkpoints] == [meta["best_checkpoint"]]
    history = json.loads((tiny_run / "history.json").read_text())
    best = max(history["val_accuracy"])
    assert meta["best_checkpoint"] == f"xception_v1_{meta['best_epoch']:02d}_{best:.3f}.h5"
    assert meta["classes"] == ["dress", "hat", "t-shirt"]
    assert meta["interpolation"] == "bilinear" and meta["input_size"] == 71
    report = json.loads((tiny_run / "report.json").read_text())
    assert set(report["test"]["per_class"]) == {"dress", "hat", "t-shirt"}
    assert np.array(report["test"]["confusion_matrix"]).sum() == 9
    for plot in ("curves.png", "confusion.png"):
        assert (tiny_run / plot).stat().st_size > 1000


def test_checkpoint_reloads_without_custom_objects_and_predicts_the_same(tiny_run, tmp_path):
    meta = json.loads((tiny_run / "run.json").read_text())
    model = keras.models.load_model(tiny_run / meta["best_checkpoint"])
    classes, items = scan_dataset(meta["config"]["data"])
    x = keras.applications.xception.preprocess_input(
        np.stack([load_image(i.path, 71, "bilinear") for i in items["test"]]).astype(np.float32))
    model.save(tmp_path / "again.h5")
    again = keras.models.load_model(tmp_path / "again.h5")
    np.testing.assert_array_equal(model.predict(x, verbose=0), again.predict(x, verbose=0))
    report = json.loads((tiny_run / "report.json").read_text())
    accuracy = (model.predict(x, verbose=0).argmax(1) == [i.label for i in items["test"]]).mean()
    assert round(float(accuracy), 4) == report["test"]["accuracy"]


def test_worse_later_epoch_does_not_replace_the_best(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    best = BestCheckpoint(model, tmp_path, version=3)
    for epoch, accuracy in enumerate([0.5, 0.8, 0.7, 0.8, 0.75]):
        best.on_epoch_end(epoch, {"val_accuracy": accuracy})
    assert [p.name for p in tmp_path.iterdir()] == ["xception_v3_02_0.800.h5"]
    assert (best.best_epoch, best.best_accuracy) == (2, 0.8)


def test_fine_tuning_continues_epochs_and_checkpoints_full_model(tmp_path):
    data = make_tiny_dataset(tmp_path / "data", per_split=(3, 2, 2))
    args = parse_args(["--data", str(data), "--weights", "none", "--size", "71", "--epochs", "1",
                       "--fine-tune-epochs", "1", "--aug-views", "2", "--batch-size", "4",
                       "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "cache")])
    report = train(args)
    assert len(report["history"]["val_accuracy"]) == len(report["history"]["seconds"]) == 2
    assert len(list(tmp_path.glob("cache/features-71-view*.npz"))) == 3  # two augmented train views + validation


def test_real_weights_learn_from_a_few_real_images(shared_data, shared_weights, tmp_path):
    """Ten real images per class and ImageNet features: far better than chance (0.1)."""
    for split, count in (("train", 10), ("validation", 3), ("test", 1)):
        for folder in (shared_data / split).iterdir():
            (tmp_path / "data" / split / folder.name).mkdir(parents=True)
            for f in sorted(folder.iterdir())[:count]:
                (tmp_path / "data" / split / folder.name / f.name).symlink_to(f)
    args = parse_args(["--data", str(tmp_path / "data"), "--weights", str(shared_weights), "--size", "150",
                       "--epochs", "10", "--batch-size", "16",
                       "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "cache")])
    report = train(args)
    assert report["best_val_accuracy"] >= 0.5


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    """A fresh process splits the CPU in two before TensorFlow starts, then trains for real."""
    data = make_tiny_dataset(tmp_path / "data", per_split=(4, 2, 2))
    script = f"""
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from train.train import parse_args, train
report = train(parse_args(["--data", r"{data}", "--weights", "none", "--size", "71", "--epochs", "2",
                           "--batch-size", "4", "--out", r"{tmp_path / 'run'}", "--cache", r"{tmp_path / 'cache'}"]))
assert report["replicas"] == 2, report["replicas"]
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list((tmp_path / "run").glob("*.h5"))) == 1


def test_sweep_writes_plot_and_table(tmp_path):
    from train.sweep import main
    data = make_tiny_dataset(tmp_path / "data", per_split=(3, 2, 2))
    main(["dropout", "--values", "0", "0.5", "--sweep-out", str(tmp_path / "sweep"), "--data", str(data),
          "--weights", "none", "--size", "71", "--epochs", "2", "--cache", str(tmp_path / "cache")])
    results = json.loads((tmp_path / "sweep" / "results.json").read_text())
    assert [row["value"] for row in results["best"]] == [0.0, 0.5]
    assert all(len(curve) == 2 for curve in results["curves"].values())
    assert (tmp_path / "sweep" / "val_accuracy.png").stat().st_size > 1000
    assert "| dropout | best epoch | val accuracy |" in (tmp_path / "sweep" / "results.md").read_text()

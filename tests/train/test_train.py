import json
import logging
import os
import subprocess
import sys
from dataclasses import fields

import keras
import numpy as np
import pytest

from harness import REPO
from harness.dataset import tiny_training_flags
from train import model as models
from train.backbone import XCEPTION
from train.callbacks import BestCheckpoint
from train.config import PRESETS, TrainConfig, parse_args
from train.data import load_image, scan_dataset
from train.train import fit_phases, prepare, train


def in_fresh_process(script: str, env: dict, timeout=900) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_run_keeps_one_best_checkpoint_and_reports(tiny_run):
    meta = json.loads((tiny_run / "run.json").read_text())
    checkpoints = list(tiny_run.glob("*.h5"))
    assert [c.name for c in checkpoints] == [meta["best_checkpoint"]]
    history = json.loads((tiny_run / "history.json").read_text())
    best = max(history["val_accuracy"])
    assert meta["best_checkpoint"] == f"xception_v1_{meta['best_epoch']:02d}_{best:.3f}.h5"
    assert meta["classes"] == ["dress", "hat", "t-shirt"]
    assert meta["interpolation"] == "bilinear" and meta["input_size"] == 71
    assert meta["backbone"] == "xception"
    assert meta["config"]["preset"] == "frozen" and meta["inputs"]["cut"] == "pooled"
    report = json.loads((tiny_run / "report.json").read_text())
    assert set(report["test"]["per_class"]) == {"dress", "hat", "t-shirt"}
    assert np.array(report["test"]["confusion_matrix"]).sum() == 9
    for plot in ("curves.png", "confusion.png"):
        assert (tiny_run / plot).stat().st_size > 1000


def test_checkpoint_reloads_without_custom_objects_and_predicts_the_same(tiny_run, tmp_path):
    meta = json.loads((tiny_run / "run.json").read_text())
    model = keras.models.load_model(tiny_run / meta["best_checkpoint"])
    classes, items = scan_dataset(meta["config"]["data"])
    x = XCEPTION.input_spec(71, "bilinear").normalise(
        np.stack([load_image(i.path, 71, "bilinear") for i in items["test"]])
    )
    model.save(tmp_path / "again.h5")
    again = keras.models.load_model(tmp_path / "again.h5")
    np.testing.assert_array_equal(model.predict(x, verbose=0), again.predict(x, verbose=0))
    report = json.loads((tiny_run / "report.json").read_text())
    accuracy = (model.predict(x, verbose=0).argmax(1) == [i.label for i in items["test"]]).mean()
    assert round(float(accuracy), 4) == report["test"]["accuracy"]


def test_worse_later_epoch_does_not_replace_the_best(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    best = BestCheckpoint(model, tmp_path, "xception_v3")
    for epoch, accuracy in enumerate([0.5, 0.8, 0.7, 0.8, 0.75]):
        best.on_epoch_end(epoch, {"val_accuracy": accuracy})
    assert [p.name for p in tmp_path.iterdir()] == ["xception_v3_02_0.800.h5"]
    assert (best.best_epoch, best.best_accuracy) == (2, 0.8)


def test_presets_and_flags():
    assert parse_args([]).preset == "cpu"  # auto, on a machine whose backend sees no GPU
    gpu = parse_args(["--preset", "gpu", "--weights", "none"])
    assert (gpu.input, gpu.fine_tune_from, gpu.fine_tune_epochs, gpu.fine_tune_lr) == (
        "images",
        "block10_sepconv3",
        12,
        2e-4,
    )
    cpu = parse_args(["--preset", "cpu", "--fine-tune-epochs", "5", "--weights", "none"])
    assert (cpu.input, cpu.fine_tune_from, cpu.views, cpu.fine_tune_epochs) == ("cache", "block13", 4, 5)
    frozen = parse_args(["--preset", "frozen", "--weights", "none"])
    assert frozen.fine_tune_from is None and frozen.fine_tune_epochs == 0
    assert set(PRESETS) == {"cpu", "gpu", "frozen", "quick"}


def test_presets_list_only_what_they_change():
    defaults = TrainConfig()
    for name, values in PRESETS.items():
        assert values and all(getattr(defaults, k) != v for k, v in values.items()), name


def test_help_shows_every_setting_with_its_default(capsys):
    """The command line is made from TrainConfig's fields: each has a flag, its help and its default."""
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    shown = capsys.readouterr().out
    flags = [f for f in fields(TrainConfig) if f.metadata.get("flag", True)]
    assert len(flags) == 28 and all(f"--{f.name.replace('_', '-')}" in shown for f in flags)
    assert shown.count("(default:") == len(flags) + 1  # and --preset
    assert "--fine-tune-epochs" in shown and "presets: cpu 8, gpu 12, frozen 0, quick 0" in " ".join(shown.split())


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--fine-tune-from", "block99"], "'block99' is not a cut of xception; choose from cached, images, block13"),
        (["--size", "64"], "--size 64 is too small: xception needs at least 71 pixels"),
        (["--preset", "nightly"], "invalid choice: 'nightly'"),
        (["--views", "0"], "--views must be at least 1"),
        (["--fine-tune-patience", "-1"], "--fine-tune-patience must be 0 (never stop early) or more"),
        (["--reviewed", "/nowhere/reviewed.jsonl"], "--reviewed /nowhere/reviewed.jsonl: no such file"),
        (["--reviewed-repeats", "0"], "--reviewed-repeats 0: must be 1 (each photo once) or more"),
        (["--label-smoothing", "1"], "--label-smoothing 1.0: must be at least 0 (none) and below 1"),
        (["--label-smoothing", "-0.1"], "--label-smoothing -0.1: must be at least 0"),
        (["--label-smoothing", "nan"], "--label-smoothing nan: must be at least 0"),
        (["--augmentation", "strong"], "argument --augmentation: invalid choice: 'strong'"),
        (["--augmentation", "wide", "--no-augment"], "--augmentation wide with --no-augment: nothing would be"),
        (["--mixup", "-1"], "--mixup -1.0: must be 0 (off) or a positive number"),
        (["--mixup", "inf"], "--mixup inf: must be 0 (off) or a positive number"),
        (["--mixup", "0.2", "--preset", "frozen"], "--mixup mixes fine-tuning's cached activations: it needs"),
        (["--mixup", "0.2", "--preset", "gpu"], "--mixup mixes fine-tuning's cached activations: it needs"),
        (["--mixup", "0.2", "--fine-tune-epochs", "0"], "--mixup mixes fine-tuning's cached activations: it needs"),
    ],
)
def test_bad_settings_are_refused_by_name(flags, message, capsys):
    with pytest.raises(SystemExit):
        parse_args(["--weights", "none", *flags])
    assert message in capsys.readouterr().err


def test_a_cut_inside_a_residual_block_cannot_be_cached():
    config = parse_args(
        ["--preset", "cpu", "--weights", "none", "--size", "71", "--fine-tune-from", "block10_sepconv3"]
    )
    with pytest.raises(ValueError, match="cannot cache at block10_sepconv3 .*skip connection.*--input images"):
        models.build(XCEPTION, config, 3)


def test_top_fine_tuned_on_cached_activations_is_the_checkpoints_model_on_images(tmp_path):
    """Fine-tune blocks 13-14 on cached activations; the saved full model on images gives the same logits.

    Tolerance: the cache holds float16 (11 significant bits), so the top sees
    activations within 2^-11 relative of the exact ones: logits agree to 1e-3.
    """
    config = parse_args(["--preset", "cpu", *tiny_training_flags(tmp_path)])
    keras.utils.set_random_seed(0)
    prepared = prepare(config)
    net, items, train_batches, val_batches = prepared.net, prepared.items, prepared.train_batches, prepared.val_batches
    assert prepared.stats["cut"] == "block13_sepconv1_act"
    before = net.full.get_layer("xception").get_layer("block14_sepconv2").get_weights()[0].copy()
    fit_phases(config, net, train_batches, val_batches, callbacks=[], best=None)
    after = net.full.get_layer("xception").get_layer("block14_sepconv2").get_weights()[0]
    assert not np.allclose(before, after)  # the base's top really trained
    net.full.save(tmp_path / "tuned.h5")
    reloaded = keras.models.load_model(tmp_path / "tuned.h5")

    rows = np.concatenate([val_batches[k][0] for k in range(len(val_batches))])
    on_cache = net.trainable.predict(rows, verbose=0)
    images = np.stack([load_image(i.path, 71, "bilinear") for i in items["validation"]])
    on_images = reloaded.predict(config.input_spec.normalise(images), verbose=0)
    np.testing.assert_allclose(on_images, on_cache, atol=1e-3)


def test_cpu_preset_end_to_end_converts_and_passes_the_gate(tmp_path, caplog):
    """...and says as it goes what each stage will do, how far it is, and at the end what each stage took."""
    from convert.convert import convert

    caplog.set_level(logging.INFO)
    report = train(parse_args(["--preset", "cpu", *tiny_training_flags(tmp_path)]))
    assert report["inputs"]["cut"] == "block13_sepconv1_act" and len(report["history"]["seconds"]) == 2
    assert len(list((tmp_path / "run").glob("*.h5"))) == 1
    assert convert(tmp_path / "run", tmp_path / "bundle", variants=["float32"])["float32"]["passed"]
    budget = json.loads((tmp_path / "run" / "run.json").read_text())["budget"]
    assert max(budget["sgemm_tries_gflops"]) * (os.cpu_count() or 1) == pytest.approx(budget["rate_gflops"], abs=0.5)
    stages = budget["stages"]
    assert [s["name"] for s in stages] == ["the cache's fill", "head", "fine-tuning", "test"]
    assert stages[0]["work"] == "24 image-views"  # 3 classes: 9 training images x 2 views, 6 of validation
    assert all(s["gflop"] >= 0 and s["actual_s"] > 0 for s in stages)
    log = caplog.text
    assert "make train's budget" in log and "the cache's fill on litert: 24/24 image-views" in log
    assert "head, epoch 1 of 1: 3/3 batches" in log and "fine-tuning, epoch 2 of 2" in log
    assert "the gates on LiteRT: 12/12 images" in log  # float32 over 6 validation and 6 test images
    summary = log[log.index("make run, estimated and actual") :]
    assert "conversion and the gates: 2 passes x 12 images" in summary
    assert summary.count(", took ") == 5 + 1  # each stage, and all of them


@pytest.mark.parametrize("recipe", [[], ["--augmentation", "wide", "--label-smoothing", "0.1"]], ids=["course", "wide"])
def test_gpu_preset_under_jax_then_converted_with_tensorflow(tmp_path, recipe):
    """The fine-tuning preset on images, trained by JAX (the wide augmentation drawn on the device too); its .h5
    converts and passes the float32 gate."""
    from convert.convert import convert

    flags = tiny_training_flags(tmp_path, "--preset", "gpu", *recipe)
    result = in_fresh_process(
        f"""
import json, keras
from train.config import parse_args
from train.train import train
report = train(parse_args({flags!r}))
print(json.dumps({{"backend": keras.backend.backend(), "run": report["keras_backend"],
                  "cut": report["inputs"]["cut"], "epochs": len(report["history"]["val_accuracy"])}}))
""",
        {"KERAS_BACKEND": "jax"},
    )
    assert json.loads(result.stdout.splitlines()[-1]) == {"backend": "jax", "run": "jax", "cut": "images", "epochs": 2}
    assert len(list((tmp_path / "run").glob("*.h5"))) == 1
    assert convert(tmp_path / "run", tmp_path / "bundle", variants=["float32"])["float32"]["passed"]


def test_gpu_preset_under_tensorflow(tmp_path):
    report = train(parse_args(tiny_training_flags(tmp_path, "--preset", "gpu")))
    assert report["keras_backend"] == "tensorflow" and report["inputs"]["cut"] == "images"
    assert len(list((tmp_path / "run").glob("*.h5"))) == 1


def test_data_parallel_on_two_virtual_cpu_devices_under_jax(tmp_path):
    flags = tiny_training_flags(tmp_path, "--preset", "cpu", per_split=(4, 2, 2))
    result = in_fresh_process(
        f"""
import json, jax
from train.config import parse_args
from train.train import train
report = train(parse_args({flags!r}))
print(json.dumps({{"devices": len(jax.devices()), "replicas": report["replicas"]}}))
""",
        {"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
    )
    assert json.loads(result.stdout.splitlines()[-1]) == {"devices": 2, "replicas": 2}
    assert len(list((tmp_path / "run").glob("*.h5"))) == 1


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    """A fresh process splits the CPU in two before TensorFlow starts, then trains for real."""
    flags = tiny_training_flags(tmp_path, "--preset", "frozen", per_split=(4, 2, 2))
    in_fresh_process(
        f"""
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from train.config import parse_args
from train.train import train
report = train(parse_args({flags!r}))
assert report["replicas"] == 2, report["replicas"]
""",
        {"KERAS_BACKEND": "tensorflow"},
    )
    assert len(list((tmp_path / "run").glob("*.h5"))) == 1


def test_real_weights_learn_from_a_few_real_images(shared_data, shared_weights, tmp_path):
    """Ten real images per class and ImageNet features: far better than chance (0.1)."""
    for split, count in (("train", 10), ("validation", 3), ("test", 1)):
        for folder in (shared_data / split).iterdir():
            (tmp_path / "data" / split / folder.name).mkdir(parents=True)
            for f in sorted(folder.iterdir())[:count]:
                (tmp_path / "data" / split / folder.name / f.name).symlink_to(f)
    report = train(
        parse_args(
            [
                "--preset",
                "quick",
                "--data",
                str(tmp_path / "data"),
                "--weights",
                str(shared_weights),
                "--head-epochs",
                "10",
                "--batch-size",
                "16",
                "--out",
                str(tmp_path / "run"),
                "--cache",
                str(tmp_path / "cache"),
            ]
        )
    )
    assert report["best_val_accuracy"] >= 0.5


def test_sweep_writes_plot_and_table(tmp_path):
    from train.sweep import main

    sweep_out = ["--values", "0", "0.5", "--sweep-out", str(tmp_path / "sweep")]
    main(["dropout", *sweep_out, *tiny_training_flags(tmp_path, "--head-epochs", "2", "--views", "1")])
    results = json.loads((tmp_path / "sweep" / "results.json").read_text())
    assert [row["value"] for row in results["best"]] == [0.0, 0.5]
    assert all(len(curve) == 2 for curve in results["curves"].values())
    assert (tmp_path / "sweep" / "val_accuracy.png").stat().st_size > 1000
    assert "| dropout | best epoch | val accuracy |" in (tmp_path / "sweep" / "results.md").read_text()


def test_fine_tuning_stops_when_validation_accuracy_stalls(tmp_path):
    """With a learning rate of 0 nothing changes after the first fine-tuning epoch: patience 1 stops at the 2nd
    of 6, and the checkpoint kept is still the best one."""
    flags = ["--fine-tune-epochs", "6", "--fine-tune-patience", "1", "--fine-tune-lr", "0", "--views", "1"]
    report = train(parse_args(["--preset", "cpu", *tiny_training_flags(tmp_path, *flags)]))
    assert len(report["history"]["val_accuracy"]) == 1 + 2  # the head's epoch, then two of fine-tuning
    assert report["best_val_accuracy"] == round(max(report["history"]["val_accuracy"]), 4)
    assert parse_args(["--preset", "cpu", "--weights", "none"]).fine_tune_patience == 2

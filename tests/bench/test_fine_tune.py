"""bench.fine_tune on the tiny dataset: EfficientNet-Lite2's top (random weights, 71x71) fine-tuned on cached
activations with make run's recipe on each Keras backend, each in a process of its own, its rate and its share of
the machine's cores x sgemm recorded beside its seconds, under a key of its own."""

import importlib.util
import json

import pytest

from bench import fine_tune
from bench.backends import MODULES
from harness.dataset import tiny_training_flags
from harness.needs import missing

BACKENDS = ["tensorflow", "jax", "torch"]


@pytest.fixture
def installed_backends() -> list[str]:
    if absent := [b for b in BACKENDS if importlib.util.find_spec(MODULES[b]) is None]:
        missing(f"Keras backends not installed: {', '.join(absent)} (make install puts all three in .venv)")
    return BACKENDS


def test_each_backend_fine_tunes_lite2_with_its_rate_and_share(tmp_path, installed_backends):
    flags = tiny_training_flags(tmp_path / "tiny")
    argv = ["--backbone", "efficientnet-lite2", "--backends", ",".join(installed_backends), "--images", "2"]
    fine_tune.main([*argv, "--epochs", "2", "--results", str(tmp_path / "results"), *flags])

    assert [p.name for p in (tmp_path / "results").iterdir()] == ["fine_tune.efficientnet-lite2.json"]
    result = json.loads((tmp_path / "results" / "fine_tune.efficientnet-lite2.json").read_text())
    rows = result["records"]["settings"]["items"]
    assert [r["backend"] for r in rows] == installed_backends and [r.get("note") for r in rows] == [None] * 3
    for r in rows:
        assert r["setting"] == f"make run's recipe on {r['backend']}" and r["batch"] == 4  # the flags' batch
        assert r["epoch_s"] > 0 and r["gflops"] > 0 and 0 < r["floor_share"] < 1
        # the rate is the epoch's work over its seconds: rows that do the same work trade seconds for rate
        assert r["gflops"] * r["epoch_s"] == pytest.approx(rows[0]["gflops"] * rows[0]["epoch_s"], rel=0.03)
        assert r["speed_up"] == pytest.approx(rows[0]["epoch_s"] / r["epoch_s"], rel=0.03)
    assert "efficientnet-lite2 at 71x71" in result["notes"][0] and "cores x one core's sgemm" in result["notes"][1]


def test_a_tensorflow_knob_on_another_backend_is_a_failed_row_not_a_crash(tmp_path, installed_backends):
    setting = fine_tune.Setting("one inter-op thread", 32, inter=1, backend="jax")
    said = fine_tune.in_fresh_process(setting, ["--preset", "cpu", "--data", str(tmp_path)], 0)
    assert said == {"error": "inter-op threads are TensorFlow's setting; this process runs Keras on jax"}
    row = fine_tune.row(setting, said, 100, 150.0, None)
    assert row["note"] == said["error"] and "epoch_s" not in row and row["inter_op_threads"] == 1


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("tensorflow,theano", "theano: not a Keras backend; choose from tensorflow, jax, torch"),
        ("jax,jax", "name each backend once"),
        (",", "name each backend once"),
    ],
)
def test_backends_not_named_right_are_refused(given, said, capsys):
    with pytest.raises(SystemExit):
        fine_tune.main(["--backends", given])
    assert said in capsys.readouterr().err

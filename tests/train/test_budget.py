import json
import os

import pytest

from train import model as models
from train.backbone import XCEPTION
from train.budget import PROBE_TRIES, MachineRate, Stage, forward_gflop, machine_rate, settle, stage, table
from train.config import parse_args


def test_xceptions_work_counted_from_its_layers():
    """16.7 GFLOP an image at 299x299 (8.4 G multiply-adds, as Keras' application table puts Xception's
    cost), 14.7 below block 13 (the fill's) and 2.03 above (each training step's forward pass)."""
    net = models.build(XCEPTION, parse_args(["--preset", "cpu", "--weights", "none"]), 10)
    assert forward_gflop(net.full) == pytest.approx(16.71, abs=0.01)
    assert forward_gflop(net.trunk) == pytest.approx(14.68, abs=0.01)
    assert forward_gflop(net.trainable) == pytest.approx(2.03, abs=0.01)


def test_estimates_follow_the_rate_and_the_split_follows_them():
    fill = stage("the cache's fill", "1,000 image-views", 14_700, "fill", 200.0)
    assert fill.estimate_s == pytest.approx(14_700 / (200 * 0.71), abs=0.1)
    plan = table([fill], MachineRate(200.0), "budget")
    assert "the cache's fill: 1,000 image-views, 14.7 TFLOP, about 1 min 44 s" in plan and "took" not in plan
    fill.actual_s = 208.0
    done = table([fill, Stage("test", "test", "9 images", 1, 2.0, 2.0)], MachineRate(200.0), "split")
    assert "took 3 min 28 s" in done and "all: about 1 min 46 s, took 3 min 30 s (1.99x the estimate)" in done


def test_a_backbone_with_its_own_shares_gets_its_own_estimates():
    """EfficientNet-Lite's depthwise layers reach a smaller share of the machine than Xception's: its registry
    entry says so, and make train's estimate follows (the fill's here, the others alike)."""
    from train.backbone import BACKBONES

    shares = BACKBONES["efficientnet-lite2"].efficiency
    fill = stage("the cache's fill", "1,000 image-views", 1_000, "fill", 100.0, shares)
    assert fill.estimate_s == pytest.approx(1_000 / (100 * shares["fill"]), abs=0.1)
    assert stage("test", "9 images", 1_000, "test", 100.0, XCEPTION.efficiency).estimate_s == pytest.approx(17.5)


def test_the_machine_rate_is_the_best_of_its_tries_and_the_budget_keeps_them():
    """The real probe (PROBE_TRIES processes): the rate is every core at the best try, and the budget run.json
    keeps says how far the tries were apart, so a reader can tell a probe another process disturbed."""
    rate = machine_rate()
    assert len(rate.tries) == PROBE_TRIES and all(1 < t < 10_000 for t in rate.tries)  # one core, whatever the CPU
    assert all(max(rate.tries) >= t for t in rate.tries)
    assert rate.gflops == pytest.approx((os.cpu_count() or 1) * max(rate.tries))
    assert 0 <= rate.spread < 1
    kept = settle([Stage("test", "test", "9 images", 1, 2.0)], {"test": 2.5}, rate)
    assert kept["rate_gflops"] == round(rate.gflops, 1) and len(kept["sgemm_tries_gflops"]) == PROBE_TRIES
    assert kept["sgemm_spread"] == round(1 - min(rate.tries) / max(rate.tries), 3) and kept["stages"][0]["actual_s"]
    assert MachineRate.from_json(json.loads(json.dumps(kept))).tries == tuple(round(t, 1) for t in rate.tries)
    assert "the best of tries at" in table([], rate, "budget")


def test_a_disturbed_probe_shows_in_the_budget():
    disturbed = MachineRate(417.2, (208.6, 87.7, 190.0))  # one try shared its core with another process
    assert disturbed.spread == pytest.approx(1 - 87.7 / 208.6)
    assert "417 GFLOP/s = cores x one core's sgemm, the best of tries at 209, 88, 190 GFLOP/s (58% apart)" in table(
        [], disturbed, "budget"
    )
    older = MachineRate.from_json({"rate_gflops": 208.6, "stages": []})  # a run.json from before the tries were kept
    assert older.tries == () and older.spread == 0 and "the best of" not in str(older)


def test_a_model_too_small_to_estimate_still_gets_its_split():
    tiny = Stage("test", "test", "9 images", 0, 0.0, 2.0)
    assert table([tiny], MachineRate(200.0), "split").endswith("all: about 0 s, took 2 s")

import json
import os

import pytest

from project.cpu_class import this_family
from train import model as models
from train.backbone import XCEPTION
from train.budget import PROBE_TRIES, MachineRate, Stage, forward_gflop, machine_rate, settle, share, stage, table
from train.config import parse_args


def test_xceptions_work_counted_from_its_layers():
    """16.7 GFLOP an image at 299x299 (8.4 G multiply-adds, as Keras' application table puts Xception's
    cost), 14.7 below block 13 (the fill's) and 2.03 above (each training step's forward pass)."""
    net = models.build(XCEPTION, parse_args(["--preset", "cpu", "--weights", "none"]), 10)
    assert forward_gflop(net.full) == pytest.approx(16.71, abs=0.01)
    assert forward_gflop(net.trunk) == pytest.approx(14.68, abs=0.01)
    assert forward_gflop(net.trainable) == pytest.approx(2.03, abs=0.01)


AVX512 = MachineRate(200.0, family="avx512")  # the reference family: Xception's shares were measured on one


def test_estimates_follow_the_rate_and_the_split_follows_them():
    fill = stage("the cache's fill", "1,000 image-views", 14_700, "fill", AVX512)
    assert fill.estimate_s == pytest.approx(14_700 / (200 * 0.71), abs=0.1) and fill.share_from == "avx512"
    plan = table([fill], AVX512, "budget")
    assert "the cache's fill: 1,000 image-views, 14.7 TFLOP, about 1 min 44 s" in plan and "took" not in plan
    assert "measured on" not in plan  # the share is this family's own
    fill.actual_s = 208.0
    done = table([fill, Stage("test", "test", "9 images", 1, 2.0, 2.0)], AVX512, "split")
    assert "took 3 min 28 s" in done and "all: about 1 min 46 s, took 3 min 30 s (1.99x the estimate)" in done


@pytest.mark.parametrize(
    ("family", "kind", "expected"),
    [
        ("amx", "fill", "amx"),  # Lite2's own, measured on a Xeon with AMX
        ("avx512", "fine-tuning", "avx512"),
        ("avx2", "fine-tuning", "avx2"),  # issue 43's run
        ("avx2", "head", "avx512"),  # not measured with AVX2 alone: the nearest family that was
        ("arm64", "test", "avx512"),  # no family of its own: the reference machine's first
        ("unknown", "fill", "avx512"),
    ],
)
def test_a_backbones_shares_follow_the_cpu_family(family, kind, expected):
    """EfficientNet-Lite's depthwise layers reach other shares than Xception's, and each family of CPU its own:
    make train's estimate takes the backbone's share measured on this family, else on the nearest one, and says
    which it borrowed."""
    from train.backbone import BACKBONES

    shares = BACKBONES["efficientnet-lite2"].efficiency
    rate = MachineRate(100.0, family=family)
    work = stage("a stage", "1,000 image-views", 1_000, kind, rate, shares)
    assert work.share_from == expected
    assert work.estimate_s == pytest.approx(1_000 / (100 * shares[expected][kind]), abs=0.1)
    borrowed = table([work], rate, "budget")
    assert (f"by a share measured on {expected}" in borrowed) == (expected != family)


def test_xception_takes_the_reference_shares_on_every_family():
    for family in ("amx", "avx2", "arm64"):
        rate = MachineRate(100.0, family=family)
        assert stage("test", "9 images", 1_000, "test", rate, XCEPTION.efficiency).estimate_s == pytest.approx(17.5)


def test_a_kind_without_a_share_is_named():
    with pytest.raises(KeyError, match="no share is known for a stage of kind 'painting'; kinds: fill, head"):
        share("painting", "avx512")


def test_the_cpu_family_is_kept_with_the_rate():
    rate = machine_rate()
    assert rate.family == this_family() and f"CPU family {rate.family}" in str(rate)
    kept = settle([Stage("test", "test", "9 images", 1, 2.0)], {"test": 2.5}, rate)
    assert MachineRate.from_json(kept).family == rate.family
    assert MachineRate.from_json({"rate_gflops": 3.0}).family == "unknown"  # a run.json from before families


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

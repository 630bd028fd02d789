"""The shop's loop end to end on the tiny dataset: reviewed photos (files, and one URL on 127.0.0.1) train a tiny
model (train --reviewed), and conversion (convert --reviewed) fits and tries to prove the promise on the half
training did not see; model.json says how many photos went where, and on which photos the promise stands."""

import json

import numpy as np
import pytest

from harness import servers
from harness.dataset import TINY_COLOURS, tiny_training_flags, write_image
from harness.reviewed import decide
from project.reviewed import for_calibration, latest

SHOP_PHOTOS = 15


@pytest.fixture(scope="module")
def shop_loop(tmp_path_factory):
    """A tiny run trained with a reviewed-labels file, converted with it: (run folder, bundle, decisions file)."""
    from convert.convert import convert
    from train.config import parse_args
    from train.train import train

    root = tmp_path_factory.mktemp("shop-loop")
    flags = tiny_training_flags(root, "--preset", "frozen", "--head-epochs", "2", "--views", "1", per_split=(6, 3, 3))
    rng, file, shop = np.random.default_rng(7), root / "reviewed.jsonl", root / "shop"
    for k in range(SHOP_PHOTOS):
        name = sorted(TINY_COLOURS)[k % 3]
        write_image(shop / f"{name}-{k}.jpg", TINY_COLOURS[name], rng)
    with servers.image_server(shop) as url, pytest.MonkeyPatch.context() as env:
        env.setenv("ALLOW_PRIVATE_URLS", "true")  # the URL is on 127.0.0.1, as a shop's own server may be
        for k, photo in enumerate(sorted(shop.iterdir())):
            location = f"{url}/images/{photo.name}" if k == 0 else None
            decide(file, f"shop/{photo.name}", photo, photo.name.rsplit("-", 1)[0], location)
        decide(file, "a bag.jpg", shop / "dress-0.jpg", None, kind="none")
        decide(file, "unsure.jpg", shop / "hat-1.jpg", None, kind="skip")
        decide(file, "course.jpg", next((root / "data" / "test" / "hat").iterdir()), "hat")
        train(parse_args([*flags, "--reviewed", str(file)]))
        convert(root / "run", root / "bundle", variants=["float32"], reviewed=file)
    return root / "run", root / "bundle" / "float32", file


def test_the_run_trains_on_the_reviewed_photos_it_does_not_hold_out(shop_loop):
    run, _, file = shop_loop
    report = json.loads((run / "report.json").read_text())
    held = [d for d in latest(file).values() if for_calibration(d) and d.source.startswith("shop/")]
    reviewed = report["reviewed"]
    assert reviewed["decisions"] == SHOP_PHOTOS + 3 and (reviewed["none"], reviewed["skipped"]) == (1, 1)
    assert reviewed["held_out_for_calibration"] == len(held) and 0 < len(held) < SHOP_PHOTOS
    assert reviewed["trained_on"] == SHOP_PHOTOS - len(held)
    assert list(reviewed["refused"]) == ["course.jpg"] and "dataset's test photo" in reviewed["refused"]["course.jpg"]
    # the trained photos went through the activation cache like the dataset's 18 training photos
    assert report["inputs"]["train"][0]["computed"] == 18 + reviewed["trained_on"]
    assert json.loads((run / "run.json").read_text())["reviewed"] == reviewed


def test_model_json_says_where_the_shop_photos_went_and_where_the_promise_was_proven(shop_loop):
    run, bundle, _ = shop_loop
    trained = json.loads((run / "run.json").read_text())["reviewed"]
    meta = json.loads((bundle / "model.json").read_text())
    shop = meta["shop_photos"]
    assert shop["training"] == {k: v for k, v in trained.items() if k != "trained_sha256"}
    held = trained["held_out_for_calibration"]
    assert shop["calibration"]["photos"] == held and shop["calibration"]["trained_on_by_this_run"] == 0
    assert shop["calibration"]["none"] == 1 and list(shop["calibration"]["refused"]) == ["course.jpg"]
    calibration = meta["calibration"]
    proof = meta["parity"]["calibration"]["proofs"]["shop"]
    # a handful of photos prove nothing: the fallback says so, and how many more a proof would take (or that no
    # number would, where the tiny model's answers are right too rarely)
    assert proof["images"] == held and not proof["proven"]
    needed = proof["more_photos_needed"]
    assert needed is None or needed >= 149 - held
    assert calibration["fitted_on"] == "validation" and f"the {held} reviewed shop photos" in calibration["fallback"]
    assert (f"about {needed} more photos" if needed else "right less than 98%") in calibration["fallback"]
    assert calibration["confidence"] == 0.95 and calibration["proof"]["photos"] == "validation"
    assert meta["parity"]["calibration"]["shop"]["calibrated"]["images"] == held
    outside = meta["parity"]["calibration"]["not_these_classes"]  # the bag: what the model says of it
    assert outside["photos"] == 1 and outside["answered_confident"] in (0, 1)
    if not calibration["proof"]["proven"]:  # nine validation photos prove nothing either: nothing is confident
        assert calibration["min_confidence"] > 1 and "no answer is confident" in calibration["fallback"]

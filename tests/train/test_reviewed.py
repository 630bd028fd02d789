"""The shop's reviewed photos into training (train/reviewed.py): sorted once by their sha256, fetched once and
kept, and refused by name when they changed, cannot be read, or are the dataset's own."""

import hashlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import servers
from harness.dataset import TINY_COLOURS, make_tiny_dataset, write_image
from harness.reviewed import decide
from project.reviewed import Decision, append, for_calibration, latest
from train.data import scan_dataset
from train.reviewed import FOLDER, ReviewedError, shop_photos


@pytest.fixture
def shop(tmp_path, tiny_dataset):
    """A dataset, photos of the shop (new ones of the tiny classes) and the folder they are cached in."""
    rng = np.random.default_rng(42)
    photos = {}
    for k in range(12):
        name = sorted(TINY_COLOURS)[k % 3]
        photos[f"shop/{name}-{k}.jpg"] = tmp_path / "shop" / f"{name}-{k}.jpg"
        write_image(photos[f"shop/{name}-{k}.jpg"], TINY_COLOURS[name], rng)
    classes, items = scan_dataset(tiny_dataset)
    return photos, classes, items, tmp_path / "cache"


def test_labelled_photos_train_or_prove_by_their_sha256_and_the_rest_are_counted(tmp_path, shop):
    photos, classes, items, cache = shop
    file = tmp_path / "reviewed.jsonl"
    for source, photo in photos.items():
        decide(file, source, photo, source.split("/")[1].rsplit("-", 1)[0])
    decide(file, "bag.jpg", photos["shop/dress-0.jpg"], None, kind="none")
    decide(file, "blurry.jpg", photos["shop/hat-1.jpg"], None, kind="skip")
    found = shop_photos(file, classes, items, cache)
    held = [d for d in latest(file).values() if for_calibration(d)]
    assert 0 < len(held) < len(photos)  # both sides are exercised by these photos
    assert len(found.calibration) == found.held_out == len(held) and len(found.train) == len(photos) - len(held)
    assert (found.none, found.skipped, found.refused, found.decisions) == (1, 1, {}, len(photos) + 2)
    for item in found.train + found.calibration:  # cached by sha256, labelled by the reviewer
        assert item.path.parent == cache / FOLDER and item.path.suffix == ".jpg"
    by_digest = {d.sha256: d.label for d in latest(file).values() if d.decision == "label"}
    assert all(by_digest[i.path.stem] == classes[i.label] for i in found.train + found.calibration)
    record = found.record()
    assert record["trained_on"] == len(found.train) and record["held_out_for_calibration"] == len(held)
    assert sorted(record["trained_sha256"]) == sorted(i.path.stem for i in found.train)
    training_only = shop_photos(file, classes, items, cache, ("train",))  # what training asks for
    assert training_only.calibration == [] and training_only.held_out == len(held)
    assert training_only.not_these == [] and training_only.none == 1
    outside = shop_photos(file, classes, items, cache, ("none",))  # conversion measures what the model says
    assert [p.read_bytes() for p in outside.not_these] == [photos["shop/dress-0.jpg"].read_bytes()]


def test_a_photo_changed_since_review_is_refused_by_name(tmp_path, shop):
    photos, classes, items, cache = shop
    file = tmp_path / "reviewed.jsonl"
    decide(file, "shop/hat-1.jpg", photos["shop/hat-1.jpg"], "hat")
    photos["shop/hat-1.jpg"].write_bytes(photos["shop/hat-4.jpg"].read_bytes())  # replaced under the same name
    found = shop_photos(file, classes, items, cache)
    assert (
        list(found.refused) == ["shop/hat-1.jpg"]
        and "bytes changed since it was reviewed" in found.refused["shop/hat-1.jpg"]
    )
    assert not found.train and not found.calibration


def test_the_datasets_own_photos_conflicts_and_unusable_decisions_are_refused_with_why(tmp_path, shop):
    photos, classes, items, cache = shop
    file = tmp_path / "reviewed.jsonl"
    validation_photo = items["validation"][0].path
    decide(file, "copy-of-validation.jpg", validation_photo, classes[items["validation"][0].label])
    decide(file, "a.jpg", photos["shop/dress-0.jpg"], "dress")
    decide(file, "b.jpg", photos["shop/dress-0.jpg"], "hat")  # the same bytes, another label
    decide(file, "shirt.jpg", photos["shop/hat-1.jpg"], "shirt")  # not one of the model's classes
    text = tmp_path / "notes.jpg"
    text.write_bytes(b"not a photo\n" * 20)
    decide(file, "notes.jpg", text, "hat")
    decide(file, "relative.jpg", photos["shop/t-shirt-2.jpg"], "t-shirt", location="shop/t-shirt-2.jpg")
    decide(file, "gone.jpg", photos["shop/hat-4.jpg"], "hat", location=str(tmp_path / "gone.jpg"))
    found = shop_photos(file, classes, items, cache)
    why = found.refused
    assert f"identical to the dataset's validation photo {validation_photo}" in why["copy-of-validation.jpg"]
    assert why["b.jpg"] == "the same photo as a.jpg, labelled dress there" and "a.jpg" not in why
    assert "'shirt' is not one of the model's classes" in why["shirt.jpg"]
    assert "not a photo the service reads" in why["notes.jpg"]
    assert "neither an http(s) URL nor an absolute path" in why["relative.jpg"]
    assert why["gone.jpg"] == f"no file at {tmp_path / 'gone.jpg'}"
    assert len(found.train) + len(found.calibration) == 1  # a.jpg alone


def test_a_url_is_fetched_once_through_the_safe_fetcher_and_only_where_private_addresses_are_allowed(
    tmp_path, shop, monkeypatch, names_do_not_resolve
):
    photos, classes, items, cache = shop
    servers.ImageServer.hits.clear()
    file = tmp_path / "reviewed.jsonl"
    with servers.image_server(tmp_path / "shop") as url:
        decide(file, "web/hat.jpg", photos["shop/hat-1.jpg"], "hat", location=f"{url}/images/hat-1.jpg")
        refused = shop_photos(file, classes, items, cache)  # 127.0.0.1 is private: refused unless opted in
        assert "only public addresses are fetched" in refused.refused["web/hat.jpg"]
        monkeypatch.setenv("ALLOW_PRIVATE_URLS", "true")
        first, again = (shop_photos(file, classes, items, cache) for _ in range(2))
    assert first.refused == again.refused == {}
    assert [i.path for i in first.train + first.calibration] == [i.path for i in again.train + again.calibration]
    assert servers.ImageServer.hits["/images/hat-1.jpg"] == 1  # the second run read the cached copy


def test_a_missing_file_is_refused_before_anything_runs(tmp_path, shop):
    _, classes, items, cache = shop
    with pytest.raises(ReviewedError, match="no reviewed-labels file at"):
        shop_photos(tmp_path / "absent.jsonl", classes, items, cache)


HOSTILE_LOCATIONS = [
    "/dev/zero",  # endless
    "/",
    "/proc/self/mem",
    "/etc/hostname",  # a file, not the photo reviewed
    "file:///etc/hostname",
    "ftp://127.0.0.1/a.jpg",
    "http://",
    "http://[::1/a.jpg",
    "http://127.0.0.1:1/a.jpg",  # private: refused before connecting
    "http://169.254.169.254/latest/meta-data/",
    "https://photos.example.invalid/a.jpg",  # a name: the test's resolver looks up none
    "relative/a.jpg",
    "/tmp/a\x00b.jpg",
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return scan_dataset(make_tiny_dataset(tmp_path_factory.mktemp("data")))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.sampled_from(HOSTILE_LOCATIONS), st.text(max_size=60)))
def test_any_location_is_refused_with_a_reason_never_a_crash_or_a_hang(
    dataset, tmp_path, names_do_not_resolve, location
):
    classes, items = dataset
    file = tmp_path / "reviewed.jsonl"
    file.unlink(missing_ok=True)
    digest = hashlib.sha256(b"the photo the reviewer saw").hexdigest()
    append(file, Decision("p.jpg", location, digest, "label", "hat"))
    found = shop_photos(file, classes, items, tmp_path / "cache")
    assert not found.train and not found.calibration
    if location:  # a decision with no location names no photo: refused too, as project/reviewed.py says
        assert found.refused["p.jpg"]

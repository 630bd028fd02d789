import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness import REPO
from train import model as models
from train.backbone import XCEPTION
from train.config import parse_args
from train.data import Item, file_digest, scan_dataset
from train.features import CachedSplit, CacheKey, cache_keys, cached_activations, frozen_layers, prune, trunk_file
from train.reviewed import FOLDER as REVIEWED_PHOTOS
from train.store import ActivationStore

SIZE = 71
NORMALISE = XCEPTION.input_spec(SIZE, "bilinear").normalise  # what the fill applies (the run's input spec)


@pytest.fixture(scope="module")
def trunk():
    """Images -> the 728-channel activations entering block 13 (random weights)."""
    import keras

    keras.utils.set_random_seed(0)
    config = parse_args(["--preset", "cpu", "--weights", "none", "--size", str(SIZE)])
    return models.build(XCEPTION, config, 3).trunk


@pytest.fixture(scope="module")
def frozen(trunk, tmp_path_factory):
    """The trunk as the fill runs it: on LiteRT (the tests train on TensorFlow)."""
    return frozen_layers(trunk, trunk_file(tmp_path_factory.mktemp("trunk"), "xception", "test", SIZE, "cut"), 8)


def key(view=0, size=SIZE, cut="block13_sepconv1_act", engine="litert"):
    return CacheKey("xception", "test", size, "bilinear", cut, view, 1 if view else None, engine)


def activations(frozen, data, cache, view=0):
    classes, items = scan_dataset(data)
    store, kept, digests, stats = cached_activations(frozen, items["train"], classes, key(view), cache, NORMALISE)
    return store.read(digests), kept, stats


def test_the_frozen_layers_run_on_litert_as_they_do_in_keras(trunk, frozen, tiny_dataset):
    """LiteRT's activations are Keras' up to float32 rounding: within 1e-4 of the largest, on real pixels."""
    from train.data import load_image

    assert frozen.engine == "litert"
    _, items = scan_dataset(tiny_dataset)
    x = NORMALISE(np.stack([load_image(i.path, SIZE, "bilinear") for i in items["train"][:4]]))
    keras_rows, litert_rows = trunk.predict(x, verbose=0), frozen.run(x)
    assert litert_rows.shape == keras_rows.shape
    assert np.abs(litert_rows - keras_rows).max() <= 1e-4 * np.abs(keras_rows).max()


def test_the_exported_frozen_layers_are_kept_and_reused(trunk, tmp_path):
    path = trunk_file(tmp_path, "xception", "test", SIZE, "cut")
    frozen_layers(trunk, path, 8)
    written = path.stat().st_mtime_ns
    frozen_layers(trunk, path, 8)
    assert path.stat().st_mtime_ns == written and not list(tmp_path.glob("*.partial"))
    assert trunk_file(tmp_path, "xception", "test", SIZE + 1, "cut") != path  # another size, another export


def test_second_run_is_all_cache_hits_with_the_same_activations(frozen, tiny_dataset, tmp_path):
    first, _, stats1 = activations(frozen, tiny_dataset, tmp_path)
    second, _, stats2 = activations(frozen, tiny_dataset, tmp_path)
    assert (stats1["computed"], stats1["cached"]) == (18, 0)
    assert (stats2["computed"], stats2["cached"]) == (0, 18)
    assert first.shape[0] == 18 and first.shape[-1] == 728
    np.testing.assert_array_equal(first, second)


def test_rows_are_the_trunk_output_in_float16(trunk, frozen, tiny_dataset, tmp_path):
    from train.data import load_image

    cached, kept, _ = activations(frozen, tiny_dataset, tmp_path)
    image = load_image(kept[0].path, SIZE, "bilinear")[None]
    exact = trunk.predict(NORMALISE(image), verbose=0)[0]
    # float16 keeps 11 significant bits: each value within 2^-11 of itself (plus batch-size rounding)
    np.testing.assert_allclose(cached[0], exact, rtol=2**-10, atol=1e-4)
    assert np.abs(cached[0] - exact).max() > 0  # it is stored in float16, not float32


def test_changed_image_is_recomputed_alone(frozen, tiny_dataset, tmp_path):
    before, _, _ = activations(frozen, tiny_dataset, tmp_path)
    changed = sorted((tiny_dataset / "train" / "dress").iterdir())[0]
    Image.open(changed).transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(changed)
    after, kept, stats = activations(frozen, tiny_dataset, tmp_path)
    assert (stats["computed"], stats["cached"]) == (1, 17)
    k = [i.path for i in kept].index(changed)
    assert not np.allclose(before[k], after[k])
    np.testing.assert_array_equal(np.delete(before, k, 0), np.delete(after, k, 0))


def test_view_size_cut_and_engine_each_have_their_own_store(tmp_path):
    folders = {
        key().folder(tmp_path),
        key(view=1).folder(tmp_path),
        key(size=72).folder(tmp_path),
        key(cut="pooled").folder(tmp_path),
        key(engine="keras-jax").folder(tmp_path),
    }
    assert len(folders) == 5
    assert key(cut="pooled").folder(tmp_path).name.startswith("xception-71-pooled-view0-")


def test_a_run_reads_its_training_views_and_validations_plain_images():
    config = parse_args(["--preset", "cpu", "--weights", "none", "--views", "3", "--augmentation-seed", "7"])
    keys = cache_keys(config, "test", "cut", "litert")
    assert list(keys) == [("train", 1), ("train", 2), ("train", 3), ("validation", 0)]
    assert [k.augmentation_seed for k in keys.values()] == [7, 7, 7, None]
    assert {(k.backbone, k.size, k.cut, k.engine) for k in keys.values()} == {("xception", 299, "cut", "litert")}
    plain = cache_keys(parse_args(["--preset", "cpu", "--weights", "none", "--no-augment"]), "test", "cut", "litert")
    assert list(plain) == [("train", 0), ("validation", 0)]


def test_wide_views_have_stores_of_their_own_and_share_the_plain_view(frozen, tiny_dataset, tmp_path):
    flags = ["--preset", "cpu", "--weights", "none", "--views", "2"]
    course, wide = (
        cache_keys(parse_args([*flags, "--augmentation", name]), "test", "cut", "litert") for name in ("course", "wide")
    )
    assert [k.augmentation for k in wide.values()] == ["wide", "wide", None]
    for split_view in [("train", 1), ("train", 2)]:
        assert course[split_view].folder(tmp_path) != wide[split_view].folder(tmp_path)
    assert course["validation", 0].folder(tmp_path) == wide["validation", 0].folder(tmp_path)
    # the course's stores are where they were before the choice existed: an existing cache stays valid
    assert key(0).folder(tmp_path).name == "xception-71-block13_sepconv1_act-view0-29451376328a2ebd"
    assert key(1).folder(tmp_path).name == "xception-71-block13_sepconv1_act-view1-445a8674d619511c"
    assert replace(key(1), augmentation="course").folder(tmp_path) == key(1).folder(tmp_path)
    classes, items = scan_dataset(tiny_dataset)
    rows = {}
    for name in ("course", "wide"):  # the fill draws the key's augmentation
        store, _, digests, _ = cached_activations(
            frozen, items["train"], classes, replace(key(1), augmentation=name), tmp_path, NORMALISE
        )
        rows[name] = store.read(digests)
    assert rows["course"].shape == rows["wide"].shape and not np.allclose(rows["course"], rows["wide"])


def tagged_split(tmp_path, images: int, views: int) -> CachedSplit:
    """A split of stores whose row for image k in view v is [10 v + k]: what was read says from where."""
    digests = [f"d{k}" for k in range(images)]
    stores = []
    for v in range(views):
        store = ActivationStore(tmp_path / f"view{v}")
        store.append(digests, np.array([[10.0 * v + k] for k in range(images)], np.float32))
        stores.append(store)
    return CachedSplit(stores, [Item(Path(f"{d}.jpg"), 0) for d in digests], digests, [])


@pytest.mark.parametrize("copies", [2, 4, 6])
def test_a_repeated_image_appears_that_many_times_each_copy_through_another_view(tmp_path, copies):
    split = tagged_split(tmp_path, 5, views=4).repeated(np.array([1, 1, copies, 1, 1]))
    assert len(split.kept) == 4 + copies and split.digests.count("d2") == copies
    assert [i.path.name for i in split.kept] == ["d0.jpg", "d1.jpg", *["d2.jpg"] * copies, "d3.jpg", "d4.jpg"]
    for epoch in range(4):
        read = split.rows(np.arange(len(split.kept)), epoch)[:, 0]
        seen = [int(r) // 10 for r, d in zip(read, split.digests, strict=True) if d == "d2"]
        assert len(set(seen)) == min(copies, 4)  # copies of an epoch: different views, all of them at most
        assert {int(r) % 10 for r in read} == set(range(5))  # every image, its own rows


def test_each_epoch_shows_each_image_through_the_next_view(frozen, tiny_dataset, tmp_path):
    """Image i in epoch e is read from view (e + i) mod K: every view of every image over K epochs."""
    views = [activations(frozen, tiny_dataset, tmp_path, view) for view in (1, 2)]
    split = CachedSplit(
        [ActivationStore(key(view).folder(tmp_path)) for view in (1, 2)],
        views[0][1],
        [file_digest(i.path) for i in views[0][1]],
        [],
    )
    indices = np.array([0, 5, 2, 7])
    for epoch in (0, 1, 2):
        expected = [views[(epoch + i) % 2][0][i] for i in indices]
        np.testing.assert_array_equal(split.rows(indices, epoch), np.stack(expected))


def test_unfinished_shard_is_ignored(tmp_path):
    store = ActivationStore(tmp_path / "s")
    store.append(["a", "b"], np.ones((2, 3), np.float32))
    (tmp_path / "s" / "shard-9.f16").write_bytes(b"\0" * 12)  # killed before its .digests was written
    again = ActivationStore(tmp_path / "s")
    assert sorted(again.index) == ["a", "b"]
    np.testing.assert_array_equal(again.read(["b", "a"]), np.ones((2, 3)))


def test_prune_drops_images_that_left_the_dataset(frozen, tiny_dataset, tmp_path):
    activations(frozen, tiny_dataset, tmp_path / "cache")
    gone = sorted((tiny_dataset / "train" / "hat").iterdir())[:2]
    gone_digests = [file_digest(p) for p in gone]
    for p in gone:
        p.unlink()
    freed = prune(tmp_path / "cache", tiny_dataset)
    store = ActivationStore(key().folder(tmp_path / "cache"))
    assert freed == 2 * store.row_bytes
    assert len(store) == 16 and not any(d in store for d in gone_digests)
    again, _, stats = activations(frozen, tiny_dataset, tmp_path / "cache")
    assert (stats["computed"], stats["cached"]) == (0, 16)


def test_prune_keeps_the_shops_reviewed_photos_and_their_activations(frozen, tiny_dataset, tmp_path):
    activations(frozen, tiny_dataset, tmp_path / "cache")
    reviewed = sorted((tiny_dataset / "train" / "hat").iterdir())[0]  # as if it came from a shop, not the dataset
    digest, photos = file_digest(reviewed), tmp_path / "cache" / REVIEWED_PHOTOS
    photos.mkdir()
    (photos / f"{digest}.jpg").write_bytes(reviewed.read_bytes())
    reviewed.unlink()
    assert prune(tmp_path / "cache", tiny_dataset) == 0
    assert (photos / f"{digest}.jpg").is_file() and digest in ActivationStore(key().folder(tmp_path / "cache"))


def test_reading_a_cache_larger_than_the_memory_allowed_stays_bounded(tmp_path):
    """Write 600 MB of rows, then read every one in batches in a fresh process: its peak RSS stays small."""
    store, shape, n = ActivationStore(tmp_path / "big"), (19, 19, 728), 1150  # 525 KB a row, as at 299x299
    rng = np.random.default_rng(0)
    for start in range(0, n, 50):
        store.append([f"{k:064x}" for k in range(start, start + 50)], rng.standard_normal((50, *shape), np.float32))
    on_disk = sum(f.stat().st_size for f in (tmp_path / "big").glob("*.f16"))
    assert on_disk > 600e6
    script = f"""
import json, numpy as np
from train.store import ActivationStore
store = ActivationStore(r"{tmp_path / "big"}")
digests = sorted(store.index)
np.random.default_rng(1).shuffle(digests)
total = 0.0
for start in range(0, len(digests), 32):
    total += float(store.read(digests[start:start + 32]).sum())
# VmHWM: this process's peak resident set (ru_maxrss would carry pytest's over from the fork)
peak_kb = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({{"rows": len(digests), "peak_mb": peak_kb / 1024}}))
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(result.stdout)
    assert figures["rows"] == n
    assert figures["peak_mb"] < 200, figures  # a batch is 67 MB as float32; the cache is 600 MB

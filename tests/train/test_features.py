import numpy as np
import pytest
from PIL import Image

from train import model as models
from train.data import augment, load_image, scan_dataset
from train.features import cached_features, view_rng

SIZE = 71


@pytest.fixture(scope="module")
def extractor():
    import keras
    keras.utils.set_random_seed(0)
    base = models.make_base(None, SIZE)
    return models.make_model(base, 8, 0.0, 3)[2]


def features(extractor, data, cache, view=0, size=SIZE):
    classes, items = scan_dataset(data)
    return cached_features(extractor, items["train"], classes, cache_dir=cache, weights_id="test", size=size,
                           interpolation="bilinear", view=view, seed=1, batch_size=8, name="train")


def test_second_run_is_all_cache_hits_with_the_same_features(extractor, tiny_dataset, tmp_path):
    first, _, stats1 = features(extractor, tiny_dataset, tmp_path)
    second, _, stats2 = features(extractor, tiny_dataset, tmp_path)
    assert (stats1["computed"], stats1["cached"]) == (18, 0)
    assert (stats2["computed"], stats2["cached"]) == (0, 18)
    assert first.shape == (18, 2048)
    np.testing.assert_array_equal(first, second)


def test_changed_image_is_recomputed_alone(extractor, tiny_dataset, tmp_path):
    before, _, _ = features(extractor, tiny_dataset, tmp_path)
    changed = sorted((tiny_dataset / "train" / "dress").iterdir())[0]
    Image.open(changed).transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(changed)
    after, kept, stats = features(extractor, tiny_dataset, tmp_path)
    assert (stats["computed"], stats["cached"]) == (1, 17)
    k = [i.path for i in kept].index(changed)
    assert not np.allclose(before[k], after[k])
    np.testing.assert_array_equal(np.delete(before, k, 0), np.delete(after, k, 0))


def test_size_and_view_have_their_own_cache(extractor, tiny_dataset, tmp_path):
    features(extractor, tiny_dataset, tmp_path)
    _, _, other_view = features(extractor, tiny_dataset, tmp_path, view=1)
    assert other_view["computed"] == 18
    assert len(list(tmp_path.glob("features-*.npz"))) == 2


def test_augmented_view_is_reproducible_and_differs_from_plain(tiny_dataset):
    path = next((tiny_dataset / "train" / "hat").iterdir())
    image = load_image(path, SIZE, "bilinear")
    one, again = (augment(image, view_rng(1, 1, "ab" * 32)) for _ in range(2))
    np.testing.assert_array_equal(one, again)
    assert one.shape == image.shape and one.dtype == np.uint8
    assert not np.array_equal(one, image)

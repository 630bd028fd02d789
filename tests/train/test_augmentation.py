"""The augmentation on the accelerator matches the one it replaced: the course's shear/zoom/flip in Pillow."""

import keras
import numpy as np
from PIL import Image

from train.augmentation import RandomCourseAugmentation, augmented_views, transform
from train.data import load_image
from train.features import view_rng


def pillow_view(image: np.ndarray, shear_degrees, zoom_x, zoom_y, flip) -> np.ndarray:
    """The earlier implementation (Pillow, on an edge-padded copy: fill_mode="nearest"), kept as the reference."""
    size = image.shape[0]
    pad = size // 2
    padded = Image.fromarray(np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="edge"))
    shear = np.deg2rad(shear_degrees)
    a, b = flip * zoom_x, -np.sin(shear) * zoom_y
    d, e = 0.0, np.cos(shear) * zoom_y
    c = pad + size / 2 - a * size / 2 - b * size / 2
    f = pad + size / 2 - d * size / 2 - e * size / 2
    view = padded.transform(
        (size, size), Image.Transform.AFFINE, (a, b, c, d, e, f), resample=Image.Resampling.BILINEAR
    )
    return np.asarray(view, dtype=np.float32)


def pillow_random_parameters(rng: np.random.Generator):
    """The earlier implementation's draw: ImageDataGenerator(shear_range=10, zoom_range=0.1, horizontal_flip=True)."""
    return rng.uniform(-10, 10), rng.uniform(0.9, 1.1), rng.uniform(0.9, 1.1), -1.0 if rng.random() < 0.5 else 1.0


def marker_image(size=32) -> np.ndarray:
    """A bright off-centre rectangle on a dark ground: where it lands shows the flip, the zoom and the shear."""
    image = np.full((size, size, 3), 20, np.uint8)
    image[5:14, 4:11] = 235
    return image


def centroids(views: np.ndarray) -> np.ndarray:
    """(x, y) of the bright mass in each view."""
    weight = views[..., 0] - 20
    ys, xs = np.mgrid[: views.shape[1], : views.shape[2]]
    total = weight.sum(axis=(1, 2))
    return np.stack([(weight * xs).sum(axis=(1, 2)) / total, (weight * ys).sum(axis=(1, 2)) / total], axis=1)


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    grid = np.sort(np.concatenate([a, b]))
    cdf = lambda x: np.searchsorted(np.sort(x), grid, side="right") / len(x)  # noqa: E731
    return float(np.abs(cdf(a) - cdf(b)).max())


def test_same_parameters_give_the_same_view_as_pillow(real_images):
    image = load_image(real_images[1], 299, "bilinear")
    rng = np.random.default_rng(0)
    for _ in range(5):
        parameters = pillow_random_parameters(rng)
        named = dict(zip(("shear", "zoom_x", "zoom_y", "flip"), ([p] for p in parameters), strict=True))
        ours = keras.ops.convert_to_numpy(transform(image[None], named))[0]
        difference = np.abs(ours - pillow_view(image, *parameters))
        assert difference.max() <= 1.01, parameters  # Pillow rounds each pixel to uint8; nothing else differs
        assert difference.mean() < 0.5


def test_random_views_on_the_accelerator_match_the_old_ones_in_distribution():
    n, image = 1500, marker_image()
    layer = RandomCourseAugmentation(seed=3)
    ours = np.concatenate(
        [
            keras.ops.convert_to_numpy(layer(np.repeat(image[None].astype(np.float32), 250, 0), training=True))
            for _ in range(n // 250)
        ]
    )
    rng = np.random.default_rng(3)
    theirs = np.stack([pillow_view(image, *pillow_random_parameters(rng)) for _ in range(n)])
    ours_xy, theirs_xy = centroids(ours), centroids(theirs)
    critical = 1.95 * np.sqrt(2 / n)  # two-sample Kolmogorov-Smirnov at the 0.001 level
    for axis in (0, 1):
        assert ks_statistic(ours_xy[:, axis], theirs_xy[:, axis]) < critical
    assert 0.45 < (ours_xy[:, 0] > 16).mean() < 0.55  # mirrored about half the time
    np.testing.assert_allclose(ours.mean(0), theirs.mean(0), atol=12)  # the average view, pixel by pixel
    np.testing.assert_allclose(ours.std(0), theirs.std(0), atol=12)


def test_layer_is_the_identity_outside_training():
    images = np.repeat(marker_image()[None].astype(np.float32), 2, 0)
    layer = RandomCourseAugmentation(seed=1)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(images, training=False)), images)
    views = keras.ops.convert_to_numpy(layer(images, training=True))
    assert not np.array_equal(views[0], views[1])  # each image its own draw


def test_cached_views_are_reproducible_per_image():
    image = marker_image()
    rngs = lambda: [view_rng(1, v, "ab" * 32) for v in (1, 2, 1)]  # noqa: E731
    first, again = augmented_views(np.stack([image] * 3), rngs()), augmented_views(np.stack([image] * 3), rngs())
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first[0], first[2])  # same seed, view and image: the same view
    assert not np.array_equal(first[0], first[1])

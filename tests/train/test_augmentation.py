"""The augmentation on the accelerator matches the one it replaced: the course's shear/zoom/flip in Pillow; the
course's cached views are bit for bit those cached before `wide` existed; `wide` varies what it says, within range,
the same for the same seed."""

import hashlib
from dataclasses import replace

import keras
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from train.augmentation import (
    AUGMENTATIONS,
    COURSE,
    WIDE,
    RandomCourseAugmentation,
    augmented_views,
    random_parameters,
    transform,
)
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


# sha256 of the course's views below as the code made them before --augmentation existed (TensorFlow backend)
COURSE_VIEWS_BEFORE = "d15b0bea2ac951444ebee1c51efe48b8905cff1c65da461c63a8bf8dabedd98c"


def numpy_uniform(rng: np.random.Generator):
    return lambda low, high, n: rng.uniform(low, high, n)


def test_course_views_are_bit_for_bit_those_cached_before_the_choice():
    """So the activations an existing cache holds for the course's views are still the right ones."""
    images = np.random.default_rng(7).integers(0, 256, (3, 40, 40, 3), dtype=np.uint8)
    views = augmented_views(images, [view_rng(1, v, "ab" * 32) for v in (1, 2, 3)], COURSE)
    assert views.dtype == np.float32 and hashlib.sha256(views.tobytes()).hexdigest() == COURSE_VIEWS_BEFORE


def test_course_draws_the_courses_four_parameters_and_nothing_else():
    rng, again = np.random.default_rng(5), np.random.default_rng(5)
    drawn = random_parameters(COURSE, numpy_uniform(rng), 3)
    assert list(drawn) == ["shear", "zoom_x", "zoom_y", "flip"]
    expected = [again.uniform(-10, 10, 3), again.uniform(0.9, 1.1, 3), again.uniform(0.9, 1.1, 3)]
    for name, values in zip(["shear", "zoom_x", "zoom_y"], expected, strict=True):
        np.testing.assert_array_equal(drawn[name], values)
    np.testing.assert_array_equal(drawn["flip"], np.sign(again.uniform(-1, 1, 3)))
    assert rng.random() == again.random()  # the same draws consumed: nothing more


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    view=st.integers(1, 8),
    size=st.integers(8, 48),
    name=st.sampled_from(sorted(AUGMENTATIONS)),
    shade=st.integers(0, 255),
)
def test_any_view_is_the_images_shape_in_range_and_the_same_for_the_same_seed(seed, view, size, name, shade):
    augmentation = AUGMENTATIONS[name]
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (2, size, size, 3), dtype=np.uint8)
    images[1] = shade  # a flat image, of any grey from black to white
    digests = [f"{int(rng.integers(0, 2**62)):064x}" for _ in images]
    rngs = lambda: [view_rng(seed, view, d) for d in digests]  # noqa: E731
    views = augmented_views(images, rngs(), augmentation)
    assert views.shape == images.shape and views.dtype == np.float32
    assert np.isfinite(views).all() and views.min() >= 0 and views.max() <= 255
    np.testing.assert_array_equal(views, augmented_views(images, rngs(), augmentation))
    drawn = random_parameters(augmentation, numpy_uniform(np.random.default_rng(seed)), 64)
    for parameter, (low, high) in augmentation.ranges().items():
        assert low <= drawn[parameter].min() and drawn[parameter].max() <= high, parameter
    if name == COURSE.name:  # the course moves pixels only: a flat image stays as it was (to float32 rounding)
        np.testing.assert_allclose(views[1], images[1], atol=1e-3)


def views_of(image: np.ndarray, augmentation, n=400) -> np.ndarray:
    return augmented_views(np.stack([image] * n), [view_rng(1, v, "cd" * 32) for v in range(n)], augmentation)


def test_wide_views_vary_the_items_size_place_and_colour_more_than_the_courses():
    geometry = replace(WIDE, brightness=0, contrast=0, saturation=0, blur=0)  # the marker's ground stays 20
    course, wide = views_of(marker_image(), COURSE), views_of(marker_image(), geometry)
    area = lambda views: ((views[..., 0] - 20) / 215).sum(axis=(1, 2))  # noqa: E731
    assert np.percentile(area(wide), 5) < area(course).min() and np.percentile(area(wide), 95) > area(course).max()
    assert centroids(wide)[:, 1].std() > 3 * centroids(course)[:, 1].std()  # shifted up and down, not only zoomed
    flat = np.full((32, 32, 3), (180, 90, 40), np.uint8)
    course_flat, wide_flat = views_of(flat, COURSE, 100), views_of(flat, WIDE, 100)
    np.testing.assert_allclose(course_flat, np.broadcast_to(flat, course_flat.shape), atol=1e-3)  # nor a colour
    means = wide_flat.mean(axis=(1, 2))  # each view's colour: brighter, darker, greyer, more saturated
    assert means[:, 0].min() < 150 and means[:, 0].max() > 210
    spread = means.max(1) - means.min(1)  # saturation: red minus blue, 140 in the photo
    assert spread.min() < 110 and spread.max() > 170


def test_the_wide_layer_draws_fresh_views_in_range_and_is_the_identity_outside_training():
    images = np.repeat(marker_image()[None].astype(np.float32), 8, 0)
    layer = RandomCourseAugmentation(seed=2, augmentation=WIDE.name)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(images, training=False)), images)
    first, second = (keras.ops.convert_to_numpy(layer(images, training=True)) for _ in range(2))
    assert first.shape == images.shape and 0 <= first.min() and first.max() <= 255
    assert len({v.tobytes() for v in first}) == 8 and not np.array_equal(first, second)
    assert RandomCourseAugmentation.from_config(layer.get_config()).augmentation == WIDE.name

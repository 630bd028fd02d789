"""The course's augmentation, as one affine transform that runs on any Keras backend.

The course trains with ImageDataGenerator(shear_range=10, zoom_range=0.1,
horizontal_flip=True): a shear of up to 10 degrees, a zoom of 0.9-1.1 drawn
separately for each axis, a horizontal flip half the time, and pixels from
outside the image repeating the nearest edge (fill_mode="nearest"). Here
that is one matrix per image, applied with keras.ops.image.affine_transform,
so the same code makes

- the fixed views the feature cache stores (drawn with numpy, one seeded
  generator per image, so a view is the same on every backend and run), and
- a fresh view of every image every epoch on the accelerator
  (RandomCourseAugmentation, drawn with keras.random inside the model).
"""

import math

import keras
import numpy as np
from keras import ops

SHEAR_DEGREES = 10  # shear angle drawn from [-10, 10] degrees
ZOOM_RANGE = 0.1  # zoom per axis drawn from [0.9, 1.1]


def random_parameters(uniform, n):
    """(shear degrees, zoom x, zoom y, flip ±1) for n images; uniform(low, high, n) draws from numpy or keras."""
    shear = uniform(-SHEAR_DEGREES, SHEAR_DEGREES, n)
    zoom_x = uniform(1 - ZOOM_RANGE, 1 + ZOOM_RANGE, n)
    zoom_y = uniform(1 - ZOOM_RANGE, 1 + ZOOM_RANGE, n)
    flip = ops.sign(uniform(-1.0, 1.0, n))  # -1 (mirror) or 1, with equal odds
    return shear, zoom_x, zoom_y, flip


def affine_transforms(size: int, shear, zoom_x, zoom_y, flip):
    """Rows [a0 a1 a2 b0 b1 b2 0 0] mapping each output pixel (x, y) to the input pixel it samples.

    As ImageDataGenerator does, around the image's centre: mirror, zoom, then
    shear along x (x_in depends on y_out).
    """
    shear = ops.convert_to_tensor(shear, "float32") * (math.pi / 180)
    zoom_x, zoom_y, flip = (ops.convert_to_tensor(v, "float32") for v in (zoom_x, zoom_y, flip))
    centre = (size - 1) / 2
    a0, a1 = flip * zoom_x, -ops.sin(shear) * zoom_y
    b1 = ops.cos(shear) * zoom_y
    zero = ops.zeros_like(a0)
    return ops.stack([a0, a1, centre - (a0 + a1) * centre, zero, b1, centre - b1 * centre, zero, zero], axis=1)


def transform(images, parameters):
    """Apply the parameters' affine transforms to a batch of HxWx3 images (float32 out)."""
    images = ops.cast(images, "float32")
    return ops.image.affine_transform(
        images, affine_transforms(images.shape[1], *parameters), interpolation="bilinear", fill_mode="nearest"
    )


def augmented_views(images: np.ndarray, rngs: list[np.random.Generator]) -> np.ndarray:
    """One fixed view per image, image k drawn with rngs[k]: the feature cache's augmented views."""
    per_image = [random_parameters(lambda low, high, n, rng=rng: rng.uniform(low, high, n), 1) for rng in rngs]
    parameters = [np.concatenate([ops.convert_to_numpy(p[k]) for p in per_image]) for k in range(4)]
    return ops.convert_to_numpy(transform(images, parameters))


class RandomCourseAugmentation(keras.layers.Layer):
    """A fresh random view of every image in every training step, on the accelerator; identity otherwise."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training:
            return images
        parameters = random_parameters(
            lambda low, high, n: keras.random.uniform((n,), low, high, seed=self.seed_generator), ops.shape(images)[0]
        )
        return transform(images, parameters)

    def compute_output_shape(self, input_shape):
        return input_shape

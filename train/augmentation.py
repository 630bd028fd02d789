"""The training views' augmentation, as one affine transform (and, for `wide`, a colour jitter) on any Keras backend.

`course` is the course's: ImageDataGenerator(shear_range=10, zoom_range=0.1,
horizontal_flip=True): a shear of up to 10 degrees, a zoom of 0.9-1.1 drawn
separately for each axis, a horizontal flip half the time, and pixels from
outside the image repeating the nearest edge (fill_mode="nearest").

`wide` adds what the course's photos lack and a shop's have (docs/training.md): the item smaller or larger in
the frame (a common scale of 0.75-1.25 on top of the course's zoom: children's clothes fill less of a photo),
off centre (a shift of up to a tenth of the side), other light and cameras (brightness, contrast and
saturation jitter; a little blur).

Each is one matrix per image, applied with keras.ops.image.affine_transform, then the colour jitter in
keras.ops, so the same code makes

- the fixed views the feature cache stores (drawn with numpy, one seeded
  generator per image, so a view is the same on every backend and run), and
- a fresh view of every image every epoch on the accelerator
  (RandomCourseAugmentation, drawn with keras.random inside the model).
"""

import math
from dataclasses import dataclass

import keras
import numpy as np
from keras import ops


@dataclass(frozen=True)
class Augmentation:
    """What a view may change, each drawn uniformly per image; 0 (or a scale of 1-1) leaves it as it is."""

    name: str
    shear_degrees: float = 10  # shear angle drawn from [-10, 10] degrees
    zoom: float = 0.1  # zoom per axis drawn from [0.9, 1.1]
    scale: tuple[float, float] = (1.0, 1.0)  # a zoom of both axes together (> 1: the item smaller in the frame)
    shift: float = 0.0  # a translation of up to this fraction of the side, each axis
    brightness: float = 0.0  # pixels times 1 ± this
    contrast: float = 0.0  # the distance from the image's mean grey times 1 ± this
    saturation: float = 0.0  # the distance from each pixel's grey times 1 ± this
    blur: float = 0.0  # up to this share of a 3x3 mean blended in

    def ranges(self) -> dict[str, tuple[float, float]]:
        """What is drawn beyond the course's four, in the order drawn: only what this augmentation varies."""
        ranges = {
            "scale": self.scale,
            "shift_x": (-self.shift, self.shift),
            "shift_y": (-self.shift, self.shift),
            "brightness": (1 - self.brightness, 1 + self.brightness),
            "contrast": (1 - self.contrast, 1 + self.contrast),
            "saturation": (1 - self.saturation, 1 + self.saturation),
            "blur": (0.0, self.blur),
        }
        return {name: (low, high) for name, (low, high) in ranges.items() if low != high}


COURSE = Augmentation("course")
WIDE = Augmentation("wide", scale=(0.75, 1.25), shift=0.1, brightness=0.25, contrast=0.25, saturation=0.3, blur=0.6)
AUGMENTATIONS = {a.name: a for a in (COURSE, WIDE)}
COLOUR = ("brightness", "contrast", "saturation", "blur")  # applied after the affine transform


def random_parameters(augmentation: Augmentation, uniform, n) -> dict:
    """Each image's parameters, by name, for n images; uniform(low, high, n) draws from numpy or keras.

    The course's four first, in the course's order (so `course` draws exactly what it always did), then what
    the augmentation adds (Augmentation.ranges)."""
    parameters = {
        "shear": uniform(-augmentation.shear_degrees, augmentation.shear_degrees, n),
        "zoom_x": uniform(1 - augmentation.zoom, 1 + augmentation.zoom, n),
        "zoom_y": uniform(1 - augmentation.zoom, 1 + augmentation.zoom, n),
        "flip": ops.sign(uniform(-1.0, 1.0, n)),  # -1 (mirror) or 1, with equal odds
    }
    for name, (low, high) in augmentation.ranges().items():
        parameters[name] = uniform(low, high, n)
    return parameters


def affine_transforms(size: int, shear, zoom_x, zoom_y, flip, scale=None, shift_x=None, shift_y=None, **_colour):
    """Rows [a0 a1 a2 b0 b1 b2 0 0] mapping each output pixel (x, y) to the input pixel it samples.

    As ImageDataGenerator does, around the image's centre: mirror, zoom, then
    shear along x (x_in depends on y_out); then (wide) the common scale and the shift, in fractions of the side.
    """
    shear = ops.convert_to_tensor(shear, "float32") * (math.pi / 180)
    zoom_x, zoom_y, flip = (ops.convert_to_tensor(v, "float32") for v in (zoom_x, zoom_y, flip))
    if scale is not None:
        scale = ops.convert_to_tensor(scale, "float32")
        zoom_x, zoom_y = zoom_x * scale, zoom_y * scale
    centre = (size - 1) / 2
    a0, a1 = flip * zoom_x, -ops.sin(shear) * zoom_y
    b1 = ops.cos(shear) * zoom_y
    a2, b2 = centre - (a0 + a1) * centre, centre - b1 * centre
    if shift_x is not None:
        a2 = a2 + ops.convert_to_tensor(shift_x, "float32") * size
    if shift_y is not None:
        b2 = b2 + ops.convert_to_tensor(shift_y, "float32") * size
    zero = ops.zeros_like(a0)
    return ops.stack([a0, a1, a2, zero, b1, b2, zero, zero], axis=1)


def per_image(value):
    """A per-image parameter shaped to scale a batch of HxWxC images."""
    return ops.reshape(ops.convert_to_tensor(value, "float32"), (-1, 1, 1, 1))


def jitter_colour(images, brightness=None, contrast=None, saturation=None, blur=None):
    """The colour parameters drawn (any may be absent) applied to float32 images in [0, 255], clipped to it."""
    if blur is not None:
        blurred = ops.average_pool(images, 3, strides=1, padding="same")
        images = images + per_image(blur) * (blurred - images)
    if brightness is not None:
        images = images * per_image(brightness)
    grey = ops.mean(images, axis=-1, keepdims=True)
    if saturation is not None:
        images = grey + per_image(saturation) * (images - grey)
    if contrast is not None:
        mean = ops.mean(grey, axis=(1, 2, 3), keepdims=True)
        images = mean + per_image(contrast) * (images - mean)
    return ops.clip(images, 0.0, 255.0)


def transform(images, parameters: dict):
    """Apply the parameters (random_parameters') to a batch of HxWx3 images (float32 out)."""
    images = ops.cast(images, "float32")
    images = ops.image.affine_transform(
        images, affine_transforms(images.shape[1], **parameters), interpolation="bilinear", fill_mode="nearest"
    )
    colour = {name: parameters[name] for name in COLOUR if name in parameters}
    return jitter_colour(images, **colour) if colour else images  # the course's views: the transform alone


def augmented_views(
    images: np.ndarray, rngs: list[np.random.Generator], augmentation: Augmentation = COURSE
) -> np.ndarray:
    """One fixed view per image, image k drawn with rngs[k]: the feature cache's augmented views."""
    drawn = [
        random_parameters(augmentation, lambda low, high, n, rng=rng: rng.uniform(low, high, n), 1) for rng in rngs
    ]
    parameters = {name: np.concatenate([ops.convert_to_numpy(d[name]) for d in drawn]) for name in drawn[0]}
    return ops.convert_to_numpy(transform(images, parameters))


class RandomCourseAugmentation(keras.layers.Layer):
    """A fresh random view of every image in every training step, on the accelerator; identity otherwise."""

    def __init__(self, seed=None, augmentation: str = COURSE.name, **kwargs):
        super().__init__(**kwargs)
        self.seed, self.augmentation = seed, augmentation
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training:
            return images
        parameters = random_parameters(
            AUGMENTATIONS[self.augmentation],
            lambda low, high, n: keras.random.uniform((n,), low, high, seed=self.seed_generator),
            ops.shape(images)[0],
        )
        return transform(images, parameters)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "seed": self.seed, "augmentation": self.augmentation}

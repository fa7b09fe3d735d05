"""The paper's data augmentation (Section 4.1) and test-time crops, as pure TensorFlow functions.

Images here are float32 on the 0..255 scale (mean-subtracted or not: every function is linear
in the pixels or a pure re-indexing, so the order relative to mean subtraction only matters for
cropping, where the matching region of the mean image is taken).
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class AugmentConstants:
    """The paper's augmentation constants (Sections 2 and 4.1), in one place."""

    # Section 2: images are down-sampled to 256x256 (shorter side to 256, central crop).
    image_size: int = 256
    # Section 4.1: alpha_i ~ N(0, 0.1), drawn once per image each time it is used (per epoch).
    pca_lighting_std: float = 0.1
    # Section 4.1's lighting formula is not scale-free: lambda_i is a variance, so alpha*lambda
    # grows with the square of the pixel scale while the image grows linearly. It is applied as
    # in the common reproductions (fb.resnet.torch, MXNet's pca_noise): on the 0..1 scale, where
    # ImageNet's largest lambda is ~0.22, giving shifts of a few pixel levels. With statistics on
    # the 0..255 scale that is 255 * P (alpha * lambda / 255^2) = P (alpha * lambda) / 255.
    pca_lighting_pixel_scale: float = 255.0
    # Section 4.1: horizontal reflections, i.e. each image is flipped with probability 1/2.
    flip_probability: float = 0.5


PAPER = AugmentConstants()


def crop(image: tf.Tensor, offset_y: tf.Tensor, offset_x: tf.Tensor, size: int) -> tf.Tensor:
    """The size x size window of an [H, W, C] image with top-left corner (offset_y, offset_x)."""
    return tf.slice(image, tf.stack([offset_y, offset_x, 0]), [size, size, -1])


def random_crop_offsets(
    seed: tf.Tensor, image_size: int, size: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """Uniform top-left corner of a size-crop: all (image_size - size + 1)^2 are possible."""
    if size > image_size:
        raise ValueError(f"Crop size {size} exceeds the stored image size {image_size}; "
                         "use an input size <= image_size.")
    offsets = tf.random.stateless_uniform(
        [2], seed=seed, minval=0, maxval=image_size - size + 1, dtype=tf.int32
    )
    return offsets[0], offsets[1]


def random_flip(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Mirrors an [H, W, C] image left-right with probability PAPER.flip_probability."""
    flip = tf.random.stateless_uniform([], seed=seed) < PAPER.flip_probability
    return tf.cond(flip, lambda: tf.reverse(image, axis=[1]), lambda: image)


def pca_lighting_alpha(seed: tf.Tensor, std: float = PAPER.pca_lighting_std) -> tf.Tensor:
    """The three alpha_i ~ N(0, std) of Section 4.1."""
    return tf.random.stateless_normal([3], seed=seed, stddev=std)


def pca_lighting(
    image: tf.Tensor, alpha: tf.Tensor, eigvals: tf.Tensor, eigvecs: tf.Tensor
) -> tf.Tensor:
    """Adds [p1 p2 p3][a1*l1 a2*l2 a3*l3]^T to every RGB pixel (Section 4.1).

    `eigvecs` holds the eigenvectors as columns; eigvals and the image are on the 0..255 scale,
    and the formula is applied on the 0..1 scale (see AugmentConstants.pca_lighting_pixel_scale).
    """
    scaled = alpha * tf.cast(eigvals, tf.float32) / PAPER.pca_lighting_pixel_scale
    return image + tf.linalg.matvec(tf.cast(eigvecs, tf.float32), scaled)


def center_crop(image: tf.Tensor, size: int) -> tf.Tensor:
    """The central size x size window (offset rounded down) of an [H, W, C] image."""
    h, w = image.shape[0], image.shape[1]
    return crop(image, tf.constant((h - size) // 2), tf.constant((w - size) // 2), size)


TEN_CROP_ORDER = (
    "top_left", "top_right", "bottom_left", "bottom_right", "center",
    "top_left_mirror", "top_right_mirror", "bottom_left_mirror", "bottom_right_mirror",
    "center_mirror",
)


def ten_crop(image: tf.Tensor, size: int) -> tf.Tensor:
    """The ten test views of Section 4.1 as [10, size, size, C], in TEN_CROP_ORDER.

    Views 0-4 are the four corner patches and the center patch; views 5-9 are the same patches
    mirrored left-right.
    """
    h, w = image.shape[0], image.shape[1]
    if size > h or size > w:
        raise ValueError(f"Crop size {size} exceeds the image size {h}x{w}.")
    corners = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size),
               ((h - size) // 2, (w - size) // 2)]
    views = tf.stack([image[y:y + size, x:x + size] for y, x in corners])
    return tf.concat([views, tf.reverse(views, axis=[2])], axis=0)

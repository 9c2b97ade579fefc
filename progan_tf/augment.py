"""Differentiable augmentation of everything D sees (DiffAugment: Zhao et al., NeurIPS 2020).

With few training images D memorises them and G's samples stop improving. Augmenting every
image D sees — reals, fakes and the gradient penalty's interpolates, in the D and the G step
alike — with transforms that gradients pass through keeps D from memorising without leaking
the transforms into G's samples (the transforms never touch G's output outside D). Ops, as in
DiffAugment's reference code, images [N, H, W, C] in [-1, 1]:

- `color`: brightness + U(-0.5, 0.5); saturation: deviation from the pixel's channel mean
  x U(0, 2); contrast: deviation from the image mean x U(0.5, 1.5).
- `translation`: an integer shift of up to 1/8 of the size in x and y, zero (grey) filled.
- `cutout`: a square of half the size at a random place set to zero (grey).

Each op applies to each image with probability `probability` (1 = DiffAugment; ADA tunes
it). Randomness is stateless, from a seed [2]: the same seed gives the same augmentation.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from progan_tf.options import AUGMENT_OPS as OPS  # noqa: F401 - the op names, re-exported

TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def _uniform(shape, seed, minval=0.0, maxval=1.0, dtype=tf.float32):
    # Philox named explicitly: "auto" may pick another algorithm under XLA than eagerly.
    return tf.random.stateless_uniform(
        shape, seed, minval=minval, maxval=maxval, dtype=dtype, alg="philox"
    )


def _split(seed, num):
    """`num` new seeds [num, 2] from one, the same eagerly and under XLA."""
    return tf.random.stateless_uniform(
        [num, 2], seed, minval=None, maxval=None, dtype=tf.int64, alg="philox"
    )


def color(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Random brightness, saturation and contrast, per image."""
    n = tf.shape(images)[0]
    seeds = _split(seed, 3)
    dtype = images.dtype
    x = images + tf.cast(_uniform([n, 1, 1, 1], seeds[0]) - 0.5, dtype)
    mean = tf.reduce_mean(x, axis=3, keepdims=True)
    x = (x - mean) * tf.cast(_uniform([n, 1, 1, 1], seeds[1]) * 2.0, dtype) + mean
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    return (x - mean) * tf.cast(_uniform([n, 1, 1, 1], seeds[2]) + 0.5, dtype) + mean


def translation(images: tf.Tensor, seed: tf.Tensor, ratio: float = TRANSLATION_RATIO) -> tf.Tensor:
    """Shifts each image by whole pixels, up to `ratio` of its size in x and y, filling zeros."""
    n, size = tf.shape(images)[0], images.shape[1]
    shift = max(int(size * ratio + 0.5), 1)
    seeds = _split(seed, 2)
    dy = _uniform([n, 1], seeds[0], -shift, shift + 1, tf.int32)
    dx = _uniform([n, 1], seeds[1], -shift, shift + 1, tf.int32)
    padded = tf.pad(images, [[0, 0], [shift, shift], [shift, shift], [0, 0]])
    base = tf.range(size, dtype=tf.int32)[None, :] + shift
    rows = tf.gather(padded, base - dy, axis=1, batch_dims=1)  # [N, H, W + 2 shift, C]
    return tf.gather(rows, base - dx, axis=2, batch_dims=1)  # [N, H, W, C]


def cutout(images: tf.Tensor, seed: tf.Tensor, ratio: float = CUTOUT_RATIO) -> tf.Tensor:
    """Sets a square of `ratio` times the size, at a random place in each image, to zero."""
    n, size = tf.shape(images)[0], images.shape[1]
    half = int(size * ratio + 0.5) // 2
    seeds = _split(seed, 2)
    cy = _uniform([n, 1, 1], seeds[0], 0, size + 1 - (2 * half) % 2, tf.int32)
    cx = _uniform([n, 1, 1], seeds[1], 0, size + 1 - (2 * half) % 2, tf.int32)
    grid = tf.range(size, dtype=tf.int32)
    inside_y = tf.logical_and(grid[None, :, None] >= cy - half, grid[None, :, None] < cy + half)
    inside_x = tf.logical_and(grid[None, None, :] >= cx - half, grid[None, None, :] < cx + half)
    keep = tf.cast(tf.logical_not(tf.logical_and(inside_y, inside_x)), images.dtype)
    return images * keep[..., None]


_FUNCTIONS = {"color": color, "translation": translation, "cutout": cutout}


def augment(
    images: tf.Tensor, ops: Sequence[str], seed: tf.Tensor, probability: tf.Tensor | float = 1.0
) -> tf.Tensor:
    """`images` [N, H, W, C] through each of `ops` in order; each op reaches each image with
    probability `probability`. `seed`: int [2]; the same seed, the same result."""
    if not ops:
        return images
    seeds = _split(tf.cast(seed, tf.int64), 2 * len(ops))
    n = tf.shape(images)[0]
    for i, name in enumerate(ops):
        augmented = _FUNCTIONS[name](images, seeds[2 * i])
        if isinstance(probability, (int, float)) and probability >= 1.0:
            images = augmented
        else:
            chosen = _uniform([n, 1, 1, 1], seeds[2 * i + 1]) < tf.cast(probability, tf.float32)
            images = tf.where(chosen, augmented, images)
    return images

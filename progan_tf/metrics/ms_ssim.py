"""Multi-scale SSIM of consecutive pairs of generated images (reference §6): lower = more varied.

The reference parameters: an 11x11 Gaussian window (sigma 1.5), k1 0.01, k2 0.03, max value
255, 5 scales weighted [0.0448, 0.2856, 0.3001, 0.2363, 0.1333], 2x2 box downsampling
between scales, SSIM and contrast-structure averaged per image.

Small images. `tf.image.ssim_multiscale` needs >= 176 px with these settings. Like the
reference implementation, the window shrinks to the image at coarse scales: size
min(11, height, width) and sigma 1.5 * size / 11. Scales stop at 2x2 pixels: images below
32 px use the first log2(size) scales and weights only (16 px: 4 scales, 8 px: 3, 4 px: 2),
so their values are comparable between runs at the same resolution, not across resolutions.
Negative contrast-structure terms are clipped at 0 before the fractional powers.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def num_scales(size: int) -> int:
    if size < 4:
        raise ValueError(f"MS-SSIM needs images of at least 4x4; got {size}x{size}")
    return min(len(WEIGHTS), int(np.log2(size)))


def gaussian_window(size: int, sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian of `size` taps (the 2-D window is its outer product)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x**2) / (2.0 * sigma**2))
    return (g / g.sum()).astype(np.float32)


def _filter(images: tf.Tensor, window: np.ndarray) -> tf.Tensor:
    """'Valid' separable filtering of every channel of NHWC images."""
    channels = images.shape[-1]
    size = len(window)
    rows = tf.tile(tf.reshape(window, [size, 1, 1, 1]), [1, 1, channels, 1])
    cols = tf.tile(tf.reshape(window, [1, size, 1, 1]), [1, 1, channels, 1])
    out = tf.nn.depthwise_conv2d(images, rows, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(out, cols, [1, 1, 1, 1], "VALID")


def ssim_and_cs(
    a: tf.Tensor,
    b: tf.Tensor,
    max_val: float = 255.0,
    filter_size: int = 11,
    filter_sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Per-image SSIM and contrast-structure at one scale, the window shrunk to the image."""
    size = min(filter_size, a.shape[1], a.shape[2])
    window = gaussian_window(size, size * filter_sigma / filter_size)
    mu_a, mu_b = _filter(a, window), _filter(b, window)
    var_a = _filter(a * a, window) - mu_a * mu_a
    var_b = _filter(b * b, window) - mu_b * mu_b
    cov = _filter(a * b, window) - mu_a * mu_b
    c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2
    cs_map = (2.0 * cov + c2) / (var_a + var_b + c2)
    ssim_map = (2.0 * mu_a * mu_b + c1) / (mu_a * mu_a + mu_b * mu_b + c1) * cs_map
    return tf.reduce_mean(ssim_map, axis=[1, 2, 3]), tf.reduce_mean(cs_map, axis=[1, 2, 3])


def _box_downsample(images: tf.Tensor) -> tf.Tensor:
    return tf.nn.avg_pool2d(images, 2, 2, "VALID")


@tf.function
def ms_ssim(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """MS-SSIM of each pair (a[i], b[i]); uint8 or float images in [0, 255], NHWC."""
    a, b = tf.cast(a, tf.float32), tf.cast(b, tf.float32)
    scales = num_scales(min(a.shape[1], a.shape[2]))
    weights = WEIGHTS[:scales]
    value = tf.ones(tf.shape(a)[:1])
    for i, weight in enumerate(weights):
        ssim, cs = ssim_and_cs(a, b)
        if i == scales - 1:
            value *= tf.maximum(ssim, 0.0) ** weight
        else:
            value *= tf.maximum(cs, 0.0) ** weight
            a, b = _box_downsample(a), _box_downsample(b)
    return value


def ms_ssim_consecutive_pairs(batches) -> float:
    """Mean MS-SSIM over pairs (0, 1), (2, 3), ... of each uint8 batch (reference: 10k pairs)."""
    values = []
    for batch in batches:
        pairs = len(batch) // 2
        if pairs:
            values.append(ms_ssim(batch[0 : 2 * pairs : 2], batch[1 : 2 * pairs : 2]).numpy())
    if not values:
        raise ValueError("MS-SSIM needs at least two images")
    return float(np.mean(np.concatenate(values)))

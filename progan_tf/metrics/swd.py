"""Sliced Wasserstein distance between two image sets, the paper's own metric (reference §6).

For every level of a Laplacian pyramid (full resolution down to 16x16), 7x7 patches at
random centres give 147-D descriptors (7 * 7 * 3); each set's descriptors are normalised per
colour channel; the distance is the mean |sort(proj_a) - sort(proj_b)| over 4 x 128 random
unit directions, reported x 1e3 per level and averaged. Images are uint8 NHWC, any channel
count. Vectorised numpy; descriptors are extracted batch by batch, so sets of 16k images fit.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

_BINOMIAL = np.array([1.0, 4.0, 6.0, 4.0, 1.0], np.float32) / 16.0  # 5x5 filter = outer(this, this)
MIN_RESOLUTION = 16  # coarsest pyramid level
PATCH_SIZE = 7
PATCHES_PER_IMAGE = 128
DIR_REPEATS = 4
DIRS_PER_REPEAT = 128


def _blur(images: np.ndarray, gain: float = 1.0) -> np.ndarray:
    """Separable 5x5 binomial filter on NHWC float32, mirror padding (no edge repeat)."""
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
    k = _BINOMIAL * np.float32(np.sqrt(gain))
    h = sum(k[i] * padded[:, i : i + images.shape[1]] for i in range(5))
    return sum(k[i] * h[:, :, i : i + images.shape[2]] for i in range(5)).astype(np.float32)


def pyramid_down(images: np.ndarray) -> np.ndarray:
    """Blur then keep every other pixel (as cv2.pyrDown)."""
    return _blur(images)[:, ::2, ::2]


def pyramid_up(images: np.ndarray) -> np.ndarray:
    """Zero-insertion upsampling, then the blur with gain 4 (as cv2.pyrUp)."""
    n, h, w, c = images.shape
    up = np.zeros((n, 2 * h, 2 * w, c), np.float32)
    up[:, ::2, ::2] = images
    return _blur(up, gain=4.0)


def num_levels(resolution: int) -> int:
    """Pyramid levels from `resolution` down to 16 (one level for 8x8 images)."""
    if resolution < 8:
        raise ValueError(
            f"SWD needs images of at least 8x8 (7x7 patches); got {resolution}x{resolution}"
        )
    return (
        max(1, int(np.log2(resolution // MIN_RESOLUTION)) + 1)
        if resolution >= MIN_RESOLUTION
        else 1
    )


def laplacian_pyramid(images: np.ndarray, levels: int) -> list[np.ndarray]:
    """Band-pass levels, finest first; the coarsest level keeps the low-pass residual."""
    pyramid = [images.astype(np.float32)]
    for _ in range(1, levels):
        pyramid.append(pyramid_down(pyramid[-1]))
        pyramid[-2] = pyramid[-2] - pyramid_up(pyramid[-1])
    return pyramid


def patch_centres(
    rng: np.random.Generator, num_images: int, size: int, per_image: int = PATCHES_PER_IMAGE
) -> np.ndarray:
    """[num_images * per_image, 2] (y, x) centres, uniform in [3, size - 3)."""
    half = PATCH_SIZE // 2
    return rng.integers(half, size - half, size=(num_images * per_image, 2))


def extract_patches(
    level: np.ndarray, centres: np.ndarray, per_image: int = PATCHES_PER_IMAGE
) -> np.ndarray:
    """[len(centres), 7, 7, C] patches; patch i comes from image i // per_image."""
    half = PATCH_SIZE // 2
    offsets = np.arange(-half, half + 1)
    image = np.arange(len(centres)) // per_image
    ys = centres[:, 0, None, None] + offsets[None, :, None]
    xs = centres[:, 1, None, None] + offsets[None, None, :]
    return level[image[:, None, None], ys, xs]


def descriptors(
    batches: Iterable[np.ndarray], resolution: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Per pyramid level, the un-normalised descriptors [num_patches, 7, 7, 3] of all batches;
    grayscale images are tiled to 3 channels first (147-D descriptors, as the reference's)."""
    levels = num_levels(resolution)
    out: list[list[np.ndarray]] = [[] for _ in range(levels)]
    for batch in batches:
        if batch.shape[-1] == 1:
            batch = np.repeat(batch, 3, axis=-1)
        if batch.shape[1:3] != (resolution, resolution):
            raise ValueError(
                f"SWD: expected {resolution}x{resolution} images, got {batch.shape[1:3]}"
            )
        for i, level in enumerate(laplacian_pyramid(batch, levels)):
            centres = patch_centres(rng, len(batch), level.shape[1])
            out[i].append(extract_patches(level, centres))
    return [np.concatenate(parts) for parts in out]


def normalize(desc: np.ndarray) -> np.ndarray:
    """Zero mean, unit std per colour channel over all patches; flattened to [N, 49 * C]."""
    desc = desc - desc.mean(axis=(0, 1, 2), keepdims=True)
    desc = desc / desc.std(axis=(0, 1, 2), keepdims=True)
    return desc.reshape(len(desc), -1)


def sliced_wasserstein(
    a: np.ndarray,
    b: np.ndarray,
    rng: np.random.Generator,
    repeats: int = DIR_REPEATS,
    dirs_per_repeat: int = DIRS_PER_REPEAT,
) -> float:
    """Mean over random unit directions of the 1-D Wasserstein-1 distance between projections."""
    if len(a) != len(b):
        raise ValueError(f"SWD: the sets must have as many descriptors ({len(a)} vs {len(b)})")
    results = []
    for _ in range(repeats):
        dirs = rng.standard_normal((a.shape[1], dirs_per_repeat)).astype(np.float32)
        dirs /= np.sqrt(np.sum(dirs**2, axis=0, keepdims=True))
        proj_a = np.sort(a @ dirs, axis=0)
        proj_b = np.sort(b @ dirs, axis=0)
        results.append(np.mean(np.abs(proj_a - proj_b)))
    return float(np.mean(results))


def swd(
    batches_a: Iterable[np.ndarray], batches_b: Iterable[np.ndarray], resolution: int, seed: int = 0
) -> dict[str, float]:
    """SWD x 1e3 per level (`swd{size}`) and the average (`swd_avg`) between two image sets."""
    rng = np.random.default_rng(seed)
    desc_a = descriptors(batches_a, resolution, rng)
    desc_b = descriptors(batches_b, resolution, rng)
    results = {}
    for i, (a, b) in enumerate(zip(desc_a, desc_b)):
        results[f"swd{resolution >> i}"] = 1e3 * sliced_wasserstein(normalize(a), normalize(b), rng)
    results["swd_avg"] = float(np.mean(list(results.values())))
    return results

"""Image grids, PNG and GIF files; every file is written atomically (temp file + rename)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

from progan_tf import files


def latents(num: int, latent_size: int, seed: int) -> np.ndarray:
    """Standard normal latents float32 [num, latent_size], the same for the same arguments."""
    return np.random.RandomState(seed).randn(num, latent_size).astype(np.float32)


def one_hot(classes: np.ndarray, num_labels: int) -> np.ndarray:
    """Integer classes [N] -> float32 one-hot [N, num_labels]."""
    return np.eye(num_labels, dtype=np.float32)[np.asarray(classes, dtype=np.int64)]


def class_rows(num: int, num_labels: int) -> tuple[np.ndarray | None, int | None]:
    """(classes, columns) for a grid of about `num` images with one row per class when
    conditional (`columns * num_labels` images); (None, None) when not."""
    if not num_labels:
        return None, None
    columns = max(1, math.ceil(num / num_labels))
    return np.repeat(np.arange(num_labels), columns), columns


def make_grid(
    images: np.ndarray, columns: int | None = None, upscale_to: int | None = None
) -> np.ndarray:
    """uint8 [N, H, W, C] -> one uint8 [rows * H, columns * W, C] contact sheet.

    `columns` defaults to a near-square layout; `upscale_to` enlarges tiles (nearest neighbour)
    so that grids of early, low-resolution stages line up with later ones.
    """
    images = np.asarray(images)
    n, h, w, c = images.shape
    if upscale_to and upscale_to > h:
        factor = upscale_to // h
        images = images.repeat(factor, axis=1).repeat(factor, axis=2)
        n, h, w, c = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = np.zeros((rows * h, columns * w, c), np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        grid[r * h : (r + 1) * h, col * w : (col + 1) * w] = image
    return grid


def _pil(image: np.ndarray) -> Image.Image:
    image = np.asarray(image, np.uint8)
    return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)


def _atomic_save(save, path: str | os.PathLike) -> None:
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    with files.atomic_output(path) as tmp:
        save(tmp)


def save_png(image: np.ndarray, path: str | os.PathLike) -> None:
    """Writes uint8 [H, W, C] (C = 1 or 3) as a PNG."""
    _atomic_save(lambda tmp: _pil(image).save(tmp, format="PNG"), path)


def save_gif(frames: Sequence[np.ndarray], path: str | os.PathLike, fps: float = 20.0) -> None:
    """Writes uint8 frames [H, W, C] as a looping animated GIF."""
    pil_frames = [_pil(f) for f in frames]
    duration = int(round(1000 / fps))
    _atomic_save(
        lambda tmp: pil_frames[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=pil_frames[1:],
            duration=duration,
            loop=0,
            disposal=1,
            optimize=False,
        ),
        path,
    )

"""Image grids, PNG and GIF files; every file is written atomically (temp file + rename)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image


def make_grid(images: np.ndarray, columns: int | None = None, upscale_to: int | None = None) -> np.ndarray:
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
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    try:
        save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_png(image: np.ndarray, path: str | os.PathLike) -> None:
    """Writes uint8 [H, W, C] (C = 1 or 3) as a PNG."""
    _atomic_save(lambda tmp: _pil(image).save(tmp, format="PNG"), path)


def save_gif(frames: Sequence[np.ndarray], path: str | os.PathLike, fps: float = 20.0) -> None:
    """Writes uint8 frames [H, W, C] as a looping animated GIF."""
    pil_frames = [_pil(f) for f in frames]
    duration = int(round(1000 / fps))
    _atomic_save(
        lambda tmp: pil_frames[0].save(
            tmp, format="GIF", save_all=True, append_images=pil_frames[1:], duration=duration, loop=0,
            disposal=1, optimize=False,
        ),
        path,
    )

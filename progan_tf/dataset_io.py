"""Making multi-resolution TFRecord datasets (reference §5): image conversion and the writer.

A dataset is a directory holding `dataset.json` and, for every level from 4x4 to the final
resolution, TFRecord shards of `tf.train.Example`s with the reference's features: `shape`
[C, H, W] (int64) and `data` (raw uint8 bytes, CHW), plus `label` (int64 class) when the
dataset has labels. Lower levels are 2x2 box filters of the unrounded float image of the
level above, rounded only when written. The directory is written under a temporary name and
renamed when complete, so an interrupted conversion never looks like a dataset.

Image decoding needs only Pillow and numpy, so it runs in worker processes that never import
TensorFlow; the writer imports TensorFlow when it is created.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from progan_tf import files

FORMAT = "progan_tf-1"
CROP_MODES = ("center", "pad", "none")


class ImageError(ValueError):
    """An input image that cannot be used (unreadable, truncated, not square with --crop=none)."""


def _to_mode(image: Image.Image, channels: int) -> Image.Image:
    """Any Pillow image -> 'L' or 'RGB'; transparency is composited on white."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        if image.mode != "F" and array.max() > 255:
            array = array / 257.0  # 16-bit -> 8-bit
        image = Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8))
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return image.convert("L" if channels == 1 else "RGB")


def _square(image: Image.Image, crop: str, name: str) -> Image.Image:
    w, h = image.size
    if w == h:
        return image
    if crop == "none":
        raise ImageError(f"not square ({w}x{h}); use --crop=center or --crop=pad")
    if crop == "center":
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        return image.crop((left, top, left + side, top + side))
    side = max(w, h)
    canvas = Image.new(image.mode, (side, side), 0)  # letterbox on black
    canvas.paste(image, ((side - w) // 2, (side - h) // 2))
    return canvas


# Plain raster formats Pillow decodes itself. Not EPS/PS (Ghostscript: an interpreter run on the
# file, without a time limit), not PDF, not formats that hand files to outside programs: a file
# of another kind is skipped by name, whatever its extension says.
RASTER_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF", "PPM", "TGA")  # JPEG covers MPO


def raster_extensions() -> set[str]:
    """File extensions (lower case, with the dot) of RASTER_FORMATS."""
    return {
        ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in RASTER_FORMATS
    }


def load_image(
    path: str | os.PathLike, resolution: int, channels: int, crop: str = "center"
) -> np.ndarray:
    """Reads, converts, squares and resizes one image file: uint8 [R, R, channels].

    Raises ImageError naming the file when it cannot be used.
    """
    try:
        with Image.open(path, formats=RASTER_FORMATS) as image:
            image = ImageOps.exif_transpose(image)
            image.load()
            image = _square(_to_mode(image, channels), crop, str(path))
    except ImageError as error:
        raise ImageError(f"{path}: {error}") from None
    except Exception as error:  # noqa: BLE001 - Pillow's decoders also raise struct.error, IndexError, EOFError...
        raise ImageError(f"{path}: {error or type(error).__name__}") from None
    if image.size != (resolution, resolution):
        image = image.resize((resolution, resolution), Image.Resampling.LANCZOS)
    array = np.asarray(image, dtype=np.uint8)
    return array.reshape(resolution, resolution, channels)


def image_size(path: str | os.PathLike, max_pixels: int | None = None) -> tuple[int, int]:
    """(width, height) from the file header, after EXIF rotation; raises ImageError. Over
    `max_pixels`, the size as stored: reading EXIF can decode the whole image (Pillow loads a
    PNG to find its eXIf chunk), which for a decompression bomb is the harm itself."""
    try:
        with Image.open(path, formats=RASTER_FORMATS) as image:
            w, h = image.size
            if max_pixels is not None and w * h > max_pixels:
                return w, h
            orientation = image.getexif().get(0x0112, 1)
    except Exception as error:  # noqa: BLE001 - any failure to read the header: the file is skipped, named
        raise ImageError(f"{path}: {error or type(error).__name__}") from None
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def box_downsample(image: np.ndarray) -> np.ndarray:
    """2x2 box filter of a float image [H, W, C] -> [H/2, W/2, C] (no rounding)."""
    h, w, c = image.shape
    return image.reshape(h // 2, 2, w // 2, 2, c).mean(axis=(1, 3))


def pyramid(image: np.ndarray) -> dict[int, np.ndarray]:
    """{resolution: uint8 [r, r, C]} for every level from the image's size down to 4x4."""
    levels, current = {}, image.astype(np.float64)
    while True:
        levels[current.shape[0]] = np.clip(np.rint(current), 0, 255).astype(np.uint8)
        if current.shape[0] == 4:
            return levels
        current = box_downsample(current)


def default_shards(num_images: int) -> int:
    """Shards per level: about 1,024 records each, at least 1 and at most 64."""
    return max(1, min(64, num_images // 1024))


class DatasetWriter:
    """Streams images into a new multi-resolution dataset directory.

    Use as a context manager: on success the temporary directory becomes `dest`; on an
    exception it is removed and `dest` is untouched.
    """

    def __init__(
        self,
        dest: str | os.PathLike,
        *,
        name: str,
        resolution: int,
        channels: int,
        expected_images: int,
        num_labels: int = 0,
        label_names: list[str] | None = None,
        shards: int | None = None,
        overwrite: bool = False,
        compression: str = "",
        source: str | os.PathLike | None = None,
    ):
        """`overwrite` replaces an existing `dest` only if this tool wrote it and it does not
        overlap `source` (check_replaceable)."""
        import tensorflow as tf  # noqa: PLC0415 - keeps worker processes free of TensorFlow

        if resolution < 4 or resolution & (resolution - 1):
            raise ValueError(f"resolution must be a power of two >= 4, got {resolution}")
        # A symlinked --dest: the dataset replaces the folder the link points to, which the
        # link then names again (the link itself is never moved or removed).
        self.dest = Path(os.path.realpath(dest)) if os.path.islink(dest) else Path(dest)
        recover_interrupted_replace(self.dest)
        if self.dest.exists() and not overwrite:
            raise FileExistsError(f"{self.dest} exists; choose another --dest or pass --overwrite")
        if self.dest.exists():
            check_replaceable(self.dest, source)
        self.tmp = self.dest.parent / f".{self.dest.name}.partial-{os.getpid()}"
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.mkdir(parents=True)
        self.meta = {
            "format": FORMAT,
            "name": name,
            "resolution": resolution,
            "channels": channels,
            "num_images": 0,
            "num_labels": num_labels,
            "label_names": label_names or [],
            "compression": compression,
            "skipped": [],
            "upscaled": [],
            "levels": {},
        }
        self._tf = tf
        self._expected = max(1, expected_images)
        self._shards = shards or default_shards(expected_images)
        self._levels = [2**k for k in range(2, int(math.log2(resolution)) + 1)]
        self._writers: dict[tuple[int, int], object] = {}
        self._options = tf.io.TFRecordOptions(compression_type=compression or None)

    def _writer(self, resolution: int, shard: int):
        key = (resolution, shard)
        if key not in self._writers:
            stage = int(math.log2(resolution))
            name = f"{self.meta['name']}-r{stage:02d}-{shard:05d}-of-{self._shards:05d}.tfrecords"
            self.meta["levels"].setdefault(str(resolution), []).append(name)
            self._writers[key] = self._tf.io.TFRecordWriter(str(self.tmp / name), self._options)
        return self._writers[key]

    def add(self, image: np.ndarray, label: int | None = None) -> None:
        """Adds one uint8 [R, R, C] image (and its class) to every level."""
        expected = (self.meta["resolution"],) * 2 + (self.meta["channels"],)
        if image.shape != expected:
            raise ValueError(f"image of shape {image.shape}, expected {expected}")
        shard = min(self.meta["num_images"] * self._shards // self._expected, self._shards - 1)
        train = self._tf.train
        for resolution, level in pyramid(image).items():
            chw = np.ascontiguousarray(level.transpose(2, 0, 1))
            feature = {
                "shape": train.Feature(int64_list=train.Int64List(value=chw.shape)),
                "data": train.Feature(bytes_list=train.BytesList(value=[chw.tobytes()])),
            }
            if label is not None:
                feature["label"] = train.Feature(int64_list=train.Int64List(value=[int(label)]))
            example = train.Example(features=train.Features(feature=feature))
            self._writer(resolution, shard).write(example.SerializeToString())
        self.meta["num_images"] += 1

    def skip(self, file: str, reason: str) -> None:
        self.meta["skipped"].append({"file": file, "reason": reason})

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        for writer in self._writers.values():
            writer.close()
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        if self.meta["num_images"] == 0:
            shutil.rmtree(self.tmp, ignore_errors=True)
            reasons = "; ".join(f"{s['file']}: {s['reason']}" for s in self.meta["skipped"][:5])
            raise ValueError(f"no valid image to write{' (' + reasons + ')' if reasons else ''}")
        for names in self.meta["levels"].values():
            names.sort()
        self.meta["levels"] = {str(r): self.meta["levels"][str(r)] for r in self._levels}
        (self.tmp / "dataset.json").write_text(json.dumps(self.meta, indent=2) + "\n")
        files.fsync_tree(self.tmp)  # every record and dataset.json on disk before the rename
        replace_dir(self.tmp, self.dest)


def check_replaceable(dest: Path, source: str | os.PathLike | None = None) -> None:
    """FileExistsError naming `dest` unless --overwrite may replace it: a dataset directory this
    tool wrote (its dataset.json, and no file that dataset.json does not list) that neither
    contains nor lies inside `source`. Anything else may be the user's own files."""
    refuse = (
        f"--dest={dest} exists and --overwrite replaces only a dataset directory written by "
        "dataset_tool"
    )
    if source is not None:
        dest_real, source_real = dest.resolve(), Path(source).resolve()
        if (
            dest_real == source_real
            or dest_real in source_real.parents
            or source_real in dest_real.parents
        ):
            raise FileExistsError(
                f"--dest={dest} overlaps --source={source}; choose a --dest outside the source "
                "(--overwrite never replaces the folder being converted)"
            )
    if not dest.is_dir():
        raise FileExistsError(f"{refuse}; it is not a directory")
    try:
        meta = json.loads((dest / "dataset.json").read_text())
        ours = {"dataset.json", *(name for names in meta["levels"].values() for name in names)}
        if meta.get("format") != FORMAT:
            raise ValueError
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise FileExistsError(f"{refuse}; it has no dataset.json of this tool's format") from None
    foreign = sorted(p.name for p in dest.iterdir() if p.name not in ours)
    if foreign:
        more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        raise FileExistsError(
            f"{refuse}; it also holds {', '.join(foreign[:3])}{more}, which the tool did not write"
        )


def replace_dir(src: Path, dest: Path) -> None:
    """Renames src (synced) to dest; an existing dest is moved aside first and removed only
    once both renames are on disk, so a power loss leaves the old dataset or the new one (a
    backup left without its dest is put back by the next run: recover_interrupted_replace)."""
    backup = None
    if dest.exists():
        backup = dest.parent / f".{dest.name}.old-{os.getpid()}"
        dest.rename(backup)
    src.rename(dest)
    files.fsync_path(dest.parent)
    if backup is not None:
        shutil.rmtree(backup)


def recover_interrupted_replace(dest: Path) -> None:
    """Tidies what an interrupted conversion into `dest` left beside it, for processes that no
    longer run: its partial output is removed; the old dataset it had moved aside is put back
    if `dest` is missing (the new one never arrived), else removed (the new one is in place)."""
    pattern = re.compile(rf"^\.{re.escape(dest.name)}\.(partial|old)-(\d+)$")
    if not dest.parent.is_dir():
        return
    for entry in sorted(dest.parent.iterdir()):
        match = pattern.match(entry.name)
        if not match or not files.pid_is_dead(int(match.group(2))) or entry.is_symlink():
            continue
        if match.group(1) == "old" and not dest.exists():
            entry.rename(dest)
            files.fsync_path(dest.parent)
        else:
            shutil.rmtree(entry, ignore_errors=True)


def write_arrays(
    dest: str | os.PathLike,
    images: np.ndarray,
    labels: Iterable[int] | None,
    *,
    name: str,
    num_labels: int = 0,
    label_names: list[str] | None = None,
    seed: int = 0,
    overwrite: bool = False,
    compression: str = "",
    shards: int | None = None,
    source: str | os.PathLike | None = None,
) -> dict:
    """Writes an in-memory uint8 [N, R, R, C] array (CIFAR, MNIST) in a seeded shuffled order."""
    order = np.random.default_rng(seed).permutation(len(images))
    labels = None if labels is None else np.asarray(list(labels))
    with DatasetWriter(
        dest,
        name=name,
        resolution=images.shape[1],
        channels=images.shape[3],
        expected_images=len(images),
        num_labels=num_labels,
        label_names=label_names,
        overwrite=overwrite,
        compression=compression,
        shards=shards,
        source=source,
    ) as writer:
        for i in order:
            writer.add(images[i], None if labels is None else int(labels[i]))
    return writer.meta

"""Dataset conversion: image folders and standard datasets -> multi-resolution TFRecords.

Each converter takes plain arguments (`ConvertOptions`) and returns the dataset's metadata;
`tools/dataset_tool.py` is the command line around them. Decoding runs in worker processes
(spawned: this module imports no TensorFlow, so workers stay light); records are written in a
seeded shuffled order, as the reference's tool does (docs/reference.md §5).
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.process
import contextlib
import dataclasses
import gzip
import io
import math
import multiprocessing
import os
import re
import shutil
import signal
import sys
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from progan_tf import dataset_io


class ConversionError(ValueError):
    """Input that cannot be converted as asked; the message names the file or flag."""


@dataclasses.dataclass(frozen=True)
class ConvertOptions:
    name: str | None = None  # dataset name; default: the destination folder's name
    resolution: int | None = None  # a power of two; default: the largest the images support
    channels: int = 3  # 1 (grayscale) or 3 (RGB)
    crop: str = "center"  # non-square images: center, pad, or none (skip them)
    workers: int | None = None  # decoding processes; default: the number of CPUs
    shards: int | None = None  # TFRecord files per level; default: about 1,024 records each
    seed: int = 0  # of the shuffled record order
    max_images: int | None = None
    overwrite: bool = False  # replace an existing destination
    compression: str = ""  # "" or "GZIP"
    # larger images (width x height) are skipped, named: a 16k x 16k RGB image is 768 MB
    max_pixels: int = 2**28


# Seconds one worker may spend on one file's header or decode (a large JPEG takes about 1 s)
DECODE_SECONDS = 120


def _image_files(source: Path) -> list[Path]:
    extensions = dataset_io.raster_extensions()
    return sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in extensions)


@contextlib.contextmanager
def _time_limit(seconds: int = DECODE_SECONDS):
    """TimeoutError if the block runs longer than `seconds` (SIGALRM: decoding workers run it
    in their main thread; elsewhere no limit). Pillow's readers turn it into an ImageError
    naming the file."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum, frame):
        raise TimeoutError(f"took over {seconds} s to read")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _reason(path, error: str) -> str:
    """Why a file was skipped, without its path in front (the listing names the file)."""
    return error.removeprefix(f"{path}: ")


def _header(job):
    path, max_pixels = job
    try:
        with _time_limit():
            size = dataset_io.image_size(path, max_pixels)
    except dataset_io.ImageError as error:
        return str(path), None, str(error)
    except TimeoutError as error:
        return str(path), None, f"{path}: {error}"
    if size[0] * size[1] > max_pixels:
        return (
            str(path),
            None,
            (
                f"{path}: {size[0]}x{size[1]} is {size[0] * size[1]:,} pixels, over "
                f"--max_pixels={max_pixels:,}; raise it if the machine has the memory"
            ),
        )
    return str(path), size, None


def _decode(job):
    path, resolution, channels, crop = job
    try:
        with _time_limit():
            return path, dataset_io.load_image(path, resolution, channels, crop), None
    except dataset_io.ImageError as error:
        return path, None, str(error)
    except TimeoutError as error:
        return path, None, f"{path}: {error}"


def _worker_init() -> None:
    # --max_pixels decides, from the header, before anything is decoded
    Image.MAX_IMAGE_PIXELS = None


class _Workers:
    """Decoding processes whose death (the OS killing one, e.g. out of memory on a huge image)
    is a ConversionError, not a hang: `concurrent.futures` notices a dead worker where
    `multiprocessing.Pool` waits forever for its lost task."""

    def __init__(self, workers: int | None):
        self.executor = concurrent.futures.ProcessPoolExecutor(
            workers or os.cpu_count() or 1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
        )

    def __enter__(self) -> "_Workers":
        return self

    def __exit__(self, *exc) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)

    def map(self, fn, items, chunksize: int = 16):
        """fn over items in order, computed in the workers."""
        try:
            yield from self.executor.map(fn, items, chunksize=chunksize)
        except concurrent.futures.process.BrokenProcessPool:
            raise ConversionError(
                "a decoding worker died (killed by the operating system, most often out of memory "
                "on a very large image); lower --max_pixels or --workers and run again"
            ) from None


def _usable_side(size: tuple[int, int], crop: str) -> int:
    w, h = size
    return max(w, h) if crop == "pad" else min(w, h)


def create_from_images(source: str, dest: str, options: ConvertOptions = ConvertOptions()) -> dict:
    """Converts a folder of images (recursively) into a dataset; returns its metadata."""
    root = Path(source)
    if not root.is_dir():
        raise ConversionError(f"--source={source} is not a directory")
    files = _image_files(root)
    if options.max_images:
        files = files[: options.max_images]
    if not files:
        raise ConversionError(f"--source={source} holds no image files")
    channels, crop = int(options.channels), options.crop
    with _Workers(options.workers) as pool:
        headers = list(pool.map(_header, [(f, options.max_pixels) for f in files], chunksize=64))
        skipped = [(path, _reason(path, error)) for path, size, error in headers if error]
        sizes = {path: size for path, size, error in headers if not error}
        if crop == "none":
            skipped += [
                (p, f"not square ({w}x{h}); use --crop=center or --crop=pad")
                for p, (w, h) in sizes.items()
                if w != h
            ]
            sizes = {p: (w, h) for p, (w, h) in sizes.items() if w == h}
        if not sizes:
            raise ConversionError(
                f"--source={source} holds no valid image; "
                + "; ".join(f"{p}: {e}" for p, e in skipped[:5])
            )
        resolution = options.resolution
        if resolution is None:
            smallest = min(sizes, key=lambda p: _usable_side(sizes[p], crop))
            side = _usable_side(sizes[smallest], crop)
            resolution = min(1024, 2 ** int(math.log2(max(side, 1))))
            print(
                f"resolution {resolution} (the smallest image is {smallest}, "
                f"{sizes[smallest][0]}x{sizes[smallest][1]}; "
                "pass --resolution to choose)",
                file=sys.stderr,
            )
            if resolution < 4:
                raise ConversionError(
                    f"{smallest} is smaller than 4x4; remove it or pass --resolution"
                )
        elif resolution < 4 or resolution & (resolution - 1):
            raise ConversionError(f"--resolution={resolution} is not a power of two >= 4")
        paths = sorted(sizes)
        order = np.random.default_rng(options.seed).permutation(len(paths))
        jobs = [(paths[i], resolution, channels, crop) for i in order]
        with dataset_io.DatasetWriter(
            dest,
            name=options.name or Path(dest).name,
            resolution=resolution,
            channels=channels,
            expected_images=len(jobs),
            shards=options.shards,
            overwrite=options.overwrite,
            compression=options.compression,
            source=source,
        ) as writer:
            for path, error in skipped:
                writer.skip(path, error)
            for path, image, error in _progress(pool.map(_decode, jobs, chunksize=16), len(jobs)):
                if error:
                    writer.skip(path, _reason(path, error))
                    continue
                writer.add(image)
                if _usable_side(sizes[path], crop) < resolution:
                    writer.meta["upscaled"].append(path)
    return writer.meta


def _progress(iterable, total: int):
    from keras.utils import Progbar  # noqa: PLC0415

    bar = Progbar(total, unit_name="image")
    for i, item in enumerate(iterable, 1):
        yield item
        if i % 64 == 0 or i == total:
            bar.update(i)


def create_cifar10(source: str, dest: str, options: ConvertOptions = ConvertOptions()) -> dict:
    """From the CIFAR-10 *binary* version (cifar-10-batches-bin/data_batch_{1..5}.bin)."""
    files = [Path(source) / f"data_batch_{i}.bin" for i in range(1, 6)]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise ConversionError(
            f"{missing[0]} not found; --source must be the extracted cifar-10-batches-bin folder "
            "(the binary version from https://www.cs.toronto.edu/~kriz/cifar.html)"
        )
    raw = np.concatenate([np.fromfile(f, np.uint8).reshape(-1, 3073) for f in files])
    labels = raw[:, 0].astype(np.int64)
    images = raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    names = [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ]
    return _write_arrays(dest, images, labels, "cifar10", names, options, source)


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def create_mnist(source: str, dest: str, options: ConvertOptions = ConvertOptions()) -> dict:
    """From train-images-idx3-ubyte(.gz) and train-labels-idx1-ubyte(.gz); padded to 32x32."""
    found = {}
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        candidates = [Path(source) / (stem + ext) for ext in (".gz", "")]
        existing = [c for c in candidates if c.exists()]
        if not existing:
            raise ConversionError(f"{candidates[0]} not found in --source={source}")
        found[stem] = existing[0]
    images = _read_idx(found["train-images-idx3-ubyte"])
    labels = _read_idx(found["train-labels-idx1-ubyte"]).astype(np.int64)
    images = np.pad(images, [(0, 0), (2, 2), (2, 2)])[..., None]
    return _write_arrays(
        dest, images, labels, "mnist", [str(i) for i in range(10)], options, source
    )


def _write_arrays(
    dest, images, labels, name, label_names, options: ConvertOptions, source: str
) -> dict:
    if options.max_images:
        images, labels = images[: options.max_images], labels[: options.max_images]
    return dataset_io.write_arrays(
        dest,
        images,
        labels,
        name=options.name or name,
        num_labels=len(label_names),
        label_names=label_names,
        seed=options.seed,
        overwrite=options.overwrite,
        compression=options.compression,
        source=source,
    )


def create_lsun(source: str, dest: str, options: ConvertOptions = ConvertOptions()) -> dict:
    """From an LSUN LMDB export: centre crop and antialiased resize to --resolution (256)."""
    try:
        import lmdb  # noqa: PLC0415
    except ImportError:
        raise ConversionError("create_lsun needs the lmdb package: pip install lmdb")
    resolution = options.resolution or 256
    env = lmdb.open(
        source, max_readers=1, readonly=True, lock=False, readahead=False, meminit=False
    )
    with env.begin(write=False) as txn:
        keys = [key for key, _ in txn.cursor()]
    if options.max_images:
        keys = keys[: options.max_images]
    order = np.random.default_rng(options.seed).permutation(len(keys))
    with (
        dataset_io.DatasetWriter(
            dest,
            name=options.name or Path(dest).name,
            resolution=resolution,
            channels=3,
            expected_images=len(keys),
            shards=options.shards,
            overwrite=options.overwrite,
            compression=options.compression,
            source=source,
        ) as writer,
        env.begin(write=False) as txn,
    ):
        for i in _progress(order, len(keys)):
            key = keys[i]
            try:
                image = dataset_io.load_image(io.BytesIO(txn.get(key)), resolution, 3, "center")
            except dataset_io.ImageError as error:
                writer.skip(key.decode(errors="replace"), str(error))
                continue
            writer.add(image)
    return writer.meta


def create_celebahq(source: str, dest: str, options: ConvertOptions = ConvertOptions()) -> dict:
    """From a folder of the commonly distributed 1024x1024 CelebA-HQ images (30,000)."""
    options = dataclasses.replace(
        options, resolution=options.resolution or 1024, crop="none", name=options.name or "celebahq"
    )
    return create_from_images(source, dest, options)


def info(source: str) -> tuple[list[str], list[tuple[str, str]]]:
    """(lines describing the dataset and its levels, [(file, error)] of files that do not read
    to their end)."""
    from progan_tf import data  # noqa: PLC0415

    dataset = data.load_info(source)
    lines = [
        f"{dataset.name}: {dataset.resolution}x{dataset.resolution}, {dataset.channels} channels, "
        f"{dataset.num_images if dataset.num_images >= 0 else 'unknown number of'} images, "
        f"{dataset.num_labels} labels"
    ]
    bad = []
    for resolution in sorted(dataset.files):
        files = dataset.level_files(resolution)
        corrupt = data.find_corrupt_files(files, dataset.compression)
        bad += corrupt
        state = f"{len(corrupt)} corrupt" if corrupt else "ok"
        lines.append(f"  {resolution:>5}x{resolution:<5} {len(files)} files  {state}")
    return lines, bad


_EXTRACTED = re.compile(r"^\d{8}\.png$")  # what extract writes


def extract(source: str, dest: str, resolution: int | None = None, overwrite: bool = False) -> int:
    """Writes one level's images as PNG files (00000000.png, ...) into a new folder `dest`
    (written beside it, synced, then renamed into place); returns how many. `overwrite`
    replaces only a folder of such files."""
    from progan_tf import data, files  # noqa: PLC0415

    dataset = data.load_info(source)
    resolution = resolution or dataset.resolution
    out = Path(os.path.realpath(dest)) if os.path.islink(dest) else Path(dest)
    dataset_io.recover_interrupted_replace(out)
    if out.exists() and not out.is_dir():
        raise ConversionError(f"--dest={dest} is a file; choose a folder")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ConversionError(
                f"--dest={dest} is not empty; choose another folder or pass --overwrite"
            )
        foreign = sorted(p.name for p in out.iterdir() if not _EXTRACTED.match(p.name))
        if foreign:
            raise ConversionError(
                f"--dest={dest} also holds {', '.join(foreign[:3])}"
                f"{f' and {len(foreign) - 3} more' if len(foreign) > 3 else ''}, which extract "
                "did not write; --overwrite replaces only a folder of extract's numbered PNGs"
            )
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    count = 0
    try:
        for images, _ in data.iterate_level(dataset, resolution):
            for image in images:
                Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(
                    tmp / f"{count:08d}.png"
                )
                count += 1
        files.fsync_tree(tmp)
        dataset_io.replace_dir(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return count


def grid(
    source: str, out: str, resolution: int | None = None, num: int = 64, overwrite: bool = False
) -> int:
    """Saves a contact sheet of the first `num` images of a level (of a labelled dataset: about
    `num` in one row per class); returns how many it shows."""
    from progan_tf import data, images as image_utils  # noqa: PLC0415

    dataset = data.load_info(source)
    resolution = resolution or dataset.resolution
    if os.path.exists(out) and not overwrite:
        raise ConversionError(f"--out={out} exists; choose another file or pass --overwrite")
    batch, columns = data.reals_for_grid(dataset, resolution, num)
    image_utils.save_png(image_utils.make_grid(batch, columns=columns), out)
    return len(batch)

"""Makes and inspects multi-resolution TFRecord datasets for progan_tf.

    python tools/dataset_tool.py create_from_images --source=photos/ --dest=datasets/photos
    python tools/dataset_tool.py create_cifar10 --source=cifar-10-batches-bin --dest=datasets/cifar10
    python tools/dataset_tool.py create_mnist --source=mnist/ --dest=datasets/mnist
    python tools/dataset_tool.py create_lsun --source=bedroom_train_lmdb --dest=datasets/bedroom
    python tools/dataset_tool.py create_celebahq --source=celeba-hq-1024/ --dest=datasets/celebahq
    python tools/dataset_tool.py info --source=datasets/photos
    python tools/dataset_tool.py extract --source=datasets/photos --dest=pngs/ [--resolution=64]
    python tools/dataset_tool.py grid --source=datasets/photos --out=grid.png [--resolution=64]
"""

from __future__ import annotations

import gzip
import io
import math
import multiprocessing
import os
import sys
from pathlib import Path

import numpy as np
from absl import app, flags
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from progan_tf import cli, dataset_io  # noqa: E402  (no TensorFlow at import: workers stay light)

COMMANDS = (
    "create_from_images",
    "create_cifar10",
    "create_mnist",
    "create_lsun",
    "create_celebahq",
    "info",
    "extract",
    "grid",
)

FLAGS = flags.FLAGS
flags.DEFINE_string("source", None, "Input: image folder, dataset files or a dataset directory.")
flags.DEFINE_string("dest", None, "Output directory (must not exist unless --overwrite).")
flags.DEFINE_string("out", None, "grid: output PNG file.")
flags.DEFINE_string("name", None, "Dataset name (default: the --dest folder's name).")
flags.DEFINE_integer("resolution", None, "Output resolution, a power of two (default: largest the images support).")
flags.DEFINE_enum("channels", "3", ["1", "3"], "1: grayscale, 3: RGB.")
flags.DEFINE_enum("crop", "center", list(dataset_io.CROP_MODES), "Non-square images: crop, pad, or skip them.")
flags.DEFINE_integer("workers", None, "Decoding processes (default: the number of CPUs).")
flags.DEFINE_integer("shards", None, "TFRecord files per level (default: about 1,024 records each).")
flags.DEFINE_integer("seed", 0, "Seed of the shuffled record order.")
flags.DEFINE_integer("max_images", None, "Use at most this many images.")
flags.DEFINE_integer("num", 64, "grid: number of images.")
flags.DEFINE_bool("overwrite", False, "Replace an existing --dest / --out.")
cli.define_verbose_flag()
flags.DEFINE_enum("compression", "", ["", "GZIP"], "TFRecord compression.")


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def _require(*names: str) -> None:
    for name in names:
        if not getattr(FLAGS, name):
            _fail(f"--{name} is required for this command")


def _image_files(source: Path) -> list[Path]:
    extensions = {ext.lower() for ext in Image.registered_extensions()}
    return sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in extensions)


def _header(path: Path):
    try:
        return str(path), dataset_io.image_size(path), None
    except dataset_io.ImageError as error:
        return str(path), None, str(error)


def _decode(job):
    path, resolution, channels, crop = job
    try:
        return path, dataset_io.load_image(path, resolution, channels, crop), None
    except dataset_io.ImageError as error:
        return path, None, str(error)


def _usable_side(size: tuple[int, int], crop: str) -> int:
    w, h = size
    return max(w, h) if crop == "pad" else min(w, h)


def _pool(workers: int | None):
    return multiprocessing.get_context("spawn").Pool(workers or os.cpu_count() or 1)


def _print_summary(meta: dict, dest: str) -> None:
    print(f"wrote {meta['num_images']} images at {meta['resolution']}x{meta['resolution']} to {dest}")
    if meta["upscaled"]:
        print(f"{len(meta['upscaled'])} images were smaller than the resolution and upscaled")
    if meta["skipped"]:
        print(f"skipped {len(meta['skipped'])} files:")
        for item in meta["skipped"]:
            print(f"  {item['file']}: {item['reason']}")


def create_from_images(source: str, dest: str, name: str | None = None) -> dict:
    """Converts a folder of images (recursively) into a dataset; returns its metadata."""
    root = Path(source)
    if not root.is_dir():
        _fail(f"--source={source} is not a directory")
    files = _image_files(root)
    if FLAGS.max_images:
        files = files[: FLAGS.max_images]
    if not files:
        _fail(f"--source={source} holds no image files")
    channels, crop = int(FLAGS.channels), FLAGS.crop
    with _pool(FLAGS.workers) as pool:
        headers = pool.map(_header, files, chunksize=64)
        skipped = [(path, error) for path, size, error in headers if error]
        sizes = {path: size for path, size, error in headers if not error}
        if crop == "none":
            skipped += [(p, f"not square ({w}x{h}); use --crop=center or --crop=pad") for p, (w, h) in sizes.items() if w != h]
            sizes = {p: (w, h) for p, (w, h) in sizes.items() if w == h}
        if not sizes:
            _fail(f"--source={source} holds no valid image; " + "; ".join(f"{p}: {e}" for p, e in skipped[:5]))
        resolution = FLAGS.resolution
        if resolution is None:
            smallest = min(sizes, key=lambda p: _usable_side(sizes[p], crop))
            side = _usable_side(sizes[smallest], crop)
            resolution = min(1024, 2 ** int(math.log2(max(side, 1))))
            print(f"resolution {resolution} (the smallest image is {smallest}, {sizes[smallest][0]}x{sizes[smallest][1]}; "
                  "pass --resolution to choose)")
            if resolution < 4:
                _fail(f"{smallest} is smaller than 4x4; remove it or pass --resolution")
        elif resolution < 4 or resolution & (resolution - 1):
            _fail(f"--resolution={resolution} is not a power of two >= 4")
        paths = sorted(sizes)
        order = np.random.default_rng(FLAGS.seed).permutation(len(paths))
        jobs = [(paths[i], resolution, channels, crop) for i in order]
        with dataset_io.DatasetWriter(
            dest,
            name=name or Path(dest).name,
            resolution=resolution,
            channels=channels,
            expected_images=len(jobs),
            shards=FLAGS.shards,
            overwrite=FLAGS.overwrite,
            compression=FLAGS.compression,
        ) as writer:
            for path, error in skipped:
                writer.skip(path, error)
            for path, image, error in _progress(pool.imap(_decode, jobs, chunksize=16), len(jobs)):
                if error:
                    writer.skip(path, error)
                    continue
                writer.add(image)
                if _usable_side(sizes[path], crop) < resolution:
                    writer.meta["upscaled"].append(path)
    _print_summary(writer.meta, dest)
    return writer.meta


def _progress(iterable, total: int):
    from keras.utils import Progbar  # noqa: PLC0415

    bar = Progbar(total, unit_name="image")
    for i, item in enumerate(iterable, 1):
        yield item
        if i % 64 == 0 or i == total:
            bar.update(i)


def create_cifar10(source: str, dest: str) -> dict:
    """From the CIFAR-10 *binary* version (cifar-10-batches-bin/data_batch_{1..5}.bin)."""
    files = [Path(source) / f"data_batch_{i}.bin" for i in range(1, 6)]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        _fail(f"{missing[0]} not found; --source must be the extracted cifar-10-batches-bin folder "
              "(the binary version from https://www.cs.toronto.edu/~kriz/cifar.html)")
    raw = np.concatenate([np.fromfile(f, np.uint8).reshape(-1, 3073) for f in files])
    labels = raw[:, 0].astype(np.int64)
    images = raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    return _write_arrays(dest, images, labels, "cifar10", names)


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def create_mnist(source: str, dest: str) -> dict:
    """From train-images-idx3-ubyte(.gz) and train-labels-idx1-ubyte(.gz); padded to 32x32."""
    found = {}
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        candidates = [Path(source) / (stem + ext) for ext in (".gz", "")]
        existing = [c for c in candidates if c.exists()]
        if not existing:
            _fail(f"{candidates[0]} not found in --source={source}")
        found[stem] = existing[0]
    images = _read_idx(found["train-images-idx3-ubyte"])
    labels = _read_idx(found["train-labels-idx1-ubyte"]).astype(np.int64)
    images = np.pad(images, [(0, 0), (2, 2), (2, 2)])[..., None]
    return _write_arrays(dest, images, labels, "mnist", [str(i) for i in range(10)])


def _write_arrays(dest, images, labels, name, label_names) -> dict:
    if FLAGS.max_images:
        images, labels = images[: FLAGS.max_images], labels[: FLAGS.max_images]
    meta = dataset_io.write_arrays(
        dest, images, labels, name=FLAGS.name or name, num_labels=len(label_names), label_names=label_names,
        seed=FLAGS.seed, overwrite=FLAGS.overwrite, compression=FLAGS.compression,
    )
    _print_summary(meta, dest)
    return meta


def create_lsun(source: str, dest: str) -> dict:
    """From an LSUN LMDB export: centre crop and antialiased resize to --resolution (256)."""
    try:
        import lmdb  # noqa: PLC0415
    except ImportError:
        _fail("create_lsun needs the lmdb package: pip install lmdb")
    resolution = FLAGS.resolution or 256
    env = lmdb.open(source, max_readers=1, readonly=True, lock=False, readahead=False, meminit=False)
    with env.begin(write=False) as txn:
        keys = [key for key, _ in txn.cursor()]
    if FLAGS.max_images:
        keys = keys[: FLAGS.max_images]
    order = np.random.default_rng(FLAGS.seed).permutation(len(keys))
    with dataset_io.DatasetWriter(
        dest, name=FLAGS.name or Path(dest).name, resolution=resolution, channels=3,
        expected_images=len(keys), shards=FLAGS.shards, overwrite=FLAGS.overwrite,
        compression=FLAGS.compression,
    ) as writer, env.begin(write=False) as txn:
        for i in _progress(order, len(keys)):
            key = keys[i]
            try:
                image = dataset_io.load_image(io.BytesIO(txn.get(key)), resolution, 3, "center")
            except dataset_io.ImageError as error:
                writer.skip(key.decode(errors="replace"), str(error))
                continue
            writer.add(image)
    _print_summary(writer.meta, dest)
    return writer.meta


def create_celebahq(source: str, dest: str) -> dict:
    """From a folder of the commonly distributed 1024x1024 CelebA-HQ images (30,000)."""
    if FLAGS.resolution is None:
        FLAGS.resolution = 1024
    FLAGS.crop = "none"
    return create_from_images(source, dest, name=FLAGS.name or "celebahq")


def info(source: str) -> None:
    """Prints what the dataset holds and checks that every level reads to the end."""
    from progan_tf import data  # noqa: PLC0415

    dataset = data.load_info(source)
    print(f"{dataset.name}: {dataset.resolution}x{dataset.resolution}, {dataset.channels} channels, "
          f"{dataset.num_images if dataset.num_images >= 0 else 'unknown number of'} images, "
          f"{dataset.num_labels} labels")
    bad = []
    for resolution in sorted(dataset.files):
        files = dataset.level_files(resolution)
        corrupt = data.find_corrupt_files(files, dataset.compression)
        bad += corrupt
        state = f"{len(corrupt)} corrupt" if corrupt else "ok"
        print(f"  {resolution:>5}x{resolution:<5} {len(files)} files  {state}")
    for file, error in bad:
        print(f"corrupt: {file}: {error}", file=sys.stderr)
    if bad:
        sys.exit(1)


def extract(source: str, dest: str) -> None:
    """Writes one level's images as PNG files (00000000.png, ...)."""
    from progan_tf import data  # noqa: PLC0415

    dataset = data.load_info(source)
    resolution = FLAGS.resolution or dataset.resolution
    out = Path(dest)
    if out.exists() and any(out.iterdir()) and not FLAGS.overwrite:
        _fail(f"--dest={dest} is not empty; choose another folder or pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    for images, _ in data.iterate_level(dataset, resolution):
        for image in images:
            Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(out / f"{count:08d}.png")
            count += 1
    print(f"wrote {count} PNG files to {dest}")


def grid(source: str, out: str) -> None:
    """Saves a contact sheet of the first --num images of a level."""
    from progan_tf import data, images as image_utils  # noqa: PLC0415

    dataset = data.load_info(source)
    resolution = FLAGS.resolution or dataset.resolution
    if os.path.exists(out) and not FLAGS.overwrite:
        _fail(f"--out={out} exists; choose another file or pass --overwrite")
    batch = next(data.iterate_level(dataset, resolution, batch_size=FLAGS.num))[0]
    image_utils.save_png(image_utils.make_grid(batch), out)
    print(f"wrote a grid of {len(batch)} images to {out}")


def main(argv):
    cli.quiet_tensorflow(FLAGS.verbose)
    if len(argv) != 2 or argv[1] not in COMMANDS:
        _fail(f"usage: dataset_tool.py COMMAND --flags; COMMAND is one of {', '.join(COMMANDS)}")
    try:
        _run(argv[1])
    except (FileExistsError, ValueError) as error:  # DatasetError is a ValueError
        _fail(str(error))


def _run(command: str) -> None:
    if command == "info":
        _require("source")
        info(FLAGS.source)
    elif command == "grid":
        _require("source", "out")
        grid(FLAGS.source, FLAGS.out)
    else:
        _require("source", "dest")
        if command.startswith("create") and os.path.exists(FLAGS.dest) and not FLAGS.overwrite:
            _fail(f"--dest={FLAGS.dest} exists; choose another folder or pass --overwrite")
        {
            "create_from_images": lambda s, d: create_from_images(s, d, FLAGS.name),
            "create_cifar10": create_cifar10,
            "create_mnist": create_mnist,
            "create_lsun": create_lsun,
            "create_celebahq": create_celebahq,
            "extract": extract,
        }[command](FLAGS.source, FLAGS.dest)


if __name__ == "__main__":
    app.run(main)

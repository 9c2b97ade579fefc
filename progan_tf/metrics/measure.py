"""A generator's metrics against a dataset: SWD (with its real-vs-real floor), MS-SSIM, FID.

Used by `python -m progan_tf.evaluate` on a trained run and by the trainer at each checkpoint
(`--config.metrics`). The metrics themselves are in `progan_tf.metrics`.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import tensorflow as tf

from progan_tf import data, files
from progan_tf.networks import generate_images
from progan_tf.metrics import fid as fid_lib, ms_ssim, swd as swd_lib

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
    generator_batch: int = 64,
    progress: Callable[[str], None] | None = None,
    skip_unsupported: bool = False,
    mirror: bool = False,
) -> dict[str, float]:
    """Metrics of `generator` (a networks.Generator, alpha already set) at `phase.resolution`
    against `dataset`'s level of that resolution, the generator run `generator_batch` images at
    a time (at most the per-replica training batch: its memory). `skip_unsupported` leaves out
    metrics the resolution is too small for (SWD below 8x8) instead of raising, as training
    does."""
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
            z = rng.randn(len(labels), generator.arch.latent_size).astype(np.float32)
            yield generate_images(
                model, z, labels if num_labels else None, batch_size=generator_batch
            )

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

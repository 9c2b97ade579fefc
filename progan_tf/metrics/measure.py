"""A generator's metrics against a dataset: SWD (with its real-vs-real floor), MS-SSIM, FID, KID.

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
from progan_tf.metrics import fid as fid_lib, inception as inception_lib, ms_ssim, swd as swd_lib

METRICS = ("swd", "msssim", "fid", "kid")
INCEPTION_METRICS = ("fid", "kid")  # from the features of the 2015 Inception network


def take(
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
    inception: str | inception_lib.InceptionFeatures = "",
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
    does. `inception`: the 2015 Inception network's file, or its InceptionFeatures already
    built (the trainer's, reused at every checkpoint)."""
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"--metrics: unknown {unknown}; choose from {', '.join(METRICS)}")
    # Before any work: a missing or wrong network file fails now, not after the other metrics.
    extractor = None
    if set(metrics) & set(INCEPTION_METRICS):
        extractor = (
            inception
            if isinstance(inception, inception_lib.InceptionFeatures)
            else inception_lib.InceptionFeatures(inception, batch_size=batch_size)
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
        for images, labels in take(batches, skip + count):
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

    def fakes(count: int = n):
        """The same images every time: latents seeded, labels those of the reals (cycled
        through again when `count` is more than the reals, as FID-50k on 30k reals is)."""
        rng = np.random.RandomState(seed)
        left = count
        while left > 0:
            for _, labels in take(reals(), min(left, n)):
                z = rng.randn(len(labels), generator.arch.latent_size).astype(np.float32)
                yield generate_images(
                    model, z, labels if num_labels else None, batch_size=generator_batch
                )
                left -= len(labels)

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
    if extractor is not None:  # all --num_images fakes, against at most that many reals
        say(f"FID / KID: Inception features of {n} real and {num_images} generated images")
        real_features = extractor(b for b, _ in reals())
        fake_features = extractor(fakes(num_images))
        results.update(inception_scores(real_features, fake_features, metrics, seed))
    return results


def inception_scores(
    reals: np.ndarray, fakes: np.ndarray, metrics: Sequence[str], seed: int = 0
) -> dict[str, float]:
    """fid, kid and kid_std (over KID's subsets) of two feature sets, those `metrics` name."""
    results = {}
    if "fid" in metrics:
        results["fid"] = fid_lib.fid(reals, fakes)
    if "kid" in metrics:
        results["kid"], results["kid_std"] = fid_lib.kid(reals, fakes, seed=seed)
    return results


def folder_batches(folder: str, batch_size: int = 64) -> Iterator[np.ndarray]:
    """The image files under `folder` (recursively, in sorted order) as uint8 RGB batches
    [n, H, W, 3], each batch of one size (the Inception network resizes them all to 299x299).
    A file that cannot be read is a ValueError naming it."""
    from PIL import Image  # noqa: PLC0415

    from progan_tf import dataset_io  # noqa: PLC0415

    extensions = dataset_io.raster_extensions()
    paths = sorted(
        os.path.join(root, name)
        for root, _, names in os.walk(folder)
        for name in names
        if os.path.splitext(name)[1].lower() in extensions
    )
    if not paths:
        raise ValueError(f"{folder}: no image files in it (or no such folder)")
    batch: list[np.ndarray] = []
    for path in paths:
        try:
            with Image.open(path, formats=dataset_io.RASTER_FORMATS) as image:
                array = np.asarray(image.convert("RGB"), np.uint8)
        except Exception as error:  # noqa: BLE001 - any decoder failure: name the file
            raise ValueError(f"{path}: not a readable image ({error or type(error).__name__})")
        if batch and (array.shape != batch[0].shape or len(batch) == batch_size):
            yield np.stack(batch)
            batch = []
        batch.append(array)
    yield np.stack(batch)


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
    """metric | value | real-vs-real noise floor (SWD rows only); KID as `mean ± std`."""
    rows = [("metric", "value", "real vs real")]
    for name, value in results.items():
        if name.endswith(("_real", "_std")):
            continue
        floor, spread = results.get(f"{name}_real"), results.get(f"{name}_std")
        shown = f"{value:.4f}" if spread is None else f"{value:.5f} ± {spread:.5f}"
        rows.append((name, shown, "" if floor is None else f"{floor:.4f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows
    )

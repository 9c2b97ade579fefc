"""Throughput of the tf.data input pipeline against what the training step consumes.

    python benchmarks/input_pipeline.py                       # 32, 64, 128, 256
    python benchmarks/input_pipeline.py --resolutions=32,64 --seconds=5
    python benchmarks/input_pipeline.py --bundled --resolutions=8,16,32 --batch=16


Writes a synthetic multi-resolution dataset (smooth random images, so compression and decode
costs are realistic) to a temporary directory, then times `data.make_dataset` — interleaved
reads, decode, shuffle, mirror, scale to [-1, 1], batching, prefetch — at each resolution,
and the compiled G+D step of the same resolution (the demo widths, XLA, batch 32; add
--paper_width for the paper's networks, slow on a CPU). Prints images/s of both and their
ratio; the target is a pipeline >= 20x faster than the step it feeds.

--bundled times the demo's own stream instead: the bundled emoji, class-balanced as the demo
config trains (class_balance 1, shuffle blocks of 1024 MB) and, for comparison, plain.
The pipeline runs alone here; in training it shares the CPU with the step, so a pipeline
near the step's speed also slows the step.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from progan_tf import cli  # noqa: E402

# the training command's settings: oneDNN on unless TF_ENABLE_ONEDNN_OPTS is set
cli.quiet_tensorflow()

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from progan_tf import data, dataset_io  # noqa: E402
from progan_tf.networks import Architecture  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_step import measure_step  # noqa: E402


def demo_arch(r: int) -> Architecture:  # configs/demo_32.py's widths
    return Architecture(resolution=r, latent_size=128, fmap_base=256, fmap_max=32)


def synthetic_images(n: int, resolution: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.random((n, 8, 8, 3)).astype(np.float32)
    return (
        tf.image.resize(small, [resolution, resolution], "bicubic").numpy().clip(0, 1) * 255
    ).astype(np.uint8)


def pipeline_speed(
    info, resolution: int, batch: int, seconds: float, shuffle_buffer: int = 1024, **kwargs
) -> float:
    dataset = data.make_dataset(
        info, resolution, batch, mirror=True, shuffle_buffer=shuffle_buffer, **kwargs
    )
    iterator = iter(dataset)
    for _ in range(5):  # warm up: fill the shuffle buffer and the prefetch
        next(iterator)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        images, _ = next(iterator)
        count += int(images.shape[0])
    return count / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--resolutions", default="32,64,128,256")
    parser.add_argument("--images", type=int, default=2048, help="images in the synthetic dataset")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=8.0, help="timing per resolution")
    parser.add_argument(
        "--step_steps", type=int, default=10, help="timed training steps per resolution"
    )
    parser.add_argument(
        "--paper_width", action="store_true", help="time the step with the paper's widths"
    )
    parser.add_argument(
        "--bundled",
        action="store_true",
        help="time the demo's stream of the bundled emoji (balanced and plain), no step",
    )
    args = parser.parse_args()
    resolutions = [int(r) for r in args.resolutions.split(",")]
    if args.bundled:
        bundled(resolutions, args.batch, args.seconds)
        return
    top = max(resolutions)
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU threads")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        dataset_io.write_arrays(
            os.path.join(tmp, "synthetic"),
            synthetic_images(args.images, top),
            None,
            name="synthetic",
            shards=8,
        )
        info = data.load_info(os.path.join(tmp, "synthetic"))
        print(
            f"wrote {args.images} images at {top}x{top} and its lower levels in "
            f"{time.perf_counter() - start:.0f} s\n"
        )
        for r in resolutions:
            speed = pipeline_speed(info, r, args.batch, args.seconds)
            arch = Architecture(resolution=r) if args.paper_width else demo_arch(r)
            batch = 16 if args.paper_width else args.batch
            step = measure_step(
                arch, r, batch, args.step_steps, xla=True, steps_per_call=min(args.step_steps, 10)
            )
            print(
                f"{r:>4}x{r:<4} pipeline {speed:9.0f} img/s   train step "
                f"({'paper' if args.paper_width else 'demo'} "
                f"width, batch {batch}) {step:8.1f} img/s   ratio {speed / step:7.0f}x",
                flush=True,
            )


def bundled(resolutions: list[int], batch: int, seconds: float) -> None:
    from progan_tf.train import DEMO_DATA  # noqa: PLC0415

    info = data.load_info(DEMO_DATA)
    repeats = data.class_repeats_for(data.class_counts(info), 1.0)  # the demo's class_balance
    print(f"bundled emoji: {info.num_images} images, class repeats {repeats}")
    for r in resolutions:
        buffer = data.shuffle_records(info, r, 0, 1024)  # the demo's shuffle_mb
        balanced, plain = (
            pipeline_speed(info, r, batch, seconds, buffer, class_repeats=repeats),
            pipeline_speed(info, r, batch, seconds, buffer),
        )
        print(
            f"{r:>4}x{r:<4} batch {batch}: class-balanced {balanced:8.0f} img/s   "
            f"plain {plain:8.0f} img/s",
            flush=True,
        )


if __name__ == "__main__":
    main()

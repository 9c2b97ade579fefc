"""Peak resident memory of training, one stage at a time: paper width, a preset's batch sizes.

    python benchmarks/memory.py                                  # 4x4 ... 1024x1024, 1gpu preset
    python benchmarks/memory.py --resolutions=256,512,1024 --preset=paper --xla
    python benchmarks/memory.py --fmap_max=8 --batch=4           # the 4->1024 ladder smoke's nets

Each stage is its own `python -m progan_tf.train` process on a synthetic dataset (noise images,
all levels), trained non-progressively at that resolution (`--config.progressive=False`: the
stage's networks alone, what a grown run trains there but for the fade-in's second toRGB /
fromRGB) for a few steps, with a checkpoint and a 4-image sample grid at the end. Its peak
resident set (the kernel's ru_maxrss of the child, so the whole process: TensorFlow, the
compiled step, the input stream's shuffle block, the checkpoint write) and its wall time are
reported, one markdown row per stage. Per-replica batch: the preset's batch at the stage,
capped as the trainer caps it (float32 on one replica), or --batch.

On a GPU machine the same command reports host memory; the device's peak is
`tf.config.experimental.get_memory_info("GPU:0")["peak"]` in the child, which this script
does not collect (measured on CPUs only so far; docs/performance.md).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

import machine  # this directory, first on sys.path when run as a script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from progan_tf import config as config_lib  # noqa: E402  (no TensorFlow)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolutions", default="4,8,16,32,64,128,256,512,1024")
    parser.add_argument("--preset", default="1gpu", help="minibatch_preset (schedule.py).")
    parser.add_argument("--batch", type=int, default=0, help="Per-replica batch at every stage.")
    parser.add_argument("--fmap_max", type=int, default=512, help="512: the paper's width.")
    parser.add_argument("--steps", type=int, default=2, help="Training steps after the first.")
    parser.add_argument("--images", type=int, default=32, help="Synthetic dataset size.")
    parser.add_argument("--xla", action="store_true", help="--config.xla=True.")
    parser.add_argument("--shuffle_mb", type=int, default=1024)
    parser.add_argument("--jsonl", default=os.path.join(ROOT, "benchmarks/results/memory.jsonl"))
    return parser.parse_args(argv)


def batch_at(resolution: int, preset: str, batch: int) -> int:
    if batch:
        return batch
    c = config_lib.get_config()
    c.minibatch_preset = preset
    return config_lib.schedule(c, resolution=resolution, num_replicas=1).global_batch_size(
        resolution
    )


def write_dataset(path: str, resolution: int, count: int) -> None:
    """`count` noise images at `resolution`, every level written (a child process: TensorFlow
    stays out of this one, whose memory is not measured but should stay small)."""
    code = (
        "import sys, numpy as np; sys.path.insert(0, sys.argv[1]); "
        "from progan_tf import dataset_io; "
        "r, n = int(sys.argv[3]), int(sys.argv[4]); "
        "x = np.random.default_rng(0).integers(0, 256, (n, r, r, 3), dtype=np.uint8); "
        "dataset_io.write_arrays(sys.argv[2], x, None, name='noise')"
    )
    subprocess.run(
        [sys.executable, "-c", code, ROOT, path, str(resolution), str(count)],
        check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )


def measure(args, data_dir: str, resolution: int) -> dict:
    batch = batch_at(resolution, args.preset, args.batch)
    images = batch * (args.steps + 1)
    # minibatch stddev over groups of 4 (the default), or the largest of 2, 1 that divides
    group = next(g for g in (4, 2, 1) if batch % g == 0)
    run_dir = tempfile.mkdtemp(prefix=f"memory{resolution}-")
    command = [
        sys.executable,
        "-m",
        "progan_tf.train",
        f"--data_dir={data_dir}",
        f"--run_dir={run_dir}",
        f"--resolution={resolution}",
        "--config=progan_tf/config.py",
        "--config.conditional=False",
        "--config.class_balance=0",
        "--config.progressive=False",
        f"--config.fmap_max={args.fmap_max}",
        "--config.minibatch_preset=",
        f"--config.minibatch_default={batch}",
        f"--config.total_kimg={images / 1000}",
        "--config.steps_per_call=1",
        "--config.grid_size=4",
        f"--config.shuffle_mb={args.shuffle_mb}",
        f"--config.xla={args.xla}",
        f"--config.mbstd_group_size={group}",
    ]
    start = time.time()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.time() - start
    if status:
        raise SystemExit(f"stage {resolution}: {' '.join(command)} failed ({status})")
    with open(os.path.join(run_dir, "stats.jsonl")) as f:
        phases = [json.loads(line)["phase_time"] for line in f if "phase_time" in line]
    return {
        "resolution": resolution,
        "batch": batch,
        "fmap_max": args.fmap_max,
        "xla": args.xla,
        "shuffle_mb": args.shuffle_mb,
        "peak_rss_gib": usage.ru_maxrss / 2**20,  # KiB on Linux
        "wall_s": seconds,
        # with --steps=0 there are no steady steps: the first step's time (trace included)
        "steady_img_per_s": phases[-1]["steady_img_per_s"] if phases else None,
        "first_step_s": phases[-1]["first_step_s"] if phases else None,
        "run_dir": run_dir,
    }


def main(argv=None):
    args = parse_args(argv)
    resolutions = [int(r) for r in args.resolutions.split(",")]
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes"),
        **machine.describe(),
        "command": " ".join(["python", "benchmarks/memory.py", *(argv or sys.argv[1:])]),
    }
    os.makedirs(os.path.dirname(args.jsonl), exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="memory-data-") as tmp:
        data_dir = os.path.join(tmp, "noise")
        print(f"writing {args.images} noise images at {max(resolutions)}...", file=sys.stderr)
        write_dataset(data_dir, max(resolutions), args.images)
        print("| stage | batch | peak resident (GiB) | process wall (s) | steady img/s |")
        print("|---|---|---|---|---|")
        for r in resolutions:
            row = measure(args, data_dir, r)
            subprocess.run(["rm", "-rf", row.pop("run_dir")], check=False)
            with open(args.jsonl, "a") as f:  # row by row: an interrupted run keeps its rows
                f.write(json.dumps({**meta, **row}) + "\n")
            print(
                f"| {r}x{r} | {row['batch']} | {row['peak_rss_gib']:.2f} | {row['wall_s']:.0f} "
                f"| {row['steady_img_per_s']} |",
                flush=True,
            )


if __name__ == "__main__":
    main()

"""The 64x64 demo's recipe at 128x128, as a smoke run: every stage up to 128x128 passes, a
checkpoint, a 128x128 grid and a SavedModel are written, and each phase's images/s and peak
resident memory are reported. No quality target: the phases are a few kimg each.

    apt-get install fonts-arphic-ukai && python tools/make_glyph_dataset.py \\
        --dest=datasets/glyphs128 --resolution=128 --num_images=500
    python benchmarks/smoke_128.py --data_dir=datasets/glyphs128

The training command runs as a child process, its resident memory (VmRSS) sampled every
0.5 s; a phase's peak is the largest sample between its first log line and the next phase's.
Results (the phase table with a memory column) go to stdout; docs/performance.md has the
measured run.
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", required=True, help="A dataset with a 128x128 level.")
    parser.add_argument("--run_dir", default="", help="Default: a temporary directory, removed.")
    parser.add_argument(
        "--phase_kimg", type=float, default=2.0, help="Each fade-in and stable phase."
    )
    parser.add_argument("--final_kimg", type=float, default=4.0, help="128x128 stable phase.")
    return parser.parse_args(argv)


def run_sampled(command: list[str]) -> list[tuple[float, float]]:
    """Runs `command`; returns (unix time, resident MiB) samples of its process."""
    samples = []
    process = subprocess.Popen(command, cwd=ROOT)
    while process.poll() is None:
        try:
            with open(f"/proc/{process.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        samples.append((time.time(), int(line.split()[1]) / 1024))
        except FileNotFoundError:
            pass
        time.sleep(0.5)
    if process.returncode:
        raise SystemExit(f"{' '.join(command)} failed with status {process.returncode}")
    return samples


def phase_starts(run_dir: str) -> list[tuple[str, float]]:
    """(phase name, unix time of its first log line), from log.txt."""
    starts = []
    with open(os.path.join(run_dir, "log.txt")) as f:
        for line in f:
            if ": " in line and ", batch " in line and "kimg" in line and "x" in line:
                name = line.split(": ", 1)[1].split(",", 1)[0]
                stamp = datetime.datetime.strptime(line[:19], "%Y-%m-%d %H:%M:%S")
                starts.append((name, stamp.timestamp()))
    return starts


def main(argv):
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        run_dir = args.run_dir or os.path.join(scratch, "run")
        phases = 1 + 2 * 5  # 4x4 stable, then a fade-in and a stable phase per resolution to 128
        total = args.phase_kimg * (phases - 1) + args.final_kimg
        train = [
            sys.executable,
            "-m",
            "progan_tf.train",
            f"--config={ROOT}/configs/demo_64.py",
            f"--data_dir={args.data_dir}",
            f"--run_dir={run_dir}",
            "--resolution=128",
            f"--total_kimg={total}",
            f"--config.lod_training_kimg={args.phase_kimg}",
            f"--config.lod_transition_kimg={args.phase_kimg}",
            "--config.mirror_augment=False",
            f"--checkpoint_kimg={total}",
            f"--snapshot_kimg={total}",
        ]
        print("$ " + " ".join(train), file=sys.stderr, flush=True)
        started = time.time()
        samples = run_sampled(train)
        wall = time.time() - started
        with open(os.path.join(run_dir, "stats.jsonl")) as f:
            times = {
                r["phase_time"]["phase"]: r["phase_time"]
                for r in map(json.loads, f)
                if "phase_time" in r
            }
        starts = phase_starts(run_dir) + [("end", time.time())]
        print(f"{'phase':<16} {'kimg':>6} {'wall s':>7} {'img/s':>7} {'peak MiB':>9}")
        for (name, begin), (_, end) in zip(starts, starts[1:]):
            peak = max((mib for t, mib in samples if begin - 1 <= t <= end + 1), default=0.0)
            row = times.get(name, {})
            print(
                f"{name:<16} {row.get('kimg', 0):>6.1f} {row.get('wall_s', 0):>7.1f} "
                f"{row.get('steady_img_per_s', 0):>7.1f} {peak:>9.0f}"
            )
        print(f"whole command {wall / 60:.1f} min, peak {max(m for _, m in samples):.0f} MiB")
        out = os.path.join(run_dir, "out")
        for command in (
            [
                sys.executable,
                "-m",
                "progan_tf.generate",
                f"--run_dir={run_dir}",
                f"--out={out}",
                "--grid",
                "--num_images=16",
            ],
            [
                sys.executable,
                "-m",
                "progan_tf.export",
                f"--run_dir={run_dir}",
                f"--export_dir={os.path.join(run_dir, 'exported')}",
            ],
        ):
            subprocess.run(command, cwd=ROOT, check=True)
        print(f"grid and SavedModel written under {run_dir}")


if __name__ == "__main__":
    main(sys.argv[1:])

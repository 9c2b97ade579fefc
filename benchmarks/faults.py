"""Fault injection: kill -9 a training run at random moments, stop it with SIGTERM, damage its
checkpoints, resume it.

    python benchmarks/faults.py             # 20 kills (half during a checkpoint write), 6 SIGTERMs
    python benchmarks/faults.py --kills=4 --terms=2 --seed=1
    python benchmarks/faults.py --hostile   # hostile input instead (benchmarks/hostile.py)

One run directory is trained on the bundled emoji at 8x8 (networks wide enough that a checkpoint
takes a moment to write) and killed `--kills` times with SIGKILL: at a random moment, or, for
every other kill, as soon as TensorFlow's temporary checkpoint files appear (a kill during the
write). After every kill the same command starts again and must resume. Then `--terms` times
SIGTERM at a random moment: the run must save where it is, exit with 143, and the restart lose
no image. Then two damages: the
newest checkpoint's index deleted, and its data file truncated; each restart must resume from the
checkpoint before it. Reported: resumed / restarted / refused counts, and the images lost per
restart (the resumed image count against the last tick logged before the kill), which must stay
within one checkpoint interval. The run's figures go to docs/reliability.md. Not a test: it
takes minutes.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time

import machine  # this directory, first on sys.path when run as a script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKPOINT_KIMG = 0.256


def train_command(run_dir: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "progan_tf.train",
        f"--run_dir={run_dir}",
        "--resolution=8",
        "--config.conditional=False",
        "--config.class_balance=0",
        "--config.fmap_base=2048",
        "--config.fmap_max=256",
        "--config.total_kimg=1000",
        "--config.tick_kimg=0.064",
        f"--config.checkpoint_kimg={CHECKPOINT_KIMG}",
        "--config.snapshot_kimg=1000",
        "--config.compile_ahead=False",
    ]


def last_tick_images(run_dir: str) -> int:
    """The image count of the last tick in stats.jsonl (what the killed run had reached)."""
    path = os.path.join(run_dir, "stats.jsonl")
    last = 0
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    last = max(last, json.loads(line).get("images_seen", 0))
                except ValueError:  # a torn last line: the crash's worst case
                    pass
    return last


def temporaries(run_dir: str) -> set[str]:
    """TensorFlow's temporary files of a checkpoint being written, and our state file's."""
    patterns = ("ckpt-*_temp*", ".checkpoint.tmp*")
    return {
        p for pattern in patterns for p in glob.glob(os.path.join(run_dir, "checkpoints", pattern))
    }


def start(run_dir: str, log_path: str) -> subprocess.Popen:
    log = open(log_path, "a")
    return subprocess.Popen(train_command(run_dir), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def wait_started(
    process: subprocess.Popen, run_dir: str, log_path: str, offset: int, timeout: float = 180.0
) -> str:
    """Waits until this start (its output from `offset` on) has resumed or started and trained
    past its first tick; returns how it began."""
    deadline, began, first_tick = time.time() + timeout, None, None
    while time.time() < deadline:
        with open(log_path) as f:
            f.seek(offset)
            text = f.read()
        if process.poll() is not None:
            return "refused" if "error:" in text else "exited"
        mark = re.search(r"(resuming from kimg [0-9.]+|starting a new run)", text)
        if mark and began is None:
            began, first_tick = mark.group(1), last_tick_images(run_dir)
        if began is not None and last_tick_images(run_dir) > first_tick:
            return began
        time.sleep(0.2)
    return "timeout"


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--hostile", action="store_true", help="only the hostile-input cases (hostile.py)"
    )
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--terms", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--json", default=os.path.join(ROOT, "benchmarks", "results", "faults.jsonl")
    )
    args = parser.parse_args(argv)
    if args.hostile:
        import hostile  # noqa: PLC0415 - this directory

        hostile.main([])
        return
    rng = random.Random(args.seed)
    interval = round(CHECKPOINT_KIMG * 1000)
    counts = {
        "resumed": 0,
        "restarted": 0,
        "refused": 0,
        "lost_over_interval": 0,
        "during_write": 0,
    }
    losses, term_losses, term_exits, term_seconds = [], [], [], []
    with tempfile.TemporaryDirectory() as scratch:
        run_dir, log_path = os.path.join(scratch, "run"), os.path.join(scratch, "train.log")
        process = start(run_dir, log_path)
        began = wait_started(process, run_dir, log_path, 0)
        assert began == "starting a new run", began
        trials = [("kill", i % 2 == 1) for i in range(args.kills)] + [
            *[("term", False)] * args.terms,
            ("delete_index", False),
            ("truncate_data", False),
        ]
        for number, (kind, during_write) in enumerate(trials, 1):
            if kind == "kill":
                deadline, stale = time.time() + rng.uniform(2.0, 20.0), temporaries(run_dir)
                while time.time() < deadline and not (
                    during_write and temporaries(run_dir) - stale
                ):
                    time.sleep(0.001 if during_write else 0.05)
                caught = bool(during_write and temporaries(run_dir) - stale)
                counts["during_write"] += caught
                process.send_signal(signal.SIGKILL)
                process.wait()
            elif kind == "term":  # saves where it is and exits
                time.sleep(rng.uniform(2.0, 20.0))
                sent = time.time()
                process.send_signal(signal.SIGTERM)
                term_exits.append(process.wait(timeout=300))
                term_seconds.append(round(time.time() - sent, 1))
                with open(log_path) as f:
                    saved = re.findall(r"stopped by SIGTERM, saved ckpt-(\d+)", f.read())
                caught = False
            else:  # damage the newest checkpoint of the stopped run, then restart
                process.send_signal(signal.SIGKILL)
                process.wait()
                newest = sorted(
                    glob.glob(os.path.join(run_dir, "checkpoints", "ckpt-*.index")),
                    key=lambda p: int(re.search(r"ckpt-(\d+)", p).group(1)),
                )[-1][: -len(".index")]
                if kind == "delete_index":
                    os.remove(newest + ".index")
                else:
                    data = glob.glob(newest + ".data-*")[0]
                    os.truncate(data, os.path.getsize(data) // 2)
                caught = False
            reached = last_tick_images(run_dir)
            sys.path.insert(0, ROOT)
            from progan_tf import checkpoints  # noqa: PLC0415 - after the run's files settle

            found = checkpoints.list_checkpoints(os.path.join(run_dir, "checkpoints"))
            counts["checkpoints_left"] = counts.get("checkpoints_left", 0) + len(found)
            offset = os.path.getsize(log_path)
            process = start(run_dir, log_path)
            began = wait_started(process, run_dir, log_path, offset)
            if began.startswith("resuming"):
                counts["resumed"] += 1
                resumed_at = round(float(began.split()[-1]) * 1000)
                lost = max(0, reached - resumed_at)
                (term_losses if kind == "term" else losses).append(lost)
                if kind == "term":
                    counts["term_resumed_where_stopped"] = counts.get(
                        "term_resumed_where_stopped", 0
                    ) + (bool(saved) and int(saved[-1]) == resumed_at)
                # a damaged newest: one more interval
                limit = {"kill": interval, "term": 0}.get(kind, 2 * interval)
                # + one tick of images after the last log line
                counts["lost_over_interval"] += lost > limit + (64 if kind != "term" else 0)
            elif began == "starting a new run":
                counts["restarted"] += 1
            else:
                counts["refused"] += 1
            print(
                f"[{number}/{len(trials)}] {kind}{' during a checkpoint write' if caught else ''}: "
                "reached "
                f"{reached} images, {began}",
                flush=True,
            )
        process.send_signal(signal.SIGKILL)
        process.wait()
    row = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        **machine.describe(),
        "kills": args.kills,
        "seed": args.seed,
        "checkpoint_interval_images": interval,
        **counts,
        "max_images_lost": max(losses, default=0),
        "mean_images_lost": round(sum(losses) / max(len(losses), 1), 1),
        "terms": args.terms,
        "term_exit_codes": term_exits,
        "term_exit_seconds": term_seconds,
        "term_max_images_lost": max(term_losses, default=0),
    }
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])

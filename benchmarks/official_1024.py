"""A real-size release pickle: import it, then draw a 64-image 1024x1024 grid from it.

    python benchmarks/official_1024.py             # paper widths, random weights, ~2-4 min
    python benchmarks/official_1024.py --batch=64  # the grid in one call: the old behaviour

Builds a CelebA-HQ-sized pickle in the release's format (G, D and Gs of the paper's
1024x1024 networks, fused layers, random weights: about 277 MB; tests/official_reference.py
writes the format), then runs `python -m progan_tf.import_official` and `python -m
progan_tf.generate --num_images=64 --grid` on it as a user would, each its own process, and
reports each one's wall time and peak resident memory (ru_maxrss of the child), with the
command, date and machine. Appends a row to benchmarks/results/official_1024.jsonl.
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

import numpy as np

import machine  # this directory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import official_reference as ref  # noqa: E402


def child(command: list[str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """(seconds, peak resident GiB of this child alone, result) of one command."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own rusage
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        result = subprocess.CompletedProcess(command, process.returncode, out.read(), err.read())
    return seconds, usage.ru_maxrss / 2**20, result  # KiB -> GiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=0, help="generate --batch (0: its default)")
    parser.add_argument(
        "--jsonl", default=os.path.join(ROOT, "benchmarks", "results", "official_1024.jsonl")
    )
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    states = ref.celebahq_states(rng)
    with tempfile.TemporaryDirectory() as work:
        pkl = os.path.join(work, "karras2018iclr-celebahq-1024x1024.pkl")
        with open(pkl, "wb") as f:
            f.write(ref.release_pickle(states))
        del states
        size_mb = os.path.getsize(pkl) / 2**20
        print(f"pickle: {size_mb:.0f} MB", flush=True)
        run_dir = os.path.join(work, "run")
        imp_s, imp_peak, imported = child(
            [
                sys.executable,
                "-m",
                "progan_tf.import_official",
                f"--pkl={pkl}",
                f"--run_dir={run_dir}",
            ]
        )
        print(
            f"import: exit {imported.returncode}, {imp_s:.1f} s, peak {imp_peak:.2f} GiB",
            flush=True,
        )
        if imported.returncode:
            print(imported.stderr[-2000:])
            sys.exit(1)
        command = [
            sys.executable,
            "-m",
            "progan_tf.generate",
            f"--run_dir={run_dir}",
            f"--out={os.path.join(work, 'out')}",
            "--num_images=64",
            "--grid",
            *([f"--batch={args.batch}"] if args.batch else []),
        ]
        gen_s, gen_peak, generated = child(command)
        print(
            f"generate: exit {generated.returncode}, {gen_s:.1f} s, peak {gen_peak:.2f} GiB",
            flush=True,
        )
        print(generated.stderr.strip().splitlines()[-1:] or "")
    row = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes"),
        **machine.describe(),
        "command": "python benchmarks/official_1024.py"
        + (f" --batch={args.batch}" if args.batch else ""),
        "pickle_mb": size_mb,
        "import_s": imp_s,
        "import_peak_gib": imp_peak,
        "generate_exit": generated.returncode,
        "generate_s": gen_s,
        "generate_peak_gib": gen_peak,
        "generate_batch": args.batch or 4,
        "generate_stderr_tail": generated.stderr.strip().splitlines()[-1:],
    }
    os.makedirs(os.path.dirname(args.jsonl), exist_ok=True)
    with open(args.jsonl, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row))


if __name__ == "__main__":
    main()

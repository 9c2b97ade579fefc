"""Hostile input: files, pickles, flags and surroundings a user (or an attacker) can hand the
commands. Every case must end in at most one clear line, no traceback, bounded time and memory,
and no file lost.

    python benchmarks/hostile.py            # about 3 minutes on a 2-core CPU
    python benchmarks/faults.py --hostile   # the same, from the fault benchmark

Per case it records the exit code, the line the command printed (its `error:` line, else its
last line), seconds, the peak resident memory of the command's process (ru_maxrss via
os.wait4), whether a traceback was printed, and whether any file that existed before the
command (the source images, a dataset, a run's checkpoints) changed or went missing. Appends
one row per case to benchmarks/results/hostile.jsonl and prints a markdown table for
docs/reliability.md.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import io
import json
import os
import resource
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib

import numpy as np
from PIL import Image

import machine  # this directory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))
import official_reference as ref  # noqa: E402

TOOL = [sys.executable, os.path.join(ROOT, "tools", "dataset_tool.py")]
TRAIN = [sys.executable, "-m", "progan_tf.train"]
TINY = [
    "--resolution=8",
    "--xla=false",
    "--checkpoint_kimg=0.064",
    "--config.latent_size=8",
    "--config.fmap_base=32",
    "--config.fmap_max=8",
    "--config.lod_training_kimg=0.032",
    "--config.lod_transition_kimg=0.032",
    "--config.steps_per_call=2",
    "--config.tick_kimg=0.016",
    "--config.conditional=False",
    "--config.class_balance=0",
]
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nshowpage\n"


def digest(*roots: str) -> dict[str, str]:
    """Path -> sha256 of every file below `roots` (no lock files)."""
    out = {}
    for root in roots:
        for folder, _, names in os.walk(root):
            for name in names:
                path = os.path.join(folder, name)
                if name == ".lock" or os.path.islink(path):
                    continue
                with open(path, "rb") as f:
                    out[path] = hashlib.sha256(f.read()).hexdigest()
    return out


def lost(before: dict[str, str]) -> list[str]:
    """Files of `before` that are gone or changed."""
    now = digest(*{os.path.dirname(p) for p in before}) if before else {}
    return sorted(p for p, h in before.items() if now.get(p) != h)


def run(command: list[str], *, limit_bytes: int = 0, stdin_pipe_reader: int = 0) -> dict:
    """Runs `command`; exit code, printed line, seconds, peak GiB, traceback seen."""

    def limits():
        if limit_bytes:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    with tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True, preexec_fn=limits
        )
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        out.seek(0)
        text = out.read()
    return outcome(os.waitstatus_to_exitcode(status), text, seconds, usage.ru_maxrss)


def finish(process: subprocess.Popen, start: float) -> dict:
    """`outcome` of a process started at perf_counter `start`, once it ends (its line is the
    caller's to fill: its output went elsewhere)."""
    _, status, usage = os.wait4(process.pid, 0)
    return outcome(
        os.waitstatus_to_exitcode(status), "", time.perf_counter() - start, usage.ru_maxrss
    )


def outcome(code: int, text: str, seconds: float, maxrss_kib: int) -> dict:
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    return {
        "exit": code,
        "line": (errors[-1] if errors else lines[-1] if lines else "")[:220],
        "error_lines": len(errors),
        "seconds": round(seconds, 1),
        "peak_gib": round(maxrss_kib / 2**20, 2),
        "traceback": "Traceback" in text,
    }


def png_bomb(side: int) -> bytes:
    """A well-formed black RGB PNG of side x side pixels: a few MB on disk, side² x 3 bytes
    decoded (a decompression bomb)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    packer, row, parts = zlib.compressobj(9), b"\0" * (3 * side + 1), []
    for _ in range(side):
        parts.append(packer.compress(row))
    parts.append(packer.flush())
    idat = b"".join(parts)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def image_cases(work: str) -> list[tuple[str, callable]]:
    rng = np.random.default_rng(0)

    def good(folder: str) -> None:
        os.makedirs(folder, exist_ok=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
                os.path.join(folder, f"good{i}.png")
            )

    jpeg = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(jpeg, "JPEG")

    def writer(name: str, content) -> callable:
        def make(folder: str) -> None:
            good(folder)
            path = os.path.join(folder, name)
            if callable(content):
                content(path)
            else:
                with open(path, "wb") as f:
                    f.write(content)

        return make

    def wide(path):
        Image.new("RGB", (100000, 1)).save(path)

    def loops(path):
        os.symlink(os.path.basename(path), path)  # a link to itself
        os.symlink(".", os.path.join(os.path.dirname(path), "again"))  # a folder loop

    return [
        ("image: .eps (Ghostscript's format)", writer("a.eps", EPS)),
        ("image: EPS content named .png", writer("disguised.png", EPS)),
        ("image: PNG bomb, 20000x20000 (1.2 GB decoded)", writer("bomb.png", png_bomb(20000))),
        ("image: truncated JPEG", writer("cut.jpg", jpeg.getvalue()[: len(jpeg.getvalue()) // 2])),
        ("image: 100000x1 pixels", writer("wide.png", wide)),
        ("image: zero bytes", writer("empty.png", b"")),
        ("image: JPEG named .png", writer("jpeg.png", jpeg.getvalue())),
        ("image: symlink loops", writer("loop.png", loops)),
    ]


def pickle_cases(work: str) -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(0)
    kwargs = dict(num_channels=3, resolution=8, label_size=0, fmap_base=32, fmap_max=8)
    sizes = dict(
        resolution=8,
        channels=3,
        label_size=0,
        fmap_base=32,
        fmap_max=8,
        latent_size=8,
        fused=False,
        mbstd=4,
    )

    def states():
        g = ref.variables("G", rng, **sizes)
        d = ref.variables("D", rng, **sizes)
        return [
            ref.network_state(
                "G", "networks.G_paper", {**kwargs, "latent_size": 8, "fused_scale": False}, g
            ),
            ref.network_state("D", "networks.D_paper", {**kwargs, "fused_scale": False}, d),
            ref.network_state(
                "Gs",
                "networks.G_paper",
                {**kwargs, "latent_size": 8, "fused_scale": False},
                dict(g),
            ),
        ]

    good = ref.release_pickle(states())

    class Bomb:
        def __reduce__(self):
            return (np._core.multiarray.scalar, (np.dtype("V1000000000"),))

    import pickle  # noqa: PLC0415 - to write the hostile files, never to read one

    huge = states()
    for state in huge:
        state["static_kwargs"].update(fmap_base=1 << 24, fmap_max=1 << 20)
    nested = states()
    nested[0]["static_kwargs"]["fmap_max"] = "DEEPMARK"
    deep = ref.release_pickle(nested).replace(
        b"\x8c\x08DEEPMARK\x94", b"]" * 100_000 + b"a" * 99_999 + b"\x94"
    )
    return [
        ("pickle: a 1 GB numpy scalar from 60 bytes", pickle.dumps([Bomb()], protocol=2)),
        ("pickle: a setting nested 100,000 deep", deep),
        ("pickle: fmap_max 2^20 (networks of ~10^13 weights)", ref.release_pickle(huge)),
        ("pickle: truncated half way", good[: len(good) // 2]),
        ("pickle: a readable one (control)", good),
    ]


def newest_checkpoint(run_dir: str) -> int:
    """Image count of the newest checkpoint that reads completely (0: none)."""
    from progan_tf.checkpoints import find_restorable  # noqa: PLC0415

    path, _ = find_restorable(os.path.join(run_dir, "checkpoints"))
    return int(path.rsplit("-", 1)[1]) if path else 0


def checkpoint_lost(run_dir: str, before: int) -> list[str]:
    """[] if the run's newest readable checkpoint is at `before` images or later (a rotation
    of older ones by keep_checkpoints is not a loss), else what is left."""
    after = newest_checkpoint(run_dir)
    return [] if after >= before else [f"newest checkpoint ckpt-{after}, was ckpt-{before}"]


def row(case: str, result: dict, lost_files: list[str]) -> dict:
    return {"case": case, **result, "lost": lost_files}


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--jsonl", default=os.path.join(ROOT, "benchmarks", "results", "hostile.jsonl")
    )
    args = parser.parse_args(argv)
    from progan_tf import cli  # noqa: PLC0415

    cli.quiet_tensorflow()  # this process reads checkpoints (TensorFlow) between the cases
    rows = []
    with tempfile.TemporaryDirectory() as work:
        # images: each case a folder of 4 good images and the hostile one
        for number, (case, make) in enumerate(image_cases(work)):
            source = os.path.join(work, f"src{number}")
            make(source)
            before = digest(source)
            result = run(
                [
                    *TOOL,
                    "create_from_images",
                    f"--source={source}",
                    f"--dest={os.path.join(work, f'ds{number}')}",
                    "--resolution=8",
                ]
            )
            rows.append(row(case, result, lost(before)))
            print(rows[-1], flush=True)
        # pickles
        for number, (case, data) in enumerate(pickle_cases(work)):
            pkl = os.path.join(work, f"p{number}.pkl")
            with open(pkl, "wb") as f:
                f.write(data)
            before = digest(os.path.dirname(pkl))
            result = run(
                [
                    sys.executable,
                    "-m",
                    "progan_tf.import_official",
                    f"--pkl={pkl}",
                    f"--run_dir={os.path.join(work, f'imported{number}')}",
                ]
            )
            rows.append(
                row(case, result, lost({p: h for p, h in before.items() if p.endswith(".pkl")}))
            )
            print(rows[-1], flush=True)
        # flags
        dataset = os.path.join(work, "ds0")
        for flag in (
            "--total_kimg=inf",
            "--total_kimg=nan",
            "--total_kimg=-1",
            "--resolution=48",
            "--config.lod_training_kimg=inf",
        ):
            command = [*TRAIN, f"--data_dir={dataset}", f"--run_dir={work}/flags", *TINY, flag]
            rows.append(row(f"flag: {flag}", run(command), []))
            print(rows[-1], flush=True)
        # a run with checkpoints, then what happens around it
        run_dir = os.path.join(work, "run")
        base = [*TRAIN, f"--data_dir={dataset}", f"--run_dir={run_dir}", *TINY]
        first = run([*base, "--total_kimg=0.128"])
        assert first["exit"] == 0, first
        before = newest_checkpoint(run_dir)
        full = run([*base, "--total_kimg=0.256"], limit_bytes=16 << 10)
        rows.append(
            row(
                "disk: files limited to 16 KB (ulimit -f) on resume",
                full,
                checkpoint_lost(run_dir, before),
            )
        )
        print(rows[-1], flush=True)
        # a dead output pipe: `train ... 2>&1 | head -n 2`, the run must go on to its end
        before = newest_checkpoint(run_dir)
        start = time.perf_counter()
        process = subprocess.Popen(
            [*base, "--total_kimg=0.320"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(2):
            process.stdout.readline()
        process.stdout.close()
        result = finish(process, start)
        result["line"] = (
            f"(nothing: the reader is gone) ran on to ckpt-{newest_checkpoint(run_dir)}"
        )
        rows.append(
            row("output: `| head -n 2` (the reader gone)", result, checkpoint_lost(run_dir, before))
        )
        print(rows[-1], flush=True)
        # two hang-ups, as a closing terminal and then its shell send them
        before = newest_checkpoint(run_dir)
        start = time.perf_counter()
        process = subprocess.Popen(
            [*base, "--total_kimg=100"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        stats = os.path.join(run_dir, "stats.jsonl")
        lines = sum(1 for _ in open(stats))
        while sum(1 for _ in open(stats)) < lines + 3:
            time.sleep(0.2)
        process.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        process.send_signal(signal.SIGHUP)
        result = finish(process, start)
        log = open(os.path.join(run_dir, "log.txt")).read()
        stopped = [line for line in log.splitlines() if "stopped by SIGHUP" in line]
        result["line"] = "log.txt: " + (stopped[-1].split(" ", 2)[-1][:180] if stopped else "")
        rows.append(
            row("signals: SIGHUP twice, 0.3 s apart", result, checkpoint_lost(run_dir, before))
        )
        print(rows[-1], flush=True)
    stamp = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes"),
        **machine.describe(),
    }
    os.makedirs(os.path.dirname(args.jsonl), exist_ok=True)
    with open(args.jsonl, "a") as f:
        for r in rows:
            f.write(json.dumps({**stamp, **r}) + "\n")
    print("\n| case | exit | what it printed | s | peak GiB | traceback | files lost |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        line = r["line"].replace("|", "\\|")
        print(
            f"| {r['case']} | {r['exit']} | {line} | {r['seconds']} | {r['peak_gib']} | "
            f"{'yes' if r['traceback'] else 'no'} | {len(r['lost']) or 'none'} |"
        )
    return rows


if __name__ == "__main__":
    main()

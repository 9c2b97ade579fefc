"""The paper's Table 1 in miniature: every row of configs/paper_table1.py trained, SWD, MS-SSIM.

    # rows a-g, seeds 0 and 1, two at a time
    python benchmarks/paper_table1.py
    python benchmarks/paper_table1.py --rows=ab --seeds=0 --jobs=1
    python benchmarks/paper_table1.py --report                 # the markdown table from the results
    python benchmarks/paper_table1.py --rows=defg --kimg=256 --inception=FILE \
        --jsonl=benchmarks/results/paper_table1_256kimg.jsonl     # 4x the budget, FID / KID too

Each (row, seed) is one benchmarks/quality.py run (train into a temporary directory, then SWD
per level against half of the reals with the real-vs-real floor beside it, and MS-SSIM of
generated pairs), appended to --jsonl with label `table1-<row>`. With --jobs=2 two runs go at
once, each pinned to its own core (taskset): SWD and MS-SSIM do not depend on speed, but the
wall times of such runs are not speed figures. --report averages the seeds per row and prints
the table that docs/paper_table1.md holds, beside the paper's CelebA figures.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS = "abcdefg"
NAMES = {
    "a": "Gulrajani et al. (2017)",
    "b": "+ progressive growing",
    "c": "+ small minibatch",
    "d": "+ revised training parameters",
    "e": "+ minibatch stddev",
    "f": "+ equalized learning rate",
    "g": "+ pixelwise normalization",
}
# The paper's Table 1, CelebA 128x128 (SWD x 1e3 at 128 / 64 / 32 / 16, average; MS-SSIM)
PAPER_CELEBA = {
    "a": ("12.99 / 7.79 / 7.62 / 8.73", 9.28, 0.2854),
    "b": ("4.62 / 2.64 / 3.78 / 6.06", 4.28, 0.2838),
    "c": ("75.42 / 41.33 / 41.62 / 26.57", 46.23, 0.4065),
    "d": ("9.20 / 6.53 / 4.71 / 11.84", 8.07, 0.3027),
    "e": ("13.94 / 5.67 / 2.82 / 5.71", 7.04, 0.2950),
    "f": ("4.42 / 3.28 / 2.32 / 7.52", 4.39, 0.2902),
    "g": ("4.06 / 3.04 / 2.02 / 5.13", 3.56, 0.2845),
}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default=ROWS, help="Rows to train, e.g. abcdefg.")
    parser.add_argument("--seeds", default="0,1", help="Comma-separated seeds.")
    parser.add_argument(
        "--jobs", type=int, default=2, help="Runs at once, each pinned to one core (1: unpinned)."
    )
    parser.add_argument(
        "--jsonl", default=os.path.join(ROOT, "benchmarks", "results", "paper_table1.jsonl")
    )
    parser.add_argument(
        "--kimg",
        type=float,
        default=64.0,
        help="The budget; the phases scale with it (64: the presets' 8-kimg phases).",
    )
    parser.add_argument(
        "--inception", default="", help="The 2015 Inception network's file: FID and KID too."
    )
    parser.add_argument(
        "--report", action="store_true", help="Print the table from --jsonl; train nothing."
    )
    parser.add_argument(
        "--picture", default="", help="Also write each row's seed-0 samples, side by side, here."
    )
    args = parser.parse_args(argv)
    unknown = set(args.rows) - set(ROWS)
    if unknown:
        parser.error(
            f"--rows={args.rows}: unknown rows {''.join(sorted(unknown))}; choose from {ROWS}"
        )
    return args


def label(row: str, kimg: float = 64.0) -> str:
    """The run's name in --jsonl and its grid's: table1-d, or table1-256kimg-d at another budget."""
    return f"table1-{row}" if kimg == 64.0 else f"table1-{kimg:g}kimg-{row}"


def rows_of(jsonl: str, kimg: float, seed: int | None = None) -> dict[str, list[dict]]:
    """The records of the runs at this budget, by row (one seed's only when `seed` is given)."""
    rows = collections.defaultdict(list)
    with open(jsonl) as f:
        for line in f:
            record = json.loads(line)
            for row in ROWS:
                if record["label"] == label(row, kimg) and seed in (None, record["seed"]):
                    rows[row].append(record)
    return rows


def command(row: str, seed: int, jsonl: str, kimg: float = 64.0, inception: str = "") -> list[str]:
    scratch = os.devnull  # quality.py's markdown rows: the report is made from the JSON rows
    scale = kimg / 64.0  # the presets' schedule (8-kimg phases, ticks of 4) stretched to the budget
    budget = (
        []
        if kimg == 64.0
        else [
            f"--config.total_kimg={kimg:g}",
            f"--config.lod_training_kimg={8 * scale:g}",
            f"--config.lod_transition_kimg={8 * scale:g}",
            f"--config.tick_kimg={4 * scale:g}",
            f"--config.snapshot_kimg={16 * scale:g}",
            f"--config.checkpoint_kimg={16 * scale:g}",
        ]
    )
    return [
        sys.executable,
        os.path.join(ROOT, "benchmarks", "quality.py"),
        f"--label={label(row, kimg)}",
        f"--seed={seed}",
        f"--jsonl={jsonl}",
        f"--markdown={scratch}",
        f"--grid_dir={os.path.join(os.path.dirname(jsonl), 'grids')}",
        *([f"--inception={inception}"] if inception else []),
        "--",
        f"--config={os.path.join(ROOT, 'configs', 'paper_table1.py')}:{row}",
        *budget,
    ]


def train_all(args) -> None:
    runs = [(row, int(seed)) for row in args.rows for seed in args.seeds.split(",")]
    pin = args.jobs > 1 and shutil.which("taskset") is not None
    cores = list(range(os.cpu_count() or 1))
    pending, running, done, start = list(runs), {}, 0, time.time()
    os.makedirs(os.path.join(ROOT, "benchmarks", "results", "logs"), exist_ok=True)
    print(f"{len(runs)} runs, {args.jobs} at a time{' (one core each)' if pin else ''}", flush=True)
    while pending or running:
        while pending and len(running) < args.jobs:
            row, seed = pending.pop(0)
            core = (
                next(c for c in cores if c not in {c for c, _ in running.values()}) if pin else None
            )
            cmd = (["taskset", "-c", str(core)] if pin else []) + command(
                row, seed, args.jsonl, args.kimg, args.inception
            )
            log = open(
                os.path.join(
                    ROOT, "benchmarks", "results", "logs", f"{label(row, args.kimg)}-seed{seed}.log"
                ),
                "w",
            )
            running[subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)] = (
                core,
                (row, seed, log),
            )
        time.sleep(2)
        for process in [p for p in running if p.poll() is not None]:
            _, (row, seed, log) = running.pop(process)
            log.close()
            done += 1
            elapsed = time.time() - start
            eta = elapsed / done * (len(runs) - done)
            status = (
                "ok"
                if process.returncode == 0
                else f"FAILED (exit {process.returncode}, see {log.name})"
            )
            print(
                f"[{done}/{len(runs)}] row {row} seed {seed}: {status}; {elapsed / 60:.1f} min, "
                f"ETA {eta / 60:.1f} min",
                flush=True,
            )


def report(jsonl: str, kimg: float = 64.0) -> str:
    rows = rows_of(jsonl, kimg)
    with_fid = bool(rows) and all(r.get("inception") for v in rows.values() for r in v)
    lines = [
        "| row | seeds | SWD x1e3 32 / 16 (per seed) | SWD avg (mean) | x floor | MS-SSIM (mean) | "
        "paper CelebA SWD 128 / 64 / 32 / 16 | paper avg | paper MS-SSIM |"
        + (" FID (per seed) | KID (mean) |" if with_fid else ""),
        "|---|---|---|---|---|---|---|---|---|" + ("---|---|" if with_fid else ""),
    ]
    for row in ROWS:
        if row not in rows:
            continue
        records = rows[row]
        levels = "; ".join(
            " / ".join(f"{v:.1f}" for k, v in r["swd"].items() if k != "swd_avg") for r in records
        )
        avg = sum(r["swd"]["swd_avg"] for r in records) / len(records)
        ratio = sum(r["ratio_to_floor"] for r in records) / len(records)
        ms = sum(r["ms_ssim"] for r in records) / len(records)
        each = ", ".join(f"{r['swd']['swd_avg']:.1f}" for r in records)
        paper = PAPER_CELEBA[row]
        lines.append(
            f"| ({row}) {NAMES[row]} | {','.join(str(r['seed']) for r in records)} | {levels} | "
            f"{avg:.1f} ({each}) | {ratio:.2f} | {ms:.4f} | {paper[0]} | {paper[1]:.2f} | "
            f"{paper[2]:.4f} |"
        )
        if with_fid:  # runs with --inception
            fids = [r["inception"]["fid"] for r in records]
            kids = [r["inception"]["kid"][0] for r in records]
            lines[-1] += (
                f" {sum(fids) / len(fids):.1f} ({', '.join(f'{v:.1f}' for v in fids)}) | "
                f"{sum(kids) / len(kids):.4f} |"
            )
    floors = [r["swd_floor"]["swd_avg"] for records in rows.values() for r in records]
    reals = [r["ms_ssim_reals"] for records in rows.values() for r in records]
    if floors:
        lines.append("")
        lines.append(
            f"Real-vs-real SWD floor (avg): {sum(floors) / len(floors):.1f}; MS-SSIM of real "
            "pairs: "
            f"{sum(reals) / len(reals):.4f}."
        )
    return "\n".join(lines)


def picture(
    jsonl: str, path: str, kimg: float = 64.0, tile: int = 32, rows: int = 4, columns: int = 4
) -> None:
    """The first `rows` x `columns` samples of each row's seed-0 grid, a labelled block per row."""
    from PIL import Image, ImageDraw  # noqa: PLC0415

    grids = {row: os.path.join(ROOT, r[0]["grid"]) for row, r in rows_of(jsonl, kimg, 0).items()}
    blocks = [
        (row, Image.open(grids[row]).convert("RGB"))
        for row in ROWS
        if row in grids and os.path.exists(grids[row])
    ]
    step = tile  # the grids: 32-px tiles, no gap
    width, label = columns * step, 14
    sheet = Image.new("RGB", (len(blocks) * (width + 6), rows * step + label), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (row, grid) in enumerate(blocks):
        x = i * (width + 6)
        sheet.paste(grid.crop((0, 0, width, rows * step)), (x, label))
        draw.text((x + 2, 1), f"({row})", fill="black")
    sheet.save(path)


def main(argv):
    args = parse_args(argv)
    if not args.report:
        train_all(args)
    print(report(args.jsonl, args.kimg))
    if args.picture:
        picture(args.jsonl, args.picture, args.kimg)


if __name__ == "__main__":
    main(sys.argv[1:])

"""The paper's Figure 4 in miniature: progressive growing against not, SWD over wall-clock time.

    pip install -r benchmarks/requirements.txt          # matplotlib, for the plot
    # trains both runs one after the other (timed)
    python benchmarks/paper_figure4.py
    # an existing, timed run as one arm
    python benchmarks/paper_figure4.py --reuse progressive=runs/demo64
    python benchmarks/paper_figure4.py --plot_only        # re-plots from the kept run directories

Two runs of --config (the 64x64 demo recipe, configs/demo_64.py, by default), the same seed and
image budget, one progressive and one with --config.progressive=False, trained one at a time
(their wall times are compared) keeping a checkpoint every --checkpoint_kimg. Then, for every
checkpoint, the EMA generator draws --num_images images (conditional runs: the reals' classes)
at its stage's resolution, upsampled (nearest) to the final resolution as the reference's
networks output them, and their SWD per level against the reals is taken. Written to --out:
figure4.png (SWD per level against wall-clock minutes, as the paper's Figure 4 a/b),
figure4.json (every point, per-stage images/s, wall times) and the run directories. The wall
clock of a checkpoint is read from the run's log.txt (training, compiles, snapshots and
checkpoint writes included; the SWD evaluations run afterwards, outside it).

`--reuse NAME=DIR` takes arm NAME from a finished run made with the same --config, seed and
`--config.keep_checkpoints=1000 --config.checkpoint_kimg=K` (e.g. benchmarks/quality.py's demo
row): its wall time is read from its log.txt, so it must have run alone on the machine too.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import time

import machine  # this directory, first on sys.path when run as a script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from progan_tf import cli  # noqa: E402

cli.quiet_tensorflow()

import numpy as np  # noqa: E402

RUNS = {"progressive": [], "non-progressive": ["--config.progressive=False"]}


def parse_args(argv):
    train_args = []
    if "--" in argv:  # the rest goes to both training commands (e.g. a shorter smoke run)
        cut = argv.index("--")
        argv, train_args = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "figure4"))
    parser.add_argument(
        "--config",
        default=os.path.join(ROOT, "configs", "demo_64.py"),
        help="Config file (FILE[:ARG]).",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint_kimg", type=float, default=8.0)
    parser.add_argument(
        "--reuse",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="Take arm NAME (progressive, non-progressive) from the finished run DIR.",
    )
    parser.add_argument("--num_images", type=int, default=1024, help="Images per SWD set.")
    parser.add_argument("--plot_only", action="store_true")
    args = parser.parse_args(argv)
    args.train_args = train_args
    args.reuse = dict(item.split("=", 1) for item in args.reuse)
    unknown = set(args.reuse) - set(RUNS)
    if unknown:
        parser.error(f"--reuse {', '.join(sorted(unknown))}: the arms are {', '.join(RUNS)}")
    return args


def train(run_dir: str, extra: list[str], args) -> None:
    command = [
        sys.executable,
        "-m",
        "progan_tf.train",
        f"--run_dir={run_dir}",
        f"--config={args.config}",
        f"--config.seed={args.seed}",
        f"--config.checkpoint_kimg={args.checkpoint_kimg}",
        "--config.keep_checkpoints=1000",
        *extra,
        *args.train_args,
    ]
    print("$ " + " ".join(command), file=sys.stderr, flush=True)
    subprocess.run(command, cwd=ROOT, check=True)


def checkpoint_times(run_dir: str) -> dict[int, float]:
    """Checkpoint image count -> seconds since the run started, from log.txt's timestamps
    ("end": the last line's)."""
    times, start = {}, None
    with open(os.path.join(run_dir, "log.txt")) as f:
        for line in f:
            if not re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", line):
                continue  # the lines of a multi-line entry (the phase table)
            stamp = datetime.datetime.strptime(line[:19], "%Y-%m-%d %H:%M:%S")
            start = start or stamp
            found = re.search(r"saved .*ckpt-(\d+)$", line.strip())
            if found:
                times[int(found.group(1))] = (stamp - start).total_seconds()
            times["end"] = (stamp - start).total_seconds()
    return times


def curve(run_dir: str, args) -> list[dict]:
    """SWD per level of every checkpoint's EMA generator, fakes upsampled to the final
    resolution."""
    from progan_tf import checkpoints, data, images, run_reader  # noqa: PLC0415
    from progan_tf.metrics import swd  # noqa: PLC0415

    times = checkpoint_times(run_dir)
    info = data.load_info(run_reader.load_run(run_dir).dataset_path)
    final = info.resolution
    reals, labels = zip(*data.iterate_level(info, final))
    reals, labels = (
        np.concatenate(reals)[: args.num_images],
        np.concatenate(labels)[: args.num_images],
    )
    points = []
    for path in sorted(
        checkpoints.list_checkpoints(os.path.join(run_dir, "checkpoints")),
        key=lambda p: int(p.rsplit("-", 1)[1]),
    ):
        run = run_reader.load_run(run_dir, os.path.basename(path))
        classes = labels.argmax(axis=1) if run.generator.arch.num_labels else None
        fakes = run.generate(
            images.latents(len(reals), run.generator.arch.latent_size, args.seed + 12345), classes
        )
        factor = final // run.resolution
        if factor > 1:
            fakes = np.repeat(np.repeat(fakes, factor, axis=1), factor, axis=2)
        result = swd.swd([reals], [fakes], final, seed=args.seed)
        points.append(
            {
                "kimg": run.kimg,
                "seconds": times.get(run.images_seen),
                "stage": run.phase.name,
                **{k: round(v, 2) for k, v in result.items()},
            }
        )
        print(
            f"{os.path.basename(run_dir)} kimg {run.kimg:6.1f} {run.phase.name:<16} "
            + " ".join(f"{k} {v:6.1f}" for k, v in result.items()),
            file=sys.stderr,
            flush=True,
        )
    return points


def phase_speeds(run_dir: str) -> list[dict]:
    with open(os.path.join(run_dir, "stats.jsonl")) as f:
        return [json.loads(line)["phase_time"] for line in f if "phase_time" in line]


def plot(results: dict, path: str) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    levels = [
        k for k in results["progressive"]["points"][0] if k.startswith("swd") and k != "swd_avg"
    ]
    fig, axes = plt.subplots(
        1, len(levels) + 1, figsize=(4.2 * (len(levels) + 1), 3.6), sharey=True
    )
    for ax, key in zip(axes, [*levels, "swd_avg"]):
        for name, style in (("non-progressive", "C0--"), ("progressive", "C1-")):
            points = [p for p in results[name]["points"] if p["seconds"] is not None]
            ax.plot(
                [p["seconds"] / 60 for p in points],
                [p[key] for p in points],
                style,
                marker=".",
                label=name,
            )
        ax.set_title(f"SWD x1e3, level {key[3:]}" if key != "swd_avg" else "SWD x1e3, average")
        ax.set_xlabel("wall-clock minutes")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("SWD x1e3 (lower is better)")
    axes[0].legend()
    fig.suptitle(
        f"Progressive growing vs not, {results.get('config', 'configs/paper_table1.py:g')}, "
        f"{results['machine']} {results.get('cpu', '')}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    summary_path = os.path.join(args.out, "figure4.json")
    if args.plot_only:
        with open(summary_path) as f:
            results = json.load(f)
    else:
        results = {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            **machine.describe(),
            "seed": args.seed,
            "config": os.path.relpath(args.config, ROOT),
            "train_args": args.train_args,
            "reused": args.reuse,
        }
        run_dirs = {name: args.reuse.get(name, os.path.join(args.out, name)) for name in RUNS}
        for name, extra in RUNS.items():  # one at a time: their wall times are compared
            if name not in args.reuse:
                train(run_dirs[name], extra, args)
        for (
            name,
            run_dir,
        ) in run_dirs.items():  # both from log.txt: first line to last, process start excluded
            results[name] = {"wall_seconds": checkpoint_times(run_dir)["end"]}
            results[name].update(points=curve(run_dir, args), phases=phase_speeds(run_dir))
        with open(summary_path, "w") as f:
            json.dump(results, f, indent=1)
    plot(results, os.path.join(args.out, "figure4.png"))
    for name in RUNS:
        last = results[name]["points"][-1]
        print(
            f"{name}: {results[name]['wall_seconds'] / 60:.1f} min for {last['kimg']:.0f} kimg, "
            "final SWD avg "
            f"{last['swd_avg']:.1f}; "
            + ", ".join(
                f"{p['phase']} {p['steady_img_per_s']} img/s" for p in results[name]["phases"]
            )
        )


if __name__ == "__main__":
    main(sys.argv[1:])

"""Quality at a fixed training budget: train, then SWD of the EMA generator beside the real floor.

    python benchmarks/quality.py                                   # the demo config, seed 0
    python benchmarks/quality.py --label=native-gp --seed=1 -- --config.gp_scale=native
    python benchmarks/quality.py --run_dir=runs/x --checkpoint=ckpt-168000   # a kept checkpoint
    python benchmarks/quality.py --data_dir=datasets/glyphs --label=glyphs \\
        -- --config.mirror_augment=False

Everything after `--` goes to `python -m progan_tf.train` unchanged (config file, keys), so a
row of docs/quality.md is one command. The run trains into a fresh temporary run directory
(or --run_dir), timed as a whole process, then:

- the dataset's images at the final resolution are split into two halves A and B (fixed
  order); n = min(--num_images, |A|);
- the EMA generator draws n images (seeded latents; conditional runs use A's labels);
- SWD x 1e3 per level and average (the paper's descriptor, progan_tf.metrics.swd) of the
  fakes against A, and of B against A: the real-vs-real floor at the same counts;
- MS-SSIM of consecutive pairs of those fakes, and of A's images for comparison (the small-image
  variant of progan_tf.metrics.ms_ssim below 176 px);
- with --inception=FILE (the 2015 Inception network, docs/guide.md "FID and KID"): FID and
  KID of the fakes against A, and of B against A;
- a sample grid of 64 fakes is written beside the results;
- conditional runs: label fidelity, class by class (`label_fidelity`): are the fakes drawn for a
  class nearest to that class's reals? Each class's reals are split in two halves (even and odd
  record order); 128 fakes per class and the odd halves are compared with the even halves by
  the Fréchet distance of diagonal Gaussians over 16x16 thumbnails (per-pixel mean and
  standard deviation: colour and layout, which SWD's per-set normalisation leaves out); a class
  is followed when its fakes' nearest class is itself. The odd halves are the control: how
  often real images of a class pass the same test.

One JSON row goes to --jsonl and one markdown row to --markdown (and stdout). The training
budget is the config's total_kimg (the demo's unless overridden); wall time is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import machine  # this directory, first on sys.path when run as a script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from progan_tf import cli  # noqa: E402

cli.quiet_tensorflow()  # the training command's settings (oneDNN on), here and in its subprocess

import numpy as np  # noqa: E402


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    train_args = []
    if "--" in argv:
        cut = argv.index("--")
        argv, train_args = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", default="demo", help="Name of the row.")
    parser.add_argument("--seed", type=int, default=0, help="--config.seed of the run.")
    parser.add_argument(
        "--data_dir", default="", help="Dataset directory (default: the bundled emoji)."
    )
    parser.add_argument(
        "--run_dir", default="", help="Train here (default: a temporary directory, removed)."
    )
    parser.add_argument(
        "--num_images",
        type=int,
        default=2048,
        help="Images per SWD set (capped at half the dataset).",
    )
    parser.add_argument(
        "--jsonl", default=os.path.join(ROOT, "benchmarks", "results", "quality.jsonl")
    )
    parser.add_argument(
        "--markdown", default=os.path.join(ROOT, "benchmarks", "results", "quality.md")
    )
    parser.add_argument(
        "--inception", default="", help="The 2015 Inception network's file: FID and KID too."
    )
    parser.add_argument("--grid_dir", default=os.path.join(ROOT, "benchmarks", "results", "grids"))
    parser.add_argument(
        "--checkpoint",
        default="",
        help="Measure this checkpoint (ckpt-N) of an existing --run_dir without training; its "
        "wall time is read from the run's log.txt (the training command's process start excluded).",
    )
    args = parser.parse_args(argv)
    if args.checkpoint and not args.run_dir:
        parser.error("--checkpoint needs the --run_dir that holds it")
    return args, train_args


def train(run_dir: str, data_dir: str, seed: int, train_args: list[str]) -> float:
    """Runs the training CLI; returns its wall seconds."""
    command = [sys.executable, "-m", "progan_tf.train", f"--run_dir={run_dir}"]
    command += [f"--data_dir={data_dir}"] if data_dir else []
    # the seed after a --config=FILE among train_args, as absl wants
    command += [*train_args, f"--config.seed={seed}"]
    print("$ " + " ".join(command), file=sys.stderr, flush=True)
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    return time.perf_counter() - start


def log_seconds_to(run_dir: str, checkpoint: str) -> float:
    """Seconds from the run's first log line to the line that saved `checkpoint`."""
    import datetime  # noqa: PLC0415

    start = end = None
    with open(os.path.join(run_dir, "log.txt")) as f:
        for line in f:
            try:
                stamp = datetime.datetime.strptime(line[:19], "%Y-%m-%d %H:%M:%S")
            except ValueError:
                continue  # a line of a multi-line entry
            start = start or stamp
            if line.rstrip().endswith(f"/{checkpoint}"):
                end = stamp
    if end is None:
        raise SystemExit(f"{run_dir}/log.txt does not say when {checkpoint} was saved")
    return (end - start).total_seconds()


def measure(
    run_dir: str, num_images: int, seed: int, checkpoint: str | None = None, inception: str = ""
) -> dict:
    """SWD of the run's EMA generator vs half A of the reals, and of half B vs half A; FID and
    KID the same way with the 2015 Inception network when `inception` names its file."""
    import tensorflow as tf  # noqa: PLC0415

    from progan_tf import data, images, run_reader  # noqa: PLC0415
    from progan_tf.metrics import ms_ssim, swd  # noqa: PLC0415

    run = run_reader.load_run(run_dir, checkpoint)
    info = data.load_info(run.dataset_path)
    reals, labels = zip(*data.iterate_level(info, run.resolution))
    reals, labels = np.concatenate(reals), np.concatenate(labels)
    half = len(reals) // 2
    n = min(num_images, half)
    set_a, set_b = reals[:n], reals[half : half + n]
    classes = labels[:n].argmax(axis=1) if run.generator.arch.num_labels else None
    fakes = run.generate(images.latents(n, run.generator.arch.latent_size, seed + 12345), classes)
    fake = swd.swd([fakes], [set_a], run.resolution, seed=seed)
    floor = swd.swd([set_b], [set_a], run.resolution, seed=seed)
    # the picture: 64 samples, one row per class when conditional (same latents as above)
    grid_classes, columns = images.class_rows(64, run.generator.arch.num_labels)
    if grid_classes is None:
        grid = images.make_grid(fakes[:64])
    else:
        count = len(grid_classes)
        grid_fakes = run.generate(
            images.latents(count, run.generator.arch.latent_size, seed + 12345), grid_classes
        )
        grid = images.make_grid(grid_fakes, columns=columns)
    fidelity = None
    if run.generator.arch.num_labels:
        fidelity = label_fidelity(run, reals, labels.argmax(axis=1), seed)
    inception_scores = None
    if inception:
        from progan_tf.metrics import inception as inception_lib  # noqa: PLC0415
        from progan_tf.metrics.measure import inception_scores as scores_of  # noqa: PLC0415

        features = inception_lib.InceptionFeatures(inception)
        a, b = cached_features(features, inception, run.dataset_path, run.resolution, set_a, set_b)
        of_fakes = scores_of(a, features([fakes]), ["fid", "kid"], seed)
        of_reals = scores_of(a, b, ["fid", "kid"], seed)
        inception_scores = {
            "fid": of_fakes["fid"],
            "fid_floor": of_reals["fid"],
            "kid": (of_fakes["kid"], of_fakes["kid_std"]),  # (mean, std over subsets)
            "kid_floor": (of_reals["kid"], of_reals["kid_std"]),
        }
    del tf
    return {
        "inception": inception_scores,
        "label_fidelity": fidelity,
        "n": n,
        "fake": fake,
        "floor": floor,
        "grid": grid,
        "kimg": run.kimg,
        "resolution": run.resolution,
        "ms_ssim": ms_ssim.ms_ssim_consecutive_pairs([fakes]),
        "ms_ssim_reals": ms_ssim.ms_ssim_consecutive_pairs([set_a]),
    }


def cached_features(features, inception: str, dataset: str, resolution: int, *sets):
    """The Inception features of the reals' sets, kept in the temporary directory between runs
    on one dataset (on a CPU the network takes minutes per thousand images)."""
    import hashlib  # noqa: PLC0415

    stat = os.stat(inception)
    key = f"{os.path.abspath(dataset)}|{resolution}|{[len(s) for s in sets]}|{stat.st_size}"
    key += "|" + hashlib.sha1(b"".join(s[:4].tobytes() for s in sets)).hexdigest()
    path = os.path.join(
        tempfile.gettempdir(), f"progan_tf-inception-{hashlib.sha1(key.encode()).hexdigest()}.npz"
    )
    if os.path.exists(path):
        with np.load(path) as cached:
            return [cached[f"set{i}"] for i in range(len(sets))]
    out = [features([s]) for s in sets]
    np.savez(path + ".tmp.npz", **{f"set{i}": f for i, f in enumerate(out)})
    os.replace(path + ".tmp.npz", path)
    return out


def thumbnail_statistics(images_uint8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel mean and standard deviation of 16x16 box-filtered thumbnails in [0, 1]."""
    n, r = len(images_uint8), images_uint8.shape[1]
    f = r // 16
    x = images_uint8.astype(np.float32).reshape(n, 16, f, 16, f, -1).mean(axis=(2, 4)) / 255
    x = x.reshape(n, -1)
    return x.mean(axis=0), x.std(axis=0)


def nearest_classes(sets: list[np.ndarray], references: list[tuple]) -> list[int]:
    """For each image set, the index of the reference statistics nearest by the Fréchet
    distance of diagonal Gaussians, |mu_a - mu_b|^2 + |sd_a - sd_b|^2."""
    nearest = []
    for images_uint8 in sets:
        mu, sd = thumbnail_statistics(images_uint8)
        distances = [np.sum((mu - m) ** 2) + np.sum((sd - s) ** 2) for m, s in references]
        nearest.append(int(np.argmin(distances)))
    return nearest


def followed(found: list[int | None]) -> str:
    """ "k/n": the classes whose nearest class is their own, of those measured."""
    measured = [(c, k) for c, k in enumerate(found) if k is not None]
    return f"{sum(c == k for c, k in measured)}/{len(measured)}"


def label_fidelity(run, reals: np.ndarray, classes: np.ndarray, seed: int, per_class: int = 128):
    """{"fakes": nearest class of each class's fakes, "reals": of each class's held-out half}
    (module docstring); classes without two images are left out (None)."""
    from progan_tf import images  # noqa: PLC0415

    num_classes = run.generator.arch.num_labels
    members = [np.flatnonzero(classes == c) for c in range(num_classes)]
    usable = [c for c in range(num_classes) if len(members[c]) >= 2]
    references = [thumbnail_statistics(reals[members[c][0::2]]) for c in usable]
    held_out = [reals[members[c][1::2]] for c in usable]
    latents = images.latents(per_class, run.generator.arch.latent_size, seed + 777)
    fakes = [run.generate(latents, np.full(per_class, c)) for c in usable]
    result = {}
    for name, sets in (("fakes", fakes), ("reals", held_out)):
        found = nearest_classes(sets, references)
        result[name] = [None] * num_classes
        for c, k in zip(usable, found):
            result[name][c] = usable[k]
    return result


def main(argv: list[str]) -> None:
    args, train_args = parse_args(argv)
    for path in (args.jsonl, args.markdown):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    os.makedirs(args.grid_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        run_dir = args.run_dir or os.path.join(scratch, "run")
        if args.checkpoint:
            seconds = log_seconds_to(run_dir, args.checkpoint)
        else:
            seconds = train(run_dir, args.data_dir, args.seed, train_args)
        result = measure(
            run_dir, args.num_images, args.seed, args.checkpoint or None, args.inception
        )
        with open(os.path.join(run_dir, "stats.jsonl")) as f:
            phase_times = [json.loads(line)["phase_time"] for line in f if "phase_time" in line]
    from progan_tf import images  # noqa: PLC0415

    grid_path = os.path.join(args.grid_dir, f"{args.label}-seed{args.seed}.png")
    images.save_png(result["grid"], grid_path)
    fake, floor = result["fake"], result["floor"]
    row = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        **machine.describe(),  # CPU model, AVX-512 or not, any limit on the generated code
        "label": args.label,
        "seed": args.seed,
        "train_args": train_args,
        "data_dir": args.data_dir or "(bundled emoji)",
        "kimg": result["kimg"],
        "resolution": result["resolution"],
        "train_wall_s": round(seconds, 1),
        "n": result["n"],
        "swd": {k: round(v, 2) for k, v in fake.items()},
        "swd_floor": {k: round(v, 2) for k, v in floor.items()},
        "ratio_to_floor": round(fake["swd_avg"] / floor["swd_avg"], 2),
        "ms_ssim": round(result["ms_ssim"], 4),
        "ms_ssim_reals": round(result["ms_ssim_reals"], 4),
        "grid": os.path.relpath(grid_path, ROOT),
        "phase_times": phase_times,
    }
    scores = result["inception"]
    if scores is not None:
        row["inception"] = {
            "fid": round(scores["fid"], 2),
            "fid_floor": round(scores["fid_floor"], 2),
            "kid": [round(v, 5) for v in scores["kid"]],
            "kid_floor": [round(v, 5) for v in scores["kid_floor"]],
        }
        print(
            f"fid {scores['fid']:.2f} (B vs A: {scores['fid_floor']:.2f}), kid "
            f"{scores['kid'][0]:.5f} ± {scores['kid'][1]:.5f} (B vs A: "
            f"{scores['kid_floor'][0]:.5f} ± {scores['kid_floor'][1]:.5f}), n = {result['n']}"
        )
    fidelity = result["label_fidelity"]
    if fidelity is not None:
        row["label_fidelity"] = fidelity
        for name in ("fakes", "reals"):
            print(
                f"label fidelity ({name}): {followed(fidelity[name])} classes nearest their own "
                f"(nearest class of each: {fidelity[name]})"
            )
    with open(args.jsonl, "a") as f:
        f.write(json.dumps(row) + "\n")
    levels = " / ".join(f"{v:.1f}" for k, v in fake.items() if k != "swd_avg")
    floor_levels = " / ".join(f"{v:.1f}" for k, v in floor.items() if k != "swd_avg")
    markdown = (
        f"| {args.label} | {args.seed} | {' '.join(train_args) or '(defaults)'} | "
        f"{result['kimg']:.0f} | "
        f"{seconds / 60:.1f} | {levels} | {fake['swd_avg']:.1f} | {floor_levels} | "
        f"{floor['swd_avg']:.1f} | "
        f"{row['ratio_to_floor']:.2f} |"
    )
    if fidelity is not None:
        markdown += f" {followed(fidelity['fakes'])} |"
    with open(args.markdown, "a") as f:
        f.write(markdown + "\n")
    print(markdown)


if __name__ == "__main__":
    main(sys.argv[1:])

"""Images from a trained run's EMA generator: PNG files, a contact sheet, or a looping animation.

    python -m progan_tf.generate --run_dir=runs/emoji-32 --out=out --num_images=16 --seed=1
    python -m progan_tf.generate --run_dir=runs/emoji-32 --out=out --num_images=36 --grid --label=4
    python -m progan_tf.generate --run_dir=runs/emoji-32 --out=out --interpolate --frames=120

The same seed gives the same images. Conditional runs cycle through the classes (files), or
give one row per class (grid and animation); --label=C draws class C only (the classes are the
dataset's `label_names`, in order). Existing files are never overwritten unless --overwrite is
given.
"""

from __future__ import annotations

import os
import sys

import numpy as np
from absl import app, flags

from progan_tf import cli, images


def smooth_loop(noise: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-smooths [frames, ...] along time with wrap-around (so the loop has no seam) and
    rescales to unit RMS, as the reference's interpolation videos do (reference §7)."""
    frames = len(noise)
    distance = np.abs(np.arange(frames)[:, None] - np.arange(frames)[None, :])
    distance = np.minimum(distance, frames - distance)
    weights = np.exp(-0.5 * (distance / max(sigma, 1e-6)) ** 2)
    weights /= weights.sum(axis=1, keepdims=True)
    smooth = np.tensordot(weights, noise, axes=1)
    return (smooth / np.sqrt(np.mean(smooth**2))).astype(np.float32)


def _targets_free(paths: list[str], overwrite: bool) -> None:
    existing = [p for p in paths if os.path.exists(p)]
    if existing and not overwrite:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise ValueError(f"{existing[0]}{more} already exist(s); pass --overwrite or another --out")


def _labels(run, num: int, label: int | None, rows: bool) -> tuple[np.ndarray | None, int | None]:
    """(class labels, grid columns) for `num` images: `label` for all, or else cycling through the
    classes (`rows`: one grid row per class, as images.class_rows); (None, None) unconditional."""
    num_labels = run.generator.arch.num_labels
    if label is None:
        if rows:
            return images.class_rows(num, num_labels)
        return (np.arange(num) % num_labels if num_labels else None), None
    if not num_labels:
        raise ValueError(f"--label={label}: this run's generator is not conditional")
    if not 0 <= label < num_labels:
        raise ValueError(f"--label={label}: this run has classes 0 ... {num_labels - 1}")
    return np.full(num, label), None


def generate_files(
    run, out: str, num: int, seed: int, overwrite: bool = False, label: int | None = None
) -> list[str]:
    labels, _ = _labels(run, num, label, rows=False)
    paths = [os.path.join(out, f"seed{seed}-{i:05d}.png") for i in range(num)]
    _targets_free(paths, overwrite)
    batch = run.generate(images.latents(num, run.generator.arch.latent_size, seed), labels)
    for image, path in zip(batch, paths):
        images.save_png(image, path)
    return paths


def generate_grid(
    run, out: str, num: int, seed: int, overwrite: bool = False, label: int | None = None
) -> str:
    labels, columns = _labels(run, num, label, rows=True)
    path = os.path.join(
        out, f"grid-seed{seed}.png" if label is None else f"grid-seed{seed}-label{label}.png"
    )
    _targets_free([path], overwrite)
    count = num if labels is None else len(labels)
    batch = run.generate(images.latents(count, run.generator.arch.latent_size, seed), labels)
    images.save_png(images.make_grid(batch, columns=columns), path)
    return path


def generate_interpolation(
    run,
    out: str,
    num: int,
    seed: int,
    frames: int,
    fps: float,
    smoothing: float,
    overwrite: bool = False,
    label: int | None = None,
) -> str:
    """A looping GIF of `frames` frames, each a grid of `num` smoothly moving latents."""
    from keras.utils import Progbar  # noqa: PLC0415

    labels, columns = _labels(run, num, label, rows=True)
    path = os.path.join(
        out,
        f"interpolation-seed{seed}.gif"
        if label is None
        else f"interpolation-seed{seed}-label{label}.gif",
    )
    _targets_free([path], overwrite)
    count = num if labels is None else len(labels)
    noise = np.random.RandomState(seed).randn(frames, count, run.generator.arch.latent_size)
    latents = smooth_loop(noise, smoothing)
    progress = Progbar(frames, unit_name="frame")
    grids = []
    for frame in latents:
        grids.append(images.make_grid(run.generate(frame, labels), columns=columns))
        progress.add(1)
    images.save_gif(grids, path, fps=fps)
    return path


def main(argv):
    f = flags.FLAGS
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if f.grid and f.interpolate:
        raise app.UsageError("--grid and --interpolate: choose one")
    cli.quiet_tensorflow(flags.FLAGS.verbose)
    cli.resolve_deprecated_aliases(flags.FLAGS)
    import tensorflow as tf  # noqa: PLC0415 - after its log level

    from progan_tf import run_reader  # noqa: PLC0415

    try:
        run = run_reader.load_run(f.run_dir, f.checkpoint)
        run.batch_size = f.batch
        print(f"{run.checkpoint}: kimg {run.kimg:.1f}, {run.phase.name}", file=sys.stderr)
        if f.interpolate:
            smoothing = f.smoothing if f.smoothing > 0 else f.frames / 12
            written = [
                generate_interpolation(
                    run,
                    f.out,
                    f.num_images,
                    f.seed,
                    f.frames,
                    f.fps,
                    smoothing,
                    f.overwrite,
                    f.label,
                )
            ]
        elif f.grid:
            written = [generate_grid(run, f.out, f.num_images, f.seed, f.overwrite, f.label)]
        else:
            written = generate_files(run, f.out, f.num_images, f.seed, f.overwrite, f.label)
    except ValueError as error:  # RunError and refused overwrites
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except tf.errors.ResourceExhaustedError:
        print(
            f"error: out of memory generating {run.resolution}x{run.resolution} images "
            f"{run.generation_batch} at a time; lower --batch",
            file=sys.stderr,
        )
        sys.exit(1)
    except OSError as error:
        print(f"error: cannot write {error.filename or f.out}: {error.strerror}", file=sys.stderr)
        sys.exit(1)
    shown = written if len(written) <= 3 else [written[0], "...", written[-1]]
    print(f"wrote {len(written)} file(s): {' '.join(shown)}")


def _define_flags() -> None:
    cli.define_verbose_flag()
    flags.declare_key_flag("verbose")  # listed in --help
    flags.DEFINE_string(
        "run_dir", None, "Run directory (python -m progan_tf.train).", required=True
    )
    flags.DEFINE_string("out", None, "Output directory.", required=True)
    flags.DEFINE_string(
        "checkpoint", None, "Checkpoint name (ckpt-NNN) or path; default: the latest."
    )
    flags.DEFINE_integer(
        "num_images",
        16,
        "Images (files), tiles (grid) or tiles per frame (animation).",
        lower_bound=1,
    )
    cli.define_deprecated_alias("num", "num_images")
    flags.DEFINE_integer("seed", 0, "Latent seed.")
    flags.DEFINE_integer(
        "label", None, "Conditional runs: draw this class only (default: every class)."
    )
    flags.DEFINE_integer(
        "batch",
        0,
        "Images the generator runs at once; default: one GPU's training batch at the run's "
        "resolution (4 at 1024x1024).",
        lower_bound=0,
    )
    flags.DEFINE_bool("grid", False, "Write one contact sheet instead of files.")
    flags.DEFINE_bool("interpolate", False, "Write a looping latent-interpolation GIF.")
    flags.DEFINE_integer("frames", 120, "Frames of the animation.", lower_bound=2)
    flags.DEFINE_float("fps", 24.0, "Frames per second of the animation.", lower_bound=1.0)
    flags.DEFINE_float(
        "smoothing", 0.0, "Gaussian sigma in frames for the latents; 0 = frames / 12."
    )
    flags.DEFINE_bool("overwrite", False, "Replace existing output files.")


if __name__ == "__main__":
    _define_flags()
    app.run(main)

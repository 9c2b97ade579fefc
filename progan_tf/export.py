"""Export a run's EMA generator as a SavedModel for TF Serving.

    python -m progan_tf.export --run_dir=runs/emoji-32 --export_dir=exported/emoji
    saved_model_cli show --dir exported/emoji/1 --all
    saved_model_cli run --dir exported/emoji/1 --tag_set serve --signature_def generate_from_seed \\
        --input_exprs 'seed=7;num=4;label=2' --outdir out/     # label: conditional models only

Writes version `1/` of a TF Serving model directory (or the next free version number, so an
existing export is never replaced) at the checkpoint's stage, with two signatures:

    serving_default     latents float32 [N, latent_size] (+ labels int32 [N], conditional)
                        -> images uint8 [N, R, R, C], raw float32 [N, R, R, C] (about [-1, 1])
    generate_from_seed  seed int64 [], num int32 [] (+ label int32 [], conditional)
                        -> the same for num standard-normal latents drawn from the seed

Made with `keras.export.ExportArchive`: the SavedModel loads without progan_tf or Keras
(`tf.saved_model.load`) and runs in `saved_model_cli` and TF Serving.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from progan_tf import cli


def next_version(export_dir: str) -> int:
    """1, or one more than the largest numeric version already in `export_dir`."""
    versions = (
        [int(n) for n in os.listdir(export_dir) if n.isdigit()] if os.path.isdir(export_dir) else []
    )
    return max(versions, default=0) + 1


def main(argv):
    f = flags.FLAGS
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    cli.quiet_tensorflow(flags.FLAGS.verbose)
    from progan_tf import run_reader  # noqa: PLC0415 - TensorFlow after its log level
    from progan_tf.savedmodel import export_generator  # noqa: PLC0415

    try:
        run = run_reader.load_run(f.run_dir, f.checkpoint)
        version = f.version or next_version(f.export_dir)
        path = os.path.join(f.export_dir, str(version))
        if os.path.exists(path):
            raise ValueError(f"{path} already exists; choose another --version or --export_dir")
        arch = run.generator.arch
        batch = f.batch or run.generation_batch
        export_generator(run.model, arch.latent_size, arch.num_labels, path, batch_size=batch)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except OSError as error:
        print(
            f"error: cannot write {error.filename or f.export_dir}: {error.strerror}",
            file=sys.stderr,
        )
        sys.exit(1)
    print(
        f"exported {run.checkpoint} (kimg {run.kimg:.1f}, {run.resolution}x{run.resolution}) to "
        f"{path}"
    )


def _define_flags() -> None:
    cli.define_verbose_flag()
    flags.declare_key_flag("verbose")  # listed in --help
    flags.DEFINE_string(
        "run_dir", None, "Run directory (python -m progan_tf.train).", required=True
    )
    flags.DEFINE_string(
        "export_dir",
        None,
        "TF Serving model directory; the SavedModel goes to a version subdirectory.",
        required=True,
    )
    flags.DEFINE_string(
        "checkpoint", None, "Checkpoint name (ckpt-NNN) or path; default: the latest."
    )
    flags.DEFINE_integer(
        "batch",
        0,
        "Images the exported signatures run at once (any N is split into such chunks); "
        "default: one GPU's training batch at the run's resolution (4 at 1024x1024).",
        lower_bound=0,
    )
    flags.DEFINE_integer(
        "version",
        None,
        "Version subdirectory (default: the next free number, from 1).",
        lower_bound=1,
    )


if __name__ == "__main__":
    _define_flags()
    app.run(main)

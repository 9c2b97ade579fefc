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


def export_generator(model, latent_size: int, num_labels: int, path: str) -> None:
    """Writes `model` (latents [, one-hot labels] -> images in [-1, 1]) as a SavedModel at `path`,
    atomically: into a temporary sibling directory that is renamed at the end."""
    import keras  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    from progan_tf import data, files  # noqa: PLC0415

    def outputs(latents, labels=None):
        # Signatures do not check static shapes: fail with a message, not deep inside a MatMul.
        # The checks gate the inputs (control dependencies), so they run before anything else.
        checks = [
            tf.debugging.assert_equal(
                tf.shape(latents)[1],
                latent_size,
                message=f"latents: expected float32 [N, {latent_size}]",
            )
        ]
        if labels is not None:
            classes = f"labels: expected int32 [N], one class in 0 ... {num_labels - 1} per latent"
            checks += [
                tf.debugging.assert_equal(
                    tf.shape(labels)[0], tf.shape(latents)[0], message=classes
                ),
                tf.debugging.assert_less(labels, num_labels, message=classes),
                tf.debugging.assert_non_negative(labels, message=classes),
            ]
        with tf.control_dependencies(checks):
            latents = tf.identity(latents)
            labels = None if labels is None else tf.identity(labels)
        inputs = latents if labels is None else [latents, tf.one_hot(labels, num_labels)]
        raw = tf.cast(model(inputs, training=False), tf.float32)
        images = data.to_uint8(raw)  # traced into the graph: the SavedModel needs no progan_tf
        return {"images": images, "raw": raw}

    latents_spec = tf.TensorSpec([None, latent_size], tf.float32, name="latents")
    seed_spec = [tf.TensorSpec([], tf.int64, name="seed"), tf.TensorSpec([], tf.int32, name="num")]
    archive = keras.export.ExportArchive()
    archive.track(model)
    if num_labels:
        labels_spec = tf.TensorSpec([None], tf.int32, name="labels")
        label_spec = tf.TensorSpec([], tf.int32, name="label")

        def serve(latents, labels):
            return outputs(latents, labels)

        def from_seed(seed, num, label):
            latents = tf.random.stateless_normal(
                [num, latent_size], tf.stack([seed, tf.zeros_like(seed)])
            )
            return outputs(latents, tf.fill([num], label))

        archive.add_endpoint("serving_default", serve, input_signature=[latents_spec, labels_spec])
        archive.add_endpoint(
            "generate_from_seed", from_seed, input_signature=[*seed_spec, label_spec]
        )
    else:

        def serve(latents):
            return outputs(latents)

        def from_seed(seed, num):
            return outputs(
                tf.random.stateless_normal(
                    [num, latent_size], tf.stack([seed, tf.zeros_like(seed)])
                )
            )

        archive.add_endpoint("serving_default", serve, input_signature=[latents_spec])
        archive.add_endpoint("generate_from_seed", from_seed, input_signature=seed_spec)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with files.atomic_output(path, directory=True) as tmp:
        archive.write_out(tmp, verbose=False)


def main(argv):
    f = flags.FLAGS
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    cli.quiet_tensorflow(flags.FLAGS.verbose)
    from progan_tf import runs  # noqa: PLC0415

    try:
        run = runs.load_run(f.run_dir, f.checkpoint)
        version = f.version or next_version(f.export_dir)
        path = os.path.join(f.export_dir, str(version))
        if os.path.exists(path):
            raise ValueError(f"{path} already exists; choose another --version or --export_dir")
        arch = run.generator.arch
        export_generator(run.model, arch.latent_size, arch.num_labels, path)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    print(
        f"exported {run.checkpoint} (kimg {run.kimg:.1f}, {run.resolution}x{run.resolution}) to "
        f"{path}"
    )


def _define_flags() -> None:
    cli.define_verbose_flag()
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
        "version",
        None,
        "Version subdirectory (default: the next free number, from 1).",
        lower_bound=1,
    )


if __name__ == "__main__":
    _define_flags()
    app.run(main)

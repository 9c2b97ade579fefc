"""A generator as a SavedModel for TF Serving, loadable without progan_tf or Keras.

Made with `keras.export.ExportArchive`; the signatures are described in `progan_tf.export`,
the command that writes a run's EMA generator with `export_generator`.
"""

from __future__ import annotations

import os

import keras
import tensorflow as tf

from progan_tf import data, files


def in_chunks(model, batch_size: int):
    """`model` as a graph function that runs its inputs `batch_size` rows at a time (padded
    up to whole chunks, one chunk after the other: the memory of one chunk's forward pass)."""
    shape = tuple(model.output_shape[1:])

    def run(inputs):
        first = inputs[0] if isinstance(inputs, list | tuple) else inputs
        n = tf.shape(first)[0]
        chunks = (n + batch_size - 1) // batch_size

        def split(x):
            x = tf.pad(x, [[0, chunks * batch_size - n], [0, 0]])
            return tf.reshape(x, tf.concat([[chunks, batch_size], tf.shape(x)[1:]], 0))

        def one(chunk):
            return tf.cast(model(chunk, training=False), tf.float32)

        elems = [split(x) for x in inputs] if isinstance(inputs, list | tuple) else split(inputs)
        raw = tf.map_fn(
            one,
            elems,
            fn_output_signature=tf.TensorSpec([batch_size, *shape], tf.float32),
            parallel_iterations=1,
        )
        return tf.reshape(raw, [-1, *shape])[:n]

    return run


def export_generator(
    model, latent_size: int, num_labels: int, path: str, batch_size: int = 64
) -> None:
    """Writes `model` (latents [, one-hot labels] -> images in [-1, 1]) as a SavedModel at `path`,
    atomically: into a temporary sibling directory that is renamed at the end. The signatures
    run the generator `batch_size` images at a time, whatever N they are given."""
    generate = in_chunks(model, batch_size)

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
        raw = generate(inputs)
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

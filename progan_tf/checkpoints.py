"""Checkpoints of a run: save, restore, and what a resumed run may not change.

A checkpoint holds G, D, the EMA generator, the phase's two optimizers (moments, step counter,
loss scale), the image count, the non-finite step counters and the data stream's position:
everything a resumed run needs to continue as the uninterrupted run would have. Writes go
through `tf.train.CheckpointManager` (temporary files renamed into place), so a failed or
interrupted save leaves the previous checkpoint readable.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

# Config keys a resumed run must keep: they decide the networks' shapes or what the
# checkpointed state means.
RESUME_KEYS = ("resolution", "latent_size", "fmap_base", "fmap_max", "mbstd_group_size", "conditional", "gp_scale",
               "carry_fade_step",  # which model (so which optimizer slots) a stable phase trains
               "class_balance")  # what the checkpointed stream position counts


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written; the message names the path and the intact one."""


def precision(config: dict) -> str:
    """float32, mixed_float16 or mixed_bfloat16: decides the pixel-norm epsilon and whether the
    checkpointed optimizers carry a loss scale, so a resumed run must keep it."""
    return f"mixed_{config.get('mixed_precision_dtype', 'float16')}" if config.get("mixed_precision") else "float32"


def check_resume_compatible(run_dir: str, config: dict) -> None:
    """ValueError naming every key of `config` (with mixed_precision_dtype resolved) that
    differs from the run's config.json in a way a resume cannot take; nothing if new."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        previous = json.load(f)
    # runs made before a key existed: they penalised the native norm and compiled every phase
    defaults = {"gp_scale": "native", "carry_fade_step": False, "class_balance": 0.0}
    changed = [(k, previous.get(k, defaults.get(k)), config[k]) for k in RESUME_KEYS
               if k in config and (k in previous or k in defaults) and previous.get(k, defaults.get(k)) != config[k]]
    if precision(previous) != precision(config):
        changed.append(("--mixed_precision / mixed_precision_dtype", precision(previous), precision(config)))
    if changed:
        diffs = ", ".join(f"{k}: {old} -> {new}" for k, old, new in changed)
        raise ValueError(f"{run_dir} was trained with other settings ({diffs}); "
                         "use the same settings to resume it, or a new --run_dir")


def images_seen_of(path: str) -> int:
    """The image count stored in checkpoint `path`."""
    return int(tf.train.load_variable(path, "images_seen/.ATTRIBUTES/VARIABLE_VALUE"))


class Checkpoints:
    """The run's checkpoint directory: the latest `keep` checkpoints, numbered by image count."""

    def __init__(self, checkpoint: tf.train.Checkpoint, directory: str, keep: int):
        self.checkpoint, self.directory = checkpoint, directory
        self.manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=keep)

    def latest(self) -> str | None:
        return tf.train.latest_checkpoint(self.directory)

    def restore(self, path: str) -> bool:
        """Restores `path`; every object must match, except the optimizers of a checkpoint
        that has none (networks imported from the official release). True if it had them."""
        status = self.checkpoint.restore(path)
        with_optimizers = any(name.startswith("d_optimizer/") for name, _ in tf.train.list_variables(path))
        if with_optimizers:
            status.assert_existing_objects_matched()
        else:
            status.expect_partial()
        return with_optimizers

    def save(self, images_seen: int) -> str:
        """Writes a checkpoint; CheckpointWriteError (naming the directory and the checkpoint
        that stays valid) if the disk refuses it."""
        try:
            return self.manager.save(checkpoint_number=int(images_seen))
        except (OSError, tf.errors.OpError) as error:
            reason = getattr(error, "message", None) or str(error)
            raise CheckpointWriteError(
                f"cannot write a checkpoint to {self.directory} ({reason.splitlines()[0]}); "
                f"the previous checkpoint {self.latest() or '(none)'} is intact. Free space or make the "
                "directory writable, then run the same command again to resume"
            ) from None

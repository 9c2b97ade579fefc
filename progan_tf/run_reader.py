"""A trained run, read back from its directory: the EMA generator of a checkpoint, at its stage.

`generate`, `evaluate` and `export` start here. `run.json` (written by the trainer) says how
to rebuild the networks; the checkpoint gives the weights and the image count, from which the
schedule gives the stage, phase and alpha the generator was at.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

import keras
import numpy as np
import tensorflow as tf

from progan_tf import images
from progan_tf.checkpoints import CheckpointError, find_restorable, verify
from progan_tf.networks import Architecture, Generator, generate_images
from progan_tf.schedule import Phase, Schedule, generation_batch, phase_at


class RunError(ValueError):
    """A run directory or checkpoint that cannot be read; the message names it."""


@dataclasses.dataclass
class Run:
    run_dir: str
    checkpoint: str
    generator: Generator  # the EMA generator
    phase: Phase  # stage and phase at the checkpoint; alpha is set on the generator
    images_seen: int
    dataset_path: str
    label_names: tuple[str, ...]
    mirror_augment: bool = False  # trained on randomly mirrored reals (config.json)
    batch_size: int = 0  # images the generator runs at once; 0: schedule.generation_batch

    @property
    def kimg(self) -> float:
        return self.images_seen / 1000.0

    @property
    def model(self) -> keras.Model:
        """The EMA generator's model at the checkpoint's stage (fade-in model during a fade)."""
        return self.generator.stage_model(self.phase.resolution, self.phase.fade)

    @property
    def resolution(self) -> int:
        return self.phase.resolution

    @property
    def generation_batch(self) -> int:
        """Images run at once: `batch_size` if set, else one GPU's training batch here."""
        return self.batch_size or generation_batch(self.resolution)

    def generate(self, latents: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        """uint8 [N, R, R, C] images for float32 latents (and integer class labels if
        conditional), `generation_batch` at a time."""
        num_labels = self.generator.arch.num_labels
        if num_labels and labels is None:
            raise ValueError("this generator is conditional: give one class label per latent")
        one_hot = images.one_hot(labels, num_labels) if num_labels else None
        return generate_images(self.model, latents, one_hot, batch_size=self.generation_batch)


def find_checkpoint(run_dir: str, checkpoint: str | None = None) -> str:
    """The newest checkpoint of `run_dir` that reads completely (a newer unreadable one is
    named on stderr and skipped), or the named one (`ckpt-12000` or a path)."""
    if not os.path.isdir(run_dir):
        raise RunError(f"--run_dir={run_dir}: no such directory")
    directory = os.path.join(run_dir, "checkpoints")
    if checkpoint:
        path = checkpoint if os.path.dirname(checkpoint) else os.path.join(directory, checkpoint)
        try:
            verify(path)
        except CheckpointError as error:
            raise RunError(f"--checkpoint={checkpoint}: {error}") from None
        return path
    try:
        latest, skipped = find_restorable(directory)
    except CheckpointError as error:
        raise RunError(str(error)) from None
    for _, reason in skipped:
        print(f"warning: skipping a checkpoint: {reason}", file=sys.stderr)
    if not latest:
        raise RunError(f"{run_dir} has no checkpoint in {directory} yet")
    return latest


def _read_json(path: str) -> dict:
    try:
        with open(path) as f:
            value = json.load(f)
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
        return value
    except (OSError, ValueError) as error:
        raise RunError(
            f"{path} is unreadable ({error}); it is written by the trainer, restore it from a "
            "backup "
            "or the run's other copy"
        ) from None


def load_run(run_dir: str, checkpoint: str | None = None) -> Run:
    """Rebuilds the EMA generator of `run_dir` and restores it from a checkpoint."""
    if not os.path.isdir(run_dir):
        raise RunError(f"--run_dir={run_dir}: no such directory")
    info_path = os.path.join(run_dir, "run.json")
    if not os.path.exists(info_path):
        raise RunError(f"{run_dir} is not a progan_tf run directory (no run.json)")
    path = find_checkpoint(run_dir, checkpoint)
    info = _read_json(info_path)
    try:
        arch = Architecture(**info["architecture"])
        schedule = Schedule(
            final_resolution=arch.resolution,
            stable_kimg=float(info["stable_kimg"]),
            fade_kimg=float(info["fade_kimg"]),
            progressive=arch.progressive,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise RunError(
            f"{info_path} does not describe a run ({error!r}); it is written by the trainer, "
            "restore it "
            "from a backup"
        ) from None
    try:
        images_seen = int(tf.train.load_variable(path, "images_seen/.ATTRIBUTES/VARIABLE_VALUE"))
        phase = phase_at(schedule, images_seen)
        generator = Generator(arch, name="g_ema")  # builds every layer before the restore
        generator.alpha.assign(phase.alpha)
        restore = tf.train.Checkpoint(ema_generator=generator.checkpoint()).read(path)
        restore.expect_partial().assert_existing_objects_matched()
    except (tf.errors.OpError, ValueError, AssertionError) as error:
        reason = (getattr(error, "message", None) or str(error)).strip().splitlines()[0]
        raise RunError(f"{path} does not fit {info_path} ({reason})") from None
    config_path = os.path.join(run_dir, "config.json")
    mirror = (
        bool(_read_json(config_path).get("mirror_augment", False))
        if os.path.exists(config_path)
        else False
    )
    return Run(
        mirror_augment=mirror,
        run_dir=run_dir,
        checkpoint=path,
        generator=generator,
        phase=phase,
        images_seen=images_seen,
        dataset_path=info.get("dataset", ""),
        label_names=tuple(info.get("label_names", ())),
    )

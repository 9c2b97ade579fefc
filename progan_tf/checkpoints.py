"""Checkpoints of a run: save, restore, and what a resumed run may not change.

A checkpoint holds G, D, the EMA generator, the phase's two optimizers (moments, step counter,
loss scale), the image count, the non-finite step counters and the data stream's position:
everything a resumed run needs to continue as the uninterrupted run would have. `Checkpoints`
writes them durably (files synced before the state file names them) and `find_restorable` picks
the newest one that reads completely, so a lost or damaged newest checkpoint costs one
checkpoint interval, never the run (docs/reliability.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil

import tensorflow as tf

from progan_tf import files

# Config keys a resumed run must keep, because they decide the networks' shapes, where the
# schedule's phases fall, or what the checkpointed stream position and optimizer state mean.
# A resume that changes one is refused, naming it, unless the user accepts it by name
# (train --accept_changes=KEY); total_kimg, learning rates and logging may change freely.
NETWORK_KEYS = (  # what the networks' weights fit: the only keys a fine-tune must keep
    "resolution",
    "latent_size",
    "fmap_base",
    "fmap_max",
    "mbstd_group_size",
    "conditional",
    "progressive",
    "equalized_lr",
    "pixel_norm",
    "normalization",
)
RESUME_KEYS = (
    *NETWORK_KEYS,
    # schedule: phase boundaries and batch sizes
    "lod_training_kimg",
    "lod_transition_kimg",
    "minibatch_preset",
    "minibatch_dict",
    "minibatch_default",
    "max_minibatch_per_replica",
    # input stream: which images, in which order
    "data_dir",
    "seed",
    "shuffle_buffer",
    "shuffle_mb",
    "class_balance",
    "mirror_augment",
    # step
    "gp_scale",
    "d_repeats",
    "gp_interval",
    "carry_fade_step",  # which model (so which optimizer slots) a stable phase trains
    "loss",
    "optimizer",  # the checkpoint holds its slots
    "adam_beta1",
    "adam_beta2",
)
# Keys no resume can take: the checkpoint's optimizer slots are of this optimizer.
FIXED_KEYS = ("optimizer",)
# --accept_changes=config.json: resume a run whose config.json is missing, with this command's
# settings (the networks' shapes are still checked against the checkpoint).
MISSING_CONFIG = "config.json"
# What a run whose config.json predates a key was trained with: the defaults, except that such
# runs penalised the gradient's native norm.
LEGACY_DEFAULTS = {
    "gp_scale": "native",
    "carry_fade_step": False,
    "class_balance": 0.0,
    "progressive": True,
    "equalized_lr": True,
    "pixel_norm": True,
    "normalization": "none",
    "d_repeats": 1,
    "gp_interval": 1,
    "shuffle_buffer": 4096,
    "shuffle_mb": 1024,
    "max_minibatch_per_replica": {},
}


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written; the message names the path and the intact one."""


def precision(config: dict) -> str:
    """float32, mixed_float16 or mixed_bfloat16: decides the pixel-norm epsilon and whether the
    checkpointed optimizers carry a loss scale, so a resumed run must keep it."""
    return (
        f"mixed_{config.get('mixed_precision_dtype', 'float16')}"
        if config.get("mixed_precision")
        else "float32"
    )


def _imported_run_json(run_dir: str) -> bool:
    try:
        with open(os.path.join(run_dir, "run.json")) as f:
            return bool(json.load(f).get("imported_from"))
    except (OSError, ValueError, AttributeError):
        return False


def has_optimizers(path: str) -> bool:
    """Whether a checkpoint holds optimizer state (not one imported from the release)."""
    return any(name.startswith("d_optimizer/") for name, _ in tf.train.list_variables(path))


def check_resume_compatible(run_dir: str, config: dict, accept: tuple[str, ...] = ()) -> None:
    """ValueError naming every key of `config` (with mixed_precision_dtype resolved) that
    differs from the run's config.json in a way a resume cannot take, but those in `accept`;
    nothing if the run is new. Also a ValueError naming config.json if it cannot be read."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.exists(path):
        ckpts = os.path.join(run_dir, "checkpoints")
        held = os.path.isdir(ckpts) and any(_NAME.match(n) for n in os.listdir(ckpts))
        if held and MISSING_CONFIG not in accept:
            raise ValueError(
                f"{run_dir} holds checkpoints but no config.json, so this command cannot be "
                "checked against the settings the run was trained with; put config.json back "
                f"to resume, train into a new --run_dir, or resume with this command's settings "
                f"with --accept_changes={MISSING_CONFIG}"
            )
        return
    try:
        with open(path) as f:
            previous = json.load(f)
        if not isinstance(previous, dict):
            raise ValueError("not a JSON object")
    except (ValueError, OSError) as error:
        raise ValueError(
            f"{path} is unreadable ({error}); restore it from a backup to resume, or train "
            "into a new --run_dir"
        ) from None
    unknown = [k for k in accept if k not in RESUME_KEYS and k != MISSING_CONFIG]
    if unknown:
        raise ValueError(
            f"--accept_changes: {', '.join(unknown)} is not a checked key; the checked keys are "
            f"{', '.join(RESUME_KEYS)}"
        )
    fixed = [k for k in accept if k in FIXED_KEYS]
    if fixed:
        raise ValueError(
            f"--accept_changes: {', '.join(fixed)} cannot change on resume (the checkpoint "
            "holds its optimizer's slots); train into a new --run_dir"
        )

    # An imported run (import_official) holds weights only: no optimizer state, image count or
    # stream position of its own, so only the keys that shape the networks must stay.
    imported = bool(previous.get("imported_from")) or (
        "total_kimg" not in previous and _imported_run_json(run_dir)  # imported before the key
    )
    checked = NETWORK_KEYS if imported else RESUME_KEYS

    def value(settings: dict, key: str):
        v = settings.get(key, LEGACY_DEFAULTS.get(key))
        return os.path.abspath(v) if key == "data_dir" and v else v

    changed = [
        (k, value(previous, k), value(config, k))
        for k in checked
        if k in config
        and k not in accept
        and (k in previous or k in LEGACY_DEFAULTS)
        and value(previous, k) != value(config, k)
    ]
    if not imported and precision(previous) != precision(config):
        changed.append(
            ("--mixed_precision / mixed_precision_dtype", precision(previous), precision(config))
        )
    if changed:
        diffs = ", ".join(f"{k}: {old} -> {new}" for k, old, new in changed)
        keys = ",".join(k for k, _, _ in changed if k in RESUME_KEYS and k not in FIXED_KEYS)
        raise ValueError(
            (
                f"{run_dir} holds imported networks of other settings ({diffs}); a fine-tune "
                "keeps the settings that shape the networks"
                if imported
                else f"{run_dir} was trained with other settings ({diffs}); use the same settings "
                "to resume it, or a new --run_dir"
            )
            + (f", or accept the change with --accept_changes={keys}" if keys else "")
        )


def images_seen_of(path: str) -> int:
    """The image count stored in checkpoint `path`."""
    return int(tf.train.load_variable(path, "images_seen/.ATTRIBUTES/VARIABLE_VALUE"))


def _short(error: Exception) -> str:
    """The first line of an OSError or TensorFlow error without TensorFlow's
    `{{function_node ...}}` prefix and the path (the message names the directory)."""
    text = getattr(error, "strerror", None) or getattr(error, "message", None) or str(error)
    text = re.sub(r"\{\{[^}]*\}\}\s*", "", text.strip().splitlines()[0] if text.strip() else "")
    return re.sub(r"\S*/\S*ckpt-\d+\S*\s*", "", text).strip(" :;") or type(error).__name__


def remove_tree_or_file(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.remove(path)


class CheckpointError(ValueError):
    """A run directory holds checkpoints and none of them can be read; nothing was changed."""


_NAME = re.compile(r"^ckpt-(\d+)\.(index|data-\d+-of-\d+)$")
# TensorFlow's temporaries of a checkpoint write: the folder it writes the shards in, the files
# it renames into place (".tempstate<n>"), the state file's ("checkpoint.tmp<hex>")
_TEMPORARY = re.compile(r"^ckpt-\d+_temp|\.tempstate\d*$|^checkpoint\.tmp[0-9a-f]+$")
STATE_FILE = "checkpoint"  # TensorFlow's name: tf.train.latest_checkpoint and TensorBoard read it


def _files_of(directory: str) -> dict[int, list[str]]:
    """Checkpoint number -> the names of its files (`ckpt-N.index`, `ckpt-N.data-...`)."""
    found: dict[int, list[str]] = {}
    if os.path.isdir(directory):
        for name in os.listdir(directory):
            match = _NAME.match(name)
            if match:
                found.setdefault(int(match.group(1)), []).append(name)
    return found


def list_checkpoints(directory: str) -> list[str]:
    """Every checkpoint in `directory` that has any file left, newest (highest number) first:
    the state file is not trusted for this (it may be missing, or name a lost checkpoint)."""
    return [
        os.path.join(directory, f"ckpt-{n}") for n in sorted(_files_of(directory), reverse=True)
    ]


def verify(path: str) -> None:
    """Reads every tensor of checkpoint `path` (TensorFlow checks each one's CRC); raises
    CheckpointError saying what is wrong if one cannot be read."""
    if not os.path.exists(path + ".index"):
        raise CheckpointError(f"{os.path.basename(path)}.index is missing")
    try:
        reader = tf.train.load_checkpoint(path)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception as error:  # noqa: BLE001 - the reader raises OpError, IndexError, ValueError...: all mean unreadable
        reason = (
            (getattr(error, "message", None) or str(error) or type(error).__name__)
            .strip()
            .splitlines()[0]
        )
        raise CheckpointError(f"{os.path.basename(path)} is unreadable ({reason})") from None


def find_restorable(directory: str) -> tuple[str | None, list[tuple[str, str]]]:
    """The newest checkpoint of `directory` that reads completely, and the newer ones skipped,
    as (path, reason). (None, []) if there is none at all; CheckpointError naming each one and
    why if there are checkpoints and none reads: a run with checkpoints is never a new run."""
    skipped = []
    for path in list_checkpoints(directory):
        try:
            verify(path)
        except CheckpointError as error:
            skipped.append((path, str(error)))
            continue
        return path, skipped
    if skipped:
        reasons = "; ".join(reason for _, reason in skipped)
        raise CheckpointError(
            f"{directory} holds checkpoints and none can be restored: {reasons}. Nothing was "
            "changed; restore the files from a backup, or train into a new --run_dir"
        )
    return None, []


class Checkpoints:
    """The run's checkpoint directory: the latest `keep` checkpoints, numbered by image count.

    A save writes `ckpt-N` (TensorFlow writes it under temporary names and renames them), syncs
    its files and the directory to disk, and only then rewrites the state file (atomically,
    synced) and removes the checkpoints beyond `keep`: after a crash, a power loss or a failed
    write, the state file and every checkpoint it names are whole. `set_aside` moves checkpoints
    that could not be read into `skipped/` instead of deleting them.
    """

    def __init__(self, checkpoint: tf.train.Checkpoint, directory: str, keep: int):
        if keep < 2:
            raise ValueError(
                f"--config.keep_checkpoints={keep}: keep at least 2, so that a checkpoint that "
                "cannot "
                "be read has a previous one to fall back to"
            )
        self.checkpoint, self.directory, self.keep = checkpoint, directory, keep

    def latest(self) -> str | None:
        found = list_checkpoints(self.directory)
        return found[0] if found else None

    def restore(self, path: str) -> bool:
        """Restores `path`; every object must match, except the optimizers of a checkpoint
        that has none (networks imported from the official release). True if it had them."""
        status = self.checkpoint.read(path)  # read, not restore: write() saves no save_counter
        with_optimizers = has_optimizers(path)
        if with_optimizers:
            status.assert_existing_objects_matched()
        else:
            status.expect_partial()
        return with_optimizers

    def set_aside(self, paths: list[str]) -> str:
        """Moves the files of checkpoints `paths` into `<directory>/skipped/`; returns it."""
        folder = os.path.join(self.directory, "skipped")
        os.makedirs(folder, exist_ok=True)
        numbers = {int(os.path.basename(p).split("-")[1]) for p in paths}
        for number, names in _files_of(self.directory).items():
            if number in numbers:
                for name in names:
                    os.replace(os.path.join(self.directory, name), os.path.join(folder, name))
        files.fsync_path(folder)
        files.fsync_path(self.directory)
        return folder

    def save(self, images_seen: int) -> str:
        """Writes checkpoint `ckpt-<images_seen>` durably; CheckpointWriteError (naming the
        directory and the checkpoint that stays valid) if the disk refuses it."""
        path = os.path.join(self.directory, f"ckpt-{int(images_seen)}")
        try:
            os.makedirs(self.directory, exist_ok=True)
            for name in os.listdir(self.directory):  # of a write that was killed (we hold the lock)
                if _TEMPORARY.search(name):
                    remove_tree_or_file(os.path.join(self.directory, name))
            self.checkpoint.write(path)
            for name in _files_of(self.directory)[int(images_seen)]:
                files.fsync_path(os.path.join(self.directory, name))
            files.fsync_path(self.directory)
        except (OSError, tf.errors.OpError, KeyError) as error:
            self._remove(int(images_seen))  # our own half-written files
            raise CheckpointWriteError(
                f"cannot write a checkpoint to {self.directory} ({_short(error)}); "
                f"the previous checkpoint {self.latest() or '(none)'} is intact. Free space or "
                "make the "
                "directory writable, then run the same command again to resume"
            ) from None
        kept = list_checkpoints(self.directory)[: self.keep]  # newest first, this one among them
        state = [f'model_checkpoint_path: "{os.path.basename(path)}"']
        state += [f'all_model_checkpoint_paths: "{os.path.basename(p)}"' for p in reversed(kept)]
        files.write_text(os.path.join(self.directory, STATE_FILE), "\n".join(state) + "\n")
        for old in list_checkpoints(self.directory)[self.keep :]:
            self._remove(int(os.path.basename(old).split("-")[1]))
        return path

    def _remove(self, number: int) -> None:
        for name in _files_of(self.directory).get(number, []):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(self.directory, name))

"""Import an official ProGAN release pickle as a progan_tf run directory.

    python -m progan_tf.import_official --pkl=karras2018iclr-celebahq-1024x1024.pkl \\
        --run_dir=runs/celebahq-official

The pickle is read without executing anything in it (progan_tf.official). The run directory
gets the EMA generator from `Gs` and the generator and discriminator from `G` and `D`, at the
final resolution's stable phase, so `generate`, `evaluate` and `export` work on it unchanged
and `train` can fine-tune it (with fresh optimizers; give the same network settings).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

from absl import app, flags

from progan_tf import cli


def import_pickle(
    pkl_path: str, run_dir: str, *, stable_kimg: float = 600.0, fade_kimg: float = 600.0
) -> str:
    """Writes `run_dir` from the release pickle at `pkl_path`; returns the checkpoint path.
    `run_dir` must not exist yet (nothing of the user's is overwritten)."""
    import tensorflow as tf  # noqa: PLC0415

    from progan_tf import files, official  # noqa: PLC0415
    from progan_tf.networks import Architecture, Discriminator, Generator  # noqa: PLC0415
    from progan_tf.schedule import Schedule  # noqa: PLC0415

    if os.path.exists(run_dir):
        raise ValueError(f"--run_dir={run_dir} exists; choose a new directory")
    try:
        with open(pkl_path, "rb") as f:
            raw = f.read()
    except OSError as error:
        raise ValueError(f"--pkl={pkl_path}: {error.strerror}") from None
    g_state, d_state, gs_state = official.load_pickle(raw, pkl_path)
    kwargs = official.architecture_kwargs(g_state, d_state)
    fused = kwargs["fused_scale"]
    arch = Architecture(**kwargs)
    alpha = tf.Variable(1.0, trainable=False, dtype=tf.float32, name="alpha")
    generator, discriminator, ema = (
        Generator(arch, alpha),
        Discriminator(arch, alpha, name="d"),
        Generator(arch, alpha, name="g_ema"),
    )
    official.assign(generator, official.generator_weights(g_state, arch, fused))
    official.assign(discriminator, official.discriminator_weights(d_state, arch, fused))
    ema_weights = {
        k.replace("g_", "g_ema_", 1): v
        for k, v in official.generator_weights(gs_state, arch, fused).items()
    }
    official.assign(ema, ema_weights)

    schedule = Schedule(
        final_resolution=arch.resolution, stable_kimg=stable_kimg, fade_kimg=fade_kimg
    )
    # final stable phase
    images_seen = (schedule.num_stages - 1) * (schedule.stable_images + schedule.fade_images)
    checkpoint = tf.train.Checkpoint(
        generator=generator.checkpoint(),
        discriminator=discriminator.checkpoint(),
        ema_generator=ema.checkpoint(),
        images_seen=tf.Variable(images_seen, dtype=tf.int64),
        data_position=tf.Variable([0, 0], dtype=tf.int64),
        consecutive_nonfinite=tf.Variable(0, dtype=tf.int64),
        nonfinite_total=tf.Variable(0, dtype=tf.int64),
    )
    with files.atomic_output(run_dir, directory=True) as tmp:
        os.makedirs(os.path.join(tmp, "samples"))
        manager = tf.train.CheckpointManager(
            checkpoint, os.path.join(tmp, "checkpoints"), max_to_keep=3
        )
        path = manager.save(checkpoint_number=images_seen)
        info = {
            "architecture": dataclasses.asdict(arch),
            "stable_kimg": stable_kimg,
            "fade_kimg": fade_kimg,
            "dataset": "",
            "label_names": [],
            "imported_from": os.path.abspath(pkl_path),
        }
        files.write_text(os.path.join(tmp, "run.json"), json.dumps(info, indent=2) + "\n")
        config = {
            "resolution": arch.resolution,
            "latent_size": arch.latent_size,
            "fmap_base": arch.fmap_base,
            "fmap_max": arch.fmap_max,
            "mbstd_group_size": arch.mbstd_group_size,
            "conditional": arch.num_labels > 0,
            "mixed_precision": False,
            "gp_scale": "official",
            "lod_training_kimg": stable_kimg,
            "lod_transition_kimg": fade_kimg,
        }
        files.write_text(
            os.path.join(tmp, "config.json"), json.dumps(config, indent=2, sort_keys=True) + "\n"
        )
    return os.path.join(run_dir, "checkpoints", os.path.basename(path))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    cli.quiet_tensorflow(f.verbose)
    from progan_tf.official import OfficialImportError  # noqa: PLC0415

    try:
        path = import_pickle(f.pkl, f.run_dir)
    except (ValueError, OfficialImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    print(f"imported {f.pkl} into {f.run_dir} ({path})")


def _define_flags() -> None:
    cli.define_verbose_flag()
    flags.DEFINE_string(
        "pkl", None, "The release's network pickle (karras2018iclr-*.pkl).", required=True
    )
    flags.DEFINE_string("run_dir", None, "New run directory to create.", required=True)


if __name__ == "__main__":
    _define_flags()
    app.run(main)

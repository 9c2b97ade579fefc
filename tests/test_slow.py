"""Slow (pytest -m slow): a real training run on the bundled emoji must move the metric."""

import keras
import pytest
import tensorflow as tf

from conftest import noise_dataset, tiny_trainer

from progan_tf import data
from progan_tf.metrics import measure
from progan_tf.networks import Architecture
from progan_tf.schedule import Schedule, phase_at
from progan_tf.steps import StepOptions
from progan_tf.train import DEMO_DATA
from progan_tf.trainer import Trainer, TrainerOptions


@pytest.mark.slow
def test_training_on_the_demo_emoji_lowers_swd(tmp_path):
    keras.utils.set_random_seed(0)  # unseeded, the initial weights made this pass or fail by luck
    info = data.load_info(DEMO_DATA)
    schedule = Schedule(
        final_resolution=8,
        stable_kimg=6,
        fade_kimg=6,
        minibatch={},
        minibatch_default=32,
        learning_rate_default=0.0015,
    )
    trainer = Trainer(
        arch=Architecture(resolution=8, latent_size=64, fmap_base=256, fmap_max=32),
        schedule=schedule,
        options=TrainerOptions(
            total_images=24000,
            tick_images=4000,
            snapshot_images=24000,
            checkpoint_images=24000,
            steps_per_call=25,
            grid_size=16,
            step=StepOptions(ema_beta=0.99),
        ),
        dataset=info,
        run_dir=str(tmp_path),
        strategy=tf.distribute.OneDeviceStrategy("/cpu:0"),
    )
    final = phase_at(schedule, 24_000)  # 8x8 stable
    trainer.ema.alpha.assign(1.0)

    def swd():
        return measure.evaluate_generator(
            trainer.ema, final, info, ["swd"], num_images=1024, noise_floor=False
        )["swd_avg"]

    before = swd()
    trainer.train()
    after = swd()
    assert after < 0.7 * before, (before, after)  # seed 0: 323 -> 189


@pytest.mark.slow
def test_whole_ladder_to_1024_with_narrow_nets_runs_every_phase(tmp_path):
    # The smoke test people run before renting GPUs: 4x4 -> 1024x1024 through all 17 phases,
    # 4 images each, then a checkpoint and a sample grid at 1024x1024.
    import json  # noqa: PLC0415
    import os  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415

    dataset = noise_dataset(tmp_path / "data", 4, 1024)
    schedule = Schedule(
        final_resolution=1024, stable_kimg=0.004, fade_kimg=0.004, minibatch={}, minibatch_default=2
    )
    total = 17 * 4 + 4  # every phase, then 4 more images at 1024x1024 stable
    trainer = tiny_trainer(
        dataset,
        tmp_path / "run",
        total,
        arch=Architecture(
            resolution=1024, latent_size=8, fmap_base=512, fmap_max=8, mbstd_group_size=2
        ),
        schedule=schedule,
        tick_images=4,
        grid_size=2,
        shuffle_buffer=4,
    )
    trainer.train()
    names = [p.name for p in trainer.phase_times.phases]
    assert names[0] == "4x4 stable" and names[-1] == "1024x1024 stable" and len(names) == 17
    assert len(set(names)) == 17  # each phase entered once
    assert tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints")).endswith(
        f"ckpt-{total}"
    )
    grid = Image.open(tmp_path / "run" / "samples" / "fakes000000_072.png")
    assert grid.size == (2048, 1024)  # two 1024x1024 tiles
    stats = [json.loads(line) for line in open(os.path.join(tmp_path, "run", "stats.jsonl"))]
    assert all(np.isfinite(s["d_loss"]) for s in stats if "d_loss" in s)

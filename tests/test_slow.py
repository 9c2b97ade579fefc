"""Slow (pytest -m slow): a real training run on the bundled emoji must move the metric."""

import keras
import pytest
import tensorflow as tf

from progan_tf import data, evaluate
from progan_tf.networks import Architecture
from progan_tf.schedule import Schedule, phase_at
from progan_tf.steps import StepOptions
from progan_tf.train import DEMO_DATA
from progan_tf.trainer import Trainer, TrainerOptions


@pytest.mark.slow
def test_training_on_the_demo_emoji_lowers_swd(tmp_path):
    keras.utils.set_random_seed(0)  # unseeded, the initial weights made this pass or fail by luck
    info = data.load_info(DEMO_DATA)
    schedule = Schedule(final_resolution=8, stable_kimg=6, fade_kimg=6, minibatch={}, minibatch_default=32,
                        learning_rate_default=0.0015)
    trainer = Trainer(
        arch=Architecture(resolution=8, latent_size=64, fmap_base=256, fmap_max=32),
        schedule=schedule,
        options=TrainerOptions(total_images=24000, tick_images=4000, snapshot_images=24000, checkpoint_images=24000, steps_per_call=25,
                               grid_size=16, step=StepOptions(ema_beta=0.99)),
        dataset=info, run_dir=str(tmp_path), strategy=tf.distribute.OneDeviceStrategy("/cpu:0"),
    )
    final = phase_at(schedule, 24_000)  # 8x8 stable
    trainer.ema.alpha.assign(1.0)

    def swd():
        return evaluate.evaluate_generator(trainer.ema, final, info, ["swd"], num_images=1024, noise_floor=False)["swd_avg"]

    before = swd()
    trainer.train()
    after = swd()
    assert after < 0.7 * before, (before, after)  # seed 0: 323 -> 189

"""Demo: the bundled Twemoji emoji, 4x4 -> 32x32, narrow networks, about 12 minutes on 2 CPU cores.

    python -m progan_tf.train            # this config is the default

Expected: samples/fakes*.png show emoji-like colourful blobs with outlines, faces and
objects on white by the end (see README). Not a quality run: widths are 1/8 of the paper's.
"""

from progan_tf.config import get_config as defaults


def get_config():
    c = defaults()
    c.latent_size = 128
    c.fmap_base = 256  # 32 feature maps up to 16x16, 16 at 32x32 (the paper: 512)
    c.fmap_max = 32
    c.minibatch_preset = ""
    c.minibatch_default = 16  # the paper's batch; twice the updates of 32 per image: sharper in the time
    c.learning_rate = 0.0015
    c.lod_training_kimg = 20.0
    c.lod_transition_kimg = 20.0
    c.total_kimg = 120.0  # ends as the 32x32 fade-in completes (alpha = 1)
    c.mirror_augment = True
    # The paper's 0.999 averages over ~16 kimg at this batch: most of a demo phase, so the
    # EMA would still hold much of the random initial weights. 0.99: a half-life of ~1 kimg.
    c.ema_beta = 0.99
    c.tick_kimg = 4.0
    c.snapshot_kimg = 20.0
    c.checkpoint_kimg = 20.0
    c.grid_size = 64
    c.steps_per_call = 25
    c.strategy = "one_device"
    c.xla = True  # 1.7-2.2x faster on this CPU (benchmarks/train_step.py)
    return c

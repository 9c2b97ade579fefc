"""The paper's own settings (the release's "paper" preset): 800 + 800 kimg per resolution,
19,000 kimg in all, the paper's batch sizes (16 ... 3) and minibatch-stddev groups of 16.

    python -m progan_tf.train --data_dir=datasets/celebahq --config=configs/paper_1024.py

Expected: longer than configs/celebahq_1024.py (19,000 vs 12,000 kimg at small batches).
"""

from progan_tf.config import get_config as defaults


def get_config():
    c = defaults()
    c.resolution = 1024
    c.minibatch_preset = "paper"
    c.lod_training_kimg = 800.0
    c.lod_transition_kimg = 800.0
    c.total_kimg = 19000.0
    c.mbstd_group_size = 16
    c.mirror_augment = True
    c.tick_kimg = 20.0
    c.snapshot_kimg = 200.0
    c.checkpoint_kimg = 200.0
    return c

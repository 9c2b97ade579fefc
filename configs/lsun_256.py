"""LSUN (e.g. bedroom) 256x256 from an LMDB export, 100k+ images.

    python tools/dataset_tool.py create_lsun --source=bedroom_train_lmdb --dest=datasets/bedroom
    python -m progan_tf.train --data_dir=datasets/bedroom --config=configs/lsun_256.py

Expected: about 5 days on one V100 (1.5 on 8); paper: SWD avg 3.31 at convergence, FID ~8.3.
"""

from progan_tf.config import get_config as defaults


def get_config():
    c = defaults()
    c.resolution = 256
    c.minibatch_preset = "1gpu"
    c.mirror_augment = True
    c.total_kimg = 12000.0  # as the release's config; 256x256 from 7,200 kimg on
    c.tick_kimg = 20.0
    c.snapshot_kimg = 200.0
    c.checkpoint_kimg = 200.0
    return c

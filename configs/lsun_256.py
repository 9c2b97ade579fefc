"""LSUN (e.g. bedroom) 256x256 from an LMDB export, 100k+ images.

    python tools/dataset_tool.py create_lsun --source=bedroom_train_lmdb --dest=datasets/bedroom
    python -m progan_tf.train --data_dir=datasets/bedroom --config=configs/lsun_256.py

Batches: the release's preset for the replica count (minibatch_preset auto: 1gpu on one GPU,
8gpu on eight). Expected: paper: SWD avg 3.31 at convergence, FID ~8.3; how long it takes on
GPUs is not measured here (docs/performance.md, "The first GPU run").
"""

from progan_tf.config import get_config as defaults


def get_config():
    c = defaults()
    c.resolution = 256
    c.mirror_augment = True
    c.total_kimg = 12000.0  # as the release's config; 256x256 from 7,200 kimg on
    c.tick_kimg = 20.0
    c.snapshot_kimg = 200.0
    c.checkpoint_kimg = 200.0
    return c

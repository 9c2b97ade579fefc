"""CelebA-HQ 1024x1024, the paper's headline run (reference §4: 600/600 kimg, 12,000 kimg total).

    python tools/dataset_tool.py create_celebahq --source=celeba-hq-1024/ --dest=datasets/celebahq
    python -m progan_tf.train --data_dir=datasets/celebahq --config=configs/celebahq_1024.py

Expected (the release's figures, reference §9): about 2 days on 8 V100s, 2 weeks on one; FID
about 7.5-8 (reference §6).
"""

from progan_tf.config import get_config as defaults


def get_config():
    c = defaults()
    c.resolution = 1024
    # auto: the release's global batches and learning rates for the replica count (8gpu on 8)
    c.minibatch_preset = "auto"
    c.mirror_augment = True
    c.total_kimg = 12000.0
    c.tick_kimg = 20.0
    c.snapshot_kimg = 200.0
    c.checkpoint_kimg = 200.0
    c.strategy = "auto"
    return c

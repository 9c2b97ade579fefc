"""CIFAR-10 32x32, unconditional as in the paper (inception score 8.80); set
--config.conditional=True for a class-conditional (AC-GAN) model.

    python tools/dataset_tool.py create_cifar10 --source=cifar-10-batches-bin \\
        --dest=datasets/cifar10
    python -m progan_tf.train --data_dir=datasets/cifar10 --config=configs/cifar10_32.py

Batches: the release's preset for the replica count (minibatch_preset auto).
Expected: about 1 day on one V100 for 12,000 kimg.
"""

from progan_tf.config import get_config as defaults


def get_config():
    c = defaults()
    c.resolution = 32
    c.conditional = False  # the paper's CIFAR-10 model; True for a class-conditional (AC-GAN) one
    c.total_kimg = 12000.0
    c.tick_kimg = 20.0
    c.snapshot_kimg = 200.0
    c.checkpoint_kimg = 200.0
    return c

"""A short training run on 8 logical CPU devices with the auto preset, then the minibatch-stddev
feature of each replica's share of one real batch from the run's own input stream.

    python tests/eight_replicas_main.py DATASET RUN_DIR

Prints one JSON line: {"replicas", "per_replica", "stddev": [per replica], "kimg"}. Run by
tests/test_gpu_path.py in a process of its own (the test session has two logical devices).
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from progan_tf import config as config_lib, data  # noqa: E402
from progan_tf.layers import MinibatchStdev  # noqa: E402
from progan_tf.strategies import make_strategy  # noqa: E402
from progan_tf.trainer import Trainer  # noqa: E402


def main(dataset_dir: str, run_dir: str) -> None:
    strategy = make_strategy("auto", cpu_replicas=8)
    dataset = data.load_info(dataset_dir)
    c = config_lib.get_config()
    c.fmap_base, c.fmap_max, c.latent_size = 32, 8, 8
    c.lod_training_kimg = c.lod_transition_kimg = 0.064
    c.total_kimg = 0.128  # 4x4 stable and the 8x8 fade-in: two compiled steps of 8 replicas
    c.tick_kimg = c.snapshot_kimg = c.checkpoint_kimg = 0.064
    c.grid_size, c.steps_per_call = 4, 2
    # the auto preset at 8x8 and 4x4 asks for 512 / 256 images: small ones here, as many per
    # replica as a 128x128+ stage of the 8gpu preset gives (4)
    c.minibatch_dict = {"4": 32, "8": 32}
    config_lib.resolve_labels(c, dataset.num_labels, dataset.path)
    config_lib.resolve_preset(c, strategy.num_replicas_in_sync)
    schedule = config_lib.schedule(c, resolution=8, num_replicas=strategy.num_replicas_in_sync)
    config_lib.validate(c, schedule)
    arch = config_lib.architecture(
        c, resolution=8, channels=dataset.channels, num_labels=dataset.num_labels
    )
    trainer = Trainer(
        arch=arch,
        schedule=schedule,
        options=config_lib.trainer_options(c),
        dataset=dataset,
        run_dir=run_dir,
        strategy=strategy,
        config=c.to_dict(),
    )
    trainer.train()
    # One batch of the run's own distributed stream; each replica's share through the layer.
    stream = data.distribute(strategy, dataset, 8, schedule.global_batch_size(8), shuffle_buffer=64)
    reals = next(iter(stream))[0]
    layer = MinibatchStdev(c.mbstd_group_size)

    def feature(images):
        x = tf.cast(images, tf.float32)
        return tf.shape(x)[0], layer(x)[:, 0, 0, -1]  # the appended channel, one per image

    sizes, values = strategy.run(feature, args=(reals,))
    local = strategy.experimental_local_results
    print(
        json.dumps(
            {
                "replicas": strategy.num_replicas_in_sync,
                "per_replica": [int(s) for s in local(sizes)],
                "stddev": [float(np.mean(v)) for v in local(values)],
                "kimg": trainer.kimg,
                "preset": c.minibatch_preset,
            }
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:3])

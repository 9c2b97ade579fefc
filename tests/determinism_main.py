"""Run by test_runtime.py in its own process (op determinism is process-wide): trains a tiny run
three ways and prints one JSON line comparing every checkpoint variable.

  A: uninterrupted to the end.   B: crashed between checkpoints, then resumed by a new Trainer.
  C: A again, in another directory (same seed).
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from progan_tf import data, dataset_io  # noqa: E402
from progan_tf.networks import Architecture  # noqa: E402
from progan_tf.schedule import Schedule  # noqa: E402
from progan_tf.steps import StepOptions  # noqa: E402
from progan_tf.trainer import Trainer, TrainerOptions  # noqa: E402

ARCH = Architecture(resolution=8, latent_size=8, fmap_base=32, fmap_max=8)
SCHEDULE = Schedule(final_resolution=8, stable_kimg=0.064, fade_kimg=0.064, minibatch={}, minibatch_default=8)
OPTIONS = TrainerOptions(total_images=224, tick_images=32, snapshot_images=224, checkpoint_images=64, steps_per_call=3,
                         grid_size=4, shuffle_buffer=16, mirror_augment=True,
                         step=StepOptions(seed=3, augment_policy=os.environ.get("AUGMENT", "")))


class Crash(Exception):
    pass


def trainer(dataset, run_dir):
    return Trainer(arch=ARCH, schedule=SCHEDULE, options=OPTIONS, dataset=dataset, run_dir=run_dir,
                   strategy=tf.distribute.OneDeviceStrategy("/cpu:0"))


def variables(run_dir):
    path = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    return path, {name: tf.train.load_variable(path, name) for name, _ in tf.train.list_variables(path)
                  if name != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def main(root):
    tf.config.experimental.enable_op_determinism()
    rng = np.random.default_rng(0)
    dataset_io.write_arrays(os.path.join(root, "data"), rng.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8), None,
                            name="noise")
    dataset = data.load_info(os.path.join(root, "data"))
    trainer(dataset, os.path.join(root, "a")).train()

    crashing = trainer(dataset, os.path.join(root, "b"))
    original_tick = crashing._tick

    def tick_then_crash(*args, **kwargs):  # the first tick after 96 images: past ckpt-64, before ckpt-128
        result = original_tick(*args, **kwargs)
        if crashing.seen >= 96:
            raise Crash
        return result

    crashing._tick = tick_then_crash
    try:
        crashing.train()
    except Crash:
        pass
    crashed_at = crashing.seen
    crashed_checkpoint = tf.train.latest_checkpoint(os.path.join(root, "b", "checkpoints"))
    trainer(dataset, os.path.join(root, "b")).train()
    trainer(dataset, os.path.join(root, "c")).train()

    path_a, a = variables(os.path.join(root, "a"))
    path_b, b = variables(os.path.join(root, "b"))
    _, c = variables(os.path.join(root, "c"))
    differ = lambda x, y: sorted(k for k in x if not np.array_equal(x[k], y.get(k)))  # noqa: E731
    print(json.dumps({
        "checkpoints": [os.path.basename(path_a), os.path.basename(path_b)],
        "num_variables": len(a), "crashed_at": crashed_at, "resumed_from": os.path.basename(crashed_checkpoint),
        "resumed_differs": differ(a, b), "rerun_differs": differ(a, c), "same_keys": sorted(a) == sorted(b) == sorted(c),
    }))


if __name__ == "__main__":
    main(sys.argv[1])

"""Run by test_runtime.py in its own process (op determinism is process-wide): trains a tiny run
two ways and prints one JSON line comparing every checkpoint variable.

  A: uninterrupted to the end.
  B: the same seed in another directory: crashed between checkpoints, resumed by a new
     Trainer and stopped by SIGTERM in its first (compiling) call, which saves where it
     stopped; resumed, crashed between checkpoints again, and resumed to the end. B starts from
     scratch like A, so B == A needs both a reproducible run (no unseeded source) and a resume
     that loses nothing.
"""

import json
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from progan_tf import data, dataset_io  # noqa: E402
from progan_tf.networks import Architecture  # noqa: E402
from progan_tf.schedule import Schedule  # noqa: E402
from progan_tf.steps import StepOptions  # noqa: E402
from progan_tf.stopping import RunInterrupted  # noqa: E402
from progan_tf.strategies import mirrored_strategy  # noqa: E402
from progan_tf.trainer import Trainer, TrainerOptions  # noqa: E402

REPLICAS = int(os.environ.get("REPLICAS", "1"))  # 2: MirroredStrategy over two logical CPU devices
if REPLICAS > 1:
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0],
        [tf.config.LogicalDeviceConfiguration()] * REPLICAS,
    )
ARCH = Architecture(resolution=16, latent_size=8, fmap_base=32, fmap_max=8)
# 4x4 stable [0, 64), 8x8 fade-in [64, 128), 8x8 stable [128, 192) on the fade-in's carried
# step (a stable phase below the final resolution); the run ends there, before 16x16
SCHEDULE = Schedule(
    final_resolution=16,
    stable_kimg=0.064,
    fade_kimg=0.064,
    minibatch={},
    minibatch_default=8,
    num_replicas=REPLICAS,
)
OPTIONS = TrainerOptions(
    total_images=192,
    tick_images=32,
    snapshot_images=192,
    checkpoint_images=64,
    steps_per_call=3,
    grid_size=4,
    shuffle_buffer=16,
    mirror_augment=True,
    carry_fade_step=True,
    step=StepOptions(
        seed=3,
        augment_policy=os.environ.get("AUGMENT", ""),
        gp_interval=int(os.environ.get("GP_INTERVAL", "1")),
    ),
)


class Crash(Exception):
    pass


def trainer(dataset, run_dir):
    strategy = (
        mirrored_strategy([f"/cpu:{i}" for i in range(REPLICAS)])
        if REPLICAS > 1
        else tf.distribute.OneDeviceStrategy("/cpu:0")
    )
    return Trainer(
        arch=ARCH,
        schedule=SCHEDULE,
        options=OPTIONS,
        dataset=dataset,
        run_dir=run_dir,
        strategy=strategy,
    )


def variables(run_dir):
    path = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    return path, {
        name: tf.train.load_variable(path, name)
        for name, _ in tf.train.list_variables(path)
        if name != "_CHECKPOINTABLE_OBJECT_GRAPH"
    }


def main(root):
    tf.config.experimental.enable_op_determinism()
    rng = np.random.default_rng(0)
    dataset_io.write_arrays(
        os.path.join(root, "data"),
        rng.integers(0, 256, (20, 16, 16, 3), dtype=np.uint8),
        None,
        name="noise",
    )
    dataset = data.load_info(os.path.join(root, "data"))
    trainer(dataset, os.path.join(root, "a")).train()

    # B crashes in the 8x8 fade-in (resumed from its start, ckpt-64); the resumed run is stopped
    # by SIGTERM in its first call (one step, which compiles the fade-in's step: 72 images, not a
    # checkpoint multiple), which saves ckpt-72; resumed from there, it crashes in the 8x8
    # stable phase (resumed from ckpt-128: a new Trainer builds the stable phase's step, which
    # the uninterrupted run carried over from the fade-in) and is resumed to the end.
    crashes, stopped = [], None
    for crash_after, signal_after in ((96, None), (None, 64), (160, None)):
        b = trainer(dataset, os.path.join(root, "b"))
        if crash_after is not None:
            original_tick = b._tick

            def tick_then_crash(*args, b=b, original_tick=original_tick, after=crash_after, **kw):
                # the first tick past `after`: between checkpoints
                result = original_tick(*args, **kw)
                if b.seen >= after:
                    raise Crash
                return result

            b._tick = tick_then_crash
        else:
            original_run = b.runner.run

            def run_then_signal(stop, b=b, original_run=original_run, after=signal_after):
                result = original_run(stop)
                if b.seen > after:
                    os.kill(os.getpid(), signal.SIGTERM)
                return result

            b.runner.run = run_then_signal
        try:
            b.train()
        except Crash:
            latest = tf.train.latest_checkpoint(os.path.join(root, "b", "checkpoints"))
            crashes.append([b.seen, os.path.basename(latest)])
        except RunInterrupted as interrupted:
            stopped = [interrupted.exit_code, str(interrupted)]
    trainer(dataset, os.path.join(root, "b")).train()

    path_a, a = variables(os.path.join(root, "a"))
    path_b, b = variables(os.path.join(root, "b"))
    differ = lambda x, y: sorted(k for k in x if not np.array_equal(x[k], y.get(k)))  # noqa: E731
    print(
        json.dumps(
            {
                "checkpoints": [os.path.basename(path_a), os.path.basename(path_b)],
                "num_variables": len(a),
                "crashes": crashes,
                "stopped": stopped,
                "resumed_differs": differ(a, b),
                "same_keys": sorted(a) == sorted(b),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])

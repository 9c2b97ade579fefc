"""One worker of the two-process MultiWorkerMirroredStrategy test (tests/test_scale.py).

    TF_CONFIG=... python tests/multi_worker_main.py DATASET RUN_DIR OUT.npz

Trains the tiny networks through the 4x4 -> 8x8 fade with the global batch split over the
workers, then saves every weight of G, D and the EMA generator to OUT.npz. Faults (a fourth
argument): `chief_fails` (its checkpoint write), `sigterm_worker1` (worker 1 is sent SIGTERM
after its call that passes 40 images: both must stop after that call with a checkpoint).
"""

import json
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from progan_tf import data  # noqa: E402
from progan_tf.networks import Architecture  # noqa: E402
from progan_tf.schedule import Schedule  # noqa: E402
from progan_tf.stopping import RunInterrupted  # noqa: E402
from progan_tf.strategies import make_strategy  # noqa: E402
from progan_tf.trainer import Trainer, TrainerOptions  # noqa: E402


def main(dataset_dir: str, run_dir: str, out: str, fault: str = "") -> None:
    strategy = make_strategy("multi_worker")
    if fault == "chief_fails" and json.loads(os.environ["TF_CONFIG"])["task"]["index"] == 0:
        from progan_tf import checkpoints  # noqa: PLC0415

        def fail(self, images_seen):
            raise checkpoints.CheckpointWriteError("injected: the chief's disk failed")

        checkpoints.Checkpoints.save = fail
    assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
    trainer = Trainer(
        arch=Architecture(resolution=8, latent_size=8, fmap_base=32, fmap_max=8),
        schedule=Schedule(
            final_resolution=8,
            stable_kimg=0.032,
            fade_kimg=0.032,
            minibatch={},
            minibatch_default=8,
            num_replicas=2,
        ),
        options=TrainerOptions(
            total_images=80,
            tick_images=16,
            snapshot_images=40,
            checkpoint_images=40,
            steps_per_call=2,
            grid_size=4,
            shuffle_buffer=32,
        ),
        dataset=data.load_info(dataset_dir),
        run_dir=run_dir,
        strategy=strategy,
    )
    if fault == "sigterm_worker1" and json.loads(os.environ["TF_CONFIG"])["task"]["index"] == 1:
        run = trainer.runner.run

        def run_then_signal(stop):
            result = run(stop)
            if trainer.seen > 40:
                os.kill(os.getpid(), signal.SIGTERM)
            return result

        trainer.runner.run = run_then_signal
    try:
        stats = trainer.train()
    except RunInterrupted as stopped:
        print(f"worker stopped: {stopped}, chief {trainer.chief}")
        sys.exit(stopped.exit_code)
    assert np.isfinite(stats["d_loss"]) and np.isfinite(stats["g_loss"]), stats
    weights = [
        v.numpy()
        for net in (trainer.generator, trainer.discriminator, trainer.ema)
        for v in net.variables
    ]
    np.savez(out, *weights, images_seen=trainer.images_seen.numpy())
    print(f"worker done: kimg {trainer.kimg}, chief {trainer.chief}")


if __name__ == "__main__":
    main(*sys.argv[1:5])

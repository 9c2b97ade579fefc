"""Scale: two worker processes under MultiWorkerMirroredStrategy; mixed precision on CPU."""

import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT, cli_env
from progan_tf import data, dataset_io
from progan_tf.checkpoints import find_restorable
from progan_tf.networks import Architecture
from progan_tf.schedule import Schedule
from progan_tf.steps import StepOptions, apply_if_finite
from progan_tf.strategies import make_strategy, mirrored_strategy
from progan_tf.trainer import Trainer, TrainerOptions


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    rng = np.random.default_rng(3)
    images = (
        tf.nn.avg_pool2d(rng.random((64, 8, 8, 3)).astype("float32"), 3, 1, "SAME").numpy() * 255
    ).astype(np.uint8)
    path = tmp_path_factory.mktemp("data") / "tiny"
    dataset_io.write_arrays(path, images, None, name="tiny", shards=2)
    return data.load_info(path)


def run_two_workers(dataset, tmp_path, *fault: str) -> tuple[list[subprocess.Popen], list[str]]:
    """tests/multi_worker_main.py as two local worker processes; their processes and outputs."""
    ports = free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": index}}
            ),
            "CUDA_VISIBLE_DEVICES": "",
        }
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    os.path.join(ROOT, "tests", "multi_worker_main.py"),
                    dataset.path,
                    str(tmp_path / "run"),
                    str(tmp_path / f"worker{index}.npz"),
                    *fault,
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = []
    for proc in procs:
        try:
            outputs.append(proc.communicate(timeout=400)[0])
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            pytest.fail("a worker was still running after 400 s")
    return procs, outputs


def test_sigterm_to_one_worker_stops_both_after_the_same_call_and_they_resume(dataset, tmp_path):
    run_dir = tmp_path / "run"
    procs, outputs = run_two_workers(dataset, tmp_path, "sigterm_worker1")
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 143, out[-3000:]
    # worker 1's signal comes after the call past 40 images, which ends at the tick at 48,
    # between the checkpoints at 40 and 80
    assert (
        "stopped by SIGTERM on another worker, saved ckpt-48; the same command resumes"
        in outputs[0]
    )
    assert "stopped by SIGTERM, the chief saved the checkpoint" in outputs[1]
    assert find_restorable(str(run_dir / "checkpoints"))[0].endswith("ckpt-48")
    assert not [n for n in os.listdir(run_dir) if n.startswith(".scratch")]
    procs, outputs = run_two_workers(dataset, tmp_path)
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0, out[-3000:]
    assert "resuming from kimg 0.048 (ckpt-48)" in outputs[0]
    # Resumed, the two workers end with the same weights (an uninterrupted run's test, folded in
    # here: one pair of processes fewer in the suite).
    chief, worker = np.load(tmp_path / "worker0.npz"), np.load(tmp_path / "worker1.npz")
    assert int(chief["images_seen"]) == int(worker["images_seen"]) == 80
    names = [k for k in chief.files if k != "images_seen"]
    assert len(names) > 20
    for name in names:
        np.testing.assert_array_equal(chief[name], worker[name])
    assert "chief True" in outputs[0] and "chief False" in outputs[1]
    # The chief alone writes the run directory; the other worker's scratch checkpoints are gone.
    assert tf.train.latest_checkpoint(str(run_dir / "checkpoints")).endswith("ckpt-80")
    assert not [n for n in os.listdir(run_dir) if n.startswith(".scratch")]


def test_mixed_precision_training_on_cpu(dataset, tmp_path):
    """Two replicas, float16 activations, Keras' LossScaleOptimizer carried across phases (4x4
    stable, then the 8x8 fade-in)."""
    from keras import mixed_precision

    def make_trainer():
        return Trainer(
            arch=Architecture(
                resolution=8, latent_size=8, fmap_base=32, fmap_max=8, pixelnorm_epsilon=1e-4
            ),
            schedule=Schedule(
                final_resolution=8,
                stable_kimg=0.064,
                fade_kimg=0.032,
                minibatch={},
                minibatch_default=8,
                num_replicas=2,
            ),
            options=TrainerOptions(
                total_images=96,
                tick_images=32,
                snapshot_images=96,
                checkpoint_images=96,
                steps_per_call=4,
                grid_size=4,
                shuffle_buffer=32,
                step=StepOptions(mixed_precision=True),
            ),
            dataset=dataset,
            run_dir=str(tmp_path),
            strategy=mirrored_strategy(["/cpu:0", "/cpu:1"]),
        )

    keras.utils.set_random_seed(1)  # the same initial weights in any test order
    try:
        trainer = make_trainer()
        before = [v.numpy().copy() for v in trainer.generator.variables]
        stats = trainer.train()
        model = trainer.generator.stage_model(8)
        fakes = model(tf.random.normal([4, 8]))
        assert fakes.dtype == tf.float16  # activations in float16 ...
        assert {v.dtype for v in trainer.generator.variables} == {
            "float32"
        }  # ... variables in float32
        assert np.isfinite(stats["d_loss"]) and np.isfinite(stats["g_loss"])
        assert any(
            np.abs(a - v.numpy()).max() > 0 for a, v in zip(before, trainer.generator.variables)
        )
        optimizer = trainer.phase_step.d_optimizer
        assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        scale = float(optimizer.dynamic_scale.numpy())
        skipped = int(trainer.counters["nonfinite_total"].numpy())
        # Dynamic loss scaling: 2**15 overflows float16 here at first; those steps were skipped
        # and the scale halved, then training went on with finite steps.
        assert 1.0 <= scale < 2.0**15 and skipped >= 1
        # The next phase's optimizers start from the scale found so far; a resumed run restores it.
        trainer.runner.enter(trainer.phase_step.phase)
        assert float(trainer.phase_step.d_optimizer.dynamic_scale.numpy()) == scale
        resumed = make_trainer()
        assert resumed.restore()
        assert float(resumed.phase_step.d_optimizer.dynamic_scale.numpy()) == scale
    finally:
        mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("loss_scaled", [False, True], ids=["float32", "loss_scaled"])
@pytest.mark.parametrize("bad_replica", [None, 0, 1])
def test_a_step_is_applied_on_every_replica_or_on_none(loss_scaled, bad_replica):
    """Replica `bad_replica` sees a NaN gradient: no replica may apply the step, and the loss
    scale halves (Keras' LossScaleOptimizer alone would look at replica 0 only)."""
    strategy = mirrored_strategy(["/cpu:0", "/cpu:1"])
    scale = 4.0 if loss_scaled else 1.0
    with strategy.scope():
        var = keras.Variable(np.zeros(3, np.float32))
        optimizer = keras.optimizers.SGD(1.0)
        if loss_scaled:
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=scale)
        optimizer.build([var])

    @tf.function
    def step():
        def replica():
            index = tf.distribute.get_replica_context().replica_id_in_sync_group
            grad = tf.cast(index + 1, tf.float32) * tf.constant([1.0, 2.0, 3.0]) * scale
            if bad_replica is not None:
                grad = tf.where(tf.equal(index, bad_replica), grad * float("nan"), grad)
            return apply_if_finite(optimizer, [grad], [var], tf.constant(0.5))

        return strategy.experimental_local_results(strategy.run(replica))

    decisions = [bool(d) for d in step()]
    if bad_replica is None:
        assert decisions == [True, True]
        # SGD on the summed gradient
        np.testing.assert_allclose(var.numpy(), -3.0 * np.array([1.0, 2.0, 3.0]))
        assert int(optimizer.iterations.numpy()) == 1
    else:
        assert decisions == [False, False]
        np.testing.assert_array_equal(var.numpy(), np.zeros(3))
        assert int(optimizer.iterations.numpy()) == 0
    if loss_scaled:
        assert float(optimizer.dynamic_scale.numpy()) == (
            scale if bad_replica is None else scale / 2
        )


def test_bfloat16_training_on_cpu(dataset, tmp_path):
    """--config.mixed_precision_dtype=bfloat16 (as on TPUs): no loss scaling, float32 variables."""
    from keras import mixed_precision

    try:
        trainer = Trainer(
            arch=Architecture(
                resolution=8, latent_size=8, fmap_base=32, fmap_max=8, pixelnorm_epsilon=1e-4
            ),
            schedule=Schedule(
                final_resolution=8,
                stable_kimg=0.032,
                fade_kimg=0.032,
                minibatch={},
                minibatch_default=8,
            ),
            options=TrainerOptions(
                total_images=96,
                tick_images=32,
                snapshot_images=96,
                checkpoint_images=96,
                steps_per_call=4,
                grid_size=4,
                shuffle_buffer=32,
                step=StepOptions(mixed_precision=True, mixed_precision_dtype="bfloat16"),
            ),
            dataset=dataset,
            run_dir=str(tmp_path),
            strategy=tf.distribute.OneDeviceStrategy("/cpu:0"),
        )
        before = [v.numpy().copy() for v in trainer.generator.variables]
        stats = trainer.train()
        assert trainer.generator.stage_model(8)(tf.random.normal([4, 8])).dtype == tf.bfloat16
        assert {v.dtype for v in trainer.generator.variables} == {"float32"}
        assert not isinstance(trainer.phase_step.d_optimizer, keras.optimizers.LossScaleOptimizer)
        assert np.isfinite(stats["d_loss"]) and np.isfinite(stats["g_loss"])
        # bfloat16 does not overflow here
        assert int(trainer.counters["nonfinite_total"].numpy()) == 0
        assert any(
            np.abs(a - v.numpy()).max() > 0 for a, v in zip(before, trainer.generator.variables)
        )
    finally:
        mixed_precision.set_global_policy("float32")


def test_tpu_strategy_without_a_tpu_names_the_flag(monkeypatch):
    monkeypatch.delenv("TPU_NAME", raising=False)
    monkeypatch.delenv("KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS", raising=False)
    for name in ("", "no-such-tpu"):
        with pytest.raises(ValueError, match=f"--strategy=tpu --tpu='{name}': cannot find the TPU"):
            make_strategy("tpu", name)
    with pytest.raises(ValueError, match="mixed_precision_dtype='float8'"):
        StepOptions(mixed_precision=True, mixed_precision_dtype="float8")


@pytest.mark.slow  # two worker processes until the failure is noticed: ~90 s (pytest -m slow)
def test_a_failing_chief_stops_every_worker_within_bounded_time(dataset, tmp_path):
    """The chief's checkpoint write fails (injected) and it exits: the other worker, waiting in
    its next collective, must leave with an error too instead of waiting forever."""
    procs, outputs = run_two_workers(dataset, tmp_path, "chief_fails")
    assert procs[0].returncode != 0 and "injected: the chief's disk failed" in outputs[0], outputs[
        0
    ][-2000:]
    assert procs[1].returncode != 0, outputs[1][-2000:]


def test_a_worker_whose_chief_never_starts_stops_within_its_timeout(dataset, tmp_path):
    # The chief stopped before it made its strategy (a bad flag, a missing dataset on its
    # machine): worker 1 must leave TensorFlow's start barrier with one line, not wait for good.
    ports = free_ports(2)
    env = {
        **cli_env(),
        "TF_CONFIG": json.dumps(
            {
                "cluster": {"worker": [f"localhost:{p}" for p in ports]},
                "task": {"type": "worker", "index": 1},
            }
        ),
        "CUDA_VISIBLE_DEVICES": "",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "progan_tf.train",
            "--strategy=multi_worker",
            "--config.multi_worker_start_timeout=5",
            f"--data_dir={dataset.path}",
            f"--run_dir={tmp_path / 'run'}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    expected = "error: --strategy=multi_worker: the cluster in TF_CONFIG did not come together"
    assert last.startswith(f"{expected} within 5 s"), result.stderr[-2000:]


def test_fewer_images_than_workers_is_an_error_not_an_endless_loop(tmp_path):
    path = tmp_path / "two"
    dataset_io.write_arrays(path, np.zeros((2, 4, 4, 3), np.uint8), None, name="two")
    context = tf.distribute.InputContext(num_input_pipelines=4, input_pipeline_id=3)
    with pytest.raises(data.DatasetError, match="2 image\\(s\\) at 4x4 for 4 workers"):
        data.make_dataset(data.load_info(path), 4, 1, input_context=context)

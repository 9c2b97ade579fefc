"""The multi-GPU path rehearsed on CPUs: batches that follow the replica count, the plan and its
memory estimate, generation in chunks, the checkpoint before the snapshot, out of memory."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT, cli_env, noise_dataset, tiny_trainer
from progan_tf import config as config_lib, data, plan
from progan_tf.networks import Architecture, Discriminator, Generator, generate_images
from progan_tf.schedule import LEARNING_RATE_PRESETS, generation_batch, preset_for_replicas

CELEBAHQ = os.path.join(ROOT, "configs", "celebahq_1024.py")


def load_config(path: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location("preset", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


@pytest.mark.parametrize(
    "replicas,preset",
    [(1, "1gpu"), (2, "2gpu"), (3, "2gpu"), (4, "4gpu"), (8, "8gpu"), (16, "8gpu")],
)
def test_auto_preset_is_the_releases_for_the_replica_count(replicas, preset):
    assert preset_for_replicas(replicas) == preset
    c = config_lib.get_config()
    assert c.minibatch_preset == "auto"
    config_lib.resolve_preset(c, replicas)
    assert c.minibatch_preset == preset


@pytest.mark.parametrize("replicas", [1, 2, 4, 8])
def test_celebahq_plan_gives_every_replica_at_least_four_images(replicas):
    c = load_config(CELEBAHQ)
    schedule = config_lib.schedule(c, resolution=1024, num_replicas=replicas)
    config_lib.validate(c, schedule)
    assert config_lib.group_warnings(c, schedule) == []
    preset = preset_for_replicas(replicas)
    for r in [2**k for k in range(2, 11)]:
        assert schedule.global_batch_size(r) // replicas >= 4, r
        # learning rates follow the batch preset, as in the release
        assert schedule.lr(r) == LEARNING_RATE_PRESETS[preset].get(r, 0.001)
    if replicas == 8:
        assert [schedule.global_batch_size(r) for r in (4, 128, 1024)] == [512, 32, 32]


def test_one_image_per_replica_is_refused_naming_the_settings():
    c = load_config(CELEBAHQ)
    c.minibatch_preset = "1gpu"  # named: 8 at 256x256 and up, 1 per replica on 8
    schedule = config_lib.schedule(c, resolution=1024, num_replicas=8)
    with pytest.raises(ValueError) as error:
        config_lib.validate(c, schedule)
    message = str(error.value)
    assert "--config.mbstd_group_size=4 needs at least 2 images per replica" in message
    assert "256x256 gets 1 (global batch 8 on 8)" in message
    assert "--config.minibatch_preset=auto (8gpu on 8 replicas)" in message
    # the values it names work
    c.minibatch_dict = {"256": 32, "512": 32, "1024": 32}
    config_lib.validate(c, config_lib.schedule(c, resolution=1024, num_replicas=8))


def test_groups_larger_than_the_per_replica_batch_warn_as_the_paper_preset_runs():
    c = load_config(os.path.join(ROOT, "configs", "paper_1024.py"))
    schedule = config_lib.schedule(c, resolution=1024, num_replicas=1)
    config_lib.validate(c, schedule)  # the release's own preset: groups of 14, 6, 3
    (warning,) = config_lib.group_warnings(c, schedule)
    assert "256x256 (14), 512x512 (6), 1024x1024 (3)" in warning


def test_plan_parameter_counts_are_table_2s():
    arch = Architecture(resolution=1024)
    assert plan.generator_parameters(arch) == 23_079_115
    assert plan.discriminator_parameters(arch) == 23_087_249
    gray = Architecture(resolution=1024, channels=1)
    assert plan.generator_parameters(gray) == 23_074_009
    assert plan.discriminator_parameters(gray) == 23_082_161
    assert plan.discriminator_parameters(Architecture(resolution=1024, mbstd_group_size=1)) == (
        23_082_641
    )
    # a small, conditional, non-progressive pair against the Keras networks themselves
    small = Architecture(resolution=16, num_labels=3, fmap_base=64, fmap_max=16, latent_size=8)
    assert plan.generator_parameters(small) == Generator(small).count_params()
    assert plan.discriminator_parameters(small) == Discriminator(small).count_params()


def test_memory_estimate_grows_with_batch_and_halves_its_activations_in_mixed_precision():
    arch = Architecture(resolution=256)
    one, two = (plan.step_memory(arch, 256, b) for b in (4, 8))
    assert two.activations == 2 * one.activations and two.weights == one.weights
    mixed = plan.step_memory(arch, 256, 8, mixed_precision=True)
    assert mixed.activations * 2 == pytest.approx(two.activations, rel=1e-6)


def run_train(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "progan_tf.train", *args],
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_dry_run_on_eight_cpu_replicas_prints_the_plan_and_writes_nothing(tmp_path):
    run_dir = tmp_path / "run"
    result = run_train(
        "--dry_run",
        "--cpu_replicas=8",
        f"--config={CELEBAHQ}",
        "--resolution=1024",
        f"--run_dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "8 CPUs" in lines[0] and "MirroredStrategy, 8 replicas, float32, XLA off" in lines[0]
    assert "minibatch_preset 8gpu (auto)" in lines[1]
    rows = [line.split() for line in lines if "x" in line[:10] and "GiB" in line]
    assert [row[0] for row in rows] == [f"{r}x{r}" for r in (4, 8, 16, 32, 64, 128, 256, 512, 1024)]
    for row in rows:
        per_replica = int(row[row.index("x", 2) - 1])
        assert per_replica >= 4, row
    assert not run_dir.exists()
    assert "no GPU is visible" not in result.stderr  # a rehearsal asked for CPUs


def test_mirrored_without_a_gpu_warns_in_one_line(tmp_path):
    result = run_train("--dry_run", "--strategy=mirrored", f"--run_dir={tmp_path / 'run'}")
    assert result.returncode == 0, result.stderr
    (line,) = [x for x in result.stderr.splitlines() if "no GPU" in x]
    assert line.startswith("warning: no GPU is visible (--strategy=mirrored)")


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    return noise_dataset(tmp_path_factory.mktemp("data") / "noise", 64, 8, seed=5)


def test_eight_replica_run_has_a_live_minibatch_stddev(tiny_dataset, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "tests", "eight_replicas_main.py"),
            tiny_dataset.path,
            str(tmp_path / "run"),
        ],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 8 and report["preset"] == "8gpu"
    assert report["kimg"] == pytest.approx(0.128)
    assert report["per_replica"] == [4] * 8
    # one image per replica would give sqrt(0 + 1e-8) = 1e-4 everywhere: a constant
    assert all(s > 0.05 for s in report["stddev"]), report["stddev"]
    assert len(set(np.round(report["stddev"], 6))) > 1
    log = open(tmp_path / "run" / "log.txt").read()
    assert "running on 8 CPUs" in log.splitlines()[0]


class CountingModel:
    """A generator stage model that records the batch of every call."""

    def __init__(self, model):
        self.model, self.calls = model, []

    def __call__(self, inputs, training=False):
        first = inputs[0] if isinstance(inputs, list) else inputs
        self.calls.append(int(first.shape[0]))
        return self.model(inputs, training=training)


def test_generate_images_in_chunks_equals_one_call():
    arch = Architecture(resolution=8, latent_size=8, fmap_base=32, fmap_max=8, num_labels=3)
    model = Generator(arch).stage_model(8)
    latents = np.random.default_rng(0).standard_normal((11, 8)).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[np.arange(11) % 3]
    whole = data.to_uint8(model([latents, labels], training=False)).numpy()
    counting = CountingModel(model)
    chunked = generate_images(counting, latents, labels, batch_size=4)
    assert counting.calls == [4, 4, 3]
    np.testing.assert_array_equal(chunked, whole)


def test_generation_batch_is_one_gpus_training_batch():
    assert [generation_batch(r) for r in (4, 32, 256, 1024)] == [128, 64, 8, 4]


def test_exported_signature_runs_in_chunks_and_equals_the_model(tmp_path):
    from progan_tf.savedmodel import export_generator

    arch = Architecture(resolution=8, latent_size=8, fmap_base=32, fmap_max=8)
    model = Generator(arch).stage_model(8)
    export_generator(model, 8, 0, str(tmp_path / "1"), batch_size=3)
    loaded = tf.saved_model.load(str(tmp_path / "1"))
    latents = np.random.default_rng(1).standard_normal((7, 8)).astype(np.float32)
    out = loaded.signatures["serving_default"](latents=tf.constant(latents))
    np.testing.assert_allclose(
        out["raw"].numpy(), model(latents, training=False).numpy(), atol=1e-5
    )
    assert out["images"].shape == (7, 8, 8, 3)


def make_trainer(dataset, run_dir, total_images=64, **overrides):
    return tiny_trainer(
        dataset,
        run_dir,
        total_images,
        snapshot_images=32,
        checkpoint_images=32,
        grid_size=6,
        shuffle_buffer=64,
        **overrides,
    )


def test_sample_grid_runs_in_per_replica_chunks(tiny_dataset, tmp_path, monkeypatch):
    from progan_tf import trainer as trainer_lib

    seen = []

    def spy(model, latents, labels=None, *, batch_size):
        seen.append(batch_size)
        return generate_images(model, latents, labels, batch_size=batch_size)

    monkeypatch.setattr(trainer_lib, "generate_images", spy)
    trainer = make_trainer(tiny_dataset, tmp_path / "run", total_images=32)
    trainer.train()
    assert seen and set(seen) == {8}  # the stage's batch on one replica, not the grid's 6... or 64


def test_a_failed_snapshot_keeps_the_checkpoint_of_its_image_count(
    tiny_dataset, tmp_path, monkeypatch
):
    from progan_tf.trainer import Trainer

    def no_memory(self, latents=None):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")

    monkeypatch.setattr(Trainer, "sample_grid", no_memory)
    trainer = make_trainer(tiny_dataset, tmp_path / "run", total_images=64)
    trainer.train()  # goes on
    names = sorted(os.listdir(tmp_path / "run" / "checkpoints"))
    assert any(n.startswith("ckpt-32.") for n in names) and any(
        n.startswith("ckpt-64.") for n in names
    )
    log = open(tmp_path / "run" / "log.txt").read()
    assert log.count("out of memory drawing the sample grid") == 2
    assert "Traceback" not in log


def test_out_of_memory_in_the_step_is_one_line_naming_the_setting(
    tiny_dataset, tmp_path, monkeypatch
):
    from progan_tf.phases import PhaseRunner
    from progan_tf.trainer import TrainingError

    trainer = make_trainer(tiny_dataset, tmp_path / "run", total_images=64)
    run = PhaseRunner.run

    def run_then_fail(self, stop):
        if self.state.seen >= 32:
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
        return run(self, stop)

    monkeypatch.setattr(PhaseRunner, "run", run_then_fail)
    with pytest.raises(TrainingError) as error:
        trainer.train()
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("out of memory in the 8x8 fade-in step at kimg 0.032 (batch 8")
    assert "ckpt-32" in message and "--config.max_minibatch_per_replica" in message


def test_the_checkpoint_is_written_before_the_snapshot_of_the_same_count(
    tiny_dataset, tmp_path, monkeypatch
):
    from progan_tf.trainer import Trainer

    def broken(self, latents=None):
        raise RuntimeError("the grid failed")

    monkeypatch.setattr(Trainer, "sample_grid", broken)
    trainer = make_trainer(tiny_dataset, tmp_path / "run", total_images=64)
    with pytest.raises(RuntimeError, match="the grid failed"):
        trainer.train()
    names = os.listdir(tmp_path / "run" / "checkpoints")
    assert any(n.startswith("ckpt-32.") for n in names)  # a resume starts after the failure


def test_ema_updates_each_replicas_copy_from_its_own_weights():
    """Two logical devices: G's copies set apart on purpose; each EMA copy must follow its own
    device's G (no broadcast from one device), and with equal copies equal the one-device EMA."""
    import keras

    from progan_tf.steps import update_ema
    from progan_tf.strategies import mirrored_strategy

    def run(strategy, g_values):
        with strategy.scope():
            g = keras.Variable(np.zeros(3, np.float32), name="g")
            ema = keras.Variable(np.full(3, 2.0, np.float32), name="ema")
        tf_g = g.value
        for device_value, value in zip(
            tf_g.values if hasattr(tf_g, "values") else [tf_g], g_values
        ):
            device_value.assign(value)
        tf.function(lambda: update_ema(strategy, [(ema, g)], 0.9))()
        ema_tf = ema.value
        return [v.numpy() for v in (ema_tf.values if hasattr(ema_tf, "values") else [ema_tf])]

    a, b = np.array([1.0, 2, 3], np.float32), np.array([-1.0, 0, 5], np.float32)
    two = run(mirrored_strategy(["/cpu:0", "/cpu:1"]), [a, b])
    np.testing.assert_allclose(two[0], a + (2.0 - a) * 0.9, rtol=1e-6)
    np.testing.assert_allclose(two[1], b + (2.0 - b) * 0.9, rtol=1e-6)
    same = run(mirrored_strategy(["/cpu:0", "/cpu:1"]), [a, a])
    (one,) = run(tf.distribute.OneDeviceStrategy("/cpu:0"), [a])
    np.testing.assert_array_equal(same[0], one)
    np.testing.assert_array_equal(same[1], one)


@pytest.mark.parametrize("mirror", [False, True])
def test_uint8_stream_prepared_on_the_device_equals_the_float_stream(tiny_dataset, mirror):
    from progan_tf.strategies import mirrored_strategy

    two = mirrored_strategy(["/cpu:0", "/cpu:1"])
    kwargs = dict(seed=3, mirror=mirror, shuffle_buffer=16, with_position=True)
    floats = iter(data.distribute(two, tiny_dataset, 8, 8, **kwargs))
    raw = iter(data.distribute(two, tiny_dataset, 8, 8, as_uint8=True, **kwargs))
    local = two.experimental_local_results
    for _ in range(3):
        expected, got = next(floats), next(raw)
        assert len(got) == (4 if mirror else 3)
        assert all(x.dtype == tf.uint8 for x in local(got[0]))
        prepared = two.run(
            lambda *b: data.prepare_reals(b[0], b[3] if len(b) > 3 else None), args=tuple(got)
        )
        for a, b in zip(local(expected[0]), local(prepared)):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
        if mirror:  # each image as stored or its left-right flip, and some flipped
            stored = [data.to_float(x).numpy() for x in local(got[0])]
            flipped = [
                [not np.array_equal(p, s) for p, s in zip(x.numpy(), y)]
                for x, y in zip(local(prepared), stored)
            ]
            for x, y, f in zip(local(prepared), stored, flipped):
                for p, s, is_flipped in zip(x.numpy(), y, f):
                    np.testing.assert_array_equal(p, s[:, ::-1] if is_flipped else s)
            assert any(any(f) for f in flipped)


def test_block_shuffle_order_is_the_blocks_permutation(tiny_dataset):
    """The order a block is read in: the argsort of its seeded uniforms, as one gather would
    have given it (the reference here), now gathered a chunk at a time."""
    got = next(iter(data.make_dataset(tiny_dataset, 8, 64, seed=2, shuffle_buffer=16)))[0]
    plain = next(iter(data.make_dataset(tiny_dataset, 8, 64, shuffle=False)))[0].numpy()
    # the file order of epoch 0 is shuffled too (one file here): records in file order
    epoch_seed = tf.stack([tf.constant(2 * 7919 + 8, tf.int64), tf.constant(0, tf.int64)])
    expected = []
    for block in range(4):
        u = tf.random.stateless_uniform(
            [16], epoch_seed + tf.stack([tf.constant(block + 1, tf.int64), 0])
        )
        expected += [block * 16 + int(i) for i in tf.argsort(u)]
    np.testing.assert_array_equal(got.numpy(), plain[expected])

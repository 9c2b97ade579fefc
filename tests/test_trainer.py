"""Short real training runs: a fade on two replicas, exact resume, EMA, non-finite steps."""

import gc
import json
import math
import os
import threading
import time
import weakref

import numpy as np
import pytest
import tensorflow as tf

from progan_tf import data, dataset_io, losses
from progan_tf.networks import Architecture, Discriminator, Generator
from progan_tf.schedule import Schedule, phase_at
from progan_tf.strategies import mirrored_strategy
from progan_tf.steps import StepOptions, loss_scale_of, make_optimizer, reset_optimizer
from progan_tf.trainer import Progress, Trainer, TrainingError
from conftest import tiny_trainer

ARCH = Architecture(resolution=8, latent_size=8, fmap_base=32, fmap_max=8)
# 64 images per phase at a global batch of 8: 4x4 stable [0, 64), 8x8 fade [64, 128), 8x8 stable.
SCHEDULE = Schedule(
    final_resolution=8,
    stable_kimg=0.064,
    fade_kimg=0.064,
    minibatch={},
    minibatch_default=8,
    num_replicas=2,
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    rng = np.random.default_rng(0)
    xs = np.linspace(0, 1, 8)
    images = []
    for _ in range(32):  # smooth colour gradients: learnable structure
        a, b, c = rng.uniform(0, 255, 3)
        grid = np.ones((8, 8))
        image = np.stack([a * xs[None, :] * grid, b * xs[:, None] * grid, c * grid], -1)
        images.append(image)
    path = tmp_path_factory.mktemp("data") / "gradients"
    dataset_io.write_arrays(
        path, np.asarray(images).round().astype(np.uint8), None, name="gradients"
    )
    return data.load_info(path)


def two_replicas() -> tf.distribute.Strategy:
    return mirrored_strategy(["/cpu:0", "/cpu:1"])


def make_trainer(
    dataset, run_dir, total_kimg, *, arch=ARCH, schedule=SCHEDULE, strategy=None, **options
) -> Trainer:
    """The module's trainer: 4x4 -> 8x8 in 64-image phases, on two replicas unless `strategy`."""
    base = dict(snapshot_images=64, checkpoint_images=64, steps_per_call=3, shuffle_buffer=64)
    return tiny_trainer(
        dataset,
        run_dir,
        round(total_kimg * 1000),
        arch=arch,
        schedule=schedule,
        strategy=strategy or two_replicas(),
        **{**base, **options},
    )


def weights(layer) -> list[np.ndarray]:
    return [w.numpy().copy() for w in layer.trainable_weights]


def changed(before, after) -> bool:
    return any(np.abs(a - b).max() > 0 for a, b in zip(before, after))


@pytest.fixture(scope="module")
def fade_run(dataset, tmp_path_factory):
    """4x4 stable, then half of the 8x8 fade-in, stopped; then resumed to the 8x8 stable phase."""
    run_dir = tmp_path_factory.mktemp("run")
    first = make_trainer(dataset, run_dir, total_kimg=0.096)
    initial = {
        "g4": weights(first.generator.blocks[4]),
        "g8": weights(first.generator.blocks[8]),
        "d8": weights(first.discriminator.blocks[8]),
    }
    first.train()
    state = {
        "kimg": first.kimg,
        "phase": first.phase_step.phase.key,
        "alpha": float(first.alpha.numpy()),
        "d_iterations": int(first.phase_step.d_optimizer.iterations.numpy()),
        "g_iterations": int(first.phase_step.g_optimizer.iterations.numpy()),
        "g8": weights(first.generator.blocks[8]),
        "ema8": weights(first.ema.blocks[8]),
        "adam_v": [v.numpy().copy() for v in first.phase_step.d_optimizer.variables],
    }
    resumed = make_trainer(dataset, run_dir, total_kimg=0.192)
    assert resumed.restore()
    restored = {
        "kimg": resumed.kimg,
        "phase": resumed.phase_step.phase.key,
        "alpha": float(resumed.alpha.numpy()),
        "d_iterations": int(resumed.phase_step.d_optimizer.iterations.numpy()),
        "g_iterations": int(resumed.phase_step.g_optimizer.iterations.numpy()),
        "g8": weights(resumed.generator.blocks[8]),
        "ema8": weights(resumed.ema.blocks[8]),
        "adam_v": [v.numpy().copy() for v in resumed.phase_step.d_optimizer.variables],
    }
    before_stable = weights(resumed.generator.to_rgb[4])
    phase_starts = []  # optimizer state right after each new phase's optimizers are made
    switch = resumed._switch_phase

    def recording_switch(phase):
        switch(phase)
        optimizers = (resumed.phase_step.d_optimizer, resumed.phase_step.g_optimizer)
        phase_starts.append(
            {
                v.path: v.numpy().copy()
                for o in optimizers
                for v in o.variables
                if not v.path.endswith("learning_rate")
            }
        )

    resumed._switch_phase = recording_switch
    last = resumed.train()
    return {
        "run_dir": run_dir,
        "initial": initial,
        "state": state,
        "restored": restored,
        "last": last,
        "trainer": resumed,
        "first": first,
        "before_stable_torgb4": before_stable,
        "phase_starts": phase_starts,
    }


def test_fade_run_on_two_replicas_has_finite_losses_and_moving_weights(fade_run):
    trainer = fade_run["trainer"]
    assert trainer.strategy.num_replicas_in_sync == 2
    last = fade_run["last"]
    assert all(
        math.isfinite(last[k]) for k in ("d_loss", "g_loss", "gradient_penalty", "d_real", "d_fake")
    )
    assert (last["resolution"], last["phase"], last["kimg"]) == (8, "stable", 0.192)
    assert changed(fade_run["initial"]["g4"], weights(trainer.generator.blocks[4]))
    assert changed(fade_run["initial"]["d8"], weights(trainer.discriminator.blocks[8]))
    stats = [
        s
        for s in map(json.loads, open(os.path.join(fade_run["run_dir"], "stats.jsonl")))
        if "phase_time" not in s
    ]
    alphas = [s["alpha"] for s in stats if s["phase"] == "fade"]
    assert alphas and 0 < alphas[0] < 1 and alphas == sorted(alphas)


def test_new_block_trains_only_from_its_fade_in(dataset, tmp_path):
    trainer = make_trainer(dataset, tmp_path, total_kimg=0.064)  # the 4x4 stable phase only
    before = weights(trainer.generator.blocks[8]), weights(trainer.discriminator.blocks[8])
    trainer.train()
    assert not changed(before[0], weights(trainer.generator.blocks[8]))
    assert not changed(before[1], weights(trainer.discriminator.blocks[8]))
    g8 = {v.path for v in trainer.generator.blocks[8].trainable_weights}
    assert g8 & {v.path for v in trainer.phase_step.g_vars}  # the next phase's optimizer has it
    assert trainer.phase_step.phase.key == (8, True)


def test_resume_restores_kimg_phase_alpha_and_optimizer_state(fade_run):
    state, restored = fade_run["state"], fade_run["restored"]
    assert restored["kimg"] == state["kimg"] == 0.096
    assert restored["phase"] == state["phase"] == (8, True)
    assert restored["alpha"] == pytest.approx(state["alpha"]) and restored[
        "alpha"
    ] == pytest.approx(0.5)
    # 32 images of the fade at batch 8
    assert restored["d_iterations"] == state["d_iterations"] == 4
    assert restored["g_iterations"] == state["g_iterations"] == 4
    for a, b in zip(
        state["g8"] + state["ema8"] + state["adam_v"],
        restored["g8"] + restored["ema8"] + restored["adam_v"],
    ):
        np.testing.assert_array_equal(a, b)


def test_optimizer_state_resets_at_each_phase(fade_run):
    trainer = fade_run["trainer"]  # now in the 8x8 stable phase, entered at 0.128 kimg
    assert int(trainer.phase_step.d_optimizer.iterations.numpy()) == 8
    # The stable phase began with zero moments and step counters (catches optimizers carried
    # over from the fade-in, whose state after 8 steps is not zero).
    starts = fade_run["phase_starts"]
    assert len(starts) == 1 and len(starts[0]) > 4
    assert all(not np.any(value) for value in starts[0].values()), [
        k for k, v in starts[0].items() if np.any(v)
    ]


def test_a_phase_is_traced_once(fade_run):
    """8x8 stable ran as calls of 3 and 1 steps (ticks every 4 steps): one graph for all of them."""
    trainer = fade_run["trainer"]
    stats = [
        s
        for s in map(json.loads, open(os.path.join(fade_run["run_dir"], "stats.jsonl")))
        if "phase_time" not in s
    ]
    assert len([s for s in stats if (s["resolution"], s["phase"]) == (8, "stable")]) >= 2
    assert trainer.phase_step.tracing_count() == 1


def test_run_directory_outputs(fade_run):
    run_dir = fade_run["run_dir"]
    for name in (
        "config.json",
        "log.txt",
        "stats.jsonl",
        "reals.png",
        "samples/fakes000000_064.png",
    ):
        assert os.path.exists(os.path.join(run_dir, name)), name
    log = open(os.path.join(run_dir, "log.txt")).read()
    assert "resuming from kimg 0.096" in log and "8x8 fade-in" in log
    assert tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints")).endswith("ckpt-192")
    assert os.listdir(os.path.join(run_dir, "tensorboard"))


def test_ema_differs_from_g_and_follows_the_lerp(dataset, tmp_path):
    trainer = make_trainer(
        dataset,
        tmp_path,
        total_kimg=0.064,
        strategy=tf.distribute.OneDeviceStrategy("/cpu:0"),
        step=StepOptions(ema_beta=0.9),
    )
    trainer.train()
    phase_step = trainer.phase_step
    ema_before = [e.numpy().copy() for e, _ in phase_step.ema_pairs]
    stream = trainer.runner._make_iterator(phase_step.phase)  # the run's own was let go at its end
    phase_step.train(stream, tf.constant(1, tf.int64))
    for (ema, g), before in zip(phase_step.ema_pairs, ema_before):
        np.testing.assert_allclose(
            ema.numpy(), g.numpy() + (before - g.numpy()) * 0.9, rtol=1e-5, atol=1e-6
        )
    assert changed(
        [g.numpy() for _, g in phase_step.ema_pairs],
        [e.numpy() for e, _ in phase_step.ema_pairs],
    )


def test_nonfinite_steps_are_skipped_then_stop_the_run(dataset, tmp_path):
    trainer = make_trainer(dataset, tmp_path, total_kimg=0.064, max_nonfinite_steps=4)
    conv = trainer.discriminator.blocks[4].layers[1]
    kernel = conv.kernel.numpy()
    kernel[0, 0, 0, 0] = np.nan
    conv.kernel.assign(kernel)
    g_before = weights(trainer.generator.blocks[4])
    with pytest.raises(
        TrainingError, match="4 training steps in a row.*last good checkpoint is none"
    ):
        trainer.train()
    assert not changed(g_before, weights(trainer.generator.blocks[4]))
    assert int(trainer.counters["nonfinite_total"].numpy()) >= 4
    assert not os.path.exists(os.path.join(tmp_path, "checkpoints", "checkpoint"))


def test_progress_eta_counts_the_slower_later_stages():
    schedule = Schedule(
        final_resolution=16, stable_kimg=1, fade_kimg=1, minibatch={}, minibatch_default=8
    )
    progress = Progress(schedule, total_images=5000, enabled=False)
    progress.rate = 1e-3 / 4**1.5  # 1 ms per image at 4x4
    # 4x4 stable, 8x8 fade-in and stable, 16x16 fade-in and stable: 1000 images each.
    expected = 1.0 * (1 + 2 * 2**1.5 + 2 * 4**1.5)
    assert progress.eta_seconds(0) == pytest.approx(expected)
    assert progress.eta_seconds(4500) == pytest.approx(0.5 * 4**1.5)


def test_progress_speed_leaves_out_phase_starts(monkeypatch, capsys):
    """Catches: a phase's trace + compile counted as training time (the status line then showed
    20 img/s and a 7-hour ETA after each phase start of a 12-minute demo)."""
    from progan_tf import progress as progress_module  # noqa: PLC0415

    schedule = Schedule(
        final_resolution=4, stable_kimg=10, fade_kimg=10, minibatch={}, minibatch_default=8
    )
    progress = Progress(schedule, total_images=10_000)
    clock = iter([0.0, 1.0, 101.0, 102.0])
    monkeypatch.setattr(progress_module.time, "time", lambda: next(clock))
    phase, stats = phase_at(schedule, 0), {"d_loss": 0.0, "g_loss": 0.0}
    progress.update(0, phase, 1.0, stats)
    progress.update(1000, phase, 1.0, stats)  # 1,000 images in 1 s
    progress.update(1100, phase, 1.0, stats, steady=False)  # 100 images and a 100-s compile
    progress.update(2100, phase, 1.0, stats)  # 1,000 images in 1 s
    assert 1.0 / (progress.rate * 4**1.5) == pytest.approx(1000.0)
    assert "1000.0 img/s" in capsys.readouterr().err.strip().splitlines()[-1]


def test_phase_runner_compiles_with_one_step_then_stops_exactly_at_the_asked_count(
    dataset, tmp_path
):
    """Catches: a first call of more than one step (its compile time then hides in the steady
    rate), a call that runs past an event or phase end, and a phase change missed or invented."""
    trainer = make_trainer(
        dataset, tmp_path, 0.192, strategy=tf.distribute.OneDeviceStrategy("/cpu:0")
    )
    runner = trainer.runner
    assert runner.due().key == (4, False)  # nothing entered yet
    trainer.runner.enter(runner.due())
    _, compiled = runner.run(stop=40)
    assert compiled and trainer.seen == 8  # one step of the global batch, 8
    _, compiled = runner.run(stop=40)
    assert not compiled and trainer.seen == 32  # steps_per_call = 3
    runner.run(stop=40)
    assert trainer.seen == 40 and runner.due() is None  # 1 step: exactly the asked count
    runner.run(stop=64)
    assert trainer.seen == 64 and runner.due().key == (8, True)  # the 8x8 fade-in starts at 64
    assert [p.name for p in runner.times.phases] == ["4x4 stable"]
    (times,) = runner.times.phases
    assert times.images == 64 and times.steady_images == 56  # the first step's 8 timed apart


@pytest.mark.parametrize("float16", [False, True])
def test_an_optimizer_reset_in_place_equals_a_fresh_one(float16):
    """The stable phase after a fade-in resets the fade-in's optimizers instead of making new
    ones. Catches a reset that leaves a step counter (Adam's bias correction) or a moment
    behind, loses the learning rate, or (float16) drops the carried-over loss scale."""
    options = StepOptions(mixed_precision=float16)
    variables = [tf.Variable(np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3))]
    grads = [tf.constant(np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5)]

    def after_one_step(optimizer):
        optimizer.apply([g * optimizer_scale(optimizer) for g in grads], variables)
        return variables[0].numpy().copy()

    def optimizer_scale(optimizer):
        return float(loss_scale_of(optimizer).numpy()) if float16 else 1.0

    used = make_optimizer(options, 0.01, loss_scale=8.0)
    used.build(variables)
    for _ in range(3):
        after_one_step(used)
    reset_optimizer(used, 0.02)
    fresh = make_optimizer(options, 0.02, loss_scale=8.0)
    fresh.build(variables)
    assert [v.path.split("/", 1)[1] for v in used.variables] == [
        v.path.split("/", 1)[1] for v in fresh.variables
    ]
    for a, b in zip(used.variables, fresh.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    start = variables[0].numpy().copy()
    step_used = after_one_step(used) - start
    variables[0].assign(start)
    step_fresh = after_one_step(fresh) - start
    np.testing.assert_array_equal(step_used, step_fresh)


def test_the_fade_in_model_at_alpha_1_is_the_stable_model():
    """What lets a stable phase train on its fade-in's compiled step: at alpha 1 the blend
    passes the new branch alone (up to float rounding) for G and D."""
    g, d = Generator(ARCH), Discriminator(ARCH)
    g.alpha.assign(1.0)
    d.alpha.assign(1.0)
    latents = tf.random.stateless_normal([4, ARCH.latent_size], [1, 2])
    images = tf.random.stateless_uniform([4, 8, 8, 3], [3, 4], -1.0, 1.0)
    np.testing.assert_allclose(
        g.stage_model(8, fade=True)(latents), g.stage_model(8)(latents), atol=1e-6
    )
    np.testing.assert_allclose(
        d.stage_model(8, fade=True)(images), d.stage_model(8)(images), atol=1e-5
    )
    g.alpha.assign(0.5)  # and the blend is live below 1 (the comparison above can fail)
    assert np.abs(g.stage_model(8, fade=True)(latents) - g.stage_model(8)(latents)).max() > 1e-3


def test_a_carried_stable_phase_reuses_the_fade_ins_step_with_fresh_optimizers(dataset, tmp_path):
    """carry_fade_step: the 8x8 stable phase (below the final 16x16) is entered with no trace
    and no first-step call, on the fade-in's model, with its optimizers back at a fresh state.
    Catches a carried phase that compiles again, or keeps the fade-in's moments and counters."""
    arch = Architecture(resolution=16, latent_size=8, fmap_base=32, fmap_max=8)
    schedule = Schedule(
        final_resolution=16,
        stable_kimg=0.032,
        fade_kimg=0.032,
        minibatch={},
        minibatch_default=8,
        num_replicas=2,
    )
    # 4x4 stable [0, 32), 8x8 fade-in [32, 64), 8x8 stable [64, 96), 16x16 fade-in from 96;
    # on two replicas: the in-place reset of mirrored optimizer variables
    trainer = make_trainer(
        _dataset16(dataset, tmp_path),
        str(tmp_path / "run"),
        0.104,
        arch=arch,
        schedule=schedule,
        strategy=two_replicas(),
        carry_fade_step=True,
        tick_images=16,
    )
    seen = {}
    switch = trainer._switch_phase

    def recording_switch(phase):
        switch(phase)
        phase_step = trainer.phase_step
        state = {
            v.path: v.numpy().copy()
            for o in (phase_step.d_optimizer, phase_step.g_optimizer)
            for v in o.variables
            if not v.path.endswith("learning_rate")
        }
        seen[phase_step.phase.name] = (
            phase_step,
            phase_step.tracing_count(),
            state,
        )

    trainer._switch_phase = recording_switch
    trainer.train()
    fade, fade_traces, _ = seen["8x8 fade-in"]
    stable, stable_traces, stable_state = seen["8x8 stable"]
    assert stable is fade and stable.fade_graph and fade_traces == 0 and stable_traces == 1
    assert fade.tracing_count() == 1  # both phases, one trace
    assert all(not np.any(v) for v in stable_state.values()), [
        k for k, v in stable_state.items() if np.any(v)
    ]
    assert seen["16x16 fade-in"][0] is not stable  # the final resolution compiles its own
    times = {p.name: p for p in trainer.phase_times.phases}
    assert times["8x8 stable"].first_step_seconds == 0 and times["8x8 stable"].steady_images == 32
    assert times["8x8 fade-in"].first_step_seconds > 0
    # the setup's parts, as stats.jsonl records them: a new resolution's stream and step
    assert list(times["8x8 fade-in"].setup_parts) == [
        "release_stream",
        "new_stream",
        "wait_ahead",
        "new_step",
    ]
    assert list(times["8x8 stable"].setup_parts) == ["carry_step"]
    for p in times.values():
        assert sum(p.setup_parts.values()) <= p.setup_seconds + 1e-3, (
            p.name,
            p.setup_parts,
            p.setup_seconds,
        )


def test_compile_ahead_hands_phases_their_compiled_step_and_changes_no_number(dataset, tmp_path):
    """compile_ahead with XLA on one device, beside carry_fade_step: the 8x8 fade-in's step is
    compiled in a thread during 4x4, the 16x16 fade-in's during the 8x8 fade-in and the stable
    phase it carries into. Each gradient function (under gp_interval > 1 both of D's, with and
    without the penalty) then has one trace: the step found the thread's (catches warm-up
    inputs whose shapes differ from the step's, which trace and compile everything again).
    And every weight ends bit-identical to the same run without it (catches a warm-up that
    moves any state: alpha, counters, optimizers, EMA)."""
    arch = Architecture(resolution=16, latent_size=8, fmap_base=32, fmap_max=8)
    schedule = Schedule(
        final_resolution=16, stable_kimg=0.032, fade_kimg=0.032, minibatch={}, minibatch_default=8
    )
    data16 = _dataset16(dataset, tmp_path)
    runs = {}
    for ahead in (True, False):
        trainer = make_trainer(
            data16,
            str(tmp_path / f"run{ahead}"),
            0.104,
            arch=arch,
            schedule=schedule,
            strategy=tf.distribute.OneDeviceStrategy("/cpu:0"),
            carry_fade_step=True,
            compile_ahead=ahead,
            tick_images=16,
            step=StepOptions(xla=True, gp_interval=2),
        )
        entered = {}
        switch = trainer._switch_phase

        def traces(step):
            return [len(f._list_all_concrete_functions()) for f in (step._d_grads, step._g_grads)]

        def recording_switch(phase, trainer=trainer, switch=switch, entered=entered):
            switch(phase)
            step = trainer.phase_step
            entered[step.phase.name] = step, traces(step)  # before the phase's first step

        trainer._switch_phase = recording_switch
        trainer.train()
        runs[ahead] = trainer, entered
    trainer, entered = runs[True]
    assert set(entered) == {"4x4 stable", "8x8 fade-in", "8x8 stable", "16x16 fade-in"}
    for name in ("8x8 fade-in", "16x16 fade-in"):
        step, at_entry = entered[name]
        # D's with and without the penalty (gp_interval=2), G's: all there when the phase
        # started, and no more after it
        assert at_entry == traces(step) == [2, 1], name
        assert step.tracing_count() == 1, name
    a, b = (
        tf.train.load_checkpoint(
            tf.train.latest_checkpoint(str(tmp_path / f"run{ahead}" / "checkpoints"))
        )
        for ahead in (True, False)
    )
    names = sorted(set(a.get_variable_to_shape_map()) - {"_CHECKPOINTABLE_OBJECT_GRAPH"})
    assert (
        names == sorted(set(b.get_variable_to_shape_map()) - {"_CHECKPOINTABLE_OBJECT_GRAPH"})
        and len(names) > 50
    )
    assert [n for n in names if not np.array_equal(a.get_tensor(n), b.get_tensor(n))] == []


def _dataset16(dataset, tmp_path):
    """The 8x8 gradients of `dataset`, upsampled to a 16x16 dataset."""
    images = np.concatenate([batch for batch, _ in data.iterate_level(dataset, 8)])
    path = tmp_path / "gradients16"
    dataset_io.write_arrays(
        path, images.repeat(2, axis=1).repeat(2, axis=2), None, name="gradients16"
    )
    return data.load_info(path)


def test_a_new_resolution_lets_the_old_input_stream_go_before_starting_its_own(
    dataset, tmp_path, monkeypatch
):
    """Catches the old order (new stream made while the old one still lives), whose teardown
    held the demo's 16x16 phase start up for ~20 s. Runs no steps: phases are entered only."""
    trainer = make_trainer(
        dataset, tmp_path, 0.192, strategy=tf.distribute.OneDeviceStrategy("/cpu:0")
    )
    runner, made = trainer.runner, []
    make = runner._make_iterator

    def checking_make(phase):
        made.append((phase.name, runner.iterator is None))
        return make(phase)

    monkeypatch.setattr(runner, "_make_iterator", checking_make)
    for seen in (0, 64, 128):  # 4x4 stable, 8x8 fade-in (a new level), 8x8 stable (the same level)
        trainer.images_seen.assign(seen)
        trainer.runner.enter(runner.due())
    assert made == [("4x4 stable", True), ("8x8 fade-in", True)]


def test_a_phase_lets_the_last_phases_compiled_step_go(dataset, tmp_path):
    """Catches a finished phase's step (its traced functions, optimizers, compiled graphs) kept
    alive into the next phases: a run through 17 phases would hold all of them. Each phase
    runs one compiled call before the next is entered."""
    trainer = make_trainer(
        dataset, tmp_path, 0.192, strategy=tf.distribute.OneDeviceStrategy("/cpu:0")
    )
    runner, steps = trainer.runner, []
    for seen in (0, 64, 128):  # 4x4 stable, 8x8 fade-in, 8x8 stable
        trainer.images_seen.assign(seen)
        steps.append(weakref.ref(runner.enter(runner.due())))
        runner.run(seen + 8)
    gc.collect()
    assert [ref() is not None for ref in steps] == [False, False, True]
    runner.close()


def test_an_input_stream_let_go_is_torn_down_off_the_loops_thread(dataset, tmp_path):
    """Catches a stream torn down on the training thread: a distributed stream's teardown can
    wait up to a minute for tf.data's autotuning thread, at every new resolution and at the
    end of a run. A stand-in stream records the thread its teardown runs on."""
    trainer = make_trainer(
        dataset, tmp_path, 0.192, strategy=tf.distribute.OneDeviceStrategy("/cpu:0")
    )
    torn_down = []

    class Stream:
        def __del__(self):
            torn_down.append(threading.current_thread() is threading.main_thread())

    trainer.runner.iterator = Stream()
    trainer.runner.close()
    for _ in range(100):
        if torn_down:
            break
        time.sleep(0.05)
    assert torn_down == [False] and trainer.runner.iterator is None


def test_each_resolution_shuffles_as_many_records_as_fit_in_shuffle_mb(
    dataset, tmp_path, monkeypatch
):
    trainer = make_trainer(
        dataset,
        tmp_path,
        0.192,
        strategy=tf.distribute.OneDeviceStrategy("/cpu:0"),
        shuffle_buffer=0,
        shuffle_mb=1,
    )
    asked = {}
    distribute = data.distribute

    def recording(strategy, info, resolution, batch, **kwargs):
        asked[resolution] = kwargs["shuffle_buffer"]
        return distribute(strategy, info, resolution, batch, **kwargs)

    monkeypatch.setattr(data, "distribute", recording)
    for seen in (0, 64):  # 4x4 stable, 8x8 fade-in
        trainer.images_seen.assign(seen)
        trainer.runner.enter(trainer.runner.due())
    assert asked == {4: math.ceil(2**20 / (4 * 4 * 3)), 8: math.ceil(2**20 / (8 * 8 * 3))}


@pytest.mark.parametrize("loss", ["wgan_gp", "logistic_r1"])
def test_lazy_penalty_comes_every_kth_d_step_at_k_times_its_weight(dataset, tmp_path, loss):
    # gp_interval=3: the D steps whose image count is a multiple of 3 batches compute the
    # penalty, weighted x 3; the others leave it out. Gradients against the loss module's own.
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    trainer = make_trainer(
        dataset, str(tmp_path), 0.064, strategy=strategy, step=StepOptions(gp_interval=3, loss=loss)
    )
    step = trainer.runner._make_step(phase_at(SCHEDULE, 0), None)
    due = []
    for seen in range(0, 56, 8):
        step.images_seen.assign(seen)
        due.append(bool(strategy.run(step._penalty_due)))
    assert due == [True, False, False, True, False, False, True]

    rng = np.random.default_rng(1)
    reals = tf.constant(rng.uniform(-1, 1, (8, 4, 4, 3)), tf.float32)
    latents = tf.constant(rng.normal(size=(8, 8)), tf.float32)
    mix = tf.constant(rng.uniform(size=(8, 1, 1, 1)), tf.float32)
    labels, seed = tf.zeros([8, 0]), tf.constant([0, 0], tf.int64)
    loss_fn = losses.LOSSES[loss][0]
    weight = {"gp_weight": 30.0} if loss == "wgan_gp" else {"r1_gamma": 30.0}

    def reference(penalty):
        fakes = step._generate(latents, labels)
        with tf.GradientTape() as tape:
            per_example, _ = loss_fn(
                lambda x: step.d_model(x, training=True),
                reals,
                fakes,
                mix,
                penalty=penalty,
                gradient_scale=step.gradient_scale,
                **weight,
            )
            total = tf.reduce_mean(per_example)
        return tape.gradient(total, step.d_vars)

    args = (reals, labels, labels, latents, mix, seed)
    grads = {}
    for penalty in (True, False):
        got, _, stats = strategy.run(step._d_grads, args=(*args, penalty))
        grads[penalty] = [g.numpy() for g in got]
        for g, want in zip(grads[penalty], reference(penalty), strict=True):
            np.testing.assert_allclose(g, want.numpy(), rtol=1e-4, atol=1e-6)
        assert (float(stats["gradient_penalty"]) > 0) == penalty
    assert changed(grads[True], grads[False])


def test_a_calls_penalty_is_the_mean_over_the_steps_that_computed_it(dataset, tmp_path):
    # gp_interval=1000: from image 0 only the first D step computes the penalty. A call of 3
    # steps returns that step's penalty, as a call of that step alone does from the same state
    # (not a third of it: the other two are not averaged in); the next call NaN (none
    # computed); d_loss over all steps.
    trainer = make_trainer(
        dataset,
        str(tmp_path),
        0.064,
        strategy=tf.distribute.OneDeviceStrategy("/cpu:0"),
        step=StepOptions(gp_interval=1000),
    )
    step = trainer.runner._make_step(phase_at(SCHEDULE, 0), None)
    rng = np.random.default_rng(2)
    batch = (
        tf.constant(rng.uniform(-1, 1, (8, 4, 4, 3)), tf.float32),
        tf.zeros([8, 0]),
        tf.zeros([2], tf.int64),  # the stream position the step stores
    )
    stream = iter(tf.data.Dataset.from_tensors(batch).repeat())
    state = [
        *step.g_vars,
        *step.d_vars,
        *step.g_optimizer.variables,
        *step.d_optimizer.variables,
        *(ema for ema, _ in step.ema_pairs),
        step.images_seen,
    ]
    start = [v.numpy().copy() for v in state]
    alone = float(step.train(stream, tf.constant(1, tf.int64))["gradient_penalty"])
    for variable, value in zip(state, start, strict=True):
        variable.assign(value)
    first = {k: float(v) for k, v in step.train(stream, tf.constant(3, tf.int64)).items()}
    after = {k: float(v) for k, v in step.train(stream, tf.constant(3, tf.int64)).items()}
    assert alone > 0
    np.testing.assert_allclose(first["gradient_penalty"], alone, rtol=1e-5)
    assert math.isnan(after["gradient_penalty"])
    assert math.isfinite(first["d_loss"]) and math.isfinite(after["d_loss"])


@pytest.mark.parametrize("g_label_weight, max_resolution", [(0.0, 0), (7.0, 0), (7.0, 4)])
def test_g_label_weight_weights_gs_label_term_and_leaves_ds(
    dataset, tmp_path, g_label_weight, max_resolution
):
    # label_weight 2 for D; g_label_weight 7 for G when set (0: G's is label_weight too), here
    # in the 4x4 phase, within g_label_weight_max_resolution when that is set.
    # Both losses against the loss module's with the weights they should use.
    arch = Architecture(resolution=8, latent_size=8, fmap_base=32, fmap_max=8, num_labels=3)
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    options = StepOptions(
        label_weight=2.0,
        g_label_weight=g_label_weight,
        g_label_weight_max_resolution=max_resolution,
    )
    trainer = make_trainer(
        dataset, str(tmp_path), 0.064, arch=arch, strategy=strategy, step=options
    )
    step = trainer.runner._make_step(phase_at(SCHEDULE, 0), None)
    rng = np.random.default_rng(3)
    reals = tf.constant(rng.uniform(-1, 1, (8, 4, 4, 3)), tf.float32)
    latents = tf.constant(rng.normal(size=(8, 8)), tf.float32)
    mix = tf.constant(rng.uniform(size=(8, 1, 1, 1)), tf.float32)
    labels = tf.one_hot(rng.integers(0, 3, 8), 3)
    seed = tf.constant([0, 0], tf.int64)
    d = lambda x: step.d_model(x, training=True)  # noqa: E731
    fakes = step._generate(latents, labels)
    g_weight = g_label_weight or 2.0
    want_g, _ = losses.wgan_generator(d, fakes, labels, label_weight=g_weight)
    _, got_g = strategy.run(step._g_grads_fn, args=(labels, latents, seed))
    np.testing.assert_allclose(float(got_g), float(tf.reduce_mean(want_g)), rtol=1e-5)
    want_d, _ = losses.wgan_gp_discriminator(
        d,
        reals,
        fakes,
        mix,
        labels,
        fake_labels=labels,
        label_weight=2.0,
        gradient_scale=step.gradient_scale,
    )
    _, got_d, _ = strategy.run(step._d_grads, args=(reals, labels, labels, latents, mix, seed))
    np.testing.assert_allclose(float(got_d), float(tf.reduce_mean(want_d)), rtol=1e-5)
    with pytest.raises(ValueError, match="g_label_weight=-1"):
        StepOptions(g_label_weight=-1.0)


def test_g_label_weight_max_resolution_returns_g_to_label_weight_above_it():
    options = StepOptions(label_weight=2.0, g_label_weight=7.0, g_label_weight_max_resolution=32)
    assert [options.generator_label_weight(r) for r in (4, 16, 32, 64, 128)] == [7, 7, 7, 2, 2]
    every = StepOptions(label_weight=2.0, g_label_weight=7.0)
    assert [every.generator_label_weight(r) for r in (4, 64, 1024)] == [7, 7, 7]
    assert StepOptions(label_weight=2.0).generator_label_weight(4) == 2
    with pytest.raises(ValueError, match="g_label_weight_max_resolution=-1"):
        StepOptions(g_label_weight_max_resolution=-1)


@pytest.mark.parametrize("mode", ["uniform", "data"])
def test_uniform_fake_labels_give_every_class_its_share_whatever_the_reals(dataset, tmp_path, mode):
    # fake_labels="uniform": G's classes are drawn evenly (seeded by the image count), not
    # copied from a batch of reals that here are all class 0; "data" (official) copies them.
    arch = Architecture(resolution=8, latent_size=8, fmap_base=32, fmap_max=8, num_labels=3)
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    trainer = make_trainer(
        dataset,
        str(tmp_path),
        0.064,
        arch=arch,
        strategy=strategy,
        step=StepOptions(fake_labels=mode),
    )
    step = trainer.runner._make_step(phase_at(SCHEDULE, 0), None)
    reals = tf.one_hot(tf.zeros([3000], tf.int32), 3)
    drawn = [
        strategy.run(
            lambda labels: step._fake_labels(labels, "g_fake_labels"), args=(reals,)
        ).numpy()
        for _ in range(2)
    ]
    np.testing.assert_array_equal(drawn[0], drawn[1])  # a function of the seed and image count
    counts = drawn[0].sum(axis=0)
    if mode == "data":
        assert counts.tolist() == [3000, 0, 0]
    else:  # 1,000 each, binomial sd ~26
        assert np.abs(counts - 1000).max() < 120 and drawn[0].sum() == 3000, counts


def test_class_balance_feeds_rare_classes_more_often_and_needs_labels(dataset, tmp_path):
    # 30 images of class 0, 3 of class 1: balanced (1.0), class 1 is repeated 10x per epoch.
    rng = np.random.default_rng(1)
    path = tmp_path / "rare"
    dataset_io.write_arrays(
        path,
        rng.integers(0, 256, (33, 8, 8, 3), dtype=np.uint8),
        np.array([0] * 30 + [1] * 3),
        name="rare",
        num_labels=2,
        label_names=("common", "rare"),
    )
    arch = Architecture(resolution=8, latent_size=8, fmap_base=32, fmap_max=8, num_labels=2)
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    shares = {}
    for balance in (0.0, 1.0):
        trainer = make_trainer(
            data.load_info(path),
            str(tmp_path / f"run{balance}"),
            0.064,
            arch=arch,
            strategy=strategy,
            class_balance=balance,
        )
        stream = trainer.runner._make_iterator(phase_at(SCHEDULE, 0))
        # 480 images, 8 epochs or more
        labels = np.concatenate([next(stream)[1].numpy() for _ in range(60)])
        shares[balance] = labels[:, 1].mean()
    assert abs(shares[0.0] - 3 / 33) < 0.03 and abs(shares[1.0] - 0.5) < 0.05, shares
    with pytest.raises(
        ValueError, match=f"class_balance=1.0 needs labels and {dataset.path} has none"
    ):
        make_trainer(
            dataset, str(tmp_path / "unlabelled"), 0.064, strategy=strategy, class_balance=1.0
        )
    assert not (tmp_path / "unlabelled").exists()

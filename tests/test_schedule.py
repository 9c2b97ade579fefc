"""Schedule values against the reference (docs/reference.md, "4. Optimiser, EMA,
schedule"): tables of images shown -> resolution, phase, alpha, batch, lr; and integer-image
properties for any kimg."""

import math

import pytest

from progan_tf.progress import Progress, format_duration

from progan_tf.schedule import (
    LEARNING_RATE_PRESETS,
    MAX_PER_REPLICA,
    MINIBATCH_PRESETS,
    Schedule,
    kimg_to_images,
    phase_at,
    phase_list,
)

SCHEDULE_1024 = Schedule(
    final_resolution=1024,
    minibatch=MINIBATCH_PRESETS["1gpu"],
    learning_rate=LEARNING_RATE_PRESETS["1gpu"],
)


@pytest.mark.parametrize(
    "kimg,resolution,fade,alpha",
    [
        (0, 4, False, 1.0),
        (599.9, 4, False, 1.0),
        (600, 8, True, 0.0),
        (900, 8, True, 0.5),
        (1200, 8, False, 1.0),
        (1950, 16, True, 0.25),
        (8400, 512, False, 1.0),
        (9000, 1024, True, 0.0),
        (9300, 1024, True, 0.5),
        (9600, 1024, False, 1.0),  # (log2(1024) - 2) * 1200 kimg: lod reaches 0
        (12000, 1024, False, 1.0),
    ],
)
def test_phase_at_1024_equals_spec(kimg, resolution, fade, alpha):
    phase = phase_at(SCHEDULE_1024, kimg_to_images(kimg))
    assert (phase.resolution, phase.fade) == (resolution, fade)
    assert phase.alpha == pytest.approx(alpha)


@pytest.mark.parametrize(
    "kimg,resolution,fade,alpha,batch",
    [
        (0, 4, False, 1.0, 128),
        (4500, 64, True, 0.5, 32),
        (6600, 256, True, 0.0, 8),
        (7200, 256, False, 1.0, 8),
    ],
)
def test_phase_at_256_equals_spec(kimg, resolution, fade, alpha, batch):
    phase = phase_at(Schedule(final_resolution=256), kimg_to_images(kimg))
    assert (phase.resolution, phase.fade, phase.global_batch_size) == (resolution, fade, batch)
    assert phase.alpha == pytest.approx(alpha)


def test_paper_schedule_reaches_1024_at_12800_kimg():
    schedule = Schedule(
        final_resolution=1024, stable_kimg=800, fade_kimg=800, minibatch=MINIBATCH_PRESETS["paper"]
    )
    assert phase_at(schedule, 12_799_999).fade and phase_at(schedule, 12_800_000).key == (
        1024,
        False,
    )
    assert phase_at(schedule, 12_800_000).global_batch_size == 3


def test_batch_and_learning_rate_presets_equal_spec():
    assert (SCHEDULE_1024.global_batch_size(1024), SCHEDULE_1024.lr(1024)) == (4, 0.0015)
    assert (SCHEDULE_1024.global_batch_size(32), SCHEDULE_1024.lr(32)) == (64, 0.001)
    eight = Schedule(
        1024,
        minibatch=MINIBATCH_PRESETS["8gpu"],
        learning_rate=LEARNING_RATE_PRESETS["8gpu"],
        num_replicas=8,
        max_per_replica=MAX_PER_REPLICA["float32"],
    )
    assert [eight.global_batch_size(r) for r in (4, 128, 256, 1024)] == [512, 32, 32, 32]
    assert [eight.lr(r) for r in (64, 128, 256, 512)] == [0.001, 0.0015, 0.002, 0.003]


def test_per_replica_caps_and_replica_multiples():
    two = Schedule(
        1024,
        minibatch=MINIBATCH_PRESETS["8gpu"],
        num_replicas=2,
        max_per_replica=MAX_PER_REPLICA["float32"],
    )
    assert two.global_batch_size(1024) == 8  # 4 per replica
    assert two.global_batch_size(512) == 16
    odd = Schedule(1024, minibatch=MINIBATCH_PRESETS["paper"], num_replicas=2)
    assert odd.global_batch_size(1024) == 2  # 3 rounded down to a multiple of 2


def test_phases_list_every_phase_once():
    schedule = Schedule(final_resolution=16, stable_kimg=1, fade_kimg=2)
    listed = phase_list(schedule, total_images=10_000)
    assert [(p.key, p.start_images, p.end_images) for p in listed] == [
        ((4, False), 0, 1000),
        ((8, True), 1000, 3000),
        ((8, False), 3000, 4000),
        ((16, True), 4000, 6000),
        ((16, False), 6000, None),
    ]


def test_final_resolution_4_is_one_stable_phase():
    assert phase_at(Schedule(final_resolution=4), 5_000_000).key == (4, False)


def run_phases(
    schedule: Schedule, total: int, steps_per_call: int = 7
) -> list[tuple[tuple[int, bool], int]]:
    """(phase key, images at entry) per phase entered, by the trainer's `PhaseRunner` (its
    `due`, `enter` and `run`: steps per call, stopping at the phase end) with a stand-in step
    that counts images instead of training; the loop's stop is the trainer's without ticks."""
    from progan_tf.options import TrainerOptions  # noqa: PLC0415
    from progan_tf.phases import PhaseRunner  # noqa: PLC0415

    class State:  # the counts the runner reads and moves
        seen = 0

        def restart_stream(self):
            pass

        def attach_optimizers(self, g, d):
            pass

    class CountingStep:
        g_optimizer = d_optimizer = loss_scales = None

        def __init__(self, phase):
            self.phase = phase

        def train(self, iterator, steps):
            state.seen += int(steps) * self.phase.global_batch_size
            return {}

        def set_alpha(self):
            pass

    state = State()
    runner = PhaseRunner(
        schedule=schedule,
        strategy=None,
        state=state,
        dataset=None,
        options=TrainerOptions(total_images=total, steps_per_call=steps_per_call),
    )
    runner._make_step = lambda phase, loss_scales: CountingStep(phase)
    runner._make_iterator = lambda phase: None
    entered, calls = [], 0
    while state.seen < total:
        calls += 1
        assert calls < 100_000, "the loop does not terminate"
        if (due := runner.due()) is not None:
            entered.append((due.key, state.seen))
            runner.enter(due)
        end = runner.phase.end_images
        runner.run(min([total] + ([end] if end is not None else [])))
    return entered


@pytest.mark.parametrize("kimg", [0.3, 1 / 3, 0.25])
@pytest.mark.parametrize("batch", [6, 14, 16, 32, 128])
def test_any_kimg_and_batch_reaches_every_phase_once_and_ends(kimg, batch):
    # Catches float kimg in phase arithmetic: with kimg // period on floats, 0.3-kimg phases
    # made the trainer loop forever at "8x8 stable" (1.2 // 0.6 == 1.0 but 1.8 // 0.6 == 2.9999).
    schedule = Schedule(
        final_resolution=32, stable_kimg=kimg, fade_kimg=kimg, minibatch={}, minibatch_default=batch
    )
    total = kimg_to_images(kimg) * 8
    entered = run_phases(schedule, total)
    keys = [key for key, _ in entered]
    assert keys == [
        (4, False),
        (8, True),
        (8, False),
        (16, True),
        (16, False),
        (32, True),
        (32, False),
    ]
    for (key, start), listed in zip(entered, phase_list(schedule, total)):
        assert listed.key == key and 0 <= start - listed.start_images < batch * 7
    progress = Progress(schedule, total, enabled=False)
    progress.rate = 1e-6
    assert all(
        math.isfinite(progress.eta_seconds(n)) for n in range(0, total + 1, max(1, total // 50))
    )
    assert progress.eta_seconds(total) == 0.0


def test_bookkeeping_past_2_pow_24_images_is_exact():
    # The paper's 19,000 kimg passes 2**24 = 16,777,216; a float32 count stops being exact there.
    schedule = Schedule(
        final_resolution=1024, stable_kimg=800, fade_kimg=800, minibatch=MINIBATCH_PRESETS["paper"]
    )
    boundary = 11 * 1_600_000  # 17.6 M images, past 2**24, in the final 1024x1024 stable phase
    phase = phase_at(schedule, 12_000_001)  # 1024 fade-in, one image after its start
    assert phase.key == (1024, True) and phase.start_images == 12_000_000
    assert phase.alpha == 1 / 800_000
    assert phase_at(schedule, boundary + 1).key == (1024, False)
    assert phase_at(schedule, 2**24 + 1).alpha_at(2**24 + 1) == 1.0
    fade = phase_at(schedule, 12_000_000)
    assert fade.alpha_at(12_000_000 + 400_001) == 400_001 / 800_000  # exact in float64


def test_eta_prints_days_past_24_hours():
    assert format_duration(3 * 86400 + 4 * 3600 + 5 * 60 + 6) == "3d 04:05:06"
    assert format_duration(3600) == "01:00:00"


def test_presets_match_the_release_configs():
    import importlib.util  # noqa: PLC0415
    import os  # noqa: PLC0415

    def load(name):
        path = os.path.join(
            os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", f"{name}.py"
        )
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.get_config()

    assert load("lsun_256").total_kimg == 12000
    paper = load("paper_1024")
    assert (paper.lod_training_kimg, paper.lod_transition_kimg, paper.total_kimg) == (
        800,
        800,
        19000,
    )
    assert paper.mbstd_group_size == 16 and paper.minibatch_preset == "paper"
    assert load("celebahq_1024").gp_scale == "official"  # the default: the release's penalty scale


def test_eta_weighs_the_images_left_in_each_phase_by_resolution():
    # 4x4 stable [0, 1000), 8x8 fade-in [1000, 2000), 8x8 stable from 2000; 3000 images in all.
    schedule = Schedule(
        final_resolution=8, stable_kimg=1, fade_kimg=1, minibatch={}, minibatch_default=8
    )
    progress = Progress(schedule, 3000, enabled=False)
    progress.rate = 1.0
    assert progress.eta_seconds(500) == pytest.approx(500 * 4**1.5 + 2000 * 8**1.5)
    assert progress.eta_seconds(1500) == pytest.approx(1500 * 8**1.5)


def test_the_steps_in_graph_alpha_is_the_schedules_ramp():
    import tensorflow as tf  # noqa: PLC0415

    from progan_tf.networks import Architecture  # noqa: PLC0415
    from progan_tf.state import TrainState  # noqa: PLC0415
    from progan_tf.steps import PhaseStep, StepOptions  # noqa: PLC0415

    schedule = Schedule(final_resolution=8, stable_kimg=0.3, fade_kimg=0.7, minibatch={})
    fade = phase_at(schedule, 300)
    assert fade.fade and fade.resolution == 8
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    state = TrainState(
        Architecture(resolution=8, latent_size=8, fmap_base=16, fmap_max=8), strategy
    )
    step = PhaseStep(strategy=strategy, state=state, phase=fade, options=StepOptions())
    for seen in (300, 301, 650, 999, 1000):
        state.images_seen.assign(seen)
        step.set_alpha()
        assert abs(float(state.alpha.numpy()) - phase_at(schedule, seen).alpha_at(seen)) < 1e-6
        assert phase_at(schedule, seen).alpha == fade.alpha_at(seen)

"""Schedule values against SPEC §4 (tables of kimg -> resolution, phase, alpha, batch, lr)."""

import math

import pytest

from progan_tf.schedule import (
    LEARNING_RATE_PRESETS,
    MAX_PER_REPLICA,
    MINIBATCH_PRESETS,
    Schedule,
    phase_at,
    phases,
)

SCHEDULE_1024 = Schedule(
    final_resolution=1024, minibatch=MINIBATCH_PRESETS["1gpu"], learning_rate=LEARNING_RATE_PRESETS["1gpu"]
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
    phase = phase_at(SCHEDULE_1024, kimg)
    assert (phase.resolution, phase.fade) == (resolution, fade)
    assert phase.alpha == pytest.approx(alpha)


@pytest.mark.parametrize(
    "kimg,resolution,fade,alpha,batch",
    [(0, 4, False, 1.0, 128), (4500, 64, True, 0.5, 32), (6600, 256, True, 0.0, 8), (7200, 256, False, 1.0, 8)],
)
def test_phase_at_256_equals_spec(kimg, resolution, fade, alpha, batch):
    phase = phase_at(Schedule(final_resolution=256), kimg)
    assert (phase.resolution, phase.fade, phase.global_batch_size) == (resolution, fade, batch)
    assert phase.alpha == pytest.approx(alpha)


def test_paper_schedule_reaches_1024_at_12800_kimg():
    schedule = Schedule(final_resolution=1024, stable_kimg=800, fade_kimg=800, minibatch=MINIBATCH_PRESETS["paper"])
    assert phase_at(schedule, 12_799).fade and phase_at(schedule, 12_800).key == (1024, False)
    assert phase_at(schedule, 12_800).global_batch_size == 3


def test_batch_and_learning_rate_presets_equal_spec():
    assert (SCHEDULE_1024.global_batch_size(1024), SCHEDULE_1024.lr(1024)) == (4, 0.0015)
    assert (SCHEDULE_1024.global_batch_size(32), SCHEDULE_1024.lr(32)) == (64, 0.001)
    eight = Schedule(1024, minibatch=MINIBATCH_PRESETS["8gpu"], learning_rate=LEARNING_RATE_PRESETS["8gpu"],
                     num_replicas=8, max_per_replica=MAX_PER_REPLICA["float32"])
    assert [eight.global_batch_size(r) for r in (4, 128, 256, 1024)] == [512, 32, 32, 32]
    assert [eight.lr(r) for r in (64, 128, 256, 512)] == [0.001, 0.0015, 0.002, 0.003]


def test_per_replica_caps_and_replica_multiples():
    two = Schedule(1024, minibatch=MINIBATCH_PRESETS["8gpu"], num_replicas=2, max_per_replica=MAX_PER_REPLICA["float32"])
    assert two.global_batch_size(1024) == 8  # 4 per replica
    assert two.global_batch_size(512) == 16
    odd = Schedule(1024, minibatch=MINIBATCH_PRESETS["paper"], num_replicas=2)
    assert odd.global_batch_size(1024) == 2  # 3 rounded down to a multiple of 2


def test_phases_list_every_phase_once():
    listed = phases(Schedule(final_resolution=16, stable_kimg=1, fade_kimg=2), total_kimg=10)
    assert [(p.key, p.start_kimg, p.end_kimg) for p in listed] == [
        ((4, False), 0, 1), ((8, True), 1, 3), ((8, False), 3, 4), ((16, True), 4, 6), ((16, False), 6, math.inf)
    ]


def test_final_resolution_4_is_one_stable_phase():
    assert phase_at(Schedule(final_resolution=4), 5000).key == (4, False)

"""The progressive schedule (§2, §A.1; SPEC §4): images shown -> stage, phase, alpha, batch, lr.

Pure functions of the number of real images the discriminator has seen. Training starts at
4x4 for `stable_kimg`; every later resolution gets a fade-in of `fade_kimg`, then a stable
phase of `stable_kimg`; the final resolution stays stable to the end. During a fade-in the
new resolution's batch size and learning rate apply.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

# Global minibatch per resolution and learning-rate exceptions, the reference's "v2" presets
# (config.py) and the paper's own batch sizes (v1).
MINIBATCH_PRESETS: dict[str, dict[int, int]] = {
    "1gpu": {4: 128, 8: 128, 16: 128, 32: 64, 64: 32, 128: 16, 256: 8, 512: 4, 1024: 4},
    "2gpu": {4: 256, 8: 256, 16: 128, 32: 64, 64: 32, 128: 16, 256: 8, 512: 8, 1024: 8},
    "4gpu": {4: 512, 8: 256, 16: 128, 32: 64, 64: 32, 128: 16, 256: 16, 512: 16, 1024: 16},
    "8gpu": {4: 512, 8: 256, 16: 128, 32: 64, 64: 32, 128: 32, 256: 32, 512: 32, 1024: 32},
    "paper": {4: 16, 8: 16, 16: 16, 32: 16, 64: 16, 128: 16, 256: 14, 512: 6, 1024: 3},
}
LEARNING_RATE_PRESETS: dict[str, dict[int, float]] = {
    "1gpu": {1024: 0.0015},
    "2gpu": {512: 0.0015, 1024: 0.002},
    "4gpu": {256: 0.0015, 512: 0.002, 1024: 0.003},
    "8gpu": {128: 0.0015, 256: 0.002, 512: 0.003, 1024: 0.003},
    "paper": {},
}
# Largest per-replica batch that fits a 16 GB GPU, by activation dtype.
MAX_PER_REPLICA: dict[str, dict[int, int]] = {
    "float32": {256: 16, 512: 8, 1024: 4},
    "float16": {512: 16, 1024: 8},
}


@dataclasses.dataclass(frozen=True)
class Schedule:
    """The growth schedule and per-resolution batch and learning rate of one run."""

    final_resolution: int
    stable_kimg: float = 600.0  # lod_training_kimg: images per stable phase (thousands)
    fade_kimg: float = 600.0  # lod_transition_kimg: images per fade-in phase (thousands)
    minibatch: Mapping[int, int] = dataclasses.field(default_factory=lambda: MINIBATCH_PRESETS["1gpu"])
    minibatch_default: int = 16  # for resolutions missing from `minibatch`
    learning_rate: Mapping[int, float] = dataclasses.field(default_factory=dict)
    learning_rate_default: float = 0.001
    num_replicas: int = 1
    max_per_replica: Mapping[int, int] = dataclasses.field(default_factory=dict)

    @property
    def num_stages(self) -> int:
        return int(math.log2(self.final_resolution)) - 1  # 4x4 is stage 0

    def global_batch_size(self, resolution: int) -> int:
        """The preset's batch, capped per replica and rounded down to a multiple of replicas."""
        batch = self.minibatch.get(resolution, self.minibatch_default)
        if resolution in self.max_per_replica:
            batch = min(batch, self.max_per_replica[resolution] * self.num_replicas)
        return max(batch - batch % self.num_replicas, self.num_replicas)

    def lr(self, resolution: int) -> float:
        return self.learning_rate.get(resolution, self.learning_rate_default)


@dataclasses.dataclass(frozen=True)
class Phase:
    """One fade-in or stable phase, and where in it a given image count falls."""

    resolution: int
    fade: bool
    start_kimg: float
    end_kimg: float  # math.inf for the final stable phase
    alpha: float  # fade-in progress at the queried kimg; 1.0 in stable phases
    global_batch_size: int
    learning_rate: float

    @property
    def key(self) -> tuple[int, bool]:
        return (self.resolution, self.fade)

    @property
    def name(self) -> str:
        return f"{self.resolution}x{self.resolution} {'fade-in' if self.fade else 'stable'}"


def phase_at(schedule: Schedule, kimg: float) -> Phase:
    """The phase at `kimg` thousand images shown (the reference's TrainingSchedule)."""
    stable, fade = schedule.stable_kimg, schedule.fade_kimg
    period = stable + fade
    last = schedule.num_stages - 1  # the final resolution is 4 * 2**last
    # Period i: stable at 4 * 2**i for `stable`, then the fade-in of 4 * 2**(i + 1).
    index = int(kimg // period) if period > 0 else last
    if index >= last:
        resolution, is_fade = schedule.final_resolution, False
        start, end, alpha = last * period, math.inf, 1.0
    elif kimg - index * period < stable:
        resolution, is_fade = 4 * 2**index, False
        start, end, alpha = index * period, index * period + stable, 1.0
    else:
        resolution, is_fade = 4 * 2 ** (index + 1), True
        start, end = index * period + stable, (index + 1) * period
        alpha = (kimg - start) / fade
    return Phase(
        resolution=resolution,
        fade=is_fade,
        start_kimg=start,
        end_kimg=end,
        alpha=alpha,
        global_batch_size=schedule.global_batch_size(resolution),
        learning_rate=schedule.lr(resolution),
    )


def phases(schedule: Schedule, total_kimg: float) -> list[Phase]:
    """Every phase that starts before `total_kimg`, in order (for logs and ETA)."""
    result, kimg = [], 0.0
    while kimg < total_kimg:
        phase = phase_at(schedule, kimg)
        result.append(phase)
        kimg = phase.end_kimg
    return result

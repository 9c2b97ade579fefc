"""The progressive schedule (§2, §A.1; reference §4): images shown -> stage, phase, alpha, lr.

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
# "auto": the preset the release pairs with a replica count (num_gpus 1, 2, 4, 8).
AUTO_PRESET = "auto"


def preset_for_replicas(num_replicas: int) -> str:
    """The release's preset for `num_replicas` GPUs: 1gpu, 2gpu, 4gpu, or 8gpu from 8 up (the
    largest of 1, 2, 4, 8 not above the count; a count between them takes the smaller)."""
    for replicas in (8, 4, 2):
        if num_replicas >= replicas:
            return f"{replicas}gpu"
    return "1gpu"


# Largest per-replica batch that fits a 16 GB GPU, by activation dtype.
MAX_PER_REPLICA: dict[str, dict[int, int]] = {
    "float32": {256: 16, 512: 8, 1024: 4},
    "float16": {512: 16, 1024: 8},
}


def generation_batch(resolution: int) -> int:
    """Images a generator runs at once outside training (grids, generate, evaluate, export)
    where no schedule says more: one GPU's training batch at `resolution` (the 1gpu preset,
    capped for float32), whose forward pass fits where the training step does."""
    batch = MINIBATCH_PRESETS["1gpu"].get(resolution, 16)
    return min(batch, MAX_PER_REPLICA["float32"].get(resolution, batch))


@dataclasses.dataclass(frozen=True)
class Schedule:
    """The growth schedule and per-resolution batch and learning rate of one run."""

    final_resolution: int
    stable_kimg: float = 600.0  # lod_training_kimg: images per stable phase (thousands)
    fade_kimg: float = 600.0  # lod_transition_kimg: images per fade-in phase (thousands)
    minibatch: Mapping[int, int] = dataclasses.field(
        default_factory=lambda: MINIBATCH_PRESETS["1gpu"]
    )
    minibatch_default: int = 16  # for resolutions missing from `minibatch`
    learning_rate: Mapping[int, float] = dataclasses.field(default_factory=dict)
    learning_rate_default: float = 0.001
    num_replicas: int = 1
    max_per_replica: Mapping[int, int] = dataclasses.field(default_factory=dict)
    progressive: bool = True  # False: one stable phase at the final resolution from the first image

    @property
    def stable_images(self) -> int:
        return kimg_to_images(self.stable_kimg)

    @property
    def fade_images(self) -> int:
        return kimg_to_images(self.fade_kimg)

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
    """One fade-in or stable phase, and where in it a given image count falls. Image counts are
    integers; kimg appears only in display properties."""

    resolution: int
    fade: bool
    start_images: int  # first image of the phase
    end_images: int | None  # first image after it; None for the final stable phase (no end)
    alpha: float  # fade-in progress at the queried image count; 1.0 in stable phases
    global_batch_size: int
    learning_rate: float

    @property
    def key(self) -> tuple[int, bool]:
        return (self.resolution, self.fade)

    @property
    def name(self) -> str:
        return f"{self.resolution}x{self.resolution} {'fade-in' if self.fade else 'stable'}"

    def alpha_at(self, images_seen: int) -> float:
        """Alpha after `images_seen` images: the fade-in's linear ramp, 1 in stable phases.
        The one ramp: `phase_at` uses it, and `steps.PhaseStep.set_alpha` is its in-graph form
        (tests/test_schedule.py checks the two agree)."""
        if not self.fade:
            return 1.0
        return min(
            1.0, max(0.0, (images_seen - self.start_images) / (self.end_images - self.start_images))
        )


def kimg_to_images(kimg: float) -> int:
    """Thousands of images (a config or flag value) -> a whole number of images."""
    return int(round(kimg * 1000))


def phase_at(schedule: Schedule, images_seen: int) -> Phase:
    """The phase after `images_seen` real images shown (the reference's TrainingSchedule), in
    integer arithmetic so that phase boundaries are exact for any kimg value."""
    images_seen = int(images_seen)
    if not schedule.progressive:  # Table 1 (a), Figure 4 (a): the final networks throughout
        return Phase(
            resolution=schedule.final_resolution,
            fade=False,
            start_images=0,
            end_images=None,
            alpha=1.0,
            global_batch_size=schedule.global_batch_size(schedule.final_resolution),
            learning_rate=schedule.lr(schedule.final_resolution),
        )
    stable, fade = schedule.stable_images, schedule.fade_images
    period = stable + fade
    last = schedule.num_stages - 1  # the final resolution is 4 * 2**last
    # Period i: stable at 4 * 2**i for `stable`, then the fade-in of 4 * 2**(i + 1).
    index = images_seen // period if period > 0 else last
    end: int | None
    if index >= last:
        resolution, is_fade = schedule.final_resolution, False
        start, end = last * period, None
    elif images_seen - index * period < stable:
        resolution, is_fade = 4 * 2**index, False
        start, end = index * period, index * period + stable
    else:
        resolution, is_fade = 4 * 2 ** (index + 1), True
        start, end = index * period + stable, (index + 1) * period
    phase = Phase(
        resolution=resolution,
        fade=is_fade,
        start_images=start,
        end_images=end,
        alpha=1.0,
        global_batch_size=schedule.global_batch_size(resolution),
        learning_rate=schedule.lr(resolution),
    )
    return dataclasses.replace(phase, alpha=phase.alpha_at(images_seen))


def phase_list(schedule: Schedule, total_images: int, start_images: int = 0) -> list[Phase]:
    """Every phase from the one holding image `start_images` to the last that starts before
    `total_images`, in order (the progress line's ETA walks them)."""
    result, images = [], int(start_images)
    while images < total_images:
        phase = phase_at(schedule, images)
        result.append(phase)
        if phase.end_images is None:
            break
        images = phase.end_images
    return result

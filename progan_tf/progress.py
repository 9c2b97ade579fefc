"""What the user sees while a run trains: the status line with its ETA, and where time went.

`Progress` redraws one line (kimg, stage, alpha, losses, images/s, ETA) on a terminal and prints
it every 10 % otherwise. `PhaseTimes` records, per phase, the time to its first step (building
the phase's models, optimizers and input pipeline, then tracing and compiling the step) apart
from the steady images/s of the steps after it, and renders the table printed at the end of a
run. Image counts are integers throughout.
"""

from __future__ import annotations

import dataclasses
import sys
import time

from progan_tf import console
from progan_tf.schedule import Phase, Schedule, phase_list


def format_duration(seconds: float) -> str:
    """`3d 04:05:06` past a day, `04:05:06` below: an ETA never wraps."""
    seconds = int(round(max(seconds, 0.0)))
    days, rest = divmod(seconds, 86400)
    clock = time.strftime("%H:%M:%S", time.gmtime(rest))
    return f"{days}d {clock}" if days else clock


class Progress:
    """One status line with an ETA. The ETA counts later, slower stages by assuming the time per
    image grows as resolution**1.5 (about what the demo measures per doubling: x2.3 to x3.6),
    scaled by the measured current speed."""

    COST_EXPONENT = 1.5

    def __init__(self, schedule: Schedule, total_images: int, enabled: bool = True):
        self.schedule, self.total, self.enabled = schedule, int(total_images), enabled
        self.tty = console.is_terminal(sys.stderr)
        self.last_time = self.last_images = self.last_resolution = None
        self.rate = None  # seconds per image / resolution**COST_EXPONENT, smoothed
        self.printed_tenths = -1

    def eta_seconds(self, images_seen: int) -> float:
        cost = 0.0
        for phase in phase_list(self.schedule, self.total, start_images=images_seen):
            start = max(phase.start_images, int(images_seen))
            stop = self.total if phase.end_images is None else min(phase.end_images, self.total)
            cost += (stop - start) * phase.resolution**self.COST_EXPONENT
        return cost * (self.rate or 0.0)

    def update(
        self,
        images_seen: int,
        phase: Phase,
        alpha: float,
        stats: dict[str, float],
        steady: bool = True,
    ) -> None:
        """`phase`: the one the next step trains; the images since the last call were shown at
        the resolution of the previous call's phase. `steady=False`: that time included a
        phase's start (setup, trace and compile), so it does not enter the speed and ETA."""
        if not self.enabled:
            return
        now = time.time()
        if steady and self.last_time is not None and images_seen > self.last_images:
            rate = (
                (now - self.last_time)
                / (images_seen - self.last_images)
                / self.last_resolution**self.COST_EXPONENT
            )
            self.rate = rate if self.rate is None else 0.8 * self.rate + 0.2 * rate
        self.last_time, self.last_images, self.last_resolution = now, images_seen, phase.resolution
        speed = (
            f"{1.0 / (self.rate * phase.resolution**self.COST_EXPONENT):7.1f}"
            if self.rate
            else "      -"
        )
        eta = format_duration(self.eta_seconds(images_seen)) if self.rate else "--:--:--"
        fraction = min(images_seen / self.total, 1.0)
        bar = ("=" * int(20 * fraction)).ljust(20)
        line = (
            f"kimg {images_seen / 1000:8.1f}/{self.total / 1000:<8.1f} [{bar}] "
            f"{phase.resolution:>4}x{phase.resolution:<4} "
            f"alpha {alpha:.2f}  d_loss {stats['d_loss']:8.4f}  g_loss {stats['g_loss']:8.4f}  "
            f"{speed} img/s  ETA {eta}"
        )
        if self.tty:
            console.say("\r" + line, end="")
        elif int(10 * fraction) > self.printed_tenths:
            self.printed_tenths = int(10 * fraction)
            console.say(line)

    def close(self) -> None:
        if self.enabled and self.tty:
            console.say("")


@dataclasses.dataclass
class PhaseTime:
    """Wall time of one phase of this process: its setup and first step apart from the rest."""

    name: str
    start_images: int
    images: int = 0  # images shown in this process
    setup_seconds: float = 0.0  # models, optimizers, input pipeline of the phase
    first_step_seconds: float = 0.0  # the first call: tracing + compiling + one step
    steady_images: int = 0  # images after the first step
    steady_seconds: float = 0.0
    # the setup's parts: releasing the old stream, making the new one, waiting for the step
    # compiled ahead, making a step (progan_tf.phases)
    setup_parts: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def wall_seconds(self) -> float:
        return self.setup_seconds + self.first_step_seconds + self.steady_seconds

    @property
    def steady_images_per_second(self) -> float:
        return self.steady_images / self.steady_seconds if self.steady_seconds > 0 else float("nan")

    def record(self) -> dict:
        return {
            "phase": self.name,
            "kimg": self.images / 1000,
            "wall_s": round(self.wall_seconds, 2),
            "setup_s": round(self.setup_seconds, 2),
            "first_step_s": round(self.first_step_seconds, 2),
            "steady_img_per_s": round(self.steady_images_per_second, 1),
            "setup_parts": self.setup_parts,
        }


class PhaseTimes:
    """Per-phase timing of a run, in the order the phases ran."""

    def __init__(self):
        self.phases: list[PhaseTime] = []

    def start(
        self,
        phase: Phase,
        images_seen: int,
        setup_seconds: float,
        setup_parts: dict[str, float] | None = None,
    ) -> PhaseTime:
        entry = PhaseTime(
            phase.name,
            int(images_seen),
            setup_seconds=setup_seconds,
            setup_parts=dict(setup_parts or {}),
        )
        self.phases.append(entry)
        return entry

    def add_call(self, images: int, seconds: float, first: bool) -> None:
        entry = self.phases[-1]
        entry.images += images
        if first:
            entry.first_step_seconds += seconds
        else:
            entry.steady_images += images
            entry.steady_seconds += seconds

    def table(self) -> str:
        """A text table: phase, kimg, wall s, setup s, first step s, steady img/s."""
        lines = [
            f"{'phase':<18}{'kimg':>9}{'wall s':>9}{'setup s':>9}{'1st step s':>11}{'img/s':>9}"
        ]
        for p in self.phases:
            lines.append(
                f"{p.name:<18}{p.images / 1000:>9.2f}{p.wall_seconds:>9.1f}{p.setup_seconds:>9.1f}"
                f"{p.first_step_seconds:>11.1f}{p.steady_images_per_second:>9.1f}"
            )
        total = sum(p.wall_seconds for p in self.phases)
        compile_total = sum(p.setup_seconds + p.first_step_seconds for p in self.phases)
        lines.append(
            f"{'total':<18}{sum(p.images for p in self.phases) / 1000:>9.2f}{total:>9.1f}"
            f"{compile_total:>20.1f} (setup + first steps)"
        )
        return "\n".join(lines)

"""The phase runner: the current phase, its compiled step and its input stream.

At each phase boundary of the schedule (integer image counts, `progan_tf.schedule`) the
runner makes a fresh `steps.PhaseStep` (new optimizers and compiled step; under float16
the new optimizers start from the last phase's loss scales) and, at a new resolution, a new
input stream that reads the level from its start. With `carry_fade_step`, a stable phase
below the final resolution trains the fade-in's model at alpha 1 (as the reference's single
graph does): the fade-in's compiled step carries on with its optimizers reset in place, so
the phase starts without a trace or compile. Each call runs at most `steps_per_call`
steps and stops exactly at the image count it is given (the next tick, snapshot, checkpoint or
phase end); the first call of a phase runs one step, since it also traces and compiles the
step, and is timed apart (`progress.PhaseTimes`).
"""

from __future__ import annotations

import math
import threading
import time

import tensorflow as tf

from progan_tf import console, data
from progan_tf.options import TrainerOptions
from progan_tf.progress import PhaseTimes
from progan_tf.schedule import Phase, Schedule, phase_at
from progan_tf.state import TrainState
from progan_tf.steps import PhaseStep


class PhaseRunner:
    """Owns the current phase, its `PhaseStep` and its input iterator; the trainer's loop asks
    it to run up to an image count and to move on when the count leaves the phase. Entering a
    phase attaches its optimizers to the state's checkpoint (saved from then on) and sets
    alpha."""

    def __init__(
        self,
        *,
        schedule: Schedule,
        strategy: tf.distribute.Strategy,
        state: TrainState,
        dataset: data.DatasetInfo,
        options: TrainerOptions,
        class_repeats: tuple[int, ...] = (),
    ):
        """`options.compile_ahead`: once a phase has run its first call, make the next phase's
        step and trace and compile it in a thread while this phase trains (single-device and
        mirrored strategies; the phases up to `options.total_images`). `class_repeats`: each
        class's copies per epoch (data.class_repeats_for)."""
        self.schedule, self.strategy, self.state, self.dataset = schedule, strategy, state, dataset
        self.options, self.class_repeats = options, class_repeats
        # (step, thread, errors)
        self._ahead: tuple[PhaseStep, threading.Thread, list] | None = None
        self.current: PhaseStep | None = None
        self.iterator = None
        self.times = PhaseTimes()
        self._compiled = False

    @property
    def phase(self) -> Phase | None:
        return self.current.phase if self.current is not None else None

    def due(self) -> Phase | None:
        """The phase the image count has moved into, if it is not the current one."""
        phase = phase_at(self.schedule, self.state.seen)
        return phase if self.current is None or phase.key != self.current.phase.key else None

    def enter(self, phase: Phase) -> PhaseStep:
        """Fresh optimizers and compiled step for `phase`; at a new resolution also a new input
        stream, read from `data_position` (where a restored checkpoint left it, else the start).
        The image count must already be the phase's (or the restored checkpoint's)."""
        started = time.perf_counter()
        parts = _Stopwatch()
        previous = self.current
        if previous is not None and previous.phase.fade and self._on_fade_model(phase):
            previous.continue_into(phase)
            parts.lap("carry_step")
            self._compiled = True
        else:
            if previous is None or previous.phase.resolution != phase.resolution:
                if previous is not None:
                    self.state.restart_stream()  # a new resolution reads its level from the start
                # The old level's stream goes (torn down in a thread) before the new one starts
                # (benchmarks/results/performance_log.md, "The 16×16 fade-in's 20-s setup").
                self.release_stream()
                parts.lap("release_stream")
                self.iterator = self._make_iterator(phase)
                parts.lap("new_stream")
            ahead = self._take_ahead(phase)
            parts.lap("wait_ahead")
            if ahead is not None:
                if previous is not None:
                    ahead.set_loss_scales(previous.loss_scales)
                self.current = ahead
            else:
                self.current = self._make_step(phase, previous.loss_scales if previous else None)
            parts.lap("new_step")
            self._compiled = False
        self.state.attach_optimizers(self.current.g_optimizer, self.current.d_optimizer)
        self.current.set_alpha()
        self.times.start(phase, self.state.seen, time.perf_counter() - started, parts.laps)
        return self.current

    def run(self, stop: int) -> tuple[dict[str, float], bool]:
        """One call of the current phase's step towards image count `stop`: returns its
        statistics and whether the call also traced and compiled the step."""
        seen, phase = self.state.seen, self.current.phase
        per_call = self.options.steps_per_call
        steps = max(1, min(per_call, math.ceil((stop - seen) / phase.global_batch_size)))
        compiling = not self._compiled
        if compiling:
            steps = 1
        start = time.perf_counter()
        stats = self.current.train(self.iterator, tf.constant(steps, tf.int64))
        stats = {k: float(v) for k, v in stats.items()}  # waits for the call to finish
        self.times.add_call(self.state.seen - seen, time.perf_counter() - start, compiling)
        self._compiled = True
        self.current.set_alpha()  # the count has moved on since the call's last step began
        if self.options.compile_ahead and self._ahead is None:
            self._start_ahead()
        return stats, compiling

    def release_stream(self) -> None:
        """Drops the input stream, torn down in a thread of its own: a distributed stream's
        teardown can wait up to a minute for tf.data's autotuning thread to wake from its
        sleep, and the loop need not wait with it. Not a daemon thread: the process waits for
        it at exit (a daemon thread stopped inside TensorFlow's teardown aborts the process)."""
        if self.iterator is None:
            return
        held = [self.iterator]
        self.iterator = None
        threading.Thread(target=held.clear, name="release input stream").start()

    def close(self) -> None:
        """At the end of a run: no compile thread left running, the input stream let go."""
        self.settle()
        self.release_stream()

    def settle(self) -> None:
        """Waits for a compile-ahead thread to finish (before snapshots, checkpoints and the
        end of the run, so that no other tracing overlaps it)."""
        if self._ahead is not None:
            self._ahead[1].join()

    def _make_step(self, phase: Phase, loss_scales: tuple[float, float] | None) -> PhaseStep:
        return PhaseStep(
            strategy=self.strategy,
            state=self.state,
            phase=phase,
            options=self.options.step,
            with_position=True,
            fade_graph=phase.fade or self._on_fade_model(phase),
            **({"loss_scales": loss_scales} if loss_scales else {}),
        )

    def _next_phase(self) -> Phase | None:
        """The next phase that needs a step of its own (the fade-in's step carries on into a
        stable phase on its model), if the run reaches it."""
        phase = self.current.phase
        while True:
            end = phase.end_images
            total = self.options.total_images
            if end is None or (total is not None and end >= total):
                return None
            following = phase_at(self.schedule, end)
            if not (phase.fade and self._on_fade_model(following)):
                return following
            phase = following

    def _start_ahead(self) -> None:
        """Makes the next phase's step here and compiles it in a thread."""
        phase = self._next_phase()
        if phase is None or not isinstance(
            self.strategy, (tf.distribute.OneDeviceStrategy, tf.distribute.MirroredStrategy)
        ):
            return
        ahead = self._make_step(phase, self.current.loss_scales)
        errors: list[BaseException] = []

        def compile_step():
            try:
                ahead.warm_up(self.dataset.channels, self.dataset.num_labels)
            except Exception as error:  # noqa: BLE001 - reported at the phase start, which then compiles anew
                errors.append(error)

        thread = threading.Thread(target=compile_step, name=f"compile {phase.name}", daemon=True)
        thread.start()
        self._ahead = (ahead, thread, errors)

    def _take_ahead(self, phase: Phase) -> PhaseStep | None:
        """The compiled-ahead step if it is for `phase` (waiting for its thread), else None."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return None
        step, thread, errors = ahead
        thread.join()
        if errors:
            console.say(
                f"progan_tf: compiling the {step.phase.name} step ahead failed ({errors[0]!r}); "
                "compiling it now"
            )
        if errors or (step.phase.key, step.phase.start_images) != (
            phase.key,
            phase.start_images,
        ):
            return None
        step.phase = phase
        return step

    def _on_fade_model(self, phase: Phase) -> bool:
        """Whether stable `phase` trains its fade-in's model: a function of the schedule alone,
        so a resumed run builds the step (and optimizer slots) the interrupted one had."""
        return (
            self.options.carry_fade_step
            and not phase.fade
            and self.schedule.fade_images > 0
            and 4 < phase.resolution < self.schedule.final_resolution
        )

    def _make_iterator(self, phase: Phase):
        data.require_records(self.dataset, phase.resolution)  # an empty level would wait forever
        epoch, index = (int(v) for v in self.state.data_position.numpy())
        dataset = data.distribute(
            self.strategy,
            self.dataset,
            phase.resolution,
            phase.global_batch_size,
            mirror=self.options.mirror_augment,
            shuffle_buffer=data.shuffle_records(
                self.dataset, phase.resolution, self.options.shuffle_buffer, self.options.shuffle_mb
            ),
            class_repeats=self.class_repeats,
            seed=self.options.step.seed,
            start=data.StreamPosition(epoch, index),
            with_position=True,
            as_uint8=True,  # floats and flips on the device, in the step
        )
        return iter(dataset)


class _Stopwatch:
    """Seconds spent in each named part of a phase's setup (stats.jsonl: `setup_parts`)."""

    def __init__(self):
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 3)
        self._last = now

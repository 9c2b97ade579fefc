"""The training loop: resume, then phase after phase until the last image, with ticks,
snapshots and checkpoints on the way. `Trainer._train` is the whole loop, top to bottom.

What the loop calls owns the details: `run_writer` (the run directory: layout, lock, logs,
stats), `checkpoints` (save, restore, fall back past a damaged one), `phases.PhaseRunner` (the
current phase and, for it, a `steps.PhaseStep`: fresh optimizers and the compiled step, the
only writer of alpha; and the input stream from `data`) and `progress` (status line, ETA). All
image counts are integers; kimg is for display.

Only the chief writes to the run directory; other workers of a multi-worker run checkpoint to
a scratch directory (all workers must take part in saving).

Ctrl-C, SIGTERM or SIGHUP stops the loop after its current call with a checkpoint
(`stopping`); the workers of a multi-worker run agree after every call whether any of them was
signalled, so that all of them save after the same call.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import time

import keras
import numpy as np
import tensorflow as tf

from progan_tf import data, images, plan
from progan_tf.metrics import inception as inception_lib, measure
from progan_tf.checkpoints import Checkpoints, find_restorable, has_optimizers, images_seen_of
from progan_tf.networks import Architecture, generate_images
from progan_tf.phases import PhaseRunner
from progan_tf.progress import PhaseTimes, Progress
from progan_tf.run_writer import RunWriter
from progan_tf.schedule import Phase, Schedule, phase_at
from progan_tf.state import TrainState
from progan_tf.options import TrainerOptions
from progan_tf.steps import PhaseStep
from progan_tf.stopping import SIGNALS, RunInterrupted, StopRequests
from progan_tf.strategies import device_summary
from progan_tf.options import StepOptions


class TrainingError(RuntimeError):
    """Training cannot go on (diverged, unreadable data, disk); the message says what to do."""


def run_summary(strategy: tf.distribute.Strategy, step: StepOptions) -> str:
    """The devices, strategy and replicas, precision and XLA of a run: its log's first line."""
    precision = f"mixed {step.mixed_precision_dtype}" if step.mixed_precision else "float32"
    return f"{device_summary(strategy)}, {precision}, XLA {'on' if step.xla else 'off'}"


def out_of_memory(what: str, lower: str) -> TrainingError:
    """The one line a ResourceExhaustedError becomes: where, and the setting to lower."""
    return TrainingError(f"out of memory {what}; lower {lower}")


def is_cluster(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    return resolver is not None and bool(resolver.cluster_spec().as_dict())


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    """Several processes each running this loop (a TPU's hosts are driven by one)."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and is_cluster(strategy)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    if not is_cluster(strategy):
        return True
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    return (
        task_type in (None, "worker")
        and task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict()
    )


class Trainer:
    """Trains G and D progressively on one dataset into one run directory, which it locks."""

    def __init__(
        self,
        *,
        arch: Architecture,
        schedule: Schedule,
        options: TrainerOptions,
        dataset: data.DatasetInfo,
        run_dir: str,
        strategy: tf.distribute.Strategy,
        config: dict | None = None,
    ):
        if arch.resolution > dataset.resolution:
            dataset.level_files(arch.resolution)  # raises the clear error
        for resolution in arch.stages:  # a level without images: one error now, not a hang later
            data.require_records(dataset, resolution)
        class_repeats = ()
        if options.class_balance:
            if not dataset.num_labels:
                raise ValueError(
                    f"--config.class_balance={options.class_balance} needs labels and "
                    f"{dataset.path} has none"
                )
            class_repeats = data.class_repeats_for(
                data.class_counts(dataset), options.class_balance
            )
        # FID / KID at checkpoints: the network file is read now (a wrong one fails before
        # training, not at the first checkpoint), and once
        self._inception = (
            inception_lib.InceptionFeatures(options.inception)
            if set(options.metrics) & set(measure.INCEPTION_METRICS) and is_chief(strategy)
            else options.inception
        )
        self.arch, self.schedule, self.options = arch, schedule, options
        self.dataset, self.run_dir, self.strategy = dataset, run_dir, strategy
        self._stop_requests = StopRequests()
        self.chief = is_chief(strategy)
        self.directory = RunWriter(run_dir, writable=self.chief)
        if self.chief:
            self.directory.lock()  # before anything is written
        try:
            self._build(config, class_repeats)
        except BaseException:
            if getattr(self, "runner", None) is not None:
                self.runner.close()
            self.directory.unlock()  # a failed constructor leaves the directory free
            raise

    def _build(self, config: dict | None, class_repeats: tuple[int, ...]) -> None:
        """The state, checkpoint manager and phase runner, after checking that the run's
        newest checkpoint fits these networks; config.json and run.json are written by `_train`
        once the checkpoint has restored (or the run is new)."""
        arch, schedule, options = self.arch, self.schedule, self.options
        dataset, run_dir, strategy = self.dataset, self.run_dir, self.strategy
        step = options.step
        keras.mixed_precision.set_global_policy(
            f"mixed_{step.mixed_precision_dtype}" if step.mixed_precision else "float32"
        )
        keras.utils.set_random_seed(step.seed)  # initial weights: the same seed, the same run
        self.state = TrainState(arch, strategy)
        ckpt_dir = self.directory.checkpoints
        if not self.chief:
            ckpt_dir = os.path.join(run_dir, f".scratch-worker-{strategy.cluster_resolver.task_id}")
        self.checkpoints = Checkpoints(self.state.checkpoint, ckpt_dir, options.keep_checkpoints)
        # The newest checkpoint that reads completely; CheckpointError if there are checkpoints
        # and none does. Decided before anything is written: a refused resume changes nothing.
        self._restore_from, self._skipped = find_restorable(self.directory.checkpoints)
        if self._restore_from:
            self._check_networks_fit(self._restore_from)
        self.runner = PhaseRunner(
            schedule=schedule,
            strategy=strategy,
            state=self.state,
            dataset=dataset,
            options=options,
            class_repeats=class_repeats,
        )
        # conditional: whole rows per class
        classes, _ = images.class_rows(options.grid_size, arch.num_labels)
        grid_size = options.grid_size if classes is None else len(classes)
        self._grid_latents = images.latents(grid_size, arch.latent_size, step.seed)
        self._summary = (
            tf.summary.create_file_writer(self.directory.file("tensorboard"))
            if self.chief
            else None
        )
        # Written once the checkpoint has restored (or the run is new): a refused resume
        # leaves config.json and run.json as they were.
        self._run_files = (
            config,
            {  # what generate/evaluate/export rebuild from (progan_tf.run_reader)
                "architecture": dataclasses.asdict(arch),
                "stable_kimg": schedule.stable_kimg,
                "fade_kimg": schedule.fade_kimg,
                "dataset": os.path.abspath(dataset.path),
                "label_names": list(dataset.label_names),
            },
        )

    def _check_networks_fit(self, path: str) -> None:
        """ValueError, before anything is written, if checkpoint `path` holds networks of other
        shapes or layers than these (other widths, resolution, channels, growth)."""
        networks = self.state.networks_checkpoint()
        try:
            status = networks.read(path)
            status.expect_partial()  # the rest of the checkpoint is read at restore
            status.assert_existing_objects_matched()  # every layer of these networks is in it
        except (ValueError, AssertionError, tf.errors.OpError) as error:
            detail = str(error).strip().splitlines()[0][:300]
            raise ValueError(
                f"{self.run_dir}: {os.path.basename(path)} holds networks that do not fit the "
                f"ones this command builds ({detail}); nothing in the run directory was changed. "
                "Resume with the settings the run was trained with, or train into a new --run_dir"
            ) from None
        # the values read are those the restore assigns again; a fresh start never gets here

    # State ---------------------------------------------------------------------------------
    @property
    def seen(self) -> int:
        """Real images shown to D so far."""
        return self.state.seen

    # The state's parts, read through the trainer (it owns none of them: `self.state` does).
    generator = property(lambda self: self.state.generator)
    discriminator = property(lambda self: self.state.discriminator)
    ema = property(lambda self: self.state.ema)
    alpha = property(lambda self: self.state.alpha)
    images_seen = property(lambda self: self.state.images_seen)
    data_position = property(lambda self: self.state.data_position)
    counters = property(lambda self: self.state.counters)
    checkpoint = property(lambda self: self.state.checkpoint)

    @property
    def kimg(self) -> float:
        return self.seen / 1000.0

    @property
    def phase_step(self) -> PhaseStep | None:
        """The current phase's optimizers and compiled step."""
        return self.runner.current

    @property
    def phase_times(self) -> PhaseTimes:
        return self.runner.times

    def restore(self) -> bool:
        """Resumes from the latest checkpoint: weights, EMA, optimizers, image count, data
        position. True if resumed."""
        path = self._restore_from
        if not path:
            return False
        if self._skipped and self.chief:
            folder = self.checkpoints.set_aside([skipped for skipped, _ in self._skipped])
            for _, reason in self._skipped:
                self.directory.log(f"skipping a checkpoint: {reason}; moved to {folder}")
        # The phase's step and input stream first (its optimizers are part of the checkpoint),
        # made at the checkpoint's image count and stream position, then every value restored.
        fine_tune = not has_optimizers(path)  # networks imported from the release
        if fine_tune:
            # Weights only: the fine-tune trains the final resolution's stable phase of this
            # run's schedule, from its start (or the import's count if later: checkpoint
            # numbers only grow), on the new data from its first record.
            start = max(final_stable_start(self.schedule), images_seen_of(path))
            self.images_seen.assign(start)
            self.state.restart_stream()
        else:
            self.images_seen.assign(images_seen_of(path))
            self.data_position.assign(
                tf.train.load_variable(path, "data_position/.ATTRIBUTES/VARIABLE_VALUE")
            )
        phase = phase_at(self.schedule, self.seen)
        self.runner.enter(phase)
        try:
            self.checkpoints.restore(path)
        except (AssertionError, ValueError, tf.errors.OpError) as error:
            detail = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
            raise ValueError(
                f"{self.run_dir}: {os.path.basename(path)} does not fit this command's settings "
                f"({detail or type(error).__name__}); nothing in the run directory was changed. "
                "Resume with the settings the run was trained with, or train into a new --run_dir"
            ) from None
        if fine_tune:
            self.images_seen.assign(start)  # the restore read the import's count
            self.state.restart_stream()
            self.runner.current.set_alpha()
        optimizers = (
            "fine-tuning imported networks: G, D and the EMA G as imported, fresh optimizers"
            if fine_tune
            else f"optimizer step {int(self.phase_step.d_optimizer.iterations.numpy())}"
        )
        self.directory.log(
            f"resuming from kimg {self.kimg:.3f} ({os.path.basename(path)}): {phase.name}, "
            f"alpha {float(self.alpha.numpy()):.3f}, {optimizers}"
        )
        return True

    def save(self) -> str | None:
        """Writes a checkpoint unless the last step was not finite (the last good one stays)."""
        if int(self.counters["consecutive_nonfinite"].numpy()) > 0:
            return None
        path = self.checkpoints.save(self.seen)
        return path if self.chief else None

    # Loop ----------------------------------------------------------------------------------
    def train(self) -> dict[str, float]:
        """Trains to `total_images`; returns the last tick's statistics. Raises
        `RunInterrupted` if a signal (`stopping.SIGNALS`) stopped it first (after a checkpoint)."""
        try:
            with self._stop_requests:
                return self._train()
        finally:
            self.runner.close()  # no compile thread left running, the input stream let go
            self.directory.unlock()

    def _train(self) -> dict[str, float]:
        o = self.options
        self.directory.log(f"running on {run_summary(self.strategy, o.step)}")
        self.directory.log(
            "plan:\n"
            + "\n".join(
                plan.plan_table(
                    self.arch, self.schedule, int(o.total_images), o.step.mixed_precision
                )
            ),
            echo=False,
        )
        self.directory.log(self._labels_line())
        resumed = self.restore()
        self.directory.prepare(*self._run_files)
        if not resumed:
            self.directory.log(f"starting a new run in {self.run_dir}")
            self._write_reals()
        if self.runner.class_repeats:
            names = self.dataset.label_names or [
                str(c) for c in range(len(self.runner.class_repeats))
            ]
            self.directory.log(
                f"class_balance {o.class_balance:g}: each image repeated per epoch "
                + ", ".join(f"{name} x{r}" for name, r in zip(names, self.runner.class_repeats))
            )
        total = int(o.total_images)
        events = {
            name: _next_multiple(self.seen, every)
            for name, every in (
                ("tick", o.tick_images),
                ("snapshot", o.snapshot_images),
                ("checkpoint", o.checkpoint_images),
            )
        }
        progress = Progress(self.schedule, total, enabled=self.chief)
        tick_start, tick_images, last_stats = time.time(), self.seen, {}
        saved_at = None
        while self.seen < total:
            if (due := self.runner.due()) is not None:  # the first phase, or the next one
                self._switch_phase(due)
            phase = self.runner.phase
            stop = min(
                total,
                *events.values(),
                *([phase.end_images] if phase.end_images is not None else []),
            )
            try:
                stats, compiled = self.runner.run(stop)
            except tf.errors.DataLossError as error:
                data.check_readable(self.dataset, phase.resolution)
                raise TrainingError(f"reading {self.dataset.path}: {error.message}") from None
            except tf.errors.InvalidArgumentError:
                # names a record of the wrong shape
                data.check_record_shapes(self.dataset, phase.resolution)
                raise
            except tf.errors.ResourceExhaustedError:
                per_replica = phase.global_batch_size // self.strategy.num_replicas_in_sync
                raise out_of_memory(
                    f"in the {phase.name} step at kimg {self.kimg:.3f} (batch "
                    f"{per_replica} per replica); the last checkpoint is "
                    f"{(self.checkpoints.latest() if self.chief else None) or 'none yet'}",
                    f'--config.max_minibatch_per_replica (e.g. \'{{"{phase.resolution}": '
                    f"{max(1, per_replica // 2)}}}') or use --mixed_precision",
                ) from None
            seen = self.seen
            self._check_finite()
            trained, trained_alpha = phase, float(self.alpha.numpy())  # what the stats describe
            if (due := self.runner.due()) is not None:
                self._switch_phase(due)  # before any checkpoint: it must hold the new optimizers
            progress.update(
                seen, self.runner.phase, float(self.alpha.numpy()), stats, steady=not compiled
            )
            done = seen >= total
            if seen >= events["tick"] or done:
                last_stats = self._tick(
                    trained, trained_alpha, stats, seen - tick_images, time.time() - tick_start
                )
                tick_start, tick_images = time.time(), seen
                events["tick"] = _next_multiple(seen, o.tick_images)
            # The checkpoint first: a snapshot or metric that fails must not cost it.
            if seen >= events["checkpoint"] or done:
                self._checkpoint_and_metrics()
                events["checkpoint"] = _next_multiple(seen, o.checkpoint_images)
                saved_at = seen
            if seen >= events["snapshot"] or done:
                self._snapshot()
                events["snapshot"] = _next_multiple(seen, o.snapshot_images)
            stop_signal = self._stop_signal()  # on every worker after every call: it agrees
            if stop_signal is not None and not done:
                progress.close()
                self._stop(stop_signal, saved=saved_at == seen)
        progress.close()
        self._finish()
        return last_stats

    def _stop_signal(self) -> int | None:
        """The signal that stops the loop after this call, if any. The workers of a multi-worker
        run sum their votes over the replicas, so that either all of them stop or none."""
        received = self._stop_requests.received
        if not is_multi_worker(self.strategy):
            return received
        vote = tf.constant([received == signum for signum in SIGNALS], tf.float32)
        votes = self.strategy.reduce(
            tf.distribute.ReduceOp.SUM, self.strategy.run(lambda: vote), axis=None
        ).numpy()
        return next((signum for signum, n in zip(SIGNALS, votes) if n > 0), None)

    def _stop(self, signum: int, saved: bool) -> None:
        """Ends the loop on a signal: a checkpoint of where it stopped (unless one was just
        written), the phase times, and `RunInterrupted`."""
        if not saved:
            self.runner.settle()
            self.save()  # none if the last step was not finite: the last good one stays
        latest = self.checkpoints.latest() if self.chief else None
        if not self.chief:
            where = "the chief saved the checkpoint"
        elif latest and os.path.basename(latest) == f"ckpt-{self.seen}":
            where = f"saved {os.path.basename(latest)}"
        else:
            where = f"the last step was not finite; the last good checkpoint is {latest or 'none'}"
        by = signal.Signals(signum).name
        if self._stop_requests.received is None:
            by += " on another worker"
        message = f"kimg {self.kimg:.3f}: stopped by {by}, {where}; the same command resumes"
        self.directory.log(message)
        self._finish()
        raise RunInterrupted(signum, message)

    def _labels_line(self) -> str:
        """What the run does with the dataset's labels: the first line of every run's log."""
        classes = self.dataset.num_labels
        if not classes:
            return f"{self.dataset.path}: no labels: unconditional, no class balancing"
        use = (
            "conditional (one-hot into G, AC-GAN head on D)"
            if self.arch.num_labels
            else "unconditional"
        )
        balance = self.options.class_balance
        return f"{self.dataset.path}: {classes} classes: {use}, class_balance {balance:g}"

    def _switch_phase(self, phase: Phase) -> None:
        self.runner.enter(phase)
        self.directory.log(
            f"kimg {self.kimg:.3f}: {phase.name}, batch {phase.global_batch_size}, lr "
            f"{phase.learning_rate:g}"
        )

    def _check_finite(self) -> None:
        consecutive = int(self.counters["consecutive_nonfinite"].numpy())
        if consecutive >= self.options.max_nonfinite_steps:
            latest = self.checkpoints.latest() if self.chief else None
            raise TrainingError(
                f"{consecutive} training steps in a row had non-finite losses or gradients at kimg "
                f"{self.kimg:.3f}; stopping. The last good checkpoint is "
                f"{latest or 'none (no checkpoint yet)'}. "
                "Lower the learning rate (--config.learning_rate) or check the data."
            )

    # Outputs -------------------------------------------------------------------------------
    def _tick(
        self, phase: Phase, alpha: float, stats: dict[str, float], images_done: int, seconds: float
    ) -> dict[str, float]:
        record = {
            "kimg": self.kimg,
            "images_seen": self.seen,
            "resolution": phase.resolution,
            "phase": "fade" if phase.fade else "stable",
            "alpha": alpha,
            "batch": phase.global_batch_size,
            "images_per_sec": images_done / max(seconds, 1e-9),
            "sec_per_kimg": seconds / max(images_done / 1000, 1e-9),
            "nonfinite_steps": int(self.counters["nonfinite_total"].numpy()),
            **{k: v for k, v in stats.items() if k != "finite"},
        }
        if not self.chief:
            return record
        self.directory.log(
            f"kimg {self.kimg:9.3f}  {phase.resolution:>4}x{phase.resolution:<4} alpha {alpha:.3f} "
            " "
            f"batch {phase.global_batch_size:<4} sec/kimg {record['sec_per_kimg']:8.2f}  "
            f"d_loss {stats['d_loss']:8.4f}  g_loss {stats['g_loss']:8.4f}  gp "
            f"{stats['gradient_penalty']:.4f}",
            echo=False,
        )
        self.directory.append_stats(record)
        with self._summary.as_default(step=self.seen):
            for key, value in record.items():
                if key != "phase":
                    tf.summary.scalar(f"train/{key}", value)
        return record

    def sample_grid(self, latents: np.ndarray | None = None) -> np.ndarray:
        """uint8 grid of the EMA generator at the current stage, tiles at the final resolution;
        generated in chunks of the stage's per-replica batch (memory of one step's forward)."""
        phase = self.runner.phase or phase_at(self.schedule, self.seen)
        model = self.ema.stage_model(phase.resolution, phase.fade)
        latents = self._grid_latents if latents is None else latents
        classes, columns = images.class_rows(len(latents), self.arch.num_labels)
        labels = (
            None
            if classes is None
            else images.one_hot(classes[: len(latents)], self.arch.num_labels)
        )
        fakes = generate_images(model, latents, labels, batch_size=self._per_replica(phase))
        return images.make_grid(fakes, columns=columns, upscale_to=self.arch.resolution)

    def _per_replica(self, phase: Phase) -> int:
        return max(1, phase.global_batch_size // self.strategy.num_replicas_in_sync)

    def _snapshot(self) -> None:
        if not self.chief:
            return
        # the grid's model call and a compile-ahead trace on the same layers: not at once
        self.runner.settle()
        try:
            grid = self.sample_grid()
        except tf.errors.ResourceExhaustedError:
            self.directory.log(
                f"warning: kimg {self.kimg:.3f}: out of memory drawing the sample grid; no grid "
                "this time, training goes on (lower --config.grid_size)"
            )
            return
        images.save_png(grid, self.directory.sample_path(self.seen))
        with self._summary.as_default(step=self.seen):
            tf.summary.image("samples/ema", grid[None], max_outputs=1)

    def _write_reals(self) -> None:
        if not self.chief:
            return
        batch, columns = data.reals_for_grid(
            self.dataset, self.arch.resolution, self.options.grid_size
        )
        images.save_png(images.make_grid(batch, columns=columns), self.directory.file("reals.png"))

    def _checkpoint_and_metrics(self) -> None:
        self.runner.settle()
        path = self.save()
        if path:
            self.directory.log(f"kimg {self.kimg:.3f}: saved {path}", echo=False)
        if self.options.metrics and self.chief:
            try:
                results = measure.evaluate_generator(
                    self.ema,
                    self.runner.phase,
                    self.dataset,
                    self.options.metrics,
                    self.options.metrics_num_images,
                    seed=self.options.step.seed,
                    noise_floor=False,
                    inception=self._inception,
                    skip_unsupported=True,
                    mirror=self.options.mirror_augment,
                    generator_batch=self._per_replica(self.runner.phase),
                )
            except tf.errors.ResourceExhaustedError:
                self.directory.log(
                    f"warning: kimg {self.kimg:.3f}: out of memory computing metrics; none this "
                    "time, training goes on (the checkpoint is saved)"
                )
                return
            if results:
                measure.record(self.run_dir, results, kimg=self.kimg, step=self.seen)
                self.directory.log(
                    f"kimg {self.kimg:.3f}: "
                    + ", ".join(f"{k} {v:.4f}" for k, v in results.items())
                )

    def _finish(self) -> None:
        if self._summary is not None:
            self._summary.flush()
        if self.chief:
            for entry in self.phase_times.phases:
                self.directory.append_stats({"phase_time": entry.record()})
            self.directory.log("time per phase (this process):\n" + self.phase_times.table())
        else:
            shutil.rmtree(self.checkpoints.directory, ignore_errors=True)


def final_stable_start(schedule: Schedule) -> int:
    """The first image of the final resolution's stable phase."""
    if not schedule.progressive:
        return 0
    return (schedule.num_stages - 1) * (schedule.stable_images + schedule.fade_images)


def _next_multiple(images_seen: int, every: int) -> int:
    """The first multiple of `every` images after `images_seen`."""
    every = max(1, int(every))
    return (int(images_seen) // every + 1) * every

"""The training loop: phases, checkpoints with exact resume, snapshots, logs and TensorBoard.

`Trainer.train()` first resumes from the run directory's latest checkpoint, if any, then runs
phase after phase (`steps.PhaseTrainer`) until `total_kimg`. The run directory holds:

    config.json  run.json  log.txt  stats.jsonl  reals.png  samples/fakes{kimg:06d}.png
    checkpoints/ (tf.train.CheckpointManager)  tensorboard/

Only the chief writes to it; other workers of a multi-worker run checkpoint to a scratch
directory (all workers must take part in saving).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from progan_tf import data, images
from progan_tf.networks import Architecture, Discriminator, Generator
from progan_tf.schedule import Phase, Schedule, phase_at
from progan_tf.steps import PhaseTrainer, StepOptions


class TrainingError(RuntimeError):
    """Training cannot go on (diverged, unreadable data); the message says what to do."""


@dataclasses.dataclass(frozen=True)
class TrainerOptions:
    total_kimg: float = 12000.0
    step: StepOptions = dataclasses.field(default_factory=StepOptions)  # loss, optimizer, EMA, precision
    max_nonfinite_steps: int = 100
    steps_per_call: int = 50
    mirror_augment: bool = False
    shuffle_buffer: int = 4096
    tick_kimg: float = 10.0
    snapshot_kimg: float = 50.0
    checkpoint_kimg: float = 100.0
    keep_checkpoints: int = 3
    grid_size: int = 64
    metrics: tuple[str, ...] = ()
    metrics_num_images: int = 1024
    inception_weights: str = ""


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    return task_type in (None, "worker") and task_id == 0 and "chief" not in resolver.cluster_spec().as_dict()


class Trainer:
    """Trains G and D progressively on one dataset into one run directory."""

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
        self.arch, self.schedule, self.options = arch, schedule, options
        self.dataset, self.run_dir, self.strategy = dataset, run_dir, strategy
        self.chief = is_chief(strategy)
        step = options.step
        keras.mixed_precision.set_global_policy(f"mixed_{step.mixed_precision_dtype}" if step.mixed_precision else "float32")
        with strategy.scope():
            alpha = tf.Variable(1.0, trainable=False, dtype=tf.float32, name="alpha")
            self.generator = Generator(arch, alpha)
            self.discriminator = Discriminator(arch, alpha, name="d")
            self.ema = Generator(arch, alpha, name="g_ema")
            self.ema.copy_weights_from(self.generator)
            self.images_seen = tf.Variable(0, dtype=tf.int64, trainable=False, name="images_seen")
            self.counters = {
                name: tf.Variable(0, dtype=tf.int64, trainable=False, name=name)
                for name in ("consecutive_nonfinite", "nonfinite_total")
            }
        self.alpha = alpha
        self.checkpoint = tf.train.Checkpoint(
            generator=self.generator.checkpoint(),
            discriminator=self.discriminator.checkpoint(),
            ema_generator=self.ema.checkpoint(),
            images_seen=self.images_seen,
            **self.counters,
        )
        ckpt_dir = os.path.join(run_dir, "checkpoints")
        if not self.chief:
            ckpt_dir = os.path.join(run_dir, f".scratch-worker-{strategy.cluster_resolver.task_id}")
        self.manager = tf.train.CheckpointManager(self.checkpoint, ckpt_dir, max_to_keep=options.keep_checkpoints)
        self._restore_from = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
        self.phase_trainer: PhaseTrainer | None = None
        self._iterators: dict[int, object] = {}
        self._grid_latents = np.random.RandomState(options.step.seed).randn(options.grid_size, arch.latent_size).astype("float32")
        self._summary = tf.summary.create_file_writer(os.path.join(run_dir, "tensorboard")) if self.chief else None
        if self.chief:
            os.makedirs(os.path.join(run_dir, "samples"), exist_ok=True)
            if config is not None:
                _write_text(os.path.join(run_dir, "config.json"), json.dumps(config, indent=2, sort_keys=True) + "\n")
            run_info = {  # what generate/evaluate/export need to rebuild the networks (progan_tf.runs)
                "architecture": dataclasses.asdict(arch),
                "stable_kimg": schedule.stable_kimg,
                "fade_kimg": schedule.fade_kimg,
                "dataset": os.path.abspath(dataset.path),
                "label_names": list(dataset.label_names),
            }
            _write_text(os.path.join(run_dir, "run.json"), json.dumps(run_info, indent=2) + "\n")

    # State ---------------------------------------------------------------------------------
    @property
    def kimg(self) -> float:
        return int(self.images_seen.numpy()) / 1000.0

    def _enter_phase(self, phase: Phase) -> None:
        """Fresh optimizers and a new compiled step for `phase`, tracked by the checkpoint. Under
        mixed precision the new optimizers start from the loss scales the last phase found."""
        previous = self.phase_trainer
        self.phase_trainer = PhaseTrainer(
            strategy=self.strategy,
            generator=self.generator,
            discriminator=self.discriminator,
            ema=self.ema,
            phase=phase,
            images_seen=self.images_seen,
            counters=self.counters,
            options=self.options.step,
            **({"loss_scales": previous.loss_scales} if previous else {}),
        )
        self.checkpoint.g_optimizer = self.phase_trainer.g_optimizer
        self.checkpoint.d_optimizer = self.phase_trainer.d_optimizer
        self._set_alpha_now()

    def _set_alpha_now(self) -> None:
        """Alpha for the next step (the compiled step sets it in-graph from the image count)."""
        self.alpha.assign(phase_at(self.schedule, self.kimg).alpha)

    def restore(self) -> bool:
        """Resumes from the latest checkpoint: weights, EMA, optimizers, kimg. True if resumed."""
        path = self._restore_from
        if not path:
            return False
        images_seen = int(tf.train.load_variable(path, "images_seen/.ATTRIBUTES/VARIABLE_VALUE"))
        phase = phase_at(self.schedule, images_seen / 1000.0)
        self._enter_phase(phase)
        self.checkpoint.restore(path).assert_existing_objects_matched()
        self._set_alpha_now()
        self._log(
            f"resuming from kimg {self.kimg:.1f} ({os.path.basename(path)}): {phase.name}, "
            f"alpha {float(self.alpha.numpy()):.3f}, optimizer step {int(self.phase_trainer.d_optimizer.iterations.numpy())}"
        )
        return True

    def save(self) -> str | None:
        """Writes a checkpoint (atomically: the index is renamed into place last)."""
        if int(self.counters["consecutive_nonfinite"].numpy()) > 0:
            return None  # keep the last good checkpoint
        path = self.manager.save(checkpoint_number=int(self.images_seen.numpy()))
        return path if self.chief else None

    # Data ----------------------------------------------------------------------------------
    def _iterator(self, phase: Phase):
        if phase.resolution not in self._iterators:
            self._iterators.clear()  # one resolution at a time
            dataset = data.distribute(
                self.strategy,
                self.dataset,
                phase.resolution,
                phase.global_batch_size,
                mirror=self.options.mirror_augment,
                shuffle_buffer=self.options.shuffle_buffer,
                seed=self.options.step.seed + int(self.images_seen.numpy()),
            )
            self._iterators[phase.resolution] = iter(dataset)
        return self._iterators[phase.resolution]

    # Loop ----------------------------------------------------------------------------------
    def train(self) -> dict[str, float]:
        """Trains to `total_kimg`; returns the last tick's statistics."""
        o = self.options
        if not self.restore():
            self._log(f"starting a new run in {self.run_dir}")
            self._write_reals()
        total = int(round(o.total_kimg * 1000))
        events = {name: _next_multiple(self.images_seen.numpy(), kimg) for name, kimg in
                  (("tick", o.tick_kimg), ("snapshot", o.snapshot_kimg), ("checkpoint", o.checkpoint_kimg))}
        progress = Progress(self.schedule, total, enabled=self.chief)
        tick_start, tick_images, last_stats = time.time(), int(self.images_seen.numpy()), {}
        if self.phase_trainer is None:
            self._switch_phase()
        while int(self.images_seen.numpy()) < total:
            seen = int(self.images_seen.numpy())
            phase = self.phase_trainer.phase
            stop = min(total, phase.end_kimg * 1000 if math.isfinite(phase.end_kimg) else total, *events.values())
            steps = max(1, min(o.steps_per_call, math.ceil((stop - seen) / phase.global_batch_size)))
            try:
                stats = self.phase_trainer.train(self._iterator(phase), tf.constant(steps, tf.int64))
            except tf.errors.DataLossError as error:
                data.check_readable(self.dataset, phase.resolution)
                raise TrainingError(f"reading {self.dataset.path}: {error.message}") from None
            stats = {k: float(v) for k, v in stats.items()}
            seen = int(self.images_seen.numpy())
            self._check_finite()
            trained, trained_alpha = phase, _alpha_at_end(phase, seen)  # what the stats describe
            if phase_at(self.schedule, seen / 1000.0).key != phase.key:
                self._switch_phase()  # before any checkpoint: it must hold the new optimizers
            self._set_alpha_now()
            phase = self.phase_trainer.phase  # the phase the next step trains
            progress.update(seen, phase, float(self.alpha.numpy()), stats)
            done = seen >= total
            if seen >= events["tick"] or done:
                last_stats = self._tick(trained, trained_alpha, stats, seen - tick_images, time.time() - tick_start)
                tick_start, tick_images = time.time(), seen
                events["tick"] = _next_multiple(seen, o.tick_kimg)
            if seen >= events["snapshot"] or done:
                self._snapshot(phase)
                events["snapshot"] = _next_multiple(seen, o.snapshot_kimg)
            if seen >= events["checkpoint"] or done:
                self._checkpoint_and_metrics(phase)
                events["checkpoint"] = _next_multiple(seen, o.checkpoint_kimg)
        progress.close()
        if self._summary is not None:
            self._summary.flush()
        self._cleanup_scratch()
        return last_stats

    def _switch_phase(self) -> None:
        phase = phase_at(self.schedule, self.kimg)
        self._enter_phase(phase)
        self._log(f"kimg {self.kimg:.1f}: {phase.name}, batch {phase.global_batch_size}, lr {phase.learning_rate:g}")

    def _check_finite(self) -> None:
        consecutive = int(self.counters["consecutive_nonfinite"].numpy())
        if consecutive >= self.options.max_nonfinite_steps:
            latest = tf.train.latest_checkpoint(os.path.join(self.run_dir, "checkpoints"))
            raise TrainingError(
                f"{consecutive} training steps in a row had non-finite losses or gradients at kimg "
                f"{self.kimg:.1f}; stopping. The last good checkpoint is {latest or 'none (no checkpoint yet)'}. "
                "Lower the learning rate (--config.learning_rate) or check the data."
            )

    # Outputs -------------------------------------------------------------------------------
    def _tick(self, phase: Phase, alpha: float, stats: dict[str, float], images_done: int, seconds: float) -> dict[str, float]:
        kimg = self.kimg
        record = {
            "kimg": kimg,
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
        self._log(
            f"kimg {kimg:9.1f}  {phase.resolution:>4}x{phase.resolution:<4} alpha {record['alpha']:.3f}  "
            f"batch {phase.global_batch_size:<4} sec/kimg {record['sec_per_kimg']:8.2f}  "
            f"d_loss {stats['d_loss']:8.4f}  g_loss {stats['g_loss']:8.4f}  gp {stats['gradient_penalty']:.4f}",
            echo=False,
        )
        _append_line(os.path.join(self.run_dir, "stats.jsonl"), json.dumps(record))
        with self._summary.as_default(step=int(self.images_seen.numpy())):
            for key, value in record.items():
                if key != "phase":
                    tf.summary.scalar(f"train/{key}", value)
        return record

    def sample_grid(self, latents: np.ndarray | None = None) -> np.ndarray:
        """uint8 grid of the EMA generator at the current stage, tiles at the final resolution."""
        phase = phase_at(self.schedule, self.kimg)
        model = self.ema.stage_model(phase.resolution, phase.fade)
        latents = self._grid_latents if latents is None else latents
        columns = None
        inputs = latents
        if self.arch.num_labels:  # one row per class
            columns = math.ceil(len(latents) / self.arch.num_labels)
            classes = np.arange(len(latents)) // columns % self.arch.num_labels
            inputs = [latents, np.eye(self.arch.num_labels, dtype="float32")[classes]]
        fakes = data.to_uint8(model(inputs, training=False)).numpy()
        return images.make_grid(fakes, columns=columns, upscale_to=self.arch.resolution)

    def _snapshot(self, phase: Phase) -> None:
        if not self.chief:
            return
        grid = self.sample_grid()
        kimg = int(self.images_seen.numpy()) // 1000
        images.save_png(grid, os.path.join(self.run_dir, "samples", f"fakes{kimg:06d}.png"))
        with self._summary.as_default(step=int(self.images_seen.numpy())):
            tf.summary.image("samples/ema", grid[None], max_outputs=1)

    def _write_reals(self) -> None:
        if not self.chief:
            return
        batch = next(data.iterate_level(self.dataset, self.arch.resolution, batch_size=self.options.grid_size))[0]
        images.save_png(images.make_grid(batch), os.path.join(self.run_dir, "reals.png"))

    def _checkpoint_and_metrics(self, phase: Phase) -> None:
        path = self.save()
        if path:
            self._log(f"kimg {self.kimg:.1f}: saved {path}", echo=False)
        if self.options.metrics and self.chief:
            from progan_tf import evaluate  # noqa: PLC0415 - optional, heavier imports

            results = evaluate.evaluate_generator(
                self.ema, phase, self.dataset, self.options.metrics, self.options.metrics_num_images,
                seed=self.options.step.seed, noise_floor=False, inception_weights=self.options.inception_weights,
                skip_unsupported=True,
            )
            if results:
                evaluate.record(self.run_dir, results, kimg=self.kimg, step=int(self.images_seen.numpy()))
                self._log(f"kimg {self.kimg:.1f}: " + ", ".join(f"{k} {v:.4f}" for k, v in results.items()))

    def _log(self, message: str, echo: bool = True) -> None:
        if not self.chief:
            return
        _append_line(os.path.join(self.run_dir, "log.txt"), f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}")
        if echo:  # on a terminal, over the progress line, which the next update redraws
            print(("\r\033[K" if sys.stderr.isatty() else "") + message, file=sys.stderr, flush=True)

    def _cleanup_scratch(self) -> None:
        if not self.chief:
            shutil.rmtree(self.manager.directory, ignore_errors=True)


class Progress:
    """One status line (kimg, stage, alpha, losses, images/s, ETA), redrawn in place on a
    terminal, printed every 10 % otherwise. The ETA counts later, slower stages by assuming the
    time per image grows as resolution**1.5 (about what the demo measures per doubling: x2.3 to
    x3.6), scaled by the measured current speed."""

    COST_EXPONENT = 1.5

    def __init__(self, schedule: Schedule, total_images: int, enabled: bool = True):
        self.schedule, self.total, self.enabled = schedule, total_images, enabled
        self.tty = sys.stderr.isatty()
        self.last_time = self.last_images = self.last_resolution = None
        self.rate = None  # seconds per image / resolution**COST_EXPONENT, smoothed
        self.printed_tenths = -1

    def eta_seconds(self, images_seen: int) -> float:
        cost, kimg, end = 0.0, images_seen / 1000.0, self.total / 1000.0
        while kimg < end:
            phase = phase_at(self.schedule, kimg)
            stop = min(phase.end_kimg, end)
            cost += (stop - kimg) * 1000.0 * phase.resolution**self.COST_EXPONENT
            kimg = stop
        return cost * (self.rate or 0.0)

    def update(self, images_seen: int, phase: Phase, alpha: float, stats: dict[str, float]) -> None:
        """`phase`: the one the next step trains; the images since the last call were shown at
        the resolution of the previous call's phase."""
        if not self.enabled:
            return
        now = time.time()
        if self.last_time is not None and images_seen > self.last_images:
            rate = (now - self.last_time) / (images_seen - self.last_images) / self.last_resolution**self.COST_EXPONENT
            self.rate = rate if self.rate is None else 0.8 * self.rate + 0.2 * rate
        self.last_time, self.last_images, self.last_resolution = now, images_seen, phase.resolution
        speed = f"{1.0 / (self.rate * phase.resolution**self.COST_EXPONENT):7.1f}" if self.rate else "      -"
        eta = time.strftime("%H:%M:%S", time.gmtime(self.eta_seconds(images_seen))) if self.rate else "--:--:--"
        fraction = min(images_seen / self.total, 1.0)
        bar = ("=" * int(20 * fraction)).ljust(20)
        line = (f"kimg {images_seen / 1000:8.1f}/{self.total / 1000:<8.1f} [{bar}] {phase.resolution:>4}x{phase.resolution:<4} "
                f"alpha {alpha:.2f}  d_loss {stats['d_loss']:8.4f}  g_loss {stats['g_loss']:8.4f}  {speed} img/s  ETA {eta}")
        if self.tty:
            print("\r" + line, end="", file=sys.stderr, flush=True)
        elif int(10 * fraction) > self.printed_tenths:
            self.printed_tenths = int(10 * fraction)
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.enabled and self.tty:
            print(file=sys.stderr, flush=True)


def _alpha_at_end(phase: Phase, images_seen: int) -> float:
    """Alpha of `phase` after `images_seen` images (1 in stable phases)."""
    if not phase.fade:
        return 1.0
    return min(1.0, (images_seen / 1000.0 - phase.start_kimg) / (phase.end_kimg - phase.start_kimg))


def _next_multiple(images_seen: int, kimg: float) -> int:
    step = max(1, int(round(kimg * 1000)))
    return (int(images_seen) // step + 1) * step


def _append_line(path: str, line: str) -> None:
    with open(path, "a") as f:
        f.write(line + "\n")


def _write_text(path: str, text: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)

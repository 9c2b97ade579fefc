"""Train a progressive GAN: flags -> config -> strategy -> Trainer.

    python -m progan_tf.train                                 # the demo: emoji, 4x4 -> 32x32
    python -m progan_tf.train --config=configs/demo_64.py     # the 64x64 demo
    python -m progan_tf.train --data_dir=datasets/photos --config=configs/lsun_256.py

Running the same command on an existing run directory resumes it exactly. Ctrl-C, SIGTERM or
SIGHUP saves a checkpoint where the run is and exits with 128 + the signal's number (130, 143,
129).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from progan_tf import cli, console

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo_data", "emoji32")

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config",
    os.path.join(ROOT, "configs", "demo_32.py"),
    "Config file (configs/*.py; FILE:ARG passes ARG to its get_config). A config file is Python "
    "code that runs: use "
    "only files you trust. --config.KEY=VALUE overrides take literal values only.",
)
flags.DEFINE_string(
    "data_dir",
    None,
    "Dataset directory (tools/dataset_tool.py). Default: the bundled demo emoji (32x32).",
)
flags.DEFINE_string(
    "run_dir",
    None,
    "Run directory; an existing one is resumed. Default: runs/<dataset>-<resolution>.",
)
flags.DEFINE_integer("resolution", None, "Final resolution (default: the dataset's).")
flags.DEFINE_float("total_kimg", None, "Length of training in thousands of real images.")
flags.DEFINE_float("checkpoint_kimg", None, "Checkpoint every this many kimg.")
flags.DEFINE_float("snapshot_kimg", None, "Sample grid every this many kimg.")
flags.DEFINE_enum(
    "strategy",
    None,
    ["auto", "mirrored", "one_device", "multi_worker", "tpu"],
    "tf.distribute strategy.",
)
flags.DEFINE_string("tpu", None, "TPU name or grpc:// address for --strategy=tpu.")
flags.DEFINE_bool(
    "mixed_precision", None, "float16 activations with dynamic loss scaling (bfloat16 on TPUs)."
)
flags.DEFINE_bool("xla", None, "XLA-compile the loss and gradient functions.")
flags.DEFINE_integer(
    "shuffle_mb",
    None,
    "MB of records each input pipeline shuffles at a time (default 1024): at each resolution "
    "as many images as fit, as the official reader sizes its buffer. "
    "--config.shuffle_buffer=N shuffles N records at every resolution instead.",
    lower_bound=1,
)
flags.DEFINE_integer(
    "cpu_replicas",
    0,
    "Split the CPU into N logical devices and mirror over them: rehearse an N-GPU run's batches, "
    "learning rates and replica logic on a machine without GPUs (not a speed-up).",
    lower_bound=0,
)
flags.DEFINE_bool(
    "dry_run",
    False,
    "Print the plan (devices, strategy, and per resolution the phases, global and per-replica "
    "batch, learning rate and estimated memory per replica) and exit without training.",
)
flags.DEFINE_list(
    "accept_changes",
    [],
    "Resume although these config keys differ from the run's config.json "
    "(e.g. lod_training_kimg); other differences in the keys that shape the networks, schedule, "
    "input stream or step are refused (the optimizer never changes). config.json: resume a run "
    "whose config.json is missing with this command's settings.",
)
cli.define_verbose_flag()
flags.declare_key_flag("verbose")  # listed in --help
MULTI_GPU = ("2gpu", "4gpu", "8gpu")


def resolve_config(config, argv_flags) -> None:
    """Applies the plain flags on top of the config (flags win)."""
    for key in (
        "data_dir",
        "run_dir",
        "resolution",
        "total_kimg",
        "checkpoint_kimg",
        "snapshot_kimg",
        "strategy",
        "tpu",
        "mixed_precision",
        "xla",
        "shuffle_mb",
    ):
        value = getattr(argv_flags, key)
        if value is not None:
            config[key] = value
    if not config.data_dir:
        config.data_dir = DEMO_DATA
    # config.json names the dataset wherever train runs
    config.data_dir = os.path.abspath(config.data_dir)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    cli.quiet_tensorflow(FLAGS.verbose)
    logging.set_verbosity(logging.INFO if FLAGS.verbose else logging.ERROR)
    config = FLAGS.config
    resolve_config(config, FLAGS)

    import tensorflow as tf  # noqa: PLC0415 - TensorFlow after the log level

    from progan_tf import config as config_lib, data, plan  # noqa: PLC0415
    from progan_tf.checkpoints import CheckpointWriteError, check_resume_compatible  # noqa: PLC0415
    from progan_tf.run_writer import RunDirLockedError  # noqa: PLC0415
    from progan_tf.stopping import RunInterrupted  # noqa: PLC0415
    from progan_tf.strategies import make_strategy, on_gpu  # noqa: PLC0415
    from progan_tf.trainer import Trainer, TrainingError, run_summary  # noqa: PLC0415

    if config.deterministic:
        tf.config.experimental.enable_op_determinism()

    trainer = run_dir = None
    try:
        config_lib.check_numbers(config)  # inf / nan before anything is computed from them
        dataset = data.load_info(config.data_dir)
        resolution = config.resolution or dataset.resolution
        config.resolution = resolution
        # conditional: as the data
        config_lib.resolve_labels(config, dataset.num_labels, dataset.path)
        run_dir = config.run_dir or os.path.join("runs", f"{dataset.name}-{resolution}")
        if "://" in run_dir:
            raise ValueError(
                f"--run_dir={run_dir}: run directories must be on a local or mounted file system "
                "(the lock, logs and durable writes use POSIX calls); mount the bucket (e.g. "
                "gcsfuse) "
                "or train locally and copy the run"
            )
        config.run_dir = run_dir
        named_preset = config.minibatch_preset
        strategy = make_strategy(
            config.strategy, config.tpu, FLAGS.cpu_replicas, config.multi_worker_start_timeout
        )
        replicas = strategy.num_replicas_in_sync
        # "auto" settled here, as config.json records it: TPUs compute in bfloat16, GPUs in float16
        tpu = isinstance(strategy, tf.distribute.TPUStrategy)
        config.mixed_precision_dtype = config_lib.precision_dtype(config, tpu=tpu)
        config_lib.resolve_preset(config, replicas)  # "auto": the release's for this count
        check_resume_compatible(run_dir, config.to_dict(), tuple(FLAGS.accept_changes))
        schedule = config_lib.schedule(config, resolution=resolution, num_replicas=replicas)
        config_lib.validate(config, schedule)
        warnings = config_lib.preset_warnings(config, schedule)
        warnings += config_lib.group_warnings(config, schedule)
        if not on_gpu(strategy) and not FLAGS.cpu_replicas:
            wanted = [
                why
                for why, asked in (
                    ("--strategy=mirrored", config.strategy == "mirrored"),
                    (f"--config.minibatch_preset={named_preset}", named_preset in MULTI_GPU),
                    ("a GPU build of TensorFlow", tf.test.is_built_with_cuda()),
                )
                if asked
            ]
            if wanted:
                warnings.append(
                    f"no GPU is visible ({', '.join(wanted)}): training runs on the CPU. "
                    "TensorFlow's own message on why (e.g. CUDA libraries not found) shows with "
                    "--verbose"
                )
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        arch = config_lib.architecture(
            config,
            resolution=resolution,
            channels=dataset.channels,
            num_labels=dataset.num_labels,
        )
        options = config_lib.trainer_options(config)
        if FLAGS.dry_run:
            print(
                "\n".join(
                    [
                        f"{run_dir}: {run_summary(strategy, options.step)}",
                        f"batches: minibatch_preset {config.minibatch_preset or '(none)'}"
                        + (" (auto)" if named_preset == "auto" else "")
                        + f", global batches split over {replicas} replica(s)",
                        *plan.plan_table(
                            arch, schedule, options.total_images, options.step.mixed_precision
                        ),
                        "dry run: nothing trained or written",
                    ]
                )
            )
            return
        trainer = Trainer(  # from here on an error is also written to the run's log.txt
            arch=arch,
            schedule=schedule,
            options=options,
            dataset=dataset,
            run_dir=run_dir,
            strategy=strategy,
            config=config.to_dict(),
        )
        trainer.train()
    except RunInterrupted as stopped:  # Ctrl-C, SIGTERM, SIGHUP: checkpointed, and logged
        if hasattr(signal, "SIGHUP"):
            # Exiting: Python resets its own handlers at exit, so a late hang-up (the shell's,
            # after the terminal's) would turn the saved stop into a kill; ignored from here.
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
        sys.exit(stopped.exit_code)
    except KeyboardInterrupt:  # a second Ctrl-C: at once
        fail(trainer, "interrupted; the same command resumes from the last checkpoint", 130)
    except (
        ValueError,
        TrainingError,
        RunDirLockedError,
        CheckpointWriteError,
    ) as error:  # DatasetError: ValueError
        fail(trainer, str(error))
    except OSError as error:  # the run directory: read-only, full, gone
        fail(trainer, f"cannot write {error.filename or run_dir}: {error.strerror or error}")
    console.say(
        f"done: {run_dir} (samples in {os.path.join(run_dir, 'samples')})", stream=sys.stdout
    )


def fail(trainer, message: str, code: int = 1) -> None:
    """`error: message` on stderr (if it is still there) and, once a Trainer holds the run
    directory, in its log.txt too; then exits with `code`."""
    console.say(f"error: {message}")
    if trainer is not None:
        with contextlib.suppress(OSError):  # the disk that failed may be the log's
            trainer.directory.log(f"error: {message}", echo=False)
    sys.exit(code)


if __name__ == "__main__":
    app.run(main)

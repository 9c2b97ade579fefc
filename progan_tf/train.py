"""Train a progressive GAN: flags -> config -> strategy -> Trainer.

    python -m progan_tf.train                       # the demo: emoji, 4x4 -> 32x32 on a CPU
    python -m progan_tf.train --data_dir=datasets/celebahq --config=configs/celebahq_1024.py
    python -m progan_tf.train --config=configs/demo_32.py --config.total_kimg=50 --run_dir=runs/x

Running the same command on an existing run directory resumes it exactly.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo_data", "emoji32")

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", os.path.join(ROOT, "configs", "demo_32.py"), "Config file (configs/*.py); --config.KEY=VALUE overrides."
)
flags.DEFINE_string("data_dir", None, "Dataset directory (tools/dataset_tool.py). Default: the bundled demo emoji.")
flags.DEFINE_string("run_dir", None, "Run directory; an existing one is resumed. Default: runs/<dataset>-<resolution>.")
flags.DEFINE_integer("resolution", None, "Final resolution (default: the dataset's).")
flags.DEFINE_float("total_kimg", None, "Length of training in thousands of real images.")
flags.DEFINE_float("checkpoint_kimg", None, "Checkpoint every this many kimg.")
flags.DEFINE_float("snapshot_kimg", None, "Sample grid every this many kimg.")
flags.DEFINE_enum("strategy", None, ["auto", "mirrored", "one_device", "multi_worker", "tpu"], "tf.distribute strategy.")
flags.DEFINE_string("tpu", None, "TPU name or grpc:// address for --strategy=tpu.")
flags.DEFINE_bool("mixed_precision", None, "float16 activations with dynamic loss scaling (bfloat16 on TPUs).")
flags.DEFINE_bool("xla", None, "XLA-compile the loss and gradient functions.")

# Config keys that decide the shapes of the networks: a resumed run must keep them.
ARCHITECTURE_KEYS = ("resolution", "latent_size", "fmap_base", "fmap_max", "mbstd_group_size", "conditional")


def make_strategy(name: str, tpu: str = ""):
    """The tf.distribute strategy for `--strategy` (auto: all GPUs mirrored, else one device)."""
    import tensorflow as tf  # noqa: PLC0415

    # Multi-worker and TPU strategies must exist before anything initialises the runtime
    # (listing logical devices does), or collective ops cannot be configured.
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy=multi_worker needs the TF_CONFIG environment variable (see README)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        try:  # an empty --tpu: the resolver looks at $TPU_NAME (and GKE's variable)
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        except Exception as error:  # noqa: BLE001 - URLError, ValueError, ...: all mean "not found"
            raise ValueError(f"--strategy=tpu --tpu={tpu!r}: cannot find the TPU ({error}); pass --tpu=NAME "
                             "(a Cloud TPU's name, grpc://HOST:PORT, or local on a TPU VM)") from None
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "one_device"
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    if name == "mirrored":
        return mirrored_strategy()
    raise ValueError(f"--strategy={name!r}")


def mirrored_strategy(devices: list[str] | None = None):
    """MirroredStrategy with NCCL (GPUs) or reduction to one device (CPUs), not the default
    collective ops: their call-time instance keys collide once a second per-phase tf.function
    runs ("Shape mismatch in the collective instance", tensorflow#62790)."""
    import tensorflow as tf  # noqa: PLC0415

    devices = devices or [d.name for d in tf.config.list_logical_devices("GPU")] or ["/cpu:0"]
    gpu = all("GPU" in d.upper() for d in devices)
    ops = tf.distribute.NcclAllReduce() if gpu else tf.distribute.ReductionToOneDevice()
    return tf.distribute.MirroredStrategy(devices, cross_device_ops=ops)


def resolve_config(config, argv_flags) -> None:
    """Applies the plain flags on top of the config (flags win)."""
    for key in ("data_dir", "run_dir", "resolution", "total_kimg", "checkpoint_kimg", "snapshot_kimg",
                "strategy", "tpu", "mixed_precision", "xla"):
        value = getattr(argv_flags, key)
        if value is not None:
            config[key] = value
    if not config.data_dir:
        config.data_dir = DEMO_DATA


def _precision(config: dict) -> str:
    """float32, mixed_float16 or mixed_bfloat16: decides the pixel-norm epsilon and whether the
    checkpointed optimizers carry a loss scale, so a resumed run must keep it."""
    return f"mixed_{config.get('mixed_precision_dtype', 'float16')}" if config.get("mixed_precision") else "float32"


def check_resume_compatible(run_dir: str, config: dict) -> None:
    """`config` (with mixed_precision_dtype resolved) against the run's config.json, if any."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        previous = json.load(f)
    changed = [(k, previous[k], config[k]) for k in ARCHITECTURE_KEYS if k in previous and previous[k] != config[k]]
    if _precision(previous) != _precision(config):
        changed.append(("--mixed_precision / mixed_precision_dtype", _precision(previous), _precision(config)))
    if changed:
        diffs = ", ".join(f"{k}: {old} -> {new}" for k, old, new in changed)
        raise ValueError(f"{run_dir} was trained with other settings ({diffs}); "
                         "use the same settings to resume it, or a new --run_dir")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.set_verbosity(logging.WARNING)  # TensorFlow's INFO lines (checkpoint sharding) are noise here
    config = FLAGS.config
    resolve_config(config, FLAGS)

    import tensorflow as tf  # noqa: PLC0415 - TensorFlow after flags

    from progan_tf import config as config_lib, data  # noqa: PLC0415
    from progan_tf.trainer import Trainer, TrainingError  # noqa: PLC0415

    try:
        dataset = data.load_info(config.data_dir)
        resolution = config.resolution or dataset.resolution
        config.resolution = resolution
        if config.conditional and not dataset.num_labels:
            raise ValueError(f"--config.conditional=True but {dataset.path} has no labels")
        run_dir = config.run_dir or os.path.join("runs", f"{dataset.name}-{resolution}")
        config.run_dir = run_dir
        strategy = make_strategy(config.strategy, config.tpu)
        if config.mixed_precision_dtype == "auto":  # TPUs compute in bfloat16, GPUs in float16
            tpu = isinstance(strategy, tf.distribute.TPUStrategy)
            config.mixed_precision_dtype = "bfloat16" if tpu else "float16"
        check_resume_compatible(run_dir, config.to_dict())
        trainer = Trainer(
            arch=config_lib.architecture(config, resolution=resolution, channels=dataset.channels,
                                         num_labels=dataset.num_labels),
            schedule=config_lib.schedule(config, resolution=resolution, num_replicas=strategy.num_replicas_in_sync),
            options=config_lib.trainer_options(config),
            dataset=dataset,
            run_dir=run_dir,
            strategy=strategy,
            config=config.to_dict(),
        )
        trainer.train()
    except (ValueError, TrainingError) as error:  # DatasetError is a ValueError
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    print(f"done: {run_dir} (samples in {os.path.join(run_dir, 'samples')})", file=sys.stderr)


if __name__ == "__main__":
    app.run(main)

"""tf.distribute strategies by name: one device, mirrored GPUs/CPUs, multi-worker, TPU.

The training step is the same code under every strategy; only its construction differs.
"""

from __future__ import annotations

import os

import tensorflow as tf


def make_strategy(name: str, tpu: str = ""):
    """The tf.distribute strategy for `--strategy` (auto: all GPUs mirrored, else one device)."""
    # Multi-worker and TPU strategies must exist before anything initialises the runtime
    # (listing logical devices does), or collective ops cannot be configured.
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "--strategy=multi_worker needs the TF_CONFIG environment variable (see README)"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        try:  # an empty --tpu: the resolver looks at $TPU_NAME (and GKE's variable)
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        except Exception as error:  # noqa: BLE001 - URLError, ValueError, ...: all mean "not found"
            raise ValueError(
                f"--strategy=tpu --tpu={tpu!r}: cannot find the TPU ({error}); pass --tpu=NAME "
                "(a Cloud TPU's name, grpc://HOST:PORT, or local on a TPU VM)"
            ) from None
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
    devices = devices or [d.name for d in tf.config.list_logical_devices("GPU")] or ["/cpu:0"]
    gpu = all("GPU" in d.upper() for d in devices)
    ops = tf.distribute.NcclAllReduce() if gpu else tf.distribute.ReductionToOneDevice()
    return tf.distribute.MirroredStrategy(devices, cross_device_ops=ops)

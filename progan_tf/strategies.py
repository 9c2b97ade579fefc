"""tf.distribute strategies by name: one device, mirrored GPUs/CPUs, multi-worker, TPU.

The training step is the same code under every strategy; only its construction differs.
"""

from __future__ import annotations

import os

import tensorflow as tf


def make_strategy(name: str, tpu: str = "", cpu_replicas: int = 0, start_timeout_s: float = 600.0):
    """The tf.distribute strategy for `--strategy` (auto: all GPUs mirrored, else one device).
    `cpu_replicas` > 1 splits the CPU into that many logical devices and mirrors over them (a
    rehearsal of a multi-GPU run's batches and replica logic, not a speed-up); it must come
    before anything initialises TensorFlow's devices. `start_timeout_s`: how long a worker of a
    multi-worker cluster waits for the others to join before it stops with an error."""
    if cpu_replicas > 1:
        if name not in ("auto", "mirrored"):
            raise ValueError(
                f"--cpu_replicas={cpu_replicas} mirrors over CPU devices: use it with "
                f"--strategy=auto or mirrored, not {name}"
            )
        split_cpu(cpu_replicas)
        return mirrored_strategy([d.name for d in tf.config.list_logical_devices("CPU")])
    # Multi-worker and TPU strategies must exist before anything initialises the runtime
    # (listing logical devices does), or collective ops cannot be configured.
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "--strategy=multi_worker needs the TF_CONFIG environment variable (see README)"
            )
        return multi_worker_strategy(start_timeout_s)
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


def multi_worker_strategy(start_timeout_s: float) -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy over TF_CONFIG's cluster, whose start waits at most
    `start_timeout_s` for every task to join: a task that stopped before it made its strategy
    (a bad flag, a missing dataset on its machine) must not leave the others waiting for good.
    ValueError if the cluster did not come together in time."""
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    _configure_coordination(resolver, start_timeout_s)
    try:
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    except (tf.errors.DeadlineExceededError, tf.errors.UnavailableError) as error:
        raise ValueError(
            f"--strategy=multi_worker: the cluster in TF_CONFIG did not come together within "
            f"{start_timeout_s:g} s ({str(error).strip().splitlines()[0][:120]}); every task must "
            "run train (one that stopped early says why in its own output); "
            "--config.multi_worker_start_timeout sets the wait"
        ) from None


def _configure_coordination(resolver, start_timeout_s: float) -> None:
    """TensorFlow's own coordination-service setup for MultiWorkerMirroredStrategy
    (collective_all_reduce_strategy.py), with a registration deadline: the strategy keeps a
    service configured before it. Internal modules: if they move, the start is unbounded, as
    TensorFlow's default."""
    try:
        from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2  # noqa: PLC0415
        from tensorflow.python.distribute import multi_worker_util  # noqa: PLC0415
        from tensorflow.python.eager import context  # noqa: PLC0415
    except ImportError:
        return
    spec = resolver.cluster_spec()
    if resolver.task_type not in ("chief", "worker") or context.context().coordination_service:
        return
    context.context().configure_coordination_service(
        service_type="standalone",
        service_leader=multi_worker_util.coordination_leader(spec),
        coordinated_jobs=[
            coordination_config_pb2.CoordinatedJob(name=job, num_tasks=spec.num_tasks(job))
            for job in ("chief", "worker")
            if job in spec.jobs
        ],
        cluster_register_timeout_in_ms=int(start_timeout_s * 1000),
    )


def split_cpu(count: int) -> None:
    """`count` logical CPU devices (before TensorFlow initialises its devices)."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )
    except RuntimeError:  # already initialised: keep what there is, if it is enough
        if len(tf.config.list_logical_devices("CPU")) < count:
            raise


def device_summary(strategy) -> str:
    """What a run trains on, for the first log line: device kind, count and model, strategy,
    replicas (and workers)."""
    devices = list(strategy.extended.worker_devices)
    kinds = {tf.DeviceSpec.from_string(d).device_type or "CPU" for d in devices}
    kind = "/".join(sorted(kinds))
    what = f"{len(devices)} {kind}" + ("s" if len(devices) > 1 else "")
    if kind == "GPU":
        names = sorted(
            {
                tf.config.experimental.get_device_details(g).get("device_name", "GPU")
                for g in tf.config.list_physical_devices("GPU")
            }
        )
        if names:
            what += f" ({', '.join(names)})"
    elif kind == "CPU" and len(devices) > 1:
        what += " (logical devices of one CPU: a rehearsal, not a speed-up)"
    workers = ""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is not None and resolver.cluster_spec().as_dict():
        count = sum(len(v) for v in resolver.cluster_spec().as_dict().values())
        workers = f", {count} workers"
    replicas = strategy.num_replicas_in_sync
    return (
        f"{what}, {type(strategy).__name__}, {replicas} replica{'s' if replicas > 1 else ''}"
        f"{workers}"
    )


def on_gpu(strategy) -> bool:
    return any(
        tf.DeviceSpec.from_string(d).device_type in ("GPU", "TPU")
        for d in strategy.extended.worker_devices
    )


def mirrored_strategy(devices: list[str] | None = None):
    """MirroredStrategy with NCCL (GPUs) or reduction to one device (CPUs), not the default
    collective ops: their call-time instance keys collide once a second per-phase tf.function
    runs ("Shape mismatch in the collective instance", tensorflow#62790)."""
    devices = devices or [d.name for d in tf.config.list_logical_devices("GPU")] or ["/cpu:0"]
    gpu = all("GPU" in d.upper() for d in devices)
    ops = tf.distribute.NcclAllReduce() if gpu else tf.distribute.ReductionToOneDevice()
    return tf.distribute.MirroredStrategy(devices, cross_device_ops=ops)

"""Test session setup: quiet TF logs, two logical CPU devices for the multi-replica tests."""

import os
import re

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from progan_tf import cli  # noqa: E402

# The commands' settings (oneDNN on), and TensorFlow imported without its import notices: with
# tests spread over processes (pytest-xdist) the main process's output is not captured.
cli.quiet_tensorflow()

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository

# Must run before TensorFlow initialises its devices, i.e. before any op.
_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)


# What TensorFlow's own logging looks like on stderr: C++ lines (glog/absl prefixes, source
# paths, the CPU and oneDNN notices) and Python-side "WARNING:tensorflow" lines.
TENSORFLOW_LOG = re.compile(
    r"^[IWEF]\d{4} \d\d:\d\d:\d\d|tensorflow/core/|external/local_xla|cpu_feature_guard|oneDNN "
    r"custom operations|"
    r"All log messages before absl|WARNING:tensorflow|Ignoring Assert operator|This TensorFlow "
    r"binary is optimized",
    re.MULTILINE,
)


def assert_no_tensorflow_log(stderr: str) -> None:
    match = TENSORFLOW_LOG.search(stderr)
    assert match is None, (
        f"TensorFlow log line on stderr: {stderr[max(0, match.start() - 200) : match.end() + 300]}"
    )


def cli_env() -> dict:
    """The environment a user's command starts with: without this session's log settings."""
    return {
        k: v
        for k, v in os.environ.items()
        if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")
    }


def noise_dataset(path, count: int, resolution: int, seed: int = 0, **write):
    """A dataset of `count` uniform-noise RGB images at `resolution` (every level), written to
    `path` and loaded; `write` goes to `dataset_io.write_arrays` (labels, shards)."""
    from progan_tf import data, dataset_io  # noqa: PLC0415

    images = np.random.default_rng(seed).integers(
        0, 256, (count, resolution, resolution, 3), dtype=np.uint8
    )
    dataset_io.write_arrays(path, images, write.pop("labels", None), name="noise", **write)
    return data.load_info(path)


def tiny_schedule(stable_kimg=0.032, fade_kimg=0.032, batch=8, num_replicas=1):
    """4x4 -> 8x8 in phases of a few dozen images at one global batch."""
    from progan_tf.schedule import Schedule  # noqa: PLC0415

    return Schedule(
        final_resolution=8,
        stable_kimg=stable_kimg,
        fade_kimg=fade_kimg,
        minibatch={},
        minibatch_default=batch,
        num_replicas=num_replicas,
    )


def tiny_arch(**changes):
    """The tests' 8x8 networks: 8 latents, 8 feature maps (a few thousand weights)."""
    from progan_tf.options import Architecture  # noqa: PLC0415

    return Architecture(
        **{**dict(resolution=8, latent_size=8, fmap_base=32, fmap_max=8), **changes}
    )


def tiny_trainer(
    dataset,
    run_dir,
    total_images: int,
    *,
    arch=None,
    schedule=None,
    strategy=None,
    step=None,
    config=None,
    **options,
):
    """A Trainer of the tiny networks on one CPU device (unless `strategy`), a log tick every
    32 images, one checkpoint and sample grid at the end (unless `options` say otherwise)."""
    from progan_tf.options import StepOptions, TrainerOptions  # noqa: PLC0415
    from progan_tf.trainer import Trainer  # noqa: PLC0415

    base = dict(
        total_images=total_images,
        tick_images=32,
        snapshot_images=total_images,
        checkpoint_images=total_images,
        steps_per_call=2,
        grid_size=4,
        shuffle_buffer=32,
        step=step or StepOptions(),
    )
    return Trainer(
        arch=arch or tiny_arch(),
        schedule=schedule or tiny_schedule(),
        options=TrainerOptions(**{**base, **options}),
        dataset=dataset,
        run_dir=str(run_dir),
        strategy=strategy or tf.distribute.OneDeviceStrategy("/cpu:0"),
        config=config or {"test": True},
    )


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


# Module fixtures that train a run or build a dataset: the tests that use them run in one xdist
# worker (pyproject.toml: --dist loadgroup), so each is made once, not once in every worker.
SHARED_MODULE_FIXTURES = ("fade_run", "trained", "conditional", "messy_dataset")


def pytest_collection_modifyitems(items):
    for item in items:
        if any(name in item.fixturenames for name in SHARED_MODULE_FIXTURES):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))

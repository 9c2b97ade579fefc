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

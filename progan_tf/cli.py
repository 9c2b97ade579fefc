"""What every command-line entry point shares: TensorFlow's settings, quiet unless --verbose.

TensorFlow reads its environment once, when it is first imported, so `quiet_tensorflow` must
run before anything imports it (this module imports nothing heavy). It always sets
TF_ENABLE_ONEDNN_OPTS=1 (oneDNN's kernels) unless the user set it: the demo trains faster with
it on a CPU without AVX-512, with the same images (benchmarks/results/performance_log.md,
"Before / after: oneDNN on"); on AVX-512 CPUs TensorFlow turns oneDNN on by itself.

Quiet (the default) also means TF_CPP_MIN_LOG_LEVEL=3, TensorFlow's Python logger at ERROR,
and TensorFlow imported with its standard error captured: with oneDNN on, the import prints a
notice before any log level applies. What else the import prints is passed on.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile

from absl import flags, logging as absl_logging  # TF's Python side logs through absl

# What importing TensorFlow prints whatever the log level: oneDNN's notice, and absl's remark
# that messages before its initialisation go to stderr.
_IMPORT_NOTICES = re.compile(
    r"oneDNN custom operations are on|All log messages before absl::InitializeLog"
)


_DEPRECATED: dict[str, str] = {}  # old flag name -> new flag name


def define_deprecated_alias(old: str, new: str) -> None:
    """`--old` still works for one release, with a warning, and sets `--new`."""
    flags.DEFINE_string(old, None, f"Deprecated: use --{new}.")
    _DEPRECATED[old] = new


def resolve_deprecated_aliases(values: flags.FlagValues) -> None:
    """Moves each deprecated flag the user gave onto its new name in `values` (a command's
    parsed flags), warning on stderr."""
    for old, new in _DEPRECATED.items():
        given = getattr(values, old, None)
        if given is None:
            continue
        print(f"warning: --{old} is deprecated and will be removed; use --{new}", file=sys.stderr)
        setattr(
            values,
            new,
            type(getattr(values, new))(given) if getattr(values, new) is not None else given,
        )


def define_verbose_flag() -> None:
    flags.DEFINE_bool("verbose", False, "Show TensorFlow's own log lines (C++ and Python).")


def tune_tensorflow() -> None:
    """oneDNN on, unless the user chose (module docstring)."""
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def quiet_tensorflow(verbose: bool = False) -> None:
    """`tune_tensorflow()`, then TensorFlow's log level unless `verbose` or set by the user."""
    tune_tensorflow()
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    absl_logging.set_verbosity(absl_logging.ERROR)
    _import_tensorflow_without_notices()


def _import_tensorflow_without_notices() -> None:
    """Imports TensorFlow with file descriptor 2 captured, then writes back to stderr every
    captured line except `_IMPORT_NOTICES` (so a real error at import is still seen)."""
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow  # noqa: F401, PLC0415
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().decode(errors="replace").splitlines()
            kept = [line for line in lines if not _IMPORT_NOTICES.search(line)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")

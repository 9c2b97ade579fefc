"""What every command-line entry point shares: quiet TensorFlow unless --verbose.

TensorFlow reads its C++ log level once, when it is first imported, so `quiet_tensorflow`
must run before anything imports it (this module imports nothing heavy). Quiet means
TF_CPP_MIN_LOG_LEVEL=3 and TensorFlow's Python logger at ERROR. On AVX-512 CPUs TensorFlow
turns oneDNN on by itself and prints a notice that no log level hides; only an explicit
TF_ENABLE_ONEDNN_OPTS silences it, so quiet mode pins it to 0 (the stock kernels; measured in
docs/performance.md). A value the user set is never changed.
"""

from __future__ import annotations

import os

from absl import flags


_DEPRECATED: dict[str, str] = {}  # old flag name -> new flag name


def define_deprecated_alias(old: str, new: str) -> None:
    """`--old` still works for one release, with a warning, and sets `--new`."""
    flags.DEFINE_string(old, None, f"Deprecated: use --{new}.")
    _DEPRECATED[old] = new


def resolve_deprecated_aliases(values: flags.FlagValues) -> None:
    """Moves each deprecated flag the user gave onto its new name in `values` (a command's
    parsed flags), warning on stderr."""
    import sys  # noqa: PLC0415

    for old, new in _DEPRECATED.items():
        given = getattr(values, old, None)
        if given is None:
            continue
        print(f"warning: --{old} is deprecated and will be removed; use --{new}", file=sys.stderr)
        setattr(values, new, type(getattr(values, new))(given) if getattr(values, new) is not None else given)


def define_verbose_flag() -> None:
    flags.DEFINE_bool("verbose", False, "Show TensorFlow's own log lines (C++ and Python).")


def quiet_tensorflow(verbose: bool = False) -> None:
    """Sets TensorFlow's log level (and oneDNN's switch) unless `verbose` or set by the user."""
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import logging  # noqa: PLC0415

    from absl import logging as absl_logging  # noqa: PLC0415 - TF's Python side logs through absl

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    absl_logging.set_verbosity(absl_logging.ERROR)

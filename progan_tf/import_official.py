"""Import an official ProGAN release pickle as a progan_tf run directory.

    python -m progan_tf.import_official --pkl=karras2018iclr-celebahq-1024x1024.pkl \\
        --run_dir=runs/celebahq-official

The pickle is read without executing anything in it (progan_tf.release_pickle). The run directory
gets the EMA generator from `Gs` and the generator and discriminator from `G` and `D`, at the
final resolution's stable phase, so `generate`, `evaluate` and `export` work on it unchanged
and `train` can fine-tune it (with fresh optimizers; give the same network settings).
"""

from __future__ import annotations

import sys

from absl import app, flags

from progan_tf import cli


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    cli.quiet_tensorflow(f.verbose)
    # TensorFlow after its log level
    from progan_tf.release_pickle import OfficialImportError, import_pickle  # noqa: PLC0415

    try:
        path = import_pickle(f.pkl, f.run_dir)
    except (ValueError, OfficialImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except OSError as error:  # an unreadable --pkl, an unwritable --run_dir
        print(f"error: {error.filename or f.run_dir}: {error.strerror or error}", file=sys.stderr)
        sys.exit(1)
    print(f"imported {f.pkl} into {f.run_dir} ({path})")


def _define_flags() -> None:
    cli.define_verbose_flag()
    flags.declare_key_flag("verbose")  # listed in --help
    flags.DEFINE_string(
        "pkl", None, "The release's network pickle (karras2018iclr-*.pkl).", required=True
    )
    flags.DEFINE_string("run_dir", None, "New run directory to create.", required=True)


if __name__ == "__main__":
    _define_flags()
    app.run(main)

"""What a run prints to its terminal. Losing the terminal's reader (an ssh hang-up, `train ... |
head`, Ctrl-C of `train ... | tee log`, which ends `tee` too) must never end a run or cost its
checkpoint: a write that fails sends that stream to /dev/null from then on and the run goes on.
log.txt keeps every line either way."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TextIO


def say(text: str, end: str = "\n", stream: TextIO | None = None) -> None:
    """Writes `text` to `stream` (stderr) and flushes; a closed pipe or a hung-up terminal
    silences the stream instead of raising."""
    stream = stream or sys.stderr
    try:
        stream.write(text + end)
        stream.flush()
    except (OSError, ValueError):  # EPIPE, EIO, a closed file object
        silence(stream)


def silence(stream: TextIO) -> None:
    """Points `stream`'s file descriptor at /dev/null (what is still buffered goes there too)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        fd = stream.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
        with contextlib.suppress(OSError, ValueError):
            stream.flush()  # the buffered rest, into /dev/null


def is_terminal(stream: TextIO) -> bool:
    with contextlib.suppress(OSError, ValueError, AttributeError):
        return stream.isatty()
    return False

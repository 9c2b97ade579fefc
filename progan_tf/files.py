"""Writing files so that a crash never leaves half of one: the package's one atomic-write helper.

`atomic_output(path)` yields a temporary name beside `path` for the caller to write (a file or a
directory), then renames it into place; on any error the temporary is removed and `path` keeps
its previous content. A rename within one directory is atomic on POSIX file systems.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, directory: bool = False) -> Iterator[str]:
    """Yields a temporary path to write; moves it to `path` if the block succeeds. A directory
    target must not exist yet (directories cannot be replaced atomically)."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(parent, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    try:
        yield tmp
        if directory:
            os.rename(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.lexists(tmp):
            os.remove(tmp)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Writes `text` to `path` atomically."""
    with atomic_output(path) as tmp, open(tmp, "w") as f:
        f.write(text)


def append_line(path: str | os.PathLike, line: str) -> None:
    """Appends one line (logs, stats.jsonl: a torn last line is the worst a crash can do)."""
    with open(path, "a") as f:
        f.write(line + "\n")

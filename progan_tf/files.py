"""Writing files so that neither a crash nor a power loss leaves half of one.

`atomic_output(path)` yields a temporary name beside `path` for the caller to write (a file or a
directory); when the block succeeds the temporary is synced to disk, renamed into place, and the
directory holding it synced, so that after a power loss `path` holds either its previous content
or the new one, whole. On any error the temporary is removed and `path` keeps its previous
content. `append_line` appends a line in one O_APPEND write (whole lines even with two writers)
and syncs it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
from collections.abc import Iterator


def fsync_path(path: str | os.PathLike) -> None:
    """Flushes a file's data, or a directory's entries, from the OS cache to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: str | os.PathLike) -> None:
    """Syncs a file, or every file and directory below a directory (the directory last)."""
    if os.path.isdir(path):
        for root, _, names in os.walk(path, topdown=False):
            for name in names:
                fsync_path(os.path.join(root, name))
            fsync_path(root)
    else:
        fsync_path(path)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, directory: bool = False) -> Iterator[str]:
    """Yields a temporary path to write; syncs it and moves it to `path` if the block succeeds.
    A directory target must not exist yet (directories cannot be replaced atomically)."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(parent, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    remove_stale_temporaries(parent)
    try:
        yield tmp
        fsync_tree(tmp)
        if directory:
            os.rename(tmp, path)
        else:
            os.replace(tmp, path)
        fsync_path(parent)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.lexists(tmp):
            os.remove(tmp)


def pid_is_dead(pid: int) -> bool:
    """Whether no process has this id (so the temporaries it named are nobody's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's live process
        return False
    return False


_TEMPORARY = re.compile(r"^\..+\.tmp-(\d+)$")  # atomic_output's
_tidied: set[str] = set()  # directories already tidied by this process


def remove_stale_temporaries(parent: str) -> None:
    """Removes atomic_output's temporaries in `parent` left by processes that no longer run (a
    kill or power loss mid-write); once per directory and process."""
    if parent in _tidied:
        return
    _tidied.add(parent)
    with contextlib.suppress(OSError):
        for entry in os.listdir(parent):
            match = _TEMPORARY.match(entry)
            if match and pid_is_dead(int(match.group(1))):
                stale = os.path.join(parent, entry)
                if os.path.isdir(stale) and not os.path.islink(stale):
                    shutil.rmtree(stale, ignore_errors=True)
                else:
                    os.remove(stale)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Writes `text` to `path` atomically and durably."""
    with atomic_output(path) as tmp, open(tmp, "w") as f:
        f.write(text)


def append_line(path: str | os.PathLike, line: str) -> None:
    """Appends one line (logs, stats.jsonl, metrics.jsonl) in a single O_APPEND write, then
    syncs it: two processes appending to one file never interleave within a line, and a crash
    can at worst lose the last line, never tear an earlier one. A short write (disk full, a
    file-size limit) is cut off again and raised; a torn last line left by anything else (a
    power loss) is ended before the new line, so no line is ever continued."""
    data = (line + "\n").encode()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # the tail check and the write, one appender at a time
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        try:
            written = os.write(fd, data)
        except OSError as error:
            raise OSError(error.errno, error.strerror, os.fspath(path)) from None
        if written != len(data):
            end = os.lseek(fd, 0, os.SEEK_END)
            with contextlib.suppress(OSError):
                os.ftruncate(fd, end - written)  # no half line left for the next one to continue
            raise OSError(
                errno.ENOSPC,
                f"wrote {written} of {len(data)} bytes (disk full?)",
                os.fspath(path),
            )
        os.fsync(fd)
    finally:
        os.close(fd)

"""The run directory: its layout, the lock that allows one trainer at a time, logs and stats.

    config.json  run.json  log.txt  stats.jsonl  reals.png  samples/fakes<kimg>.png
    checkpoints/  tensorboard/  .lock

Only the chief of a multi-worker run writes here. The lock is an OS-level `flock` on `.lock`,
held while the trainer runs: the kernel releases it when the process ends in any way (kill -9
included), so a stale lock never blocks the next run. The file holds the holder's pid.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sys
import time

from progan_tf import console, files


class RunDirLockedError(RuntimeError):
    """Another trainer holds the run directory."""


def snapshot_name(images_seen: int) -> str:
    """`fakes000096.png` at a whole kimg, `fakes000000_300.png` between: no interval overwrites
    another, and names sort in training order."""
    kimg, rest = divmod(int(images_seen), 1000)
    return f"fakes{kimg:06d}.png" if rest == 0 else f"fakes{kimg:06d}_{rest:03d}.png"


class RunWriter:
    """Paths of one run directory and the writes the trainer makes to it."""

    def __init__(self, path: str, *, writable: bool = True):
        self.path = path
        self.writable = writable  # False on non-chief workers: nothing is written
        self._lock_fd: int | None = None

    def file(self, *parts: str) -> str:
        return os.path.join(self.path, *parts)

    @property
    def checkpoints(self) -> str:
        return self.file("checkpoints")

    def sample_path(self, images_seen: int) -> str:
        return self.file("samples", snapshot_name(images_seen))

    def lock(self) -> None:
        """Takes the directory's lock or raises RunDirLockedError naming the holder's pid."""
        os.makedirs(self.path, exist_ok=True)
        fd = os.open(self.file(".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if error.errno in (errno.EAGAIN, errno.EACCES):
                raise RunDirLockedError(
                    f"{self.path} is in use by another trainer (pid {holder}); wait for it to "
                    "finish, "
                    "stop it, or choose another --run_dir"
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def prepare(self, config: dict | None, run_info: dict) -> None:
        """Creates the layout; writes config.json and run.json (what generate/evaluate/export
        rebuild the networks from) atomically."""
        if not self.writable:
            return
        os.makedirs(self.file("samples"), exist_ok=True)
        if config is not None:
            files.write_text(
                self.file("config.json"), json.dumps(config, indent=2, sort_keys=True) + "\n"
            )
        files.write_text(self.file("run.json"), json.dumps(run_info, indent=2) + "\n")

    def log(self, message: str, echo: bool = True) -> None:
        """A timestamped line in log.txt; `echo` also prints it to stderr, over the progress
        line."""
        if not self.writable:
            return
        files.append_line(self.file("log.txt"), f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}")
        if echo:
            console.say(("\r\033[K" if console.is_terminal(sys.stderr) else "") + message)

    def append_stats(self, record: dict) -> None:
        if self.writable:
            files.append_line(self.file("stats.jsonl"), json.dumps(record))

"""Stopping a run cleanly: Ctrl-C (SIGINT), SIGTERM (a scheduler's preemption, `timeout`,
`kill`) or SIGHUP (the terminal closed) asks the training loop to stop after its current step
call with a checkpoint, so that the same command resumes from where the run stopped, not from
the last `checkpoint_kimg` (docs/reliability.md, "Stopping a run").

The handler only records the signal; the loop acts on it between calls, where saving is safe.
A second Ctrl-C or SIGTERM acts at once, as it would without this module (the handlers that were
there before are put back by the first). Hang-ups never do: a closing terminal can deliver
SIGHUP twice (the kernel's, then the shell's to its jobs), so after the first signal further
SIGHUPs are ignored, also after the stop while the process exits.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading

# SIGTERM: a scheduler's preemption, `kill`, `timeout`; SIGHUP: the terminal closed (an ssh
# session dropped); SIGINT: Ctrl-C. In this order when workers disagree on the name.
SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGINT") if hasattr(signal, name)
)


class RunInterrupted(Exception):
    """The run stopped on a signal after saving a checkpoint (or keeping the last good one)."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number."""
        return 128 + self.signum


class StopRequests:
    """While entered, the SIGNALS are recorded in `received` instead of ending the process.
    A signal the process ignores stays ignored (a shell script's `train &` ignores the Ctrl-C
    meant for the script; `nohup` ignores SIGHUP). Does nothing outside the main thread
    (Python delivers signals only there)."""

    def __init__(self):
        self.received: int | None = None
        self._previous: dict[int, object] = {}
        self._terminals: list[int] = []  # stdout/stderr descriptors that are terminals

    def __enter__(self) -> StopRequests:
        self.received = None
        self._terminals = [fd for fd in (1, 2) if _isatty(fd)]  # a hung-up one no longer says
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        hangup = getattr(signal, "SIGHUP", None)
        if self.received is not None and hangup in self._previous:
            # A stop is ending the process: a late hang-up (the shell's, after the terminal's)
            # must not turn a saved stop into a kill, so SIGHUP stays ignored — by a handler
            # that does nothing, not SIG_IGN, which processes started later would inherit.
            del self._previous[hangup]
        self._restore()

    def _handle(self, signum: int, frame) -> None:
        self.received = signum
        self._restore()  # a second Ctrl-C or SIGTERM: the old behaviour, at once
        hangup = getattr(signal, "SIGHUP", None)
        if hangup is not None and signal.getsignal(hangup) is not signal.SIG_IGN:
            self._previous[hangup] = signal.signal(hangup, _ignore)  # back at exit
        # os.write: safe wherever the main thread was interrupted (print could re-enter a write)
        with contextlib.suppress(OSError):  # a hung-up terminal, a closed pipe
            os.write(
                2,
                f"\n{signal.Signals(signum).name}: stopping after the current step call with a "
                "checkpoint (Ctrl-C or SIGTERM again stops at once, losing the training since "
                "the last checkpoint)\n".encode(),
            )
        if signum == hangup:
            # The terminal is gone, and writing to it would fail: what the run would print there
            # goes nowhere from here on (log.txt keeps every line). Files and pipes stay.
            devnull = os.open(os.devnull, os.O_WRONLY)
            for fd in self._terminals:
                os.dup2(devnull, fd)
            os.close(devnull)

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def _ignore(signum: int, frame) -> None:
    """A hang-up after a stop: nothing to do."""

"""How the command ends when something goes wrong: one line on stderr and a non-zero exit,
whatever the cause.

* **Signals**: SIGINT (Ctrl-C), SIGTERM and SIGHUP raise :class:`Stopped` in the main thread,
  so every ``finally`` runs (``snn_onnx.files`` removes its temporary file; the user's file is
  either untouched or complete) and the command prints ``error: stopped by SIGTERM`` and exits
  with 128 + the signal number, as a shell reports a process a signal ended. Python handles a
  signal between bytecodes: a long ONNX Runtime call finishes its current run first. SIGKILL
  cannot be caught.
* **A closed stdout** (``snn-onnx info m.onnx | head -1``): the reader has what it wanted;
  the command stops quietly with status 141 (128 + SIGPIPE), as Unix tools do.
* **Messages** are folded to one line (ONNX Runtime's errors span several).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Iterator

CAUGHT = ("SIGINT", "SIGTERM", "SIGHUP")
EXIT_BROKEN_PIPE = 128 + 13


class Stopped(BaseException):
    """A signal asked the command to stop (BaseException: ``except Exception`` lets it pass)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _raise(signum: int, frame) -> None:
    raise Stopped(signum)


@contextlib.contextmanager
def signals_stop() -> Iterator[None]:
    """Inside the block, SIGINT / SIGTERM / SIGHUP raise :class:`Stopped` (signals the parent
    process ignores stay ignored; outside the main thread nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for name in CAUGHT:
        sig = getattr(signal, name, None)
        if sig is None:
            continue
        old = signal.getsignal(sig)
        if old is signal.SIG_IGN:  # e.g. SIGINT of a background job, SIGHUP under nohup
            continue
        previous[sig] = old
        signal.signal(sig, _raise)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def stop_on_broken_pipe() -> None:
    """stdout's reader has gone: point stdout at /dev/null (so the flush at exit cannot fail
    again) and exit quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real stdout (a test runner's buffer)
        pass
    sys.exit(EXIT_BROKEN_PIPE)

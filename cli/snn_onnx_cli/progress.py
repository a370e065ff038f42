"""Progress on stderr for long steps.

The converter reports ``on_progress(phase, n, total)`` (``n``: items done since its last call,
any phase names); the CLI wraps its own steps (export, loading data, runs) in
``with progress.step(name):``. On a terminal one status line is redrawn a few times a second,
so a step that reports nothing for minutes still shows its name and the time spent; it ends
with ``name: done in 12.3 s``. Off a terminal (pipes, CI logs, tests) nothing is printed.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import IO, Iterator

BAR = 24
SPIN = "|/-\\"


class Progress:
    def __init__(self, enabled: bool = True, stream: IO[str] | None = None, interval: float = 0.25):
        self.stream = stream or sys.stderr
        self.enabled = enabled and _isatty(self.stream)
        self.interval = interval
        self.phase: str | None = None
        self.done = self.total = 0
        self.started = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._width = 0

    # -- the converter's callback ---------------------------------------------------------
    def __call__(self, phase: str, n: int, total: int) -> None:
        if not self.enabled:
            return
        with self._lock:
            if phase != self.phase:
                self._finish_locked()
                self._start_locked(phase, total)
            self.done += max(int(n), 0)
            self.total = max(int(total), 0)
        self._ensure_thread()

    # -- the CLI's own steps --------------------------------------------------------------
    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """A step with no item counts: its name and elapsed time while it runs."""
        if not self.enabled:
            yield
            return
        with self._lock:
            self._finish_locked()
            self._start_locked(name, 0)
        self._ensure_thread()
        try:
            yield
        finally:
            with self._lock:
                if self.phase == name:
                    self._finish_locked()

    def close(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        with self._lock:
            self._finish_locked()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- drawing --------------------------------------------------------------------------
    def _start_locked(self, phase: str, total: int) -> None:
        self.phase, self.done, self.total, self.started = phase, 0, max(int(total), 0), time.monotonic()

    def _finish_locked(self) -> None:
        if self.phase is None:
            return
        elapsed = time.monotonic() - self.started
        count = f" ({self.done}/{self.total})" if self.total else ""
        self._write(f"{self.phase}: done in {elapsed:.1f} s{count}", end="\n")
        self.phase = None

    def line(self) -> str:
        """The status line for the current phase."""
        elapsed = time.monotonic() - self.started
        if self.total > 0:
            frac = min(self.done / self.total, 1.0)
            fill = int(round(frac * BAR))
            return f"{self.phase} [{'#' * fill}{'-' * (BAR - fill)}] {self.done}/{self.total}  {elapsed:.0f} s"
        return f"{self.phase} {SPIN[int(elapsed / self.interval) % len(SPIN)]} {elapsed:.0f} s"

    def _write(self, text: str, end: str = "") -> None:
        pad = " " * max(self._width - len(text), 0)
        self.stream.write("\r" + text + pad + end)
        self.stream.flush()
        self._width = 0 if end else len(text)

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="snn-onnx-progress", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                if self.phase is not None:
                    self._write(self.line())


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False

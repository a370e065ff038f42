"""Progress on stderr for long steps.

The CLI wraps each of its steps (export, loading data, conversion, runs) in
``with progress.step(name):``; inside a step the converter reports
``on_progress(phase, n, total)`` (``n``: items done since its last call, any phase names).
On a terminal one status line is redrawn a few times a second: the phase with a bar while
one reports counts, else the step with its elapsed time, so a step that reports nothing for
minutes still shows that it runs. Each phase and step ends with ``name: done in 12.3 s``.
Off a terminal (pipes, CI logs, tests) nothing is printed.
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
        self.step_name: str | None = None
        self.step_started = 0.0
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
                self._finish_phase()
                self.phase, self.done, self.started = phase, 0, time.monotonic()
            self.done += max(int(n), 0)
            self.total = max(int(total), 0)
            if self.total and self.done >= self.total:
                self._finish_phase()  # back to the enclosing step's line until the next phase
        self._ensure_thread()

    # -- the CLI's own steps --------------------------------------------------------------
    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """A step of the CLI: its name and elapsed time while it runs (and the converter's
        phases inside it)."""
        if not self.enabled:
            yield
            return
        with self._lock:
            self._finish_phase()
            self._finish_step()
            self.step_name, self.step_started = name, time.monotonic()
        self._ensure_thread()
        try:
            yield
        finally:
            with self._lock:
                self._finish_phase()
                if self.step_name == name:
                    self._finish_step()

    def close(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        with self._lock:
            self._finish_phase()
            self._finish_step()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- drawing --------------------------------------------------------------------------
    def _finish_phase(self) -> None:
        if self.phase is None:
            return
        count = f" ({self.done}/{self.total})" if self.total else ""
        self._write(f"{self.phase}: done in {time.monotonic() - self.started:.1f} s{count}", end="\n")
        self.phase = None

    def _finish_step(self) -> None:
        if self.step_name is None:
            return
        self._write(f"{self.step_name}: done in {time.monotonic() - self.step_started:.1f} s", end="\n")
        self.step_name = None

    def line(self) -> str | None:
        """The status line now: the converter's phase, else the CLI's step."""
        now = time.monotonic()
        if self.phase is not None:
            elapsed = now - self.started
            if self.total > 0:
                fill = int(round(min(self.done / self.total, 1.0) * BAR))
                return f"{self.phase} [{'#' * fill}{'-' * (BAR - fill)}] {self.done}/{self.total}  {elapsed:.0f} s"
            return f"{self.phase} {SPIN[int(elapsed / self.interval) % len(SPIN)]} {elapsed:.0f} s"
        if self.step_name is not None:
            elapsed = now - self.step_started
            return f"{self.step_name} {SPIN[int(elapsed / self.interval) % len(SPIN)]} {elapsed:.0f} s"
        return None

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
                text = self.line()
                if text is not None:
                    self._write(text)


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False

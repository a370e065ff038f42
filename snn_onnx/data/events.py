"""Event-camera data: frames ``[T, N, ...]`` (one frame per time step) or raw event lists
``(x, y, t, p)`` that are binned into T frames with the ``tonic`` library.

``load_events(source, split="test", limit=None)`` returns an :class:`EventData`; ``source`` is

``"digits-events"``
    the event version of scikit-learn's digits made here (:mod:`.digits_events`): ON/OFF
    events of a simulated event camera that watches each 8×8 digit through three small
    saccades, as N-MNIST was recorded. Sensor 10×10, 2 polarities; the digits' train / test
    split. Needs scikit-learn.
a path to an ``.npz`` file with either

    * ``frames``: ``[T, N, ...]`` numbers, one frame per step (time-major, any layout after
      the sample axis, e.g. ``[T, N, 2, H, W]``); it fixes T; or
    * raw events: ``events``, a structured array with fields ``x``, ``y``, ``t``, ``p`` (tonic's
      layout) or an ``[E, 4]`` array of columns x, y, t, p; ``offsets``, ``[N + 1]`` indices
      (sample i is ``events[offsets[i]:offsets[i+1]]``); ``sensor_size``, ``[W, H, P]``
      (P = 1 or 2 polarities, p in {0, 1}; -1/+1 is read as 0/1). Binned for any T;

    and optionally ``labels``, ``[N]`` integers.

Binning (:func:`bin_events`): ``tonic.transforms.ToFrame(sensor_size, n_time_bins=T)`` per
sample: the span from the sample's first to its last event is cut into T windows of
``floor(span / T)`` time units each, and each frame counts the events per polarity and pixel
(``[T, P, H, W]``). This is tonic's definition; events after ``t_first + T*floor(span/T)`` (at
least the last one) fall outside the windows. A sample without events gives empty frames; a
sample whose span is shorter than T time units is refused (every window would be empty).

tonic is an optional extra (``pip install 'snn-onnx[events]'``), imported only for raw events.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, OptionalDependencyError

EVENT_DTYPE = np.dtype([("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
NAMED = ("digits-events",)
_EXTRA = "pip install 'snn-onnx[events]'"


@dataclass
class EventData:
    """Event samples, as fixed frames or as raw events binned for any T. ``labels``: ``[N]``
    int64 or None."""

    name: str
    labels: np.ndarray | None
    frames_fixed: np.ndarray | None = None  # [T, N, ...] float32
    events: np.ndarray | None = None  # EVENT_DTYPE, samples concatenated, each sorted by t
    offsets: np.ndarray | None = None  # [N + 1]
    sensor_size: tuple[int, int, int] | None = None  # (W, H, P), tonic's order
    classes: list[str] | None = None
    _cache: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        if self.frames_fixed is not None:
            return int(self.frames_fixed.shape[1])
        return int(len(self.offsets) - 1)

    @property
    def time_steps(self) -> int | None:
        """T of fixed frames; None for raw events (any T)."""
        return None if self.frames_fixed is None else int(self.frames_fixed.shape[0])

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """One frame, without time and sample axes (``[P, H, W]`` for raw events)."""
        if self.frames_fixed is not None:
            return tuple(self.frames_fixed.shape[2:])
        w, h, p = self.sensor_size
        return (p, h, w)

    @property
    def y(self) -> np.ndarray | None:
        return self.labels

    def frames(self, time_steps: int) -> np.ndarray:
        """``[T, N, ...]`` float32 frames for ``time_steps`` = T."""
        T = int(time_steps)
        if T < 1:
            raise DataError(f"event data '{self.name}': T must be >= 1, got {time_steps}")
        if self.frames_fixed is not None:
            if T != self.time_steps:
                raise DataError(
                    f"event data '{self.name}' holds frames for T={self.time_steps}, not T={T} "
                    f"(use T={self.time_steps}, or give raw events, which are binned for any T)"
                )
            return self.frames_fixed
        if T not in self._cache:
            out = np.empty((T, len(self), *self.frame_shape), dtype=np.float32)
            for i in range(len(self)):
                out[:, i] = bin_events(self.sample_events(i), self.sensor_size, T, where=f"{self.name} sample {i}")
            self._cache[T] = out
        return self._cache[T]

    def sample_events(self, i: int) -> np.ndarray:
        return self.events[self.offsets[i] : self.offsets[i + 1]]

    def take(self, limit: int | None) -> "EventData":
        """The first ``limit`` samples."""
        if limit is None or limit >= len(self):
            return self
        n = int(limit)
        labels = None if self.labels is None else self.labels[:n]
        if self.frames_fixed is not None:
            return replace(self, frames_fixed=self.frames_fixed[:, :n], labels=labels, _cache={})
        offsets = self.offsets[: n + 1]
        return replace(self, events=self.events[: offsets[-1]], offsets=offsets, labels=labels, _cache={})

    def split(self, parts: dict[str, np.ndarray]) -> dict[str, "EventData"]:
        """Sub-datasets by sample indices (sorted), e.g. a train / test split."""
        return {k: self.select(idx, f"{self.name}:{k}") for k, idx in parts.items()}

    def select(self, idx: np.ndarray, name: str) -> "EventData":
        idx = np.asarray(idx, dtype=np.int64)
        labels = None if self.labels is None else self.labels[idx]
        if self.frames_fixed is not None:
            return replace(self, name=name, frames_fixed=self.frames_fixed[:, idx], labels=labels, _cache={})
        sizes = np.diff(self.offsets)[idx]
        pieces = [self.sample_events(i) for i in idx]
        events = np.concatenate(pieces) if pieces else self.events[:0]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        return replace(self, name=name, events=events, offsets=offsets, labels=labels, _cache={})


def load_events(source: str | os.PathLike, split: str = "test", limit: int | None = None) -> EventData:
    """Event data from a named source or an ``.npz`` file (module docstring)."""
    if limit is not None and (int(limit) != limit or limit < 1):
        raise DataError(f"event data '{source}': limit must be a positive integer, got {limit!r}")
    src = os.fspath(source)
    if src == "digits-events":
        from .digits_events import digits_events

        data = digits_events(split)
    else:
        path = Path(src)
        if not path.is_file():
            hint = "" if path.suffix or os.sep in src else f"; named event sources are {', '.join(NAMED)}"
            raise DataError(f"event data '{src}': no such file{hint}")
        if path.suffix.lower() != ".npz":
            raise DataError(f"event data '{src}': not a .npz file (named event sources are {', '.join(NAMED)})")
        data = _load_npz(path)
    return data.take(limit)


def bin_events(events: np.ndarray, sensor_size: tuple[int, int, int], time_steps: int, where: str = "events") -> np.ndarray:
    """One sample's events -> ``[T, P, H, W]`` float32 event counts, with tonic's ToFrame
    (``n_time_bins=T``; module docstring)."""
    w, h, p = (int(v) for v in sensor_size)
    T = int(time_steps)
    out = np.zeros((T, p, h, w), dtype=np.float32)
    if len(events) == 0:
        return out
    span = int(events["t"][-1]) - int(events["t"][0])
    if span < T:
        raise DataError(
            f"{where}: its events span {span} time units, fewer than T={T} bins (tonic's windows "
            "would all be empty); give timestamps in finer units (e.g. µs)"
        )
    try:
        from tonic.transforms import ToFrame
    except ImportError as e:
        raise OptionalDependencyError(f"binning raw events into frames needs tonic: {_EXTRA}") from e
    frames = ToFrame(sensor_size=(w, h, p), n_time_bins=T)(np.array(events, copy=True))
    if frames.shape != out.shape:
        raise DataError(f"{where}: tonic gave frames of shape {list(frames.shape)}, expected {list(out.shape)}")
    out[:] = frames
    return out


def as_events(array: np.ndarray, where: str) -> np.ndarray:
    """Events in EVENT_DTYPE from a structured (x, y, t, p) array or ``[E, 4]`` columns."""
    a = np.asarray(array)
    if a.dtype.names is not None:
        missing = [f for f in EVENT_DTYPE.names if f not in a.dtype.names]
        if missing:
            raise DataError(f"{where}: events lack field(s) {missing} (need x, y, t, p)")
        cols = [a[f] for f in EVENT_DTYPE.names]
    elif a.ndim == 2 and a.shape[1] == 4:
        cols = [a[:, i] for i in range(4)]
    else:
        raise DataError(f"{where}: events must be a structured array (x, y, t, p) or [E, 4] columns, got shape "
                        f"{list(a.shape)}")
    out = np.empty(len(cols[0]), dtype=EVENT_DTYPE)
    for name, col in zip(EVENT_DTYPE.names, cols):
        col = np.asarray(col)
        if not np.issubdtype(col.dtype, np.number):
            raise DataError(f"{where}: event field '{name}' is not numeric")
        if not np.all(np.isfinite(col)) or not np.all(np.mod(col, 1) == 0):
            raise DataError(f"{where}: event field '{name}' must hold integers")
        out[name] = col.astype(np.int64)
    if len(out):
        out["p"] = np.where(out["p"] == -1, 0, out["p"])
    return out


def _load_npz(path: Path) -> EventData:
    from . import read_arrays

    arrays = read_arrays(path, "event data")
    labels = arrays.get("labels")
    if "frames" in arrays:
        frames = arrays["frames"]
        if frames.ndim < 3 or frames.shape[0] == 0 or frames.shape[1] == 0:
            raise DataError(f"event data '{path}': 'frames' must be [T, N, ...] with T, N >= 1, got {list(frames.shape)}")
        if frames.dtype.kind not in "biuf":
            raise DataError(f"event data '{path}': 'frames' holds {'complex numbers' if frames.dtype.kind == 'c' else 'no numbers'} "
                            f"(dtype {frames.dtype}); frames are real event counts")
        data = EventData(str(path), None, frames_fixed=np.ascontiguousarray(frames, dtype=np.float32))
    elif "events" in arrays:
        for key in ("offsets", "sensor_size"):
            if key not in arrays:
                raise DataError(f"event data '{path}': raw events need '{key}' (arrays: {sorted(arrays)})")
        events = as_events(arrays["events"], f"event data '{path}'")
        offsets = arrays["offsets"].astype(np.int64).ravel()
        sensor = arrays["sensor_size"].astype(np.int64).ravel()
        if sensor.size != 3 or np.any(sensor < 1) or sensor[2] not in (1, 2):
            raise DataError(f"event data '{path}': sensor_size must be [W, H, P] with P = 1 or 2, got {sensor.tolist()}")
        if (offsets.size < 2 or offsets[0] != 0 or offsets[-1] != len(events) or np.any(np.diff(offsets) < 0)):
            raise DataError(f"event data '{path}': offsets must rise from 0 to the number of events ({len(events)}), "
                            f"one more than the samples")
        w, h, p = (int(v) for v in sensor)
        for f, hi in (("x", w), ("y", h), ("p", p)):
            if len(events) and (events[f].min() < 0 or events[f].max() >= hi):
                raise DataError(f"event data '{path}': event field '{f}' must lie in 0..{hi - 1} "
                                f"(sensor_size {sensor.tolist()}), got {events[f].min()}..{events[f].max()}")
        # tonic's windows assume time order within a sample
        sample = np.repeat(np.arange(offsets.size - 1), np.diff(offsets))
        events = events[np.lexsort((events["t"], sample))]
        data = EventData(str(path), None, events=events, offsets=offsets, sensor_size=(w, h, p))
    else:
        raise DataError(f"event data '{path}' has neither 'frames' ([T, N, ...]) nor raw 'events' "
                        f"(arrays: {sorted(arrays)}); see docs/events.md")
    if labels is not None:
        if labels.ndim != 1 or len(labels) != len(data):
            raise DataError(f"event data '{path}': 'labels' must hold one label per sample: expected [{len(data)}], "
                            f"got {list(labels.shape)}")
        if not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"event data '{path}': 'labels' must be integers (dtype {labels.dtype})")
        data.labels = labels.astype(np.int64)
    return data


def save_events(path: str | os.PathLike, data: EventData, time_steps: int | None = None) -> Path:
    """Write ``data`` as an event ``.npz``: raw events (or, with ``time_steps``, its frames)."""
    arrays: dict[str, Any] = {}
    if time_steps is not None or data.frames_fixed is not None:
        arrays["frames"] = data.frames(time_steps or data.time_steps)
    else:
        arrays.update(events=data.events, offsets=data.offsets, sensor_size=np.asarray(data.sensor_size, np.int64))
    if data.labels is not None:
        arrays["labels"] = data.labels
    np.savez_compressed(path, **arrays)
    return Path(path)

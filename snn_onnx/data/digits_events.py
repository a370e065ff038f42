"""An event-camera version of scikit-learn's 8×8 digits, made the way N-MNIST was recorded: a
sensor watches each static digit while it moves through three small saccades, and every pixel
emits ON / OFF events when its log intensity changes by a contrast threshold.

The simulation (deterministic, seeded):

* The digit (values 0..16, scaled to intensity ``I`` in [0, 1], background 0) sits on a
  ``SENSOR_W × SENSOR_H`` = 10×10 sensor and moves along the triangle ``SACCADES`` (pixel
  offsets (0, 0) → (2, 1) → (1, 2) → (0, 0)), one saccade per 100 ms, sampled every
  ``DT_US`` = 1 ms; the image at a sub-pixel offset is bilinear.
* Each pixel compares ``L = log(I + LOG_EPS)`` with its reference level ``L_ref`` (the level at
  its last event, initially the first view): while ``L - L_ref >= C`` it emits an ON event
  (p = 1) and raises ``L_ref`` by ``C``; while ``L_ref - L >= C`` an OFF event (p = 0). ``C`` is
  ``CONTRAST`` = 0.25 with a per-pixel, per-sample mismatch (normal, σ = ``MISMATCH`` = 5 %),
  as in a real sensor. The k events of one pixel in one 1 ms sample get timestamps spread
  evenly inside it (µs).

A static image gives no events: only the motion does, so the frames show the digit's edges,
a different orientation per saccade.
"""

from __future__ import annotations

import functools

import numpy as np

from ..errors import DataError
from .events import EVENT_DTYPE, EventData

SENSOR_W = SENSOR_H = 10
SACCADES = ((0.0, 0.0), (2.0, 1.0), (1.0, 2.0), (0.0, 0.0))  # (dx, dy) pixels, a closed triangle
SACCADE_US = 100_000
DT_US = 1_000
CONTRAST = 0.25
MISMATCH = 0.05
LOG_EPS = 0.1
SEED = 20240601


def _path() -> np.ndarray:
    """Offsets ``[K+1, 2]`` (dx, dy) at t = 0, DT, 2·DT, … along the saccades."""
    per = SACCADE_US // DT_US
    pts = [np.array(SACCADES[0])[None]]
    for a, b in zip(SACCADES[:-1], SACCADES[1:]):
        f = (np.arange(1, per + 1) / per)[:, None]
        pts.append(np.array(a)[None] * (1 - f) + np.array(b)[None] * f)
    return np.concatenate(pts)


def _view(images: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """The sensor's view ``[N, H, W]`` of images ``[N, 8, 8]`` shifted by (dx, dy) pixels:
    sensor pixel (r, c) sees the image at (r - dy, c - dx), bilinear, zero outside."""
    n, ih, iw = images.shape
    m = 3  # margin: integer shifts 0..3 stay inside the canvas
    canvas = np.zeros((n, SENSOR_H + 2 * m, SENSOR_W + 2 * m))
    canvas[:, m : m + ih, m : m + iw] = images
    x0, y0 = int(np.floor(dx)), int(np.floor(dy))
    fx, fy = dx - x0, dy - y0
    out = np.zeros((n, SENSOR_H, SENSOR_W))
    for oy, wy in ((y0, 1 - fy), (y0 + 1, fy)):
        for ox, wx in ((x0, 1 - fx), (x0 + 1, fx)):
            if wx * wy > 0:
                out += wx * wy * canvas[:, m - oy : m - oy + SENSOR_H, m - ox : m - ox + SENSOR_W]
    return out


def simulate(images: np.ndarray, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Events of every image ``[N, 8, 8]`` (intensity in [0, 1]): ``(events, offsets)`` with
    events in EVENT_DTYPE, grouped by sample and sorted by time."""
    images = np.asarray(images, dtype=np.float64)
    n = images.shape[0]
    rng = np.random.RandomState(seed)  # legacy generator: its stream is frozen by NumPy
    contrast = CONTRAST * (1 + MISMATCH * rng.standard_normal((n, SENSOR_H, SENSOR_W)))
    contrast = np.maximum(contrast, 0.05)
    path = _path()
    ref = np.log(_view(images, *path[0]) + LOG_EPS)
    rows: list[np.ndarray] = []
    for k in range(1, len(path)):
        level = np.log(_view(images, *path[k]) + LOG_EPS)
        diff = level - ref
        count = np.floor(np.abs(diff) / contrast).astype(np.int64)
        ref = ref + np.sign(diff) * count * contrast
        s, y, x = np.nonzero(count)
        if not len(s):
            continue
        c = count[s, y, x]
        p = (diff[s, y, x] > 0).astype(np.int64)
        rows.append(np.stack([s, x, y, np.full_like(s, k), p, c], axis=1))
    table = np.concatenate(rows)
    reps = table[:, 5]
    expanded = np.repeat(table, reps, axis=0)
    # j-th of c events in the sample ending at step k: t = (k - 1 + (j + 1) / (c + 1)) * DT
    first = np.repeat(np.cumsum(reps) - reps, reps)
    j = np.arange(len(expanded)) - first
    t = ((expanded[:, 3] - 1) * DT_US + (j + 1) * DT_US // (expanded[:, 5] + 1)).astype(np.int64)
    events = np.empty(len(expanded), dtype=EVENT_DTYPE)
    events["x"], events["y"], events["t"], events["p"] = expanded[:, 1], expanded[:, 2], t, expanded[:, 4]
    order = np.lexsort((events["t"], expanded[:, 0]))
    events = events[order]
    sizes = np.bincount(expanded[:, 0], minlength=n)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return events, offsets


@functools.lru_cache(maxsize=1)
def _all() -> EventData:
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        from ..errors import OptionalDependencyError

        raise OptionalDependencyError("data source 'digits-events' needs scikit-learn: pip install 'snn-onnx[data]'") from e
    d = load_digits()
    images = np.asarray(d.images, dtype=np.float64) / 16.0
    events, offsets = simulate(images)
    return EventData("digits-events", np.asarray(d.target, dtype=np.int64), events=events, offsets=offsets,
                     sensor_size=(SENSOR_W, SENSOR_H, 2), classes=[str(i) for i in range(10)])


def digits_events(split: str = "test") -> EventData:
    """The event digits, with the same stratified train / test split as the ``digits`` source."""
    from . import _SPLITS, _digits_split_indices

    if split not in _SPLITS:
        raise DataError(f"data source 'digits-events': split must be one of {_SPLITS}, got {split!r}")
    data = _all()
    idx = _digits_split_indices(data.labels)[split]
    out = data.select(idx, f"digits-events:{split}")
    out.classes = data.classes
    return out

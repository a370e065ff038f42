"""Threshold calibration: run the ANN in ONNX Runtime on real samples and collect statistics
of every activation site's input (max or percentile, per tensor or per channel)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import onnx

from ..errors import CalibrationError

_SAMPLE_CAP = 1 << 18  # values (or columns, per channel) kept per site for percentiles
# max and percentile here; mse and ltb in corrections/ (docs/fidelity.md)
METHODS = ("max", "percentile", "mse", "ltb")


@dataclass(frozen=True)
class CalibrationConfig:
    # "max" | "percentile" | "mse" | "ltb"; per-channel mse: the best measured (docs/fidelity.md)
    method: str = "mse"
    percentile: float = 99.99
    per_channel: bool = True
    num_samples: int = 256
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise CalibrationError(f"calibration method must be one of {METHODS}, got {self.method!r}")
        if not 0 < self.percentile <= 100:
            raise CalibrationError(f"percentile must be in (0, 100], got {self.percentile}")
        if self.num_samples < 1 or self.batch_size < 1:
            raise CalibrationError("num_samples and batch_size must be >= 1")

    def describe(self) -> dict:
        return asdict(self)


@dataclass
class SiteRequest:
    site: str
    value: str  # name of the pre-activation tensor in the ANN graph
    channel_axis: int


class _SiteStats:
    """Running max and a bounded random sample of positive values of one site."""

    def __init__(self, request: SiteRequest, config: CalibrationConfig, n_batches: int, rng):
        self.req, self.cfg, self.rng = request, config, rng
        self.max: np.ndarray | None = None
        self.samples: list[np.ndarray] = []
        self.per_batch = max(1, _SAMPLE_CAP // max(1, n_batches))

    def _channels_first(self, x: np.ndarray) -> np.ndarray:
        axis = self.req.channel_axis % x.ndim
        return np.moveaxis(x, axis, 0).reshape(x.shape[axis], -1)

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float32)
        if self.cfg.per_channel:
            if x.ndim < 2:
                raise CalibrationError(f"site '{self.req.site}': per-channel calibration needs rank >= 2, got {x.shape}")
            xc = self._channels_first(x)
            m = xc.max(axis=1)
        else:
            xc = x.reshape(1, -1)
            m = xc.max(axis=1)
        self.max = m if self.max is None else np.maximum(self.max, m)
        if self.cfg.method == "percentile":
            cols = xc.shape[1]
            if cols > self.per_batch:
                xc = xc[:, self.rng.choice(cols, self.per_batch, replace=False)]
            self.samples.append(np.where(xc > 0, xc, np.nan))

    def threshold(self) -> tuple[np.ndarray, list[int]]:
        """Threshold per tensor (shape []) or per channel, and the channels with no positive
        input at all (dead: they never fire; given a placeholder threshold)."""
        if self.cfg.method == "max":
            th = self.max.astype(np.float64)
        else:
            allv = np.concatenate(self.samples, axis=1)
            with np.errstate(all="ignore"), _quiet_nan():
                th = np.nanpercentile(allv, self.cfg.percentile, axis=1)
        th = np.where(np.isfinite(th) & (th > 0), th, np.nan)
        dead = [int(i) for i in np.flatnonzero(np.isnan(th))]
        if dead:
            fill = np.nanmax(th) if len(dead) < th.size else 1.0
            th = np.where(np.isnan(th), fill, th)
        th = th.astype(np.float32)
        return (th.reshape(()) if not self.cfg.per_channel else th), dead


class _quiet_nan:
    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        self._w.__exit__(*exc)


def collect(
    ann: onnx.ModelProto,
    requests: list[SiteRequest],
    inputs: dict[str, np.ndarray],
    config: CalibrationConfig,
    progress=None,
    stats_factory=None,
) -> dict[str, Any]:
    """Thresholds for each requested site from the ANN run on ``inputs`` (all arrays share the
    leading sample axis). ``progress(n)`` is called after each batch with its size.
    ``stats_factory(request, config, n_batches, rng)`` makes another statistics collector
    (``update(x)``, ``threshold()``) than the default positive max / percentile one."""
    if not requests:
        return {}
    from .ann_runner import ann_session

    sess = ann_session(ann, [r.value for r in requests])
    n = min(len(next(iter(inputs.values()))), config.num_samples)
    starts = list(range(0, n, config.batch_size))
    rng = np.random.default_rng(config.seed)
    make = stats_factory or _SiteStats
    stats = {r.site: make(r, config, len(starts), rng) for r in requests}
    names = [r.value for r in requests]
    for s in starts:
        feed = {k: v[s : s + config.batch_size] for k, v in inputs.items()}
        outs = sess.run(names, feed)
        for req, out in zip(requests, outs):
            stats[req.site].update(out)
        if progress is not None:
            progress(len(next(iter(feed.values()))))
    return {site: st.threshold() for site, st in stats.items()}

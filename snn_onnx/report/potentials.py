"""Membrane potentials in a report: per spiking layer and time step, the histogram of the
potential in units of the layer's threshold and the fraction of potentials near a threshold.

The potentials come from the neurons' debug output (docs/ops.md, declared by
``Session(..., potentials=True)``); :class:`PotentialStats` folds them in batch by batch, so no
potential tensor outlives its batch. Units (``z``):

* IFNeuron, ParaIFNeuron: ``z = v / θ`` (ParaIF: its equivalent IF membrane over θ_pre); the
  neuron fires at ``z ≥ 1``. Near threshold: ``|z − 1| ≤ margin``.
* MultiThresholdNeuron: ``z = v / s_p`` for ``v ≥ 0`` and ``v / s_n`` below, in units of its
  smallest level; it emits level k at ``|z| ≥ 2^k − ½``. Near threshold: within ``margin`` of
  one of those ``±(2^k − ½)``, k < N.

``margin`` is 0.05 (5 % of θ, or of the smallest level) unless given. A signed IF's negative
threshold (``−signed_eps``) is not counted. Potentials that are NaN or infinite are counted
apart (``non_finite``) and left out of the histograms and fractions.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..ops import schema
from ..ops.reference import broadcast_param
from ..runtime.potentials import PotentialSite

EDGES = np.linspace(-2.0, 3.0, 51)  # z; values beyond fall into the first / last bin
NEAR_MARGIN = 0.05


def _units(site: PotentialSite, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(z, near-threshold distance) of one step ``v`` ``[B, ...]`` (float64)."""
    # one step has the rank of the op's input, so the parameter broadcasts as in the op
    pos = broadcast_param(site.scale, (v.shape[0], *v.shape[1:]), site.channel_axis, site.op, "scale")
    v64 = v.astype(np.float64)
    if site.op != schema.MULTI_THRESHOLD_NEURON.name:
        z = v64 / pos.astype(np.float64)
        return z, np.abs(z - 1.0)
    neg = broadcast_param(site.scale_neg, (v.shape[0], *v.shape[1:]), site.channel_axis, site.op, "scale_neg")
    z = np.where(v64 >= 0, v64 / pos.astype(np.float64), v64 / neg.astype(np.float64))
    thresholds = 2.0 ** np.arange(site.levels or 1) - 0.5
    a = np.abs(z)[..., None]
    return z, np.min(np.abs(a - thresholds), axis=-1)


class PotentialStats:
    """Histograms and near-threshold fractions per layer and step, accumulated over batches."""

    def __init__(self, sites: Sequence[PotentialSite], time_steps: int, margin: float = NEAR_MARGIN):
        if not margin > 0:
            raise ValueError(f"near-threshold margin must be > 0, got {margin}")
        self.sites = list(sites)
        self.T = int(time_steps)
        self.margin = float(margin)
        bins = len(EDGES) - 1
        self._acc = {s.site: {"counts": np.zeros((self.T, bins), np.int64), "near": np.zeros(self.T, np.int64),
                              "num": np.zeros(self.T, np.int64), "non_finite": np.zeros(self.T, np.int64),
                              "min": np.full(self.T, np.inf), "max": np.full(self.T, -np.inf),
                              "sum": np.zeros(self.T), "sum_squares": np.zeros(self.T)} for s in self.sites}

    def add(self, potentials: Mapping[str, np.ndarray]) -> None:
        """One batch: per layer, potentials ``[T, B, ...]`` (``SnnOutput.potentials``)."""
        for site in self.sites:
            p = np.asarray(potentials[site.site])
            acc = self._acc[site.site]
            for t in range(self.T):
                z, dist = _units(site, p[t])
                ok = np.isfinite(z)
                zf = z[ok]
                acc["non_finite"][t] += int(z.size - zf.size)
                acc["num"][t] += int(zf.size)
                acc["near"][t] += int(np.count_nonzero(dist[ok] <= self.margin))
                acc["counts"][t] += np.histogram(np.clip(zf, EDGES[0], EDGES[-1]), bins=EDGES)[0]
                if zf.size:
                    acc["min"][t] = min(acc["min"][t], float(zf.min()))
                    acc["max"][t] = max(acc["max"][t], float(zf.max()))
                    acc["sum"][t] += float(zf.sum())
                    acc["sum_squares"][t] += float(np.sum(zf * zf))

    def result(self) -> dict[str, dict[str, Any]]:
        """Per layer (graph order): op, unit, margin, ``edges``, ``counts`` ``[T, bins]``,
        ``near`` (fraction per step), ``near_overall``, ``num`` / ``non_finite`` per step, and
        per-step ``min`` / ``max`` / ``sum`` / ``sum_squares`` of z (TensorBoard histograms)."""
        out = {}
        for site in self.sites:
            a = self._acc[site.site]
            num = a["num"]
            mt = site.op == schema.MULTI_THRESHOLD_NEURON.name
            out[site.site] = {
                "op": site.op, "unit": "v / smallest level" if mt else "v / θ", "margin": self.margin,
                "edges": EDGES.copy(), "counts": a["counts"].copy(),
                "near": (a["near"] / np.maximum(num, 1)).tolist(),
                "near_overall": float(a["near"].sum() / max(int(num.sum()), 1)),
                "num": num.tolist(), "non_finite": a["non_finite"].tolist(),
                "min": np.where(num > 0, a["min"], 0.0).tolist(), "max": np.where(num > 0, a["max"], 0.0).tolist(),
                "sum": a["sum"].tolist(), "sum_squares": a["sum_squares"].tolist(),
            }
        return out


def step_histogram(layer: Mapping[str, Any], t: int) -> dict[str, Any]:
    """Step t's (0-based) histogram of z in the form TensorBoard's writer takes; the last
    bucket reaches the largest value (values beyond the edges were counted in the end bins)."""
    edges = np.asarray(layer["edges"], dtype=np.float64).copy()
    edges[-1] = max(edges[-1], float(layer["max"][t]))
    return {"min": float(layer["min"][t]), "max": float(layer["max"][t]), "num": int(layer["num"][t]),
            "sum": float(layer["sum"][t]), "sum_squares": float(layer["sum_squares"][t]), "edges": edges,
            "counts": np.asarray(layer["counts"][t])}


def summary(potentials: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """What ``summary.json`` keeps per layer: the near-threshold fractions and the histogram over
    all steps."""
    return [{"layer": name, "op": p["op"], "unit": p["unit"], "margin": p["margin"],
             "near_threshold": p["near_overall"], "near_threshold_per_step": p["near"],
             "non_finite": int(sum(p["non_finite"])), "edges": list(map(float, p["edges"])),
             "counts": np.asarray(p["counts"]).sum(axis=0).tolist()} for name, p in potentials.items()]


# --- plots -----------------------------------------------------------------------------------


def histogram_plot(run) -> bytes | None:
    """Per layer (rows), the distribution of potentials over all steps in units of the
    threshold; None when the run has no potentials."""
    from . import plots

    pots = getattr(run, "potentials", None)
    if not pots:
        return None
    names = list(pots)
    counts = np.array([np.asarray(p["counts"]).sum(axis=0) for p in pots.values()])
    units = sorted({p["unit"] for p in pots.values()})
    marks = [0.0, 1.0] if units == ["v / θ"] else [0.0, 0.5, 1.5]
    return plots.layer_histograms(
        names, counts, EDGES, marks=marks, label="fraction of the layer's potentials",
        xlabel=f"membrane potential ({' or '.join(units)}; beyond [{EDGES[0]:g}, {EDGES[-1]:g}] in the end bins)",
        title="membrane potentials by layer, all steps (dashed: 0 and the firing threshold)")


def near_threshold_plot(run) -> bytes | None:
    """Fraction of potentials within the margin of a threshold: per layer (bars, ranked at
    depth) and per layer and step (heatmap); None when the run has no potentials."""
    from . import plots

    pots = getattr(run, "potentials", None)
    if not pots:
        return None
    names = list(pots)
    overall = np.array([p["near_overall"] for p in pots.values()])
    per_step = np.array([p["near"] for p in pots.values()])
    margin = next(iter(pots.values()))["margin"]
    many = len(names) > plots.FIT_LAYERS
    h = max(3.6, min(0.28 * (min(len(names), plots.TOP_K) + 1) + 1.6, 8.0)) if many else 4.2
    fig = plots._figure(12, h)
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.1, 1]})
    if many:
        plots._ranked_barh(ax1, names, overall, xlabel="fraction of potentials", color="tab:purple", rest="mean",
                           title="near threshold")
    else:
        ax1.bar(range(len(names)), overall, color="tab:purple")
        ax1.set_xticks(range(len(names)), plots._short(names), rotation=30, ha="right", fontsize=8)
        ax1.set_ylabel("fraction of potentials")
        ax1.set_title(f"near threshold (within {100 * margin:g} % of it), all steps")
    im = ax2.imshow(per_step, aspect="auto", cmap="viridis", interpolation="nearest",
                    extent=(0.5, per_step.shape[1] + 0.5, len(names) - 0.5, -0.5))
    plots._row_labels(ax2, names, max_named=25)
    ax2.set_xlabel("time step t")
    ax2.set_title("near threshold per layer and step")
    fig.colorbar(im, ax=ax2, fraction=0.04, pad=0.01)
    return plots._png(fig)

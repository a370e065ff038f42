"""PNG plots of a run (matplotlib, no pyplot global state: safe inside other programs)."""

from __future__ import annotations

import io
from typing import Any, Sequence

import numpy as np

from ..errors import OptionalDependencyError
from .measure import RunResult

DPI = 100


def _figure(w: float, h: float):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise OptionalDependencyError("plots need matplotlib: pip install 'snn-onnx[report]'") from None
    fig = Figure(figsize=(w, h), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.canvas.print_png(buf)
    return buf.getvalue()


def _short(names: Sequence[str], width: int = 18) -> list[str]:
    return [n if len(n) <= width else "…" + n[-(width - 1):] for n in names]


def firing_rates(run: RunResult) -> bytes:
    """Firing rate per spiking layer (bars) and per step (one line per layer)."""
    e = run.energy
    fig = _figure(11, 4)
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.4]})
    names = [n.site for n in e.neurons]
    rates = [n.rate for n in e.neurons]
    ax1.bar(range(len(names)), rates, color="tab:orange")
    ax1.set_xticks(range(len(names)), _short(names), rotation=30, ha="right", fontsize=8)
    ax1.set_ylabel("spikes per neuron per step")
    ax1.set_title("firing rate per spiking layer")
    t = np.arange(1, e.time_steps + 1)
    for n in e.neurons:
        ax2.plot(t, n.rate_per_step, marker=".", label=n.site)
    ax2.plot(t, e.firing_rate_per_step, color="black", lw=2, ls="--", label="all layers")
    ax2.set_xlabel("time step t")
    ax2.set_ylabel("spikes per neuron")
    ax2.set_title("firing rate per step")
    ax2.legend(fontsize=7, ncol=2)
    ax2.grid(alpha=0.3)
    return _png(fig)


def accuracy_vs_t(run: RunResult) -> bytes:
    """Anytime accuracy and ANN agreement after each step, with the energy spent so far."""
    fig = _figure(8, 4)
    ax = fig.subplots()
    t = [p.t for p in run.anytime]
    if run.anytime[0].accuracy is not None:
        ax.plot(t, [100 * p.accuracy for p in run.anytime], marker="o", label="SNN accuracy")
    if run.anytime[0].agreement is not None:
        ax.plot(t, [100 * p.agreement for p in run.anytime], marker="s", ms=4, label="agreement with ANN")
    if run.ann_accuracy is not None:
        ax.axhline(100 * run.ann_accuracy, color="gray", ls="--", label="ANN accuracy")
    ax.set_xlabel("time step t" + ("" if run.causal else " (ParaIF: running mean of the T-step run)"))
    ax.set_ylabel("%")
    ax.set_title("accuracy vs T (anytime, one run)")
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot(t, [p.energy_pj * 1e-6 for p in run.anytime], color="tab:red", alpha=0.6, label="energy so far")
    ax2.axhline(run.energy.ann_energy_pj * 1e-6, color="tab:red", ls=":", alpha=0.6, label="ANN energy")
    ax2.set_ylabel("energy per inference (µJ)", color="tab:red")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, loc="lower right")
    return _png(fig)


def energy_layers(run: RunResult) -> bytes:
    """SOPs and MACs per layer, and energy per layer against the ANN."""
    e = run.energy
    fig = _figure(11, 4)
    ax1, ax2 = fig.subplots(1, 2)
    names = [f"{l.name} ({l.op})" for l in e.layers]
    x = np.arange(len(names))
    sops = np.array([l.sops.sum() for l in e.layers])
    macs = np.array([l.macs.sum() for l in e.layers])
    ax1.bar(x - 0.2, np.where(sops > 0, sops, np.nan), 0.4, label="SOPs (AC)")
    ax1.bar(x + 0.2, np.where(macs > 0, macs, np.nan), 0.4, label="MACs")
    if np.any(sops > 0) or np.any(macs > 0):
        ax1.set_yscale("log")
    ax1.set_xticks(x, _short(names, 22), rotation=30, ha="right", fontsize=8)
    ax1.set_ylabel("operations per inference")
    ax1.set_title("SOPs and MACs per layer")
    ax1.legend(fontsize=8)
    ax2.bar(x - 0.2, [l.energy_pj * 1e-6 for l in e.layers], 0.4, color="tab:red", label="SNN")
    ax2.bar(x + 0.2, [l.ann_energy_pj * 1e-6 for l in e.layers], 0.4, color="tab:gray", label="ANN")
    ax2.set_xticks(x, _short(names, 22), rotation=30, ha="right", fontsize=8)
    ax2.set_ylabel("µJ per inference")
    ax2.set_title(f"energy per layer (SNN/ANN = {e.energy_ratio:.3f})")
    ax2.legend(fontsize=8)
    return _png(fig)


def dashboard(runs: Sequence[dict[str, Any]], highlight: str | None = None) -> bytes:
    """Accuracy vs energy per inference across runs: each run's anytime curve (energy spent up
    to step t, accuracy at t) ending in a marker at its T, and the ANNs as stars.

    ``runs``: dicts with ``label``, ``energy_uj``, ``accuracy``, ``ann_energy_uj``,
    ``ann_accuracy``, ``anytime`` (list of ``(energy_uj, accuracy)``)."""
    fig = _figure(9, 5)
    ax = fig.subplots()
    anns = {}
    for i, r in enumerate(runs):
        color = f"C{i % 10}"
        strong = highlight is None or r["label"] == highlight
        pts = [(e, a) for e, a in r.get("anytime", []) if a is not None and e > 0]
        if pts:
            ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], color=color, alpha=0.8 if strong else 0.35, lw=1,
                    marker=".", ms=4)
        if r.get("accuracy") is not None:
            ax.scatter([r["energy_uj"]], [100 * r["accuracy"]], color=color, s=60 if strong else 30,
                       edgecolor="black" if r["label"] == highlight else "none", zorder=3, label=r["label"])
        if r.get("ann_accuracy") is not None and r.get("ann_energy_uj"):
            anns[(round(r["ann_energy_uj"], 9), round(r["ann_accuracy"], 9))] = r.get("model", "ANN")
    for (e, a), model in anns.items():
        ax.scatter([e], [100 * a], marker="*", s=160, color="black", zorder=4)
        ax.annotate(f"ANN {model}" if len(anns) > 1 else "ANN", (e, 100 * a), textcoords="offset points", xytext=(6, -10), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("energy per inference (µJ, log scale)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("accuracy vs energy across runs (lines: anytime, t = 1..T)")
    ax.grid(alpha=0.3, which="both")
    if runs:
        ax.legend(fontsize=7, loc="lower right", ncol=1 + len(runs) // 12)
    return _png(fig)

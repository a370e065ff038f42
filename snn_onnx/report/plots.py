"""PNG plots of a run (matplotlib, no pyplot global state: safe inside other programs).

Every plot stays readable from 3 to several hundred layers: per-layer bars are drawn in graph
order while they fit (``FIT_LAYERS``), otherwise as the ``TOP_K`` largest, sorted, with the rest
grouped into one bar; per-step curves become a median and a band across layers; heatmaps
(layer × step, layer × bin) show every layer at any depth; no legend has more than
``MAX_LEGEND`` entries. :func:`layer_histograms` draws any per-layer distribution (firing rates
and membrane potentials).
"""

from __future__ import annotations

import io
from typing import Any, Sequence

import numpy as np

from ..errors import OptionalDependencyError
from .measure import RunResult

DPI = 100
FIT_LAYERS = 20  # layers drawn one bar each, in graph order
TOP_K = 15  # with more layers: the largest TOP_K, sorted, and "other N layers"
MAX_LEGEND = 10
MAX_LINES = 8  # per-layer lines in the per-step plot; more: median and band


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
    """Names that fit ``width``: whole '/'-separated components from the end where possible
    (``layer3/layer3.1/act2`` -> ``…/layer3.1/act2``), else the last characters."""
    out = []
    for n in names:
        if len(n) <= width:
            out.append(n)
            continue
        parts, tail = n.split("/"), ""
        while parts and len(parts[-1]) + len(tail) + (1 if tail else 0) + 2 <= width:
            tail = parts.pop() + ("/" + tail if tail else "")
        out.append("…/" + tail if tail else "…" + n[-(width - 1):])
    return out


def top_k(names: Sequence[str], values: Sequence[float], k: int = TOP_K, rest: str = "sum") -> tuple[list[str], np.ndarray, list[int]]:
    """The ``k`` largest values, sorted descending, and one "other N layers" entry for the
    rest (their sum, or their mean with ``rest="mean"``). Returns labels, values and the
    indices of the kept entries (-1 for the grouped one)."""
    v = np.asarray(values, dtype=np.float64)
    order = [int(i) for i in np.argsort(-v, kind="stable")]
    keep, others = order[:k], order[k:]
    labels = [names[i] for i in keep]
    vals = [v[i] for i in keep]
    if others:
        labels.append(f"other {len(others)} layers ({rest})")
        vals.append(float(v[others].sum() if rest == "sum" else v[others].mean()))
    return labels, np.asarray(vals), keep + ([-1] if others else [])


def _ranked_barh(ax, names: Sequence[str], values: Sequence[float], *, xlabel: str, title: str, color: str,
                 rest: str = "sum", log: bool = False, width: int = 34) -> None:
    labels, vals, idx = top_k(names, values, rest=rest)
    y = np.arange(len(labels))[::-1]
    colors = [color if i >= 0 else "tab:gray" for i in idx]
    ax.barh(y, np.where(vals > 0, vals, np.nan) if log else vals, color=colors)
    ax.set_yticks(y, [lab if i < 0 else _short([lab], width)[0] for lab, i in zip(labels, idx)], fontsize=8)
    if log and np.any(vals > 0):
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_title(title + f" (top {min(TOP_K, len(names))} of {len(names)}, sorted)")
    ax.grid(alpha=0.3, axis="x")


def firing_rates(run: RunResult) -> bytes:
    """Firing rate per spiking layer (bars) and per time step (lines, or a band at depth)."""
    e = run.energy
    names = [n.site for n in e.neurons]
    rates = np.array([n.rate for n in e.neurons])
    many = len(names) > FIT_LAYERS
    fig = _figure(12, 4.6 if not many else 0.28 * (min(len(names), TOP_K) + 1) + 1.6)
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.2, 1]})
    if many:
        _ranked_barh(ax1, names, rates, xlabel="spikes per neuron per step", title="firing rate per layer",
                     color="tab:orange", rest="mean")
    else:
        ax1.bar(range(len(names)), rates, color="tab:orange")
        ax1.set_xticks(range(len(names)), _short(names), rotation=30, ha="right", fontsize=8)
        ax1.set_ylabel("spikes per neuron per step")
        ax1.set_title("firing rate per spiking layer")
    t = np.arange(1, e.time_steps + 1)
    per_step = np.array([n.rate_per_step for n in e.neurons]) if e.neurons else np.zeros((0, e.time_steps))
    if len(names) <= MAX_LINES:
        for name, r in zip(names, per_step):
            ax2.plot(t, r, marker=".", label=_short([name], 28)[0])
    elif len(names):
        lo, med, hi = np.percentile(per_step, [10, 50, 90], axis=0)
        ax2.fill_between(t, lo, hi, color="tab:orange", alpha=0.25, label=f"10–90 % of {len(names)} layers")
        ax2.plot(t, med, color="tab:orange", marker=".", label="median layer")
    ax2.plot(t, e.firing_rate_per_step, color="black", lw=2, ls="--", label="all layers")
    ax2.set_xlabel("time step t")
    ax2.set_ylabel("spikes per neuron")
    ax2.set_title("firing rate per step")
    ax2.legend(fontsize=7, ncol=2 if len(names) > 4 else 1)
    ax2.grid(alpha=0.3)
    return _png(fig)


def _row_labels(ax, names: Sequence[str], max_named: int = 40) -> None:
    """Every layer's name while they fit, else every k-th (with its index)."""
    n = len(names)
    if n <= max_named:
        ax.set_yticks(range(n), _short(names, 34), fontsize=7)
    else:
        step = int(np.ceil(n / max_named))
        idx = list(range(0, n, step))
        ax.set_yticks(idx, [f"{i}: {_short([names[i]], 30)[0]}" for i in idx], fontsize=7)


def rate_heatmap(run: RunResult) -> bytes:
    """Firing rate of every spiking layer (rows, graph order) at every step (columns)."""
    e = run.energy
    names = [n.site for n in e.neurons]
    data = np.array([n.rate_per_step for n in e.neurons]) if e.neurons else np.zeros((1, e.time_steps))
    h = min(2.0 + 0.16 * max(len(names), 4), 12.0)
    fig = _figure(12, h)
    ax = fig.subplots()
    im = ax.imshow(data, aspect="auto", cmap="viridis", interpolation="nearest",
                   extent=(0.5, e.time_steps + 0.5, len(names) - 0.5, -0.5))
    _row_labels(ax, names)
    ax.set_xlabel("time step t")
    ax.set_title(f"firing rate per layer and step ({len(names)} spiking layers, graph order)")
    fig.colorbar(im, ax=ax, label="spikes per neuron", fraction=0.03, pad=0.01)
    return _png(fig)


def layer_histograms(names: Sequence[str], counts: np.ndarray, edges: np.ndarray, *, title: str, xlabel: str,
                     marks: Sequence[float] = (), label: str = "fraction of the layer's neurons") -> bytes:
    """A per-layer distribution as a heatmap: rows are layers (graph order), columns the bins
    ``edges``, colour the fraction of the layer's values in the bin. ``counts``: ``[layers,
    bins]``. ``marks``: x positions to draw as vertical lines (e.g. a threshold); ``label``:
    the colour bar's."""
    counts = np.asarray(counts, dtype=np.float64)
    frac = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    h = min(2.0 + 0.16 * max(len(names), 4), 12.0)
    fig = _figure(12, h)
    ax = fig.subplots()
    im = ax.imshow(frac, aspect="auto", cmap="magma", interpolation="nearest",
                   extent=(float(edges[0]), float(edges[-1]), len(names) - 0.5, -0.5))
    for m in marks:
        ax.axvline(m, color="white", ls="--", lw=1)
    _row_labels(ax, names)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label=label, fraction=0.03, pad=0.01)
    return _png(fig)


RATE_EDGES = np.linspace(0.0, 1.0, 21)


def neuron_rate_histograms(run: RunResult) -> bytes:
    """How the neurons of each layer fire: the distribution of per-neuron firing rates (the
    first column holds silent and nearly silent neurons)."""
    e = run.energy
    names = [n.site for n in e.neurons]
    counts = np.array([np.histogram(np.clip(n.per_neuron_rate, 0, 1), bins=RATE_EDGES)[0] for n in e.neurons]) \
        if e.neurons else np.zeros((1, len(RATE_EDGES) - 1))
    silent = [float(np.mean(n.per_neuron_rate == 0)) for n in e.neurons]
    worst = max(silent) if silent else 0.0
    return layer_histograms(names, counts, RATE_EDGES, xlabel="spikes per neuron per step (per neuron, over the run)",
                            title=f"per-neuron firing rates by layer (silent neurons: up to {100 * worst:.0f} % of a layer)")


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
    """SOPs and MACs per layer, and energy per layer against the ANN (at depth: energy by
    kind of layer and the layers that spend the most)."""
    e = run.energy
    names = [f"{l.name} ({l.op})" for l in e.layers]
    sops = np.array([l.sops.sum() for l in e.layers])
    macs = np.array([l.macs.sum() for l in e.layers])
    snn_e = np.array([l.energy_pj * 1e-6 for l in e.layers])
    ann_e = np.array([l.ann_energy_pj * 1e-6 for l in e.layers])
    if len(names) > FIT_LAYERS:
        return _energy_layers_ranked(e, names, sops, macs, snn_e, ann_e)
    fig = _figure(12, 4.4)
    ax1, ax2 = fig.subplots(1, 2)
    x = np.arange(len(names))
    ax1.bar(x - 0.2, np.where(sops > 0, sops, np.nan), 0.4, label="SOPs (AC)")
    ax1.bar(x + 0.2, np.where(macs > 0, macs, np.nan), 0.4, label="MACs")
    if np.any(sops > 0) or np.any(macs > 0):
        ax1.set_yscale("log")
    ax1.set_xticks(x, _short(names, 22), rotation=30, ha="right", fontsize=8)
    ax1.set_ylabel("operations per inference")
    ax1.set_title("SOPs and MACs per layer")
    ax1.legend(fontsize=8)
    ax2.bar(x - 0.2, snn_e, 0.4, color="tab:red", label="SNN")
    ax2.bar(x + 0.2, ann_e, 0.4, color="tab:gray", label="ANN")
    ax2.set_xticks(x, _short(names, 22), rotation=30, ha="right", fontsize=8)
    ax2.set_ylabel("µJ per inference")
    ax2.set_title(f"energy per layer (SNN/ANN = {e.energy_ratio:.3f})")
    ax2.legend(fontsize=8)
    return _png(fig)


def _energy_layers_ranked(e, names, sops, macs, snn_e, ann_e) -> bytes:
    """At depth: energy by kind of layer (op and counting, summed over the layers of each kind)
    and the TOP_K layers that spend the most, sorted, the rest grouped; SNN against ANN."""
    kinds: dict[str, list[int]] = {}
    for i, l in enumerate(e.layers):
        kinds.setdefault(f"{l.op}, {l.counting}", []).append(i)
    kind_names = [f"{k} ×{len(v)}" for k, v in kinds.items()]
    kind_snn = np.array([snn_e[v].sum() for v in kinds.values()])
    kind_ann = np.array([ann_e[v].sum() for v in kinds.values()])
    labels, _, idx = top_k(names, snn_e)
    rest = [i for i in range(len(names)) if i not in idx]
    total = snn_e.sum() or 1.0
    if rest:
        labels[-1] = f"other {len(rest)} layers ({100 * snn_e[rest].sum() / total:.0f} % of SNN energy)"

    def pick(v):
        return np.array([v[i] for i in idx if i >= 0] + ([v[rest].sum()] if rest else []))

    rows = max(len(labels), min(len(kind_names), TOP_K + 1))
    fig = _figure(12, 0.3 * rows + 1.8)
    ax1, ax2 = fig.subplots(1, 2)
    k_labels, _, k_idx = top_k(kind_names, kind_snn)
    k_rest = [i for i in range(len(kind_names)) if i not in k_idx]
    ks = np.array([kind_snn[i] for i in k_idx if i >= 0] + ([kind_snn[k_rest].sum()] if k_rest else []))
    ka = np.array([kind_ann[i] for i in k_idx if i >= 0] + ([kind_ann[k_rest].sum()] if k_rest else []))
    y = np.arange(len(k_labels))[::-1]
    ax1.barh(y + 0.2, ks, 0.4, color="tab:red", label="SNN")
    ax1.barh(y - 0.2, ka, 0.4, color="tab:gray", label="ANN")
    ax1.set_yticks(y, _short(k_labels, 34), fontsize=8)
    ax1.set_xlabel("µJ per inference")
    ax1.set_title(f"energy by kind of layer ({len(names)} layers, SNN/ANN = {e.energy_ratio:.3f})")
    ax1.legend(fontsize=8, loc="best")
    ax1.grid(alpha=0.3, axis="x")
    y = np.arange(len(labels))[::-1]
    se, ae = pick(snn_e), pick(ann_e)
    ax2.barh(y + 0.2, np.where(se > 0, se, np.nan), 0.4, color="tab:red", label="SNN")
    ax2.barh(y - 0.2, np.where(ae > 0, ae, np.nan), 0.4, color="tab:gray", label="ANN")
    shown = _short(labels[:-1], 40) + [labels[-1]] if rest else _short(labels, 40)
    ax2.set_yticks(y, shown, fontsize=8)
    if np.any(se > 0):
        ax2.set_xscale("log")  # the grouped rest can be far larger than any one layer
    ax2.set_xlabel("µJ per inference (log scale)")
    ax2.set_title(f"the {min(TOP_K, len(names))} layers that spend the most, sorted")
    ax2.legend(fontsize=8, loc="best")
    ax2.grid(alpha=0.3, axis="x")
    return _png(fig)


def _groups(runs: Sequence[dict[str, Any]]) -> tuple[list[str], dict[str, str]]:
    """Colour groups for the dashboard: one per run while there are few, else one per
    model and neuron, else none (no legend beyond MAX_LEGEND entries)."""
    labels = [r["label"] for r in runs]
    if len(labels) <= MAX_LEGEND:
        return labels, {lab: lab for lab in labels}
    by = {r["label"]: f"{r.get('model', '?')} · {r.get('neuron') or '?'}" for r in runs}
    keys = list(dict.fromkeys(by.values()))
    if len(keys) <= MAX_LEGEND:
        return keys, by
    return [], {lab: "" for lab in labels}


def dashboard(runs: Sequence[dict[str, Any]], highlight: str | None = None) -> bytes:
    """Accuracy against energy per inference (left) and against spikes per sample (right),
    across runs: each run's anytime curve (spent up to step t, accuracy at t) ends in a marker
    at its T; the ANNs are stars on the energy axis. Runs without labels (random inputs) are
    drawn by their agreement with the ANN instead, when no run has an accuracy.

    ``runs``: dicts with ``label``, ``energy_uj``, ``accuracy``, ``ann_energy_uj``,
    ``ann_accuracy``, ``anytime`` (list of ``(energy_uj, accuracy)``), and optionally
    ``model``, ``neuron``, ``spikes`` (per sample), ``anytime_spikes`` (list of
    ``(spikes, accuracy)``), ``agreement`` and the ``anytime_agreement`` /
    ``anytime_spikes_agreement`` curves."""
    fig = _figure(13, 5)
    ax, axs = fig.subplots(1, 2)
    keys, group = _groups(runs)
    color = {k: f"C{i % 10}" for i, k in enumerate(keys)}
    by_accuracy = any(r.get("accuracy") is not None for r in runs)
    metric = "accuracy" if by_accuracy else "agreement"
    anns: dict[tuple[float, float], str] = {}
    labelled: set[str] = set()
    for r in runs:
        g = group[r["label"]]
        c = color.get(g, "tab:blue")
        strong = highlight is None or r["label"] == highlight
        edge = "black" if r["label"] == highlight else "none"
        legend = g if g and g not in labelled else None
        labelled.add(g)
        curves = ((r.get("anytime", []), r.get("anytime_spikes", [])) if by_accuracy else
                  (r.get("anytime_agreement", []), r.get("anytime_spikes_agreement", [])))
        for a, curve, x_end in ((ax, curves[0], r.get("energy_uj")), (axs, curves[1], r.get("spikes"))):
            pts = [(x, y) for x, y in curve if y is not None and x is not None and x > 0]
            if pts:
                a.plot([p[0] for p in pts], [100 * p[1] for p in pts], color=c, alpha=0.8 if strong else 0.3, lw=1,
                       marker=".", ms=3)
            if r.get(metric) is not None and x_end:
                a.scatter([x_end], [100 * r[metric]], color=c, s=60 if strong else 25, edgecolor=edge, zorder=3,
                          label=legend if a is ax else None)
        if by_accuracy and r.get("ann_accuracy") is not None and r.get("ann_energy_uj"):
            anns[(round(r["ann_energy_uj"], 9), round(r["ann_accuracy"], 9))] = r.get("model", "ANN")
    for (e, a), model in anns.items():
        ax.scatter([e], [100 * a], marker="*", s=160, color="black", zorder=4)
        if len(anns) <= MAX_LEGEND:
            ax.annotate(f"ANN {model}" if len(anns) > 1 else "ANN", (e, 100 * a), textcoords="offset points",
                        xytext=(6, -10), fontsize=8)
    ylabel = "accuracy (%)" if by_accuracy else "agreement with the ANN (%, no labels)"
    n = f"{len(runs)} run{'s' if len(runs) != 1 else ''}"
    for a, xlabel, title in ((ax, "energy per inference (µJ)", f"{metric} vs energy"),
                             (axs, "spikes per sample (all layers)", f"{metric} vs spikes per sample")):
        if a.has_data():
            a.set_xscale("log")
            xlabel += ", log scale"
        a.set_xlabel(xlabel)
        a.set_ylabel(ylabel)
        a.set_title(f"{title} ({n}; lines: anytime, t = 1..T)")
        a.grid(alpha=0.3, which="both")
    if keys and ax.get_legend_handles_labels()[1]:
        ax.legend(fontsize=7, loc="lower right")
    if not axs.has_data():
        axs.text(0.5, 0.5, "no spike totals in these runs' summaries", transform=axs.transAxes, ha="center")
    return _png(fig)

"""The plots of a run folder, in the order the HTML page shows them: one :class:`Panel` each.

A panel is a key (``plots/<key>.png``, the figure's id ``plot-<key>``), a caption and a
function ``RunResult -> PNG bytes | None``; ``None`` means the run lacks the data and the panel
is left out (so a panel for an optional measurement costs nothing when it is absent: the
membrane-potential panels appear only for runs measured with ``potentials=True``). A new
per-layer panel is one entry here, drawing with :func:`plots.layer_histograms`. The dashboard across runs is added by
``runs.write_run`` (it needs the runs folder).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import plots, potentials
from .measure import RunResult


@dataclass(frozen=True)
class Panel:
    key: str
    caption: str
    render: Callable[[RunResult], bytes | None]


PANELS: list[Panel] = [
    Panel("accuracy_vs_t", "Anytime accuracy and agreement with the ANN after each step t of one T-step run, and the "
          "energy spent so far.", plots.accuracy_vs_t),
    Panel("firing_rates", "Firing rate per spiking layer (graph order, or the most active layers sorted with the rest "
          "grouped) and per time step (at depth: the median layer and the 10–90 % band).", plots.firing_rates),
    Panel("rate_heatmap", "Firing rate of every spiking layer (rows, graph order) at every time step.", plots.rate_heatmap),
    Panel("neuron_rates", "Distribution of per-neuron firing rates in each layer: silent layers sit in the first "
          "column, saturated ones in the last.", plots.neuron_rate_histograms),
    Panel("energy_layers", "SOPs and MACs per counted layer, and energy per layer against the ANN (at depth: energy by "
          "kind of layer, and the layers that spend the most, sorted, with the rest grouped).", plots.energy_layers),
    Panel("potentials", "Membrane potentials of each spiking layer over all steps and samples, in units of the layer's "
          "threshold (IF: after integration, before fire and reset; ParaIF: its equivalent IF membrane; multi-threshold: "
          "in units of the smallest level). Only with --potentials.", potentials.histogram_plot),
    Panel("near_threshold", "Fraction of membrane potentials within 5 % of a firing threshold, per layer and per step: "
          "neurons a small change of input would flip. Only with --potentials.", potentials.near_threshold_plot),
]

DASHBOARD_CAPTION = ("Across the runs in this runs folder: accuracy against energy per inference and against spikes "
                     "per sample (lines: anytime curves; this run outlined).")


def render_all(run: RunResult) -> dict[str, bytes]:
    """PNG bytes of every panel that applies to ``run``, in page order."""
    out = {}
    for panel in PANELS:
        png = panel.render(run)
        if png is not None:
            out[panel.key] = png
    return out


def captions() -> dict[str, str]:
    return {**{p.key: p.caption for p in PANELS}, "dashboard": DASHBOARD_CAPTION}

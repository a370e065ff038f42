"""A self-contained HTML page of a run: headline numbers, plots (PNG data URIs), per-layer and
per-step tables, and which layers were counted as MACs and why. No scripts, no external files."""

from __future__ import annotations

import base64
import json
from html import escape
from typing import Any, Mapping

from .measure import RunResult
from .tables import joules, pct, si

CSS = """
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 24px auto; max-width: 1180px; color: #222; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
.sub { color: #666; font-size: 13px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin-top: 14px; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 8px 14px; min-width: 140px; background: #fafafa; }
.card .k { font-size: 12px; color: #666; } .card .v { font-size: 19px; font-weight: bold; }
table { border-collapse: collapse; font-size: 12.5px; margin-top: 8px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; } th { background: #f0f0f0; }
td.l, th.l { text-align: left; }
figure { margin: 14px 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 12px; color: #555; }
.note { background: #fff8e5; border: 1px solid #f0d890; padding: 8px 12px; border-radius: 6px; font-size: 13px; }
pre { background: #f6f6f6; padding: 8px; font-size: 11.5px; overflow-x: auto; }
"""

PLOT_CAPTIONS = {
    "firing_rates": "Firing rate per spiking layer (left) and per time step (right), from the spiking ops' count outputs.",
    "accuracy_vs_t": "Anytime accuracy and agreement with the ANN after each step t of one T-step run, and the energy spent so far.",
    "energy_layers": "SOPs and MACs per counted layer (left) and energy per layer, SNN against the ANN (right).",
    "dashboard": "Accuracy against energy per inference across the runs in this runs folder (lines: anytime curves).",
}


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _card(k: str, v: str) -> str:
    return f'<div class="card"><div class="k">{escape(k)}</div><div class="v">{escape(v)}</div></div>'


def _table(head: list[str], rows: list[list[str]], left: int = 1) -> str:
    th = "".join(f'<th class="{"l" if i < left else ""}">{escape(h)}</th>' for i, h in enumerate(head))
    body = "".join(
        "<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{escape(str(c))}</td>' for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def render(run: RunResult, plots: Mapping[str, bytes], created: str = "") -> str:
    """The page; ``plots``: PNG bytes by name (keys of PLOT_CAPTIONS, others allowed)."""
    e = run.energy
    cfg = run.config
    neuron = cfg.get("neuron", {}).get("kind", "?")
    data = cfg.get("data", {})
    parts = [f"<h1>snn-onnx report: {escape(run.name)}</h1>"]
    parts.append(
        f'<div class="sub">model {escape(str(cfg.get("model", cfg.get("source", "?"))))} · {escape(neuron)} neuron · '
        f"T={e.time_steps} · data {escape(str(data.get('name', data.get('source', '?'))))} ({run.samples} samples)"
        f"{' · ' + escape(created) if created else ''}</div>"
    )
    parts.append('<div class="cards">' + "".join([
        _card("SNN accuracy", pct(run.accuracy)), _card("ANN accuracy", pct(run.ann_accuracy)),
        _card("agreement with ANN", pct(run.agreement)), _card("firing rate", f"{e.firing_rate:.4f}"),
        _card("SOPs / inference", si(e.sops)), _card("MACs / inference", si(e.macs)),
        _card("SNN energy", joules(e.energy_pj)), _card("ANN energy", joules(e.ann_energy_pj)),
        _card("SNN / ANN energy", f"{e.energy_ratio:.3f}"),
    ]) + "</div>")
    macs = e.mac_layers()
    note = (
        f"Energy = {e.config.e_ac_pj:g} pJ × SOPs + {e.config.e_mac_pj:g} pJ × MACs; ANN energy = "
        f"{e.config.e_mac_pj:g} pJ × its MACs for one pass. SOPs are exact: each spike counts the outputs it reaches."
    )
    if macs:
        items = "".join(f"<li><b>{escape(l.name)}</b> ({escape(l.op)}): {escape(l.reason)}</li>" for l in macs)
        note += f"<br>Counted as MACs, because their input is not a pure spike tensor:<ul>{items}</ul>"
    note += ("<br>Not counted, in either network: neuron state updates, and linear ops (average pooling, Add, "
             "reshapes, scaling by constants), which are folded into the next layer's weights. Rules: docs/energy.md.")
    if not run.causal:
        note += "<br>ParaIF is not causal: the anytime values at t &lt; T are the running mean of the T-step run."
    parts.append(f'<div class="note">{note}</div>')
    parts.append("<h2>Plots</h2>")
    for key, png in plots.items():
        caption = PLOT_CAPTIONS.get(key, key)
        parts.append(f'<figure id="plot-{escape(key)}"><img alt="{escape(key)}" src="{_data_uri(png)}">'
                     f"<figcaption>{escape(caption)}</figcaption></figure>")
    parts.append("<h2>Layers (per inference)</h2>")
    rows = []
    for l in e.layers:
        ratio = f"{l.energy_pj / l.ann_energy_pj:.3f}" if l.ann_energy_pj else "-"
        rows.append([l.name, l.op, l.role, l.counting, si(l.sops.sum()), si(l.macs.sum()), joules(l.energy_pj),
                     si(l.ann_macs), joules(l.ann_energy_pj), ratio])
    rows.append(["total", "", "", "", si(e.sops), si(e.macs), joules(e.energy_pj), si(e.ann_macs),
                 joules(e.ann_energy_pj), f"{e.energy_ratio:.3f}"])
    parts.append(_table(["layer", "op", "role", "count", "SOPs", "MACs", "energy", "ANN MACs", "ANN energy", "SNN/ANN"], rows, 4))
    parts.append("<h2>Spiking layers</h2>")
    rows = [[n.site, n.op, n.neurons, f"{n.rate:.4f}", " ".join(f"{r:.3f}" for r in n.rate_per_step)] for n in e.neurons]
    parts.append(_table(["layer", "op", "neurons", "firing rate", "per step t = 1..T"], rows, 2))
    parts.append("<h2>Anytime accuracy</h2>")
    rows = [[p.t, pct(p.accuracy), pct(p.agreement), f"{p.firing_rate:.4f}", joules(p.energy_pj)] for p in run.anytime]
    parts.append(_table(["t", "accuracy", "agreement", "firing rate (1..t)", "energy so far"], rows, 0))
    parts.append("<h2>Configuration</h2>")
    parts.append(f"<pre>{escape(json.dumps(_jsonable(cfg), indent=2, sort_keys=True))}</pre>")
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>snn-onnx report: {escape(run.name)}</title><style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def _jsonable(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)

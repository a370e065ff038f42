"""A self-contained HTML page of a run. It opens on the summary (provenance, headline cards) and
the plots (PNG data URIs); the energy rules, which layers were counted as MACs and why, and the
per-layer, per-step and configuration tables follow, folded when long (``<details>``: no
scripts, no external files)."""

from __future__ import annotations

import base64
import json
from html import escape
from typing import Any, Mapping

from .measure import RunResult
from .tables import joules, pct, si

CSS = """
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 24px auto; max-width: 1240px; padding: 0 16px; color: #222; }
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
.note { background: #fff8e5; border: 1px solid #f0d890; padding: 8px 12px; border-radius: 6px; font-size: 13px; margin-top: 10px; }
.warn { background: #fdecea; border: 1px solid #f0a8a0; padding: 8px 12px; border-radius: 6px; font-size: 13px; margin-top: 10px; }
details { margin: 10px 0; } summary { cursor: pointer; font-size: 15px; font-weight: bold; padding: 4px 0; }
summary .n { font-weight: normal; color: #666; font-size: 13px; }
pre { background: #f6f6f6; padding: 8px; font-size: 11.5px; overflow-x: auto; }
"""

FOLD_ROWS = 15  # tables with more rows start folded


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


def _fold(title: str, detail: str, body: str, rows: int, anchor: str) -> str:
    """A section that starts folded when it is long (more than FOLD_ROWS rows)."""
    opened = " open" if rows <= FOLD_ROWS else ""
    return (f'<details id="{anchor}"{opened}><summary>{escape(title)} <span class="n">{escape(detail)}</span>'
            f"</summary>{body}</details>")


def _neuron_text(neuron: Mapping[str, Any]) -> str:
    kind = str(neuron.get("kind", "?"))
    opts = [f"{k} {neuron[k]:g}" for k in ("leak",) if k in neuron]
    return kind + (f" ({', '.join(opts)})" if opts else "")


def render(run: RunResult, plots: Mapping[str, bytes], created: str = "", captions: Mapping[str, str] | None = None) -> str:
    """The page: title, provenance, headline cards and the plots first; the energy rules, the
    list of MAC-counted layers and the long tables folded below. ``plots``: PNG bytes by key,
    in page order; ``captions`` by key (default: the panels' own)."""
    from .panels import captions as panel_captions
    from .provenance import lines as provenance_lines, parse

    captions = captions or panel_captions()
    e = run.energy
    cfg = run.config
    neuron = cfg.get("neuron", {})
    data = cfg.get("data", {})
    parts = [f"<h1>snn-onnx report: {escape(run.name)}</h1>"]
    parts.append(
        f'<div class="sub">model {escape(str(cfg.get("model", cfg.get("source", "?"))))} · {escape(_neuron_text(neuron))} '
        f"neuron · T={e.time_steps} · data {escape(str(data.get('name', data.get('source', '?'))))} ({run.samples} samples)"
        f" · {len(e.neurons)} spiking layers, {len(e.layers)} counted layers"
        f"{' · ' + escape(created) if created else ''}</div>"
    )
    prov = parse(cfg.get("provenance", {}))
    lines = provenance_lines({"provenance": prov, "calibration": cfg.get("calibration") or {}})
    random = prov.get("weights_random") or prov.get("calibration_random") or "test_data" in prov
    if lines:
        parts.append(f'<div class="{"warn" if random else "note"}"><b>Provenance.</b> '
                     + "<br>".join(escape(ln) for ln in lines) + "</div>")
    parts.append('<div class="cards">' + "".join([
        _card("SNN accuracy", pct(run.accuracy)), _card("ANN accuracy", pct(run.ann_accuracy)),
        _card("agreement with ANN", pct(run.agreement)), _card("firing rate", f"{e.firing_rate:.4f}"),
        _card("spikes / sample", si(run.anytime[-1].spikes if run.anytime else 0)),
        _card("SOPs / inference", si(e.sops)), _card("MACs / inference", si(e.macs)),
        _card("SNN energy", joules(e.energy_pj)), _card("ANN energy", joules(e.ann_energy_pj)),
        _card("SNN / ANN energy", f"{e.energy_ratio:.3f}"),
    ]) + "</div>")
    if not run.causal:
        parts.append('<div class="note">ParaIF is not causal: the anytime values at t &lt; T are the running mean of '
                     "the T-step run.</div>")
    parts.append("<h2>Plots</h2>")
    for key, png in plots.items():
        caption = captions.get(key, key)
        parts.append(f'<figure id="plot-{escape(key)}"><img alt="{escape(key)}" src="{_data_uri(png)}">'
                     f"<figcaption>{escape(caption)}</figcaption></figure>")
    parts.append("<h2>Details</h2>")
    macs = e.mac_layers()
    note = (
        f"Energy = {e.config.e_ac_pj:g} pJ × SOPs + {e.config.e_mac_pj:g} pJ × MACs; ANN energy = "
        f"{e.config.e_mac_pj:g} pJ × its MACs for one pass. SOPs are exact: each spike counts the outputs it reaches. "
        "Not counted, in either network: neuron state updates, and linear ops (average pooling, Add, reshapes, scaling "
        "by constants), which are folded into the next layer's weights. Rules: docs/energy.md."
    )
    parts.append(f'<div class="note">{note}</div>')
    if macs:
        items = "".join(f"<li><b>{escape(l.name)}</b> ({escape(l.op)}): {escape(l.reason)}</li>" for l in macs)
        parts.append(_fold("Counted as MACs", f"{len(macs)} layers whose input is not a pure spike tensor",
                           f"<ul>{items}</ul>", len(macs), "mac-layers"))
    rows = []
    for l in e.layers:
        ratio = f"{l.energy_pj / l.ann_energy_pj:.3f}" if l.ann_energy_pj else "-"
        rows.append([l.name, l.op, l.role, l.counting, si(l.sops.sum()), si(l.macs.sum()), joules(l.energy_pj),
                     si(l.ann_macs), joules(l.ann_energy_pj), ratio])
    rows.append(["total", "", "", "", si(e.sops), si(e.macs), joules(e.energy_pj), si(e.ann_macs),
                 joules(e.ann_energy_pj), f"{e.energy_ratio:.3f}"])
    parts.append(_fold("Layers (per inference)", f"{len(e.layers)} counted layers, graph order",
                       _table(["layer", "op", "role", "count", "SOPs", "MACs", "energy", "ANN MACs", "ANN energy",
                               "SNN/ANN"], rows, 4), len(rows), "layers"))
    rows = [[n.site, n.op, n.neurons, f"{n.rate:.4f}", " ".join(f"{r:.3f}" for r in n.rate_per_step)] for n in e.neurons]
    parts.append(_fold("Spiking layers", f"{len(e.neurons)} layers, graph order",
                       _table(["layer", "op", "neurons", "firing rate", "per step t = 1..T"], rows, 2), len(rows),
                       "spiking-layers"))
    rows = [[p.t, pct(p.accuracy), pct(p.agreement), f"{p.firing_rate:.4f}", si(p.spikes), joules(p.energy_pj)]
            for p in run.anytime]
    parts.append(_fold("Anytime accuracy", f"t = 1..{len(rows)}",
                       _table(["t", "accuracy", "agreement", "firing rate (1..t)", "spikes so far", "energy so far"],
                              rows, 0), len(rows), "anytime"))
    parts.append(_fold("Configuration", "how the run was made",
                       f"<pre>{escape(json.dumps(_jsonable(cfg), indent=2, sort_keys=True))}</pre>", FOLD_ROWS + 1,
                       "configuration"))
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

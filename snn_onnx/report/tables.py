"""Plain-text tables of a run's headline numbers, layers and anytime accuracy (terminal)."""

from __future__ import annotations

from .measure import RunResult


def si(value: float | None, unit: str = "", digits: int = 3) -> str:
    """``1234567`` -> ``1.23 M``; None -> ``-``."""
    if value is None:
        return "-"
    v = float(value)
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= factor:
            return f"{v / factor:.{digits}g} {prefix}{unit}".rstrip()
    return f"{v:.{digits}g} {unit}".rstrip()


def joules(pj: float | None) -> str:
    """Energy given in picojoules, in the unit that reads best (pJ, nJ, µJ, mJ, J)."""
    if pj is None:
        return "-"
    v = float(pj)
    for factor, unit in ((1e12, "J"), (1e9, "mJ"), (1e6, "µJ"), (1e3, "nJ")):
        if abs(v) >= factor:
            return f"{v / factor:.3g} {unit}"
    return f"{v:.3g} pJ"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def headline_table(run: RunResult) -> str:
    e = run.energy
    cfg = run.config
    neuron = cfg.get("neuron", {}).get("kind", "?")
    data = cfg.get("data", {})
    where = f" on {data.get('name', data.get('source', '?'))}" if data else ""
    rows = [
        ("run", f"{run.name}: {neuron} neuron, T={e.time_steps}{where} ({run.samples} samples)"),
        ("accuracy", f"SNN {pct(run.accuracy)}   ANN {pct(run.ann_accuracy)}   agreement {pct(run.agreement)}"),
        ("firing rate", f"{e.firing_rate:.4f} spikes per neuron per step"),
        ("SOPs", f"{si(e.sops)} per inference   (+ {si(e.macs)} MACs on analog inputs)"),
        ("energy", f"SNN {joules(e.energy_pj)}   ANN {joules(e.ann_energy_pj)} "
                   f"({si(e.ann_macs)} MACs)   SNN/ANN {e.energy_ratio:.3f}"),
        ("costs", f"E_AC {e.config.e_ac_pj:g} pJ, E_MAC {e.config.e_mac_pj:g} pJ"),
    ]
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)


def layer_table(run: RunResult) -> str:
    e = run.energy
    head = f"{'layer':<24} {'op':<13} {'count':<5} {'SOPs':>9} {'MACs':>9} {'energy':>9} {'ANN':>9} {'ratio':>6}"
    lines = [head, "-" * len(head)]
    for l in e.layers:
        ratio = f"{l.energy_pj / l.ann_energy_pj:.2f}" if l.ann_energy_pj else "-"
        lines.append(
            f"{l.name[:24]:<24} {l.op[:13]:<13} {l.counting:<5} {si(l.sops.sum()):>9} {si(l.macs.sum()):>9} "
            f"{joules(l.energy_pj):>9} {joules(l.ann_energy_pj):>9} {ratio:>6}"
        )
    lines.append(
        f"{'total':<24} {'':<13} {'':<5} {si(e.sops):>9} {si(e.macs):>9} {joules(e.energy_pj):>9} "
        f"{joules(e.ann_energy_pj):>9} {e.energy_ratio:>6.2f}"
    )
    macs = e.mac_layers()
    if macs:
        lines.append("counted as MAC (input is not a pure spike tensor):")
        lines += [f"  {l.name}: {l.reason}" for l in macs]
    return "\n".join(lines)


def spiking_table(run: RunResult) -> str:
    head = f"{'spiking layer':<24} {'op':<13} {'neurons':>8} {'rate':>7}  per step (t=1..T)"
    lines = [head, "-" * len(head)]
    for n in run.energy.neurons:
        steps = " ".join(f"{r:.2f}" for r in n.rate_per_step[:16]) + (" …" if len(n.rate_per_step) > 16 else "")
        lines.append(f"{n.site[:24]:<24} {n.op[:13]:<13} {n.neurons:>8} {n.rate:>7.4f}  {steps}")
    return "\n".join(lines)


def anytime_table(run: RunResult) -> str:
    T = len(run.anytime)
    show = sorted({t for t in (1, 2, 4, 8, 16, 32, 64, 128, 256) if t <= T} | {T})
    head = f"{'t':>4}  {'accuracy':>8}  {'agree':>7}  {'rate':>6}  {'energy':>9}"
    lines = [head, "-" * len(head)]
    for p in run.anytime:
        if p.t in show:
            lines.append(f"{p.t:>4}  {pct(p.accuracy):>8}  {pct(p.agreement):>7}  {p.firing_rate:>6.3f}  {joules(p.energy_pj):>9}")
    if not run.causal:
        lines.append("(ParaIF is not causal: values at t < T are the running mean of the T-step run)")
    return "\n".join(lines)


def full_report(run: RunResult) -> str:
    return "\n\n".join([headline_table(run), layer_table(run), spiking_table(run), anytime_table(run)])

"""``--neuron signgd`` on the command line: its options and what ``snn-onnx info`` shows of it."""

from __future__ import annotations

import click
import onnx

from .options import flag


def config(allow_compensation: bool, **if_options):
    """The SignGD configuration; options of the IF-family neurons (--leak, --reset, --v-init,
    --signed-eps) do not apply and are refused."""
    from snn_onnx import SignGDConfig

    given = [flag(k) for k, v in if_options.items() if v is not None]
    if given:
        raise click.UsageError(f"{', '.join(given)} do(es) not apply to the signgd neuron (options of the IF-family "
                               "neurons)")
    return SignGDConfig(allow_compensation=allow_compensation)


def info_lines(model: onnx.ModelProto) -> list[str]:
    """Which form each non-linearity of a SignGD SNN got (SignGD neurons, static, compensated)."""
    from snn_onnx import signgd_forms

    meta = signgd_forms(model)
    if meta is None:
        return []
    forms = meta.get("forms", [])
    counts: dict[str, int] = {}
    for f in forms:
        counts[f["form"]] = counts.get(f["form"], 0) + 1
    lines = [f"SignGD: η_t = {meta['eta0']:g}·{meta['gamma']:g}^(t−1); {meta['encoders']} encoders, "
             f"{meta['decoders']} decoders; non-linearities: "
             + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))]
    for f in forms:
        ops = "/".join(f["ops"])
        if f["form"] == "signgd":
            what = f"SignGD {f['function']} ({f['kind']}, {f['neurons']} neuron{'s' if f['neurons'] != 1 else ''})"
        else:
            what = f"{f['form']}: {f.get('why', '')}"
        lines.append(f"  {f['nonlinearity']:<40} {ops:<28} {what}")
    return lines

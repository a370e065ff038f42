"""``--neuron signgd`` on the command line: its options and what ``snn-onnx info`` shows of it."""

from __future__ import annotations

import click
import onnx

from .correction_opts import CORRECTION_OPTIONS
from .options import flag, given, refuse


def config(allow_compensation: bool, calib_method: str | None = None, **if_options):
    """The SignGD configuration; options of the IF-family neurons (--leak, --reset, --v-init,
    --signed-eps), the corrections and the ReLU threshold methods do not apply and are refused."""
    from snn_onnx import SignGDConfig

    refuse(CORRECTION_OPTIONS, "the corrections adjust IF / ParaIF neurons; SignGD neurons track f itself")
    if calib_method in ("mse", "ltb") and given("calib_method"):
        raise click.UsageError(f"--calib-method {calib_method} does not apply to --neuron signgd: its amplitudes are "
                               "the max (or --calib-method percentile) of |f(x)| (docs/signgd.md)")
    set_if = [flag(k) for k, v in if_options.items() if v is not None]
    if set_if:
        raise click.UsageError(f"{', '.join(set_if)} do(es) not apply to the signgd neuron (options of the IF-family "
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

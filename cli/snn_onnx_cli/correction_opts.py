"""CLI options of the post-conversion corrections (``snn_onnx.CorrectionConfig``,
docs/fidelity.md): one decorator that adds the flags and hands the command a ``corrections``
argument (a ``CorrectionConfig``) instead."""

from __future__ import annotations

import functools

import click

#: the options' parameter names (for the CLI's refusals where they do not apply)
CORRECTION_OPTIONS = ("bias_correction", "potential_correction", "threshold_shift", "correction_samples")


def correction_options(fn):
    """``--bias-correction``, ``--potential-correction``, ``--threshold-shift``,
    ``--correction-samples`` → ``corrections=CorrectionConfig(...)``."""

    @functools.wraps(fn)
    def wrapper(*args, bias_correction, potential_correction, threshold_shift, correction_samples, **kwargs):
        from snn_onnx import CorrectionConfig

        from .options import given

        if given("correction_samples") and not (bias_correction or potential_correction):
            raise click.UsageError("--correction-samples does not apply: it sets the samples of --bias-correction / "
                                   "--potential-correction")
        kwargs["corrections"] = CorrectionConfig(bias=bias_correction, potential=potential_correction,
                                                 shift=threshold_shift, samples=correction_samples)
        return fn(*args, **kwargs)

    for opt in reversed([
        click.option("--bias-correction", is_flag=True,
                     help="Correct each ReLU neuron's mean error per channel, layer by layer (Li et al., ICML 2021)."),
        click.option("--potential-correction", is_flag=True,
                     help="Correct each neuron's initial membrane potential, layer by layer (Li et al., ICML 2021)."),
        click.option("--threshold-shift", is_flag=True,
                     help="Membrane from 0 plus θ/(2T) per step instead of v_init 0.5 (Deng & Gu, ICLR 2021)."),
        click.option("--correction-samples", type=click.IntRange(min=1), default=128, show_default=True,
                     help="Calibration samples the bias / potential corrections are measured on."),
    ]):
        wrapper = opt(wrapper)
    return wrapper

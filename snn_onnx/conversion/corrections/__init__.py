"""Calibration for ordinary networks (ReLU CNNs not trained for conversion): threshold methods
and post-conversion corrections, each a separate option, each from a published method run on
the calibration samples with ONNX Runtime. docs/fidelity.md measures them.

Threshold methods (``CalibrationConfig(method=...)``, CLI ``--calib-method``), besides ``max``
and ``percentile`` (``calibrate.py``):

* ``mse`` — least squared error of the neuron's clip-and-round at T steps (Li et al., ICML 2021),
  :func:`.thresholds.mse_thresholds`;
* ``ltb`` — local threshold balancing (Bu, Li & Yu, CVPR 2025), :func:`.thresholds.ltb_thresholds`.

Corrections of the built SNN (``convert(corrections=CorrectionConfig(...))``), :mod:`.layerwise`:

* ``shift`` — θ/(2T) per step from a membrane at 0 (Deng & Gu, ICLR 2021);
* ``bias`` — per-channel bias correction, layer by layer (Li et al., ICML 2021);
* ``potential`` — per-neuron initial-potential correction, layer by layer (Li et al., ICML 2021).

The initial potential θ/2 of every neuron (``v_init = 0.5``, Bu et al., AAAI 2022, "Optimized
potential initialization for low-latency spiking neural networks") is the neurons' default.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from ..calibrate import CalibrationConfig, SiteRequest, collect
from .layerwise import CorrectionConfig, apply, bias_correction, potential_correction, threshold_shift
from .thresholds import ThresholdSite, ltb_thresholds, mse_thresholds, neuron_quantizer

#: threshold methods of this package (``calibrate.py`` has max and percentile)
THRESHOLD_METHODS = ("mse", "ltb")

__all__ = [
    "CorrectionConfig", "THRESHOLD_METHODS", "ThresholdSite", "apply", "bias_correction", "ltb_thresholds",
    "mse_thresholds", "neuron_quantizer", "potential_correction", "refuse_for_multi_threshold", "site_thresholds",
    "threshold_shift",
]


def refuse_for_multi_threshold(corrections: CorrectionConfig) -> None:
    """The corrections of IF / ParaIF neurons do not apply to transformer mode. (The threshold
    method, like max and percentile, sets CNN thresholds only: the CLI refuses it when given.)"""
    from ...errors import ConversionError

    if corrections.active:
        raise ConversionError("the bias / potential corrections and the threshold shift apply to IF / ParaIF "
                              "neurons (cnn mode), not to the multi-threshold neurons of transformer mode")


def site_thresholds(ann: onnx.ModelProto, sites: list[Any], requests: list[SiteRequest], inputs: dict[str, np.ndarray],
                    config: CalibrationConfig, time_steps: int | None, v_init: float | None,
                    progress=None) -> dict[str, Any]:
    """Thresholds of the calibrated CNN sites by ``config.method``: ``max`` / ``percentile``
    (``calibrate.collect``), ``mse`` or ``ltb``. ``sites`` are the rule's sites (for ``ltb``,
    which clips each activation chain), ``requests`` their calibration requests."""
    if config.method == "mse":
        if time_steps is None:
            from ...errors import CalibrationError

            raise CalibrationError("the mse threshold method fits the neuron at T steps: give time_steps")
        return mse_thresholds(ann, requests, inputs, config, time_steps, 0.5 if v_init is None else v_init, progress)
    if config.method == "ltb":
        tsites = [ThresholdSite(s.name, s.input.name, tuple(n.outputs[0].name for n in s.nodes), r.channel_axis)
                  for s, r in zip(sites, requests)]
        return ltb_thresholds(ann, tsites, inputs, config, progress)
    return collect(ann, requests, inputs, config, progress)

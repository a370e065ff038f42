"""Conversion modes: which rules place the neurons, how their thresholds are calibrated, and
what the metadata says about them. The pipeline runs every mode the same way:

    sites = mode.sites(graph)                                   # rules
    stats = mode.calibrate(ann, sites, inputs, config, progress) # thresholds the ANN lacks
    records = mode.place(builder, sites, stats, spike_counts)   # neurons in the graph

and compensates, places time and validates whatever the mode. A new mode (a new neuron family)
is a class here with those three methods, chosen in :func:`choose`.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import onnx
import onnx_ir as ir

from ..errors import CalibrationError, ConversionError
from . import transformer
from .calibrate import CalibrationConfig, SiteRequest
from .corrections import site_thresholds
from .rewrite import NeuronConfig, NeuronRecord, SnnBuilder
from .rules import Site
from .transformer import MultiThresholdConfig

Progress = Callable[[int], None]


class CnnMode:
    """ReLU / clip / staircase activations (the activation rule's sites) become IF or ParaIF
    neurons; ReLU thresholds are calibrated (max or percentile), the others come from the ANN."""

    name = "cnn"

    def __init__(self, neuron: NeuronConfig, calibration: CalibrationConfig, sites: list[Site],
                 time_steps: int | None = None):
        self.neuron, self.calibration, self._sites = neuron, calibration, sites
        self.time_steps = time_steps  # the mse threshold fits the neuron at T steps

    def sites(self, graph: ir.Graph) -> list[Site]:
        if not self._sites:
            raise ConversionError(
                "the model has no ReLU, clip(0, λ) or staircase activation after a weight layer to turn into "
                "IF / ParaIF neurons; --mode transformer (or auto) puts multi-threshold neurons on the inputs "
                "of its weight layers instead"
            )
        for s in self._sites:  # a per-channel offset needs ParaIF's per-channel bias
            v = None if s.function is None or s.function.v_init is None else np.asarray(s.function.v_init).ravel()
            if v is not None and self.neuron.kind != "paraif" and not np.all(v == v[0]):
                node = s.nodes[-1]
                raise ConversionError(
                    f"site '{s.name}': the staircase's offset differs between channels; only ParaIF takes a "
                    "per-channel bias (use neuron='paraif' / --neuron paraif)", node.name, node.op_type)
        return self._sites

    def calibrate(self, ann: onnx.ModelProto, sites: list[Site], inputs, config: CalibrationConfig,
                  progress: Progress | None) -> dict[str, Any]:
        need = [s for s in sites if s.threshold is None]
        requests = [SiteRequest(s.name, s.input.name, _channel_axis(s)) for s in need]
        return site_thresholds(ann, need, requests, inputs, config, self.time_steps, self.neuron.v_init, progress)

    def calibrated(self, sites: list[Site]) -> int:
        return sum(s.threshold is None for s in sites)

    def place(self, builder: SnnBuilder, sites: list[Site], stats: dict[str, Any], spike_counts: bool) -> list[NeuronRecord]:
        return [self._place(builder, s, stats, spike_counts) for s in sites]

    def _place(self, builder: SnnBuilder, site: Site, stats, spike_counts: bool) -> NeuronRecord:
        cfg, dead = self.neuron, []
        if site.threshold is not None:
            th, axis, src = site.threshold, site.channel_axis, site.kind
        else:
            th, dead = stats[site.name]
            axis, src = _channel_axis(site), f"calibration:{self.calibration.method}"
        th = np.asarray(th, dtype=np.float32)
        if not np.all(np.isfinite(th)) or np.any(th <= 0):
            raise CalibrationError(f"site '{site.name}': threshold must be finite and > 0, got {th.ravel()[:4]}")
        fn = site.function
        if fn is not None and fn.v_init is not None:
            v_init = fn.v_init
            if cfg.v_init is not None and not np.allclose(fn.v_init, cfg.v_init, atol=1e-6):
                node = site.nodes[-1]
                raise ConversionError(
                    f"v_init={cfg.v_init} does not apply to the staircase activation '{site.name}': its own offset "
                    f"fixes the neuron's initial membrane at v_init={_floats(fn.v_init)[0]:g} (leave v_init unset)",
                    node.name, node.op_type,
                )
        else:
            v_init = 0.5 if cfg.v_init is None else cfg.v_init
        node, counts = builder.add_neuron(site, th, axis, cfg, spike_counts, v_init)
        extra: dict[str, Any] = {"recognised_as": site.recognised(), "nodes": [n.name for n in site.nodes]}
        if fn is not None and fn.family == "staircase":
            extra["staircase"] = {
                "levels": fn.levels,
                "step_in": _floats(fn.step_in),
                "step_out": _floats(fn.step_out),
                "first_jump": _floats(fn.first_jump),
                "v_init": _floats(fn.v_init),
                "input_shift": _floats(fn.input_shift) if fn.input_shift is not None else None,
                "output_offset": _floats(fn.output_offset) if fn.output_offset is not None else None,
                "channel_axis": fn.channel_axis,
            }
        return NeuronRecord(
            site=site.name, kind=site.kind, op=node.op_type, node=node.name, input=site.input.name,
            output=site.output.name, counts=counts, threshold=[float(v) for v in th.ravel()],
            channel_axis=axis if th.ndim == 1 else None, threshold_source=src, dead_channels=len(dead),
            levels=site.levels, extra=extra,
        )

    def describe(self) -> dict[str, Any]:
        return self.neuron.describe()

    @property
    def neuron_name(self) -> str:
        return self.neuron.kind

    def exact_time_steps(self, records: list[NeuronRecord]) -> int | None:
        """T at which the SNN must reproduce the ANN: every neuron ParaIF on a staircase with the
        same number of levels L (then T = L; -1 when the staircases differ); None otherwise."""
        if self.neuron.kind != "paraif" or not records or any(r.kind != "staircase" for r in records):
            return None
        levels = {r.levels for r in records}
        return levels.pop() if len(levels) == 1 else -1


class MultiThresholdMode:
    """A two-sided MultiThresholdNeuron on every activation input of a weight layer other than
    the head (transformers; CNNs with no ReLU-family activation), percentile-calibrated."""

    name = "transformer"

    def __init__(self, config: MultiThresholdConfig):
        self.config = config

    def sites(self, graph: ir.Graph) -> list[transformer.MTSite]:
        return transformer.select_sites(graph, self.config.sites)

    def calibrate(self, ann, sites, inputs, config: CalibrationConfig, progress: Progress | None) -> dict[str, Any]:
        return transformer.calibrate_sites(ann, sites, inputs, config, self.config, progress)

    def calibrated(self, sites: list) -> int:
        return len(sites)

    def place(self, builder: SnnBuilder, sites, stats, spike_counts: bool) -> list:
        return transformer.place_neurons(builder, sites, stats, self.config, spike_counts)

    def describe(self) -> dict[str, Any]:
        return self.config.describe()

    neuron_name = "multi_threshold"

    def exact_time_steps(self, records: list) -> int | None:
        return None


def choose(graph: ir.Graph, mode: str, cnn_sites: list[Site], neuron: NeuronConfig,
           multi_threshold: MultiThresholdConfig, calibration: CalibrationConfig,
           time_steps: int | None = None) -> CnnMode | MultiThresholdMode:
    """The mode ``mode`` names, or for "auto" the one that fits the graph (transformer.choose_mode)."""
    chosen = transformer.choose_mode(graph, mode, n_neuron_sites=len(cnn_sites),
                                     has_staircase=any(s.kind == "staircase" for s in cnn_sites))
    if chosen == "cnn":
        return CnnMode(neuron, calibration, cnn_sites, time_steps)
    return MultiThresholdMode(multi_threshold)


def _channel_axis(site: Site) -> int:
    rank = len(site.input.shape) if site.input.shape is not None else 4
    return -1 if rank == 3 else 1


def _floats(a) -> list[float]:
    return [float(v) for v in np.asarray(a, np.float64).ravel()]

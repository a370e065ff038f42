"""Helpers of the energy tests: small torch networks converted to SNNs, a debug copy of an SNN
that also returns its spike tensors, and an independent brute-force SOP count in PyTorch."""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
import onnx

import snn_onnx
from snn_onnx import metadata as md

torch = None  # set by load_torch()


def load_torch():
    global torch
    import torch as _torch

    torch = _torch
    return _torch


def convert_module(module, input_shape: tuple[int, ...], T: int = 4, neuron: str = "if", n_calib: int = 32, seed: int = 0,
                   mode: str = "cnn"):
    """Export ``module`` (legacy exporter: fast) and convert it; calibration on seeded random data.
    CNN mode by default (ReLU -> IF / ParaIF), also for the attention block, whose accounting
    of compensated products is what its test checks."""
    from snn_onnx.export.torch_export import export_module

    ann = export_module(module.eval(), input_shape, exporter="legacy")
    x = np.random.default_rng(seed).standard_normal((n_calib, *input_shape)).astype(np.float32)
    res = snn_onnx.convert(ann, time_steps=T, neuron=neuron, data=x, parity_samples=8, mode=mode)
    return ann, res.model


def run_debug(snn: onnx.ModelProto, x: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Run a test-only copy of ``snn`` whose graph also outputs every spiking layer's spike
    tensor. Returns (spike tensors ``[T*B, *N]``, count outputs ``[T, *N]``) by site."""
    from snn_onnx.runtime.session import make_session

    sites = md.read(snn)["sites"]
    dbg = onnx.ModelProto()
    dbg.CopyFrom(snn)
    for s in sites:
        dbg.graph.output.append(onnx.ValueInfoProto(name=s["output"]))
    sess = make_session(dbg)
    names = [s["output"] for s in sites] + [s["counts"] for s in sites]
    values = sess.run(names, {sess.get_inputs()[0].name: x})
    n = len(sites)
    spikes = {s["site"]: v for s, v in zip(sites, values[:n])}
    counts = {s["site"]: v for s, v in zip(sites, values[n:])}
    return spikes, counts


def positive_weights(module, low: float = 0.5, high: float = 1.0, seed: int = 0) -> None:
    """Weights with |w| in [low, high] (random sign): no synapse is (nearly) zero, so a brute
    force sees every connection."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            mag = low + (high - low) * torch.rand(p.shape, generator=g)
            sign = torch.where(torch.rand(p.shape, generator=g) < 0.5, -1.0, 1.0)
            p.copy_(mag * sign)


def brute_force_fanout(fn: Callable[..., "torch.Tensor"], shapes: Mapping[str, tuple[int, ...]], site: str) -> np.ndarray:
    """For every element of source ``site`` (per-sample shape), the number of outputs of ``fn``
    whose value changes when only that element changes (float64, all other sources zero)."""
    n = int(np.prod(shapes[site]))
    zeros = {k: torch.zeros((1, *s), dtype=torch.float64) for k, s in shapes.items()}
    with torch.no_grad():
        base = fn(**zeros)
        eye = torch.eye(n, dtype=torch.float64).reshape(n, *shapes[site])
        args = {k: (eye if k == site else v.expand(n, *v.shape[1:])) for k, v in zeros.items()}
        out = fn(**args)
    diff = (out - base).reshape(n, -1).abs()
    return (diff > 1e-9).sum(dim=1).numpy().astype(np.int64)


def brute_force_sops(spikes: np.ndarray, fanout: np.ndarray, T: int) -> np.ndarray:
    """SOPs per step: every spike (non-zero element of the spike tensor ``[T*B, *N]``) costs the
    fan-out of its position."""
    s = (spikes != 0).reshape(T, -1, fanout.size)
    return (s.sum(axis=1) * fanout[None, :]).sum(axis=1)

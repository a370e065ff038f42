"""QCFS activation (quantization-clip-floor-shift) and helpers to put it into torch models.

QCFS (Bu et al., ICLR 2022; used with the parallel spiking neuron of Hao et al., ICML 2025)
replaces ReLU in an ANN that is to be converted into an SNN::

    y = λ/L * clamp(floor(x * L/λ + shift), 0, L)

with a learnable threshold λ (scalar, or one per channel), ``L`` quantization levels and
``shift = 0.5``. A network trained with it and converted with ``ParaIFNeuron`` at
``T = L`` time steps reproduces the ANN's outputs to float tolerance (docs/ops.md).
The NumPy definition is :func:`snn_onnx.ops.reference.qcfs`; :class:`QCFS` in eval mode
computes exactly the same float32 expression.

Exported ONNX pattern
---------------------
In eval mode, ``torch.onnx.export(model, (x,), path, dynamo=True, ...)`` (torch 2.14, after
the exporter's own optimizer has folded constants) emits for every QCFS site exactly this
chain of five standard ONNX nodes, each consuming the previous one's output::

    y1 = Mul(x, c1)            c1 = L/λ       float32 initializer
    y2 = Add(y1, s)            s  = shift     float32 scalar initializer (0.5)
    y3 = Floor(y2)
    y4 = Clip(y3, lo, hi)      lo = 0.0, hi = L   float32 scalar initializers (inputs 1, 2)
    y  = Mul(y4, c2)           c2 = λ/L       float32 initializer

* The activation input is always input 0 of the first Mul / of the Add / of the Clip, and
  the previous node's output is input 0 of the last Mul; constants are always input 1
  (inputs 1 and 2 for Clip).
* ``c1`` and ``c2`` are graph initializers (not ``Constant`` nodes) holding float32 values
  computed in float32 exactly as in torch: ``c1 = float32(L) / λ``, ``c2 = λ / float32(L)``.
  Scalar λ: shape ``[]``. Per-channel λ (``num_channels=C``): shape ``[1, C, 1, 1]`` for a
  4-D (NCHW) input, ``[1, C]`` for a 2-D input (in general ``[1, C] + [1] * (rank - 2)``).
* Recover the QCFS parameters from the pattern as ``L = hi`` (an integer-valued float) and
  ``λ = c2 * L`` (or ``L / c1``); the shift is the Add constant.
* The exporter deduplicates equal initializers: the ``0.5``, ``0.0`` and ``L`` scalars are
  usually one initializer shared by all sites, and two sites with identical λ share their
  ``c1`` / ``c2`` too. Never assume a constant has a single consumer.
* Initializer names are exporter-chosen (``mul_2``, ``div``, ``val_1``, ``floor_min`` …);
  match on structure and values, not on names.

Training mode takes a different code path (a straight-through estimator for ``floor``, as
in Bu et al.'s reference code) that is never traced by the eval-mode export.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

__all__ = ["QCFS", "qcfsify", "calibrate_thresholds", "qcfs_modules"]


class _FloorSTE(torch.autograd.Function):
    """``floor`` forward, identity gradient backward (straight-through estimator)."""

    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        return torch.floor(x)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return grad


class QCFS(nn.Module):
    """Quantization-clip-floor-shift activation ``λ/L * clamp(floor(x*L/λ + shift), 0, L)``.

    Args:
        levels: number of quantization levels ``L`` (>= 1); convert with ``T = L``.
        threshold: initial λ (> 0).
        num_channels: ``None`` for one scalar λ, or ``C`` for one λ per channel (dimension 1
            of the input).
        shift: the shift added before ``floor`` (0.5 is the value that makes the expected
            conversion error zero; keep it).
        learnable: whether λ is a trainable parameter (it is a parameter either way, so it
            sits in the state dict).

    See the module docstring for the exact ONNX node chain the eval-mode export produces.
    """

    def __init__(
        self,
        levels: int = 8,
        threshold: float = 1.0,
        num_channels: int | None = None,
        shift: float = 0.5,
        learnable: bool = True,
    ) -> None:
        super().__init__()
        if int(levels) != levels or levels < 1:
            raise ValueError(f"QCFS: levels must be an integer >= 1, got {levels!r}")
        if not threshold > 0:
            raise ValueError(f"QCFS: threshold must be > 0, got {threshold!r}")
        if num_channels is not None and num_channels < 1:
            raise ValueError(f"QCFS: num_channels must be >= 1 or None, got {num_channels!r}")
        self.levels = int(levels)
        self.shift = float(shift)
        shape = () if num_channels is None else (int(num_channels),)
        self.threshold = nn.Parameter(
            torch.full(shape, float(threshold), dtype=torch.float32), requires_grad=learnable
        )

    @property
    def per_channel(self) -> bool:
        return self.threshold.ndim == 1

    def _lam(self, x: torch.Tensor) -> torch.Tensor:
        lam = self.threshold
        if lam.ndim == 1:
            if x.ndim < 2:
                raise ValueError("QCFS: a per-channel threshold needs an input of rank >= 2")
            lam = lam.reshape([1, -1] + [1] * (x.ndim - 2))
        return lam

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lam = self._lam(x)
        if self.training:
            # Straight-through floor; clamp first (Bu et al.'s formulation: identical values,
            # gradients flow to λ through the clipped region and the output scale).
            y = torch.clamp(x / lam, 0.0, 1.0)
            y = _FloorSTE.apply(y * self.levels + self.shift) / self.levels
            return y * lam
        # Eval / export path: this exact expression order is the documented ONNX pattern
        # Mul(x, L/λ) -> Add(shift) -> Floor -> Clip(0, L) -> Mul(λ/L).
        # c1 = full(L) / λ, a true float32 division: `L / lam` with a Python number would
        # run as `reciprocal(lam) * L`, which can differ from L/λ by one ulp.
        c1 = torch.full_like(lam, float(self.levels)) / lam
        y = torch.floor(x * c1 + self.shift)
        y = torch.clamp(y, 0.0, float(self.levels))
        return y * (lam / self.levels)

    def extra_repr(self) -> str:
        th = self.threshold.detach()
        lam = f"{float(th):.4g}" if th.ndim == 0 else f"per-channel[{th.shape[0]}]"
        return f"levels={self.levels}, threshold={lam}, shift={self.shift}"


def qcfs_modules(model: nn.Module) -> list[tuple[str, QCFS]]:
    """All distinct QCFS modules of ``model`` with their qualified names, in registration order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, QCFS)]


def qcfsify(
    model: nn.Module,
    levels: int,
    init_threshold: float | None = None,
) -> nn.Module:
    """Replace every ``nn.ReLU`` / ``nn.ReLU6`` module of ``model`` by :class:`QCFS` in place.

    ``init_threshold`` is the initial λ; by default 1.0 for ReLU and 6.0 for ReLU6. A module
    instance registered at several places (or called several times) is replaced by a single
    QCFS instance, so it keeps sharing its λ. Thresholds are scalar; for one λ per channel
    call :func:`calibrate_thresholds` with ``per_channel=True`` (it sees the channel counts).

    Activations written as functions (``F.relu`` in ``forward``) are not modules and cannot be
    replaced; if the model has no ReLU module at all, ``ValueError`` is raised.
    Returns ``model``.
    """
    if init_threshold is not None and not init_threshold > 0:
        raise ValueError(f"qcfsify: init_threshold must be > 0, got {init_threshold!r}")
    replaced: dict[int, QCFS] = {}

    def visit(parent: nn.Module) -> None:
        # _modules, not named_children(): the latter skips a second registration of a module
        for name, child in list(parent._modules.items()):
            if child is None:
                continue
            if isinstance(child, (nn.ReLU, nn.ReLU6)):
                q = replaced.get(id(child))
                if q is None:
                    default = 6.0 if isinstance(child, nn.ReLU6) else 1.0
                    th = default if init_threshold is None else init_threshold
                    q = QCFS(levels=levels, threshold=th)
                    replaced[id(child)] = q
                setattr(parent, name, q)
            elif not isinstance(child, QCFS):
                visit(child)

    if isinstance(model, (nn.ReLU, nn.ReLU6)):
        raise ValueError("qcfsify: the model itself is a ReLU; wrap it in a container")
    visit(model)
    if not replaced:
        raise ValueError(
            f"qcfsify: no nn.ReLU / nn.ReLU6 module found in {type(model).__name__}; "
            "activations called as functions (F.relu) or other activation types cannot be "
            "replaced"
        )
    return model


@torch.no_grad()
def calibrate_thresholds(
    model: nn.Module,
    x: torch.Tensor | Iterable[torch.Tensor],
    percentile: float = 99.9,
    per_channel: bool = False,
    min_threshold: float = 1e-3,
) -> dict[str, torch.Tensor]:
    """Set every QCFS λ from sample data and return ``{module name: λ}``.

    λ of a site is the ``percentile`` of the positive part ``max(x, 0)`` of that site's input
    (per channel along dimension 1 with ``per_channel=True``; a scalar threshold is then
    replaced by a ``[C]`` parameter). Thresholds are set sequentially during one forward pass
    (each site is calibrated on inputs produced by the already calibrated sites before it),
    in the model's current mode; eval mode is the usual choice. ``x`` may be one batch or an
    iterable of batches (statistics are then gathered over all of them, site by site in one
    pass per batch, keeping the largest λ seen). A site whose percentile is not positive gets
    its maximum input, or ``min_threshold``.
    """
    if not 0 < percentile <= 100:
        raise ValueError(f"calibrate_thresholds: percentile must be in (0, 100], got {percentile}")
    sites = qcfs_modules(model)
    if not sites:
        raise ValueError(f"calibrate_thresholds: {type(model).__name__} has no QCFS module")
    batches = [x] if isinstance(x, torch.Tensor) else list(x)
    if not batches:
        raise ValueError("calibrate_thresholds: no sample data given")
    name_of = {id(m): n for n, m in sites}
    best: dict[str, torch.Tensor] = {}

    def stat(inp: torch.Tensor, channels: bool) -> torch.Tensor:
        v = torch.clamp(inp.detach().to(torch.float64), min=0.0)
        if channels:
            v = v.transpose(0, 1).reshape(v.shape[1], -1)
            q = torch.from_numpy(_percentile(v.numpy(), percentile, axis=1))
            mx = v.amax(dim=1)
        else:
            q = torch.tensor(_percentile(v.reshape(-1).numpy(), percentile, axis=0))
            mx = v.max()
        q = torch.where(q > 0, q, mx)
        return torch.clamp(q, min=min_threshold).to(torch.float32)

    def pre_hook(module: nn.Module, args: tuple) -> None:
        name = name_of[id(module)]
        inp = args[0]
        channels = per_channel or module.threshold.ndim == 1
        lam = stat(inp, channels)
        if name in best:
            lam = torch.maximum(lam, best[name])
        best[name] = lam
        if module.threshold.shape != lam.shape:
            module.threshold = nn.Parameter(
                lam.clone().to(module.threshold.device), requires_grad=module.threshold.requires_grad
            )
        else:
            module.threshold.copy_(lam)

    handles = [m.register_forward_pre_hook(pre_hook) for _, m in sites]
    try:
        for b in batches:
            model(b)
    finally:
        for h in handles:
            h.remove()
    missing = [n for n, _ in sites if n not in best]
    if missing:
        raise ValueError(f"calibrate_thresholds: QCFS modules never called in forward: {missing}")
    return {n: m.threshold.detach().clone() for n, m in sites}


def _percentile(a, q: float, axis: int):
    import numpy as np

    return np.percentile(a, q, axis=axis)

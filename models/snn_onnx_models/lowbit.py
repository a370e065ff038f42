"""The NB-SNN / Fast-SNN activation quantizer: low-bit ANNs that convert to signed IF SNNs.

A b-bit quantizer with ``L = 2^b − 1`` levels replaces ReLU::

    y = α · round(clamp(relu(x) / α, 0, 1) · L) / L

with a learnable clipping level α (one per layer). Its output takes the values ``α·k/L``,
``k = 0..L``: a staircase whose k-th step is at ``x = α·(k − ½)/L``. An integrate-and-fire
neuron with threshold θ = α and initial membrane ``½·θ``, fed a constant input for
``T = L`` steps, fires ``clamp(floor(x·L/α + ½), 0, L)`` times: the same level (round and
floor(· + ½) differ only on the exact half-way inputs, where torch rounds half to even). So
the first spiking layer is exact at ``T = 2^b − 1``; deeper layers see inputs that vary over
time and a signed IF neuron (which may fire −1) takes back early over-firing (Fast-SNN,
Hu et al.; NB-SNN). ``docs/low_bit.md`` has the measured table.

Training mode rounds with a straight-through estimator (identity gradient through
``round``), so the gradient reaches α through the division, the clamp and the output scale.
Eval mode (and so the ONNX export, with either torch exporter) computes the formula in the
order written: ``Relu → Div(α) → Clip(0, 1) → Mul(L) → Round → Div(L) → Mul(α)``.
snn-onnx's activation rule recognises it by what it computes (a staircase with L levels,
θ = α, v_init = ½; ``docs/design.md``), not by this spelling.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["NBQuant", "nb_quant_modules", "levels_for_bits"]


def levels_for_bits(bits: int) -> int:
    """``L = 2^b − 1``: the quantization levels above zero of a b-bit unsigned activation."""
    if int(bits) != bits or not 1 <= bits <= 16:
        raise ValueError(f"bits must be an integer in [1, 16], got {bits!r}")
    return (1 << int(bits)) - 1


class _RoundSTE(torch.autograd.Function):
    """``round`` forward (half to even, as torch.round), identity gradient backward."""

    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return grad


class NBQuant(nn.Module):
    """``α · round(clamp(relu(x)/α, 0, 1) · L)/L`` with ``L = 2^bits − 1`` and learnable α > 0.

    Args:
        bits: activation bit width b (L = 2^b − 1 levels above zero; convert with T = L).
        alpha: initial clipping level α (> 0); a scalar parameter in the state dict.
        learnable: whether α is trained.
    """

    def __init__(self, bits: int, alpha: float = 1.0, learnable: bool = True) -> None:
        super().__init__()
        self.levels = levels_for_bits(bits)
        self.bits = int(bits)
        if not alpha > 0:
            raise ValueError(f"NBQuant: alpha must be > 0, got {alpha!r}")
        self.alpha = nn.Parameter(torch.tensor(float(alpha), dtype=torch.float32), requires_grad=learnable)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # α may drift towards 0 in training; a floor keeps the division finite
        alpha = torch.clamp(self.alpha, min=1e-4) if self.training else self.alpha
        y = torch.clamp(torch.relu(x) / alpha, 0.0, 1.0) * self.levels
        y = _RoundSTE.apply(y) if self.training else torch.round(y)
        return y / self.levels * alpha

    def extra_repr(self) -> str:
        return f"bits={self.bits}, levels={self.levels}, alpha={float(self.alpha.detach()):.4g}"


def nb_quant_modules(model: nn.Module) -> list[tuple[str, NBQuant]]:
    """Every NBQuant of ``model`` with its qualified name, in registration order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, NBQuant)]

"""Low-bit digits CNNs: the example architecture with NB-SNN activation quantizers.

The layers of the example model (``digits_cnn.DigitsQCFSCNN``: conv(1→16)-BN, conv(16→32)-BN,
avgpool, conv(32→64)-BN, avgpool, Linear(256→10)) with :class:`~snn_onnx_models.lowbit.NBQuant`
at b bits (``L = 2^b − 1`` levels) after each BatchNorm, or ReLU for the full-precision
network (``bits=None``) the quantized ones are fine-tuned from. ``models/train_digits_lowbit.py``
trains the full-precision network and then 2-, 3- and 4-bit versions quantization-aware on
scikit-learn's digits; the weights ship as ``weights/digits_lowbit_{b}bit.{onnx,pt}``.
"""

from __future__ import annotations

import torch
from torch import nn

from . import LOW_BITS, digits_lowbit_path
from .lowbit import NBQuant, levels_for_bits

__all__ = ["DigitsLowBitCNN", "LOW_BITS", "load_digits_lowbit"]


class DigitsLowBitCNN(nn.Module):
    """conv-BN-act ×3 with two 2×2 average pools and a Linear head; act = NBQuant(bits) or ReLU."""

    def __init__(self, bits: int | None = None, channels: tuple[int, int, int] = (16, 32, 64),
                 num_classes: int = 10, alpha: float = 2.0) -> None:
        super().__init__()
        self.bits = bits
        self.levels = levels_for_bits(bits) if bits is not None else None
        c1, c2, c3 = channels

        def block(cin: int, cout: int) -> list[nn.Module]:
            act = nn.ReLU() if bits is None else NBQuant(bits, alpha=alpha)
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), act]

        self.features = nn.Sequential(
            *block(1, c1),
            *block(c1, c2),
            nn.AvgPool2d(2),  # 8x8 -> 4x4
            *block(c2, c3),
            nn.AvgPool2d(2),  # 4x4 -> 2x2
        )
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(c3 * 2 * 2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.features(x)))


def load_digits_lowbit(bits: int, path=None) -> DigitsLowBitCNN:
    """The trained b-bit model (eval mode) from its shipped state dict."""
    model = DigitsLowBitCNN(bits=bits)
    state = torch.load(path or digits_lowbit_path(bits, ".pt"), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()

"""The bundled example model: a small QCFS CNN for scikit-learn's 8×8 digits.

Input ``[B, 1, 8, 8]`` float32 in [0, 1] (pixel / 16, as ``snn_onnx.data.load("digits")``
gives it), output ``[B, 10]`` logits. Three conv-BN-QCFS blocks (16, 32, 64 channels,
3×3, padding 1) with 2×2 average pooling after the second and third, then a Linear head on
the flattened ``64×2×2`` map: 26 k parameters, ``levels`` (L, default 8) QCFS levels, so the
ANN converts exactly to a ParaIF SNN with ``T = L``. Trained by ``models/train_digits.py``.
"""

from __future__ import annotations

import torch
from torch import nn

from .qcfs import QCFS

__all__ = ["DigitsQCFSCNN", "DEFAULT_LEVELS", "load_example_model"]

DEFAULT_LEVELS = 8


class DigitsQCFSCNN(nn.Module):
    """conv(1→16)-BN-QCFS, conv(16→32)-BN-QCFS-avgpool, conv(32→64)-BN-QCFS-avgpool, Linear(256→10).

    ``self.levels`` records L (every QCFS site uses it)."""

    def __init__(self, levels: int = DEFAULT_LEVELS, channels: tuple[int, int, int] = (16, 32, 64),
                 num_classes: int = 10, init_threshold: float = 2.0) -> None:
        super().__init__()
        self.levels = int(levels)
        c1, c2, c3 = channels

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                QCFS(levels=levels, threshold=init_threshold),
            ]

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


def load_example_model(path=None) -> DigitsQCFSCNN:
    """The trained example model (eval mode) from the bundled state dict."""
    from . import EXAMPLE_LEVELS, example_weights_path

    model = DigitsQCFSCNN(levels=EXAMPLE_LEVELS)
    state = torch.load(path or example_weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()

"""Ordinary ReLU networks for scikit-learn's 8×8 digits, trained without any conversion-aware
activation (no QCFS, no clipping): what a new user brings to a converter. The fidelity page
(``benchmarks/fidelity.py`` → ``docs/fidelity.md``) converts them with every calibration method.

Input ``[B, 1, 8, 8]`` float32 in [0, 1] (pixel / 16, as ``snn_onnx.data.load("digits")``
gives it), output ``[B, 10]`` logits. Trained by ``models/train_digits_relu.py``.

* :class:`DigitsReLUCNN` — conv(1→16)-BN-ReLU, conv(16→32)-BN-ReLU, MaxPool 2,
  conv(32→64)-BN-ReLU, MaxPool 2, Linear(256→64)-ReLU, Linear(64→10): 4 ReLU sites.
* :class:`DigitsResNet` — a ResNet-style net: stem conv(1→16)-BN-ReLU, three basic blocks
  (16, 32 stride 2, 64 stride 2; two 3×3 conv-BN each, a 1×1 conv-BN shortcut where the shape
  changes, ReLU after the residual add), global average pooling, Linear(64→10): 7 ReLU sites.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

__all__ = ["DigitsReLUCNN", "DigitsResNet", "MODELS", "weights_path", "onnx_path", "load_model"]

_WEIGHTS = Path(__file__).resolve().parent / "weights"


class DigitsReLUCNN(nn.Module):
    """A plain ReLU CNN with max pooling and a hidden fully connected layer."""

    def __init__(self, channels: tuple[int, int, int] = (16, 32, 64), hidden: int = 64, num_classes: int = 10) -> None:
        super().__init__()
        c1, c2, c3 = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1, bias=False), nn.BatchNorm2d(c1), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, padding=1, bias=False), nn.BatchNorm2d(c2), nn.ReLU(),
            nn.MaxPool2d(2),  # 8x8 -> 4x4
            nn.Conv2d(c2, c3, 3, padding=1, bias=False), nn.BatchNorm2d(c3), nn.ReLU(),
            nn.MaxPool2d(2),  # 4x4 -> 2x2
        )
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(nn.Linear(c3 * 4, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.features(x)))


class BasicBlock(nn.Module):
    """Two 3×3 conv-BN with a ReLU between, the shortcut added, then a ReLU (He et al., 2016)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(y + self.shortcut(x))


class DigitsResNet(nn.Module):
    """Stem conv-BN-ReLU, basic blocks of 16, 32 (stride 2) and 64 (stride 2) channels, global
    average pooling, a Linear head."""

    def __init__(self, channels: tuple[int, int, int] = (16, 32, 64), num_classes: int = 10) -> None:
        super().__init__()
        c1, c2, c3 = channels
        self.stem = nn.Sequential(nn.Conv2d(1, c1, 3, padding=1, bias=False), nn.BatchNorm2d(c1), nn.ReLU())
        self.layer1 = BasicBlock(c1, c1)
        self.layer2 = BasicBlock(c1, c2, stride=2)  # 8x8 -> 4x4
        self.layer3 = BasicBlock(c2, c3, stride=2)  # 4x4 -> 2x2
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(self.flatten(self.pool(x)))


#: name -> class; the weight files are ``weights/<name>.pt`` (state dict) and ``<name>.onnx``.
MODELS = {"digits_relu_cnn": DigitsReLUCNN, "digits_resnet": DigitsResNet}


def weights_path(name: str) -> Path:
    """The torch state dict of a trained model (``name`` in :data:`MODELS`)."""
    return _WEIGHTS / f"{name}.pt"


def onnx_path(name: str) -> Path:
    """The eval-mode ANN as ONNX (input ``input`` ``[B,1,8,8]``, output ``logits``)."""
    return _WEIGHTS / f"{name}.onnx"


def load_model(name: str) -> nn.Module:
    """The trained model (eval mode) from its bundled state dict."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; one of {sorted(MODELS)}")
    model = MODELS[name]()
    model.load_state_dict(torch.load(weights_path(name), map_location="cpu", weights_only=True))
    return model.eval()

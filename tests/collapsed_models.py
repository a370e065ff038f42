"""A small MobileNetV3-style CNN for the collapsed-engine tests: ParaIF neurons (QCFS where
timm's mobilenetv3 has ReLUs) with compensated blocks between them.

Stem conv-BN-QCFS; an inverted-residual block whose expansion uses HardSwish (compensated),
whose depthwise conv is followed by QCFS and a squeeze-excite gate (global average pool ->
conv -> QCFS -> conv -> HardSigmoid, multiplied with the feature map: a product of two
time-varying tensors, compensated); a MaxPool (compensated); a QCFS block; and timm's
mobilenetv3 head (global pool -> 1x1 conv -> HardSwish -> Linear), so the per-step tail after
the last neurons holds a compensated block too. Random init, thresholds calibrated on a
random batch (snn_onnx_models.qcfs.calibrate_thresholds)."""

from __future__ import annotations

import torch
from torch import nn

from snn_onnx_models.qcfs import QCFS, calibrate_thresholds


class _SE(nn.Module):
    def __init__(self, c: int, r: int, levels: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(c, r, 1)
        self.act = QCFS(levels=levels)
        self.expand = nn.Conv2d(r, c, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


class MobileNetLike(nn.Module):
    def __init__(self, levels: int = 8, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), QCFS(levels=levels))
        self.expand = nn.Sequential(nn.Conv2d(16, 32, 1, bias=False), nn.BatchNorm2d(32), nn.Hardswish())
        self.dw = nn.Sequential(nn.Conv2d(32, 32, 3, 1, 1, groups=32, bias=False), nn.BatchNorm2d(32), QCFS(levels=levels))
        self.se = _SE(32, 8, levels)
        self.project = nn.Sequential(nn.Conv2d(32, 16, 1, bias=False), nn.BatchNorm2d(16))
        self.pool = nn.MaxPool2d(2)
        self.block = nn.Sequential(nn.Conv2d(16, 48, 3, 1, 1, bias=False), nn.BatchNorm2d(48), QCFS(levels=levels))
        self.head_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_head = nn.Conv2d(48, 64, 1)
        self.head_act = nn.Hardswish()
        self.classifier = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = x + self.project(self.se(self.dw(self.expand(x))))
        x = self.block(self.pool(x))
        x = self.head_act(self.conv_head(self.head_pool(x)))
        return self.classifier(torch.flatten(x, 1))


def mobilenet_like(levels: int = 8, seed: int = 0, img_size: int = 32) -> nn.Module:
    torch.manual_seed(seed)
    model = MobileNetLike(levels)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(16, 3, img_size, img_size, generator=gen)
    with torch.no_grad():  # BatchNorm statistics from the batch, then eval mode
        model.train()
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = None
        model(x)
    model.eval()
    calibrate_thresholds(model, x, percentile=99.9)
    return model

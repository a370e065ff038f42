"""The event-camera example model: a small CNN for the event digits (``digits-events``,
:mod:`snn_onnx.data.digits_events`).

Input ``[B, 2, 10, 10]``: one frame of ON / OFF event counts (a time bin, or the mean frame
over the T bins); output ``[B, 10]`` logits. conv(2→32)-ReLU, conv(32→64)-ReLU-avgpool2,
conv(64→64, no padding)-ReLU, Linear(576→10); 61.6 k parameters, **no biases** and no
normalisation, so the network is positively homogeneous: ``f(c·x) = c·f(x)`` for c > 0. The
mean frame of T bins is the event-count image divided by T, so the ANN's prediction does not
depend on T, and thresholds calibrated on T-bin frames scale with them. Trained by
``models/train_digits_events.py`` on event-count images; converted with ``--event-input``
(IF, LIF) it reads one frame per time step (docs/events.md).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DigitsEventCNN", "load_digits_event_cnn"]


class DigitsEventCNN(nn.Module):
    def __init__(self, channels: tuple[int, int, int] = (32, 64, 64), num_classes: int = 10) -> None:
        super().__init__()
        c1, c2, c3 = channels
        self.features = nn.Sequential(
            nn.Conv2d(2, c1, 3, padding=1, bias=False), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, padding=1, bias=False), nn.ReLU(),
            nn.AvgPool2d(2),  # 10x10 -> 5x5
            nn.Conv2d(c2, c3, 3, bias=False), nn.ReLU(),  # 5x5 -> 3x3
        )
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(c3 * 3 * 3, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.features(x)))


def load_digits_event_cnn(path=None) -> DigitsEventCNN:
    """The trained model (eval mode) from the bundled state dict."""
    from . import digits_event_cnn_path

    model = DigitsEventCNN()
    state = torch.load(path or digits_event_cnn_path().with_suffix(".pt"), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()

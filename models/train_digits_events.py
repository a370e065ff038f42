#!/usr/bin/env python
"""Train the event-camera example: a bias-free CNN on the event digits (``digits-events``).

The input is a sample's event-count image (ON / OFF counts per pixel, ``[2, 10, 10]``, all
its events binned with tonic into one frame) scaled by 1/16. The network is positively
homogeneous (no biases, ReLU, average pooling), so the mean frame of any T bins (the count
image / T) gets the same prediction, and an SNN that reads one bin per step sees the same
inputs as the ANN on average (docs/events.md).

Deterministic: fixed seeds, ``torch.use_deterministic_algorithms(True)``, one CPU thread.
Trains on the ``train`` split and reports accuracy on ``test`` (never used for training or
selection). Writes, into ``--out`` (default ``models/snn_onnx_models/weights/``):

* ``digits_event_cnn.pt``   — the state dict
* ``digits_event_cnn.onnx`` — the eval-mode ANN (TorchScript export, opset 18, dynamic batch,
  input ``input`` ``[B,2,10,10]``, output ``logits`` ``[B,10]``), metadata
  ``snn_onnx.example.dataset = digits-events`` and ``snn_onnx.example.test_accuracy``
  (measured with ONNX Runtime on the exported file, on mean frames).

Usage: ``python models/train_digits_events.py [--out DIR] [--epochs N]`` (torch, onnx,
onnxruntime, scikit-learn, tonic; under a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
for p in (HERE, HERE.parent):
    if str(p) not in sys.path:
        sys.path.append(str(p))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from snn_onnx.data.events import load_events  # noqa: E402
from snn_onnx_models.digits_event_cnn import DigitsEventCNN  # noqa: E402
from training import accuracy, fit, set_determinism  # noqa: E402

SEED = 0
SCALE = 1 / 16  # count images hold up to ~30 events per pixel
DEFAULT_OUT = HERE / "snn_onnx_models" / "weights"
STEM = "digits_event_cnn"


def count_images(split: str) -> tuple[np.ndarray, np.ndarray]:
    """``[N, 2, 10, 10]`` event-count images (one tonic bin per sample) × SCALE, and labels."""
    d = load_events("digits-events", split)
    return d.frames(1)[0] * np.float32(SCALE), d.labels


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random shifts of up to one pixel (zero fill) and a random overall scale in [0.5, 2]
    (the network is homogeneous, so the scale only exercises its float range)."""
    b, _, h, w = x.shape
    padded = F.pad(x, (1, 1, 1, 1))
    dy = torch.randint(0, 3, (b,), generator=gen)
    dx = torch.randint(0, 3, (b,), generator=gen)
    out = torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(b)])
    scale = torch.exp(torch.empty(b, 1, 1, 1).uniform_(np.log(0.5), np.log(2.0), generator=gen))
    return out * scale


def train(epochs: int, batch_size: int = 64, lr: float = 3e-3, log=print) -> DigitsEventCNN:
    set_determinism(SEED)
    xs, ys = count_images("train")
    x, y = torch.from_numpy(xs), torch.from_numpy(ys)
    model = DigitsEventCNN()
    groups = [{"params": list(model.parameters()), "weight_decay": 1e-4}]
    return fit(model, x, y, groups, epochs=epochs, lr=lr, seed=SEED, augment=augment, batch_size=batch_size, log=log)


def export(model, path: Path, metadata: dict[str, str]) -> None:
    import io

    import onnx

    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(model, (torch.zeros(2, 2, 10, 10),), buf, dynamo=False, opset_version=18,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    proto = onnx.load_from_string(buf.getvalue())
    for k, v in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(proto)
    onnx.save_model(proto, str(path))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--epochs", type=int, default=100)
    args = ap.parse_args(argv)
    t0 = time.time()
    model = train(args.epochs)
    xt, yt = count_images("test")
    acc_torch = accuracy(model, torch.from_numpy(xt), torch.from_numpy(yt))
    args.out.mkdir(parents=True, exist_ok=True)
    pt, onnx_path = args.out / f"{STEM}.pt", args.out / f"{STEM}.onnx"
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, pt)
    import onnxruntime as ort

    tmp = args.out / f".{STEM}.tmp.onnx"
    export(model, tmp, {})
    logits = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"]).run(["logits"], {"input": xt})[0]
    tmp.unlink()
    acc_ort = float((logits.argmax(1) == yt).mean())
    export(model, onnx_path, {"snn_onnx.example.dataset": "digits-events", "snn_onnx.example.test_accuracy": f"{acc_ort:.6f}"})
    print(f"test accuracy on count images: torch {acc_torch:.4f}, onnxruntime {acc_ort:.4f} ({len(yt)} samples)")
    print(f"wrote {pt} and {onnx_path} in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

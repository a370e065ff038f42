#!/usr/bin/env python
"""Train the SignGD examples: a small ConvNeXt and a small MLP-Mixer on scikit-learn's 8×8 digits.

Deterministic like ``train_digits.py`` (fixed seeds, deterministic algorithms, one CPU thread):
trains on ``snn_onnx.data.load("digits", "train")``, reports accuracy on the ``test`` split
(never used for training or selection) and writes into ``--out`` (default
``models/snn_onnx_models/weights/``), per model (``digits_convnext``, ``digits_mixer``):

* ``<name>.pt``   — the state dict
* ``<name>.onnx`` — the eval-mode ANN (TorchScript exporter, opset 18, dynamic batch, input
  ``input`` ``[B,1,8,8]``, output ``logits`` ``[B,10]``) with metadata
  ``snn_onnx.example.test_accuracy`` (ONNX Runtime on the exported file) and
  ``snn_onnx.example.dataset = digits``.

Usage: ``python models/train_digits_signgd.py [--out DIR] [--epochs N] [--only NAME]`` (about
a minute per model on 2 cores).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
for p in (HERE, HERE.parent):
    if str(p) not in sys.path:
        sys.path.append(str(p))

import torch  # noqa: E402

from snn_onnx.data import load  # noqa: E402
from snn_onnx_models.digits_signgd import CONFIGS, create  # noqa: E402
from train_digits import SEED, augment, state_digest  # noqa: E402
from train_digits_vit import export, ort_accuracy  # noqa: E402
from training import accuracy, fit, set_determinism  # noqa: E402

DEFAULT_OUT = HERE / "snn_onnx_models" / "weights"


def train(name: str, epochs: int, batch_size: int = 64, lr: float = 2e-3, log=print):
    set_determinism(SEED)
    tr = load("digits", "train")
    x, y = torch.from_numpy(tr.x), torch.from_numpy(tr.y)
    model = create(name, drop_rate=0.1)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    other = [p for p in model.parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": 0.05}, {"params": other, "weight_decay": 0.0}]
    return fit(model, x, y, groups, epochs=epochs, lr=lr, seed=SEED, augment=augment, batch_size=batch_size,
               label_smoothing=0.1, pct_start=0.1, clip_grad=1.0, log=log, prefix=f"{name} ")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--only", choices=sorted(CONFIGS), default=None)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    te = load("digits", "test")
    for name in [args.only] if args.only else sorted(CONFIGS):
        t0 = time.time()
        model = train(name, args.epochs)
        acc_torch = accuracy(model, torch.from_numpy(te.x), torch.from_numpy(te.y))
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        torch.save(state, args.out / f"{name}.pt")
        tmp = args.out / f".{name}.tmp.onnx"
        export(model, tmp, {})
        acc_ort = ort_accuracy(tmp)
        tmp.unlink()
        export(model, args.out / f"{name}.onnx",
               {"snn_onnx.example.test_accuracy": f"{acc_ort:.6f}", "snn_onnx.example.dataset": "digits"})
        n_params = sum(p.numel() for p in model.parameters())
        print(f"{name}: test accuracy torch {acc_torch:.4f}, onnxruntime {acc_ort:.4f} ({len(te)} samples), "
              f"{n_params} parameters, state dict sha256 {state_digest(state)}, {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

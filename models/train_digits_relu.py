#!/usr/bin/env python
"""Train the ordinary ReLU digits networks (``snn_onnx_models.digits_relu``): a plain CNN and
a ResNet-style net, with no conversion-aware activation (no QCFS, no clipping).

Deterministic like ``train_digits.py`` (fixed seeds, deterministic algorithms, one CPU thread):
rerunning reproduces the weights with the same torch build. Trains on the digits ``train`` split
(random one-pixel shifts, AdamW, one-cycle schedule, label smoothing 0.05) and reports accuracy on
the ``test`` split, which is never used for training or selection. Writes, per model, into
``--out`` (default ``models/snn_onnx_models/weights/``) ``<name>.pt`` (state dict) and
``<name>.onnx`` (eval mode, dynamo export, dynamic batch, input ``input`` ``[B,1,8,8]``, output
``logits``; metadata ``snn_onnx.example.test_accuracy`` measured with ONNX Runtime on the file,
``snn_onnx.example.dataset = digits``).

Usage: ``python models/train_digits_relu.py [--out DIR] [--epochs N] [--only NAME]``
(about two minutes on 2 cores).
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

import numpy as np  # noqa: E402
import torch  # noqa: E402

from snn_onnx.data import load  # noqa: E402
from snn_onnx_models.digits_relu import MODELS  # noqa: E402
from train_digits import augment, export, ort_accuracy, state_digest  # noqa: E402
from training import accuracy, fit, set_determinism  # noqa: E402

SEED = 0
DEFAULT_OUT = HERE / "snn_onnx_models" / "weights"


def train(name: str, epochs: int, batch_size: int = 64, lr: float = 3e-3, log=print) -> torch.nn.Module:
    set_determinism(SEED)
    tr = load("digits", "train")
    x, y = torch.from_numpy(tr.x), torch.from_numpy(tr.y)
    model = MODELS[name]()
    return fit(model, x, y, [{"params": list(model.parameters()), "weight_decay": 1e-4}], epochs=epochs, lr=lr,
               seed=SEED, augment=augment, batch_size=batch_size, label_smoothing=0.05, log=log, prefix=f"{name} ")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--only", choices=sorted(MODELS), help="train one model only")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    te = load("digits", "test")
    for name in [args.only] if args.only else list(MODELS):
        t0 = time.time()
        model = train(name, args.epochs)
        acc_torch = accuracy(model, torch.from_numpy(te.x), torch.from_numpy(te.y))
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        pt_path, onnx_file = args.out / f"{name}.pt", args.out / f"{name}.onnx"
        torch.save(state, pt_path)
        tmp = args.out / f".{name}.tmp.onnx"
        export(model, tmp, {})
        acc_ort, logits = ort_accuracy(tmp)
        tmp.unlink()
        with torch.no_grad():
            max_diff = float(np.abs(logits - model(torch.from_numpy(te.x)).numpy()).max())
        export(model, onnx_file, {"snn_onnx.example.test_accuracy": f"{acc_ort:.6f}",
                                  "snn_onnx.example.dataset": "digits"})
        print(f"{name}: test accuracy torch {acc_torch:.4f}, onnxruntime {acc_ort:.4f} ({len(te)} samples; "
              f"max |logit diff| {max_diff:.2e}); {sum(p.numel() for p in model.parameters())} parameters")
        print(f"{name}: state dict sha256 {state_digest(state)}")
        print(f"wrote {pt_path} and {onnx_file} in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

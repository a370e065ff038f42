#!/usr/bin/env python
"""Train the low-bit digits CNNs: 2-, 3- and 4-bit NB-SNN quantizers, quantization-aware,
fine-tuned from the full-precision network.

1. The full-precision network (``DigitsLowBitCNN(bits=None)``: the example model's layers
   with ReLU) is trained on ``snn_onnx.data.load("digits", "train")`` with the example's recipe.
2. For each b in ``--bits``: the same layers with ``NBQuant(b)`` (``L = 2^b − 1``) start from
   the full-precision weights; each α starts at the 99.9th percentile of its layer's positive
   input (layers set in order, on 512 training images), then the network is fine-tuned with
   the straight-through estimator for ``round`` (α learned, no weight decay on α).

Accuracy is reported on the ``test`` split (451 images, never used for training or
selection). Deterministic like ``train_digits.py`` (fixed seeds, deterministic algorithms, one
CPU thread). Writes, into ``--out`` (default ``models/snn_onnx_models/weights/``), per b:

* ``digits_lowbit_{b}bit.pt``   — the state dict
* ``digits_lowbit_{b}bit.onnx`` — the eval-mode ANN, dynamo export (BatchNorm folded), dynamic
  batch, input ``input`` ``[B,1,8,8]``, output ``logits``, with metadata
  ``snn_onnx.example.bits``, ``.levels`` (= T for conversion), ``.test_accuracy`` (ONNX
  Runtime on the exported file), ``.fp_test_accuracy`` (the full-precision start), ``.dataset``.

Usage: ``python models/train_digits_lowbit.py [--out DIR] [--bits 2,3,4] [--epochs N]
[--qat-epochs N]`` (torch, onnx, onnxruntime, onnxscript, scikit-learn; about 4 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
for p in (HERE, HERE.parent):  # models/ (snn_onnx_models, train_digits) and the repo root (snn_onnx)
    if str(p) not in sys.path:
        sys.path.append(str(p))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from snn_onnx.data import load  # noqa: E402
from snn_onnx_models.digits_lowbit import DigitsLowBitCNN  # noqa: E402
from snn_onnx_models.lowbit import nb_quant_modules  # noqa: E402
from train_digits import SEED, augment, export, ort_accuracy, state_digest  # noqa: E402
from training import accuracy, fit, set_determinism  # noqa: E402

DEFAULT_OUT = HERE / "snn_onnx_models" / "weights"


def fit_lowbit(model: DigitsLowBitCNN, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float, seed: int,
               batch_size: int = 64, log=print) -> DigitsLowBitCNN:
    """The shared loop (AdamW, one-cycle, label smoothing 0.05, one-pixel shifts); no weight decay on α."""
    alphas = [p for n, p in model.named_parameters() if n.endswith("alpha")]
    weights = [p for n, p in model.named_parameters() if not n.endswith("alpha")]
    groups = [{"params": weights, "weight_decay": 1e-4}]
    if alphas:
        groups.append({"params": alphas, "weight_decay": 0.0})
    return fit(model, x, y, groups, epochs=epochs, lr=lr, seed=seed, augment=augment, batch_size=batch_size,
               log=log, prefix="  ")


@torch.no_grad()
def init_alphas(model: DigitsLowBitCNN, x: torch.Tensor, percentile: float = 99.9) -> list[float]:
    """Each α = the percentile of its layer's positive input, layers set in order (each sees
    the already quantized layers before it)."""
    model.eval()
    out = []

    def pre_hook(module, args):
        v = torch.clamp(args[0].detach().double(), min=0.0).reshape(-1).numpy()
        a = float(np.percentile(v, percentile))
        a = a if a > 0 else float(v.max()) or 1.0
        module.alpha.copy_(torch.tensor(a, dtype=torch.float32))
        out.append(a)

    handles = [m.register_forward_pre_hook(pre_hook) for _, m in nb_quant_modules(model)]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    ap.add_argument("--bits", default="2,3,4", help="bit widths, comma-separated (default: %(default)s)")
    ap.add_argument("--epochs", type=int, default=60, help="full-precision epochs (default: %(default)s)")
    ap.add_argument("--qat-epochs", type=int, default=30, help="quantization-aware epochs per b (default: %(default)s)")
    args = ap.parse_args(argv)
    bits = [int(b) for b in args.bits.split(",")]

    t0 = time.time()
    set_determinism(SEED)
    tr, te = load("digits", "train"), load("digits", "test")
    x, y = torch.from_numpy(tr.x), torch.from_numpy(tr.y)
    xt, yt = torch.from_numpy(te.x), torch.from_numpy(te.y)
    print("full precision (ReLU):")
    fp = fit_lowbit(DigitsLowBitCNN(bits=None), x, y, args.epochs, lr=3e-3, seed=SEED)
    fp_acc = accuracy(fp, xt, yt)
    print(f"  test accuracy {fp_acc:.4f}")
    fp_state = {k: v.detach().clone() for k, v in fp.state_dict().items()}
    args.out.mkdir(parents=True, exist_ok=True)
    for b in bits:
        set_determinism(SEED + b)
        model = DigitsLowBitCNN(bits=b)
        missing, unexpected = model.load_state_dict(fp_state, strict=False)
        if unexpected or any(not k.endswith("alpha") for k in missing):
            raise SystemExit(f"state dicts do not line up: missing {missing}, unexpected {unexpected}")
        a0 = init_alphas(model, x[:512])
        print(f"{b}-bit (L = {model.levels}): α from the full-precision activations {[round(a, 3) for a in a0]}, "
              f"test accuracy before fine-tuning {accuracy(model, xt, yt):.4f}")
        model = fit_lowbit(model, x, y, args.qat_epochs, lr=1e-3, seed=SEED + b)
        acc_torch = accuracy(model, xt, yt)
        stem = f"digits_lowbit_{b}bit"
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        torch.save(state, args.out / f"{stem}.pt")
        tmp = args.out / f".{stem}.tmp.onnx"
        export(model, tmp, {})
        acc_ort, _ = ort_accuracy(tmp)
        tmp.unlink()
        export(model, args.out / f"{stem}.onnx", {
            "snn_onnx.example.bits": str(b),
            "snn_onnx.example.levels": str(model.levels),
            "snn_onnx.example.test_accuracy": f"{acc_ort:.6f}",
            "snn_onnx.example.fp_test_accuracy": f"{fp_acc:.6f}",
            "snn_onnx.example.dataset": "digits",
        })
        alphas = [round(float(m.alpha.detach()), 4) for _, m in nb_quant_modules(model)]
        print(f"  test accuracy: torch {acc_torch:.4f}, onnxruntime {acc_ort:.4f}; α {alphas}; "
              f"state dict sha256 {state_digest(state)[:16]}…")
    print(f"wrote {', '.join(f'digits_lowbit_{b}bit.{{pt,onnx}}' for b in bits)} to {args.out} in "
          f"{time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

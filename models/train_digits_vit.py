#!/usr/bin/env python
"""Train the transformer-mode example: a small ViT on scikit-learn's 8×8 digits.

Deterministic like ``train_digits.py`` (fixed seeds, ``torch.use_deterministic_algorithms``,
one CPU thread): trains on ``snn_onnx.data.load("digits", "train")``, reports accuracy on the
``test`` split (never used for training or selection) and writes into ``--out`` (default
``models/snn_onnx_models/weights/``):

* ``digits_vit.pt``   — the state dict
* ``digits_vit.onnx`` — the eval-mode ANN (TorchScript exporter, opset 18, dynamic batch,
  input ``input`` ``[B,1,8,8]``, output ``logits`` ``[B,10]``), with metadata
  ``snn_onnx.example.test_accuracy`` (ONNX Runtime on the exported file) and
  ``snn_onnx.example.dataset = digits``.

Usage: ``python models/train_digits_vit.py [--out DIR] [--epochs N]`` (a few minutes on 2 cores).
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
from snn_onnx_models.digits_vit import create_digits_vit  # noqa: E402
from train_digits import SEED, augment, state_digest  # noqa: E402
from training import accuracy, fit, set_determinism  # noqa: E402

DEFAULT_OUT = HERE / "snn_onnx_models" / "weights"
STEM = "digits_vit"


def train(epochs: int, batch_size: int = 64, lr: float = 2e-3, log=print):
    set_determinism(SEED)
    tr = load("digits", "train")
    x, y = torch.from_numpy(tr.x), torch.from_numpy(tr.y)
    model = create_digits_vit(drop_rate=0.1)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "pos_embed" not in n and "cls_token" not in n]
    other = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "pos_embed" not in n and "cls_token" not in n)]
    groups = [{"params": decay, "weight_decay": 0.05}, {"params": other, "weight_decay": 0.0}]
    return fit(model, x, y, groups, epochs=epochs, lr=lr, seed=SEED, augment=augment, batch_size=batch_size,
               label_smoothing=0.1, pct_start=0.1, clip_grad=1.0, log=log)


def export(model, path: Path, metadata: dict[str, str]) -> None:
    import onnx

    from snn_onnx.export.torch_export import export_module

    proto = export_module(model, (1, 8, 8), opset=18, exporter="legacy")
    for k, v in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(proto)
    onnx.save_model(proto, str(path))


def ort_accuracy(path: Path) -> float:
    import onnxruntime as ort

    te = load("digits", "test")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = sess.run(["logits"], {"input": te.x})[0]
    return float((logits.argmax(1) == te.y).mean())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--epochs", type=int, default=150)
    args = ap.parse_args(argv)
    t0 = time.time()
    model = train(args.epochs)
    te = load("digits", "test")
    acc_torch = accuracy(model, torch.from_numpy(te.x), torch.from_numpy(te.y))
    args.out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    torch.save(state, args.out / f"{STEM}.pt")
    tmp = args.out / f".{STEM}.tmp.onnx"
    export(model, tmp, {})
    acc_ort = ort_accuracy(tmp)
    tmp.unlink()
    export(model, args.out / f"{STEM}.onnx",
           {"snn_onnx.example.test_accuracy": f"{acc_ort:.6f}", "snn_onnx.example.dataset": "digits"})
    n_params = sum(p.numel() for p in model.parameters())
    print(f"test accuracy: torch {acc_torch:.4f}, onnxruntime {acc_ort:.4f} ({len(te)} samples), {n_params} parameters")
    print(f"state dict sha256 {state_digest(state)}")
    print(f"wrote {args.out / STEM}.pt/.onnx in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

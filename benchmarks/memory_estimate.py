"""The memory estimate (snn_onnx/runtime/memory.py) against the memory a run really takes.

For each model, neuron, T and batch: the SNN is converted here; a fresh child process loads it
in ``snn_onnx.Session``, trims the C heap, notes its resident memory, resets the kernel's peak counter
(``/proc/self/clear_refs``), runs the batch once and reads the peak (``VmHWM``). The run's
memory is the peak minus the resident memory before it; the estimate is the activations part
of ``memory.estimate`` (the weights are loaded before the run starts, as in ``Session.run``'s
check). Linux only.

    python benchmarks/memory_estimate.py            # writes docs/memory_estimate.md and .json
    python benchmarks/memory_estimate.py --quick    # two configurations, prints only

Models: the bundled digits CNN (real weights; ParaIF and IF), the digits ViT (real weights,
transformer mode), timm resnet18 with QCFS activations (random init, 32x32 inputs: layout only).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "models", ROOT / "cli"):
    sys.path.insert(0, str(p))

CHILD = """
import sys, json, numpy as np
from pathlib import Path
import snn_onnx

def status(key):
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith(key + ':'):
            return int(line.split()[1]) * 1024
import onnxruntime as ort
path, shape, arena = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3] == "arena"
so = ort.SessionOptions()
so.enable_cpu_mem_arena = arena
sess = snn_onnx.Session(path, sess_options=so)
x = np.random.default_rng(0).random(shape).astype(np.float32)
import ctypes
ctypes.CDLL("libc.so.6").malloc_trim(0)  # the C heap's free blocks back to the system first
before = status('VmRSS')
Path('/proc/self/clear_refs').write_text('5')  # peak RSS := current RSS
sess.run(x)
print(json.dumps({'before': before, 'peak': status('VmHWM')}))
"""


def configs(quick: bool) -> list[dict]:
    rows = [
        {"model": "digits CNN", "neuron": "paraif", "T": 8, "B": 64},
        {"model": "digits CNN", "neuron": "paraif", "T": 512, "B": 64},
    ]
    if quick:
        return rows
    return rows + [
        {"model": "digits CNN", "neuron": "paraif", "T": 64, "B": 64},
        {"model": "digits CNN", "neuron": "paraif", "T": 4096, "B": 16},
        {"model": "digits CNN", "neuron": "if", "T": 32, "B": 64},
        {"model": "digits CNN", "neuron": "if", "T": 1024, "B": 64},
        {"model": "digits ViT", "neuron": "multi-threshold", "T": 8, "B": 16},
        {"model": "digits ViT", "neuron": "multi-threshold", "T": 64, "B": 16},
        {"model": "resnet18 (QCFS, random init)", "neuron": "paraif", "T": 4, "B": 8},
        {"model": "resnet18 (QCFS, random init)", "neuron": "paraif", "T": 16, "B": 8},
    ]


def ann_of(model: str):
    """(ANN ModelProto or path, calibration data, input shape without batch)."""
    from snn_onnx import data

    weights = ROOT / "models" / "snn_onnx_models" / "weights"
    if model == "digits CNN":
        return str(weights / "digits_qcfs_cnn.onnx"), data.load("digits", "train", limit=64).x, (1, 8, 8)
    if model == "digits ViT":
        return str(weights / "digits_vit.onnx"), data.load("digits", "train", limit=64).x, (1, 8, 8)
    import torch
    from snn_onnx.export import build_module, export_module
    from snn_onnx_models.qcfs import calibrate_thresholds, qcfsify

    module = build_module("resnet18", num_classes=10, prepare=lambda m: qcfsify(m, 4))
    torch.manual_seed(0)
    calibrate_thresholds(module, torch.randn(16, 3, 32, 32))
    return export_module(module, (3, 32, 32)), None, (3, 32, 32)


def measure(row: dict, workdir: Path, cache: dict) -> dict:
    import onnx

    import snn_onnx
    from snn_onnx.runtime import memory

    key = (row["model"], row["neuron"], row["T"])
    if key not in cache:
        if row["model"] not in cache:
            cache[row["model"]] = ann_of(row["model"])
        ann, x, _ = cache[row["model"]]
        path = workdir / f"{len(cache)}.snn.onnx"
        opts = {} if row["neuron"] == "multi-threshold" else {"neuron": row["neuron"]}
        snn_onnx.convert(ann, time_steps=row["T"], data=x, output=str(path), parity_samples=4, **opts)
        cache[key] = path
    path = cache[key]
    shape = [row["B"], *cache[row["model"]][2]]
    est = memory.estimate(onnx.load(str(path)), {"input": shape})
    runs = {}
    for arena in ("arena", "no-arena"):
        proc = subprocess.run([sys.executable, "-c", CHILD, str(path), json.dumps(shape), arena], capture_output=True,
                              text=True, env={**os.environ, memory.ENV: "off",
                                              "PYTHONPATH": os.pathsep.join(map(str, (ROOT, ROOT / "models")))})
        if proc.returncode != 0:
            raise SystemExit(f"child failed for {row}: {proc.stderr.strip().splitlines()[-1]}")
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        runs[arena] = got["peak"] - got["before"]
    run = runs["arena"]
    return {**row, "estimate": est.activations, "checked": est.need(loaded=True), "weights": est.weights,
            "largest": est.largest[1], "unknown": len(est.unknown), "measured": run, "ratio": run / est.activations,
            "ratio_checked": run / est.need(loaded=True), "measured_no_arena": runs["no-arena"],
            "ratio_no_arena": runs["no-arena"] / est.activations}


def render(rows: list[dict]) -> str:
    from snn_onnx.runtime.memory import ALLOCATOR_FACTOR, format_bytes

    ratios = [r["ratio"] for r in rows]
    checked = [r["ratio_checked"] for r in rows]
    lines = [
        "# Memory estimate vs measured",
        "",
        "`python benchmarks/memory_estimate.py` (this file is its output; the machine was shared, which",
        "does not change resident memory). Per row: the tensors `snn_onnx.runtime.memory.estimate`",
        "finds live at once in one run of the SNN on a batch of B; what `Session.run` checks against",
        f"the free memory (the tensors x{ALLOCATOR_FACTOR}, for ONNX Runtime's CPU memory arena); and the",
        "resident memory the run added in a fresh process (peak `VmHWM` minus `VmRSS` before the run,",
        "after the session was created and `malloc_trim` gave the C heap's free blocks back: its first",
        "run, when the arena grows), and the same with the arena turned off (the C heap then keeps",
        "freed blocks between tensors). resnet18: random init, layout only.",
        "",
        "| model | neuron | T | B | tensors (estimate) | checked | measured | measured / tensors | "
        "measured / checked | measured, arena off | arena off / tensors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['neuron']} | {r['T']} | {r['B']} | {format_bytes(r['estimate'])} | "
                     f"{format_bytes(r['checked'])} | {format_bytes(r['measured'])} | {r['ratio']:.2f} | "
                     f"{r['ratio_checked']:.2f} | {format_bytes(r['measured_no_arena'])} | {r['ratio_no_arena']:.2f} |")
    off = [r["ratio_no_arena"] for r in rows]
    lines += ["", f"measured / tensors: {min(ratios):.2f} … {max(ratios):.2f}; measured / checked: "
              f"{min(checked):.2f} … {max(checked):.2f}; with the arena off (`enable_cpu_mem_arena = False`), "
              f"measured / tensors: {min(off):.2f} … {max(off):.2f}; over {len(rows)} configurations."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="two configurations, nothing written")
    ap.add_argument("--out", default=str(ROOT / "docs" / "memory_estimate.md"))
    args = ap.parse_args()
    os.environ["SNN_ONNX_MEMORY_LIMIT"] = "off"  # measure, do not refuse
    rows, cache = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for row in configs(args.quick):
            r = measure(row, Path(tmp), cache)
            print(f"{r['model']:<30} {r['neuron']:<16} T={r['T']:<5} B={r['B']:<3} "
                  f"estimate {r['estimate'] / 1e6:9.1f} MB  "
                  f"measured {r['measured'] / 1e6:9.1f} MB  measured/tensors {r['ratio']:.2f}  measured/checked "
                  f"{r['ratio_checked']:.2f}", flush=True)
            rows.append(r)
    text = render(rows)
    print(text)
    if not args.quick:
        from snn_onnx import files

        files.write_text(args.out, text)
        files.write_text(Path(args.out).with_suffix(".json"), json.dumps(rows, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

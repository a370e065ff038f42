#!/usr/bin/env python
"""Per-op speed of two (or more) builds of libsnn_onnx_ops, measured in one run.

Each library is loaded in fresh processes (the ISA and the library are chosen once per process),
the libraries alternate, ``--reps`` processes each, and the table gives, per op, the median over
the processes of the fastest of ``--runs`` calls (the machine may be shared) on resnet18- and
ViT-sized tensors, and each library's time as a ratio to the first one's. Used to check that a restructuring of the kernels keeps their speed:

    scripts/build_dev.sh   # the library under test, into snn_onnx/_lib/
    python benchmarks/op_kernels.py --lib before=/path/to/old/libsnn_onnx_ops.so \
        --lib after=snn_onnx/_lib/libsnn_onnx_ops.so --out docs/op_kernels.md

``--isa baseline`` forces the baseline kernels (SNN_ONNX_ISA=baseline), ``--isa both`` runs both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CASES = [  # label, op, x shape (T*B first), attributes, parameters (name, value or per-channel size)
    ("IF counts", "IFNeuron", [256, 64, 16, 16], {"time_steps": 8}, [("threshold", 0.5)]),
    ("IF signed leak", "IFNeuron", [256, 64, 16, 16], {"time_steps": 8, "signed": 1, "leak": 0.9},
     [("threshold", 64)]),
    ("IF static", "IFNeuron", [32, 64, 16, 16], {"time_steps": 8, "static_input": 1}, [("threshold", 0.5)]),
    ("ParaIF counts", "ParaIFNeuron", [256, 64, 16, 16], {"time_steps": 8}, [("theta_pre", 64)]),
    ("MT scalar", "MultiThresholdNeuron", [16, 197, 768], {"time_steps": 8}, [("scale_pos", 0.05), ("scale_neg", 0.05)]),
    ("MT per channel", "MultiThresholdNeuron", [16, 197, 768], {"time_steps": 8},
     [("scale_pos", 768), ("scale_neg", 768)]),
    ("TemporalMean", "TemporalMean", [256, 64, 16, 16], {"time_steps": 8}, []),
    ("TemporalDelta", "TemporalDelta", [256, 64, 16, 16], {"time_steps": 8}, []),
    ("fused relu", "CompensatedElementwise", [16, 197, 768], {"time_steps": 8, "function": "relu"}, []),
    ("fused hardswish", "CompensatedElementwise", [16, 197, 768], {"time_steps": 8, "function": "hardswish"}, []),
    ("fused gelu", "CompensatedElementwise", [16, 197, 768], {"time_steps": 8, "function": "gelu"}, []),
]

CHILD = r"""
import json, sys, time
import numpy as np, onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
lib, cases, runs, threads = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
so = ort.SessionOptions(); so.register_custom_ops_library(lib); so.intra_op_num_threads = threads
out = {}
rng = np.random.default_rng(0)
for label, op, shape, attrs, params in cases:
    spiking = op.endswith("Neuron")
    outs = ["y", "c"] if spiking else ["y"]
    inits = []
    for name, v in params:
        arr = (rng.uniform(0.2, 1.0, size=v) if isinstance(v, int) else np.array(v)).astype(np.float32)
        inits.append(numpy_helper.from_array(arr, name))
    node = helper.make_node(op, ["x"] + [n for n, _ in params], outs, domain="snn_onnx", **attrs)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
                          + ([helper.make_tensor_value_info("c", TensorProto.INT64, None)] if spiking else []), inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("snn_onnx", 1)],
                          ir_version=10)
    s = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    x = rng.standard_normal(shape).astype(np.float32)
    s.run(None, {"x": x}); ts = []
    for _ in range(runs):
        t = time.perf_counter(); s.run(None, {"x": x}); ts.append(time.perf_counter() - t)
    out[label] = float(np.min(ts)) * 1000  # the least disturbed call: the machine may be shared
print(json.dumps(out))
"""


def measure(libs: dict[str, str], isa: str, reps: int, runs: int, threads: int) -> dict[str, list[dict[str, float]]]:
    res: dict[str, list[dict[str, float]]] = {name: [] for name in libs}
    cases = json.dumps(CASES)
    for _ in range(reps):
        for name, path in libs.items():  # alternate the libraries every repetition
            env = {k: v for k, v in os.environ.items() if k != "SNN_ONNX_ISA"}
            if isa == "baseline":
                env["SNN_ONNX_ISA"] = "baseline"
            p = subprocess.run([sys.executable, "-c", CHILD, path, cases, str(runs), str(threads)], env=env,
                               capture_output=True, text=True, check=True)
            res[name].append(json.loads(p.stdout.strip().splitlines()[-1]))
    return res


def table(res: dict[str, list[dict[str, float]]], isa: str) -> list[str]:
    import numpy as np

    names = list(res)
    first = names[0]
    head = "| op and input (" + isa + ") | " + " | ".join(f"{n} ms" for n in names)
    head += "".join(f" | {n} / {first}" for n in names[1:]) + " |"
    lines = [head, "|---" * (1 + len(names) + len(names) - 1) + "|"]
    for label, *_ in CASES:
        med = {n: float(np.median([r[label] for r in res[n]])) for n in names}
        row = f"| {label} | " + " | ".join(f"{med[n]:.3f}" for n in names)
        row += "".join(f" | {med[n] / med[first]:.2f}" for n in names[1:]) + " |"
        lines.append(row)
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lib", action="append", required=True, metavar="NAME=PATH",
                    help="a library to time (repeat; the first is the reference of the ratios)")
    ap.add_argument("--isa", choices=["auto", "baseline", "both"], default="auto")
    ap.add_argument("--reps", type=int, default=3, help="processes per library (alternating)")
    ap.add_argument("--runs", type=int, default=30, help="timed calls per op and process")
    ap.add_argument("--only", help="time only the cases whose label contains this text")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads")
    ap.add_argument("--out", type=Path, help="also write the tables to this markdown file")
    ap.add_argument("--note", default="", help="a paragraph for the markdown file (what was compared)")
    args = ap.parse_args(argv)
    global CASES
    if args.only:
        CASES = [c for c in CASES if args.only in c[0]]
    libs = {}
    for spec in args.lib:
        name, sep, path = spec.partition("=")
        if not sep or not Path(path).is_file():
            ap.error(f"--lib {spec!r}: expected NAME=PATH of an existing library")
        libs[name] = str(Path(path).resolve())
    import onnxruntime

    lines = [f"Machine: {platform.machine()}, {os.cpu_count()} cores, onnxruntime {onnxruntime.__version__}, "
             f"{args.threads} intra-op thread(s); per process the fastest of {args.runs} calls, then the median "
             f"over {args.reps} processes per library, libraries alternating.", ""]
    for isa in (["auto", "baseline"] if args.isa == "both" else [args.isa]):
        lines += table(measure(libs, isa, args.reps, args.runs, args.threads), "best ISA" if isa == "auto" else isa) + [""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text("# Op kernels: speed of two library builds\n\nGenerated by `benchmarks/op_kernels.py`; "
                            "do not edit by hand.\n\n" + (args.note + "\n\n" if args.note else "") + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

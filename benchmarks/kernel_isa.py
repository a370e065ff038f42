#!/usr/bin/env python
"""The snn_onnx CPU kernels compiled for the baseline ISA vs AVX2 (custom_ops/src/cpu/isa.h).

The ISA is chosen once per process, so each measurement is a fresh process (SNN_ONNX_ISA=baseline
forces the baseline code); the two variants alternate, three processes each, and the report
gives the median per-call time of each op on resnet18-sized tensors (T=8, B=32).

    python benchmarks/kernel_isa.py
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = [  # op, x shape (T*B first), attributes
    ("ParaIFNeuron", [256, 64, 8, 8], {"time_steps": 8}),
    ("ParaIFNeuron", [256, 512, 1, 1], {"time_steps": 8}),
    ("IFNeuron", [256, 64, 8, 8], {"time_steps": 8}),
    ("TemporalMean", [256, 64, 16, 16], {"time_steps": 8}),
    ("TemporalDelta", [256, 64, 8, 8], {"time_steps": 8}),
]

CHILD = r"""
import json, sys, time
import numpy as np, onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from snn_onnx.library import library_path
cases = json.loads(sys.argv[1]); out = {}
so = ort.SessionOptions(); so.register_custom_ops_library(library_path()); so.intra_op_num_threads = 2
for op, shape, attrs in cases:
    spiking = op.endswith("Neuron")
    inputs = ["x", "th"] if spiking else ["x"]
    outs = ["y", "c"] if spiking else ["y"]
    node = helper.make_node(op, inputs, outs, domain="snn_onnx", **attrs)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
                          + ([helper.make_tensor_value_info("c", TensorProto.INT64, None)] if spiking else []),
                          [numpy_helper.from_array(np.array(0.5, np.float32), "th")] if spiking else [])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("snn_onnx", 1)])
    s = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    s.run(None, {"x": x}); ts = []
    for _ in range(30):
        t = time.perf_counter(); s.run(None, {"x": x}); ts.append(time.perf_counter() - t)
    out[f"{op} {shape}"] = float(np.median(ts)) * 1000
print(json.dumps(out))
"""


def main() -> int:
    env0 = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    res = {"baseline": [], "avx2": []}
    for _ in range(3):
        for isa in ("baseline", "avx2"):
            env = dict(env0)
            if isa == "baseline":
                env["SNN_ONNX_ISA"] = "baseline"
            else:
                env.pop("SNN_ONNX_ISA", None)
            p = subprocess.run([sys.executable, "-c", CHILD, json.dumps(CASES)], env=env, capture_output=True,
                               text=True, check=True)
            res[isa].append(json.loads(p.stdout.strip().splitlines()[-1]))
    import numpy as np

    print("| op and input | baseline ms | AVX2 ms | AVX2 / baseline |")
    print("|---|---|---|---|")
    for key in res["baseline"][0]:
        b = float(np.median([r[key] for r in res["baseline"]]))
        a = float(np.median([r[key] for r in res["avx2"]]))
        print(f"| {key} | {b:.2f} | {a:.2f} | {a / b:.2f} |")
    print("\n(the AVX2 column is the baseline code where the CPU lacks AVX2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where the time goes: per-op-type time of an SNN and its ANN, from ONNX Runtime's profiler.

    python benchmarks/profile_cuda.py --model resnet18@32 --time-steps 8 --batch 32
    python benchmarks/profile_cuda.py --provider cpu --quick          # CPU dry run

Builds the models as benchmarks/bench_cuda.py does, runs each `--runs` times with ORT's
profiler on (after warm-up runs without it) and sums the profiler's per-node kernel times by op
type and provider: milliseconds per run and share of the run, for the SNN next to T × the ANN.

On CUDA, a kernel is launched asynchronously and ORT's profiler (in the released wheels,
built without CUPTI) times the launch, not the GPU work. So by default the script sets
CUDA_LAUNCH_BLOCKING=1 before CUDA starts: every launch then waits for its kernel, and the
per-op times are GPU times (plus a launch each). The total is then a little larger than a
free-running run's (no overlap of launches and work); the shares are what to read.
`--no-blocking` keeps launches asynchronous (per-op times are then launch costs). For kernel-
level detail use Nsight Systems: `nsys profile python benchmarks/bench_cuda.py ...`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np


def op_times(profile_path: str, skip: int, runs: int) -> dict[tuple[str, str], tuple[float, int]]:
    """{(op type, provider): (ms per run, calls per run)} over the runs after the first `skip`
    of an ORT profile (each run is a Session "model_run" event; node events fall inside)."""
    events = json.loads(Path(profile_path).read_text())
    starts = sorted(e["ts"] for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
    if len(starts) != skip + runs:
        raise RuntimeError(f"profile holds {len(starts)} runs, expected {skip + runs}")
    t0 = starts[skip]
    acc: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0])
    for e in events:
        args = e.get("args", {})
        if (e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time") and "op_name" in args
                and e["ts"] >= t0):
            key = (args["op_name"], args.get("provider", "?"))
            acc[key][0] += e["dur"] / 1e3  # µs -> ms
            acc[key][1] += 1
    return {k: (v[0] / runs, round(v[1] / runs)) for k, v in acc.items()}


def profile(sess, run, runs: int, warmup: int) -> dict:
    """Op times of `runs` runs after `warmup` runs (allocation, cuDNN algorithm search) of a
    session created with profiling on."""
    for _ in range(warmup + runs):
        run(sess)
    return op_times(getattr(sess, "inner", sess).end_profiling(), warmup, runs)


def table(snn: dict, ann: dict, T: int) -> str:
    snn_total = sum(v[0] for v in snn.values())
    ann_total = T * sum(v[0] for v in ann.values())
    keys = sorted(set(snn) | set(ann), key=lambda k: -max(snn.get(k, (0, 0))[0], T * ann.get(k, (0, 0))[0]))
    lines = [
        "| op | provider | SNN ms/run | SNN share | SNN calls | T×ANN ms | T×ANN share |",
        "|---|---|---|---|---|---|---|",
    ]
    for k in keys:
        s, a = snn.get(k, (0.0, 0)), ann.get(k, (0.0, 0))
        lines.append(f"| {k[0]} | {k[1].replace('ExecutionProvider', '')} | {s[0]:.3f} | "
                     f"{100 * s[0] / max(snn_total, 1e-12):.1f}% | {s[1]} | {T * a[0]:.3f} | "
                     f"{100 * T * a[0] / max(ann_total, 1e-12):.1f}% |")
    spiking = sum(v[0] for k, v in snn.items() if k[0] in SNN_OPS)
    lines += [
        f"| **total** | | **{snn_total:.3f}** | | | **{ann_total:.3f}** | |",
        "",
        f"snn_onnx ops: {spiking:.3f} ms per run, {100 * spiking / max(snn_total, 1e-12):.1f}% of the SNN's "
        f"kernel time; SNN / (T×ANN) in kernel time: {snn_total / max(ann_total, 1e-12):.3f}.",
    ]
    return "\n".join(lines)


SNN_OPS = {"IFNeuron", "ParaIFNeuron", "MultiThresholdNeuron", "TemporalMean", "TemporalDelta"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--provider", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--model", default="resnet18@32", help="name@img[:k=v] as in bench_cuda.py")
    ap.add_argument("--time-steps", type=int, default=8)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--neuron", choices=["paraif", "if"], default="paraif")
    ap.add_argument("--tf32", action="store_true")
    ap.add_argument("--no-blocking", action="store_true", help="keep CUDA launches asynchronous")
    ap.add_argument("--quick", action="store_true", help="tiny settings for a dry run")
    ap.add_argument("--out", type=Path, help="append the table to this markdown file")
    args = ap.parse_args(argv)
    if args.quick:
        args.time_steps, args.batch, args.runs, args.warmup = 2, 2, 2, 1
    if args.provider == "cuda" and not args.no_blocking:
        os.environ["CUDA_LAUNCH_BLOCKING"] = "1"  # before onnxruntime / CUDA start

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_cuda as bc
    import onnxruntime as ort

    if args.provider == "cuda" and bc.CUDA_EP not in ort.get_available_providers():
        print(f"onnxruntime {ort.__version__} has no {bc.CUDA_EP}: install onnxruntime-gpu", file=sys.stderr)
        return 2
    spec = bc.ModelSpec.parse(args.model)
    T = args.time_steps
    qcfs_ann, plain_ann = bc.export_anns(spec, levels=T)
    ann = qcfs_ann or plain_ann
    snn = bc.convert(ann, spec, T, args.neuron)
    providers = bc.provider_list(args.provider, args.tf32)
    x = np.random.default_rng(0).standard_normal((args.batch, 3, spec.img, spec.img)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        snn_t = profile(bc.snn_session(snn, providers, os.path.join(tmp, "snn")),
                        lambda s: s.run(x, spike_counts=False, per_step=False), args.runs, args.warmup)
        ann_name = ann.graph.input[0].name
        ann_t = profile(bc.ann_session(ann, providers, os.path.join(tmp, "ann")),
                        lambda s: s.run(None, {ann_name: x}), args.runs, args.warmup)
    blocking = args.provider == "cuda" and not args.no_blocking
    head = [
        f"### {spec.label}, T = {T}, batch {args.batch}, {args.neuron}, provider {args.provider}",
        "",
        f"Device: {bc.device_name(args.provider)}; onnxruntime {ort.__version__}; {args.runs} profiled runs"
        + ("; CUDA_LAUNCH_BLOCKING=1 (per-op GPU times)" if blocking else "")
        + (f"; ANN = {'QCFS' if qcfs_ann is not None else 'plain'} ANN that was converted."),
        "",
    ]
    text = "\n".join(head) + "\n" + table(snn_t, ann_t, T) + "\n"
    print(text)
    if args.out is not None:
        with open(args.out, "a") as f:
            f.write(text + "\n")
        print(f"appended to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

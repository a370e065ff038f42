"""SNN vs ANN speed on ONNX Runtime's CUDA execution provider (issue 5).

For each model, T and batch size B: the median wall time of one SNN run (T steps folded into
the batch: the graph runs on T*B rows) against T × the median time of one ANN run at batch B,
same provider, same process. Target: SNN(T) <= 1.1 × (T × ANN) for resnet18 at batch 32.

Two ANN baselines: the QCFS ANN that was converted (its activations are floor / clip chains)
and the plain network of the same architecture (ReLU / GELU; for CNNs the stricter baseline:
ORT fuses Conv+ReLU). Models are timm's with random weights (timing does not depend on them), QCFS with
L = T, converted with ParaIFNeuron (``--neuron if`` for IF). The SNN keeps its spike-count
outputs (the kernels write them); only the final output is fetched.

On CUDA, inputs and outputs stay on the GPU (IO binding): the timings are the GPU work plus
launch overhead, not host <-> device copies. TF32 is off unless ``--tf32`` (with it, Conv
rounds its inputs to 10 mantissa bits on Ampere and newer, for ANN and SNN alike).

    python benchmarks/bench_cuda.py                  # GPU: writes docs/cuda_benchmarks.md (+ .json)
    python benchmarks/bench_cuda.py --provider cpu --quick --out /tmp/bench.md   # CPU dry run

The dry run exercises the whole script (export, conversion, timing, placement check, report)
on the CPU with tiny settings; tests/test_bench_cuda.py runs it. Models the converter cannot
handle yet (vit_small_patch16_224 until the transformer converter lands) are reported as
skipped with the converter's message.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CUDA_EP, CPU_EP = "CUDAExecutionProvider", "CPUExecutionProvider"
TARGET = 1.1  # SNN(T) / (T x ANN) for resnet18 at batch 32

FULL = {
    "models": "resnet18@32,resnet18@224,vit_small_patch16_224@224",
    "time_steps": "4,8",
    "batches": "1,32,128",
    "repeats": 20,
    "warmup": 5,
}
# Dry run: the same code paths, tiny sizes (a one-block ViT exercises the transformer path).
QUICK = {
    "models": "resnet18@32,vit_small_patch16_224@32:depth=1",
    "time_steps": "2",
    "batches": "1,2",
    "repeats": 3,
    "warmup": 1,
}


# ---------------------------------------------------------------------------------------------
# models


@dataclass(frozen=True)
class ModelSpec:
    """``name@img[:key=value,...]``: timm model, square input size, extra timm kwargs."""

    name: str
    img: int
    kwargs: tuple[tuple[str, int], ...] = ()

    @classmethod
    def parse(cls, text: str) -> "ModelSpec":
        head, _, extra = text.partition(":")
        name, _, img = head.partition("@")
        kwargs = tuple((k, int(v)) for k, v in (kv.split("=") for kv in extra.split(",") if kv))
        return cls(name, int(img or 224), kwargs)

    @property
    def label(self) -> str:
        extra = ",".join(f"{k}={v}" for k, v in self.kwargs)
        return f"{self.name} {self.img}×{self.img}" + (f" ({extra})" if extra else "")

    @property
    def num_classes(self) -> int:
        return 10 if self.img <= 64 else 1000  # CIFAR-like small inputs, ImageNet-like large

    def timm_kwargs(self) -> dict:
        kw = dict(self.kwargs)
        if "vit" in self.name and self.img != 224:
            kw["img_size"] = self.img
        return kw


def export_anns(spec: ModelSpec, levels: int):
    """(QCFS ANN with L = levels or None, plain ANN) as ONNX models with a dynamic batch. None:
    the network has no ReLU to make QCFS (ViT's GELU); the plain ANN is then the one converted,
    if the converter can (the transformer converter, MultiThresholdNeuron)."""
    import timm
    import torch

    from snn_onnx.export.torch_export import export_module
    from snn_onnx_models.qcfs import calibrate_thresholds, qcfsify

    shape = (3, spec.img, spec.img)
    kw = spec.timm_kwargs()
    torch.manual_seed(0)
    plain = timm.create_model(spec.name, num_classes=spec.num_classes, **kw).eval()
    plain_onnx = export_module(plain, shape)
    if not any(isinstance(m, (torch.nn.ReLU, torch.nn.ReLU6)) for m in plain.modules()):
        return None, plain_onnx
    if "img_size" in kw:  # create_qcfs_timm's steps, with the input size passed to timm
        torch.manual_seed(0)
        qcfs = timm.create_model(spec.name, num_classes=spec.num_classes, **kw)
        qcfsify(qcfs, levels)
        qcfs.eval()
        calibrate_thresholds(qcfs, torch.randn(8, *shape, generator=torch.Generator().manual_seed(0)))
    else:
        from snn_onnx_models.timm_qcfs import create_qcfs_timm

        qcfs = create_qcfs_timm(spec.name, levels=levels, num_classes=spec.num_classes, img_size=spec.img,
                                seed=0, **kw)
    return export_module(qcfs, shape), plain_onnx


def convert(ann, spec: ModelSpec, time_steps: int, neuron: str):
    import snn_onnx

    data = np.random.default_rng(0).standard_normal((8, 3, spec.img, spec.img)).astype(np.float32)
    return snn_onnx.convert(ann, time_steps=time_steps, neuron=neuron, data=data, parity_samples=2).model


# ---------------------------------------------------------------------------------------------
# sessions and timing


def provider_list(provider: str, tf32: bool) -> list:
    if provider == "cuda":
        # kSameAsRequested: the arena grows by what is asked, not to the next power of two, so
        # the large SNN batches (T*B rows) fit beside the two ANN sessions.
        opts = {"use_tf32": "1" if tf32 else "0", "arena_extend_strategy": "kSameAsRequested"}
        return [(CUDA_EP, opts), CPU_EP]
    return [CPU_EP]


def ann_session(model, providers, profile_prefix: str | None = None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=providers)
    _check_provider(sess, providers)
    return sess


def snn_session(model, providers, profile_prefix: str | None = None):
    """An ORT session of the SNN (snn_onnx.Session: library registered, CUDA checks)."""
    import onnxruntime as ort

    import snn_onnx

    so = ort.SessionOptions()
    so.log_severity_level = 3
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    return snn_onnx.Session(model, providers=providers, sess_options=so)


def _check_provider(sess, providers) -> None:
    want = providers[0] if isinstance(providers[0], str) else providers[0][0]
    if want not in sess.get_providers():
        sys.exit(f"ONNX Runtime could not start {want} (it runs on {sess.get_providers()})")


class Runner:
    """One timed call of a session on a fixed input. On CUDA the input is copied to the GPU
    once and the outputs stay there (IO binding), so a call is GPU work plus launches;
    run_with_iobinding returns after ORT synchronised its stream."""

    def __init__(self, sess, feed: dict, outputs: list[str], provider: str):
        import onnxruntime as ort

        self.sess = sess
        if provider == "cuda":
            self.io = sess.io_binding()
            self._keep = []
            for name, arr in feed.items():
                v = ort.OrtValue.ortvalue_from_numpy(arr, "cuda", 0)
                self._keep.append(v)
                self.io.bind_ortvalue_input(name, v)
            for name in outputs:
                self.io.bind_output(name, "cuda")
            self.call = lambda: sess.run_with_iobinding(self.io)
        else:
            self.call = lambda: sess.run(outputs, feed)

    def median_ms(self, repeats: int, warmup: int) -> tuple[float, list[float]]:
        for _ in range(warmup):  # cuDNN algorithm search, arena growth, lazy module loading
            self.call()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            self.call()
            times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times), times


def node_providers(profile_path: str) -> dict[str, str]:
    """{node name: provider} from an ORT profile file."""
    events = json.loads(Path(profile_path).read_text())
    out = {}
    for e in events:
        args = e.get("args", {})
        if e.get("cat") == "Node" and "provider" in args and e.get("name", "").endswith("_kernel_time"):
            out[e["name"][: -len("_kernel_time")]] = args["provider"]
    return out


def spiking_placement(snn_model, providers, x: np.ndarray, tmp: str) -> dict[str, str]:
    """Where each snn_onnx node ran ({node: provider}), from one profiled run."""
    from snn_onnx.ops import schema

    sess = snn_session(snn_model, providers, profile_prefix=os.path.join(tmp, "placement"))
    sess.run(x, spike_counts=False, per_step=False)
    placed = node_providers(sess.inner.end_profiling())
    return {n.name: placed.get(n.name, "?") for n in snn_model.graph.node if n.domain == schema.DOMAIN}


# ---------------------------------------------------------------------------------------------
# machine description


def device_name(provider: str) -> str:
    if provider == "cuda":
        smi = shutil.which("nvidia-smi")
        if smi:
            try:
                out = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                                     capture_output=True, text=True, timeout=30).stdout.strip()
                if out:
                    name, driver, mem = (s.strip() for s in out.splitlines()[0].split(","))
                    return f"{name} (driver {driver}, {mem})"
            except (OSError, subprocess.SubprocessError, ValueError):
                pass
        try:
            import torch

            if torch.cuda.is_available():
                return torch.cuda.get_device_name(0)
        except ImportError:
            pass
        return "unknown NVIDIA GPU (no nvidia-smi)"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu} ({os.cpu_count()} logical CPUs)"


# ---------------------------------------------------------------------------------------------
# the benchmark


@dataclass
class Row:
    model: str
    time_steps: int
    batch: int
    ann_qcfs_ms: float | None = None   # the QCFS ANN that was converted (None: no QCFS form)
    ann_plain_ms: float | None = None  # the plain network (ReLU / GELU)
    snn_ms: float | None = None
    skipped: str | None = None
    snn_times_ms: list[float] = field(default_factory=list)

    @property
    def ratio_qcfs(self) -> float | None:
        if self.snn_ms is None or self.ann_qcfs_ms is None:
            return None
        return self.snn_ms / (self.time_steps * self.ann_qcfs_ms)

    @property
    def ratio_plain(self) -> float | None:
        return None if self.snn_ms is None else self.snn_ms / (self.time_steps * self.ann_plain_ms)


def bench(args) -> tuple[list[Row], dict]:
    from snn_onnx.errors import SnnOnnxError

    providers = provider_list(args.provider, args.tf32)
    rows: list[Row] = []
    placement: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for spec in map(ModelSpec.parse, args.models.split(",")):
            for T in map(int, args.time_steps.split(",")):
                print(f"== {spec.label}, T={T}: export + convert", flush=True)
                try:
                    qcfs_ann, plain_ann = export_anns(spec, levels=T)
                    snn = convert(qcfs_ann or plain_ann, spec, T, args.neuron)
                except (SnnOnnxError, NotImplementedError, RuntimeError, ValueError) as err:
                    msg = f"{type(err).__name__}: {str(err).splitlines()[0][:240]}"
                    print(f"   skipped: {msg}", flush=True)
                    rows += [Row(spec.label, T, b, skipped=msg) for b in map(int, args.batches.split(","))]
                    continue
                x1 = np.random.default_rng(1).standard_normal((1, 3, spec.img, spec.img)).astype(np.float32)
                placement[f"{spec.label} T={T}"] = spiking_placement(snn, providers, x1, tmp)
                ann_q = ann_session(qcfs_ann, providers) if qcfs_ann is not None else None
                ann_r = ann_session(plain_ann, providers)
                snn_s = snn_session(snn, providers)
                for B in map(int, args.batches.split(",")):
                    x = np.random.default_rng(B).standard_normal((B, 3, spec.img, spec.img)).astype(np.float32)
                    row = Row(spec.label, T, B)
                    try:
                        for attr, sess, outs in (
                            ("ann_qcfs_ms", ann_q, None),
                            ("ann_plain_ms", ann_r, None),
                            ("snn_ms", snn_s.inner, snn_s.output_names),
                        ):
                            if sess is None:
                                continue
                            outs = outs or [o.name for o in sess.get_outputs()]
                            feed = {sess.get_inputs()[0].name: x}
                            med, times = Runner(sess, feed, outs, args.provider).median_ms(args.repeats, args.warmup)
                            setattr(row, attr, med)
                            if attr == "snn_ms":
                                row.snn_times_ms = times
                    except Exception as err:  # e.g. out of GPU memory at the largest batch
                        row.skipped = f"{type(err).__name__}: {str(err).splitlines()[0][:240]}"
                        row.ann_qcfs_ms = row.ann_plain_ms = row.snn_ms = None
                    rows.append(row)
                    print("   " + fmt_row(row), flush=True)
                del ann_q, ann_r, snn_s
    return rows, placement


def fmt_ms(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"


def fmt_ratio(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"


def fmt_row(r: Row) -> str:
    if r.skipped:
        return f"B={r.batch}: skipped ({r.skipped})"
    return (f"B={r.batch}: ANN QCFS {fmt_ms(r.ann_qcfs_ms)} ms, ANN plain {fmt_ms(r.ann_plain_ms)} ms, "
            f"SNN {fmt_ms(r.snn_ms)} ms; SNN/(T×ANN) {fmt_ratio(r.ratio_qcfs)} (QCFS), "
            f"{fmt_ratio(r.ratio_plain)} (plain)")


def report(args, rows: list[Row], placement: dict, device: str, seconds: float) -> str:
    import onnxruntime as ort

    from snn_onnx import library

    cuda = args.provider == "cuda"
    title = "# SNN vs ANN on ONNX Runtime's CUDA provider" if cuda else \
        "# SNN vs ANN timing — CPU dry run (not a CUDA benchmark)"
    lines = [
        title,
        "",
        f"Device: **{device}**; onnxruntime {ort.__version__}; provider `{args.provider}`"
        + (f" (TF32 {'on' if args.tf32 else 'off'}, IO binding: inputs and outputs on the GPU)" if cuda else "")
        + f"; libsnn_onnx_ops CUDA runtime {library.cuda_runtime_version() or 'none'}.",
        f"Median of {args.repeats} runs after {args.warmup} warm-up runs; neuron `{args.neuron}` (QCFS L = T); "
        "random weights (timing does not depend on them).",
        "`SNN / (T×ANN)`: SNN time over T × the ANN's time at the same batch; below 1 means the SNN of T "
        "steps costs less than T ANN passes. Two ANN baselines: the QCFS ANN that was converted, and the "
        "plain network of the same architecture (ReLU / GELU; the stricter one for CNNs: ORT fuses "
        "Conv+ReLU). A network without ReLU has no QCFS form; its plain ANN is the one converted.",
        "",
        "| model | T | batch | ANN QCFS ms | ANN plain ms | SNN ms | SNN / (T×ANN QCFS) | SNN / (T×ANN plain) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.skipped:
            lines.append(f"| {r.model} | {r.time_steps} | {r.batch} | skipped: {r.skipped} | | | | |")
        else:
            lines.append(f"| {r.model} | {r.time_steps} | {r.batch} | {fmt_ms(r.ann_qcfs_ms)} | "
                         f"{fmt_ms(r.ann_plain_ms)} | {fmt_ms(r.snn_ms)} | {fmt_ratio(r.ratio_qcfs)} | "
                         f"{fmt_ratio(r.ratio_plain)} |")
    lines.append("")
    target = [r for r in rows if r.model.startswith("resnet18") and r.batch == 32 and not r.skipped]
    if target:
        lines.append(f"Target (issue 5): SNN(T) ≤ {TARGET} × (T × ANN) for resnet18 at batch 32:")
        for r in target:
            if r.ratio_plain <= TARGET:
                ok = "met"
            elif r.ratio_qcfs is not None and r.ratio_qcfs <= TARGET:
                ok = "met against the QCFS ANN only"
            else:
                ok = "not met"
            lines.append(f"* {r.model}, T={r.time_steps}: {fmt_ratio(r.ratio_qcfs)} (QCFS ANN), "
                         f"{fmt_ratio(r.ratio_plain)} (plain ANN): {ok}")
        lines.append("")
    want = CUDA_EP if cuda else CPU_EP
    lines.append(f"Placement (one profiled run per SNN): every snn_onnx node on `{want}`:")
    for key, nodes in placement.items():
        off = {n: p for n, p in nodes.items() if p != want}
        lines.append(f"* {key}: {len(nodes) - len(off)} of {len(nodes)} nodes" + (f"; elsewhere: {off}" if off else ""))
    lines += [
        "",
        f"Generated by `python benchmarks/bench_cuda.py {' '.join(sys.argv[1:])}`".rstrip() + f" in {seconds:.0f} s "
        f"({time.strftime('%Y-%m-%d')}). Per-op breakdown: `benchmarks/profile_cuda.py`.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--provider", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--quick", action="store_true", help="tiny settings: a dry run of every code path")
    ap.add_argument("--models", help=f"comma-separated name@img[:k=v] (default {FULL['models']})")
    ap.add_argument("--time-steps", help=f"comma-separated T (default {FULL['time_steps']})")
    ap.add_argument("--batches", help=f"comma-separated batch sizes (default {FULL['batches']})")
    ap.add_argument("--repeats", type=int)
    ap.add_argument("--warmup", type=int)
    ap.add_argument("--neuron", choices=["paraif", "if"], default="paraif")
    ap.add_argument("--tf32", action="store_true", help="let cuDNN / cuBLAS use TF32 (CUDA EP's own default)")
    ap.add_argument("--out", type=Path, help="markdown report (a .json beside it); default docs/cuda_benchmarks.md "
                    "for a full CUDA run, none otherwise")
    args = ap.parse_args(argv)
    base = QUICK if args.quick else FULL
    for k, v in base.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.out is None and args.provider == "cuda" and not args.quick:
        args.out = DOCS / "cuda_benchmarks.md"

    import onnxruntime as ort

    if args.provider == "cuda" and CUDA_EP not in ort.get_available_providers():
        print(f"onnxruntime {ort.__version__} has no {CUDA_EP}: install onnxruntime-gpu "
              f"(available: {ort.get_available_providers()}); `--provider cpu --quick` is a dry run", file=sys.stderr)
        return 2
    device = device_name(args.provider)
    print(f"device: {device}; onnxruntime {ort.__version__}; provider {args.provider}", flush=True)
    t0 = time.perf_counter()
    rows, placement = bench(args)
    text = report(args, rows, placement, device, time.perf_counter() - t0)
    print(text)
    if args.out is not None:
        args.out.write_text(text)
        data = {"device": device, "provider": args.provider, "tf32": args.tf32, "repeats": args.repeats,
                "warmup": args.warmup, "neuron": args.neuron, "placement": placement,
                "rows": [{**asdict(r), "ratio_qcfs": r.ratio_qcfs, "ratio_plain": r.ratio_plain} for r in rows]}
        args.out.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n")
        print(f"wrote {args.out} and {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

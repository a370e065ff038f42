"""CPU speed of a converted SNN against the dense floor and the PyTorch peer.

For each model (QCFS variants of timm models, random init) and each T and batch B it times, in
one process, alternating the methods every repetition (and rotating their order):

* ``snn``      our SNN in ONNX Runtime (all outputs: mean logits, per-step logits, spike counts)
* ``ann_xT``   the same ANN in ONNX Runtime run T times on the batch (T × the ANN)
* ``ann_fold`` the ANN once on the folded batch of T·B samples (the input repeated T times)
* ``sj_s`` / ``sj_m`` SpikingJelly 2.0: its ann2snn ``Converter`` with ``RateCodingRecipe`` on
  the same network with ReLU activations (it converts ``nn.ReLU`` modules, not QCFS ones),
  stepped T times in single-step mode (its documented loop) and once over a ``[T, B, ...]``
  sequence in multi-step mode

and reports medians and ratios from that one run, plus the peak resident memory of each
method measured in a fresh subprocess per configuration (``VmHWM`` after one run, and the
RSS just before it: the difference is what running it costs on top of the loaded model). The
table goes to ``docs/benchmarks.md``. Run ``python benchmarks/cpu_speed.py --help``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import files

ROOT = Path(__file__).resolve().parents[2]

# timm name, input size, exporter (vgg16's ConvMlp head needs the dynamo exporter); the CNNs
# get QCFS activations (L = T, ParaIF); the ViT keeps its GELUs and converts in transformer
# mode (multi-threshold neurons), random weights
MODELS: dict[str, dict[str, Any]] = {
    "resnet18": {"timm": "resnet18", "img": 32, "exporter": "legacy", "qcfs": True},
    "vgg16": {"timm": "vgg16", "img": 32, "exporter": "dynamo", "qcfs": True},
    "vit_tiny": {"timm": "vit_tiny_patch16_224", "img": 224, "exporter": "auto", "qcfs": False},
}
METHODS = ("snn", "ann_xT", "ann_fold", "sj_s", "sj_m", "snn_plain")
LABELS = {
    "snn": "snn-onnx SNN",
    "snn_plain": "SNN without graph optimizations",
    "ann_xT": "T × ANN (ORT)",
    "ann_fold": "ANN on T·B (ORT)",
    "sj_s": "SpikingJelly single-step",
    "sj_m": "SpikingJelly multi-step",
}
NUM_CLASSES = 10


@dataclass
class Row:
    model: str
    T: int
    B: int
    ms: dict[str, float] = field(default_factory=dict)  # median ms per method
    runs: dict[str, list[float]] = field(default_factory=dict)
    peak_mib: dict[str, float] = field(default_factory=dict)
    before_mib: dict[str, float] = field(default_factory=dict)
    note: str = ""

    def ratio(self, a: str, b: str) -> float | None:
        if a in self.ms and b in self.ms and self.ms[b] > 0:
            return self.ms[a] / self.ms[b]
        return None

    def sj_best(self) -> str | None:
        have = [m for m in ("sj_s", "sj_m") if m in self.ms]
        return min(have, key=lambda m: self.ms[m]) if have else None


class Log:
    def __init__(self, quiet: bool):
        self.quiet, self.t0 = quiet, time.perf_counter()

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            print(f"[{time.perf_counter() - self.t0:7.1f} s] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# models


def _ort_options(threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return so


def build_onnx(name: str, T: int, workdir: Path, log: Log, plain: bool = False) -> tuple[Path, Path, dict]:
    """Export the QCFS model with L = T levels and convert it (ParaIF, T steps); returns the
    ANN and SNN paths and what the conversion did. Raises on models the converter refuses."""
    import onnx

    import snn_onnx
    from snn_onnx.export.torch_export import export_module
    from snn_onnx_models.timm_qcfs import create_qcfs_timm

    spec = MODELS[name]
    ann_path, snn_path = workdir / f"{name}_T{T}.ann.onnx", workdir / f"{name}_T{T}.snn.onnx"
    info_path = workdir / f"{name}_T{T}.json"
    plain_path = workdir / f"{name}_T{T}.plain.snn.onnx"
    if ann_path.exists() and snn_path.exists() and info_path.exists() and (plain_path.exists() or not plain):
        return ann_path, snn_path, json.loads(info_path.read_text())
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if spec["qcfs"]:
            module = create_qcfs_timm(spec["timm"], levels=T, num_classes=NUM_CLASSES, img_size=spec["img"], seed=0)
        else:
            import timm
            import torch

            torch.manual_seed(0)
            module = timm.create_model(spec["timm"], pretrained=False, num_classes=NUM_CLASSES).eval()
        ann = export_module(module, (3, spec["img"], spec["img"]), exporter=spec["exporter"])
    t_export = time.perf_counter() - t
    x = np.random.default_rng(0).standard_normal((8, 3, spec["img"], spec["img"])).astype(np.float32)
    res = snn_onnx.convert(ann, time_steps=T, data=x, parity_samples=4)
    onnx.save(ann, str(ann_path))
    onnx.save(res.model, str(snn_path))
    if plain:  # the same conversion without optimize.hoist_time_entry, for --compare-unoptimized
        onnx.save(snn_onnx.convert(ann, time_steps=T, data=x, parity_samples=4, optimize_graph=False).model,
                  str(plain_path))
    info = {"export_s": t_export, "convert_s": res.seconds, "optimizations": res.optimizations,
            "parity": res.parity}
    info_path.write_text(json.dumps(info, default=float))
    log(f"{name} T={T}: exported in {t_export:.1f} s, converted in {res.seconds['total']:.1f} s; "
        f"hoisted {res.optimizations.get('hoisted')}")
    return ann_path, snn_path, info


def build_sj(name: str, threads: int, seed: int = 0):
    """SpikingJelly's conversion of the ReLU network (same timm weights as the QCFS one)."""
    import torch
    import timm
    from spikingjelly.activation_based import ann2snn

    from snn_onnx_models.timm_qcfs import _estimate_bn_stats

    torch.set_num_threads(threads)
    spec = MODELS[name]
    if not spec["qcfs"]:
        raise ValueError("SpikingJelly's ann2snn converter only replaces ReLU modules; "
                         f"{spec['timm']} has none (GELU)")
    torch.manual_seed(seed)
    model = timm.create_model(spec["timm"], pretrained=False, num_classes=NUM_CLASSES).eval()
    gen = torch.Generator().manual_seed(seed)
    calib = torch.randn(8, 3, spec["img"], spec["img"], generator=gen)
    _estimate_bn_stats(model, calib)  # as create_qcfs_timm does before qcfsify
    model.eval()
    head = getattr(model, "pre_logits", None)
    if head is not None and hasattr(head, "fc1") and hasattr(head, "input_kernel_size"):
        # timm's VGG ConvMlp branches on the feature map's size, which torch.fx (SpikingJelly's
        # tracer) cannot follow; for the small inputs benchmarked here it always takes the
        # adaptive-pooling branch, so the same modules in a Sequential compute the same thing
        k = head.input_kernel_size
        model.pre_logits = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d((k, k)), head.fc1, head.act1,
                                               head.drop, head.fc2, head.act2)
    import contextlib
    import io

    with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conv = ann2snn.Converter(recipe=ann2snn.RateCodingRecipe(dataloader=[calib], mode="Max"), device="cpu")
        return conv.convert(model)


def sj_runners(snn, x_np: np.ndarray, T: int) -> dict[str, Callable[[], Any]]:
    import torch
    from spikingjelly.activation_based import functional

    x = torch.from_numpy(x_np)

    def single():
        with torch.no_grad():
            functional.set_step_mode(snn, "s")
            functional.reset_net(snn)
            out = snn(x)
            for _ in range(1, T):
                out = out + snn(x)
            return out / T

    def multi():
        with torch.no_grad():
            functional.set_step_mode(snn, "m")
            functional.reset_net(snn)
            return snn(x.unsqueeze(0).repeat(T, *([1] * x.dim()))).mean(0)

    return {"sj_s": single, "sj_m": multi}


def snn_engine_session(snn_path: Path, threads: int, engine: str):
    """(ORT session, engine used) of the SNN: as converted (steps) or its collapsed form."""
    import onnx
    import onnxruntime as ort

    from snn_onnx.runtime.session import make_session

    if engine != "steps":
        from snn_onnx.runtime.collapsed import CollapseError, collapse

        try:
            model = collapse(onnx.load(str(snn_path))).model
            return ort.InferenceSession(model.SerializeToString(), _ort_options(threads),
                                        providers=["CPUExecutionProvider"]), "collapsed"
        except CollapseError:
            if engine == "collapsed":
                raise
    return make_session(str(snn_path), sess_options=_ort_options(threads)), "steps"


def ort_runners(ann_path: Path, snn_path: Path, x: np.ndarray, T: int, threads: int,
                methods: tuple[str, ...], engine: str = "steps") -> dict[str, Callable[[], Any]]:
    import onnxruntime as ort

    from snn_onnx.runtime.session import make_session

    out: dict[str, Callable[[], Any]] = {}
    if "ann_xT" in methods or "ann_fold" in methods:
        ann = ort.InferenceSession(str(ann_path), _ort_options(threads), providers=["CPUExecutionProvider"])
        name = ann.get_inputs()[0].name
        xT = np.ascontiguousarray(np.tile(x, (T,) + (1,) * (x.ndim - 1)))
        out["ann_xT"] = lambda: [ann.run(None, {name: x}) for _ in range(T)]
        out["ann_fold"] = lambda: ann.run(None, {name: xT})
    if "snn" in methods:
        snn, _ = snn_engine_session(snn_path, threads, engine)
        sname = snn.get_inputs()[0].name
        out["snn"] = lambda: snn.run(None, {sname: x})
    plain_path = snn_path.with_name(snn_path.name.replace(".snn.onnx", ".plain.snn.onnx"))
    if "snn_plain" in methods and plain_path.exists():
        plain = make_session(str(plain_path), sess_options=_ort_options(threads))
        pname = plain.get_inputs()[0].name
        out["snn_plain"] = lambda: plain.run(None, {pname: x})
    return {k: v for k, v in out.items() if k in methods}


def time_alternating(fns: dict[str, Callable[[], Any]], reps: int, budget_s: float = float("inf"),
                     min_reps: int = 3) -> dict[str, list[float]]:
    """Warm each method once, then up to ``reps`` rounds; each round runs every method once, in
    an order rotated by one every round. Rounds stop early (after ``min_reps``) once the
    configuration has used ``budget_s`` seconds."""
    names = list(fns)
    t0 = time.perf_counter()
    for n in names:
        fns[n]()
    runs: dict[str, list[float]] = {n: [] for n in names}
    for r in range(reps):
        if r >= min(min_reps, reps) and time.perf_counter() - t0 > budget_s:
            break
        order = names[r % len(names):] + names[: r % len(names)]
        for n in order:
            t = time.perf_counter()
            fns[n]()
            runs[n].append((time.perf_counter() - t) * 1000.0)
    return runs


# ---------------------------------------------------------------------------------------------
# memory: one fresh process per method and configuration


def _status_mib(key: str) -> float:
    """VmRSS (resident now) or VmHWM (peak resident) of this process, MiB. Not ru_maxrss: on
    Linux that survives exec, so a child of a large parent would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024.0  # kB
    raise RuntimeError(f"{key} not in /proc/self/status")


def memory_child(argv: list[str]) -> int:
    """Entry of the memory subprocess: build one method, report RSS before and peak after one run."""
    p = argparse.ArgumentParser()
    p.add_argument("--method", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--ann")
    p.add_argument("--snn")
    p.add_argument("-T", type=int, required=True)
    p.add_argument("-B", type=int, required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--engine", default="steps")
    a = p.parse_args(argv)
    img = MODELS[a.model]["img"]
    x = np.random.default_rng(1).standard_normal((a.B, 3, img, img)).astype(np.float32)
    if a.method.startswith("sj"):
        fn = sj_runners(build_sj(a.model, a.threads), x, a.T)[a.method]
    else:
        fn = ort_runners(Path(a.ann), Path(a.snn), x, a.T, a.threads, (a.method,), a.engine)[a.method]
    before = _status_mib("VmRSS")
    fn()
    print(json.dumps({"before_mib": before, "peak_mib": _status_mib("VmHWM")}))
    return 0


def measure_memory(method: str, model: str, ann: Path, snn: Path, T: int, B: int, threads: int,
                   engine: str = "steps") -> dict | None:
    if not Path("/proc/self/status").exists():
        return None
    cmd = [sys.executable, "-m", "snn_onnx.bench.cpu", "--memory-child", "--method", method, "--model", model,
           "--ann", str(ann), "--snn", str(snn), "-T", str(T), "-B", str(B), "--threads", str(threads),
           "--engine", engine]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "models"), str(ROOT / "cli"),
                                                         os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        return None
    return json.loads(res.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# profile and conversion time


def profile_ops(snn_path: Path, B: int, img: int, threads: int, runs: int = 3) -> dict[str, float]:
    """ONNX Runtime's profiler: kernel time per op type, ms per run (after one warm-up run)."""
    from snn_onnx.runtime.session import make_session

    so = _ort_options(threads)
    so.enable_profiling = True
    so.profile_file_prefix = str(Path(tempfile.gettempdir()) / "snn_onnx_bench_profile")
    sess = make_session(str(snn_path), sess_options=so)
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(2).standard_normal((B, 3, img, img)).astype(np.float32)
    sess.run(None, {name: x})
    for _ in range(runs):
        sess.run(None, {name: x})
    path = sess.end_profiling()
    events = json.loads(Path(path).read_text())
    os.unlink(path)
    model_runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    measured = model_runs[1:]  # skip the warm-up
    t0 = min(e["ts"] for e in measured)
    by_op: dict[str, float] = {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time") and e["ts"] >= t0:
            op = e["args"]["op_name"]
            by_op[op] = by_op.get(op, 0.0) + e["dur"] / 1000.0 / len(measured)
    by_op["(whole run)"] = sum(e["dur"] for e in measured) / 1000.0 / len(measured)
    return by_op


def conversion_time(num_calib: int = 256) -> dict[str, Any]:
    """``snn-onnx convert resnet18`` (ReLU, calibrated on ``num_calib`` random samples), run as
    a user runs it: a fresh process, wall time from start to exit."""
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "resnet18.snn.onnx"
        cmd = [sys.executable, "-m", "snn_onnx_cli", "convert", "resnet18", "--input-shape", "3,32,32",
               "--num-classes", str(NUM_CLASSES), "--num-calib", str(num_calib), "--data", "random",
               "--quiet", "-o", str(out)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "models"), str(ROOT / "cli"),
                                                             os.environ.get("PYTHONPATH", "")])}
        import resource

        c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("conversion took")), "")
    return {"command": "snn-onnx " + " ".join(cmd[3:-2]), "wall_s": wall, "cpu_s": cpu, "ok": res.returncode == 0,
            "cli_line": line, "stderr": res.stderr[-500:] if res.returncode else ""}


# ---------------------------------------------------------------------------------------------
# report


def _fmt_ms(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def _fmt_ratio(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}"


def machine_info(threads: int) -> dict[str, str]:
    import onnxruntime as ort

    cpu = platform.processor() or platform.machine()
    flags = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        cpu = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), cpu)
        flags = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    except OSError:
        pass
    isa = "avx2" if " avx2" in flags and os.environ.get("SNN_ONNX_ISA") != "baseline" else "baseline"
    info = {"cpu": cpu, "cores": str(os.cpu_count()), "threads": str(threads), "onnxruntime": ort.__version__,
            "kernels ISA": isa, "python": platform.python_version()}
    for mod in ("torch", "spikingjelly", "timm"):
        try:
            from importlib.metadata import version

            info[mod] = version(mod)
        except Exception:
            pass
    return info


def render(rows: list[Row], skipped: dict[str, str], profile: dict | None, conversion: dict | None,
           info: dict, args: argparse.Namespace, elapsed: float) -> str:
    L = []
    L.append("# CPU benchmarks\n")
    engine = "" if args.engine == "steps" else f" --engine {args.engine}"
    L.append("Measured by `python benchmarks/cpu_speed.py" + (" --quick" if args.quick else "") + engine + "` "
             "(also `snn-onnx bench`); this file is its output, rewritten on every run. "
             "Times are medians over the repetitions of one run, the methods alternating every "
             "repetition, so the ratios compare like with like even on a busy machine; absolute "
             "times are not comparable between runs.\n")
    L.append("Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()) + f". Whole run: {elapsed / 60:.1f} min; "
             f"up to {args.reps} repetitions per configuration (at least 3; fewer than {args.reps} where a "
             f"configuration had used {args.budget:.0f} s).\n")
    L.append("Methods: **SNN** = the converted QCFS model (ParaIFNeuron, T steps, L = T levels; for vit_tiny the "
             "random-init timm ViT in transformer mode: multi-threshold neurons, compensated GELU / LayerNorm / "
             "Softmax / attention products, and T × ANN / ANN on T·B are that ViT) in ONNX Runtime "
             "with the snn_onnx library, returning all its outputs (mean logits, per-step logits, spike counts)"
             + ("" if args.engine == "steps" else f", run by the {args.engine} engine (docs/collapsed.md)") + "; "
             "**T × ANN** = the same QCFS ANN in ONNX Runtime run T times on the batch; **ANN on T·B** = the ANN once "
             "on the batch repeated T times (the dense floor: the same multiply-adds as the SNN in one call); "
             "**SJ** = SpikingJelly "
             f"{info.get('spikingjelly', '?')} `ann2snn.Converter(RateCodingRecipe(mode='Max'))` on the same network "
             "with ReLU activations (SpikingJelly's converter replaces `nn.ReLU` modules and cannot take the QCFS "
             "ones; for vgg16 the head's size test, which torch.fx cannot trace, is replaced by the adaptive "
             "pooling it always takes at 32×32), run in PyTorch for T steps, single-step (`s`: its documented loop, the model called T times) and "
             "multi-step (`m`: one call on a `[T, B, ...]` sequence). All with the same number of threads. Speed-up "
             "vs SJ uses the faster SJ mode.\n")
    L.append("Memory: peak resident set (`VmHWM`) of a fresh process that loads one method and runs it once, "
             "and in brackets how much of it the run adds to the process just before the run (model, runtime "
             "and, for SJ, PyTorch already loaded).\n")
    for name in dict.fromkeys(r.model for r in rows):
        sub = [r for r in rows if r.model == name]
        spec = MODELS[name]
        L.append(f"## {name} ({spec['img']}×{spec['img']})\n")
        L.append("| T | B | SNN ms | T × ANN ms | ANN on T·B ms | SJ s ms | SJ m ms | **SNN / (T × ANN)** | SNN / (ANN on T·B) | **SJ / SNN** | reps |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in sub:
            best = r.sj_best()
            L.append(f"| {r.T} | {r.B} | {_fmt_ms(r.ms.get('snn'))} | {_fmt_ms(r.ms.get('ann_xT'))} | "
                     f"{_fmt_ms(r.ms.get('ann_fold'))} | {_fmt_ms(r.ms.get('sj_s'))} | {_fmt_ms(r.ms.get('sj_m'))} | "
                     f"**{_fmt_ratio(r.ratio('snn', 'ann_xT'))}** | {_fmt_ratio(r.ratio('snn', 'ann_fold'))} | "
                     f"**{_fmt_ratio(r.ratio(best, 'snn') if best else None)}** | "
                     f"{min((len(v) for v in r.runs.values()), default=0)} |")
        if any("snn_plain" in r.ms for r in sub):
            L.append("")
            L.append("Graph optimizations (the SNN as converted vs the same conversion with `optimize_graph=False`):\n")
            L.append("| T | B | SNN ms | unoptimized SNN ms | optimized / unoptimized |")
            L.append("|---|---|---|---|---|")
            for r in sub:
                L.append(f"| {r.T} | {r.B} | {_fmt_ms(r.ms.get('snn'))} | {_fmt_ms(r.ms.get('snn_plain'))} | "
                         f"{_fmt_ratio(r.ratio('snn', 'snn_plain'))} |")
        if any(r.peak_mib for r in sub):
            L.append("")
            L.append("Peak RSS, MiB (added by the run):\n")
            cols = [m for m in METHODS if any(m in r.peak_mib for r in sub)]
            L.append("| T | B | " + " | ".join(LABELS[m] for m in cols) + " |")
            L.append("|---|---|" + "---|" * len(cols))
            for r in sub:
                cells = []
                for m in cols:
                    if m in r.peak_mib:
                        cells.append(f"{r.peak_mib[m]:,.0f} (+{max(0.0, r.peak_mib[m] - r.before_mib[m]):,.0f})")
                    else:
                        cells.append("—")
                L.append(f"| {r.T} | {r.B} | " + " | ".join(cells) + " |")
        # one line per distinct note, naming the configurations it applies to
        by_note: dict[str, list[str]] = {}
        for r in sub:
            if r.note:
                by_note.setdefault(r.note, []).append(f"T={r.T} B={r.B}")
        notes = [(f"{note} (all configurations)" if len(where) == len(sub) else f"{', '.join(where)}: {note}")
                 for note, where in by_note.items()]
        if notes:
            L.append("")
            L += [f"* {n}" for n in notes]
        L.append("")
    for name, why in skipped.items():
        L.append(f"## {name}\n\nSkipped: {why}\n")
    if profile:
        L.append(f"## Where the time goes: {profile['model']} T={profile['T']} B={profile['B']}\n")
        L.append("ONNX Runtime's profiler (`SessionOptions.enable_profiling`), kernel time per op type, "
                 f"mean over {profile['runs']} runs after a warm-up. `ReorderInput` / `ReorderOutput` are "
                 "ONNX Runtime's conversions between NCHW and its blocked NCHWc layout, which its fast Conv "
                 "uses and custom ops do not (one pair around each spiking neuron).\n")
        ops = dict(profile["ops"])
        whole = ops.pop("(whole run)")
        L.append("| op type | ms per run | share |")
        L.append("|---|---|---|")
        for op, ms in sorted(ops.items(), key=lambda kv: -kv[1]):
            if ms >= 0.05:
                L.append(f"| {op} | {ms:.1f} | {100 * ms / whole:.1f}% |")
        L.append(f"| (whole run) | {whole:.1f} | 100% |\n")
    if conversion:
        L.append("## Conversion time\n")
        L.append(f"`{conversion['command']}` (ReLU resnet18, thresholds calibrated on 256 random samples, "
                 "parity check on 64): "
                 f"**{conversion['wall_s']:.1f} s** wall for the whole command in a fresh process "
                 f"({conversion['cpu_s']:.1f} s of CPU time, all threads; imports of torch and timm, "
                 "building and exporting the model included)"
                 + (f"; the command reports: {conversion['cli_line']}" if conversion["cli_line"] else "")
                 + ("" if conversion["ok"] else f" (FAILED: {conversion['stderr']})") + ".\n")
    L.append("## Targets (issue 6, resnet18 32×32, T = 8, B = 32)\n")
    tgt = next((r for r in rows if r.model == "resnet18" and r.T == 8 and r.B == 32), None)
    if tgt is None:
        L.append("Not in this run's grid (run without --quick).\n")
    else:
        r1 = tgt.ratio("snn", "ann_xT")
        best = tgt.sj_best()
        r2 = tgt.ratio(best, "snn") if best else None
        L.append(f"* SNN ≤ 1.0 × (T × ANN in ORT): measured **{_fmt_ratio(r1)}** — "
                 + ("met" if r1 is not None and r1 <= 1.0 else "missed") + ".")
        L.append(f"* ≥ 3 × faster than SpikingJelly: measured **{_fmt_ratio(r2)} ×** ({LABELS.get(best, '—')}) — "
                 + ("met" if r2 is not None and r2 >= 3.0 else "missed") + ".")
        if conversion:
            L.append(f"* Conversion with calibration ≤ 15 s: measured **{conversion['wall_s']:.1f} s** — "
                     + ("met" if conversion["ok"] and conversion["wall_s"] <= 15 else "missed") + ".")
        L.append("")
    return "\n".join(L)


# ---------------------------------------------------------------------------------------------
# main


class _Parser(argparse.ArgumentParser):
    """argparse with the CLI's one-line errors (``error: ...``, exit 2) instead of a usage block."""

    def error(self, message: str):  # type: ignore[override]
        sys.stderr.write(f"error: {' '.join(message.split())} (see {self.prog} --help)\n")
        sys.exit(2)


def _ints(text: str, what: str = "value", p: argparse.ArgumentParser | None = None) -> list[int]:
    parts = [v.strip() for v in text.split(",")]
    if not parts or not all(v.isdigit() and int(v) > 0 for v in parts):
        msg = f"{what} takes positive integers separated by ',', got {text!r}"
        if p is None:
            raise ValueError(msg)
        p.error(msg)
    return [int(v) for v in parts]


def _positive(kind):
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}") from None
        if not v > 0 or v != v or v == float("inf"):
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        return v
    return parse


def parse_args(argv: list[str] | None, default_out: str | Path | None = None) -> argparse.Namespace:
    """``default_out``: where the markdown report goes without --out (not in --quick runs):
    the CLI passes the current folder, benchmarks/cpu_speed.py passes docs/benchmarks.md."""
    p = _Parser(
        prog="snn-onnx bench",
        description="CPU speed: snn-onnx SNN vs T × ANN and the folded ANN in ONNX Runtime, and SpikingJelly.")
    p.add_argument("--quick", action="store_true",
                   help="CI-size run: resnet18, T=4, B=1 and 8, 3 repetitions (a few minutes).")
    p.add_argument("--models", default=None, help=f"comma-separated, from {list(MODELS)} (default: all)")
    p.add_argument("--time-steps", default=None, help="comma-separated T values (default 4,8,16)")
    p.add_argument("--batches", default=None, help="comma-separated batch sizes (default 1,32)")
    p.add_argument("--reps", type=_positive(int), default=None, help="timed repetitions per method (default 5; quick 3)")
    p.add_argument("--budget", type=_positive(float), default=90.0,
                   help="seconds per configuration after which no new repetition starts (at least 3 are run)")
    p.add_argument("--threads", type=_positive(int), default=os.cpu_count() or 1, help="intra-op threads (ORT and torch)")
    p.add_argument("--no-memory", action="store_true", help="skip the per-configuration memory subprocesses")
    p.add_argument("--engine", choices=("steps", "collapsed", "auto"), default="steps",
                   help="how the SNN runs: steps (T steps, custom-op kernels), collapsed (one pass over time "
                        "means, standard ops; docs/collapsed.md) or auto (collapsed where it applies); "
                        "benchmarks/collapsed.py compares the two")
    p.add_argument("--no-peer", action="store_true", help="skip SpikingJelly")
    p.add_argument("--sj-modes", default="s,m", help="SpikingJelly step modes to time: s (single-step), m (multi-step)")
    p.add_argument("--no-conversion", action="store_true", help="skip timing `snn-onnx convert resnet18`")
    p.add_argument("--compare-unoptimized", action="store_true",
                   help="also time the SNN converted without graph optimizations (optimize_graph=False)")
    p.add_argument("--out", default=None,
                   help=f"markdown report (default {default_out or 'none'}; --quick: none)")
    p.add_argument("--json", default=None, help="also write the raw results as JSON")
    p.add_argument("--workdir", default=None, help="keep exported/converted models here (default: a temp dir)")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    a.models = a.models.split(",") if a.models else (["resnet18"] if a.quick else list(MODELS))
    bad = [m for m in a.models if m not in MODELS]
    if bad:
        p.error(f"unknown model(s) {bad}; choose from {list(MODELS)}")
    a.time_steps = _ints(a.time_steps, "--time-steps", p) if a.time_steps else ([4] if a.quick else [4, 8, 16])
    a.batches = _ints(a.batches, "--batches", p) if a.batches else ([1, 8] if a.quick else [1, 32])
    a.reps = a.reps or (3 if a.quick else 5)
    if a.out is None and not a.quick and default_out is not None:
        a.out = str(default_out)
    for flag, path in (("--out", a.out), ("--json", a.json)):  # the report replaces its old self
        if path is not None:
            files.check_output_path(path, force=True, option=flag)
    return a


def ensure_library(log: Log) -> None:
    from snn_onnx.errors import LibraryNotFoundError
    from snn_onnx.library import library_path

    try:
        library_path()
        return
    except LibraryNotFoundError:
        script = ROOT / "scripts" / "build_dev.sh"
        if not script.exists():
            raise
    log("custom-op library not built: running scripts/build_dev.sh")
    subprocess.run(["bash", str(script)], check=True, stdout=subprocess.DEVNULL)


def main(argv: list[str] | None = None, default_out: str | Path | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--memory-child"]:
        return memory_child(argv[1:])
    args = parse_args(argv, default_out)
    log = Log(args.quiet)
    ensure_library(log)
    peer = not args.no_peer
    if peer:
        try:
            import spikingjelly  # noqa: F401
        except ImportError:
            log("spikingjelly is not installed (pip install 'snn-onnx[bench]'): skipping the peer")
            peer = False
    sj_modes = {f"sj_{m.strip()}" for m in args.sj_modes.split(",") if m.strip()}
    methods = tuple(m for m in METHODS if (not m.startswith("sj") or (peer and m in sj_modes))
                    and (m != "snn_plain" or args.compare_unoptimized))
    t_start = time.perf_counter()
    rows: list[Row] = []
    skipped: dict[str, str] = {}
    profile = None
    tmp = None
    if args.workdir:
        workdir = Path(args.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="snn_onnx_bench_")
        workdir = Path(tmp.name)
    import torch

    torch.set_num_threads(args.threads)
    try:
        for name in args.models:
            spec = MODELS[name]
            sj, sj_error = None, ""
            for T in args.time_steps:
                try:
                    ann_path, snn_path, info = build_onnx(name, T, workdir, log, plain=args.compare_unoptimized)
                except Exception as err:  # the converter (or the QCFS model) cannot take it yet
                    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                    skipped[name] = (f"the converter could not convert {spec['timm']} "
                                     f"({type(err).__name__}: {first})")
                    log(f"{name}: skipped ({first})")
                    break
                if peer and sj is None:
                    try:
                        sj = build_sj(name, args.threads)
                    except Exception as err:
                        log(f"{name}: SpikingJelly conversion failed: {err}")
                        sj, sj_error = False, str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                for B in args.batches:
                    x = np.random.default_rng(1).standard_normal((B, 3, spec["img"], spec["img"])).astype(np.float32)
                    fns = ort_runners(ann_path, snn_path, x, T, args.threads, methods, args.engine)
                    if sj:
                        fns.update({k: f for k, f in sj_runners(sj, x, T).items() if k in methods})
                    log(f"{name} T={T} B={B}: timing {list(fns)}")
                    runs = time_alternating(fns, args.reps, args.budget, min_reps=min(3, args.reps))
                    row = Row(name, T, B, ms={k: float(np.median(v)) for k, v in runs.items()}, runs=runs)
                    if sj is False:
                        row.note = f"SpikingJelly could not convert this model: {sj_error}"
                    if not args.no_memory:
                        for m in fns:
                            mem = measure_memory(m, name, ann_path, snn_path, T, B, args.threads, args.engine)
                            if mem:
                                row.peak_mib[m], row.before_mib[m] = mem["peak_mib"], mem["before_mib"]
                    rows.append(row)
                    log(f"  " + ", ".join(f"{k} {v:.1f} ms" for k, v in row.ms.items())
                        + f"; SNN/(T×ANN) {_fmt_ratio(row.ratio('snn', 'ann_xT'))}")
                    if name == "resnet18" and T == 8 and B == 32 or (args.quick and profile is None):
                        profile = {"model": name, "T": T, "B": B, "runs": 3,
                                   "ops": profile_ops(snn_path, B, spec["img"], args.threads)}
        conversion = None if args.no_conversion else conversion_time()
        if conversion:
            log(f"conversion: {conversion['wall_s']:.1f} s ({conversion['cli_line']})")
    finally:
        if tmp is not None:
            tmp.cleanup()
    elapsed = time.perf_counter() - t_start
    info = machine_info(args.threads)
    text = render(rows, skipped, profile, conversion, info, args, elapsed)
    print(text)
    if args.out:
        files.write_text(args.out, text)
        log(f"wrote {args.out}")
    if args.json:
        files.write_text(args.json, json.dumps({"rows": [asdict(r) for r in rows], "skipped": skipped,
                                                "profile": profile, "conversion": conversion, "machine": info},
                                               indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

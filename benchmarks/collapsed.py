#!/usr/bin/env python
"""The collapsed engine (issue 10): speed, memory, exactness and sharded evaluation.

Writes docs/collapsed.md (and docs/collapsed.json) with, each section from one run:

* speed: resnet18 and vgg16 (timm, QCFS with L = T, random init, 32×32, B = 32) at
  T = 4, 8, 32, 256: the collapsed engine (outputs only, and with per-step outputs and spike
  counts), one ANN pass in ONNX Runtime, the step-by-step SNN and SpikingJelly, the methods
  alternating every repetition; ratios from medians; peak memory in a fresh process each;
* eval: wall time of ``snn-onnx eval -T 1,…,256 --neurons paraif`` on the digits test set,
  --engine steps vs --engine collapsed (fresh processes);
* ties: collapsed vs step-by-step neuron by neuron (``compare_engines``) on the digits test set
  and on random inputs for resnet18 / vgg16 / the MobileNet-style CNN of the tests;
* ray: the same evaluation in one process and on a local Ray cluster with 1 and 2 workers.

    python benchmarks/collapsed.py                 # everything (about an hour on 2 cores)
    python benchmarks/collapsed.py --only speed    # one section; the others are kept from docs/collapsed.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT / "cli", ROOT / "models", ROOT / "tests", ROOT):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

DOCS = ROOT / "docs"
SECTIONS = ("speed", "eval", "ties", "ray")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "models"), str(ROOT / "cli"),
                                                         os.environ.get("PYTHONPATH", "")])}


# -- speed ---------------------------------------------------------------------------------------

def speed(args, on_row=None) -> list[dict]:
    import onnx
    import onnxruntime as ort

    from snn_onnx.bench import cpu
    from snn_onnx.runtime.collapsed import collapse, prune

    threads = args.threads
    rows = []
    work = Path(args.workdir or tempfile.mkdtemp(prefix="snn_onnx_collapsed_"))
    work.mkdir(parents=True, exist_ok=True)
    for name in args.models:
        for T in args.time_steps:  # export and convert in a fresh process each (vgg16's export needs GBs)
            code = ("import sys; from pathlib import Path; from snn_onnx.bench import cpu; "
                    f"cpu.build_onnx({name!r}, {T}, Path({str(work)!r}), cpu.Log(True))")
            subprocess.run([sys.executable, "-c", code], check=True, env=env())
        sj = cpu.build_sj(name, threads) if not args.no_peer else None
        for T in args.time_steps:
            gc.collect()
            ann_path, snn_path, _ = cpu.build_onnx(name, T, work, cpu.Log(True))
            x = np.random.default_rng(1).standard_normal((args.batch, 3, 32, 32)).astype(np.float32)
            so = cpu._ort_options(threads)
            col = collapse(onnx.load(str(snn_path))).model
            c_all = ort.InferenceSession(col.SerializeToString(), so, providers=["CPUExecutionProvider"])
            c_out = ort.InferenceSession(prune(col, ["logits"]).SerializeToString(), so, providers=["CPUExecutionProvider"])
            ann = ort.InferenceSession(str(ann_path), so, providers=["CPUExecutionProvider"])
            fns = {
                "collapsed": lambda: c_out.run(["logits"], {"input": x}),
                "collapsed_all": lambda: c_all.run(None, {"input": x}),
                "ann": lambda: ann.run(None, {"input": x}),
            }
            est_gb = _steps_gb(onnx.load(str(ann_path)), T, args.batch)
            slow = {}
            if est_gb <= args.max_gb:
                slow["steps"] = cpu.ort_runners(ann_path, snn_path, x, T, threads, ("snn",), "steps")["snn"]
            note = "" if "steps" in slow else f"step-by-step skipped: about {est_gb:.0f} GB of activations > --max-gb {args.max_gb}"
            if sj is not None:  # multi-step where its [T*B, ...] activations fit, else the single-step loop
                runners = cpu.sj_runners(sj, x, T)
                key = "sj_m" if T * args.batch <= 1024 else "sj_s"
                slow[key] = runners[key]
            log(f"{name} T={T} B={args.batch}: timing {list(fns) + list(slow)}")
            runs = alternate(fns, slow, args.reps, args.budget)
            row = {"model": name, "T": T, "B": args.batch, "ms": {k: float(np.median(v)) for k, v in runs.items()},
                   "reps": {k: len(v) for k, v in runs.items()}, "note": note, "peak_mib": {}, "before_mib": {}}
            if not args.no_memory:
                for method, engine in (("snn", "collapsed"), ("ann_xT", "steps"), ("snn", "steps"), ("sj_m", "steps"),
                                       ("sj_s", "steps")):
                    key = {"snn": "collapsed_all" if engine == "collapsed" else "steps", "ann_xT": "ann"}.get(method, method)
                    if key not in row["ms"] or (key == "sj_s" and T > 32):  # (its memory does not grow with T)
                        continue
                    mem = cpu.measure_memory(method, name, ann_path, snn_path, 1 if method == "ann_xT" else T,
                                             args.batch, threads, engine)
                    if mem:
                        row["peak_mib"][key], row["before_mib"][key] = mem["peak_mib"], mem["before_mib"]
            log("  " + ", ".join(f"{k} {v:.1f} ms" for k, v in row["ms"].items()))
            rows.append(row)
            if on_row:
                on_row(rows)
            del fns, slow, c_all, c_out, ann, col
    return rows


def _steps_gb(ann, T: int, B: int) -> float:
    """Rough size of the step engine's largest activations: three of the ANN's largest tensors
    (for one sample) times T*B rows, in GB."""
    from snn_onnx.energy.shapes import infer_shapes

    shapes = infer_shapes(ann, {"input": np.zeros((1, 3, 32, 32), np.float32)})
    weights = {t.name for t in ann.graph.initializer}
    biggest = sorted((int(np.prod(s)) for k, s in shapes.items() if len(s) == 4 and k not in weights), reverse=True)[:3]
    return sum(biggest) * 4 * T * B / 1e9


def alternate(fast: dict, slow: dict, reps: int, budget: float) -> dict[str, list[float]]:
    """Rounds in which every method runs once, in a rotated order (as snn_onnx.bench.cpu does);
    the slow methods (step by step, SpikingJelly) join the first rounds only, as long as the
    configuration stays within ``budget`` seconds (at least one round), the fast ones run
    ``reps`` rounds."""
    for f in list(fast.values()) + list(slow.values()):
        f()
    runs: dict[str, list[float]] = {k: [] for k in list(fast) + list(slow)}
    t0 = time.perf_counter()
    for r in range(reps):
        names = list(fast) + [k for k in slow if r == 0 or (r < 3 and time.perf_counter() - t0 < budget)]
        names = names[r % len(names):] + names[: r % len(names)]
        for k in names:
            fn = fast.get(k) or slow[k]
            t = time.perf_counter()
            fn()
            runs[k].append((time.perf_counter() - t) * 1000.0)
    return runs


# -- eval wall time ------------------------------------------------------------------------------

def eval_wall(args) -> dict:
    ts = ",".join(str(t) for t in range(1, args.eval_tmax + 1))
    out = {"T": f"1..{args.eval_tmax}"}
    for engine in ("collapsed", "steps"):
        with tempfile.TemporaryDirectory() as d:
            js = Path(d) / "eval.json"
            cmd = [sys.executable, "-m", "snn_onnx_cli", "eval", "-T", ts, "--neurons", "paraif", "--engine", engine,
                   "--quiet", "--json-out", str(js)]
            log(f"eval --engine {engine} over T = 1..{args.eval_tmax}")
            t = time.perf_counter()
            res = subprocess.run(cmd, capture_output=True, text=True, env=env())
            wall = time.perf_counter() - t
            if res.returncode:
                raise RuntimeError(res.stderr[-2000:])
            rows = json.loads(js.read_text())["rows"]
        out[engine] = {"wall_s": wall,
                       "rows": [{k: r[k] for k in ("time_steps", "snn_accuracy", "firing_rate", "sops")} for r in rows]}
        log(f"  {wall:.1f} s")
    a, b = out["steps"]["rows"], out["collapsed"]["rows"]
    out["same_accuracy"] = sum(x["snn_accuracy"] == y["snn_accuracy"] for x, y in zip(a, b))
    out["same_counts"] = sum(x["firing_rate"] == y["firing_rate"] and x["sops"] == y["sops"] for x, y in zip(a, b))
    return out


# -- ties ----------------------------------------------------------------------------------------

def ties(args) -> list[dict]:
    import onnx

    import snn_onnx
    from snn_onnx import data
    from snn_onnx.export.torch_export import export_module
    from snn_onnx.runtime.engine_check import compare_engines
    from snn_onnx_models import example_model_path

    cases = []
    digits = onnx.load(str(example_model_path()))
    test = data.load("digits", split="test")
    calib = data.load("digits", split="train", limit=256)
    cases.append(("digits (QCFS CNN, trained; test set)", digits, test.x, calib.x))
    rnd = np.random.default_rng(1234).standard_normal((args.tie_samples, 3, 32, 32)).astype(np.float32)
    for name in ("resnet18", "vgg16", "mobilenet"):
        if name not in args.tie_models:
            continue
        if name == "mobilenet":
            from collapsed_models import mobilenet_like

            module = mobilenet_like(8)
            label = "MobileNet-style CNN (tests/collapsed_models.py; random init)"
        else:
            from snn_onnx_models.timm_qcfs import create_qcfs_timm

            module = create_qcfs_timm(name, levels=8, num_classes=10, img_size=32, seed=0)
            label = f"{name} (timm QCFS, random init; standard-normal inputs)"
        cases.append((label, export_module(module, (3, 32, 32)), rnd, rnd[:16]))
    out = []
    for label, ann, x, cal in cases:
        for T in args.tie_steps:
            if T > args.tie_max_t.get(label.split(" ")[0], T):
                out.append({"case": label, "T": T, "skipped": f"--tie-max-t {label.split(' ')[0]}="
                                                              f"{args.tie_max_t[label.split(' ')[0]]}"})
                continue
            snn = snn_onnx.convert(ann, time_steps=T, data=cal, parity_samples=2).model
            log(f"ties: {label} T={T}")
            rep = compare_engines(snn, {"input": x}, batch_size=7)
            first: dict[str, int] = {}
            for r in rep.records:
                if r["first_site"]:
                    first[r["first_site"]] = first.get(r["first_site"], 0) + 1
            exact = rep.exact
            ref, got = rep.steps["logits"], rep.collapsed["logits"]
            out.append({"case": label, "T": T, "samples": len(exact), "tied": int(np.sum(~exact)),
                        "non_ties": rep.non_ties, "first_sites": first,
                        "max_rel_diff_exact": float(np.abs(got - ref)[exact].max() / np.abs(ref).max()) if exact.any() else None,
                        "static_sites": rep.static_sites})
    return out


# -- ray -----------------------------------------------------------------------------------------

def ray_ratio(args) -> dict:
    import onnx

    from snn_onnx.evaluate import evaluate
    from snn_onnx.export.torch_export import export_module
    from snn_onnx.runtime.ray_eval import RayConfig
    from snn_onnx_models.timm_qcfs import create_qcfs_timm

    ann = export_module(create_qcfs_timm("resnet18", levels=8, num_classes=10, img_size=32, seed=0), (3, 32, 32))
    rng = np.random.default_rng(5)
    x = rng.standard_normal((args.ray_samples, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, args.ray_samples)  # random labels: this section times, it does not score
    kw = dict(time_steps=tuple(args.ray_steps), neurons=("paraif",), batch_size=32)
    out = {"samples": args.ray_samples, "T": list(args.ray_steps), "model": "resnet18 (QCFS, random init)"}
    results = {}
    for label, ray in (("one process", None), ("ray, 1 worker", RayConfig(workers=1)), ("ray, 2 workers", RayConfig(workers=2))):
        log(f"ray: {label}")
        t = time.perf_counter()
        res = evaluate(ann, x, y, x[:16], ray=ray, **kw)
        out[label] = time.perf_counter() - t
        results[label] = res.rows
        log(f"  {out[label]:.1f} s")
    out["identical"] = results["ray, 1 worker"] == results["one process"] == results["ray, 2 workers"]
    return out


# -- report --------------------------------------------------------------------------------------

LABELS = {"collapsed": "collapsed (outputs)", "collapsed_all": "collapsed (all outputs)", "ann": "1 ANN pass",
          "steps": "step-by-step", "sj_s": "SpikingJelly s", "sj_m": "SpikingJelly m"}


def _r(a, b):
    return None if a is None or b is None or b == 0 else a / b


def _f(v, nd=2):
    return "—" if v is None else (f"{v:,.0f}" if v >= 1000 else f"{v:.{nd}f}")


def render(res: dict) -> str:
    L = ["# The collapsed engine: speed, exactness, sharded evaluation\n",
         "A network whose spiking neurons are all `ParaIFNeuron` needs no time steps: each neuron reads the "
         "sum over time of its input and fires on its first `k = clamp(floor((acc + bias)/θ), 0, T)` steps, and "
         "the layers between neurons are affine, so one pass over time means gives every spike count and the "
         "output (`snn_onnx/runtime/collapsed.py`; how it works, what it refuses and why its numbers agree with "
         "the step-by-step SNN: [the section below](#how-it-works)).\n",
         "Generated by `python benchmarks/collapsed.py` (sections can be rerun with `--only`); machine: "
         + res.get("machine", "?") + ".\n"]
    sp = res.get("speed")
    if sp:
        L.append("## Speed (CPU)\n")
        L.append(f"Random-init timm models with QCFS activations (L = T, ParaIF at T), 32×32 inputs, batch {sp['rows'][0]['B']}, "
                 f"{sp['threads']} threads, ONNX Runtime {sp['ort']}. Medians of one run in which the methods alternate "
                 "every repetition (the slow ones — step by step, SpikingJelly — only in the first rounds, at least once). "
                 "*collapsed (outputs)*: the collapsed graph computing the mean logits only (what `Session.run(x, "
                 "spike_counts=False, per_step=False)` runs); *collapsed (all outputs)*: with the per-step running means "
                 "and the per-step spike counts of every layer; *step-by-step*: the converted SNN with the custom-op "
                 "kernels, all outputs (docs/benchmarks.md); *SpikingJelly*: its ann2snn conversion of the ReLU network "
                 f"(spikingjelly {sp.get('sj', '?')}): multi-step (`m`, one call on `[T, B, …]`, its faster mode) where T·B ≤ 1024, "
                 "else the single-step loop (`s`: T calls, memory independent of T; its memory is measured at T ≤ 32 only). "
                 "The step-by-step SNN is skipped where its activations would not fit this shared machine (noted).\n")
        L.append("| model | T | collapsed ms | collapsed (all) ms | ANN ms | step-by-step ms | SJ s ms | SJ m ms | "
                 "**collapsed / ANN** | collapsed (all) / ANN | **steps / collapsed** | **SJ / collapsed** |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in sp["rows"]:
            ms = r["ms"]
            sj = min((ms[k] for k in ("sj_s", "sj_m") if k in ms), default=None)
            L.append(f"| {r['model']} | {r['T']} | {_f(ms.get('collapsed'), 1)} | {_f(ms.get('collapsed_all'), 1)} | "
                     f"{_f(ms.get('ann'), 1)} | {_f(ms.get('steps'), 0)} | {_f(ms.get('sj_s'), 0)} | {_f(ms.get('sj_m'), 0)} | "
                     f"**{_f(_r(ms.get('collapsed'), ms.get('ann')))}** | {_f(_r(ms.get('collapsed_all'), ms.get('ann')))} | "
                     f"**{_f(_r(ms.get('steps'), ms.get('collapsed')), 1)}** | **{_f(_r(sj, ms.get('collapsed')), 1)}** |")
        notes = [f"{r['model']} T={r['T']}: {r['note']}" for r in sp["rows"] if r["note"]]
        L += ["", *[f"* {n}" for n in notes]] if notes else []
        if any(r["peak_mib"] for r in sp["rows"]):
            L.append("\nPeak resident memory, MiB, of a fresh process that loads one method and runs it once "
                     "(in brackets: what the run adds to the loaded process):\n")
            L.append("| model | T | collapsed (all outputs) | 1 ANN pass | step-by-step | SpikingJelly m | SpikingJelly s |")
            L.append("|---|---|---|---|---|---|---|")
            for r in sp["rows"]:
                cells = []
                for k in ("collapsed_all", "ann", "steps", "sj_m", "sj_s"):
                    if k in r["peak_mib"]:
                        cells.append(f"{r['peak_mib'][k]:,.0f} (+{max(0.0, r['peak_mib'][k] - r['before_mib'][k]):,.0f})")
                    else:
                        cells.append("—")
                L.append(f"| {r['model']} | {r['T']} | " + " | ".join(cells) + " |")
        L.append("")
        goals = []
        for r in sp["rows"]:
            ms = r["ms"]
            if r["T"] in (32, 256):
                v = _r(ms.get("collapsed"), ms.get("ann"))
                goals.append(f"{r['model']} T={r['T']}: collapsed / ANN {_f(v)} (goal ≤ 1.3: {'met' if v is not None and v <= 1.3 else 'missed'})")
            if r["T"] == 32:
                sj = min((ms[k] for k in ("sj_s", "sj_m") if k in ms), default=None)
                v = _r(sj, ms.get("collapsed"))
                goals.append(f"{r['model']} T=32: SpikingJelly / collapsed {_f(v, 1)} (goal ≥ 20: {'met' if v is not None and v >= 20 else 'missed'})")
        L.append("Goals: " + "; ".join(goals) + ".\n")
    ev = res.get("eval")
    if ev:
        s, c = ev["steps"]["wall_s"], ev["collapsed"]["wall_s"]
        L.append("## `snn-onnx eval` over T = " + ev["T"] + " (digits)\n")
        L.append(f"`snn-onnx eval -T 1,2,…,{ev['T'].split('..')[1]} --neurons paraif` on the digits test set (451 images), "
                 "a fresh process each, wall time including the conversion for every T (ParaIF is converted per T: its "
                 "conversion's own parity check runs the step engine on 4 samples):\n")
        L.append("| engine | wall time | |")
        L.append("|---|---|---|")
        L.append(f"| steps | {s:.1f} s | |")
        L.append(f"| collapsed | {c:.1f} s | {s / c:.1f} × faster |")
        L.append(f"\nAccuracy equal at {ev['same_accuracy']} of {len(ev['steps']['rows'])} values of T, firing rate and "
                 f"SOPs equal at {ev['same_counts']} (they differ only where a float tie flips a spike, below).\n")
    ti = res.get("ties")
    if ti:
        L.append("## Exactness: collapsed vs step by step\n")
        L.append("`compare_engines` (`snn_onnx/runtime/engine_check.py`) runs both engines on the same batches (7 samples) "
                 "and compares every neuron's spike count per sample. A sample is *tied* when the first layer whose "
                 "counts differ differs only at neurons whose `u = (Σ_t x_t + bias)/θ` (from the step engine's inputs, "
                 "in float64) lies within float32 rounding of a step boundary (`|u − n| ≤ max(1e-5, 4·T·2⁻²⁴)·(Σ_t|x_t| + "
                 "|bias|)/θ`, the textbook bound for a sequential sum of T terms); anything else would be a real "
                 "mismatch (*non-ties*, always 0). On every other sample all spike counts are equal and the outputs "
                 "agree to float rounding (last column: max |Δ logit| / max |logit| over those samples).\n")
        L.append("| model | T | samples | tied | non-ties | first differing layer (samples) | max rel Δ (untied) |")
        L.append("|---|---|---|---|---|---|---|")
        for r in ti:
            if "skipped" in r:
                L.append(f"| {r['case']} | {r['T']} | — | — | — | not compared (`{r['skipped']}`: `compare_engines` keeps "
                         "every neuron's per-step inputs, more than this shared machine's memory at this size) | — |")
                continue
            first = ", ".join(f"`{k.rsplit('/', 1)[0]}` {v}" for k, v in sorted(r["first_sites"].items(), key=lambda kv: -kv[1])) or "—"
            rel = "—" if r["max_rel_diff_exact"] is None else f"{r['max_rel_diff_exact']:.1e}"
            L.append(f"| {r['case']} | {r['T']} | {r['samples']} | {r['tied']} | {r['non_ties']} | {first} | {rel} |")
        if not any(r["case"].startswith("vgg16") and "skipped" not in r for r in ti):
            L.append("\nvgg16 is not in this run (its full-size conversions at T = 256 did not fit the session's time); "
                     "`tests/test_collapsed.py` checks it with a narrowed head at T = 16, batch 1 and 7.")
        L.append("\nNeurons whose input is the same at every step (the first layer under direct coding) never differ: "
                 "the collapsed engine reproduces the kernel's sequential sum for them (below). Ties grow with T "
                 "(the sum has T terms) and behind compensated blocks (the step engine's TemporalDelta terms "
                 "`t·f_t − (t−1)·f_(t−1)` carry rounding errors proportional to t).\n")
    ry = res.get("ray")
    if ry:
        one, w1, w2 = ry["one process"], ry["ray, 1 worker"], ry["ray, 2 workers"]
        L.append("## Sharded evaluation on Ray\n")
        L.append(f"`evaluate(..., ray=RayConfig(workers=n))` on {ry['model']}, {ry['samples']} random 32×32 inputs, "
                 f"ParaIF at T = {', '.join(map(str, ry['T']))} (collapsed engine), batch 32, on this machine's local Ray "
                 "cluster (each actor one CPU and one ORT thread; the single process uses ORT's default threads): "
                 f"one process **{one:.1f} s**, Ray with 1 worker **{w1:.1f} s**, with 2 workers **{w2:.1f} s**: "
                 f"**1 → 2 workers: {w1 / w2:.2f} ×** "
                 f"({'identical numbers in all three' if ry['identical'] else 'NUMBERS DIFFER'}). Ray's fixed costs (cluster "
                 "start, actors, shipping the models) are included; with 2 cores there is no third core for Ray's "
                 "own processes.\n")
    if res.get("load"):
        L.append("Load average (1, 5, 15 min) of this shared 2-core machine at the end of each section: " +
                 "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in res["load"].items()) +
                 " (sections without an entry ran before it was recorded; other engineers' jobs ran at the same time, "
                 "so the absolute times are noisy; the ratios come from alternating runs, the eval and Ray walls do not).\n")
    L.append(HOW)
    return "\n".join(L)


HOW = """## How it works

The collapsed graph (`collapse(snn)`, used by `Session(path, engine="collapsed")`) is built from the
converted SNN graph, not from converter internals. Every value of the SNN graph is either constant,
time-invariant (the static input and what the hoisted prefix computes from it), time-varying —
represented by its **mean over the T steps** — or, inside a compensation block, a running mean,
represented by its **value at step T**. Nodes are copied onto these representations:

* affine ops on means (Conv, Gemm, MatMul with one time-varying operand, Add, Sub, average pooling,
  BatchNorm, reshapes, Concat, Pad, Resize, …) run on the means: `mean_t(A x_t + b) = A mean_t(x) + b`;
* `TemporalMean(x)` at step T is `mean(x)`; `TemporalDelta(g)` has mean `g_T` (the sum over t
  telescopes to `T·g_T`); so a compensation block `f` runs on its input's mean; a fused
  `CompensatedElementwise` becomes `f` in standard ops;
* `ParaIFNeuron`: `u = mean·T/θ_pre + bias/θ_pre`, `k = clip(floor(u), 0, T)`, mean output
  `θ_post·k/T` — the same five ops as the ANN's QCFS activation;
* the time entry (`Tile`) and the hoisted prefix's `Shape × T` are dropped (everything has B rows);
  the time exit's `ReduceMean` is the mean itself.

Anything else is refused with an error naming the node: `IFNeuron` and `MultiThresholdNeuron` (their
spikes depend on the order of their inputs), a non-linear op applied step by step to a time-varying
tensor, a product of two time-varying tensors that is not compensated, an op that acts along the folded
time·batch axis (followed through transposes and gathers by the converter's `batch_axis.py`).
`engine="auto"` then runs the step-by-step SNN.

**Per-step outputs.** The running mean after step t of a ParaIF neuron's spike train is
`θ_post·min(k, t)/t`. The *tail* — every node between the last neurons and an output — runs on these
running means for all steps stacked (`[c·B, …]`, time-major); compensation blocks in the tail see the
running means of their inputs, as in the SNN. The steps go through in chunks of `c` (an ONNX `Loop`
when `c < T`) so that the tail holds at most `PER_STEP_BUDGET` elements per sample (16 MiB of floats)
whatever T is.

**Spike counts per step** (`[T, *neuron shape]`, summed over the batch, the SNN's format): a histogram
of the per-sample counts k (`ScatterElements` with `reduction="add"`), summed from the top
(`CumSum(reverse=1)`: `counts[t] = #{b : k_b > t}`).

**Float order.** The ParaIF kernel sums its T inputs sequentially in float32 (docs/ops.md); the
collapsed engine gets the same sum from one layer applied to summed spikes. Both are correct
roundings of one real number, a sequential sum of T terms being off by up to `(T−1)·2⁻²⁴·Σ|terms|`,
so a neuron whose `u` lies that close to an integer can fire one step more or less in one engine than
in the other; every layer after it follows. This is the same situation as the ANN vs the SNN
(docs/parity.md) and CPU vs CUDA, and is detected the same way (table above). For a neuron whose input
is the same at every step the sum is reproduced exactly: the fast form is right wherever `u` is farther
from an integer than the bound `|x|·T²` ulps of the sequential sum, and the few neurons closer than
that are gathered, summed as the kernel sums (T − 1 Adds on a short vector), compared as the kernel
compares (`acc + bias ≥ fl(t·θ)`) and scattered back (`MAX_EXACT_STATIC_T` = 512).

**Any execution provider.** The collapsed graph has no custom ops, so it runs on CUDA (or any ORT
provider) without the library's kernels; `Session(..., providers=["CUDAExecutionProvider", ...],
engine="collapsed")`. (Checked on CPU here; `tests/test_collapsed.py::test_collapsed_on_cuda` runs
where onnxruntime-gpu and a GPU are present and skips otherwise.)

**Limits.** Event inputs are averaged at the entry; a graph where one reaches an output without
passing a neuron has no collapsed per-step outputs (refused). The collapsed graph keeps the model's
opset (≥ 13; spike counts need ≥ 16 for `ScatterElements` with a reduction). Above T = 512 a neuron
with a time-invariant input uses `T·x` (ties counted like every other layer's). `compare_engines`
needs the library (it runs both engines).

**Relation to DESIGN.md.** Its performance model — an SNN of T steps costs about T ANN passes —
describes the step-by-step simulation, which stays the reference semantics (`engine="steps"`, the
default of `snn_onnx.Session`; the kernels are what docs/ops.md specifies). The collapsed engine is
an additional way to run the same file when every neuron is ParaIF; the CLI's `run`, `eval` and
`report` use it by default (`--engine auto`), `bench` measures the step engine unless asked.

## Sharded evaluation: a multi-node recipe

```bash
pip install ".[ray]"                                  # on every node, with the same model files
ray start --head --port=6379 --num-cpus=8             # on the head node
ray start --address=HEAD_IP:6379 --num-cpus=8         # on each worker node
snn-onnx eval model.onnx --data val_images/ -T 1,2,4,8,16,32,64,128,256 --neurons paraif \\
    --ray auto --workers 16                           # on the head node (or --ray ray://HEAD_IP:10001)
snn-onnx eval ... --ray auto --workers 4 --provider cuda   # one GPU per worker
```

`--ray` alone starts a local cluster on this machine. The evaluation set is cut into the batches of
`--batch-size`, one Ray Dataset row each; `map_batches` gives them to `--workers` actors, each with an
ONNX Runtime session per SNN (`num_gpus=1` each with `--provider cuda`); predictions come back with
their sample indices and spike counts as integer sums, so the accuracy, firing rates, SOPs and energy
equal the single-process run's (`tests/test_ray_eval.py`). From Python:
`snn_onnx.evaluate.evaluate(ann, x, y, x_calib, time_steps=..., ray=RayConfig(address="auto", workers=16))`.
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections from {SECTIONS}")
    ap.add_argument("--models", default="resnet18,vgg16")
    ap.add_argument("--time-steps", default="4,8,32,256")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--reps", type=int, default=9, help="rounds of the fast methods")
    ap.add_argument("--budget", type=float, default=120.0, help="seconds per configuration for the slow methods' extra rounds")
    ap.add_argument("--max-gb", type=float, default=8.0, help="skip the step engine where its activations would exceed this")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--eval-tmax", type=int, default=256)
    ap.add_argument("--tie-steps", default="8,32,256")
    ap.add_argument("--tie-models", default="resnet18,vgg16,mobilenet")
    ap.add_argument("--tie-samples", type=int, default=28)
    ap.add_argument("--tie-max-t", default="", help="model=T,... : largest T compared for that model (compare_engines "
                    "keeps every neuron's per-step inputs: vgg16 at T = 256 needs more than 18 GB)")
    ap.add_argument("--ray-samples", type=int, default=2048)
    ap.add_argument("--ray-steps", default="8,32,256")
    ap.add_argument("--out", type=Path, default=DOCS / "collapsed.md")
    args = ap.parse_args()
    ints = lambda s: [int(v) for v in s.split(",") if v]  # noqa: E731
    args.models, args.time_steps = args.models.split(","), ints(args.time_steps)
    args.tie_steps, args.ray_steps, args.tie_models = ints(args.tie_steps), ints(args.ray_steps), args.tie_models.split(",")
    args.tie_max_t = {k: int(v) for k, v in (kv.split("=") for kv in args.tie_max_t.split(",") if kv)}
    only = args.only.split(",")
    js = args.out.with_suffix(".json")
    res = json.loads(js.read_text()) if js.exists() else {}
    import onnxruntime as ort

    res["machine"] = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    try:
        from importlib.metadata import version

        sj = version("spikingjelly")
    except Exception:
        sj = "?"
    def partial(rows):  # keep what is measured if a later configuration fails
        (js.with_suffix(".partial.json")).write_text(json.dumps(rows, indent=1) + "\n")

    jobs = {
        "speed": lambda: {"rows": speed(args, on_row=partial), "threads": args.threads, "ort": ort.__version__, "sj": sj},
        "eval": lambda: eval_wall(args),
        "ties": lambda: ties(args),
        "ray": lambda: ray_ratio(args),
    }
    for section in SECTIONS:
        if section in only:
            res[section] = jobs[section]()
            js.with_suffix(".partial.json").unlink(missing_ok=True)  # the section is complete
            # the machine is shared: the load during a section says how much its times can be trusted
            res.setdefault("load", {})[section] = [round(v, 1) for v in os.getloadavg()]
            js.write_text(json.dumps(res, indent=1, default=str) + "\n")  # each section as soon as it is done
            args.out.write_text(render(res))
    print(render(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())

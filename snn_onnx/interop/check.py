"""``snn-onnx check``: the same SNN, the same inputs, several runtimes, per-layer agreement.

Columns (each compared with the first, our ONNX Runtime CPU run):

* ``ORT CUDA``: our CUDA kernels, when a GPU, onnxruntime-gpu and a CUDA build of the
  library are there (else the column says which is missing);
* ``NIR sim``: the SNN exported to NIR (written to a file and read back) and run by the NumPy
  simulator of NIR's equations (:mod:`.nir_sim`);
* ``NIR → <reader>``: the same file in another framework's NIR reader (SpikingJelly, Norse,
  snnTorch), where that reader computes NIR's equations for this graph (:mod:`.clients`);
* ``SpikingJelly ann2snn``: the source ANN converted by SpikingJelly's own converter with our
  thresholds (:mod:`.spikingjelly_ref`), where SpikingJelly has our neuron.

Per spiking layer: the fraction of (step, sample, neuron) spike decisions equal to the CPU
run's, how many of the differences are float ties (the CPU potential within ``tie_eps``
of θ, where another float order may fall on the other side), and the largest potential
difference where the column has potentials. Per output: the largest difference of the mean
over time, relative to the largest CPU value, and argmax agreement. A column fails when a
layer has differences that are not ties beyond ``spike_tol``, or the output difference is
above ``output_tol``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import SnnOnnxError
from .snn_graph import SnnGraph, read_snn
from .trace import Trace, trace_snn

F32 = np.float32


@dataclass
class LayerResult:
    agreement: float
    mismatches: int
    ties: int
    max_dv: float | None


@dataclass
class Column:
    name: str
    status: str  # "reference" | "ok" | "n/a" | "error"
    note: str = ""
    layers: dict[str, LayerResult] = field(default_factory=dict)
    output_diff: float | None = None  # max |Δ| of the mean over T, relative to max |CPU|
    argmax: float | None = None
    passed: bool | None = None


@dataclass
class CheckReport:
    model: str
    time_steps: int
    samples: int
    layers: list[str]  # layer labels (sites, else nodes)
    spikes: dict[str, int]  # CPU spikes per layer
    columns: list[Column]
    spike_tol: float
    output_tol: float

    @property
    def passed(self) -> bool:
        return all(c.passed is not False for c in self.columns)

    def table(self) -> str:
        """Markdown: one row per layer, one column per runtime."""
        names = [c.name for c in self.columns]
        lines = [f"| layer | CPU spikes | {' | '.join(names)} |", "|---|---:|" + "---|" * len(names)]
        for layer in self.layers:
            cells = []
            for c in self.columns:
                r = c.layers.get(layer)
                if c.status == "reference":
                    cells.append("reference")
                    continue
                if c.status != "ok" or r is None:
                    cells.append("n/a" if c.status == "n/a" else "error")
                    continue
                dv = "" if r.max_dv is None else f", max Δv {r.max_dv:.2g}"
                tie = f" ({r.ties} ties)" if r.ties else ""
                cells.append(f"{100 * r.agreement:.3f} %{tie}{dv}")
            lines.append(f"| {layer} | {self.spikes[layer]} | " + " | ".join(cells) + " |")
        outs = []
        for c in self.columns:
            if c.status == "reference":
                outs.append("reference")
            elif c.status != "ok" or c.output_diff is None:
                outs.append("n/a" if c.status == "n/a" else "error")
            else:
                outs.append(f"max rel Δ {c.output_diff:.2g}, argmax {100 * c.argmax:.1f} %")
        lines.append("| output (mean over T) | | " + " | ".join(outs) + " |")
        lines.append("| verdict | | " + " | ".join(
            "—" if c.passed is None else ("pass" if c.passed else "FAIL") for c in self.columns) + " |")
        notes = [f"* **{c.name}**: {c.note}" for c in self.columns if c.note]
        return "\n".join(lines + ([""] + notes if notes else []))


def _compare(name: str, ref: Trace, snn: SnnGraph, spikes: dict[str, np.ndarray], outputs: dict[str, np.ndarray],
             potentials: dict[str, np.ndarray], labels: dict[str, str], spike_tol: float, output_tol: float,
             tie_eps: float, note: str = "") -> Column:
    col = Column(name=name, status="ok", note=note)
    ok = True
    for n in snn.neurons:
        a = ref.spikes[n.node]
        if n.node not in spikes:
            continue
        b = np.asarray(spikes[n.node], F32).reshape(a.shape)
        diff = a != b
        ties = 0
        if diff.any() and n.node in ref.potentials:
            near = np.abs(ref.potentials[n.node] - n.threshold) <= tie_eps * np.maximum(np.abs(n.threshold), 1.0)
            ties = int(np.count_nonzero(diff & near))
        mism = int(np.count_nonzero(diff))
        dv = None
        if n.node in potentials and n.node in ref.potentials:
            dv = float(np.max(np.abs(np.asarray(potentials[n.node]).reshape(a.shape) - ref.potentials[n.node])))
        col.layers[labels[n.node]] = LayerResult(agreement=1.0 - mism / max(a.size, 1), mismatches=mism, ties=ties, max_dv=dv)
        if (mism - ties) > spike_tol * a.size:
            ok = False
    diffs, agree = [], []
    for out, steps in ref.outputs.items():
        if out not in outputs:
            continue
        m_ref = steps.mean(axis=0)
        m = np.asarray(outputs[out], F32).reshape(steps.shape).mean(axis=0)
        diffs.append(float(np.max(np.abs(m - m_ref)) / max(float(np.max(np.abs(m_ref))), 1e-12)))
        if m_ref.ndim == 2:
            agree.append(float(np.mean(m.argmax(-1) == m_ref.argmax(-1))))
    if diffs:
        col.output_diff = max(diffs)
        col.argmax = min(agree) if agree else None
        ok = ok and col.output_diff <= output_tol
    col.passed = ok
    return col


def _na(name: str, why: str, status: str = "n/a") -> Column:
    return Column(name=name, status=status, note=why)


def check(model: str | Path | SnnGraph, x: np.ndarray, *, nir_readers: Sequence[str] = ("spikingjelly",),
          ann: Any = None, lossy: bool = False, dt: float | None = None, spike_tol: float = 0.0,
          output_tol: float = 1e-4, tie_eps: float = 1e-5, cuda: bool | None = None) -> CheckReport:
    """Run every column on the static input ``x`` ``[B, ...]`` (an event input: ``[T*B, ...]``).
    ``ann``: the source ANN as a torch module, for the SpikingJelly ann2snn column.
    ``lossy``: export subtractive-reset / ``v_init`` neurons to NIR anyway (the NIR columns
    then measure the difference). ``cuda``: None = when available."""
    from .nir_export import DEFAULT_DT

    snn = model if isinstance(model, SnnGraph) else read_snn(model)
    dt = DEFAULT_DT if dt is None else dt
    x = np.asarray(x, F32)
    T = snn.time_steps
    labels = {n.node: n.site or n.node for n in snn.neurons}
    ref = trace_snn(snn, x)
    kw = dict(labels=labels, spike_tol=spike_tol, output_tol=output_tol, tie_eps=tie_eps)
    cols = [Column(name="ORT CPU", status="reference", note="our kernels in ONNX Runtime on the CPU: what the others are compared with")]
    cols.append(_cuda_column(snn, x, ref, cuda, kw))
    cols.extend(_nir_columns(snn, x, ref, nir_readers, lossy, dt, kw))
    cols.append(_sj_column(snn, x, ref, ann, kw))
    static = all(k == "static" for k in snn.input_kinds.values())
    samples = x.shape[0] if static else x.shape[0] // T
    return CheckReport(model=snn.path, time_steps=T, samples=samples, layers=[labels[n.node] for n in snn.neurons],
                       spikes={labels[n.node]: int(np.count_nonzero(ref.spikes[n.node])) for n in snn.neurons},
                       columns=cols, spike_tol=spike_tol, output_tol=output_tol)


def _cuda_column(snn: SnnGraph, x, ref: Trace, cuda: bool | None, kw) -> Column:
    import onnxruntime as ort

    from ..library import cuda_runtime_version

    name = "ORT CUDA"
    if cuda is False:
        return _na(name, "not asked for")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return _na(name, "no GPU run: this onnxruntime has no CUDAExecutionProvider (needs onnxruntime-gpu and a GPU)")
    if cuda_runtime_version() == 0:
        return _na(name, "no GPU run: the snn_onnx library was built without CUDA kernels (SNN_ONNX_CUDA=ON)")
    try:
        tr = trace_snn(snn, x, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    except SnnOnnxError as err:
        return _na(name, f"no GPU run: {err}")
    return _compare(name, ref, snn, tr.spikes, tr.outputs, tr.potentials, **kw)


def _nir_columns(snn: SnnGraph, x, ref: Trace, readers: Sequence[str], lossy: bool, dt: float, kw) -> list[Column]:
    from .clients import run_client, unsupported
    from .nir_export import import_nir, to_nir
    from .nir_sim import simulate_nir

    names = ["NIR sim"] + [f"NIR → {r}" for r in readers]
    try:
        nir = import_nir()
        exp = to_nir(snn, dt=dt, lossy=lossy)
    except SnnOnnxError as err:
        return [_na(n, f"export refused: {err}") for n in names[:1]] + [_na(n, "no NIR file (export refused)") for n in names[1:]]
    with tempfile.TemporaryDirectory() as tmp:  # through the file, as a reader gets it
        path = Path(tmp) / "model.nir"
        exp.write(path)
        graph = nir.read(str(path))
    T = snn.time_steps
    static = all(k == "static" for k in snn.input_kinds.values())
    feed = {k: (np.broadcast_to(x, (T,) + x.shape) if static else x.reshape((T, -1) + x.shape[1:])) for k in exp.inputs}
    by_nir = {ne.nir_node: ne.onnx_node for ne in exp.neurons}
    note = "lossy export: " + "; ".join(exp.lossy[:2]) + (" …" if len(exp.lossy) > 2 else "") if exp.lossy else ""
    cols = []
    run = simulate_nir(graph, feed, dt)
    cols.append(_compare(names[0], ref, snn, {by_nir[k]: v for k, v in run.spikes.items()},
                         {exp.outputs[k]: v for k, v in run.outputs.items()},
                         {by_nir[k]: v for k, v in run.potentials.items()}, note=note or "NumPy simulation of NIR's equations, dt " f"{dt:g}", **kw))
    for reader, name in zip(readers, names[1:]):
        graph_r = graph
        if reader == "norse" and any(type(n).__name__ == "AvgPool2d" for n in graph.nodes.values()):
            graph_r = to_nir(snn, dt=dt, lossy=lossy, pooling="sum").graph  # Norse reads SumPool2d only
        why = unsupported(reader, graph_r, dt)
        if why:
            cols.append(_na(name, why))
            continue
        try:
            r = run_client(reader, graph_r, feed, dt)
        except Exception as err:  # a reader's own failure is a finding, reported in its column
            cols.append(_na(name, f"{reader} failed: {type(err).__name__}: {err}", status="error"))
            continue
        cols.append(_compare(name, ref, snn, {by_nir[k]: v for k, v in r.spikes.items()},
                             {exp.outputs[k]: v for k, v in r.outputs.items()}, {}, note=note, **kw))
    return cols


def _sj_column(snn: SnnGraph, x, ref: Trace, ann: Any, kw) -> Column:
    from .spikingjelly_ref import convert_with_spikingjelly, run_spikingjelly

    name = "SpikingJelly ann2snn"
    if ann is None:
        return _na(name, "no source ANN as a torch module (pass --ann module:factory or a timm name)")
    if any(k != "static" for k in snn.input_kinds.values()) or len(snn.input_kinds) != 1:
        return _na(name, "only single static-input models")
    try:
        sj, made = convert_with_spikingjelly(ann, snn.neurons, x)
    except SnnOnnxError as err:
        return _na(name, str(err))
    out, spikes = run_spikingjelly(sj, made, x, snn.time_steps)
    sp = {n.node: s for n, s in zip(snn.neurons, spikes)}
    outs = {next(iter(ref.outputs)): out} if len(ref.outputs) == 1 else {}
    return _compare(name, ref, snn, sp, outs, {}, note="SpikingJelly's RateCodingRecipe with our neurons and thresholds", **kw)

"""``Session``: run a converted SNN, get its outputs and per-layer spike counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import onnx
import onnxruntime as ort

from .. import metadata as md
from ..load import load_onnx
from ..errors import DataError, ModelLoadError, SnnOnnxError
from . import inputs as checks
from .memory import RunMemory


CUDA_EP = "CUDAExecutionProvider"


def make_session(
    model: str | Path | onnx.ModelProto | bytes,
    providers: Sequence[str | tuple[str, dict]] | None = None,
    sess_options: ort.SessionOptions | None = None,
    custom_ops: bool = True,
) -> ort.InferenceSession:
    """An ORT session with the snn_onnx op library registered. ``providers`` as onnxruntime
    takes them: names, or ``(name, options)`` pairs. ``custom_ops=False``: a graph of
    standard ops only (the collapsed engine's), no library needed."""
    from ..library import cuda_runtime_version, library_path, session_options

    if sess_options is None:
        sess_options = ort.SessionOptions()
        sess_options.log_severity_level = 3  # ORT's warnings are about graph cosmetics
    so = session_options(sess_options) if custom_ops else sess_options
    providers = list(providers or ["CPUExecutionProvider"])
    names = [p if isinstance(p, str) else p[0] for p in providers]
    available = ort.get_available_providers()
    missing = [p for p in names if p not in available]
    if missing:
        raise SnnOnnxError(
            f"execution provider(s) {missing} not available in this onnxruntime build "
            f"(available: {available}); for CUDA install onnxruntime-gpu"
        )
    if custom_ops and CUDA_EP in names and cuda_runtime_version() == 0:
        raise SnnOnnxError(
            f"{CUDA_EP} requested, but the snn_onnx custom-op library '{library_path()}' was built "
            "without CUDA kernels; rebuild it with CUDA: `SNN_ONNX_CUDA=ON pip install .` or "
            "`scripts/build_dev.sh -DSNN_ONNX_CUDA=ON` (needs the CUDA toolkit, nvcc on PATH)"
        )
    if isinstance(model, onnx.ModelProto):
        model = model.SerializeToString()
    elif isinstance(model, Path):
        model = str(model)
    try:
        sess = ort.InferenceSession(model, so, providers=providers)
    except Exception as err:
        raise SnnOnnxError(f"ONNX Runtime could not load the model: {err}") from None
    if CUDA_EP in names and CUDA_EP not in sess.get_providers():
        # onnxruntime falls back to the CPU when its CUDA provider cannot start.
        raise SnnOnnxError(
            f"{CUDA_EP} requested, but ONNX Runtime could not start it and fell back to "
            f"{sess.get_providers()}: no usable NVIDIA GPU / driver, or CUDA / cuDNN libraries "
            "that onnxruntime-gpu needs are missing (see ONNX Runtime's log)"
        )
    return sess


@dataclass
class SnnOutput:
    """Outputs of one SNN run. ``outputs``: mean over T (same names as the ANN);
    ``per_step``: running mean after each step ``[T, B, ...]``; ``spike_counts``: per spiking
    layer, spikes per step and neuron summed over the batch ``[T, *neuron shape]``;
    ``potentials``: per spiking layer, the membrane potentials ``[T, B, *neuron shape]``
    (only from a ``Session(..., potentials=True)``; docs/ops.md)."""

    outputs: dict[str, np.ndarray]
    per_step: dict[str, np.ndarray] = field(default_factory=dict)
    spike_counts: dict[str, np.ndarray] = field(default_factory=dict)
    potentials: dict[str, np.ndarray] = field(default_factory=dict)
    batch_size: int = 0
    time_steps: int = 0

    def firing_rates(self) -> dict[str, float]:
        """Spikes per neuron per time step, per layer."""
        return {
            site: float(c.sum()) / (c.size * self.batch_size) if c.size else 0.0
            for site, c in self.spike_counts.items()
        }

    def __getitem__(self, name: str) -> np.ndarray:
        return self.outputs[name]


ENGINES = ("auto", "steps", "collapsed")


class Session:
    """Load a converted SNN and run it.

    >>> sess = Session("model.snn.onnx")
    >>> out = sess.run(x)             # x: [B, ...] like the ANN's input
    >>> out = sess.run(frames)        # an event input: [T*B, ...] or [T, B, ...] (folded here)
    >>> out.outputs["logits"], out.firing_rates()

    ``engine``: "steps" runs the graph as converted, T steps with the custom-op library;
    "collapsed" runs its time-collapsed form (standard ONNX ops, one pass over time means,
    same outputs, per-step outputs and spike counts; only for networks whose neurons are
    all ParaIF, otherwise it refuses naming the node; docs/collapsed.md); "auto" picks
    collapsed where it applies, else steps (``engine_note`` says why).

    ``potentials=True`` declares the neurons' membrane-potential output (a debug output the
    converter leaves off, docs/ops.md) on the model in memory: ``run`` then also returns
    ``potentials`` per layer, and ``potential_sites`` says what each layer's threshold is.
    Potentials exist step by step only: with them "auto" runs steps and "collapsed" is refused.
    """

    def __init__(
        self,
        model: str | Path | onnx.ModelProto,
        providers: Sequence[str] | None = None,
        sess_options: ort.SessionOptions | None = None,
        engine: str = "steps",
        potentials: bool = False,
    ):
        if engine not in ENGINES:
            raise SnnOnnxError(f"engine must be one of {ENGINES}, got {engine!r}")
        proto = model if isinstance(model, onnx.ModelProto) else load_onnx(model)
        meta = md.read(proto)
        if "time_steps" not in meta:
            where = model if not isinstance(model, onnx.ModelProto) else "model"
            raise ModelLoadError(f"{where} is not an snn-onnx SNN (no snn_onnx.time_steps metadata); convert it first")
        if potentials and engine != "steps":
            if engine == "collapsed":
                raise SnnOnnxError("potentials=True needs engine='steps': the collapsed engine computes spike counts "
                                   "from time means, not the membrane potential at each step")
            self.engine, self.engine_note, run_proto = "steps", "membrane potentials are computed step by step", proto
        else:
            self.engine, self.engine_note, run_proto = _choose_engine(proto, engine)
        self.metadata: dict[str, Any] = meta
        self.time_steps: int = meta["time_steps"]
        self.sites: list[dict] = meta.get("sites", [])
        self._counts = {s["counts"]: s["site"] for s in self.sites if s.get("counts")}
        self._per_step = {v: k for k, v in meta.get("outputs", {}).items()}
        self.input_kinds: dict[str, str] = meta.get("inputs", {})
        self.potential_sites: list = []
        if potentials:
            from .potentials import declare

            proto, self.potential_sites = declare(proto, self.sites)
        self._potentials = {p.output: p.site for p in self.potential_sites}
        if self.engine == "steps":
            run_proto = proto
        self.model = proto  # the SNN as converted (with the potential outputs when asked for)
        self.run_model = run_proto  # what runs: the SNN, or its collapsed form
        self._sess = make_session(run_proto, providers, sess_options, custom_ops=self.engine == "steps")
        self._make = lambda m: make_session(m, providers, sess_options, custom_ops=False)
        self._pruned: dict[tuple[str, ...], ort.InferenceSession] = {}
        self.input_names = [i.name for i in self._sess.get_inputs()]
        self._input_meta = {i.name: i for i in self._sess.get_inputs()}
        self.output_names = [o.name for o in self._sess.get_outputs()
                             if o.name not in self._counts and o.name not in self._per_step
                             and o.name not in self._potentials]
        self.providers = self._sess.get_providers()
        # host memory is checked before a CPU run (of the graph that runs: the collapsed one holds
        # B rows, not T*B); a GPU's is ONNX Runtime's to report
        self._memory = RunMemory(run_proto) if self.providers[0] == "CPUExecutionProvider" else None

    def _session_for(self, names: list[str]) -> ort.InferenceSession:
        """The collapsed graph computes only what a run asks for (ORT runs every node of a
        graph whatever outputs are requested): one pruned session per set of outputs."""
        if self.engine != "collapsed" or len(names) == len(self._sess.get_outputs()):
            return self._sess
        key = tuple(sorted(names))
        if key not in self._pruned:
            from .collapsed import prune

            self._pruned[key] = self._make(prune(self.run_model, list(key)))
        return self._pruned[key]

    @property
    def inner(self) -> ort.InferenceSession:
        return self._sess

    def _feed(self, inputs: np.ndarray | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not isinstance(inputs, Mapping):
            if len(self.input_names) != 1:
                raise DataError(f"the model has inputs {self.input_names}; pass a dict")
            inputs = {self.input_names[0]: inputs}
        feed = {}
        for name in self.input_names:
            if name not in inputs:
                raise DataError(f"missing input '{name}' (model inputs: {self.input_names})")
            arr = np.asarray(inputs[name])
            checks.check_dtype(name, arr, "input", self._input_meta[name].type)
            shape = self._input_meta[name].shape
            if self.input_kinds.get(name) == "event" and arr.ndim == len(shape) + 1:
                # [T, B, ...] -> [T*B, ...] (time-major, row t*B + b)
                if arr.shape[0] != self.time_steps:
                    raise DataError(
                        f"event input '{name}' has shape {list(arr.shape)}: as [T, B, ...] it needs "
                        f"T={self.time_steps} frames, got {arr.shape[0]}"
                    )
                arr = arr.reshape(arr.shape[0] * arr.shape[1], *arr.shape[2:])
            if len(shape) != arr.ndim or any(isinstance(d, int) and d != a for d, a in zip(shape[1:], arr.shape[1:])):
                raise DataError(f"input '{name}' has shape {list(arr.shape)}, the model expects {shape}")
            if self.input_kinds.get(name) == "event" and arr.shape[0] % self.time_steps:
                raise DataError(
                    f"event input '{name}' has {arr.shape[0]} rows, not a multiple of T={self.time_steps}: "
                    "it must hold T*B frames, time-major (row t*B + b)"
                )
            if self._input_meta[name].type == "tensor(float)":
                arr = arr.astype(np.float32, copy=False)
            checks.check_samples(name, arr)
            checks.check_finite(name, arr)  # after the cast: 1e300 becomes inf in float32
            feed[name] = arr
        return feed

    def _batch(self, feed: dict[str, np.ndarray]) -> int:
        name = self.input_names[0]
        rows = len(feed[name])
        return rows // self.time_steps if self.input_kinds.get(name) == "event" else rows

    def run(self, inputs: np.ndarray | Mapping[str, np.ndarray], spike_counts: bool = True, per_step: bool = True,
            potentials: bool = True) -> SnnOutput:
        """``potentials``: return them when the session declares them (``potentials=True``)."""
        feed = self._feed(inputs)
        if self._memory is not None:
            self._memory.check({k: v.shape for k, v in feed.items()},
                               f"running the SNN (T={self.time_steps}) on a batch of {self._batch(feed)}",
                               "lower T or run fewer samples at once", loaded=True)
        names = list(self.output_names)
        if per_step:
            names += list(self._per_step)
        if spike_counts:
            names += list(self._counts)
        if potentials:
            names += list(self._potentials)
        try:
            values = self._session_for(names).run(names, feed)
        except Exception as err:
            raise SnnOnnxError("SNN run failed: " + " ".join(str(err).split())) from None
        res = dict(zip(names, values))
        batch = len(next(iter(res[n] for n in self.output_names))) if self.output_names else 0
        return SnnOutput(
            outputs={n: res[n] for n in self.output_names},
            per_step={self._per_step[n]: res[n] for n in names if n in self._per_step},
            spike_counts={self._counts[n]: res[n] for n in names if n in self._counts},
            potentials={self._potentials[n]: res[n].reshape(self.time_steps, -1, *res[n].shape[1:])
                        for n in names if n in self._potentials},
            batch_size=batch,
            time_steps=self.time_steps,
        )


def _choose_engine(proto: onnx.ModelProto, engine: str) -> tuple[str, str | None, onnx.ModelProto]:
    """(engine used, why auto fell back to steps or None, the model to run)."""
    if engine == "steps":
        return "steps", None, proto
    from .collapsed import CollapseError, collapse

    try:
        return "collapsed", None, collapse(proto).model
    except CollapseError as err:
        if engine == "collapsed":
            raise
        return "steps", str(err), proto

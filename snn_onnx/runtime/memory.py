"""How much memory a run needs, estimated before it starts, and a refusal when it cannot fit.

An SNN holds its activations for all T steps at once (``[T*B, ...]``), so memory grows with
T x batch: the bundled digits CNN at T = 100000 asks ONNX Runtime for a 6.5 GB buffer and fails
deep inside a kernel after the whole conversion. :func:`check` refuses such a run first, with
the number and what to do.

**The estimate** (:func:`estimate`): ONNX shape inference with the inputs' real shapes (our
ops' shape rules from :mod:`snn_onnx.ops.shapes`) gives the size of every tensor; walking the
nodes in order, a tensor lives from the node that makes it to its last reader (graph outputs
to the end), as ONNX Runtime's allocation planner reuses buffers; the peak of the live bytes
plus the weights is the estimate. Tensors whose size shape inference cannot tell are left out.
The allocator takes more than the tensors: ONNX Runtime's CPU arena (on by default) grows in
powers of two and a first run touches up to twice the tensors' bytes (measured 1.9-2.1x on
CNNs, docs/memory_estimate.md), so the check counts the activations twice.

**The budget** (:func:`available`): the smallest of the memory Linux reports available
(``MemAvailable``), the free room under a cgroup limit (containers) and under an address-space
limit (``ulimit -v``). ``SNN_ONNX_MEMORY_LIMIT`` overrides it (``8G``, ``512M``, bytes) or
turns the check off (``off``). Elsewhere than Linux, and for runs on a GPU, no budget is known
and nothing is refused.
"""

from __future__ import annotations

import os
import resource
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import onnx

from ..errors import MemoryLimitError, SnnOnnxError

ENV = "SNN_ONNX_MEMORY_LIMIT"
ALLOCATOR_FACTOR = 2  # ONNX Runtime's CPU arena on a first run: 1.9-2.1x measured (docs/memory_estimate.md)
_SMALL_INITIALIZER = 4096  # elements; larger weights are not needed by shape inference


@dataclass
class MemoryEstimate:
    bytes: int  # peak live activations + weights
    weights: int
    activations: int  # peak of the live activation bytes
    largest: tuple[str, int] = ("", 0)  # the largest single tensor
    unknown: list[str] = field(default_factory=list)  # tensors of unknown size (left out)

    def need(self, loaded: bool = False) -> int:
        """Bytes a run must still find: the activations twice (the allocator's share), plus the
        weights unless a session holds them already."""
        return self.activations * ALLOCATOR_FACTOR + (0 if loaded else self.weights)

    def describe(self, loaded: bool = False) -> str:
        parts = [f"{format_bytes(self.activations)} of tensors at once, x{ALLOCATOR_FACTOR} for ONNX Runtime's "
                 "memory arena"]
        if not loaded:
            parts.append(f"{format_bytes(self.weights)} of weights")
        if self.largest[1]:
            parts.append(f"largest tensor '{self.largest[0]}': {format_bytes(self.largest[1])}")
        return f"about {format_bytes(self.need(loaded))} ({'; '.join(parts)})"


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"


def parse_bytes(text: str) -> int:
    """``8G``, ``512M``, ``1.5GB``, ``4096`` -> bytes (powers of 1000, as :func:`format_bytes`)."""
    s = text.strip().upper().removesuffix("B")
    scale = {"K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}.get(s[-1:], 1)
    number = s[:-1] if scale != 1 else s
    try:
        value = float(number) * scale
    except ValueError:
        raise SnnOnnxError(f"{ENV}={text!r}: expected a size such as 8G, 512M or a number of bytes, or 'off'") from None
    if not np.isfinite(value) or value <= 0:
        raise SnnOnnxError(f"{ENV}={text!r}: the size must be > 0 (or 'off')")
    return int(value)


def _light_copy(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """The graph without its large weights' data (shape inference needs only their shapes;
    small ones, such as Reshape targets, stay), and the bytes of all weights."""
    light = onnx.ModelProto(ir_version=model.ir_version)
    light.opset_import.extend(model.opset_import)
    light.functions.extend(model.functions)
    g = light.graph
    g.node.extend(model.graph.node)
    g.input.extend(model.graph.input)
    g.output.extend(model.graph.output)
    declared = {i.name for i in g.input}
    weights = 0
    for init in model.graph.initializer:
        n = int(np.prod(init.dims)) if len(init.dims) else 1
        weights += n * _itemsize(init.data_type)
        if n <= _SMALL_INITIALIZER:
            g.initializer.append(init)
        elif init.name not in declared:
            g.input.append(onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    return light, weights


def _itemsize(elem_type: int) -> int:
    try:
        return int(onnx.helper.tensor_dtype_to_np_dtype(elem_type).itemsize)
    except Exception:
        return 4


def _type_bytes(t: onnx.TypeProto) -> int | None:
    tt = t.tensor_type
    if not t.HasField("tensor_type") or not tt.HasField("shape"):
        return None
    n = 1
    for d in tt.shape.dim:
        if not d.HasField("dim_value") or d.dim_value < 0:
            return None
        n *= int(d.dim_value)
    return n * _itemsize(tt.elem_type)


def estimate(model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]]) -> MemoryEstimate:
    """Peak memory of one run of ``model`` on inputs of ``input_shapes`` (name -> shape)."""
    from ..ops.shapes import registered

    light, weights = _light_copy(model)
    for inp in light.graph.input:
        if inp.name in input_shapes:
            shape = list(input_shapes[inp.name])
            dims = inp.type.tensor_type.shape.dim
            del dims[:]
            for v in shape:
                dims.add().dim_value = int(v)
    with registered():
        try:
            inferred = onnx.shape_inference.infer_shapes(light, strict_mode=False, data_prop=True)
        except Exception:  # an exotic graph: estimate what the declared types tell
            inferred = light
    g = inferred.graph
    sizes: dict[str, int | None] = {}
    for v in [*g.input, *g.value_info, *g.output]:
        sizes[v.name] = _type_bytes(v.type)
    last_use: dict[str, int] = {}
    for k, node in enumerate(g.node):
        for name in node.input:
            if name:
                last_use[name] = k
    keep = {o.name for o in g.output} | set(input_shapes)  # graph outputs; the caller's arrays
    live = {n: sizes.get(n) or 0 for n in input_shapes}
    current = sum(live.values())
    peak, unknown = current, []
    largest = max(((n, b) for n, b in live.items()), key=lambda nb: nb[1], default=("", 0))
    for k, node in enumerate(g.node):
        for name in node.output:
            if not name:
                continue
            b = sizes.get(name)
            if b is None:
                unknown.append(name)
                b = 0
            live[name] = b
            current += b
            if b > largest[1]:
                largest = (name, b)
        peak = max(peak, current)
        for name in set(node.input) | set(node.output):
            if name in live and name not in keep and last_use.get(name, -1) <= k:
                current -= live.pop(name)
    return MemoryEstimate(bytes=int(peak + weights), weights=int(weights), activations=int(peak), largest=largest,
                          unknown=unknown)


def available() -> tuple[int, str] | None:
    """(bytes, where the limit comes from) that a run may use now, or None when unknown or
    when ``SNN_ONNX_MEMORY_LIMIT=off``."""
    env = os.environ.get(ENV)
    if env is not None and env.strip():
        if env.strip().lower() in ("off", "none", "0"):
            return None
        return parse_bytes(env), f"{ENV}={env.strip()}"
    found: list[tuple[int, str]] = []
    meminfo = _meminfo()
    if "MemAvailable" in meminfo:
        found.append((meminfo["MemAvailable"], "available memory"))
    cg = _cgroup_room()
    if cg is not None:
        found.append((cg, "room under the cgroup's memory limit"))
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        used = _vm_size()
        found.append((max(soft - used, 0), "room under the address-space limit (ulimit -v)"))
    return min(found) if found else None


def _meminfo() -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts:
                out[key] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    except (OSError, ValueError):
        pass
    return out


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_room() -> int | None:
    limit, usage = _read_int("/sys/fs/cgroup/memory.max"), _read_int("/sys/fs/cgroup/memory.current")
    if limit is None:  # cgroup v1
        limit, usage = (_read_int("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
                        _read_int("/sys/fs/cgroup/memory/memory.usage_in_bytes"))
    if limit is None or usage is None or limit >= 1 << 60:  # "max" or v1's "unlimited"
        return None
    return max(limit - usage, 0)


def _vm_size() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def check(model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]], what: str,
          hint: str = "lower T or feed fewer samples at once", *, loaded: bool = False) -> MemoryEstimate | None:
    """Refuse (:class:`MemoryLimitError`) a run whose estimate exceeds :func:`available`.
    ``what`` names the run in the message ("running the SNN (T=8) on a batch of 16");
    ``loaded``: a session holds the weights already."""
    return RunMemory(model).check(input_shapes, what, hint, loaded=loaded)


class RunMemory:
    """:func:`check` for repeated runs of one model: estimates cached by input shapes."""

    def __init__(self, model: onnx.ModelProto, max_cached: int = 8):
        self.model = model
        self._cache: OrderedDict[tuple, MemoryEstimate] = OrderedDict()
        self._max = max_cached
        self._lock = threading.Lock()

    def estimate(self, input_shapes: Mapping[str, Sequence[int]]) -> MemoryEstimate:
        key = tuple(sorted((k, tuple(int(d) for d in v)) for k, v in input_shapes.items()))
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        est = estimate(self.model, input_shapes)
        with self._lock:
            self._cache[key] = est
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return est

    def check(self, input_shapes: Mapping[str, Sequence[int]], what: str,
              hint: str = "lower T or feed fewer samples at once", *, loaded: bool = False) -> MemoryEstimate | None:
        budget = available()
        if budget is None:
            return None
        est = self.estimate(input_shapes)
        limit, source = budget
        if est.need(loaded) > limit:
            raise MemoryLimitError(f"{what} needs {est.describe(loaded)} but {format_bytes(limit)} is free "
                                   f"({source}); {hint} (or set {ENV}=off to run it anyway)")
        return est

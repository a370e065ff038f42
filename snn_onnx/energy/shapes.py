"""Static shapes of the values of an SNN graph for one sample (batch 1, so ``T`` rows).

Energy accounting needs the shape of every tensor a counted op reads or writes. ONNX shape
inference cannot see through the ``snn_onnx`` custom ops, so they are replaced, in a copy, by
``Identity`` on their first input (every op of the domain returns a tensor of its input's
shape, or with static_input a Concat of T copies of it); the graph inputs are pinned to the
sample's shapes; ONNX's inference with data
propagation then resolves shape computations (``Shape -> Slice -> Concat -> Reshape``).
Values it leaves unknown are measured by running the real model once on zeros of the sample's
shapes with those values as extra outputs (a *probe*), which works for any graph ORT runs.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
import onnx

from ..ops import schema

Shape = tuple[int, ...]


def _static_shape(vi: onnx.ValueInfoProto) -> Shape | None:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    dims = []
    for d in t.shape.dim:
        if not d.HasField("dim_value"):
            return None
        dims.append(int(d.dim_value))
    return tuple(dims)


def _pinned_copy(model: onnx.ModelProto, inputs: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    for node in g.node:
        if node.domain == schema.DOMAIN:
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            x = node.input[0]
            y = node.output[0]
            node.Clear()
            node.input.append(x)
            node.output.append(y)
            if attrs.get("static_input", 0):
                # x is one step [B, ...]; y repeats it over time: [T*B, ...]
                node.op_type, node.domain = "Concat", ""
                node.input.extend([x] * (int(attrs["time_steps"]) - 1))
                node.attribute.append(onnx.helper.make_attribute("axis", 0))
            else:
                node.op_type, node.domain = "Identity", ""
    produced = {o for n in g.node for o in n.output} | {i.name for i in g.input} | {i.name for i in g.initializer}
    keep = [o for o in g.output if o.name in produced]
    del g.output[:]
    g.output.extend(keep)
    del g.value_info[:]
    for inp in g.input:
        if inp.name in inputs:
            arr = np.asarray(inputs[inp.name])
            shape = inp.type.tensor_type.shape
            del shape.dim[:]
            for d in arr.shape:
                shape.dim.add().dim_value = int(d)
    return m


def infer_shapes(model: onnx.ModelProto, inputs: Mapping[str, np.ndarray]) -> dict[str, Shape]:
    """Shapes ONNX shape inference finds for the graph with inputs of the given shapes."""
    m = _pinned_copy(model, inputs)
    try:
        inferred = onnx.shape_inference.infer_shapes(m, strict_mode=False, data_prop=True)
    except Exception:  # inference is best effort: the probe fills what it misses
        return {}
    out: dict[str, Shape] = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        s = _static_shape(vi)
        if s is not None:
            out[vi.name] = s
    for init in inferred.graph.initializer:
        out[init.name] = tuple(int(d) for d in init.dims)
    return out


def probe_shapes(model: onnx.ModelProto, inputs: Mapping[str, np.ndarray], names: Iterable[str]) -> dict[str, Shape]:
    """Shapes of ``names`` measured by one ORT run on zeros shaped like ``inputs``."""
    from ..runtime.session import make_session

    names = [n for n in dict.fromkeys(names) if n]
    if not names:
        return {}
    m = onnx.ModelProto()
    m.CopyFrom(model)
    existing = {o.name for o in m.graph.output}
    for n in names:
        if n not in existing:
            m.graph.output.append(onnx.ValueInfoProto(name=n))
    sess = make_session(m)
    feed = {}
    for i in sess.get_inputs():
        arr = np.asarray(inputs[i.name])
        feed[i.name] = np.zeros(arr.shape, dtype=arr.dtype)
    values = sess.run(names, feed)
    return {n: tuple(int(d) for d in np.shape(v)) for n, v in zip(names, values)}


def value_shapes(
    model: onnx.ModelProto, inputs: Mapping[str, np.ndarray], needed: Iterable[str], method: str = "auto"
) -> dict[str, Shape]:
    """Shapes of the ``needed`` values. ``method``: "infer" (ONNX inference only), "probe"
    (one ORT run) or "auto" (inference, then a probe for what it left unknown)."""
    needed = list(dict.fromkeys(n for n in needed if n))
    if method not in ("auto", "infer", "probe"):
        raise ValueError(f"method must be auto, infer or probe, got {method!r}")
    shapes = infer_shapes(model, inputs) if method in ("auto", "infer") else {}
    for init in model.graph.initializer:  # weights: always known
        shapes[init.name] = tuple(int(d) for d in init.dims)
    missing = [n for n in needed if n not in shapes]
    if missing and method in ("auto", "probe"):
        shapes.update(probe_shapes(model, inputs, missing))
    return shapes

"""SignGD mode: measure every accumulation point's ``offset`` and ``bias`` (docs/ops.md#codes).

Between the code sources (neuron and encoder outputs) and each accumulation point (a neuron's
input, a decoder's input) the SNN graph is affine: ``z = M·c + k``. The probe cuts the graph at
the sources, feeds every source its excite value ``e`` (and 0, and ``2e``) as one sample, and
reads ``z`` at every point: ``bias = z(0) = k``, ``offset = z(e) + z(0) = M·e + 2k``. The third
run checks that ``z`` really is affine in the codes (``z(2e) − z(e) = z(e) − z(0)``): a converter
bug that left a non-linear op between codes and a neuron stops the conversion instead of
writing a model that computes something else.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import ConversionError
from ..ops import schema
from .ann_runner import ann_session
from .signgd_emit import Point, Source


def _compact(a: np.ndarray) -> np.ndarray:
    """Keep size 1 along every axis where ``a`` is constant, then drop leading unit axes."""
    for ax in range(a.ndim):
        first = a.take([0], axis=ax)
        if a.shape[ax] > 1 and np.array_equal(np.broadcast_to(first, a.shape), a):
            a = first
    while a.ndim and a.shape[0] == 1:
        a = a[0]
    return np.ascontiguousarray(a, dtype=np.float32)


def probe_model(snn: onnx.ModelProto, points: list[Point], sources: list[Source]) -> tuple[onnx.ModelProto, list[str], dict[str, Source]]:
    """The affine part of ``snn`` between code sources (now graph inputs) and the points (outputs)."""
    g = snn.graph
    by_name = {n.name: n for n in g.node}
    src_vals = {by_name[s.node].output[0]: s for s in sources}
    pt_vals = list(dict.fromkeys(by_name[p.node].input[p.index] for p in points))
    producer = {o: n for n in g.node for o in n.output if o}
    inits = {i.name for i in g.initializer}
    needed: list[onnx.NodeProto] = []
    needed_ids: set[int] = set()
    seen: set[str] = set()
    graph_inputs: set[str] = set()
    stack = list(pt_vals)
    data_inputs = {i.name for i in g.input if i.name not in inits}
    while stack:
        v = stack.pop()
        if v in seen or not v:
            continue
        seen.add(v)
        if v in src_vals or v in inits:
            continue
        if v in data_inputs:
            graph_inputs.add(v)
            continue
        n = producer.get(v)
        if n is None or n.domain == schema.DOMAIN:
            raise ConversionError(f"internal error: '{v}' reaches a SignGD neuron's input without passing a code "
                                  "source (probe)")
        if id(n) not in needed_ids:
            needed_ids.add(id(n))
            needed.append(n)
            stack.extend(n.input)
    order = {id(n): i for i, n in enumerate(g.node)}
    needed.sort(key=lambda n: order[id(n)])
    outs = []
    nodes = list(needed)
    names = []
    for k, v in enumerate(pt_vals):
        alias = f"__probe_point_{k}"
        nodes.append(helper.make_node("Identity", [v], [alias]))
        outs.append(helper.make_tensor_value_info(alias, TensorProto.FLOAT, None))
        names.append(alias)
    ins = [helper.make_tensor_value_info(v, TensorProto.FLOAT, [1, *s.shape]) for v, s in src_vals.items() if v in seen]
    ins += [i for i in g.input if i.name in graph_inputs]
    used_inits = {x for n in nodes for x in n.input}
    graph = helper.make_graph(nodes, "signgd_probe", ins, outs, [i for i in g.initializer if i.name in used_inits])
    model = helper.make_model(graph, opset_imports=[o for o in snn.opset_import if o.domain != schema.DOMAIN],
                              ir_version=snn.ir_version)
    return model, names, {v: s for v, s in src_vals.items() if v in seen}


def fill_offsets(snn: onnx.ModelProto, points: list[Point], sources: list[Source]) -> None:
    """Write every point's ``offset`` and ``bias`` initializers into ``snn`` (in place)."""
    if not points:
        return
    model, names, srcs = probe_model(snn, points, sources)
    feeds_extra = {}
    for i in model.graph.input:
        if i.name in srcs:
            continue
        dims = [d.dim_value if d.dim_value > 0 else 1 for d in i.type.tensor_type.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type)
        feeds_extra[i.name] = np.zeros(dims, dtype)
    sess = ann_session(model, as_written=True)
    runs = []
    for scale in (0.0, 1.0, 2.0):
        feed = {v: np.broadcast_to(np.float32(scale) * s.excite, s.shape)[None].astype(np.float32)
                for v, s in srcs.items()}
        feed.update(feeds_extra)
        runs.append(sess.run(names, feed))
    by_name = {n.name: n for n in snn.graph.node}
    pt_vals = list(dict.fromkeys(by_name[p.node].input[p.index] for p in points))
    index = {v: k for k, v in enumerate(pt_vals)}
    inits = {i.name: i for i in snn.graph.initializer}
    for p in points:
        v = by_name[p.node].input[p.index]
        k = index[v]
        z0, z1, z2 = (np.asarray(r[k], np.float64) for r in runs)
        z0 = np.broadcast_to(z0, (1, *p.shape))[0]
        z1 = np.broadcast_to(z1, (1, *p.shape))[0]
        z2 = np.broadcast_to(z2, (1, *p.shape))[0]
        scale = np.abs(z0) + np.abs(z1) + np.abs(z2) + 1.0
        if not np.all(np.abs((z2 - z1) - (z1 - z0)) <= 1e-4 * scale):
            raise ConversionError(f"internal error: the input '{v}' of {by_name[p.node].op_type} "
                                  f"'{p.node}' is not affine in the codes that reach it", p.node)
        if not (np.all(np.isfinite(z0)) and np.all(np.isfinite(z1))):
            raise ConversionError(f"the codes reaching '{p.node}' give non-finite values in the probe", p.node)
        offset = _compact((z1 + z0).astype(np.float32))
        bias = _compact(z0.astype(np.float32))
        for name, arr in ((p.offset, offset), (p.bias, bias)):
            inits[name].CopyFrom(numpy_helper.from_array(arr, name))

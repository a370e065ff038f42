"""Clean-up before conversion, whatever exported the model.

* **Opset**: a model older than opset ``MIN_OPSET`` is upgraded with onnx's version converter
  (deliberately, recorded in the metadata): the optimiser and the rules then see one opset,
  never attributes of two.
* **Batch**: batch dimensions written as -1, 0 or a symbol are dynamic; a fixed batch (1, …) is
  recorded so calibration runs the ANN at that batch and the SNN gets a dynamic one.
* **Quantized weights**: DequantizeLinear of constant weights (ONNX Runtime's QDQ format) is
  folded into float weights; a QuantizeLinear shared by several DequantizeLinear nodes gets one
  copy per consumer, so every activation quantizer is one chain.
* **Shapes**: values computed only from Shape / Size (window attention's pads, reshape targets)
  that do not depend on the batch size are evaluated once and become constants; the shapes of
  values onnx's inference leaves without a rank are taken from a run of the model.
* onnxscript's optimiser: constant folding, BatchNorm folded into Conv / Gemm, identity
  removal, shape inference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir
import onnxscript.optimizer

from ..errors import ConversionError, ModelLoadError

MIN_OPSET = 18  # what the optimiser, the rules and the SNN graph are written for


@dataclass
class CleanModel:
    model: ir.Model
    fixed_batch: int | None  # the ANN's fixed batch size (None: dynamic)
    notes: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return dict(self.notes)


def clean(ann: onnx.ModelProto) -> CleanModel:
    """Optimised IR copy of the ANN, its fixed batch size and what the clean-up changed."""
    notes: dict[str, Any] = {}
    ann = _upgrade_opset(dynamic_batch(ann), notes)
    model = ir.from_proto(ann)
    inputs = [v for v in model.graph.inputs if v.name not in model.graph.initializers]
    if not inputs:
        raise ConversionError("the model has no inputs")
    fixed = _batch_dims(model, inputs, notes)
    n_dq = _fold_constant_dequantize(model)
    if n_dq:
        notes["folded_quantized_weights"] = n_dq
    n_q = _dedicate_quantizers(model)
    if n_q:
        notes["duplicated_shared_quantizers"] = n_q
    folded = _fold_shape_values(model)
    if folded:
        notes["folded_shape_values"] = folded
    # The TorchScript exporter writes `L / λ` as ConstantOfShape(...) / λ; onnxscript keeps
    # ConstantOfShape unfolded by default, which would hide constants of activation chains.
    onnxscript.optimizer.fold_constants(model, should_fold=_fold_small_constant_of_shape)
    onnxscript.optimizer.optimize(model)
    ir.passes.common.ShapeInferencePass(strict_mode=False)(model)
    _shapes_from_a_run(model, notes)
    return CleanModel(model, fixed, notes)


def dynamic_batch(ann: onnx.ModelProto) -> onnx.ModelProto:
    """The ANN with batch dimensions written -1 or 0 made symbolic (ONNX Runtime's shape
    inference takes -1 for a size and refuses the model); the model as given otherwise."""
    dims = [v.type.tensor_type.shape.dim[0] for v in list(ann.graph.input) + list(ann.graph.output)
            if v.type.HasField("tensor_type") and len(v.type.tensor_type.shape.dim)]
    if not any(d.HasField("dim_value") and d.dim_value <= 0 for d in dims):
        return ann
    m = onnx.ModelProto()
    m.CopyFrom(ann)
    for v in list(m.graph.input) + list(m.graph.output):
        t = v.type.tensor_type
        if v.type.HasField("tensor_type") and len(t.shape.dim) and t.shape.dim[0].HasField("dim_value") \
                and t.shape.dim[0].dim_value <= 0:
            t.shape.dim[0].Clear()
            t.shape.dim[0].dim_param = "batch"
    return m


def _upgrade_opset(ann: onnx.ModelProto, notes: dict[str, Any]) -> onnx.ModelProto:
    version = next((o.version for o in ann.opset_import if o.domain in ("", "ai.onnx")), None)
    if version is None or version >= MIN_OPSET:
        return ann
    try:
        upgraded = onnx.version_converter.convert_version(ann, MIN_OPSET)
        onnx.checker.check_model(upgraded)
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelLoadError(
            f"the model uses opset {version}; snn-onnx upgrades models older than opset {MIN_OPSET} with onnx's "
            f"version converter, which failed: {first[:300]}. Re-export the model with opset >= {MIN_OPSET}"
        ) from None
    notes["opset_upgraded"] = {"from": int(version), "to": MIN_OPSET}
    return upgraded


def _batch_dims(model: ir.Model, inputs: list[ir.Value], notes: dict[str, Any]) -> int | None:
    """Dynamic batch for -1 / 0 / symbols; returns the ANN's fixed batch size, if any."""
    fixed = None
    for v in inputs:
        if v.shape is None or not len(v.shape):
            continue
        d = v.shape[0]
        if isinstance(d, int) and d <= 0:
            v.shape = ir.Shape(["batch", *list(v.shape)[1:]])
            notes.setdefault("dynamic_batch_from", []).append({v.name: d})
        elif isinstance(d, int):
            fixed = d
    for v in model.graph.outputs:
        if v.shape is not None and len(v.shape) and isinstance(v.shape[0], int) and v.shape[0] <= 0:
            v.shape = ir.Shape(["batch", *list(v.shape)[1:]])
    return fixed


def _run_nodes(nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto], outputs: list[str],
               opsets: dict[str, int]) -> list[np.ndarray]:
    import onnxruntime as ort

    graph = onnx.helper.make_graph(nodes, "fold", [], [onnx.helper.make_empty_tensor_value_info(o) for o in outputs], inits)
    m = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid(d, v) for d, v in opsets.items()],
                               ir_version=10)
    so = ort.SessionOptions()
    so.log_severity_level = 4
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(outputs, {})


def _fold_constant_dequantize(model: ir.Model) -> int:
    """DequantizeLinear(constant) -> float constant (quantized weights and biases)."""
    graph = model.graph
    opsets = dict(model.opset_imports)
    n = 0
    for node in list(graph):
        if node.op_type != "DequantizeLinear" or node.domain not in ("", "ai.onnx", "com.microsoft"):
            continue
        ins = [v for v in node.inputs if v is not None]
        arrays = [ir.convenience.get_const_tensor(v) for v in ins]
        if any(a is None for a in arrays):
            continue
        inits = [onnx.numpy_helper.from_array(a.numpy(), v.name) for a, v in zip(arrays, ins)]
        try:
            (value,) = _run_nodes([ir.serde.serialize_node(node)], inits, [node.outputs[0].name], opsets)
        except Exception:
            continue  # left for onnxscript's folding, or for the rules to report
        out = node.outputs[0]
        const = ir.Value(name=f"{out.name}/folded", const_value=ir.tensor(value, name=f"{out.name}/folded"))
        const.shape, const.dtype = ir.Shape(value.shape), ir.DataType.from_numpy(value.dtype)
        graph.register_initializer(const)
        ir.convenience.replace_all_uses_with(out, const)
        for i, o in enumerate(graph.outputs):
            if o is out:
                graph.outputs[i] = const
        graph.remove(node, safe=True)
        n += 1
    return n


def _dedicate_quantizers(model: ir.Model) -> int:
    """A QuantizeLinear read by several DequantizeLinear nodes: one copy per reader."""
    graph = model.graph
    n = 0
    for node in list(graph):
        if node.op_type != "QuantizeLinear" or len(node.outputs) != 1:
            continue
        uses = list(node.outputs[0].uses())
        if len(uses) < 2 or not all(u.node.op_type == "DequantizeLinear" for u in uses):
            continue
        for k, use in enumerate(uses[1:], start=1):
            copy = ir.node(node.op_type, list(node.inputs), {a.name: a for a in node.attributes.values()},
                           domain=node.domain, name=f"{node.name}/copy{k}")
            copy.outputs[0].name = f"{node.outputs[0].name}/copy{k}"
            copy.outputs[0].dtype, copy.outputs[0].shape = node.outputs[0].dtype, node.outputs[0].shape
            graph.insert_after(node, [copy])
            use.node.replace_input_with(use.idx, copy.outputs[0])
            n += 1
    return n


# --- shapes -----------------------------------------------------------------------------------

_SHAPE_SOURCES = frozenset({"Shape", "Size"})


def _shape_only_values(graph: ir.Graph) -> tuple[set[ir.Value], list[ir.Node]]:
    """Values computed only from Shape / Size outputs and constants, and their nodes."""
    vals: set[ir.Value] = set()
    nodes: list[ir.Node] = []
    for node in graph:
        if node.domain not in ("", "ai.onnx"):
            continue
        if node.op_type in _SHAPE_SOURCES:
            vals.update(node.outputs)
            nodes.append(node)
            continue
        ins = [v for v in node.inputs if v is not None]
        if not ins or any(a.type in (ir.AttributeType.GRAPH, ir.AttributeType.GRAPHS) for a in node.attributes.values()):
            continue
        if any(v in vals for v in ins) and all(v in vals or ir.convenience.get_const_tensor(v) is not None for v in ins):
            vals.update(node.outputs)
            nodes.append(node)
    return vals, nodes


def _probe_feeds(model: ir.Model) -> list[dict[str, np.ndarray]] | None:
    """Inputs at batch 1 and 2 and, for dynamic non-batch dimensions, at two sizes of them: a
    shape value that is the same in every run depends on neither."""
    inputs = [v for v in model.graph.inputs if v.name not in model.graph.initializers]
    feeds: list[dict[str, np.ndarray]] = []
    for batch, other in ((1, 8), (2, 8), (1, 9)):
        feed = {}
        for v in inputs:
            if v.shape is None or v.dtype is None:
                return None
            dims = [batch if i == 0 else (d if isinstance(d, int) and d > 0 else other) for i, d in enumerate(v.shape)]
            np_dtype = v.dtype.numpy()
            if np.issubdtype(np_dtype, np.floating):
                feed[v.name] = np.random.default_rng(0).standard_normal(dims).astype(np_dtype)
            else:
                feed[v.name] = np.zeros(dims, dtype=np_dtype)  # token ids, masks: 0 is valid
        feeds.append(feed)
    return feeds


def _fold_shape_values(model: ir.Model) -> int:
    """Shape-only values used by data ops (Pad, Slice, Reshape, Resize, …) that are the same
    whatever the batch size become constants, so the analyses see them."""
    graph = model.graph
    vals, nodes = _shape_only_values(graph)
    if not vals:
        return 0
    frontier = [v for v in vals if any(u.node.op_type not in _SHAPE_SOURCES and not set(u.node.outputs) <= vals
                                       for u in v.uses())]
    frontier = [v for v in frontier if ir.convenience.get_const_tensor(v) is None and v.name]
    if not frontier:
        return 0
    runs = _run_model(model, [v.name for v in frontier])
    if runs is None:
        return 0
    n = 0
    for v in frontier:
        got = [r.get(v.name) for r in runs]
        if any(g is None for g in got) or not all(g.shape == got[0].shape and np.array_equal(g, got[0]) for g in got):
            continue
        arr = np.asarray(got[0])
        const = ir.Value(name=f"{v.name}/static", const_value=ir.tensor(arr, name=f"{v.name}/static"))
        const.shape, const.dtype = ir.Shape(arr.shape), ir.DataType.from_numpy(arr.dtype)
        graph.register_initializer(const)
        for use in list(v.uses()):
            if not set(use.node.outputs) <= vals:
                use.node.replace_input_with(use.idx, const)
        n += 1
    if n:
        ir.passes.common.RemoveUnusedNodesPass()(model)
    return n


def _run_model(model: ir.Model, names: list[str]) -> list[dict[str, np.ndarray]] | None:
    """Values ``names`` of the ANN at the probe inputs (None when the model cannot be run so)."""
    from .ann_runner import ann_session

    feeds = _probe_feeds(model)
    if feeds is None:
        return None
    proto = ir.to_proto(model)
    for inp in proto.graph.input:  # a fixed batch too: the SNN will run T*B rows
        dims = inp.type.tensor_type.shape.dim
        if len(dims):
            dims[0].Clear()
            dims[0].dim_param = "probe_batch"
    try:
        # as written: ONNX Runtime's fusions (QDQ into integer kernels) break with extra outputs
        sess = ann_session(proto, names, as_written=True)
        return [dict(zip(names, sess.run(names, feed))) for feed in feeds]
    except Exception:
        return None


def _shapes_from_a_run(model: ir.Model, notes: dict[str, Any]) -> None:
    """Values onnx's shape inference leaves without a rank (a Reshape to a shape computed at run
    time): take the rank from a run; dimensions that change with the batch stay symbolic."""
    graph = model.graph
    unknown = [o for n in graph for o in n.outputs
               if (o.shape is None or o.dtype is None) and o.name and (o.uses() or o.is_graph_output())
               and n.op_type not in _SHAPE_SOURCES and n.op_type != "QuantizeLinear"]  # 4-bit: no numpy type
    if not unknown:
        return
    runs = _run_model(model, [v.name for v in unknown])
    if runs is None:
        return
    filled = 0
    for v in unknown:
        got = [r.get(v.name) for r in runs]
        if any(g is None for g in got) or len({g.ndim for g in got}) != 1:
            continue
        dims: list[int | str] = []
        for i in range(got[0].ndim):
            sizes = {g.shape[i] for g in got}
            dims.append(sizes.pop() if len(sizes) == 1 else f"{v.name}_dim{i}")
        v.shape = ir.Shape(dims)
        if v.dtype is None and v.producer() is not None and v.producer().op_type != "QuantizeLinear":
            v.dtype = ir.DataType.from_numpy(got[0].dtype)  # e.g. after ONNX Runtime's com.microsoft ops
        filled += 1
    for n in graph:  # quantizers are elementwise: their output has their input's shape
        if n.op_type == "QuantizeLinear" and n.outputs[0].shape is None and n.inputs[0].shape is not None:
            n.outputs[0].shape = n.inputs[0].shape
        if n.op_type == "QuantizeLinear" and n.outputs[0].dtype is None:
            zp = n.inputs[2] if len(n.inputs) > 2 else None
            n.outputs[0].dtype = zp.dtype if zp is not None and zp.dtype is not None else ir.DataType.UINT8
    if filled:
        notes["shapes_from_a_run"] = filled
        ir.passes.common.ShapeInferencePass(strict_mode=False)(model)


def _fold_small_constant_of_shape(node: ir.Node) -> bool | None:
    if node.op_type != "ConstantOfShape" or node.domain != "":
        return None
    shape = ir.convenience.get_const_tensor(node.inputs[0]) if node.inputs else None
    if shape is None:
        return None
    size = 1
    for d in shape.numpy().ravel():
        size *= int(d)
    return True if size <= 4096 else None


def cleanup(ann: onnx.ModelProto) -> tuple[ir.Model, int | None]:
    """Backwards-compatible form of :func:`clean`: the model and its fixed batch size."""
    c = clean(ann)
    return c.model, c.fixed_batch

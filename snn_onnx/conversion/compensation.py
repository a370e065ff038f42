"""Expectation compensation in the SNN graph: blocks, and clean-up of redundant pairs.

``compensate_block`` wraps a :class:`~snn_onnx.conversion.blocks.Block` (a per-sample region
``y = f(x)``) as ``TemporalDelta(f(TemporalMean(x)))``: one TemporalMean on x for the block's
nodes, one TemporalDelta on y for everything outside. Single nodes and products of two
time-varying tensors go through ``SnnBuilder.compensate`` (the two-input form).

``simplify`` then removes work that cancels exactly:

* ``TemporalMean(TemporalDelta(z)) == z``: a TemporalMean whose input is a TemporalDelta, or
  is reached from one only through ops that commute with the running mean (reshapes,
  transposes, slices, adding or multiplying values that are the same at every step, such as
  an attention mask or a scale), is dropped and the ops in between run on z itself (for
  attention: the Q·Kᵀ product's running mean goes straight into the softmax block, and a
  mask of -1e38 is never summed over steps);
* two TemporalMean nodes on the same value are merged.
"""

from __future__ import annotations

import onnx
import onnx_ir as ir
import onnx_ir.passes.common  # noqa: F401  (ShapeInferencePass, RemoveUnusedNodesPass)

from ..ops import schema
from .analysis import Plan, plan_time
from .blocks import Block
from .graph_utils import propagate
from .rewrite import SnnBuilder
from .rules import tag

TM, TD = schema.TEMPORAL_MEAN.name, schema.TEMPORAL_DELTA.name
SPIKING = frozenset(schema.SPIKING_OPS)
FUSED_OPS = frozenset({schema.COMPENSATED_ELEMENTWISE.name})

# Ops through which the running mean passes unchanged when at most one input varies in time
# (and, for Div, only the numerator): mean_t(g(x_t, c)) == g(mean_t(x), c).
_COMMUTE = frozenset(
    """Identity Dropout Reshape Flatten Squeeze Unsqueeze Transpose Slice Gather Neg Add Sub Mul
    Div Cast Expand""".split()
)


def compensate_block(builder: SnnBuilder, blk: Block) -> tuple[ir.Node, ir.Node]:
    """TemporalMean on the block's input (for its nodes), TemporalDelta on its output (for
    every other consumer and the graph outputs)."""
    graph = builder.graph
    members = set(blk.nodes)
    for n in blk.nodes:
        tag(n, "compensation")
    x, y = blk.input, blk.output
    tm = builder._temporal(TM, x, blk.name)
    tm.outputs[0].dtype, tm.outputs[0].shape = x.dtype, x.shape
    first = blk.nodes[0]
    graph.insert_before(first, [tm])
    for use in list(x.uses()):
        if use.node in members:
            use.node.replace_input_with(use.idx, tm.outputs[0])
    td = builder._temporal(TD, y, blk.name)
    td.outputs[0].dtype, td.outputs[0].shape = y.dtype, y.shape
    graph.insert_after(y.producer(), [td])
    builder._redirect(y, td.outputs[0], keep={td} | members)
    take_output_name(builder, y, td.outputs[0])
    return tm, td


def take_output_name(builder: SnnBuilder, old: ir.Value, new: ir.Value) -> None:
    """``new`` replaces ``old`` among the graph outputs under the ANN's output name."""
    if not old.is_graph_output():
        return
    name = old.name
    old.name = builder.namer(f"{name}/running_mean")
    new.name = name
    builder._replace_graph_output(old, new)


def time_varying(graph: ir.Graph, seeds: frozenset[ir.Value] = frozenset()) -> set[ir.Value]:
    """Values of the SNN graph that differ between time steps: outputs of the spiking and
    temporal ops (and ``seeds``) and everything computed from them (shapes excepted)."""
    def source(node: ir.Node) -> bool:
        return node.domain == schema.DOMAIN and (node.op_type in SPIKING or node.op_type == TD or node.op_type in FUSED_OPS)

    def transfer(node: ir.Node, _facts: dict) -> dict:
        spiking = node.domain == schema.DOMAIN and node.op_type in SPIKING
        return {o: True for o in (node.outputs[:1] if spiking else node.outputs)}  # counts never vary

    return set(propagate(graph, {v: True for v in seeds}, transfer, start=source))


def _is(node: ir.Node | None, op: str) -> bool:
    return node is not None and node.domain == schema.DOMAIN and node.op_type == op


def _commutes(node: ir.Node, tv: set[ir.Value]) -> int | None:
    """Index of the one time-varying input through which the running mean passes, or None."""
    if node.domain not in ("", "ai.onnx") or node.op_type not in _COMMUTE:
        return None
    varying = [i for i, v in enumerate(node.inputs) if v is not None and v in tv]
    if len(varying) != 1 or len(node.outputs) != 1:
        return None
    i = varying[0]
    if node.op_type in ("Reshape", "Expand", "Slice", "Gather", "Squeeze", "Unsqueeze") and i != 0:
        return None
    if node.op_type == "Div" and i != 0:
        return None
    if node.op_type == "Cast" and node.outputs[0].dtype not in (ir.DataType.FLOAT, ir.DataType.DOUBLE, ir.DataType.FLOAT16, ir.DataType.BFLOAT16):
        return None
    return i


def simplify(graph: ir.Graph, seeds: frozenset[ir.Value] = frozenset()) -> dict[str, int]:
    """Merge duplicate TemporalMeans and cancel TemporalMean∘TemporalDelta (through
    mean-commuting ops) until nothing changes. Returns how many of each were removed."""
    counts = {"cancelled_mean_of_delta": 0, "merged_means": 0}
    while True:
        counts["merged_means"] += _merge_means(graph)
        if not _cancel_one(graph, seeds):
            return counts
        counts["cancelled_mean_of_delta"] += 1


def _merge_means(graph: ir.Graph) -> int:
    merged = 0
    seen: dict[tuple[ir.Value, int], ir.Node] = {}
    for tm in [n for n in graph if _is(n, TM)]:
        key = (tm.inputs[0], tm.attributes.get_int("time_steps"))
        keep = seen.setdefault(key, tm)
        if keep is tm or tm.outputs[0].is_graph_output():
            continue
        ir.convenience.replace_all_uses_with(tm.outputs[0], keep.outputs[0])
        graph.remove(tm, safe=True)
        merged += 1
    return merged


def _cancel_one(graph: ir.Graph, seeds: frozenset[ir.Value]) -> bool:
    tv = time_varying(graph, seeds)
    for tm in [n for n in graph if _is(n, TM)]:
        x = tm.inputs[0]
        if tm.outputs[0].is_graph_output():
            continue
        chain: list[tuple[ir.Node, int]] = []  # (op, index of its time-varying input), bottom up
        v, td = x, None
        while True:
            p = v.producer()
            if _is(p, TD) and p.attributes.get_int("time_steps") == tm.attributes.get_int("time_steps"):
                td = p
                break
            if p is None or v.is_graph_output() or len(list(v.uses())) != 1:
                break
            i = _commutes(p, tv)
            if i is None:
                break
            chain.append((p, i))
            v = p.inputs[i]
        if td is None:
            continue
        z = td.inputs[0]
        if chain:
            last, i = chain[-1]  # the op that read the TemporalDelta's output
            last.replace_input_with(i, z)
        ir.convenience.replace_all_uses_with(tm.outputs[0], x if chain else z)
        graph.remove(tm, safe=True)
        return True
    return False


def _replace_outputs(graph: ir.Graph, old: ir.Value, new: ir.Value) -> None:
    for i, out in enumerate(graph.outputs):
        if out is old:
            graph.outputs[i] = new


def compensate(
    builder: SnnBuilder,
    seeds: frozenset[ir.Value] = frozenset(),
    fused: bool = False,
) -> tuple[Plan, dict[str, int]]:
    """The compensation stage, the same for every mode: with the neurons in place, find what
    varies over time (``analysis.plan_time``; ``seeds``: values varying over time besides the
    outputs of the spiking ops, e.g. event inputs), wrap every per-sample non-linear block and
    node that sees it, then :func:`simplify`."""
    plan = plan_time(builder.graph, seeds)
    info = compensate_all(builder, plan.blocks, plan.compensated, seeds, fused)
    return plan, info


def compensate_all(
    builder: SnnBuilder,
    blocks: list[Block],
    nodes: list[ir.Node],
    seeds: frozenset[ir.Value] = frozenset(),
    fused: bool = False,
) -> dict[str, int]:
    """Blocks first (``fused``: as one CompensatedElementwise node where that is faster,
    ``fused.py``), then single nodes and products (each seeing the time variation of the
    graph as rewritten so far), then :func:`simplify`."""
    from .fused import can_fuse, fuse_block

    n_fused = 0
    for blk in blocks:
        if fused and can_fuse(blk):
            fuse_block(builder, blk)
            n_fused += 1
        else:
            compensate_block(builder, blk)
    for node in nodes:
        builder.compensate(node, time_varying(builder.graph, seeds))
    info = simplify(builder.graph, seeds)
    info["fused_blocks"] = n_fused
    return info


def compensate_model(
    model: onnx.ModelProto, time_steps: int, inputs: list[str] | None = None, fused: bool = False
) -> tuple[onnx.ModelProto, Plan]:
    """Expectation compensation of a whole per-sample model whose ``inputs`` (default: all)
    already vary over time, ``[T*B, ...]`` time-major, and whose outputs are read per step.

    Every output summed over steps 1..t equals ``t * model(mean of the inputs over 1..t)``.
    No neurons, no time entry or exit: the compensation layer alone (for tests, and for
    wrapping a non-linear block by hand)."""
    ir_model = ir.from_proto(model)
    ir.passes.common.ShapeInferencePass(strict_mode=False)(ir_model)
    graph = ir_model.graph
    names = inputs or [v.name for v in graph.inputs if v.name not in graph.initializers]
    seeds = frozenset(v for v in graph.inputs if v.name in names)
    builder = SnnBuilder(ir_model, time_steps)
    plan, _ = compensate(builder, seeds, fused)
    ir.passes.common.RemoveUnusedNodesPass()(ir_model)
    graph.sort()
    proto = ir.to_proto(ir_model)
    del proto.graph.value_info[:]
    return proto, plan

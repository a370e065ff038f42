"""Multi-threshold neuron rules as plain ONNX, to measure rules the kernels do not implement.

``emulate(snn, rule)`` replaces every ``MultiThresholdNeuron`` of a converted SNN by an ONNX
``Scan`` over the T steps whose body computes one step of the neuron with the same scales:

* ``"floor"`` — the rule before issue 16: the largest ``s·2^k`` with ``v ≥ s·2^k − s/2``;
* ``"nearest"`` — the nearest level: the largest ``s·2^k`` with ``v ≥ m_k·s`` where ``m_k`` is
  the midpoint between level k and the next lower one (``m_0 = 1/2``, ``m_k = 3/4·2^k``),
  which is docs/ops.md's rule since issue 16;
* ``"burst"`` — not a spike neuron: a burst of up to ``gamma`` spikes of size s per step,
  ``s·clip(round(v/s), −gamma, gamma)`` (an 8-bit graded value for gamma = 255).

Thresholds are computed in float32 in the reference's order, the membrane update is the
reference's (``v = v + x_t``; emit; ``v = v − emitted``), so an emulated rule equals the kernel
bit for bit when the kernel implements that rule: ``benchmarks/fidelity.py`` checks it on the
rule the library has before it reports any emulated figure.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F32 = np.float32
RULES = ("floor", "nearest", "burst")


def thresholds(scale: np.ndarray, levels: int, rule: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Levels ``s·2^k`` and firing thresholds of ``rule`` for one side's scale, float32."""
    s = np.asarray(scale, F32)
    lev = [s * F32(2.0**k) for k in range(levels)]
    if rule == "floor":
        half = s * F32(0.5)
        thr = [lv - half for lv in lev]
    elif rule == "nearest":
        thr = [s * F32(0.5)] + [s * F32(0.75 * 2.0**k) for k in range(1, levels)]
    else:
        raise ValueError(f"no thresholds for rule {rule!r}")
    return lev, thr


def _body(name: str, rule: str, levels: int, sp: np.ndarray, sn: np.ndarray, gamma: int, rank: int) -> onnx.GraphProto:
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []

    def c(label: str, a) -> str:
        inits.append(numpy_helper.from_array(np.asarray(a, F32), f"{name}/{label}"))
        return f"{name}/{label}"

    def node(op: str, ins: list[str], label: str) -> str:
        out = f"{name}/{label}"
        nodes.append(helper.make_node(op, ins, [out]))
        return out

    v_in, x_in = f"{name}/v", f"{name}/x"
    v1 = node("Add", [v_in, x_in], "v1")
    zero = c("zero", 0.0)
    if rule in ("floor", "nearest"):
        nv = node("Neg", [v1], "neg_v")
        lp, tp = thresholds(sp, levels, rule)
        ln, tn = thresholds(sn, levels, rule)
        out_p, out_n = zero, zero
        for k in range(levels):
            out_p = node("Where", [node("GreaterOrEqual", [v1, c(f"tp{k}", tp[k])], f"gp{k}"), c(f"lp{k}", lp[k]), out_p], f"op{k}")
            out_n = node("Where", [node("GreaterOrEqual", [nv, c(f"tn{k}", tn[k])], f"gn{k}"), c(f"ln{k}", ln[k]), out_n], f"on{k}")
        y = node("Where", [node("Greater", [out_p, zero], "pos"), out_p, node("Sub", [zero, out_n], "minus_n")], "y")
    elif rule == "burst":
        qp = node("Clip", [node("Round", [node("Div", [v1, c("sp", sp)], "vp")], "rp"), zero, c("g", float(gamma))], "qp")
        qn = node("Clip", [node("Round", [node("Div", [v1, c("sn", sn)], "vn")], "rn"), c("mg", -float(gamma)), zero], "qn")
        y = node("Add", [node("Mul", [qp, c("sp2", sp)], "yp"), node("Mul", [qn, c("sn2", sn)], "yn")], "y")
    else:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    v_out = node("Sub", [v1, y], "v_out")
    y_out = node("Identity", [y], "y_out")
    dims = [f"d{i}" for i in range(rank)]
    return helper.make_graph(
        nodes, f"{name}/step",
        [helper.make_tensor_value_info(v_in, TensorProto.FLOAT, dims), helper.make_tensor_value_info(x_in, TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info(v_out, TensorProto.FLOAT, dims), helper.make_tensor_value_info(y_out, TensorProto.FLOAT, dims)],
        initializer=inits,
    )


def emulate(snn: onnx.ModelProto, rule: str, ranks: dict[str, int], gamma: int = 255) -> onnx.ModelProto:
    """``snn`` with every MultiThresholdNeuron computed by ``rule`` (its spike-count output
    dropped). ``ranks``: rank of each neuron's input (``[T*B, ...]``), by value name."""
    m = onnx.ModelProto()
    m.CopyFrom(snn)
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    out_nodes: list[onnx.NodeProto] = []
    for idx, n in enumerate(g.node):
        if n.op_type != "MultiThresholdNeuron":
            out_nodes.append(n)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        T, levels = int(attrs["time_steps"]), int(attrs.get("levels", 8))
        sp = numpy_helper.to_array(inits[n.input[1]]).astype(F32)
        sn = numpy_helper.to_array(inits[n.input[2]]).astype(F32)
        if (sp.size > 1 or sn.size > 1) and attrs.get("channel_axis", -1) not in (-1, ranks[n.input[0]] - 1):
            raise ValueError(f"{n.name}: per-channel scales on an axis other than the last are not emulated")
        name, x = f"emu{idx}", n.input[0]
        consts = {"one": np.array([1], np.int64), "end": np.array([np.iinfo(np.int64).max], np.int64),
                  "time_batch": np.array([T, -1], np.int64), "minus_one": np.array([-1], np.int64),
                  "first": np.array(0, np.int64)}
        g.initializer.extend(numpy_helper.from_array(v, f"{name}/{k}") for k, v in consts.items())
        g.initializer.append(numpy_helper.from_array(np.array(0, F32), f"{name}/fzero"))
        out_nodes += [
            helper.make_node("Shape", [x], [f"{name}/shape"]),
            helper.make_node("Slice", [f"{name}/shape", f"{name}/one", f"{name}/end"], [f"{name}/tail"]),
            helper.make_node("Concat", [f"{name}/time_batch", f"{name}/tail"], [f"{name}/split"], axis=0),
            helper.make_node("Reshape", [x, f"{name}/split"], [f"{name}/steps"]),
            helper.make_node("Gather", [f"{name}/steps", f"{name}/first"], [f"{name}/x0"], axis=0),
            helper.make_node("Mul", [f"{name}/x0", f"{name}/fzero"], [f"{name}/v0"]),
            helper.make_node("Scan", [f"{name}/v0", f"{name}/steps"], [f"{name}/vT", f"{name}/y_steps"], num_scan_inputs=1,
                             body=_body(name, rule, levels, sp, sn, gamma, ranks[x] )),
            helper.make_node("Concat", [f"{name}/minus_one", f"{name}/tail"], [f"{name}/merged"], axis=0),
            helper.make_node("Reshape", [f"{name}/y_steps", f"{name}/merged"], [n.output[0]]),
        ]
    del g.node[:]
    g.node.extend(out_nodes)
    produced = {o for node in g.node for o in node.output} | {i.name for i in g.input}
    kept = [o for o in g.output if o.name in produced]
    del g.output[:]
    g.output.extend(kept)
    return m


def input_ranks(snn: onnx.ModelProto, run_one) -> dict[str, int]:
    """Rank of every MultiThresholdNeuron input, from one run (``run_one(model, names)``
    returns those values)."""
    names = [n.input[0] for n in snn.graph.node if n.op_type == "MultiThresholdNeuron"]
    return {k: np.asarray(v).ndim for k, v in zip(names, run_one(snn, names))}

"""Energy of the fused compensation op: a CompensatedElementwise block costs the same MACs (and
the same ANN MACs) as the same block unfused, TemporalMean -> f's ONNX ops -> TemporalDelta."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from snn_onnx import metadata as md
from snn_onnx.energy import EnergyModel
from snn_onnx.energy.costs import FUNCTION_OPS
from snn_onnx.ops import schema

T, SHAPE = 4, (3, 5, 7)
F32 = np.float32


def _model(nodes: list[onnx.NodeProto], opset: int = 20) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, *SHAPE])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, *SHAPE])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(schema.DOMAIN, 1)],
                          ir_version=10)
    md.write(m, {md.TIME_STEPS: T})
    return m


def unfused(fn: str) -> onnx.ModelProto:
    """The three-node form with f written as the ONNX ops of costs.FUNCTION_OPS."""
    nodes = [helper.make_node("TemporalMean", ["x"], ["m"], domain=schema.DOMAIN, name="mean", time_steps=T)]
    if fn == "silu":
        nodes += [helper.make_node("Sigmoid", ["m"], ["s"], name="sig"), helper.make_node("Mul", ["m", "s"], ["f"], name="mul")]
    else:
        (op, _), = FUNCTION_OPS[fn]
        kw = {"approximate": "tanh"} if fn == "gelu_tanh" else {}
        if fn == "hardsigmoid":
            kw = {"alpha": 1 / 6, "beta": 0.5}
        nodes.append(helper.make_node(op, ["m"], ["f"], name="f", **kw))
    nodes.append(helper.make_node("TemporalDelta", ["f"], ["y"], domain=schema.DOMAIN, name="delta", time_steps=T))
    return _model(nodes)


def fused(fn: str) -> onnx.ModelProto:
    return _model([helper.make_node("CompensatedElementwise", ["x"], ["y"], domain=schema.DOMAIN, name="fused",
                                    time_steps=T, function=fn)])


def costs(model: onnx.ModelProto):
    sample = {"x": np.zeros((T, *SHAPE), F32)}
    return EnergyModel(model, sample).account({}, 1)


@pytest.mark.parametrize("fn", schema.ELEMENTWISE_FUNCTIONS)
def test_fused_costs_the_same_as_unfused(fn, snn_library):
    assert set(FUNCTION_OPS) == set(schema.ELEMENTWISE_FUNCTIONS)
    a, b = costs(unfused(fn)), costs(fused(fn))
    n = int(np.prod(SHAPE))
    assert b.macs == a.macs and b.ann_macs == a.ann_macs and b.sops == a.sops == 0, (fn, a.macs, b.macs)
    assert a.macs >= 2 * T * n  # at least the running mean and the delta
    (layer,) = b.layers
    assert layer.role == "compensation" and layer.counting == "MAC" and fn in layer.reason
    np.testing.assert_allclose(layer.macs, b.macs / T)  # the same cost at every step


@pytest.mark.parametrize("case", ["hardswish", "hardsigmoid"])
def test_converter_fused_block_costs_the_same(case, snn_library):
    """The converter's own fused and unfused forms of one block (conversion/fused.py)."""
    from snn_onnx.conversion.compensation import compensate_model

    op, kw = {"hardswish": ("HardSwish", {}), "hardsigmoid": ("HardSigmoid", {"alpha": 1 / 6, "beta": 0.5})}[case]
    ann = _model([helper.make_node(op, ["x"], ["y"], name="f", **kw)])
    results = []
    for fuse in (False, True):
        snn, _ = compensate_model(ann, T, fused=fuse)
        md.write(snn, {md.TIME_STEPS: T})
        ops = {n.op_type for n in snn.graph.node if n.domain == schema.DOMAIN}
        assert ops == ({"CompensatedElementwise"} if fuse else {"TemporalMean", "TemporalDelta"}), ops
        results.append(costs(snn))
    assert results[0].macs == results[1].macs > 0 and results[0].ann_macs == results[1].ann_macs > 0

"""Graph optimizations of the converted SNN (snn_onnx/conversion/optimize.py) change the cost,
never the results: the hoisted-entry graph must give exactly the outputs, per-step outputs and
spike counts of the unhoisted one, at any batch size."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import snn_onnx
from snn_onnx.runtime.session import make_session

F32 = np.float32
RNG = np.random.default_rng(5)


def _init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def _w(*shape, scale=0.3):
    return (RNG.standard_normal(shape) * scale).astype(F32)


def _model(nodes, inits, outputs, in_shape=(3, 8, 8), extra_inputs=()):
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *in_shape]), *extra_inputs]
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", d]) for n, d in outputs]
    graph = helper.make_graph(nodes, "ann", inputs, outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model)
    return model


def cnn_with_prefix():
    """Conv -> Add(per-channel) -> Mul(scalar) -> Relu -> MaxPool -> Conv -> Relu -> Flatten -> Gemm:
    the first three ops do not depend on time."""
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Add", ["c1", "shift"], ["a1"], name="add1"),
        helper.make_node("Mul", ["a1", "scale"], ["m1"], name="mul1"),
        helper.make_node("Relu", ["m1"], ["r1"], name="act1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2], name="pool1"),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
        helper.make_node("Relu", ["c2"], ["r2"], name="act2"),
        helper.make_node("Flatten", ["r2"], ["f"], axis=1, name="flat"),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["logits"], transB=1, name="fc"),
    ]
    inits = [
        _init("w1", _w(8, 3, 3, 3)), _init("b1", _w(8)), _init("shift", _w(1, 8, 1, 1)),
        _init("scale", np.array(1.5, F32)), _init("w2", _w(6, 8, 3, 3)), _init("b2", _w(6)),
        _init("w3", _w(10, 6 * 4 * 4)), _init("b3", _w(10)),
    ]
    return _model(nodes, inits, [("logits", 10)])


def prefix_with_edges():
    """A prefix value with several consumers (a neuron, a residual Add on the time-varying path,
    a Shape that sizes a later Reshape) and a graph output computed without any neuron."""
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="act1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
        helper.make_node("Add", ["c2", "c1"], ["res"], name="residual"),  # c1: static, c2: varying
        helper.make_node("Relu", ["res"], ["r2"], name="act2"),
        helper.make_node("Shape", ["c1"], ["shp"], name="shape_c1"),
        helper.make_node("Gather", ["shp", "zero"], ["n"], axis=0, name="batch_of_c1"),
        helper.make_node("Unsqueeze", ["n", "zero1"], ["n1"], name="n_vec"),
        helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0, name="target"),
        helper.make_node("Reshape", ["r2", "target"], ["flat"], name="flatten_by_shape"),
        helper.make_node("Gemm", ["flat", "w3", "b3"], ["logits"], transB=1, name="fc"),
        helper.make_node("GlobalAveragePool", ["c1"], ["g"], name="gap_static"),
        helper.make_node("Reshape", ["g", "flat_shape"], ["features"], name="features"),
    ]
    inits = [
        _init("w1", _w(4, 3, 3, 3)), _init("b1", _w(4)), _init("w2", _w(4, 4, 3, 3)), _init("b2", _w(4)),
        _init("zero", np.array(0, np.int64)), _init("zero1", np.array([0], np.int64)),
        _init("minus1", np.array([-1], np.int64)), _init("w3", _w(5, 4 * 8 * 8)), _init("b3", _w(5)),
        _init("flat_shape", np.array([0, -1], np.int64)),
    ]
    return _model(nodes, inits, [("logits", 5), ("features", 4)])


def first_layer_not_per_sample():
    """Transpose that moves axis 0: the prefix must stop before it."""
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], name="conv1"),
        helper.make_node("Reshape", ["c1", "rs"], ["r"], name="regroup"),  # [-1, 4]: keeps rows
        helper.make_node("Transpose", ["r"], ["tr"], perm=[1, 0], name="swap"),  # not per sample
        helper.make_node("Transpose", ["tr"], ["back"], perm=[1, 0], name="swap_back"),
        helper.make_node("Reshape", ["back", "rs2"], ["c1b"], name="restore"),
        helper.make_node("Relu", ["c1b"], ["r1"], name="act1"),
        helper.make_node("Flatten", ["r1"], ["f"], axis=1, name="flat"),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["logits"], transB=1, name="fc"),
    ]
    inits = [
        _init("w1", _w(4, 3, 1, 1)), _init("b1", _w(4)), _init("rs", np.array([-1, 4], np.int64)),
        _init("rs2", np.array([-1, 4, 8, 8], np.int64)), _init("w3", _w(3, 4 * 8 * 8)), _init("b3", _w(3)),
    ]
    return _model(nodes, inits, [("logits", 3)])


def _convert(ann, optimize, **kw):
    x = np.random.default_rng(0).standard_normal((16, 3, 8, 8)).astype(F32)  # same thresholds
    return snn_onnx.convert(ann, time_steps=kw.pop("time_steps", 4), data=x, parity_samples=8,
                            optimize_graph=optimize, **kw)


def _assert_same_runs(plain, hoisted, batches=(1, 3, 16), shape=(3, 8, 8)):
    s0, s1 = make_session(plain.model), make_session(hoisted.model)
    names = [o.name for o in s0.get_outputs()]
    assert names == [o.name for o in s1.get_outputs()]
    for b in batches:
        x = np.random.default_rng(b).standard_normal((b, *shape)).astype(F32)
        for name, a, h in zip(names, s0.run(None, {"input": x}), s1.run(None, {"input": x})):
            assert a.shape == h.shape and a.dtype == h.dtype, name
            np.testing.assert_array_equal(a, h, err_msg=f"output {name}, batch {b}")
    return names


def _ops(model):
    return [(n.op_type, n.name) for n in model.graph.node]


@pytest.mark.parametrize("neuron", ["paraif", "if"])
@pytest.mark.parametrize("T", [1, 4])
def test_hoisted_prefix_same_outputs(neuron, T):
    ann = cnn_with_prefix()
    plain = _convert(ann, False, neuron=neuron, time_steps=T)
    hoisted = _convert(ann, True, neuron=neuron, time_steps=T)
    assert plain.optimizations == {}
    assert hoisted.optimizations["hoisted"] == ["conv1", "add1", "mul1"]
    assert len(hoisted.optimizations["static_neurons"]) == 1
    assert hoisted.optimizations["repeats"] == []  # the neuron takes the one step directly
    assert "Tile" not in [op for op, _ in _ops(hoisted.model)]
    neuron_node = next(n for n in hoisted.model.graph.node if n.domain == "snn_onnx"
                       and n.name == hoisted.optimizations["static_neurons"][0])
    assert {a.name: a.i for a in neuron_node.attribute}.get("static_input") == 1
    names = _assert_same_runs(plain, hoisted)
    assert any(n.endswith("/spike_counts") for n in names) and "logits_per_step" in names
    assert hoisted.parity == plain.parity


def test_hoisting_edges_multi_consumer_shape_and_static_output():
    ann = prefix_with_edges()
    plain, hoisted = _convert(ann, False), _convert(ann, True)
    opt = hoisted.optimizations
    assert "conv1" in opt["hoisted"] and "gap_static" in opt["hoisted"] and "features" in opt["hoisted"]
    # c1 leaves the prefix into the residual Add (time-varying path): repeated there, once; the
    # neuron-free output is repeated before the exit's mean over time
    assert opt["repeats"] == ["c1", "features/steps"]
    _assert_same_runs(plain, hoisted)


def test_prefix_stops_at_an_op_that_mixes_samples():
    ann = first_layer_not_per_sample()
    plain, hoisted = _convert(ann, False), _convert(ann, True)
    assert hoisted.optimizations["hoisted"] == ["conv1", "regroup"]
    assert hoisted.optimizations["repeats"] == ["r"]
    assert hoisted.optimizations["static_neurons"] == []
    _assert_same_runs(plain, hoisted)


def test_event_inputs_are_not_hoisted():
    ann = cnn_with_prefix()
    x = RNG.standard_normal((16, 3, 8, 8)).astype(F32)
    res = snn_onnx.convert(ann, time_steps=4, data=x, parity_samples=8, event_inputs=("input",))
    assert res.optimizations["hoisted"] == [] and res.optimizations["static_neurons"] == []


def test_example_model_hoisted_same_outputs():
    from snn_onnx import data as data_mod
    from snn_onnx_models import EXAMPLE_LEVELS, example_model_path

    ann = onnx.load(str(example_model_path()))
    ds = data_mod.load("digits", split="test", limit=64)
    kw = dict(time_steps=EXAMPLE_LEVELS, data=ds, parity_samples=16)
    plain = snn_onnx.convert(ann, optimize_graph=False, **kw)
    hoisted = snn_onnx.convert(ann, **kw)
    assert hoisted.optimizations["static_neurons"], hoisted.optimizations
    s0, s1 = make_session(plain.model), make_session(hoisted.model)
    for b in (1, 7, 64):
        x = ds.x[:b]
        for a, h in zip(s0.run(None, {"input": x}), s1.run(None, {"input": x})):
            np.testing.assert_array_equal(a, h)


def test_hoisting_twice_is_a_no_op():
    import onnx_ir as ir

    from snn_onnx.conversion.optimize import hoist_time_entry

    hoisted = _convert(cnn_with_prefix(), True)
    model = ir.from_proto(hoisted.model)
    report = hoist_time_entry(model, 4)
    assert report.hoisted == [] and report.static_neurons == []

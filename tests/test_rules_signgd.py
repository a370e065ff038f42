"""The SignGD rule (snn_onnx/conversion/rules/signgd.py): what it takes, however spelled, what it
leaves over, and why. Graphs written with onnx.helper (other spellings than torch's) and
exported by torch (legacy and dynamo exporters)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from snn_onnx.conversion import cleanup, signgd_lower
from snn_onnx.conversion.rewrite import batch_carrying
from snn_onnx.conversion.rules import Trace
from snn_onnx.conversion.rules.signgd import SignGDRule

F32 = np.float32


def match(model: onnx.ModelProto):
    clean = cleanup.clean(model)
    graph = clean.model.graph
    signgd_lower.lower(clean.model, lambda v: 0.0)
    inputs = [v for v in graph.inputs if v.name not in graph.initializers]
    trace = Trace()
    sites, leftovers = SignGDRule(trace).match(graph, batch_carrying(graph, inputs))
    return sites, leftovers, trace


def forms(sites) -> list[tuple[str, str]]:
    return [(s.kind, s.function) for s in sites]


def tokens(body, extra_inits=(), opset: int = 18, d: int = 6, n: int = 4) -> onnx.ModelProto:
    """x [N, n, d] -> MatMul(W) -> 'h' -> body -> 'z' -> MatMul(W2) -> y."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=(d, d)).astype(F32), "W"),
             numpy_helper.from_array(rng.normal(size=(d, 3)).astype(F32), "W2"), *extra_inits]
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"], name="fc1"), *body,
             helper.make_node("MatMul", ["z", "W2"], ["y"], name="fc2")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", n, d])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n, 3])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


def c(name, value):
    return numpy_helper.from_array(np.asarray(value, F32), name)


# -- one-input functions, however spelled ------------------------------------------------------

SPELLINGS = {
    "gelu_erf": ([helper.make_node("Div", ["h", "sqrt2"], ["a"]), helper.make_node("Erf", ["a"], ["b"]),
                  helper.make_node("Add", ["b", "one"], ["e"]), helper.make_node("Mul", ["h", "e"], ["f"]),
                  helper.make_node("Mul", ["f", "half"], ["z"])],
                 [c("sqrt2", np.sqrt(2)), c("one", 1.0), c("half", 0.5)], ("unary", "gelu")),
    "gelu_op": ([helper.make_node("Gelu", ["h"], ["z"])], [], ("unary", "gelu")),
    "gelu_tanh_op": ([helper.make_node("Gelu", ["h"], ["z"], approximate="tanh")], [], ("unary", "gelu_tanh")),
    "silu": ([helper.make_node("Sigmoid", ["h"], ["s"]), helper.make_node("Mul", ["s", "h"], ["z"])], [],
             ("unary", "silu")),
    "hardswish": ([helper.make_node("HardSwish", ["h"], ["z"])], [], ("unary", "hardswish")),
    "relu": ([helper.make_node("Relu", ["h"], ["z"])], [], ("unary", "relu")),
    "leaky": ([helper.make_node("LeakyRelu", ["h"], ["z"], alpha=0.2)], [], ("unary", "leaky_relu")),
    "relu6_clip": ([helper.make_node("Clip", ["h", "lo", "hi"], ["z"])], [c("lo", 0.0), c("hi", 6.0)],
                   ("unary", "clip")),
    "max_const": ([helper.make_node("Max", ["h", "zero"], ["z"])], [c("zero", 0.0)], ("unary", "relu")),
    "tanh": ([helper.make_node("Tanh", ["h"], ["z"])], [], ("unary", "tanh")),
    "exp": ([helper.make_node("Exp", ["h"], ["z"])], [], ("unary", "exp")),
    "square_pow": ([helper.make_node("Pow", ["h", "two"], ["z"])], [c("two", 2.0)], ("unary", "square")),
    "hardsigmoid_onnx": ([helper.make_node("HardSigmoid", ["h"], ["z"], alpha=0.2, beta=0.5)], [],
                         ("unary", "hardsigmoid")),
}


@pytest.mark.parametrize("name", sorted(SPELLINGS))
def test_one_input_spellings(name):
    body, inits, want = SPELLINGS[name]
    opset = 20 if name.startswith("gelu_") and name.endswith("op") else 18
    sites, leftovers, _ = match(tokens(body, inits, opset=opset))
    assert not leftovers
    assert len(sites) == 1
    got = (sites[0].kind, sites[0].function)
    # Max(x, 0) is identified by behaviour as ReLU; spelled as a bound it would be clip(lo=0)
    assert got == want or (name == "max_const" and got == ("unary", "clip")), got
    if name == "leaky":
        assert sites[0].attrs["alpha"] == pytest.approx(0.2)
    if name == "hardsigmoid_onnx":
        assert sites[0].attrs == {"alpha": pytest.approx(0.2), "beta": pytest.approx(0.5)}
    if name == "relu6_clip":
        assert sites[0].attrs == {"lo": 0.0, "hi": 6.0}


def test_gelu_block_after_bias_keeps_the_bias_outside():
    body = [helper.make_node("Add", ["h", "bias"], ["hb"]), helper.make_node("Div", ["hb", "sqrt2"], ["a"]),
            helper.make_node("Erf", ["a"], ["b"]), helper.make_node("Add", ["b", "one"], ["e"]),
            helper.make_node("Mul", ["hb", "e"], ["f"]), helper.make_node("Mul", ["f", "half"], ["z"])]
    inits = [c("bias", np.arange(6) * 0.1), c("sqrt2", np.sqrt(2)), c("one", 1.0), c("half", 0.5)]
    sites, leftovers, _ = match(tokens(body, inits))
    assert forms(sites) == [("unary", "gelu")] and not leftovers
    assert [n.op_type for n in sites[0].nodes] == ["Div", "Erf", "Add", "Mul", "Mul"]


# -- LayerNorm, softmax, products, pooling ---------------------------------------------------


def test_layer_norm_op_becomes_square_and_div_sqrt():
    body = [helper.make_node("LayerNormalization", ["h", "g", "b"], ["z"], axis=-1, epsilon=1e-5)]
    sites, leftovers, _ = match(tokens(body, [c("g", np.ones(6)), c("b", np.zeros(6))]))
    assert forms(sites) == [("unary", "square"), ("binary", "div_sqrt")] and not leftovers


@pytest.mark.parametrize("spelling", ["div_sqrt", "mul_reciprocal_sqrt", "mul_pow_half"])
def test_layer_norm_spelled_out(spelling):
    """LayerNorm as other exporters write it: ReduceMean / Sub / Pow / ReduceMean / Add and then
    Div(d, Sqrt(v)), Mul(d, Reciprocal(Sqrt(v))) or Mul(d, Pow(v, -0.5))."""
    body = [helper.make_node("ReduceMean", ["h", "ax"], ["m"], keepdims=1), helper.make_node("Sub", ["h", "m"], ["d"]),
            helper.make_node("Pow", ["d", "two"], ["q"]), helper.make_node("ReduceMean", ["q", "ax"], ["v"], keepdims=1),
            helper.make_node("Add", ["v", "eps"], ["ve"])]
    if spelling == "div_sqrt":
        body += [helper.make_node("Sqrt", ["ve"], ["s"]), helper.make_node("Div", ["d", "s"], ["z"])]
    elif spelling == "mul_reciprocal_sqrt":
        body += [helper.make_node("Sqrt", ["ve"], ["s"]), helper.make_node("Reciprocal", ["s"], ["r"]),
                 helper.make_node("Mul", ["d", "r"], ["z"])]
    else:
        body += [helper.make_node("Pow", ["ve", "mhalf"], ["r"]), helper.make_node("Mul", ["r", "d"], ["z"])]
    inits = [numpy_helper.from_array(np.array([-1], np.int64), "ax"), c("two", 2.0), c("eps", 1e-5),
             c("mhalf", -0.5)]
    sites, leftovers, trace = match(tokens(body, inits))
    assert forms(sites) == [("unary", "square"), ("binary", "div_sqrt")], trace.lines()
    assert not leftovers


def test_softmax_becomes_exp_and_div():
    sites, leftovers, _ = match(tokens([helper.make_node("Softmax", ["h"], ["z"], axis=-1)]))
    assert forms(sites) == [("unary", "exp"), ("binary", "div")] and not leftovers


def test_products_of_two_data_values():
    body = [helper.make_node("Transpose", ["h"], ["ht"], perm=[0, 2, 1]),
            helper.make_node("MatMul", ["h", "ht"], ["s"]),  # [N, 4, 4]: attention-like scores
            helper.make_node("MatMul", ["s", "h"], ["p"]),  # [N, 4, 6]
            helper.make_node("Mul", ["p", "h"], ["z"])]
    sites, leftovers, _ = match(tokens(body))
    assert forms(sites) == [("matmul", "mul"), ("matmul", "mul"), ("binary", "mul")] and not leftovers


def test_pooling_sites():
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w"], ["h"], pads=[1, 1, 1, 1]),
             helper.make_node("MaxPool", ["h"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("GlobalMaxPool", ["p"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 6, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 1, 1])],
                          [numpy_helper.from_array(rng.normal(size=(2, 1, 3, 3)).astype(F32), "w")])
    sites, leftovers, _ = match(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]))
    assert forms(sites) == [("pool", "max"), ("reduce_max", "max")] and not leftovers


# -- what is left over, and why ---------------------------------------------------------------


def test_unsupported_node_is_left_over_with_its_reason():
    sites, leftovers, trace = match(tokens([helper.make_node("Softplus", ["h"], ["z"])]))
    assert not sites
    assert [lo.nodes[0].op_type for lo in leftovers] == ["Softplus"]
    assert leftovers[0].reason == "Softplus has no SignGD form"
    assert any("Softplus has no SignGD form" in line for line in trace.lines())


def test_only_the_missing_piece_is_left_over():
    """Mish = x·tanh(softplus(x)): Softplus has no SignGD form and is left over alone; its Tanh
    and the product still become neurons (compensation covers no more than it must)."""
    body = [helper.make_node("Softplus", ["h"], ["sp"]), helper.make_node("Tanh", ["sp"], ["t"]),
            helper.make_node("Mul", ["h", "t"], ["z"])]
    sites, leftovers, _ = match(tokens(body))
    assert forms(sites) == [("unary", "tanh"), ("binary", "mul")]
    assert [[n.op_type for n in lo.nodes] for lo in leftovers] == [["Softplus"]]


def test_static_prefix_is_not_taken():
    """A non-linearity on the input before any weight layer is computed once, as it is."""
    body = [helper.make_node("Relu", ["h"], ["z"])]
    m = tokens(body)
    m.graph.node.insert(0, helper.make_node("Sigmoid", ["x"], ["xs"], name="input_squash"))
    m.graph.node[1].input[0] = "xs"
    sites, leftovers, trace = match(m)
    assert forms(sites) == [("unary", "relu")] and not leftovers
    assert any("static input" in line for line in trace.lines())


def test_div_by_time_varying_from_constant_is_left_over():
    body = [helper.make_node("Div", ["one", "h"], ["z"])]
    sites, leftovers, _ = match(tokens(body, [c("one", 1.0)]))
    assert not sites and "constant by a time-varying" in leftovers[0].reason


# -- torch's exporters ---------------------------------------------------------------------------


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_torch_mixer_block(exporter):
    torch = pytest.importorskip("torch")
    from snn_onnx.export.torch_export import export_module

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.norm, self.fc2 = torch.nn.Linear(8, 16), torch.nn.LayerNorm(16), torch.nn.Linear(16, 4)

        def forward(self, x):
            h = torch.nn.functional.gelu(self.fc1(x))
            h = torch.nn.functional.silu(self.norm(h))
            return self.fc2(torch.softmax(h, dim=-1) * h)

    model = export_module(Block().eval(), (5, 8), exporter=exporter)
    sites, leftovers, _ = match(model)
    got = forms(sites)
    assert not leftovers, [lo.reason for lo in leftovers]
    assert got == [("unary", "gelu"), ("unary", "square"), ("binary", "div_sqrt"), ("unary", "silu"),
                   ("unary", "exp"), ("binary", "div"), ("binary", "mul")], got

"""Expectation compensation is exact: for every non-linear block f (single op or the multi-node
forms exporters write) and for products of two time-varying tensors, the compensated graph's
output summed over steps 1..t equals ``t * f(mean of the inputs over 1..t)`` at every t.

Each case is an ANN graph written with onnx.helper as an exporter emits it. Its inputs vary
over time (random per step); ``compensate_model`` wraps it (blocks, products, clean-up) and
ONNX Runtime with the snn_onnx library runs it; the reference is the ANN itself, run by ONNX
Runtime on the running means of the inputs.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from snn_onnx.conversion.compensation import compensate_model
from snn_onnx.runtime.session import make_session

F32 = np.float32
T = 6
B = 3


def _c(name, value):
    return numpy_helper.from_array(np.asarray(value, F32), name)


def _i64(name, value):
    return numpy_helper.from_array(np.asarray(value, np.int64), name)


def model(nodes, inputs, outputs, inits=(), opset=18):
    """inputs / outputs: (name, shape without batch) pairs; batch is symbolic."""
    g = helper.make_graph(
        nodes, "f",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", *s]) for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        list(inits),
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)
    return m


def N(op, ins, outs, **kw):
    return helper.make_node(op, ins, outs, **kw)


SQRT2 = _c("sqrt2", math.sqrt(2.0))
HALF = _c("half", 0.5)
ONE = _c("one", 1.0)


def gelu_erf_legacy():  # torch.onnx TorchScript: ((x * (erf(x / √2) + 1)) * 0.5
    return model([N("Div", ["x", "sqrt2"], ["d"]), N("Erf", ["d"], ["e"]), N("Add", ["e", "one"], ["a"]),
                  N("Mul", ["x", "a"], ["m"]), N("Mul", ["m", "half"], ["y"])],
                 [("x", [5, 8])], ["y"], [SQRT2, ONE, HALF])


def gelu_erf_dynamo():  # torch.onnx dynamo: x * (0.5 * (erf(x / √2) + 1))
    return model([N("Div", ["x", "sqrt2"], ["d"]), N("Erf", ["d"], ["e"]), N("Add", ["e", "one"], ["a"]),
                  N("Mul", ["half", "a"], ["h"]), N("Mul", ["x", "h"], ["y"])],
                 [("x", [5, 8])], ["y"], [SQRT2, ONE, HALF])


def gelu_erf_bias():  # a Linear's bias add in front: still one block
    return model([N("Add", ["x", "bias"], ["xb"]), N("Mul", ["xb", "rsqrt2"], ["d"]), N("Erf", ["d"], ["e"]),
                  N("Add", ["one", "e"], ["a"]), N("Mul", ["half", "xb"], ["hx"]), N("Mul", ["hx", "a"], ["y"])],
                 [("x", [5, 8])], ["y"],
                 [_c("bias", np.linspace(-1, 1, 8)), _c("rsqrt2", 1 / math.sqrt(2.0)), ONE, HALF])


def gelu_tanh():  # 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))
    return model([N("Pow", ["x", "three"], ["x3"]), N("Mul", ["x3", "k1"], ["kx3"]), N("Add", ["x", "kx3"], ["inner"]),
                  N("Mul", ["inner", "k0"], ["arg"]), N("Tanh", ["arg"], ["th"]), N("Add", ["th", "one"], ["a"]),
                  N("Mul", ["x", "half"], ["hx"]), N("Mul", ["hx", "a"], ["y"])],
                 [("x", [5, 8])], ["y"],
                 [_c("three", 3.0), _c("k1", 0.044715), _c("k0", math.sqrt(2 / math.pi)), ONE, HALF])


def gelu_op(approx):
    return model([N("Gelu", ["x"], ["y"], approximate=approx)], [("x", [5, 8])], ["y"], opset=20)


def layer_norm():
    return model([N("LayerNormalization", ["x", "g", "b"], ["y"], axis=-1, epsilon=1e-5)], [("x", [5, 8])], ["y"],
                 [_c("g", np.linspace(0.5, 1.5, 8)), _c("b", np.linspace(-0.2, 0.2, 8))])


def layer_norm_decomposed():  # older exporters (opset < 17)
    return model([N("ReduceMean", ["x", "axes"], ["mu"], keepdims=1), N("Sub", ["x", "mu"], ["d"]),
                  N("Pow", ["d", "two"], ["d2"]), N("ReduceMean", ["d2", "axes"], ["var"], keepdims=1),
                  N("Add", ["var", "eps"], ["ve"]), N("Sqrt", ["ve"], ["sd"]), N("Div", ["d", "sd"], ["n"]),
                  N("Mul", ["n", "g"], ["ng"]), N("Add", ["ng", "b"], ["y"])],
                 [("x", [5, 8])], ["y"],
                 [_i64("axes", [-1]), _c("two", 2.0), _c("eps", 1e-5), _c("g", np.linspace(0.5, 1.5, 8)),
                  _c("b", np.linspace(-0.2, 0.2, 8))])


def unary(op, **kw):
    return lambda: model([N(op, ["x"], ["y"], **kw)], [("x", [5, 8])], ["y"])


def silu():
    return model([N("Sigmoid", ["x"], ["s"]), N("Mul", ["x", "s"], ["y"])], [("x", [5, 8])], ["y"])


def hardswish_decomposed():  # x * clip(x + 3, 0, 6) / 6
    return model([N("Add", ["x", "three"], ["x3"]), N("Clip", ["x3", "zero", "six"], ["c"]), N("Mul", ["x", "c"], ["m"]),
                  N("Div", ["m", "six"], ["y"])], [("x", [5, 8])], ["y"],
                 [_c("three", 3.0), _c("zero", 0.0), _c("six", 6.0)])


def softmax():
    return model([N("Softmax", ["x"], ["y"], axis=-1)], [("x", [4, 6, 6])], ["y"])


def softmax_nan_safe():  # transformers' SDPA export: Where(IsNaN(softmax), 0, softmax)
    return model([N("Softmax", ["x"], ["s"], axis=-1), N("IsNaN", ["s"], ["nan"]),
                  N("Where", ["nan", "zero", "s"], ["y"])], [("x", [4, 6, 6])], ["y"], [_c("zero", 0.0)])


def attention_scores():  # q · kᵀ (two time-varying operands, one transposed)
    return model([N("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]), N("MatMul", ["q", "kt"], ["y"])],
                 [("q", [2, 6, 4]), ("k", [2, 6, 4])], ["y"])


def attention_values():  # attn · v
    return model([N("MatMul", ["a", "v"], ["y"])], [("a", [2, 6, 6]), ("v", [2, 6, 4])], ["y"])


def attention_einsum():
    return model([N("Einsum", ["q", "k"], ["y"], equation="bhnd,bhmd->bhnm")],
                 [("q", [2, 6, 4]), ("k", [2, 6, 4])], ["y"])


def gate():  # squeeze-excite: x * sigmoid(g)
    return model([N("Sigmoid", ["g"], ["s"]), N("Mul", ["x", "s"], ["y"])], [("x", [4, 3, 3]), ("g", [4, 1, 1])], ["y"])


def attention_full():  # softmax(q kᵀ · scale + mask) · v; mask static (same at every step)
    return model([N("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]), N("MatMul", ["q", "kt"], ["s"]),
                  N("Mul", ["s", "scale"], ["ss"]), N("Add", ["ss", "mask"], ["sm"]),
                  N("Softmax", ["sm"], ["p"], axis=-1), N("IsNaN", ["p"], ["nan"]), N("Where", ["nan", "zero", "p"], ["pp"]),
                  N("MatMul", ["pp", "v"], ["y"])],
                 [("q", [2, 6, 4]), ("k", [2, 6, 4]), ("v", [2, 6, 4]), ("mask", [1, 1, 6])], ["y"],
                 [_c("scale", 0.5), _c("zero", 0.0)])


# name: (builder, inputs that vary over time (None: all), expected blocks by kind, products)
CASES = {
    "softmax": (softmax, None, {"softmax": 1}, 0),
    "softmax_nan_safe": (softmax_nan_safe, None, {"softmax": 1}, 0),
    "layer_norm": (layer_norm, None, {"layer_norm": 1}, 0),
    "layer_norm_decomposed": (layer_norm_decomposed, None, {"layer_norm": 1}, 0),
    "gelu_erf_legacy": (gelu_erf_legacy, None, {"gelu": 1}, 0),
    "gelu_erf_dynamo": (gelu_erf_dynamo, None, {"gelu": 1}, 0),
    "gelu_erf_bias": (gelu_erf_bias, None, {"gelu": 1}, 0),
    "gelu_tanh": (gelu_tanh, None, {"gelu_tanh": 1}, 0),
    "gelu_op": (lambda: gelu_op("none"), None, {"gelu": 1}, 0),
    "gelu_op_tanh": (lambda: gelu_op("tanh"), None, {"gelu_tanh": 1}, 0),
    "silu": (silu, None, {"silu": 1}, 0),
    "sigmoid": (unary("Sigmoid"), None, {"sigmoid": 1}, 0),
    "tanh": (unary("Tanh"), None, {"tanh": 1}, 0),
    "hardsigmoid": (unary("HardSigmoid", alpha=1 / 6, beta=0.5), None, {"hardsigmoid": 1}, 0),
    "hardswish": (unary("HardSwish"), None, {"hardswish": 1}, 0),
    "hardswish_decomposed": (hardswish_decomposed, None, {"hardswish": 1}, 0),
    "relu_like_elu": (unary("Elu"), None, {"Elu": 1}, 0),
    "attention_scores": (attention_scores, None, {}, 1),
    "attention_values": (attention_values, None, {}, 1),
    "attention_einsum": (attention_einsum, None, {}, 1),
    "gate": (gate, None, {"sigmoid": 1}, 1),
    "attention_full": (attention_full, ["q", "k", "v"], {"softmax": 1}, 2),
}


def _inputs(m: onnx.ModelProto, rng, varying: list[str]):
    per_step, static = {}, {}
    for inp in m.graph.input:
        shape = [d.dim_value for d in inp.type.tensor_type.shape.dim[1:]]
        if inp.name == "mask":  # an additive attention mask: 0 or a very large negative number
            keep = rng.random((B, *shape)) < 0.8
            keep[..., 0] = True
            static[inp.name] = np.where(keep, 0.0, np.finfo(np.float32).min).astype(F32)
        elif inp.name in varying:
            per_step[inp.name] = (rng.standard_normal((T, B, *shape)) * 1.5).astype(F32)
        else:
            static[inp.name] = rng.standard_normal((B, *shape)).astype(F32)
    return per_step, static


@pytest.mark.parametrize("case", sorted(CASES))
def test_cumulative_output_is_t_times_f_of_mean(case, snn_library):
    build, varying, blocks_expected, products = CASES[case]
    ann = build()
    names = varying or [i.name for i in ann.graph.input]
    snn, plan = compensate_model(ann, T, names)
    assert dict(Counter(b.kind for b in plan.blocks)) == blocks_expected, [b.kind for b in plan.blocks]
    assert len(plan.compensated) == products, [n.name for n in plan.compensated]
    ops = Counter(n.op_type for n in snn.graph.node if n.domain == "snn_onnx")
    if blocks_expected and not products:  # one block: one TemporalMean in, one TemporalDelta out
        assert ops == Counter({"TemporalMean": 1, "TemporalDelta": 1}), ops

    rng = np.random.default_rng(abs(hash(case)) % 2**32)
    per_step, static = _inputs(ann, rng, names)
    feeds = {k: v.reshape(T * B, *v.shape[2:]) for k, v in per_step.items()}
    feeds.update({k: np.tile(v, (T,) + (1,) * (v.ndim - 1)) for k, v in static.items()})
    out_name = ann.graph.output[0].name
    (y,) = make_session(snn).run([out_name], feeds)
    y = y.reshape(T, B, *y.shape[1:]).astype(np.float64)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    ref_sess = ort.InferenceSession(ann.SerializeToString(), so, providers=["CPUExecutionProvider"])
    cum = np.cumsum(y, axis=0)
    for t in range(1, T + 1):
        means = {k: (v[:t].astype(np.float64).sum(0) / t).astype(F32) for k, v in per_step.items()}
        (f_mean,) = ref_sess.run([out_name], {**means, **static})
        expected = t * f_mean.astype(np.float64)
        tol = 2e-5 * t * max(1.0, float(np.abs(f_mean).max()))
        np.testing.assert_allclose(cum[t - 1], expected, rtol=0, atol=tol, err_msg=f"{case}: step {t}")


def test_products_of_one_varying_operand_stay_linear():
    """q · W with W the same at every step is linear: nothing to compensate."""
    ann = model([N("MatMul", ["q", "w"], ["y"])], [("q", [2, 6, 4]), ("w", [2, 4, 3])], ["y"])
    snn, plan = compensate_model(ann, T, ["q"])
    assert not plan.blocks and not plan.compensated
    assert not [n for n in snn.graph.node if n.domain == "snn_onnx"]


# --------------------------------------------------------------------------- fused kernel

FUNCS = ("gelu", "gelu_tanh", "silu", "sigmoid", "tanh", "hardsigmoid", "hardswish", "relu")


def _fused_model(fn: str, t: int) -> bytes:
    node = helper.make_node("CompensatedElementwise", ["x"], ["y"], domain="snn_onnx", name="fused0",
                            time_steps=t, function=fn)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("snn_onnx", 1)],
                             ir_version=10).SerializeToString()


@pytest.mark.parametrize("seed", range(40))
def test_fused_kernel_matches_reference(seed, snn_library):
    from snn_onnx.ops import reference as ref

    rng = np.random.default_rng(900 + seed)
    fn = FUNCS[seed % len(FUNCS)]
    t = int(rng.integers(1, 17))
    shape = [t * int(rng.integers(1, 4))] + [int(rng.integers(1, 40)) for _ in range(int(rng.integers(0, 3)))]
    x = (rng.standard_normal(shape) * rng.choice([0.5, 2.0, 6.0])).astype(F32)
    (y,) = make_session(_fused_model(fn, t)).run(["y"], {"x": x})
    r = ref.compensated_elementwise(x, time_steps=t, function=fn)
    # f in float32 vs float64: ~1e-7 relative; the delta multiplies by up to t
    np.testing.assert_allclose(y, r, rtol=0, atol=2e-6 * t * max(1.0, float(np.abs(x).max())))


@pytest.mark.parametrize("fn,attrs,msg", [
    ("gelu", {"time_steps": 4}, "not divisible by time_steps 4"),
    ("softplus", {"time_steps": 2}, "function must be one of"),
    (None, {"time_steps": 2}, "required attribute 'function' is missing"),
])
def test_fused_kernel_bad_input(fn, attrs, msg, snn_library):
    kw = dict(attrs)
    if fn is not None:
        kw["function"] = fn
    node = helper.make_node("CompensatedElementwise", ["x"], ["y"], domain="snn_onnx", name="bad_fused", **kw)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("snn_onnx", 1)], ir_version=10)
    with pytest.raises(Exception) as info:
        make_session(m).run(["y"], {"x": np.ones((6, 3), F32)})
    assert "CompensatedElementwise node 'bad_fused'" in str(info.value) and msg in str(info.value), str(info.value)


@pytest.mark.parametrize("case", ["hardswish", "hardswish_decomposed", "hardsigmoid"])
def test_fused_blocks_are_exact(case, snn_library):
    """With fusion on, blocks with a faster fused kernel become one CompensatedElementwise
    node, and the cumulative output is still t * f(mean)."""
    build, _, _, _ = CASES[case]
    ann = build()
    snn, plan = compensate_model(ann, T, fused=True)
    ops = Counter(n.op_type for n in snn.graph.node if n.domain == "snn_onnx")
    assert ops == Counter({"CompensatedElementwise": 1}), ops
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((T, B, 5, 8)) * 3).astype(F32)
    (y,) = make_session(snn).run(["y"], {"x": x.reshape(T * B, 5, 8)})
    cum = np.cumsum(y.reshape(T, B, 5, 8).astype(np.float64), axis=0)
    ref = ort.InferenceSession(ann.SerializeToString(), providers=["CPUExecutionProvider"])
    for t in range(1, T + 1):
        (f_mean,) = ref.run(["y"], {"x": (x[:t].astype(np.float64).sum(0) / t).astype(F32)})
        np.testing.assert_allclose(cum[t - 1], t * f_mean, rtol=0, atol=1e-5 * t * max(1.0, float(np.abs(f_mean).max())))

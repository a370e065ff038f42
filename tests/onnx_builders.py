"""Tiny ANNs written directly with onnx.helper, for converter and CLI tests without torch."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 18


def _init(name: str, arr: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(arr), name)


def small_cnn(
    activation: str = "Relu",
    batch: int | str = "N",
    extra_op: str | None = None,
    clip_max: float = 6.0,
    reshape_to: list[int] | None = None,
    seed: int = 0,
    maxpool: bool = False,
    batchnorm: bool = False,
) -> onnx.ModelProto:
    """x [batch,1,6,6] -> Conv(4 ch, 3x3, pad 1) -> act [-> MaxPool] [-> extra_op] -> Reshape/Flatten -> Gemm(10).

    ``activation``: "Relu" or "Clip" (Clip(0, clip_max)). ``extra_op``: an op type inserted
    after the activation (named ``my_<op>``), e.g. "Hardmax" to test refusals.
    ``reshape_to``: constant Reshape target instead of Flatten (to test fixed batch sizes)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.5, (4, 1, 3, 3)).astype(np.float32)
    b = rng.normal(0.1, 0.1, (4,)).astype(np.float32)
    side = 3 if maxpool else 6
    wf = rng.normal(0, 0.3, (10, 4 * side * side)).astype(np.float32)
    bf = np.zeros(10, np.float32)
    inits = [_init("w", w), _init("b", b), _init("wf", wf), _init("bf", bf)]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c0" if batchnorm else "c"], pads=[1, 1, 1, 1], name="conv")]
    if batchnorm:
        for name, arr in (("bn_scale", rng.uniform(0.5, 2, 4)), ("bn_bias", rng.normal(0, 0.2, 4)),
                          ("bn_mean", rng.normal(0, 0.2, 4)), ("bn_var", rng.uniform(0.5, 2, 4))):
            inits.append(_init(name, arr.astype(np.float32)))
        nodes.append(helper.make_node("BatchNormalization", ["c0", "bn_scale", "bn_bias", "bn_mean", "bn_var"], ["c"], name="bn"))
    if activation == "Relu":
        nodes.append(helper.make_node("Relu", ["c"], ["a"], name="act"))
    else:
        inits += [_init("lo", np.float32(0.0)), _init("hi", np.float32(clip_max))]
        nodes.append(helper.make_node("Clip", ["c", "lo", "hi"], ["a"], name="act"))
    cur = "a"
    if maxpool:
        nodes.append(helper.make_node("MaxPool", [cur], ["mp"], kernel_shape=[2, 2], strides=[2, 2], name="pool"))
        cur = "mp"
    if extra_op:
        nodes.append(helper.make_node(extra_op, [cur], ["e"], name=f"my_{extra_op.lower()}"))
        cur = "e"
    if reshape_to is not None:
        inits.append(_init("shape", np.array(reshape_to, np.int64)))
        nodes.append(helper.make_node("Reshape", [cur, "shape"], ["f"], name="reshape"))
    else:
        nodes.append(helper.make_node("Flatten", [cur], ["f"], axis=1, name="flatten"))
    nodes.append(helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], transB=1, name="fc"))
    graph = helper.make_graph(
        nodes,
        "small_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 1, 6, 6])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def inputs(n: int = 32, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n, 1, 6, 6)).astype(np.float32)

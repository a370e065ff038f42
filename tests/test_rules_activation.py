"""The activation rule identifies ReLU, clip and staircase activations by what they compute,
whatever nodes spell them, and says why it does not take a chain."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import snn_onnx
from snn_onnx.conversion import cleanup
from snn_onnx.conversion.rules import ActivationRule, Trace
from snn_onnx.errors import ConversionError

L, LAM = 4, 2.0


def _c(name: str, value, dtype=np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def conv_chain_conv(chain: list[onnx.NodeProto], consts: list[onnx.TensorProto], opset: int = 18,
                    channels: int = 4) -> onnx.ModelProto:
    """x [N,1,6,6] -> Conv -> <chain: 'pre' -> ... -> 'act'> -> Conv -> Flatten -> Gemm -> logits."""
    rng = np.random.default_rng(0)
    inits = [
        _c("w1", rng.normal(0, 0.7, (channels, 1, 3, 3))), _c("b1", rng.normal(0.2, 0.3, channels)),
        _c("w2", rng.normal(0, 0.4, (channels, channels, 3, 3))), _c("b2", rng.normal(0.1, 0.1, channels)),
        _c("wf", rng.normal(0, 0.3, (10, channels * 36))), _c("bf", np.zeros(10)),
        *consts,
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["pre"], pads=[1, 1, 1, 1], name="conv1"),
        *chain,
        helper.make_node("Conv", ["act", "w2", "b2"], ["conv2_out"], pads=[1, 1, 1, 1], name="conv2"),
        helper.make_node("Flatten", ["conv2_out"], ["flat_out"], axis=1, name="flatten"),
        helper.make_node("Gemm", ["flat_out", "wf", "bf"], ["logits"], transB=1, name="fc"),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 6, 6])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 10 if opset >= 21 else 9
    onnx.checker.check_model(m)
    return m


def sites_of(model: onnx.ModelProto):
    clean = cleanup.clean(model)
    trace = Trace()
    return ActivationRule(dict(clean.model.opset_imports), trace).match(clean.model.graph), trace


def x_data(n: int = 64, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 1, 6, 6)).astype(np.float32)


# --- spellings of QCFS: lam * clamp(floor(x * L / lam + 0.5), 0, L) / L --------------------------

def _qcfs_floor_mul():
    return [helper.make_node("Mul", ["pre", "s_in"], ["a"]), helper.make_node("Add", ["a", "half"], ["b"]),
            helper.make_node("Floor", ["b"], ["c"]), helper.make_node("Clip", ["c", "zero", "lv"], ["d"]),
            helper.make_node("Mul", ["d", "s_out"], ["act"])], [
        _c("s_in", L / LAM), _c("half", 0.5), _c("zero", 0.0), _c("lv", float(L)), _c("s_out", LAM / L)]


def _qcfs_hao():  # lam * clamp(floor(x*L/lam + 0.5)/L, 0, 1): the Clip(0, 1) is not a ReLU6
    return [helper.make_node("Mul", ["pre", "lv"], ["a"]), helper.make_node("Div", ["a", "lam"], ["a2"]),
            helper.make_node("Add", ["a2", "half"], ["b"]), helper.make_node("Floor", ["b"], ["c"]),
            helper.make_node("Div", ["c", "lv"], ["c2"]), helper.make_node("Clip", ["c2", "zero", "one"], ["d"]),
            helper.make_node("Mul", ["d", "lam"], ["act"])], [
        _c("lv", float(L)), _c("lam", LAM), _c("half", 0.5), _c("zero", 0.0), _c("one", 1.0)]


def _qcfs_min_max():  # Min/Max instead of Clip, scales in the other order
    return [helper.make_node("Div", ["pre", "step"], ["a"]), helper.make_node("Add", ["a", "half"], ["b"]),
            helper.make_node("Floor", ["b"], ["c"]), helper.make_node("Max", ["c", "zero"], ["d"]),
            helper.make_node("Min", ["d", "lv"], ["e"]), helper.make_node("Mul", ["e", "lam"], ["e2"]),
            helper.make_node("Div", ["e2", "lv"], ["act"])], [
        _c("step", LAM / L), _c("half", 0.5), _c("zero", 0.0), _c("lv", float(L)), _c("lam", LAM)]


def _qcfs_round():  # round half to even instead of floor(. + 0.5): equal except at ties
    return [helper.make_node("Mul", ["pre", "s_in"], ["a"]), helper.make_node("Round", ["a"], ["c"]),
            helper.make_node("Clip", ["c", "zero", "lv"], ["d"]), helper.make_node("Mul", ["d", "s_out"], ["act"])], [
        _c("s_in", L / LAM), _c("zero", 0.0), _c("lv", float(L)), _c("s_out", LAM / L)]


@pytest.mark.parametrize("spelling", [_qcfs_floor_mul, _qcfs_hao, _qcfs_min_max, _qcfs_round])
def test_qcfs_spellings_are_one_staircase(spelling):
    chain, consts = spelling()
    (site,), _ = sites_of(conv_chain_conv(chain, consts))
    fn = site.function
    assert site.kind == "staircase" and fn.levels == L
    np.testing.assert_allclose(fn.threshold, LAM, rtol=1e-6)
    np.testing.assert_allclose(fn.v_init, 0.5)
    assert fn.input_shift is None and fn.output_offset is None
    np.testing.assert_allclose(fn.scale, 1.0, rtol=1e-6)
    # the neuron replaces the whole chain (whatever the optimiser merged in it)
    assert {"Floor", "Round"} & {n.op_type for n in site.nodes}
    assert site.input.name == "pre" and site.output.name == "act"


@pytest.mark.parametrize("spelling", [_qcfs_floor_mul, _qcfs_hao, _qcfs_min_max, _qcfs_round])
def test_qcfs_spellings_convert_exactly_at_t_eq_l(spelling):
    chain, consts = spelling()
    ann, x = conv_chain_conv(chain, consts), x_data()
    res = snn_onnx.convert(ann, time_steps=L, data=x)
    ex = res.parity["exactness"]
    assert ex["passed"] and ex["exact"] + ex["tie_explained"] == ex["samples"]
    assert res.parity["logits"]["argmax_agreement"] == 1.0


def test_per_channel_staircase_and_a_bias_kept_outside():
    lam = np.array([1.0, 2.0, 3.0, 4.0], np.float32).reshape(1, 4, 1, 1)
    chain = [helper.make_node("Add", ["pre", "bias"], ["p"]), helper.make_node("Mul", ["p", "s_in"], ["a"]),
             helper.make_node("Add", ["a", "half"], ["b"]), helper.make_node("Floor", ["b"], ["c"]),
             helper.make_node("Clip", ["c", "zero", "lv"], ["d"]), helper.make_node("Mul", ["d", "s_out"], ["act"])]
    consts = [_c("bias", np.array([0.3, -0.2, 0.1, 0.05]).reshape(1, 4, 1, 1)), _c("s_in", L / lam),
              _c("half", 0.5), _c("zero", 0.0), _c("lv", float(L)), _c("s_out", lam / L)]
    (site,), _ = sites_of(conv_chain_conv(chain, consts))
    assert site.input.name == "p"  # the bias add stays the neuron's input current
    np.testing.assert_allclose(site.function.threshold, lam.ravel(), rtol=1e-6)
    assert site.channel_axis == 1 and site.function.input_shift is None


def test_relu_clip_and_their_spellings():
    cases = {
        "relu": ([helper.make_node("Relu", ["pre"], ["act"])], [], "relu", None),
        "max0": ([helper.make_node("Max", ["pre", "zero"], ["act"])], [_c("zero", 0.0)], "relu", None),
        "relu6": ([helper.make_node("Clip", ["pre", "zero", "six"], ["act"])], [_c("zero", 0.0), _c("six", 6.0)],
                  "clip", 6.0),
        "minmax6": ([helper.make_node("Max", ["pre", "zero"], ["m"]), helper.make_node("Min", ["m", "six"], ["act"])],
                    [_c("zero", 0.0), _c("six", 6.0)], "clip", 6.0),
    }
    for name, (chain, consts, kind, th) in cases.items():
        (site,), _ = sites_of(conv_chain_conv(chain, consts))
        assert site.kind == kind, name
        if th is not None:
            assert float(site.threshold) == th, name


def test_bias_then_relu_keeps_the_bias_outside_the_neuron():
    chain = [helper.make_node("Add", ["pre", "bias"], ["p"]), helper.make_node("Relu", ["p"], ["act"])]
    (site,), trace = sites_of(conv_chain_conv(chain, [_c("bias", np.full((1, 4, 1, 1), 0.3))]))
    assert site.kind == "relu" and site.input.name == "p" and [n.op_type for n in site.nodes] == ["Relu"]


def test_hardswish_with_clip_is_not_a_neuron():
    """x * Clip(x + 3, 0, 6) / 6: the Clip sits inside a product with x, so the whole
    expression is compensated as one block; the Clip never becomes a neuron with θ = 6."""
    chain = [helper.make_node("Relu", ["pre"], ["r"]), helper.make_node("Conv", ["r", "wm"], ["h"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["h", "three"], ["a"]), helper.make_node("Clip", ["a", "zero", "six"], ["b"]),
             helper.make_node("Mul", ["h", "b"], ["c"]), helper.make_node("Div", ["c", "six"], ["act"])]
    wm = np.random.default_rng(3).normal(0, 0.5, (4, 4, 3, 3))
    ann = conv_chain_conv(chain, [_c("three", 3.0), _c("zero", 0.0), _c("six", 6.0), _c("wm", wm)])
    sites, trace = sites_of(ann)
    assert [s.kind for s in sites] == ["relu"]
    assert any("factor of a product" in line for line in trace.lines())
    res = snn_onnx.convert(ann, time_steps=8, neuron="if", data=x_data())
    assert [b["kind"] for b in res.blocks] == ["hardswish"]
    assert any("factor of a product" in line for line in res.explain)  # what --explain prints


def test_input_quantizer_before_any_weight_layer_stays():
    chain = [helper.make_node("Relu", ["pre"], ["act"])]
    ann = conv_chain_conv(chain, [])
    # a QuantizeLinear -> DequantizeLinear on the image itself, before conv1
    g = ann.graph
    g.node[0].input[0] = "xq_dq"
    g.node.insert(0, helper.make_node("DequantizeLinear", ["xq", "sc", "zp"], ["xq_dq"], name="in_dq"))
    g.node.insert(0, helper.make_node("QuantizeLinear", ["x", "sc", "zp"], ["xq"], name="in_q"))
    g.initializer.extend([_c("sc", 1 / 64), numpy_helper.from_array(np.array(0, np.uint8), "zp")])
    sites, trace = sites_of(ann)
    assert [s.kind for s in sites] == ["relu"]
    assert any("static input" in line and "in_q" in line for line in trace.lines())


def test_unidentified_quantizer_stops_the_conversion():
    """floor(x) with no clamp has no top level: a quantizer the rule does not take is an error
    naming its node, never a silent compensation or a wrong neuron."""
    ann = conv_chain_conv([helper.make_node("Floor", ["pre"], ["act"], name="my_floor")], [])
    with pytest.raises(ConversionError, match=r"node 'my_floor' \(Floor\).*quantizes.*not a ReLU, clip\(0, λ\) or staircase"):
        snn_onnx.convert(ann, time_steps=4, data=x_data())


def test_uneven_staircase_is_refused_with_the_reason():
    """floor(clip(x, 0, 3)) * 2 clipped at 5: levels 0, 2, 4, 5 are not equally spaced."""
    chain = [helper.make_node("Clip", ["pre", "zero", "three"], ["c"]), helper.make_node("Floor", ["c"], ["f"]),
             helper.make_node("Mul", ["f", "two"], ["m"]), helper.make_node("Clip", ["m", "zero", "five"], ["act"])]
    ann = conv_chain_conv(chain, [_c("zero", 0.0), _c("three", 3.0), _c("two", 2.0), _c("five", 5.0)])
    with pytest.raises(ConversionError, match="levels are not equally spaced"):
        snn_onnx.convert(ann, time_steps=4, data=x_data())


def test_signed_staircase_gets_a_shift_and_an_offset():
    """QuantizeLinear -> DequantizeLinear with a zero point inside the range: levels below zero.
    The neuron reads x - c and its output is offset: exact at T = L."""
    chain = [helper.make_node("QuantizeLinear", ["pre", "sc", "zp"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "sc", "zp"], ["act"])]
    consts = [_c("sc", 0.25), numpy_helper.from_array(np.array(6, np.uint8), "zp")]
    ann = conv_chain_conv(chain, consts)
    (site,), _ = sites_of(ann)
    fn = site.function
    assert fn.levels == 255 and fn.input_shift is not None and fn.output_offset is not None
    np.testing.assert_allclose(fn.output_offset, -6 * 0.25)
    res = snn_onnx.convert(ann, time_steps=255, data=x_data(16), parity_samples=16)
    assert res.parity["exactness"]["passed"]


@pytest.mark.parametrize("elem,zp", [(TensorProto.UINT4, 0), (TensorProto.INT4, -8), (TensorProto.UINT8, 0),
                                     (TensorProto.INT8, -128)])
def test_qdq_of_every_integer_type_at_opset_21(elem, zp):
    np_t = {TensorProto.UINT4: None, TensorProto.INT4: None, TensorProto.UINT8: np.uint8, TensorProto.INT8: np.int8}[elem]
    zp_t = helper.make_tensor("zp", elem, [], [zp]) if np_t is None else numpy_helper.from_array(np.array(zp, np_t), "zp")
    chain = [helper.make_node("Relu", ["pre"], ["r"]),
             helper.make_node("QuantizeLinear", ["r", "sc", "zp"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "sc", "zp"], ["act"])]
    ann = conv_chain_conv(chain, [_c("sc", 0.2), zp_t], opset=21)
    (site,), _ = sites_of(ann)
    levels = 15 if elem in (TensorProto.UINT4, TensorProto.INT4) else 255
    assert site.kind == "staircase" and site.function.levels == levels
    assert site.function.input_shift is None and site.function.output_offset is None
    res = snn_onnx.convert(ann, time_steps=levels, data=x_data(32), parity_samples=32)
    assert res.parity["exactness"]["passed"] and res.parity["logits"]["argmax_agreement"] == 1.0


def test_parity_gate_refuses_an_inexact_snn(monkeypatch, tmp_path):
    """A staircase whose neuron would not reproduce the ANN (here: the rule's record tampered
    so the neuron's offset is wrong) fails the gate and writes nothing; the override writes."""
    from snn_onnx.conversion.rules import identify as ident

    chain, consts = _qcfs_floor_mul()
    ann = conv_chain_conv(chain, consts)
    real = ident._split_offset
    monkeypatch.setattr(ident, "_split_offset", lambda raw, j1, d: (raw * 0 + 0.1, None))
    out = tmp_path / "m.snn.onnx"
    with pytest.raises(ConversionError, match="parity gate.*nothing was written"):
        snn_onnx.convert(ann, time_steps=L, data=x_data(), output=out)
    assert not out.exists()
    res = snn_onnx.convert(ann, time_steps=L, data=x_data(), output=out, parity_gate=False)
    assert out.exists() and not res.parity["exactness"]["passed"]
    assert any("parity gate" in w for w in res.warnings)
    monkeypatch.setattr(ident, "_split_offset", real)


def test_t_not_l_warns_and_names_the_exact_t():
    chain, consts = _qcfs_floor_mul()
    with pytest.warns(UserWarning, match=f"exactly only at T = L = {L}; T = 8"):
        res = snn_onnx.convert(conv_chain_conv(chain, consts), time_steps=8, data=x_data(16))
    assert "exactness" not in res.parity


def test_nan_in_the_snn_where_the_ann_is_finite_fails_the_conversion(monkeypatch, tmp_path):
    """The NaN check reads the parity comparison (validate.compare counts SNN values that are
    NaN / Inf where the ANN's are finite); forced here, the conversion fails and writes nothing."""
    from snn_onnx.conversion import validate

    real = validate.compare

    def with_nan(ann_out, snn_out):
        snn_out = snn_out.copy()
        snn_out.flat[0] = np.nan
        return real(ann_out, snn_out)

    monkeypatch.setattr(validate, "compare", with_nan)
    out = tmp_path / "m.snn.onnx"
    chain = [helper.make_node("Relu", ["pre"], ["act"])]
    with pytest.raises(ConversionError, match=r"NaN or Inf in output\(s\) \['logits'\].*nothing was written"):
        snn_onnx.convert(conv_chain_conv(chain, []), time_steps=4, data=x_data(8), output=out)
    assert not out.exists()

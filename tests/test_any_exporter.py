"""Models nobody on this project wrote convert correctly: torch's two exporters with QCFS in
several spellings, ONNX Runtime's quantizer (QDQ, 8 and 4 bits), tf2onnx and paddle2onnx
models (committed fixtures, made by scripts/make_foreign_models.py), a user-exported BERT,
old opsets, external data, Constant nodes, initializers listed as inputs."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import snn_onnx
from snn_onnx.errors import ConversionError

torch = pytest.importorskip("torch", reason="the exporter matrix needs torch")
nn = torch.nn

FOREIGN = Path(__file__).parent / "fixtures" / "foreign"
L, LAM = 4, 2.0


def ann_run(model: onnx.ModelProto | str, feed: dict) -> list[np.ndarray]:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    src = model if isinstance(model, str) else model.SerializeToString()
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"]).run(None, feed)


# --- torch: QCFS in four spellings x two exporters -------------------------------------------


class _Floor(nn.Module):  # the project's own form: clamp(floor(x L/λ + 0.5), 0, L) λ/L
    def forward(self, x):
        return torch.clamp(torch.floor(x * (L / LAM) + 0.5), 0, L) * (LAM / L)


class _Hao(nn.Module):  # Hao et al.: λ clamp(floor(x L/λ + 0.5)/L, 0, 1)
    def forward(self, x):
        return LAM * torch.clamp(torch.floor(x * L / LAM + 0.5) / L, 0, 1)


class _MinMax(nn.Module):  # Div by the step, Min/Max instead of clamp, scales after
    def forward(self, x):
        y = torch.floor(x / (LAM / L) + 0.5)
        return torch.minimum(torch.maximum(y, torch.tensor(0.0)), torch.tensor(float(L))) * LAM / L


class _Round(nn.Module):  # round half to even: equal to QCFS except at exact ties
    def forward(self, x):
        return torch.clamp(torch.round(x * L / LAM), 0, L) * LAM / L


class _Net(nn.Module):
    def __init__(self, act):
        super().__init__()
        self.c1, self.a1 = nn.Conv2d(1, 6, 3, padding=1), act()
        self.c2, self.a2 = nn.Conv2d(6, 6, 3, padding=1), act()
        self.fc = nn.Linear(6 * 36, 10)

    def forward(self, x):
        return self.fc(self.a2(self.c2(self.a1(self.c1(x)))).flatten(1))


def _export(module: nn.Module, exporter: str) -> onnx.ModelProto:
    x = torch.randn(2, 1, 6, 6)
    if exporter == "dynamo":
        prog = torch.onnx.export(module, (x,), dynamo=True, input_names=["x"], output_names=["logits"],
                                 dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
        return prog.model_proto
    buf = io.BytesIO()
    torch.onnx.export(module, (x,), buf, dynamo=False, input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "N"}}, opset_version=17)
    return onnx.load_from_string(buf.getvalue())


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
@pytest.mark.parametrize("act", [_Floor, _Hao, _MinMax, _Round], ids=["floor", "hao", "minmax", "round"])
def test_qcfs_spellings_from_both_exporters_are_exact_at_t_eq_l(act, exporter):
    torch.manual_seed(0)
    ann = _export(_Net(act).eval(), exporter)
    x = np.random.default_rng(0).standard_normal((48, 1, 6, 6)).astype(np.float32)
    res = snn_onnx.convert(ann, time_steps=L, data=x)
    assert [s.kind for s in res.sites] == ["staircase", "staircase"]
    assert all(s.levels == L and s.threshold == pytest.approx([LAM], rel=1e-5) for s in res.sites)
    ex = res.parity["exactness"]
    assert ex["passed"] and ex["unexplained"] == 0
    assert res.parity["logits"]["argmax_agreement"] == 1.0


# --- ONNX Runtime's quantizer ----------------------------------------------------------------


class _Plain(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 9, 10)

    def forward(self, x):
        y = torch.relu(self.c1(x))
        y = torch.max_pool2d(torch.relu(self.c2(y)), 2)
        return self.fc(y.flatten(1))


@pytest.fixture(scope="module")
def float_model(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("qdq") / "float.onnx"
    path.write_bytes(_export(_Plain().eval(), "torchscript").SerializeToString())
    return path


@pytest.mark.parametrize("bits,signed", [(8, False), (8, True), (4, False), (4, True)])
def test_ort_quantize_static_qdq_converts_exactly_at_t_eq_levels(float_model, tmp_path, bits, signed):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    rng = np.random.default_rng(1)
    calib = [rng.random((1, 1, 6, 6), dtype=np.float32) for _ in range(32)]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"x": c} for c in calib])

        def get_next(self):
            return next(self.it, None)

    act = {(8, False): QuantType.QUInt8, (8, True): QuantType.QInt8, (4, False): QuantType.QUInt4,
           (4, True): QuantType.QInt4}[(bits, signed)]
    weight = QuantType.QInt4 if bits == 4 else QuantType.QInt8
    q_path = tmp_path / "q.onnx"
    quantize_static(str(float_model), str(q_path), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=act, weight_type=weight)
    levels = 2**bits - 1
    x = np.random.default_rng(2).random((48, 1, 6, 6), dtype=np.float32)
    res = snn_onnx.convert(str(q_path), time_steps=levels, data=x)
    assert {s.kind for s in res.sites} == {"staircase"} and {s.levels for s in res.sites} == {levels}
    ex = res.parity["exactness"]
    assert ex["passed"] and ex["exact"] + ex["tie_explained"] == ex["samples"]
    # against the quantized model itself, as ONNX Runtime runs it
    (q_logits,) = ann_run(str(q_path), {"x": x})
    snn_logits = snn_onnx.Session(res.model).run(x).outputs["logits"]
    assert np.mean(q_logits.argmax(1) == snn_logits.argmax(1)) == 1.0
    if bits == 4:  # no ties at 4 bits on this data: every sample to float tolerance
        np.testing.assert_allclose(snn_logits, q_logits, rtol=1e-4, atol=1e-4 * np.abs(q_logits).max())


# --- compensated ops feeding neurons converge ---------------------------------------------------


class _TwoLayer(nn.Module):
    """conv -> ReLU -> conv -> <mid> -> ReLU -> linear: the second neuron reads a compensated op."""

    def __init__(self, mid: str):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 6, 3, padding=1), nn.Conv2d(6, 6, 3, padding=1)
        self.mid = mid
        self.fc = nn.Linear(6 * (9 if mid in ("maxpool", "relu_maxpool") else 36), 10)

    def forward(self, x):
        y = self.c2(torch.relu(self.c1(x)))
        if self.mid == "maxpool":
            y = torch.relu(torch.max_pool2d(y, 2))
        elif self.mid == "relu_maxpool":
            y = torch.max_pool2d(torch.relu(y), 2)
        elif self.mid == "sigmoid":
            y = torch.relu(torch.sigmoid(y) - 0.5)
        elif self.mid == "hardswish":  # written with a Clip, as older exporters do
            y = torch.relu(y * torch.clamp(y + 3, 0, 6) / 6)
        return self.fc(y.flatten(1))


@pytest.mark.parametrize("mid", ["maxpool", "sigmoid", "hardswish", "relu_maxpool"])
def test_a_neuron_fed_by_a_compensated_op_converges(mid):
    torch.manual_seed(0)
    ann = _export(_TwoLayer(mid).eval(), "torchscript")
    x = np.random.default_rng(0).standard_normal((32, 1, 6, 6)).astype(np.float32)
    (ref,) = ann_run(ann, {"x": x})
    errs = []
    for t in (8, 32, 128):
        res = snn_onnx.convert(ann, time_steps=t, neuron="if", data=x, parity_samples=8)
        got = snn_onnx.Session(res.model).run(x).outputs["logits"]
        errs.append(float(np.abs(got - ref).max() / np.abs(ref).max()))
    assert errs[0] > errs[1] > errs[2], errs
    assert errs[2] < 0.05, errs


# --- other exporters (committed fixtures) --------------------------------------------------------


def _check_batches(res, name: str, x: np.ndarray) -> None:
    sess = snn_onnx.Session(res.model)
    for b in (1, 7):
        out = sess.run(x[:b]).outputs[name]
        assert out.shape[0] == b and np.all(np.isfinite(out))
    one = np.concatenate([sess.run(x[i : i + 1]).outputs[name] for i in range(7)])
    np.testing.assert_allclose(sess.run(x[:7]).outputs[name], one, rtol=1e-5, atol=1e-5)


def test_keras_model_from_tf2onnx_nhwc():
    path = FOREIGN / "keras_cnn_tf2onnx.onnx"
    x = np.random.default_rng(0).random((32, 12, 12, 3), dtype=np.float32)
    res = snn_onnx.convert(str(path), time_steps=32, neuron="if", data=x)
    assert [s.kind for s in res.sites] == ["relu", "clip", "relu"]
    assert res.parity["scores"]["cosine_mean"] > 0.95
    _check_batches(res, "scores", x)


@pytest.mark.parametrize("opset", [11, 13])
def test_paddle2onnx_model_with_minus_one_batch(opset):
    m = onnx.load(str(FOREIGN / f"paddle_cnn_opset{opset}.onnx"))
    for v in list(m.graph.input) + list(m.graph.output):  # as older paddle2onnx wrote the batch
        d = v.type.tensor_type.shape.dim[0]
        d.Clear()
        d.dim_value = -1
    x = np.random.default_rng(0).random((32, 3, 12, 12), dtype=np.float32)
    res = snn_onnx.convert(m, time_steps=32, neuron="if", data=x)
    out = res.model.graph.output[0].name
    assert [b["kind"] for b in res.blocks] == ["hardswish"]
    assert res.cleanup.get("opset_upgraded", {}).get("from") == opset
    assert res.parity[out]["cosine_mean"] > 0.95
    _check_batches(res, out, x)


# --- a BERT exported by the user, data by input name ------------------------------------------------


def test_user_exported_bert_with_input_named_npz_from_the_cli(tmp_path):
    transformers = pytest.importorskip("transformers")
    from click.testing import CliRunner

    from snn_onnx_cli.main import cli

    cfg = transformers.BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=48, max_position_embeddings=32)
    torch.manual_seed(0)
    bert = transformers.BertModel(cfg).eval()  # random init: a structural check

    class ByName(nn.Module):  # the three inputs a user exports a BERT with
        def __init__(self):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.last_hidden_state, out.pooler_output

    model = ByName().eval()
    ids = torch.randint(0, 64, (2, 8))
    onnx_path = tmp_path / "bert.onnx"
    names = ["input_ids", "attention_mask", "token_type_ids"]
    torch.onnx.export(model, (ids, torch.ones_like(ids), torch.zeros_like(ids)), str(onnx_path), dynamo=False,
                      input_names=names, output_names=["last_hidden_state", "pooler_output"],
                      dynamic_axes={n: {0: "batch", 1: "seq"} for n in names}, opset_version=17)
    rng = np.random.default_rng(0)
    data = tmp_path / "calib.npz"
    np.savez(data, input_ids=rng.integers(0, 64, (16, 8)), attention_mask=np.ones((16, 8), np.int64),
             token_type_ids=np.zeros((16, 8), np.int64))
    out = tmp_path / "bert.snn.onnx"
    res = CliRunner().invoke(cli, ["convert", str(onnx_path), "--data", str(data), "-T", "4", "-o", str(out),
                                   "--quiet", "--num-calib", "16"])
    assert res.exit_code == 0, res.output
    assert "transformer mode" in res.output and out.exists()
    # the wrong names are refused by name
    bad = tmp_path / "bad.npz"
    np.savez(bad, ids=np.zeros((4, 8), np.int64))
    res = CliRunner().invoke(cli, ["convert", str(onnx_path), "--data", str(bad), "-o", str(tmp_path / "b.onnx")])
    assert res.exit_code == 1 and "input_ids" in res.output


# --- opsets, external data, constants, initializers as inputs --------------------------------------


def _mlp_with_runtime_reshape(opset: int) -> onnx.ModelProto:
    """x [N, 4, 8] -> MatMul -> Relu -> Reshape(Shape(x)[0], -1) -> MatMul: the target shape is
    computed at run time (an opset-11 export)."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
        helper.make_node("Relu", ["h"], ["r"], name="act"),
        helper.make_node("Shape", ["r"], ["s"], name="shape"),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0, name="batch"),
        helper.make_node("Unsqueeze", ["n"], ["n1"], axes=[0], name="n1") if opset < 13 else
        helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"], name="n1"),
        helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0, name="target"),
        helper.make_node("Reshape", ["r", "target"], ["flat"], name="flatten"),
        helper.make_node("MatMul", ["flat", "w2"], ["y"], name="fc2"),
    ]
    inits = [numpy_helper.from_array(rng.normal(0, 0.5, (8, 8)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.normal(0, 0.3, (32, 3)).astype(np.float32), "w2"),
             numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus1"),
             *([numpy_helper.from_array(np.array([0], np.int64), "axes0")] if opset >= 13 else [])]
    g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 6
    onnx.checker.check_model(m)
    return m


def test_opset_11_model_with_a_runtime_reshape_before_a_matmul():
    ann = _mlp_with_runtime_reshape(11)
    x = np.random.default_rng(1).standard_normal((16, 4, 8)).astype(np.float32)
    res = snn_onnx.convert(ann, time_steps=64, neuron="if", data=x)
    assert res.cleanup["opset_upgraded"] == {"from": 11, "to": 18}
    opsets = {o.domain: o.version for o in res.model.opset_import}
    assert opsets[""] == 18
    got = snn_onnx.Session(res.model).run(x).outputs["y"]
    (ref,) = ann_run(ann, {"x": x})
    assert np.abs(got - ref).max() < 0.1 * np.abs(ref).max()


def test_an_opset_the_converter_cannot_upgrade_is_refused_by_name(monkeypatch):
    def fail(model, target):
        raise RuntimeError("No Adapter For Current Version (from the version converter)")

    monkeypatch.setattr(onnx.version_converter, "convert_version", fail)
    with pytest.raises(snn_onnx.ModelLoadError, match="opset 11.*version converter, which failed: No Adapter.*"
                                                       "Re-export the model with opset >= 18"):
        snn_onnx.convert(_mlp_with_runtime_reshape(11), time_steps=4)


def test_external_data_constant_nodes_and_initializers_as_inputs(tmp_path):
    ann = _mlp_with_runtime_reshape(17)
    x = np.random.default_rng(1).standard_normal((8, 4, 8)).astype(np.float32)
    # weights in an external data file
    path = tmp_path / "ext.onnx"
    copy = onnx.ModelProto()
    copy.CopyFrom(ann)  # onnx.save moves the tensors of the proto it saves out to the file
    onnx.save(copy, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location="ext.data",
              size_threshold=0)
    assert (tmp_path / "ext.data").exists()
    a = snn_onnx.convert(str(path), time_steps=8, neuron="if", data=x)
    # Constant nodes instead of initializers
    c = onnx.ModelProto()
    c.CopyFrom(ann)
    consts = [helper.make_node("Constant", [], [t.name], value=t) for t in c.graph.initializer]
    del c.graph.initializer[:]
    for n in reversed(consts):
        c.graph.node.insert(0, n)
    b = snn_onnx.convert(c, time_steps=8, neuron="if", data=x)
    # initializers also listed as graph inputs (old exporters, IR 3)
    d = onnx.ModelProto()
    d.CopyFrom(ann)
    d.graph.input.extend(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in d.graph.initializer)
    e = snn_onnx.convert(d, time_steps=8, neuron="if", data=x)
    outs = [snn_onnx.Session(r.model).run(x).outputs["y"] for r in (a, b, e)]
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outs[0], outs[2], rtol=1e-5, atol=1e-6)


def test_a_model_without_relu_takes_the_multi_threshold_path():
    class SiluNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c2 = nn.Conv2d(1, 6, 3, padding=1), nn.Conv2d(6, 6, 3, padding=1)
            self.fc = nn.Linear(6 * 36, 10)

        def forward(self, x):
            return self.fc(nn.functional.silu(self.c2(nn.functional.gelu(self.c1(x)))).flatten(1))

    torch.manual_seed(0)
    ann = _export(SiluNet().eval(), "torchscript")
    x = np.random.default_rng(0).standard_normal((32, 1, 6, 6)).astype(np.float32)
    res = snn_onnx.convert(ann, time_steps=16, data=x)
    assert res.mode == "transformer"
    assert {s.op for s in res.sites} == {"MultiThresholdNeuron"}
    assert {b["kind"] for b in res.blocks} == {"silu"}  # the GELU acts on the static input: runs once
    assert res.parity["logits"]["cosine_mean"] > 0.9
    with pytest.raises(ConversionError, match="no ReLU, clip\\(0, λ\\) or staircase activation"):
        snn_onnx.convert(ann, time_steps=16, data=x, mode="cnn")


def test_calibration_data_with_nan_is_refused():
    ann = _export(_Net(_Floor).eval(), "torchscript")
    x = np.random.default_rng(0).standard_normal((8, 1, 6, 6)).astype(np.float32)
    x[3, 0, 2, 2] = np.nan
    with pytest.raises(snn_onnx.DataError, match=r"1 NaN / Inf value\(s\) \(first at index \[3, 0, 2, 2\]"):
        snn_onnx.convert(ann, time_steps=4, data=x)


def test_random_init_timm_model_says_so():
    pytest.importorskip("timm")
    with pytest.warns(UserWarning, match="random-init"):
        res = snn_onnx.convert("resnet10t", input_shape=(3, 32, 32), time_steps=2, parity_samples=4)
    from snn_onnx import metadata as md

    prov = md.read(res.model)["provenance"]
    assert prov["weights"].startswith("random-init") and prov["calibration_data"] == "random"

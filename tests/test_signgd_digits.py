"""Real data: the digits ConvNeXt trained here (models/train_digits_signgd.py, scikit-learn's
digits) converted with SignGD neurons reaches the ANN's test accuracy within one point at
T = 128 (issue 11). docs/signgd.md has the full table, the MLP-Mixer too
(benchmarks/signgd.py); one network here keeps the suite's time down (the SNN evaluates GELU,
squares and quotients at every one of the 128 steps)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import snn_onnx
from snn_onnx.conversion.calibrate import CalibrationConfig
from snn_onnx.data import load
from snn_onnx_models.digits_signgd import onnx_path


def test_digits_accuracy_within_one_point_at_T128(snn_library):
    name = "digits_convnext"
    ann = onnx.load(str(onnx_path(name)))
    train, test = load("digits", "train"), load("digits", "test")
    res = snn_onnx.convert(ann, time_steps=128, neuron="signgd", data=train.x,
                           calibration=CalibrationConfig(num_samples=256, per_channel=True), parity_samples=8)
    ann_logits = ort.InferenceSession(str(onnx_path(name)), providers=["CPUExecutionProvider"]).run(
        None, {"input": test.x})[0]
    sess = snn_onnx.Session(res.model)
    snn_logits = np.concatenate([sess.run(test.x[i:i + 64], spike_counts=False, per_step=False).outputs["logits"]
                                 for i in range(0, len(test.x), 64)])
    acc_ann = float(np.mean(ann_logits.argmax(1) == test.y))
    acc_snn = float(np.mean(snn_logits.argmax(1) == test.y))
    stored = float(next(p.value for p in ann.metadata_props if p.key == "snn_onnx.example.test_accuracy"))
    assert acc_ann == pytest.approx(stored, abs=1e-6)
    assert acc_snn >= acc_ann - 0.01, (acc_ann, acc_snn)

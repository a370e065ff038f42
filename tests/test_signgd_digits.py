"""Real data: the digits ConvNeXt and MLP-Mixer trained here (models/train_digits_signgd.py,
scikit-learn's digits) converted with SignGD neurons reach the ANN's test accuracy within one
point at T = 128 (issue 11; docs/signgd.md has the full table)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import snn_onnx
from snn_onnx.conversion.calibrate import CalibrationConfig
from snn_onnx.data import load
from snn_onnx_models.digits_signgd import onnx_path


@pytest.mark.parametrize("name", ["digits_convnext", "digits_mixer"])
def test_digits_accuracy_within_one_point_at_T128(snn_library, name):
    ann = onnx.load(str(onnx_path(name)))
    train, test = load("digits", "train"), load("digits", "test")
    res = snn_onnx.convert(ann, time_steps=128, neuron="signgd", data=train.x,
                           calibration=CalibrationConfig(num_samples=256, per_channel=True), parity_samples=32)
    ann_logits = ort.InferenceSession(str(onnx_path(name)), providers=["CPUExecutionProvider"]).run(
        None, {"input": test.x})[0]
    snn_logits = snn_onnx.Session(res.model).run(test.x, spike_counts=False).outputs["logits"]
    acc_ann = float(np.mean(ann_logits.argmax(1) == test.y))
    acc_snn = float(np.mean(snn_logits.argmax(1) == test.y))
    stored = float(next(p.value for p in ann.metadata_props if p.key == "snn_onnx.example.test_accuracy"))
    assert acc_ann == pytest.approx(stored, abs=1e-6)
    assert acc_snn >= acc_ann - 0.01, (acc_ann, acc_snn)

"""Digits (real data): the spine issue's accuracy criteria on the bundled example."""

from __future__ import annotations

import onnx
import pytest

pytest.importorskip("sklearn", reason="the digits data ships with scikit-learn")

from snn_onnx import data  # noqa: E402
from snn_onnx.evaluate import evaluate  # noqa: E402
from snn_onnx_models import EXAMPLE_LEVELS, example_model_path  # noqa: E402


def test_digits_paraif_equals_ann_at_t_eq_l_and_if_within_one_point_at_32():
    ann = onnx.load(str(example_model_path()))
    test, train = data.load("digits", split="test"), data.load("digits", split="train", limit=256)
    res = evaluate(ann, test.x, test.y, train.x, time_steps=(EXAMPLE_LEVELS, 32), neurons=("paraif", "if"))
    rows = {(r.neuron, r.time_steps): r for r in res.rows}
    para = rows[("paraif", EXAMPLE_LEVELS)]
    assert para.snn_accuracy == para.ann_accuracy and para.agreement == 1.0
    assert abs(rows[("if", 32)].snn_accuracy - res.ann_accuracy) <= 0.01
    assert res.ann_accuracy >= 0.96

"""Sharded evaluation on Ray (issue 10): a local Ray cluster with 2 workers, started inside
the test, gives exactly the single-process numbers: accuracy per T, agreement, firing rates,
SOPs, energy and the parity of the mean output, for the collapsed (ParaIF) and the
step-by-step (IF) engines, over several groups of SNNs."""

from __future__ import annotations

import sys

import numpy as np
import onnx
import pytest

from snn_onnx import data
from snn_onnx.energy import EnergyConfig
from snn_onnx.evaluate import evaluate
from snn_onnx.runtime import ray_eval
from snn_onnx_models import example_model_path


def test_without_ray_the_option_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(Exception, match=r"pip install 'snn-onnx\[ray\]'"):
        ray_eval.import_ray()


def test_groups_bound_bytes():
    sizes = [100, 200, 300, 50]
    old = ray_eval.GROUP_BYTES
    try:
        ray_eval.GROUP_BYTES = 350
        assert ray_eval._groups(list(range(4)), lambda i: sizes[i]) == [[0, 1], [2, 3]]
        ray_eval.GROUP_BYTES = 10
        assert ray_eval._groups(list(range(4)), lambda i: sizes[i]) == [[0], [1], [2], [3]]  # one per pass at least
    finally:
        ray_eval.GROUP_BYTES = old


def test_ray_shards_give_identical_numbers(monkeypatch):
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'snn-onnx[ray]'")
    ann = onnx.load(str(example_model_path()))
    test, train = data.load("digits", split="test", limit=200), data.load("digits", split="train", limit=64)
    kw = dict(time_steps=(4, 8), neurons=("paraif", "if"), batch_size=16, energy=EnergyConfig())
    local = evaluate(ann, test.x, test.y, train.x, **kw)
    monkeypatch.setattr(ray_eval, "GROUP_BYTES", 700_000)  # two Ray Data passes (each digits SNN + its counts: 0.25-0.4 MB)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             object_store_memory=200 * 1024 * 1024)
    try:
        sharded = evaluate(ann, test.x, test.y, train.x, ray=ray_eval.RayConfig(workers=2), **kw)
        assert ray.is_initialized()  # a cluster it did not start is left running
    finally:
        ray.shutdown()
    assert [r.engine for r in local.rows] == ["collapsed", "collapsed", "steps", "steps"]
    assert sharded.rows == local.rows
    assert sharded.ann_accuracy == local.ann_accuracy and sharded.samples == local.samples == 200
    assert all(r.sops > 0 and r.energy_uj > 0 and r.firing_rate > 0 for r in local.rows)
    assert sharded.details["ray"]["workers"] == 2

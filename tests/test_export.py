"""Model sources: timm names, module:factory paths with checkpoints, torch modules."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="exporting from PyTorch needs torch")

from click.testing import CliRunner  # noqa: E402
from snn_onnx_cli.main import cli  # noqa: E402

import snn_onnx  # noqa: E402
from snn_onnx import data  # noqa: E402
from snn_onnx.errors import ModelLoadError  # noqa: E402
from snn_onnx_models import example_weights_path  # noqa: E402


def test_module_factory_with_checkpoint_matches_the_bundled_example(tmp_path):
    pytest.importorskip("sklearn")
    out = tmp_path / "digits.snn.onnx"
    res = CliRunner().invoke(cli, [
        "convert", "snn_onnx_models.digits_cnn:DigitsQCFSCNN", "--checkpoint", str(example_weights_path()),
        "--input-shape", "1,8,8", "--data", "digits", "-T", "8", "-o", str(out), "--quiet",
    ])
    assert res.exit_code == 0, res.output
    test = data.load("digits", split="test", limit=200)
    logits = snn_onnx.Session(out).run(test.x).outputs["logits"]
    assert np.mean(logits.argmax(1) == test.y) > 0.95


def test_timm_name_with_qcfs_levels(tmp_path):
    pytest.importorskip("timm")
    out = tmp_path / "r18.snn.onnx"
    res = CliRunner().invoke(cli, [
        "convert", "resnet18", "--input-shape", "3,32,32", "--num-classes", "10", "--qcfs-levels", "4",
        "-T", "4", "-o", str(out), "--quiet",
    ])
    assert res.exit_code == 0, res.output
    assert "argmax agreement 100.00%" in res.output
    meta = snn_onnx.Session(out).metadata
    assert len(meta["sites"]) == 17 and {s["kind"] for s in meta["sites"]} == {"staircase"}


def test_torch_module_needs_input_shape_and_bad_specs_are_named():
    with pytest.raises(ModelLoadError, match="needs input_shape"):
        snn_onnx.convert(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU()), time_steps=2)
    with pytest.raises(ModelLoadError, match="neither an .onnx file"):
        snn_onnx.convert("not_a_model_name_xyz", time_steps=2, input_shape=(3, 8, 8))
    with pytest.raises(ModelLoadError, match="cannot import model factory 'nosuchpkg.mod:make'"):
        snn_onnx.convert("nosuchpkg.mod:make", time_steps=2, input_shape=(3, 8, 8))


def test_torch_module_converts():
    net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    x = np.random.default_rng(0).uniform(-1, 1, (32, 6)).astype(np.float32)
    res = snn_onnx.convert(net, time_steps=32, neuron="if", data=x, input_shape=(6,))
    assert res.parity["logits"]["cosine_mean"] > 0.98

"""snn_onnx_models: QCFS math and its exported ONNX pattern, qcfsify / calibration, timm QCFS
variants (dynamo export, ONNX Runtime at batch 1 and 7) and the bundled digits example.

Set SNN_ONNX_SLOW_TESTS=1 to also export the full-size timm vgg16 (540 MB) and resnet34.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

try:
    import snn_onnx_models
except ImportError:  # running from a checkout without PYTHONPATH=models
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
    import snn_onnx_models

from snn_onnx.ops.reference import qcfs as qcfs_ref

SLOW = os.environ.get("SNN_ONNX_SLOW_TESTS", "") not in ("", "0")


def _torch():
    return pytest.importorskip("torch", reason="QCFS models need torch (pip install 'snn-onnx[torch]')")


# --------------------------------------------------------------------------- helpers


def _export(model, x, path):
    """The export incantation documented in snn_onnx_models.timm_qcfs."""
    import torch

    torch.onnx.export(
        model,
        (x,),
        str(path),
        dynamo=True,
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        input_names=["input"],
        output_names=["logits"],
        verbose=False,
    )
    return path


def _qcfs_chains(path):
    """Every QCFS site of an exported graph as the documented five-node chain:
    returns [(c1, c2, shift, lo, hi, first Mul, last Mul)] and asserts the structure."""
    import onnx
    from onnx import numpy_helper

    g = onnx.load(str(path), load_external_data=False).graph
    small = {i.name: numpy_helper.to_array(i) for i in g.initializer if not i.external_data}
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    assert not [n for n in g.node if n.op_type == "Constant"], "constants must be initializers"
    chains = []
    for floor in (n for n in g.node if n.op_type == "Floor"):
        add = producer[floor.input[0]]
        mul1 = producer[add.input[0]]
        (clip,) = consumers[floor.output[0]]
        (mul2,) = consumers[clip.output[0]]
        assert [mul1.op_type, add.op_type, clip.op_type, mul2.op_type] == ["Mul", "Add", "Clip", "Mul"]
        assert len(consumers[mul1.output[0]]) == 1 and len(consumers[add.output[0]]) == 1
        assert mul2.input[0] == clip.output[0] and clip.input[0] == floor.output[0]
        c1, shift = small[mul1.input[1]], small[add.input[1]]
        lo, hi, c2 = small[clip.input[1]], small[clip.input[2]], small[mul2.input[1]]
        for c in (c1, shift, lo, hi, c2):
            assert c.dtype == np.float32
        assert shift.shape == lo.shape == hi.shape == ()
        chains.append((c1, c2, float(shift), float(lo), float(hi), mul1, mul2))
    return chains


# --------------------------------------------------------------------------- package import


def test_package_import_does_not_import_torch():
    code = (
        "import sys, snn_onnx_models as m; "
        "assert 'torch' not in sys.modules, 'torch imported'; "
        "p = m.example_model_path(); print(p.name, m.EXAMPLE_LEVELS)"
    )
    env = dict(os.environ)
    models_dir = str(Path(snn_onnx_models.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([models_dir, env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["digits_qcfs_cnn.onnx", "8"]


# --------------------------------------------------------------------------- QCFS math


@pytest.mark.parametrize("levels", [1, 3, 4, 5, 8, 16, 255])
def test_qcfs_eval_matches_reference(levels):
    torch = _torch()
    from snn_onnx_models.qcfs import QCFS

    rng = np.random.default_rng(levels)
    x = (rng.standard_normal((3, 5, 4, 4)) * 2).astype(np.float32)
    # include exact level boundaries and values past the clip
    x[0, 0, 0, :] = np.array([0.0, 1.3 / levels * 0.5, 1.3, -0.2], np.float32)
    x[1] = (rng.integers(-2, levels + 3, size=x[1].shape) - 0.5) * np.float32(1.3 / levels)
    q = QCFS(levels=levels, threshold=1.3).eval()
    with torch.no_grad():
        y = q(torch.from_numpy(x)).numpy()
    assert np.array_equal(y, qcfs_ref(x, np.float32(1.3), levels))
    # per channel
    lam = rng.uniform(0.5, 3.0, size=5).astype(np.float32)
    qc = QCFS(levels=levels, num_channels=5).eval()
    with torch.no_grad():
        qc.threshold.copy_(torch.from_numpy(lam))
        y = qc(torch.from_numpy(x)).numpy()
    assert np.array_equal(y, qcfs_ref(x, lam.reshape(1, 5, 1, 1), levels))
    # outputs are on the grid {0, λ/L, …, λ}
    assert y.min() >= 0 and np.all(y <= lam.reshape(1, 5, 1, 1))


def test_qcfs_train_mode_values_and_straight_through_gradients():
    torch = _torch()
    from snn_onnx_models.qcfs import QCFS

    q = QCFS(levels=4, threshold=2.0)
    x = torch.linspace(-1, 3, 41, requires_grad=True)
    y = q(x)  # train mode (the module's default)
    ref = qcfs_ref(x.detach().numpy(), np.float32(2.0), 4)
    np.testing.assert_allclose(y.detach().numpy(), ref, atol=1e-6)
    y.sum().backward()
    g = x.grad.numpy()
    xs = x.detach().numpy()
    assert np.all(g[(xs > 0.01) & (xs < 1.99)] == 1.0)  # straight through inside (0, λ)
    assert np.all(g[(xs < 0) | (xs > 2)] == 0.0)
    assert q.threshold.grad is not None and float(q.threshold.grad) > 0  # clipped region pulls λ


def test_qcfs_rejects_bad_arguments():
    _torch()
    from snn_onnx_models.qcfs import QCFS

    for kw in ({"levels": 0}, {"levels": 2.5}, {"threshold": 0.0}, {"num_channels": 0}):
        with pytest.raises(ValueError):
            QCFS(**kw)


# --------------------------------------------------------------------------- exported pattern


def test_exported_qcfs_pattern(tmp_path):
    torch = _torch()
    from torch import nn

    import onnxruntime as ort
    from snn_onnx_models.qcfs import QCFS

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        QCFS(levels=7, threshold=1.7),
        nn.Conv2d(4, 4, 3, padding=1),
        QCFS(levels=5, num_channels=4),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 5),
        QCFS(levels=4, num_channels=5),
        nn.Linear(5, 3),
        QCFS(levels=7, threshold=1.7),  # same λ and L as the first site: constants get shared
    ).eval()
    with torch.no_grad():
        model[3].threshold.copy_(torch.tensor([0.5, 1.0, 2.0, 3.0]))
        model[6].threshold.copy_(torch.tensor([0.3, 0.6, 0.9, 1.2, 1.5]))
    x = torch.randn(2, 3, 6, 6)
    path = _export(model, x, tmp_path / "q.onnx")
    chains = _qcfs_chains(path)
    assert len(chains) == 4
    sites = [model[1], model[3], model[6], model[8]]
    want_shapes = [(), (1, 4, 1, 1), (1, 5), ()]
    for (c1, c2, shift, lo, hi, _, _), q, shape in zip(chains, sites, want_shapes):
        lam = q.threshold.detach().numpy().astype(np.float32)
        L = np.float32(q.levels)
        assert c1.shape == c2.shape == shape
        assert np.array_equal(c1.reshape(-1), (L / lam).reshape(-1))
        assert np.array_equal(c2.reshape(-1), (lam / L).reshape(-1))
        assert (shift, lo, hi) == (0.5, 0.0, float(q.levels))
        # the converter's recovery rule: L = hi, λ = c2 * L
        np.testing.assert_allclose((c2 * np.float32(hi)).reshape(-1), lam.reshape(-1), rtol=1e-6)
    # ORT at two batch sizes from one export equals the torch module
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for b in (1, 7):
        xb = torch.randn(b, 3, 6, 6, generator=torch.Generator().manual_seed(b))
        with torch.no_grad():
            ref = model(xb).numpy()
        np.testing.assert_allclose(sess.run(None, {"input": xb.numpy()})[0], ref, atol=1e-5)


# --------------------------------------------------------------------------- qcfsify / calibration


def test_qcfsify_replaces_relu_modules_and_errors():
    torch = _torch()
    from torch import nn
    from torch.nn import functional as F

    from snn_onnx_models.qcfs import QCFS, qcfs_modules, qcfsify

    shared = nn.ReLU()
    model = nn.Sequential(
        nn.Linear(4, 4), nn.ReLU(inplace=True), nn.Linear(4, 4), nn.ReLU6(),
        nn.Sequential(nn.Linear(4, 4), shared, nn.Linear(4, 4), shared),
    )
    assert qcfsify(model, levels=4) is model
    assert not any(isinstance(m, (nn.ReLU, nn.ReLU6)) for m in model.modules())
    sites = qcfs_modules(model)
    assert len(sites) == 3  # the shared ReLU became one shared QCFS
    assert model[4][1] is model[4][3]
    assert [float(m.threshold.detach()) for _, m in sites] == [1.0, 6.0, 1.0]
    assert all(isinstance(m, QCFS) and m.levels == 4 for _, m in sites)
    qcfsify(nn.Sequential(nn.ReLU()), 8, init_threshold=3.0)

    class Functional(nn.Module):
        def forward(self, x):
            return F.relu(x)

    with pytest.raises(ValueError, match="no nn.ReLU / nn.ReLU6 module found in Functional"):
        qcfsify(Functional(), 8)
    with pytest.raises(ValueError, match="no nn.ReLU"):
        qcfsify(nn.Sequential(nn.Linear(2, 2), nn.Sigmoid()), 8)
    with pytest.raises(ValueError, match="init_threshold must be > 0"):
        qcfsify(nn.Sequential(nn.ReLU()), 8, init_threshold=0)
    with pytest.raises(ValueError, match="model itself is a ReLU"):
        qcfsify(nn.ReLU(), 8)
    _ = torch


def test_calibrate_thresholds_sequential_and_per_channel():
    torch = _torch()
    from torch import nn

    from snn_onnx_models.qcfs import QCFS, calibrate_thresholds

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 1), QCFS(8), nn.Conv2d(3, 3, 1), QCFS(8)).eval()
    x = torch.randn(16, 2, 5, 5)
    lams = calibrate_thresholds(model, x, percentile=99.0)
    with torch.no_grad():
        a = model[0](x)
        want1 = np.percentile(np.maximum(a.double().numpy(), 0), 99.0)
        b = model[2](model[1](a))  # second site sees the calibrated first site's output
        want2 = np.percentile(np.maximum(b.double().numpy(), 0), 99.0)
    assert float(lams["1"]) == pytest.approx(want1, rel=1e-6)
    assert float(lams["3"]) == pytest.approx(want2, rel=1e-6)
    lams = calibrate_thresholds(model, [x[:8], x[8:]], per_channel=True)
    assert lams["1"].shape == (3,) and model[1].threshold.shape == (3,)
    assert bool(torch.all(model[1].threshold > 0))
    with torch.no_grad():
        model(x)  # per-channel λ broadcast works
    with pytest.raises(ValueError, match="has no QCFS module"):
        calibrate_thresholds(nn.Sequential(nn.Linear(2, 2)), torch.randn(1, 2))


# --------------------------------------------------------------------------- timm variants

TIMM_CASES = [
    ("resnet18", {}),
    # timm's vgg16 head (ConvMlp) upsamples the 1x1 map to 7x7; a narrower head keeps the same
    # graph structure at 1/16 of the 540 MB of weights (full size below with SNN_ONNX_SLOW_TESTS)
    ("vgg16", {"mlp_ratio": 1 / 16}),
]
if SLOW:
    TIMM_CASES += [("resnet34", {}), ("vgg16", {})]


@pytest.mark.parametrize("name,kwargs", TIMM_CASES, ids=[f"{n}{'-small' if k else ''}" for n, k in TIMM_CASES])
def test_timm_qcfs_exports_and_runs(tmp_path, name, kwargs):
    torch = _torch()
    pytest.importorskip("timm", reason="timm variants need timm")
    import onnxruntime as ort
    from snn_onnx_models.qcfs import qcfs_modules
    from snn_onnx_models.timm_qcfs import create_qcfs_timm

    model = create_qcfs_timm(name, levels=8, num_classes=10, img_size=32, **kwargs)
    assert not model.training
    sites = qcfs_modules(model)
    assert sites and all(float(m.threshold.detach()) > 0 for _, m in sites)
    path = _export(model, torch.randn(2, 3, 32, 32), tmp_path / f"{name}.onnx")
    chains = _qcfs_chains(path)
    assert len(chains) == len(sites)  # every activation site exported as the QCFS chain
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].name == "input" and sess.get_outputs()[0].name == "logits"
    for b in (1, 7):
        xb = torch.randn(b, 3, 32, 32, generator=torch.Generator().manual_seed(b))
        with torch.no_grad():
            ref = model(xb).numpy()
        out = sess.run(None, {"input": xb.numpy()})[0]
        assert out.shape == (b, 10)
        np.testing.assert_allclose(out, ref, atol=1e-3 * max(1.0, float(np.abs(ref).max())))


# --------------------------------------------------------------------------- digits example


def test_example_model_file_and_accuracy():
    import onnx
    import onnxruntime as ort

    path = snn_onnx_models.example_model_path()
    assert path.is_file(), f"missing {path}: run models/train_digits.py"
    m = onnx.load(str(path))
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta["snn_onnx.example.dataset"] == "digits"
    assert int(meta["snn_onnx.example.levels"]) == snn_onnx_models.EXAMPLE_LEVELS
    assert float(meta["snn_onnx.example.test_accuracy"]) >= 0.96
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    assert [i.name for i in m.graph.input] == ["input"] and [o.name for o in m.graph.output] == ["logits"]
    assert not any(i.external_data for i in m.graph.initializer)  # one self-contained file
    chains = _qcfs_chains(path)
    assert len(chains) == 3 and all(c[4] == snn_onnx_models.EXAMPLE_LEVELS for c in chains)

    pytest.importorskip("sklearn", reason="the digits data source needs scikit-learn")
    from snn_onnx.data import load

    te = load("digits", "test")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = sess.run(["logits"], {"input": te.x})[0]
    acc = float((logits.argmax(1) == te.y).mean())
    assert acc >= 0.96
    assert f"{acc:.6f}" == meta["snn_onnx.example.test_accuracy"]


def test_example_state_dict_matches_onnx():
    torch = _torch()
    import onnxruntime as ort
    from snn_onnx_models.digits_cnn import DigitsQCFSCNN, load_example_model

    model = load_example_model()
    assert isinstance(model, DigitsQCFSCNN) and model.levels == snn_onnx_models.EXAMPLE_LEVELS
    assert 20_000 <= sum(p.numel() for p in model.parameters()) <= 60_000
    x = np.random.default_rng(0).uniform(0, 1, (5, 1, 8, 8)).astype(np.float32)
    sess = ort.InferenceSession(str(snn_onnx_models.example_model_path()), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    out = sess.run(None, {"input": x})[0]
    # BatchNorm is folded into Conv in the ONNX file: a rounding difference may move one QCFS
    # value by one level, so compare predictions and loosely the logits
    assert np.array_equal(out.argmax(1), ref.argmax(1))
    np.testing.assert_allclose(out, ref, atol=0.1)

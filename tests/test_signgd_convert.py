"""The SignGD conversion mode (``neuron="signgd"``, docs/signgd.md): networks with GELU,
LayerNorm, MaxPool, SiLU, Softmax and products convert with every non-linearity spiking, the
SNN's error against the ANN falls as T grows, what has no SignGD form is refused by name or
compensated on request, options of other modes are refused, and the metadata, ``info`` and the
energy accounting describe what was built. The SNNs run in ONNX Runtime with the library."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import snn_onnx
from snn_onnx import metadata as md
from snn_onnx.conversion.calibrate import CalibrationConfig
from snn_onnx.conversion.signgd_mode import SignGDConfig, read_forms
from snn_onnx.errors import ConversionError

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

CAL = CalibrationConfig(num_samples=32, batch_size=32)


class ConvNet(nn.Module):
    """Conv, channels-last LayerNorm, GELU, padded MaxPool, ReLU, SiLU, Linear."""

    def __init__(self):
        super().__init__()
        self.c1, self.ln = nn.Conv2d(1, 6, 3, padding=1), nn.LayerNorm(6)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.c2, self.fc = nn.Conv2d(6, 8, 3, padding=1), nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        x = F.gelu(self.ln(self.c1(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2))
        x = F.relu(self.c2(self.pool(x)))
        return self.fc(F.silu(x).flatten(1))


class Attention(nn.Module):
    """One pre-norm attention block and a GELU MLP: Softmax of Q·Kᵀ, attn·V, LayerNorm."""

    def __init__(self, d: int = 8):
        super().__init__()
        self.inp, self.qkv, self.proj = nn.Linear(4, d), nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.n1, self.n2, self.fc1, self.fc2 = nn.LayerNorm(d), nn.LayerNorm(d), nn.Linear(d, 2 * d), nn.Linear(2 * d, d)
        self.head = nn.Linear(d, 3)

    def forward(self, x):
        h = self.inp(x)
        q, k, v = self.qkv(self.n1(h)).chunk(3, dim=-1)
        a = torch.softmax(q @ k.transpose(-1, -2) / 8 ** 0.5, dim=-1)
        h = h + self.proj(a @ v)
        h = h + self.fc2(F.gelu(self.fc1(self.n2(h))))
        return self.head(h.mean(1))


def _torch_seeded(module_cls, *args):
    torch.manual_seed(0)
    return module_cls(*args).eval()


def _rel_errors(res, ann: onnx.ModelProto, x: np.ndarray, steps: list[int]) -> list[float]:
    import onnxruntime as ort

    ref = ort.InferenceSession(ann.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    out = snn_onnx.Session(res.model).run(x)
    per_step = out.per_step["logits"]
    scale = float(np.abs(ref).max())
    return [float(np.abs(per_step[t - 1] - ref).max()) / scale for t in steps]


@pytest.fixture(scope="module")
def convnet():
    from snn_onnx.export.torch_export import export_module

    ann = export_module(_torch_seeded(ConvNet), (1, 8, 8), exporter="legacy")
    x = np.random.default_rng(0).standard_normal((32, 1, 8, 8)).astype(np.float32)
    res = snn_onnx.convert(ann, time_steps=256, neuron="signgd", data=x, calibration=CAL, parity_samples=16)
    return ann, x, res


def test_every_nonlinearity_spikes_and_error_falls_with_T(snn_library, convnet):
    ann, x, res = convnet
    forms = read_forms(res.model)["forms"]
    assert {f["form"] for f in forms} == {"signgd"}
    got = sorted((f["function"], f["kind"]) for f in forms)
    assert got == sorted([("square", "unary"), ("div_sqrt", "binary"), ("gelu", "unary"), ("max", "pool"),
                          ("relu", "unary"), ("silu", "unary")])
    ops = {n.op_type for n in res.model.graph.node}
    assert not ops & {"LayerNormalization", "MaxPool", "Relu", "Erf", "Sigmoid", "TemporalMean", "TemporalDelta"}
    errs = _rel_errors(res, ann, x[:16], [32, 64, 128, 256])
    assert all(a > b for a, b in zip(errs, errs[1:])), errs
    assert errs[-1] < 1e-3, errs


def test_step_t_is_the_T_t_snn(snn_library, convnet):
    """Nothing depends on T but the number of steps: step 32 of the T = 256 SNN is the T = 32 SNN."""
    ann, x, res = convnet
    short = snn_onnx.convert(ann, time_steps=32, neuron="signgd", data=x, calibration=CAL, parity_samples=4)
    a = snn_onnx.Session(res.model).run(x[:4]).per_step["logits"][31]
    b = snn_onnx.Session(short.model).run(x[:4]).outputs["logits"]
    np.testing.assert_array_equal(a, b)


class Pools(nn.Module):
    """MaxPool with stride 1 and padding, with ceil mode on an odd size, with dilation; a
    global max; a max over one spatial axis (ReduceMax)."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3)
        self.fc = nn.Linear(12, 5)

    def forward(self, x):
        h = F.max_pool2d(self.c1(x), 3, stride=1, padding=1)
        h = F.max_pool2d(self.c2(h), 2, stride=2, ceil_mode=True)  # 5x5 -> 3x3
        h = F.max_pool2d(h, 2, stride=1, dilation=2)  # 3x3 -> 1x1 ... with dilation 2
        g = F.adaptive_max_pool2d(self.c1(x), 1).flatten(1)
        m = torch.amax(self.c1(x)[:, :, :4, :4], dim=(2,)).flatten(1)[:, :8]
        return self.fc(torch.cat([g, m + h.flatten(1).repeat(1, 2)], dim=1))


def test_pooling_trees(snn_library):
    from snn_onnx.export.torch_export import export_module

    ann = export_module(_torch_seeded(Pools), (1, 7, 7), exporter="legacy")
    x = np.random.default_rng(3).standard_normal((32, 1, 7, 7)).astype(np.float32)
    res = snn_onnx.convert(ann, time_steps=256, neuron="signgd", data=x, calibration=CAL, parity_samples=8)
    kinds = [(f["kind"], f["ops"]) for f in read_forms(res.model)["forms"]]
    # torch's exporter writes the adaptive (global) max pool as a MaxPool over the whole map
    assert kinds.count(("pool", ["MaxPool"])) == 4 and ("reduce_max", ["ReduceMax"]) in kinds
    errs = _rel_errors(res, ann, x[:8], [32, 64, 128, 256])
    assert all(a > b for a, b in zip(errs, errs[1:])), errs
    assert errs[-1] < 1e-3, errs


def test_kernels_compute_the_reference(snn_library, convnet):
    """The converted graph run in ONNX Runtime equals the same graph run with the NumPy references."""
    from snn_onnx.ops.reference_session import run_reference

    _, x, res = convnet
    model = onnx.ModelProto()
    model.CopyFrom(res.model)
    for node in model.graph.node:  # a shorter run: the same graph at T = 16
        for a in node.attribute:
            if a.name == "time_steps":
                a.i = 16
    for init in model.graph.initializer:
        if init.name.startswith("time_batch_split"):
            init.CopyFrom(onnx.numpy_helper.from_array(np.array([16, -1], np.int64), init.name))
        if init.name == "last_step":
            init.CopyFrom(onnx.numpy_helper.from_array(np.array(15, np.int64), init.name))
    names = [o.name for o in model.graph.output]
    got = snn_onnx.Session(model).inner.run(names, {"input": x[:3]})
    ref = run_reference(model, {"input": x[:3]}, names)
    for name, g, r in zip(names, got, ref):
        if name.endswith("/spike_counts"):
            np.testing.assert_array_equal(g, r, err_msg=name)
        else:
            np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5, err_msg=name)


def test_attention_block(snn_library):
    from snn_onnx.export.torch_export import export_module

    ann = export_module(_torch_seeded(Attention), (5, 4), exporter="legacy")
    x = np.random.default_rng(1).standard_normal((32, 5, 4)).astype(np.float32)
    res = snn_onnx.convert(ann, time_steps=256, neuron="signgd", data=x, calibration=CAL, parity_samples=8)
    kinds = sorted((f["function"], f["kind"]) for f in read_forms(res.model)["forms"])
    assert ("mul", "matmul") in kinds and ("exp", "unary") in kinds and ("div", "binary") in kinds
    errs = _rel_errors(res, ann, x[:8], [32, 64, 128, 256])
    assert all(a > b for a, b in zip(errs, errs[1:])), errs
    assert errs[-1] < 1e-2, errs


class WithSoftplus(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(6, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(F.softplus(F.gelu(self.fc1(x))))


def test_no_signgd_form_is_refused_by_name_or_compensated(snn_library):
    from snn_onnx.export.torch_export import export_module

    ann = export_module(_torch_seeded(WithSoftplus), (6,), exporter="legacy")
    x = np.random.default_rng(2).standard_normal((32, 6)).astype(np.float32)
    with pytest.raises(ConversionError) as info:
        snn_onnx.convert(ann, time_steps=16, neuron="signgd", data=x, calibration=CAL)
    msg = str(info.value)
    assert "Softplus" in msg and "no SignGD form" in msg and "allow_compensation" in msg
    res = snn_onnx.convert(ann, time_steps=256, neuron=SignGDConfig(allow_compensation=True), data=x, calibration=CAL,
                           parity_samples=8)
    forms = {f["form"]: f for f in read_forms(res.model)["forms"]}
    assert set(forms) == {"signgd", "compensated"} and forms["compensated"]["ops"] == ["Softplus"]
    assert res.compensated == [forms["compensated"]["nonlinearity"]]
    ops = [n.op_type for n in res.model.graph.node]
    assert "Softplus" in ops and ops.count("SignGDDecode") == 2 and "SignGDEncode" in ops
    errs = _rel_errors(res, ann, x[:8], [32, 64, 128, 256])
    assert all(a > b for a, b in zip(errs, errs[1:])), errs


@pytest.mark.parametrize("kwargs, fragment", [
    ({"mode": "cnn"}, "mode='cnn'"),
    ({"fused": True}, "fused"),
    ({"event_inputs": ("input",)}, "event_inputs"),
    ({"parity_gate": False}, "parity_gate"),
])
def test_options_of_other_modes_are_refused(kwargs, fragment):
    from snn_onnx.conversion.pipeline import convert

    with pytest.raises(ConversionError, match="do not apply to neuron='signgd'") as info:
        convert(onnx.ModelProto(), time_steps=4, neuron="signgd", **kwargs)
    assert fragment in str(info.value)


def test_allow_compensation_is_refused_for_other_neurons():
    from snn_onnx.conversion.pipeline import convert

    with pytest.raises(ConversionError, match="allow_compensation applies to neuron='signgd' only"):
        convert(onnx.ModelProto(), time_steps=4, neuron="paraif", allow_compensation=True)


def test_metadata_and_energy(snn_library, convnet):
    from snn_onnx.energy import EnergyModel

    _, x, res = convnet
    meta = md.read(res.model)
    assert meta["mode"] == "signgd" and meta["neuron"]["kind"] == "signgd"
    assert meta["neuron"]["eta0"] == 0.15 and meta["neuron"]["gamma"] == 0.95
    assert all(s["op"].startswith("SignGDNeuron") and s["counts"] for s in meta["sites"])
    out = snn_onnx.Session(res.model).run(x[:2])
    em = EnergyModel(res.model, {"input": x[:1]})
    result = em.account({s: out.spike_counts[s] for s in em.sources}, samples=2)
    roles = {(l.op, l.role, l.counting) for l in result.layers}
    assert ("Conv", "synaptic", "SOP") in roles  # c2 reads the pooled spikes
    assert ("Gemm", "synaptic", "SOP") in roles  # the head reads the SiLU neurons' spikes
    assert ("SignGDNeuron", "neuron", "MAC") in roles and ("SignGDEncode", "neuron", "MAC") in roles
    neuron_layers = [l for l in result.layers if l.op == "SignGDNeuron"]
    assert all(l.macs.sum() > 0 for l in neuron_layers)
    assert result.sops > 0


@pytest.mark.parametrize("args, fragment", [
    (["--calib-method", "mse"], "--calib-method mse does not apply to --neuron signgd"),
    (["--calib-method", "ltb"], "--calib-method ltb does not apply to --neuron signgd"),
    (["--bias-correction"], "--bias-correction does not apply"),
    (["--threshold-shift"], "--threshold-shift does not apply"),
])
def test_cli_refuses_relu_calibration_and_corrections(tmp_path, args, fragment):
    from click.testing import CliRunner

    from snn_onnx_cli.main import cli

    out = tmp_path / "x.snn.onnx"
    r = CliRunner().invoke(cli, ["convert", "--neuron", "signgd", "-T", "4", "-o", str(out), "--quiet", *args])
    assert r.exit_code == 2 and fragment in r.output, r.output
    assert not out.exists()


def test_library_refuses_corrections_and_reads_mse_as_max(snn_library, convnet):
    ann, x, _ = convnet
    with pytest.raises(ConversionError, match="corrections"):
        snn_onnx.convert(ann, time_steps=4, neuron="signgd", data=x,
                         corrections=snn_onnx.CorrectionConfig(bias=True))
    res = snn_onnx.convert(ann, time_steps=4, neuron="signgd", data=x,
                           calibration=CalibrationConfig(method="mse", num_samples=16, batch_size=16))
    assert res.calibration["method"] == "max"


def test_potentials_are_refused_with_a_reason(snn_library, convnet):
    """SignGD ops have no potentials output (docs/ops.md): asking for them is refused, not ignored."""
    from snn_onnx.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="no IFNeuron, ParaIFNeuron or MultiThresholdNeuron"):
        snn_onnx.Session(convnet[2].model, potentials=True)


def test_cli_convert_and_info(snn_library, tmp_path):
    from click.testing import CliRunner

    from snn_onnx_cli.main import cli
    from snn_onnx_models.digits_signgd import onnx_path

    out = tmp_path / "c.snn.onnx"
    runner = CliRunner()
    r = runner.invoke(cli, ["convert", str(onnx_path("digits_convnext")), "--neuron", "signgd", "-T", "16",
                            "--data", "digits", "--num-calib", "64", "-o", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["info", str(out)])
    assert r.exit_code == 0, r.output
    assert "SignGD: η_t = 0.15·0.95^(t−1)" in r.output and "non-linearities: signgd" in r.output
    assert "SignGD gelu (unary, 1 neuron)" in r.output and "SignGD div_sqrt (binary" in r.output
    r = runner.invoke(cli, ["convert", str(onnx_path("digits_convnext")), "--neuron", "signgd", "--leak", "0.9",
                            "-o", str(tmp_path / "x.onnx")])
    assert r.exit_code != 0 and "--leak" in r.output and "signgd" in r.output
    r = runner.invoke(cli, ["convert", str(onnx_path("digits_convnext")), "--allow-compensation",
                            "-o", str(tmp_path / "y.onnx")])
    assert r.exit_code != 0 and "--allow-compensation applies to --neuron signgd only" in r.output


def _standin(name: str):
    """The full timm convnext_atto; Mixer and ResMLP from timm's own classes with the named
    models' blocks (ResMLP: ResBlock and Affine norms, MLP ratio 4), at 32×32, patches of 8,
    2 blocks of width 32 (the full ones are in benchmarks/signgd.py)."""
    from timm.models.mlp_mixer import MlpMixer, ResBlock

    from snn_onnx.export.torch_export import build_module

    small = dict(num_classes=10, img_size=32, patch_size=8, num_blocks=2, embed_dim=32)
    if name == "convnext_atto":
        return build_module(name, num_classes=10)
    if name == "mixer_s16_224":
        return MlpMixer(**small)
    from timm.models.mlp_mixer import Affine as ResAffine

    return MlpMixer(**small, mlp_ratio=4, block_layer=ResBlock, norm_layer=ResAffine)


@pytest.mark.parametrize("name", ["convnext_atto", "mixer_s16_224", "resmlp_12_224"])
def test_timm_architectures(snn_library, name):
    """convnext_atto, MLP-Mixer and ResMLP (random init) convert with every non-linearity
    spiking, and the error falls with T."""
    from snn_onnx.export.torch_export import export_module

    torch.manual_seed(0)
    module = _standin(name).eval()
    head = module.get_classifier()
    if float(head.weight.detach().abs().max()) == 0.0:  # timm zero-initialises these heads
        torch.nn.init.normal_(head.weight, std=0.02)
    ann = export_module(module, (3, 32, 32), exporter="legacy")
    x = np.random.default_rng(4).standard_normal((12, 3, 32, 32)).astype(np.float32)
    res = snn_onnx.convert(ann, time_steps=128, neuron="signgd", data=x[4:], parity_samples=4,
                           calibration=CalibrationConfig(num_samples=8, batch_size=8))
    forms = read_forms(res.model)["forms"]
    assert {f["form"] for f in forms} == {"signgd"}
    functions = {f["function"] for f in forms}
    assert "gelu" in functions
    if name != "resmlp_12_224":  # ResMLP normalises with an affine map, not LayerNorm
        assert {"square", "div_sqrt"} <= functions
    errs = _rel_errors(res, ann, x[:4], [32, 64, 128])
    assert errs[0] > errs[1] > errs[2], errs

"""SOPs are exact: the runtime's count equals an independent brute force in PyTorch.

For every synaptic layer fed by spikes, the brute force perturbs one element of the spiking
layer's output at a time, counts the layer's outputs that change, and weights that fan-out
by the spikes recorded in the spike tensors of a debug run (not the count outputs). Layers fed
by analog values must be counted as dense MACs, T times per inference, with a stated reason.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the brute-force SOP count runs in PyTorch")

import energy_helpers as H  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from snn_onnx.energy import EnergyConfig, EnergyModel  # noqa: E402
from snn_onnx.energy.fanout import axis_reach, conv_fanout  # noqa: E402

H.load_torch()
T = 4
B = 5


def test_axis_reach_worked_example() -> None:
    # docs/energy.md: length 5, kernel 3, stride 2, padding 1 -> 3 outputs reading
    # {-1,0,1}, {1,2,3}, {3,4,5}: inputs 0..4 are read 1, 2, 1, 2, 1 times
    assert axis_reach(5, 3, 3, 2, 1, 1).tolist() == [1, 2, 1, 2, 1]
    # dilation 2, no padding: windows {0,2,4} and {1,3,5} over 6 inputs
    assert axis_reach(6, 2, 3, 1, 0, 2).tolist() == [1, 1, 1, 1, 1, 1]
    # a 1x1 conv with 4 output channels in 2 groups: every input reaches 2 outputs
    f = conv_fanout((1, 4, 3, 3), (1, 4, 3, 3), (4, 2, 1, 1), group=2)
    assert np.all(f == 2)


class Convs(nn.Module):
    """Strides, padding, groups, dilation, a non-square kernel and a stride larger than the
    kernel (inputs no window reads), then Flatten -> Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 12, 3, stride=2, padding=2, dilation=2, groups=4)
        self.conv3 = nn.Conv2d(12, 6, (2, 3), stride=(1, 2), padding=(0, 1), groups=3)
        self.conv4 = nn.Conv2d(6, 6, 2, stride=3)
        self.fc = nn.Linear(12, 5)
        self.relu1, self.relu2, self.relu3, self.relu4 = nn.ReLU(), nn.ReLU(), nn.ReLU(), nn.ReLU()

    def forward(self, x):
        s1 = self.relu1(self.conv1(x))
        s2 = self.relu2(self.conv2(s1))
        s3 = self.relu3(self.conv3(s2))
        s4 = self.relu4(self.conv4(s3))
        return self.fc(torch.flatten(s4, 1))

    def synaptic(self) -> dict:
        return {
            "conv2": lambda relu1: self.conv2(relu1),
            "conv3": lambda relu2: self.conv3(relu2),
            "conv4": lambda relu3: self.conv4(relu3),
            "fc": lambda relu4: self.fc(torch.flatten(relu4, 1)),
        }


class Routes(nn.Module):
    """Spikes reaching synaptic layers through AvgPool, Add of two spike streams, Concat (of
    channels and along the width), Pad, Slice, Transpose, Flatten/Transpose (a token-wise
    Linear: MatMul), GlobalAveragePool and ReduceMean (a Pad with a non-zero value, which the
    converter cannot fold into the next Conv). The convolutions after them have
    position-dependent fan-outs (padding, strides), so a spike routed to the wrong position
    costs a different number of SOPs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.conv_pool = nn.Conv2d(4, 3, 3, padding=1)
        self.conv_add = nn.Conv2d(4, 3, 3, stride=2, padding=1)
        self.conv_cat = nn.Conv2d(8, 6, 3, stride=2, padding=1, groups=2)
        self.conv_wcat = nn.Conv2d(4, 3, 3, stride=2, padding=1)
        self.conv_tr = nn.Conv2d(4, 3, (3, 2), stride=(2, 1), padding=(1, 0))
        self.conv_pad = nn.Conv2d(4, 3, 3)
        self.conv_slice = nn.Conv2d(4, 3, 2)
        self.tok = nn.Linear(4, 5)
        self.fc = nn.Linear(3 + 3 + 6 + 3 + 3 + 3 + 3 + 5, 4)
        self.pool = nn.AvgPool2d(2)
        for name in ("relu1", "relu2", "relu_pool", "relu_add", "relu_cat", "relu_wcat", "relu_tr", "relu_pad",
                     "relu_slice", "relu_tok"):
            setattr(self, name, nn.ReLU())

    def _head(self, relu_pool, relu_add, relu_cat, relu_wcat, relu_tr, relu_pad, relu_slice, relu_tok):
        maps = (relu_pool, relu_add, relu_cat, relu_wcat, relu_tr, relu_pad, relu_slice)
        gap = [F.adaptive_avg_pool2d(v, 1).flatten(1) for v in maps]
        return self.fc(torch.cat(gap + [relu_tok.mean(1)], 1))

    def forward(self, x):
        s1 = self.relu1(self.conv1(x))
        s2 = self.relu2(self.conv2(s1))
        return self._head(
            self.relu_pool(self.conv_pool(self.pool(s2))),
            self.relu_add(self.conv_add(s1 + s2)),
            self.relu_cat(self.conv_cat(torch.cat([s1, s2], 1))),
            self.relu_wcat(self.conv_wcat(torch.cat([s1, s2], 3))),
            self.relu_tr(self.conv_tr(s2.transpose(2, 3))),
            self.relu_pad(self.conv_pad(F.pad(s2, (1, 2, 0, 1), value=0.25))),
            self.relu_slice(self.conv_slice(s2[:, :, 1:, ::2])),
            self.relu_tok(self.tok(s1.flatten(2).transpose(1, 2))),
        )

    def synaptic(self) -> dict:
        return {
            "conv2": lambda relu1: self.conv2(relu1),
            "conv_pool": lambda relu2: self.conv_pool(self.pool(relu2)),
            "conv_add": lambda relu1, relu2: self.conv_add(relu1 + relu2),
            "conv_cat": lambda relu1, relu2: self.conv_cat(torch.cat([relu1, relu2], 1)),
            "conv_wcat": lambda relu1, relu2: self.conv_wcat(torch.cat([relu1, relu2], 3)),
            "conv_tr": lambda relu2: self.conv_tr(relu2.transpose(2, 3)),
            "conv_pad": lambda relu2: self.conv_pad(F.pad(relu2, (1, 2, 0, 1), value=0.25)),
            "conv_slice": lambda relu2: self.conv_slice(relu2[:, :, 1:, ::2]),
            "tok": lambda relu1: self.tok(relu1.flatten(2).transpose(1, 2)),
            "fc": self._head,
        }


class OneD(nn.Module):
    """1-D convolutions with stride, dilation and groups, and a grouped, dilated ConvTranspose."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(2, 6, 3, padding=1)
        self.conv2 = nn.Conv1d(6, 4, 3, stride=2, padding=3, dilation=3, groups=2)
        self.convt = nn.ConvTranspose1d(4, 6, 3, stride=2, padding=1, output_padding=1, dilation=2, groups=2)
        self.fc = nn.Linear(6 * 22, 3)
        self.relu1, self.relu2, self.relu3 = nn.ReLU(), nn.ReLU(), nn.ReLU()

    def forward(self, x):
        s1 = self.relu1(self.conv1(x))
        s2 = self.relu2(self.conv2(s1))
        s3 = self.relu3(self.convt(s2))
        return self.fc(s3.flatten(1))

    def synaptic(self) -> dict:
        return {
            "conv2": lambda relu1: self.conv2(relu1),
            "convt": lambda relu2: self.convt(relu2),
            "fc": lambda relu3: self.fc(relu3.flatten(1)),
        }


def _dense_ann_macs(module: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """Independent MAC count of one ANN pass per sample: forward hooks on Conv / Linear."""
    macs: dict[str, int] = {}

    def hook(name):
        def fn(mod, inp, out):
            w = mod.weight[0].numel()  # per output (Conv, Linear) or per input (ConvTranspose)
            n = inp[0].numel() if isinstance(mod, nn.modules.conv._ConvTransposeNd) else out.numel()
            macs[name] = macs.get(name, 0) + n * w // x.shape[0]
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in module.named_modules()
               if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose1d, nn.Linear))]
    with torch.no_grad():
        module(x)
    for h in handles:
        h.remove()
    return macs


@pytest.mark.parametrize("net_cls,input_shape", [(Convs, (3, 11, 9)), (Routes, (2, 8, 8)), (OneD, (2, 19))])
def test_sops_equal_brute_force(net_cls, input_shape) -> None:
    torch.manual_seed(0)
    net = net_cls().eval()
    H.positive_weights(net)
    ann, snn = H.convert_module(net, input_shape, T=T)
    x = np.random.default_rng(1).standard_normal((B, *input_shape)).astype(np.float32)
    spikes, counts = H.run_debug(snn, x)
    em = EnergyModel(snn, {"input": x[:1]})
    res = em.account(counts, B)
    layers = {l.name: l for l in res.layers}
    shapes = {site: tuple(v.shape[1:]) for site, v in spikes.items()}
    net64 = net.double()
    checked = 0
    for name, fn in net.synaptic().items():
        assert name in layers, f"no counted layer '{name}' (have {sorted(layers)})"
        layer = layers[name]
        assert layer.counting == "SOP", f"{name}: counted as {layer.counting}: {layer.reason}"
        import inspect

        sources = list(inspect.signature(fn).parameters)
        assert sorted(layer.sources) == sorted(sources), f"{name}: sources {layer.sources} != {sources}"
        expected = np.zeros(T)
        for site in sources:
            fan = H.brute_force_fanout(fn, {s: shapes[s] for s in sources}, site)
            expected += H.brute_force_sops(spikes[site], fan, T)
        assert expected.sum() > 0, f"{name}: no spikes reached it; the test would be vacuous"
        np.testing.assert_allclose(layer.sops * B, expected, rtol=0, atol=1e-6, err_msg=name)
        assert layer.macs.sum() == 0
        checked += 1
    assert checked == len(net.synaptic())
    # the first layer reads the static input, the same at every step: the converter runs it
    # once (before the time entry), so it costs the ANN's dense MACs once, all in step 1
    first = layers["conv1"]
    ann_macs = _dense_ann_macs(net64, torch.from_numpy(x).double())
    assert first.counting == "MAC" and "direct coding" in first.reason and "runs once" in first.reason
    assert first.macs.sum() == ann_macs["conv1"] and first.macs[0] == ann_macs["conv1"]
    # the ANN's MACs (one pass) agree with the hook count, layer by layer and in total
    for name, m in ann_macs.items():
        assert layers[name].ann_macs == m, f"{name}: ANN MACs {layers[name].ann_macs} != {m}"
    assert res.ann_macs == sum(ann_macs.values())
    cfg = EnergyConfig()
    assert res.energy_pj == pytest.approx(cfg.e_ac_pj * res.sops + cfg.e_mac_pj * res.macs)
    assert res.ann_energy_pj == pytest.approx(cfg.e_mac_pj * res.ann_macs)


class Analog(nn.Module):
    """Layers whose input is not a pure spike tensor: after MaxPool (compensated), after an
    overlapping AvgPool, and fed by spikes plus the analog input."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.conv3 = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 3)
        self.pool = nn.MaxPool2d(2)
        self.avg = nn.AvgPool2d(3, stride=1, padding=1)
        self.relu1, self.relu2, self.relu3 = nn.ReLU(), nn.ReLU(), nn.ReLU()

    def forward(self, x):
        s1 = self.relu1(self.conv1(x))
        s2 = self.relu2(self.conv2(self.pool(s1)))
        s3 = self.relu3(self.conv3(self.avg(s2)))
        return self.fc(s3.flatten(1))


def test_analog_inputs_are_counted_as_macs() -> None:
    torch.manual_seed(0)
    net = Analog().eval()
    ann, snn = H.convert_module(net, (2, 8, 8), T=T)
    x = np.random.default_rng(2).standard_normal((B, 2, 8, 8)).astype(np.float32)
    _, counts = H.run_debug(snn, x)
    res = EnergyModel(snn, {"input": x[:1]}).account(counts, B, EnergyConfig(e_ac_pj=1.0, e_mac_pj=3.0))
    layers = {l.name: l for l in res.layers}
    dense = _dense_ann_macs(net, torch.from_numpy(x))
    reasons = {
        "conv1": "direct coding",
        "conv2": "compensation block of MaxPool",
        "conv3": "overlapping windows",
    }
    for name, needle in reasons.items():
        l = layers[name]
        assert l.counting == "MAC" and needle in l.reason, f"{name}: {l.counting}, {l.reason}"
        assert l.sops.sum() == 0
        if name == "conv1":  # static input: runs once, before the time entry
            assert l.macs.sum() == dense[name] and l.macs[0] == dense[name], name
            continue
        assert l.macs.sum() == T * dense[name], name
        np.testing.assert_allclose(l.macs, dense[name])  # the same dense cost at every step
    assert layers["fc"].counting == "SOP"
    # the compensation block around MaxPool: TemporalMean in, MaxPool (4 per output), TemporalDelta out
    comp = [l for l in res.layers if l.role == "compensation"]
    assert sorted(l.op for l in comp) == ["MaxPool", "TemporalDelta", "TemporalMean"]
    n_in, n_out = 4 * 8 * 8, 4 * 4 * 4
    by_op = {l.op: l for l in comp}
    assert by_op["TemporalMean"].macs.sum() == T * n_in and by_op["TemporalMean"].ann_macs == 0
    assert by_op["TemporalDelta"].macs.sum() == T * n_out
    assert by_op["MaxPool"].macs.sum() == T * n_out * 4 and by_op["MaxPool"].ann_macs == n_out * 4
    assert res.ann_macs == sum(dense.values()) + n_out * 4
    assert res.energy_pj == pytest.approx(1.0 * res.sops + 3.0 * res.macs)


def test_shape_inference_and_probe_agree() -> None:
    """The two ways of finding tensor shapes give the same accounting."""
    torch.manual_seed(0)
    net = Routes().eval()
    ann, snn = H.convert_module(net, (2, 8, 8), T=T)
    x = np.random.default_rng(3).standard_normal((B, 2, 8, 8)).astype(np.float32)
    _, counts = H.run_debug(snn, x)
    a = EnergyModel(snn, {"input": x[:1]}, shape_method="infer").account(counts, B)
    b = EnergyModel(snn, {"input": x[:1]}, shape_method="probe").account(counts, B)
    assert [l.name for l in a.layers] == [l.name for l in b.layers]
    for la, lb in zip(a.layers, b.layers):
        assert la.counting == lb.counting, la.name
        np.testing.assert_array_equal(la.sops, lb.sops)
        np.testing.assert_array_equal(la.macs, lb.macs)


def test_energy_config_is_validated() -> None:
    from snn_onnx.energy import EnergyError

    with pytest.raises(EnergyError, match="e_ac_pj"):
        EnergyConfig(e_ac_pj=-1)
    with pytest.raises(EnergyError, match="e_mac_pj"):
        EnergyConfig(e_mac_pj=float("nan"))


def test_missing_spike_counts_is_an_error() -> None:
    from snn_onnx.energy import EnergyError
    from snn_onnx.export.torch_export import export_module

    import snn_onnx

    net = Convs().eval()
    ann = export_module(net, (3, 11, 9), exporter="legacy")
    x = np.random.default_rng(0).standard_normal((8, 3, 11, 9)).astype(np.float32)
    snn = snn_onnx.convert(ann, time_steps=2, neuron="if", data=x, spike_counts=False, parity_samples=4).model
    with pytest.raises(EnergyError, match="no spike-count output"):
        EnergyModel(snn, {"input": x[:1]})


class Attention(nn.Module):
    """A single-head self-attention block: spike-fed token Linears, Q·Kᵀ and attn·V as
    compensated products of two spiking tensors, a compensated Softmax."""

    S, D = 5, 6

    def __init__(self) -> None:
        super().__init__()
        self.q, self.k, self.v = nn.Linear(self.D, self.D), nn.Linear(self.D, self.D), nn.Linear(self.D, self.D)
        self.out = nn.Linear(self.D, 3)
        self.rq, self.rk, self.rv = nn.ReLU(), nn.ReLU(), nn.ReLU()

    def forward(self, x):
        q, k, v = self.rq(self.q(x)), self.rk(self.k(x)), self.rv(self.v(x))
        attn = torch.softmax(q @ k.transpose(1, 2), dim=-1)
        return self.out(attn @ v).mean(1)


def test_attention_block_accounting() -> None:
    """Products of two spike tensors and Softmax are compensation blocks: MACs at every step,
    counted generically from the graph (whatever op sits between TemporalMean and
    TemporalDelta); the ANN counts the same ops once."""
    torch.manual_seed(0)
    net = Attention().eval()
    S, D = Attention.S, Attention.D
    ann, snn = H.convert_module(net, (S, D), T=T)
    x = np.random.default_rng(5).standard_normal((B, S, D)).astype(np.float32)
    _, counts = H.run_debug(snn, x)
    res = EnergyModel(snn, {"input": x[:1]}).account(counts, B)
    by_op: dict[str, list] = {}
    for l in res.layers:
        by_op.setdefault((l.op, l.role, l.counting), []).append(l)
    linears = by_op[("MatMul", "synaptic", "MAC")]
    assert sorted(l.name for l in linears) == ["k", "out", "q", "v"]
    for l in linears:
        # q, k, v read the static input: run once; out runs at every step
        expected = T * S * D * 3 if l.name == "out" else S * D * D
        assert l.macs.sum() == expected, l.name
        assert ("compensation block of MatMul" if l.name == "out" else "direct coding") in l.reason, l.reason
    products = by_op[("MatMul", "compensation", "MAC")]
    assert len(products) == 2 and all(l.macs.sum() == T * S * S * D for l in products)
    # Softmax sits between the two products; whether it is inside a TemporalMean..TemporalDelta
    # region depends on how the converter chains compensation blocks, its cost does not
    (softmax,) = [l for l in res.layers if l.op == "Softmax"]
    assert softmax.counting == "MAC" and softmax.macs.sum() == T * 3 * S * S and softmax.ann_macs == 3 * S * S
    wrappers = [l for l in res.layers if l.op in ("TemporalMean", "TemporalDelta")]
    temporal_nodes = [n for n in snn.graph.node if n.op_type in ("TemporalMean", "TemporalDelta")
                      and not n.name.startswith("logits/")]  # the exit's running mean is not counted
    assert len(wrappers) == len(temporal_nodes) >= 4  # TemporalMean on q, kᵀ, v; TemporalDelta after attn·V
    assert all(l.role == "compensation" and l.ann_macs == 0 for l in wrappers)
    assert all(l.macs.sum() in (T * S * D, T * S * S) for l in wrappers)
    ann_total = 3 * S * D * D + S * D * 3 + 2 * S * S * D + 3 * S * S
    assert res.ann_macs == ann_total
    assert res.sops == 0  # nothing here reads pure spikes: every spike goes into a compensated product


@pytest.mark.parametrize("a_shape,b_shape", [((2, 1, 3, 4), (5, 4, 6)), ((4,), (3, 4, 2)), ((3, 4), (4,)), ((7, 4), (4, 3))])
@pytest.mark.parametrize("operand", [0, 1])
def test_matmul_fanout_with_broadcasting(a_shape, b_shape, operand) -> None:
    """MatMul fan-out (NumPy broadcasting, 1-D operands) against a one-hot brute force."""
    from snn_onnx.energy.fanout import matmul_fanout

    rng = np.random.default_rng(0)
    a = rng.uniform(0.5, 1.0, a_shape)
    b = rng.uniform(0.5, 1.0, b_shape)
    out_shape = np.matmul(a, b).shape
    data = a if operand == 0 else b
    got = matmul_fanout(data.shape, out_shape, operand)
    for idx in np.ndindex(*data.shape):
        e = np.zeros(data.shape)
        e[idx] = 1.0
        y = np.matmul(e, b) if operand == 0 else np.matmul(a, e)
        assert got[idx] == np.count_nonzero(y), (idx, got[idx])

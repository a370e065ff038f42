"""NIR export / import, checked against NIR's equations and against other frameworks' own
NIR readers and writers (SpikingJelly, Norse, snnTorch): real digits inputs, networks
converted with reset to zero, spikes compared per layer and per step."""

from __future__ import annotations

import numpy as np
import pytest

import snn_onnx
from snn_onnx.errors import ConversionError

pytest.importorskip("nir", reason="NIR support is the 'nir' extra (pip install 'snn-onnx[nir]')")
torch = pytest.importorskip("torch", reason="the test networks are built with torch")

from snn_onnx.interop import clients  # noqa: E402
from snn_onnx.interop.nir_export import to_nir  # noqa: E402
from snn_onnx.interop.nir_import import from_nir  # noqa: E402
from snn_onnx.interop.nir_sim import simulate_nir  # noqa: E402
from snn_onnx.interop.snn_graph import read_snn  # noqa: E402
from snn_onnx.interop.trace import trace_snn  # noqa: E402

T = 8
NEURONS = {
    "if": dict(kind="if", reset="zero", v_init=0.0),
    "lif": dict(kind="lif", reset="zero", v_init=0.0, leak=0.9),
    "subtract": dict(kind="if", reset="subtract", v_init=0.0),
    "v_init": dict(kind="if", reset="zero", v_init=0.5),
}


def relu_cnn() -> "torch.nn.Module":
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AvgPool2d(2),
        torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(16 * 4 * 4, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)).eval()


@pytest.fixture(scope="module")
def digits():
    from snn_onnx import data

    return data.load("digits", split="train", limit=24).x


@pytest.fixture(scope="module")
def snns(tmp_path_factory, digits):
    """The same ReLU CNN converted with each neuron setting (calibrated on real digits), one
    threshold per layer (SpikingJelly's and snnTorch's readers take no other; the converter's
    default is per channel)."""
    out = {}
    folder = tmp_path_factory.mktemp("snns")
    model = relu_cnn()
    per_layer = snn_onnx.CalibrationConfig(method="max", per_channel=False)
    for name, kw in NEURONS.items():
        path = folder / f"{name}.snn.onnx"
        snn_onnx.convert(model, input_shape=(1, 8, 8), time_steps=T, neuron=snn_onnx.NeuronConfig(**kw),
                         data=digits, output=path, parity_samples=8, calibration=per_layer)
        out[name] = path
    return out


def _repeat(x: np.ndarray) -> np.ndarray:
    return np.broadcast_to(x, (T,) + x.shape)


def _roundtrip(exp, tmp_path):
    import nir

    path = tmp_path / "model.nir"
    exp.write(path)
    return nir.read(str(path))


@pytest.mark.parametrize("neuron", ["if", "lif"])
def test_export_is_exact_under_nir_equations(snns, digits, tmp_path, neuron):
    snn = read_snn(snns[neuron])
    exp = to_nir(snn)
    assert exp.lossy == []
    graph = _roundtrip(exp, tmp_path)
    kinds = {type(n).__name__ for n in graph.nodes.values()}
    assert ("IF" if neuron == "if" else "LIF") in kinds and "Scale" not in kinds  # θ went into the weights
    ours = trace_snn(snn, digits)
    run = simulate_nir(graph, {k: _repeat(digits) for k in exp.inputs}, exp.dt)
    assert len(exp.neurons) == 3
    for ne in exp.neurons:
        np.testing.assert_array_equal(run.spikes[ne.nir_node], ours.spikes[ne.onnx_node], err_msg=ne.onnx_node)
        np.testing.assert_allclose(run.potentials[ne.nir_node], ours.potentials[ne.onnx_node], atol=2e-5)
        assert ours.spikes[ne.onnx_node].any()
    (nir_out, name), = exp.outputs.items()
    np.testing.assert_allclose(run.outputs[nir_out], ours.outputs[name], atol=1e-5)


@pytest.mark.parametrize("reader,neuron,pooling", [
    ("spikingjelly", "if", "avg"), ("spikingjelly", "lif", "avg"), ("spikingjelly", "if", "sum"),
    ("norse", "if", "sum"), ("snntorch", "lif", "avg"), ("snntorch", "lif", "sum"),
])
def test_other_frameworks_read_our_file_and_give_our_spikes(snns, digits, tmp_path, reader, neuron, pooling):
    pytest.importorskip({"spikingjelly": "spikingjelly", "norse": "norse", "snntorch": "snntorch"}[reader])
    snn = read_snn(snns[neuron])
    exp = to_nir(snn, pooling=pooling)
    graph = _roundtrip(exp, tmp_path)
    assert clients.unsupported(reader, graph, exp.dt) is None
    x = digits[:8]
    ours = trace_snn(snn, x)
    theirs = clients.run_client(reader, graph, {k: _repeat(x) for k in exp.inputs}, exp.dt)
    for ne in exp.neurons:
        a = ours.spikes[ne.onnx_node]
        np.testing.assert_array_equal(theirs.spikes[ne.nir_node].reshape(a.shape), a, err_msg=f"{reader} {ne.onnx_node}")
    (nir_out, name), = exp.outputs.items()
    np.testing.assert_allclose(theirs.outputs[nir_out].reshape(ours.outputs[name].shape), ours.outputs[name], atol=1e-5)


def test_reader_limits_stated_in_docs_are_real(snns, digits, tmp_path):
    """What clients.unsupported says about a reader is what the reader does."""
    pytest.importorskip("norse")
    pytest.importorskip("snntorch")
    x = digits[:4]
    lif = read_snn(snns["lif"])
    exp = to_nir(lif, pooling="sum")
    graph = _roundtrip(exp, tmp_path)
    assert "ignores r" in clients.unsupported("norse", graph, exp.dt)
    ours = trace_snn(lif, x)
    norse = clients.run_client("norse", graph, {k: _repeat(x) for k in exp.inputs}, exp.dt, skip_known_limits=False)
    first = exp.neurons[0]
    assert not np.array_equal(norse.spikes[first.nir_node].reshape(ours.spikes[first.onnx_node].shape),
                              ours.spikes[first.onnx_node])
    # a Scale node: SpikingJelly and snnTorch refuse to load it, Norse drops it silently
    import nir

    n = 4
    lif_scaled = nir.NIRGraph.from_list(
        nir.Affine(weight=np.eye(n, dtype=np.float32) * 2, bias=np.zeros(n, np.float32)),
        nir.LIF(tau=np.full(n, 1e-3), r=np.full(n, 10.0), v_leak=np.zeros(n), v_threshold=np.ones(n, np.float32),
                v_reset=np.zeros(n, np.float32)),
        nir.Scale(scale=np.full(n, 3.0, np.float32)))
    feed = {"input": np.ones((5, 2, n), np.float32)}
    for reader in ("spikingjelly", "snntorch"):
        assert "Scale" in clients.unsupported(reader, lif_scaled, 1e-4)
        with pytest.raises(ValueError, match="Scale"):
            clients.run_client(reader, lif_scaled, feed, 1e-4, skip_known_limits=False)
    if_scaled = nir.NIRGraph.from_list(
        nir.Affine(weight=np.eye(n, dtype=np.float32) * 2, bias=np.zeros(n, np.float32)),
        nir.IF(r=np.full(n, 1e4), v_threshold=np.ones(n, np.float32), v_reset=np.zeros(n, np.float32)),
        nir.Scale(scale=np.full(n, 3.0, np.float32)))
    dropped = clients.run_client("norse", if_scaled, feed, 1e-4, skip_known_limits=False)
    assert dropped.outputs["output"].max() == 1.0  # spikes, not 3 x spikes
    # Norse's reader drops AvgPool2d and the next layer then gets the wrong tensor
    avg = _roundtrip(to_nir(read_snn(snns["if"]), pooling="avg"), tmp_path)
    assert "AvgPool2d" in clients.unsupported("norse", avg, 1e-4)
    # (the wrong tensor fails in torch, or leaves a neuron unobserved: either way no valid run)
    with pytest.raises((RuntimeError, snn_onnx.SnnOnnxError)):
        clients.run_client("norse", avg, {k: _repeat(x) for k in exp.inputs}, 1e-4, skip_known_limits=False)
    graph_if = to_nir(read_snn(snns["if"])).graph
    assert "beta 0.9" in clients.unsupported("snntorch", graph_if, 1e-4)
    with pytest.raises(Exception, match="r != 1"):
        clients.run_client("snntorch", graph_if, {k: _repeat(x) for k in exp.inputs}, 1e-4, skip_known_limits=False)


def test_import_of_our_export_gives_the_same_spikes(snns, digits, tmp_path):
    snn = read_snn(snns["lif"])
    exp = to_nir(snn)
    path = tmp_path / "m.nir"
    exp.write(path)
    imp = from_nir(path, time_steps=T, static_inputs=True)  # dt from the file
    back = read_snn(imp.model)
    ours, again = trace_snn(snn, digits), trace_snn(back, digits)
    for ne in exp.neurons:
        np.testing.assert_array_equal(again.spikes[imp.neurons[ne.nir_node]], ours.spikes[ne.onnx_node])
    out = snn_onnx.Session(imp.model).run(digits)
    ref = snn_onnx.Session(str(snns["lif"])).run(digits)
    np.testing.assert_allclose(next(iter(out.outputs.values())), ref.outputs["logits"], atol=1e-5)
    assert set(out.spike_counts) == set(imp.neurons)  # spike counts per imported layer


def test_default_per_channel_thresholds_round_trip(digits, tmp_path):
    """The converter's default thresholds (one per channel, Conv and Linear layers alike) go
    through NIR and back with the same spikes."""
    snn_path = tmp_path / "pc.snn.onnx"
    snn_onnx.convert(relu_cnn(), input_shape=(1, 8, 8), time_steps=T, data=digits, output=snn_path, parity_samples=8,
                     neuron=snn_onnx.NeuronConfig(**NEURONS["lif"]))
    snn = read_snn(snn_path)
    assert all(len(np.unique(n.threshold)) > 1 for n in snn.neurons)  # per channel everywhere
    exp = to_nir(snn)
    path = tmp_path / "pc.nir"
    exp.write(path)
    imp = from_nir(path, time_steps=T, static_inputs=True)
    ours, again = trace_snn(snn, digits), trace_snn(read_snn(imp.model), digits)
    for ne in exp.neurons:
        np.testing.assert_array_equal(again.spikes[imp.neurons[ne.nir_node]], ours.spikes[ne.onnx_node])


def _run_ours_on_frames(model, frames: np.ndarray):
    """frames [T, B, ...] -> our per-step outputs and spikes of the imported model."""
    snn = read_snn(model)
    tr = trace_snn(snn, frames.reshape((-1,) + frames.shape[2:]))
    return snn, tr


def test_snntorch_network_written_to_nir_runs_here_with_its_spikes():
    snntorch = pytest.importorskip("snntorch")
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(1)
    # per-neuron beta / threshold: snnTorch 1.0 writes scalar ones with shape (), which nir 1.0.8's
    # type check rejects; reset_delay=False is what its NIR writer and reader assume
    lif1 = snntorch.Leaky(beta=torch.full((16,), 0.8), threshold=torch.full((16,), 0.7), init_hidden=True,
                          reset_mechanism="zero", reset_delay=False)
    lif2 = snntorch.Leaky(beta=torch.full((5,), 0.9), threshold=torch.ones(5), init_hidden=True,
                          reset_mechanism="zero", reset_delay=False)
    net = torch.nn.Sequential(torch.nn.Linear(20, 16), lif1, torch.nn.Linear(16, 5), lif2).eval()
    with clients._quiet():
        graph = export_to_nir(net, torch.zeros(1, 20), ignore_dims=[0])  # NIR types exclude the batch
    frames = (np.random.default_rng(0).random((12, 6, 20)) < 0.3).astype(np.float32) * 2
    rec = {lif1: [], lif2: []}
    hooks = [m.register_forward_hook(lambda m, i, o: rec[m].append(o[0] if isinstance(o, tuple) else o)) for m in rec]
    from snntorch import utils as snn_utils

    snn_utils.reset(net)
    with torch.no_grad():
        for t in range(frames.shape[0]):
            net(torch.from_numpy(frames[t]))
    for h in hooks:
        h.remove()
    imp = from_nir(graph, time_steps=frames.shape[0], dt=1e-4)  # snnTorch writes for dt = 1e-4, no metadata
    snn, tr = _run_ours_on_frames(imp.model, frames)
    leaky = {k: n for k, n in graph.nodes.items() if type(n).__name__ == "LIF"}
    assert len(leaky) == 2
    for (nir_name, _), mod in zip(sorted(leaky.items()), (lif1, lif2)):
        theirs = torch.stack(rec[mod]).numpy()
        assert theirs.any()
        np.testing.assert_array_equal(tr.spikes[imp.neurons[nir_name]], theirs, err_msg=nir_name)


def test_spikingjelly_network_written_to_nir_runs_here_with_its_spikes():
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import functional, layer, neuron
    from spikingjelly.activation_based.nir_exchange import export_to_nir

    torch.manual_seed(2)
    net = torch.nn.Sequential(
        layer.Conv2d(2, 6, 3, padding=1), neuron.IFNode(v_threshold=0.8, v_reset=0.0), layer.AvgPool2d(2),
        layer.Flatten(), layer.Linear(6 * 4 * 4, 12), neuron.LIFNode(tau=4.0, decay_input=False, v_threshold=0.2, v_reset=0.0),
        layer.Linear(12, 4)).eval()
    with clients._quiet():
        graph = export_to_nir(net, torch.zeros(1, 2, 8, 8), dt=1e-4)
    frames = (np.random.default_rng(3).random((10, 5, 2, 8, 8)) < 0.4).astype(np.float32)
    sj_neurons = [m for m in net if isinstance(m, (neuron.IFNode, neuron.LIFNode))]
    rec = {id(m): [] for m in sj_neurons}
    hooks = [m.register_forward_hook(lambda m, i, o: rec[id(m)].append(o)) for m in sj_neurons]
    functional.reset_net(net)
    outs = []
    with torch.no_grad():
        for t in range(frames.shape[0]):
            outs.append(net(torch.from_numpy(frames[t])).numpy())
    for h in hooks:
        h.remove()
    imp = from_nir(graph, time_steps=frames.shape[0], dt=1e-4)
    snn, tr = _run_ours_on_frames(imp.model, frames)
    nir_neurons = [k for k, n in graph.nodes.items() if type(n).__name__ in ("IF", "LIF")]
    assert len(nir_neurons) == 2
    # graph order = the Sequential's order
    order = [k for k in graph.nodes if k in nir_neurons]
    for k, mod in zip(order, sj_neurons):
        theirs = torch.stack(rec[id(mod)]).numpy()
        assert theirs.any()
        np.testing.assert_array_equal(tr.spikes[imp.neurons[k]], theirs, err_msg=k)
    (out_name, steps), = tr.outputs.items()
    np.testing.assert_allclose(steps, np.stack(outs), atol=1e-5)


# -- refusals: never a file that computes something else ---------------------------------


def test_subtractive_reset_is_refused_by_name_unless_lossy(snns, digits):
    with pytest.raises(ConversionError, match=r"IFNeuron.*subtractive reset.*--lossy"):
        to_nir(snns["subtract"])
    exp = to_nir(snns["subtract"], lossy=True)
    assert len(exp.lossy) == 3 and "subtractive reset" in exp.lossy[0]


def test_v_init_is_refused_unless_lossy(snns):
    with pytest.raises(ConversionError, match=r"v_init 0.5.*initial potential"):
        to_nir(snns["v_init"])
    assert any("v_init" in w for w in to_nir(snns["v_init"], lossy=True).lossy)


def test_paraif_and_compensated_blocks_are_refused_by_name(tmp_path, digits):
    from onnx_builders import inputs, small_cnn

    para = tmp_path / "para.snn.onnx"
    snn_onnx.convert(small_cnn(), time_steps=4, neuron="paraif", data=inputs(), output=para, parity_samples=4)
    with pytest.raises(ConversionError, match=r"ParaIFNeuron.*ParaIF"):
        to_nir(para, lossy=True)
    comp = tmp_path / "comp.snn.onnx"
    snn_onnx.convert(small_cnn(maxpool=True), time_steps=4, neuron=snn_onnx.NeuronConfig(kind="if", reset="zero", v_init=0.0),
                     data=inputs(), output=comp, parity_samples=4)
    with pytest.raises(ConversionError, match=r"compensated block"):
        to_nir(comp)


def _lif_graph(**over):
    import nir

    n = 4
    lif = dict(tau=np.full(n, 1e-3), r=np.full(n, 10.0), v_leak=np.zeros(n), v_threshold=np.ones(n), v_reset=np.zeros(n))
    lif.update(over)
    return nir.NIRGraph.from_list(nir.Affine(weight=np.eye(n, dtype=np.float32), bias=np.zeros(n, np.float32)), nir.LIF(**lif))


def test_import_refuses_what_it_cannot_compute():
    import nir

    with pytest.raises(ConversionError, match=r"dt"):
        from_nir(_lif_graph(), time_steps=4)  # no dt in the file, none given
    with pytest.raises(ConversionError, match=r"v_reset != 0"):
        from_nir(_lif_graph(v_reset=np.full(4, 0.2)), time_steps=4, dt=1e-4)
    with pytest.raises(ConversionError, match=r"tau varies"):
        from_nir(_lif_graph(tau=np.array([1e-3, 2e-3, 1e-3, 1e-3])), time_steps=4, dt=1e-4)
    cuba = nir.NIRGraph.from_list(nir.CubaLIF(tau_syn=np.ones(3), tau_mem=np.ones(3), r=np.ones(3), v_leak=np.zeros(3),
                                              v_threshold=np.ones(3)))
    with pytest.raises(ConversionError, match=r"CubaLIF"):
        from_nir(cuba, time_steps=4, dt=1e-4)
    g = _lif_graph()
    g.edges.append((list(g.nodes)[2], list(g.nodes)[1]))  # recurrent edge LIF -> Affine
    with pytest.raises(Exception, match=r"cycle"):
        from_nir(g, time_steps=4, dt=1e-4)

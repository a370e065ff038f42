"""Membrane potentials, the neurons' optional debug output (docs/ops.md, "Membrane potentials"):
what each op's potential is (hand-worked), the CPU kernels against the NumPy reference (bit for
bit, spikes unchanged by declaring the output), ``Session(potentials=True)``, and the report's
histograms, near-threshold fractions, panel and TensorBoard tags. The CUDA bodies are checked in
tests/test_cuda.py (emulated everywhere, on a GPU where there is one)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from snn_onnx.ops import reference as ref
from test_kernels import build, if_case, para_case, rand_positive, rand_x, resolved, run, static_case
from test_multi_threshold import mt_case

F32 = np.float32
OPS = ("IFNeuron", "ParaIFNeuron", "MultiThresholdNeuron")
N_CASES = 120


@pytest.fixture(scope="module")
def so(snn_library) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.register_custom_ops_library(snn_library)
    opts.intra_op_num_threads = 2
    opts.log_severity_level = 4
    return opts


def op_case(op: str, seed: int):
    """(inputs, attrs, counts, initializers) of a random case; every third IF / ParaIF case has a
    static input."""
    if op == "IFNeuron":
        x, th, attrs, counts, inits = static_case(if_case, seed) if seed % 3 == 0 else if_case(seed)
        return [("x", x), ("threshold", th)], attrs, counts, inits
    if op == "ParaIFNeuron":
        x, pre, post, bias, attrs, counts, inits = static_case(para_case, seed) if seed % 3 == 0 else para_case(seed)
        return [("x", x), ("theta_pre", pre), ("theta_post", post), ("bias", bias)], attrs, counts, inits
    x, sp, sn, attrs, counts, inits = mt_case(seed)
    return [("x", x), ("scale_pos", sp), ("scale_neg", sn)], attrs, counts, inits


# --------------------------------------------------------------------------- what a potential is


def test_if_potential_is_the_membrane_before_fire_and_reset():
    x = np.full((3, 1), 0.6, F32)
    y, _, v = ref.if_neuron(x, F32(1.0), time_steps=3, v_init=0.5, potentials=True)
    np.testing.assert_allclose(v.ravel(), [1.1, 0.7, 1.3], rtol=1e-6)  # 0.5 + 0.6, 0.1 + 0.6, 0.7 + 0.6
    assert y.ravel().tolist() == [1.0, 0.0, 1.0]
    y, _, v = ref.if_neuron(x, F32(1.0), time_steps=3, v_init=0.5, leak=0.5, reset="zero", potentials=True)
    np.testing.assert_allclose(v.ravel(), [0.85, 1.025, 0.6], rtol=1e-6)  # 0.5·0.5 + 0.6, …, 0 + 0.6
    y, _, v = ref.if_neuron(np.array([[1.2], [-0.5], [-0.5]], F32), F32(1.0), time_steps=3, v_init=0.0, signed=1,
                            potentials=True)
    np.testing.assert_allclose(v.ravel(), [1.2, -0.3, 0.2], rtol=1e-6)  # -0.3 fires -1 and gets θ back
    assert y.ravel().tolist() == [1.0, -1.0, 0.0]


def test_para_if_potential_is_the_equivalent_if_membrane():
    x = np.full((4, 1), 0.6, F32)  # acc 2.4, drive 2.9: fires at steps 1 and 2
    y, _, u = ref.para_if_neuron(x, F32(1.0), time_steps=4, v_init=0.5, potentials=True)
    assert y.ravel().tolist() == [1.0, 1.0, 0.0, 0.0]
    np.testing.assert_allclose(u.ravel(), [2.9, 1.9, 0.9, 0.9], rtol=1e-6)


@pytest.mark.parametrize("seed", range(40))
def test_para_if_fires_where_its_potential_reaches_threshold(seed):
    """u_t >= θ_pre exactly where ParaIF fires, up to the rounding of the two forms."""
    inputs, attrs, _, _ = op_case("ParaIFNeuron", seed)
    args = [v for _, v in inputs]
    a = resolved("ParaIFNeuron", attrs)
    y, _, u = ref.para_if_neuron(*args, **a, potentials=True)
    fire = y != 0
    pre = ref.broadcast_param(args[1], y.shape, a["channel_axis"], "p", "theta_pre")
    pre = np.broadcast_to(pre, y.shape)
    T = a["time_steps"]
    near = np.abs(u.astype(np.float64) - pre) <= 1e-5 * T * np.maximum(np.abs(u), pre)
    assert np.all((u >= pre) == fire | near)


def test_multi_threshold_potential_is_the_membrane_before_emission():
    x = np.array([[0.7], [0.7], [-0.2]], F32)  # s = 0.5: levels 0.5, 1, 2, …
    y, _, v = ref.multi_threshold_neuron(x, F32(0.5), F32(0.5), time_steps=3, levels=4, potentials=True)
    np.testing.assert_allclose(v.ravel(), [0.7, 0.9, -0.3], rtol=1e-6)  # 0.7 - 0.5 + 0.7 = 0.9; 0.9 - 1 - 0.2
    assert y.ravel().tolist() == [0.5, 1.0, -0.5]


# --------------------------------------------------------------------------- CPU kernels


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("seed", range(N_CASES))
def test_kernel_potentials_match_the_reference(so, op, seed):
    inputs, attrs, counts, inits = op_case(op, seed)
    model, feeds = build(op, inputs, attrs, counts, initializers=inits, potentials=True)
    out = run(so, model, feeds)
    assert len(out) == (3 if counts else 2)
    ry, rc, rp = ref.REFERENCES[op](*[v for _, v in inputs], **resolved(op, attrs), potentials=True)
    pot = out[-1]
    assert pot.dtype == F32 and pot.shape == ry.shape
    np.testing.assert_array_equal(pot, rp)  # the same float32 expressions: bit for bit
    np.testing.assert_array_equal(out[0], ry)
    if counts:
        np.testing.assert_array_equal(out[1], rc)
    plain, feeds = build(op, inputs, attrs, counts, initializers=inits)
    for a, b in zip(run(so, plain, feeds), out):  # declaring potentials changes no spike
        np.testing.assert_array_equal(a, b)


def test_kernel_potentials_with_nan_and_inf(so):
    x = np.array([[np.nan, np.inf, -np.inf, 1.0]] * 3, F32)
    for op, params, attrs in (
        ("IFNeuron", [("threshold", F32(1.0))], {"time_steps": 3, "signed": 1}),
        ("ParaIFNeuron", [("theta_pre", F32(1.0))], {"time_steps": 3}),
        ("MultiThresholdNeuron", [("scale_pos", F32(0.5)), ("scale_neg", F32(0.5))], {"time_steps": 3}),
    ):
        model, feeds = build(op, [("x", x), *params], attrs, True, potentials=True)
        y, c, p = run(so, model, feeds)
        ry, rc, rp = ref.REFERENCES[op](x, *[v for _, v in params], **resolved(op, attrs), potentials=True)
        np.testing.assert_array_equal(p, rp)
        np.testing.assert_array_equal(y, ry)
        assert np.isnan(p[:, 0]).all()


def test_kernel_potentials_threads_agree(snn_library):
    """Big enough for several neuron and batch blocks: 1 vs 4 threads, with and without counts."""
    rng = np.random.default_rng(21)
    T, x = 6, rand_x(rng, (6 * 5, 8, 30, 31))
    th = rand_positive(rng, 8)
    results = []
    for threads in (1, 4):
        opts = ort.SessionOptions()
        opts.register_custom_ops_library(snn_library)
        opts.intra_op_num_threads = threads
        outs = []
        for counts in (True, False):
            for op, params, attrs in (
                ("IFNeuron", [("threshold", th)], {"time_steps": T, "leak": 0.9, "signed": 1}),
                ("ParaIFNeuron", [("theta_pre", th)], {"time_steps": T}),
                ("MultiThresholdNeuron", [("scale_pos", th), ("scale_neg", th)], {"time_steps": T, "channel_axis": 1}),
            ):
                model, feeds = build(op, [("x", x), *params], attrs, counts, potentials=True)
                outs.append(run(opts, model, feeds)[-1])
        results.append(outs)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    _, _, rp = ref.if_neuron(x, th, time_steps=T, leak=0.9, signed=1, potentials=True)
    np.testing.assert_array_equal(results[0][0], rp)


# --------------------------------------------------------------------------- Session


@pytest.fixture(scope="module")
def digits():
    pytest.importorskip("sklearn", reason="the digits ship with scikit-learn")
    import onnx

    from snn_onnx import data
    from snn_onnx_models import example_model_path

    return onnx.load(str(example_model_path())), data.load("digits", "test", limit=48), data.load("digits", "train", limit=64)


def _node_inputs(model, x):
    """Every neuron's input and attributes, from the model itself (inputs as extra outputs)."""
    import onnx

    from snn_onnx.conversion.ann_runner import with_outputs
    from snn_onnx.runtime.session import make_session

    nodes = [n for n in model.graph.node if n.op_type in OPS]
    names = [n.input[0] for n in nodes]
    values = make_session(with_outputs(model, names)).run(names, {"input": x})
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    out = []
    for n, v in zip(nodes, values):
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        attrs = {k: (v_.decode() if isinstance(v_, bytes) else v_) for k, v_ in attrs.items()}
        params = [inits[i] if i else None for i in n.input[1:]]
        out.append((n, v, params, attrs))
    return out


@pytest.mark.parametrize("neuron", ["if", "signed-if", "paraif", "lif"])
def test_session_potentials_are_the_ops_reference_on_each_layer(digits, neuron):
    """Session(potentials=True) on a converted model: each layer's potentials are the NumPy
    reference run on that neuron's own input (first layer: a static input), bit for bit; the
    outputs are those of a session without potentials."""
    import snn_onnx

    ann, test, train = digits
    cfg = snn_onnx.NeuronConfig(kind=neuron, leak=0.9) if neuron == "lif" else neuron
    res = snn_onnx.convert(ann, time_steps=6, neuron=cfg, data=train.x)
    assert all(len(n.output) <= 2 for n in res.model.graph.node)  # the converter never declares them
    sess = snn_onnx.Session(res.model, potentials=True)
    out = sess.run(test.x)
    plain = snn_onnx.Session(res.model).run(test.x)
    assert plain.potentials == {}
    np.testing.assert_array_equal(out.outputs["logits"], plain.outputs["logits"])
    for k in plain.spike_counts:
        np.testing.assert_array_equal(out.spike_counts[k], plain.spike_counts[k])
    by_node = {p.node: p.site for p in sess.potential_sites}
    layers = _node_inputs(res.model, test.x)
    assert [by_node[n.name] for n, *_ in layers] == [s["site"] for s in sess.sites]
    for node, x, params, attrs in layers:
        _, _, want = ref.REFERENCES[node.op_type](x, *params, **attrs, potentials=True)
        got = out.potentials[by_node[node.name]]
        assert got.shape == (6, len(test.x), *want.shape[1:])
        np.testing.assert_array_equal(got.reshape(want.shape), want)


def test_potentials_of_a_model_without_neurons_are_refused():
    from onnx import TensorProto, helper

    from snn_onnx.errors import ModelLoadError
    from snn_onnx.runtime.potentials import declare

    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    with pytest.raises(ModelLoadError, match="no IFNeuron, ParaIFNeuron or MultiThresholdNeuron node"):
        declare(helper.make_model(g))


# --------------------------------------------------------------------------- report statistics


def test_stats_units_near_threshold_and_histograms():
    from snn_onnx.report.potentials import EDGES, PotentialStats
    from snn_onnx.runtime.potentials import PotentialSite

    th = np.array([1.0, 2.0], F32)
    if_site = PotentialSite("a", "a", "IFNeuron", "a/p", th, None, 1)
    mt_site = PotentialSite("b", "b", "MultiThresholdNeuron", "b/p", np.array(0.5, F32), np.array(0.25, F32), -1,
                            levels=3)
    stats = PotentialStats([if_site, mt_site], time_steps=2)
    v_if = np.array([[[0.97, 2.2], [5.0, np.nan]], [[-9.0, 1.0], [0.0, 2.1]]], F32)  # [T=2, B=2, C=2]
    # MT in units of its levels: 0.76/0.5 = 1.52 (near 1.5), -0.13/0.25 = -0.52 (near -0.5), 0.5/0.5 = 1 (not)
    v_mt = np.array([[[0.76, -0.13, 0.5]], [[1.0, -0.25, 3.6]]], F32)  # [T=2, B=1, 3]
    stats.add({"a": v_if, "b": v_mt})
    r = stats.result()
    a, b = r["a"], r["b"]
    assert a["num"] == [3, 4] and a["non_finite"] == [1, 0]
    # z = v/θ per channel: step 1 [0.97, 1.1, 5.0] (NaN apart), step 2 [-9, 0.5, 0, 1.05]
    assert a["near"] == pytest.approx([1 / 3, 1 / 4])
    # levels 0.5, 1.5, 3.5 either side: step 2 has z = 2, -1, 7.2, none within 0.05
    assert b["near"] == pytest.approx([2 / 3, 0.0])
    assert int(np.asarray(a["counts"]).sum()) == 7 and np.asarray(a["counts"]).shape == (2, len(EDGES) - 1)
    assert a["max"][0] == pytest.approx(5.0) and a["min"][1] == pytest.approx(-9.0)


# --------------------------------------------------------------------------- the report


def _near_by_hand(v: np.ndarray, theta: float, margin: float = 0.05) -> np.ndarray:
    """Per step: the fraction of |v/θ − 1| <= margin, straight from the potentials [T, B, ...]."""
    z = v.astype(np.float64) / float(theta)
    return (np.abs(z - 1.0) <= margin).reshape(len(v), -1).mean(axis=1)


@pytest.fixture(scope="module")
def potential_run(tmp_path_factory, digits):
    pytest.importorskip("matplotlib", reason="the report extra: matplotlib")
    pytest.importorskip("tensorboard", reason="the report extra: tensorboard")
    from snn_onnx.report import run_report

    ann, test, train = digits
    root = tmp_path_factory.mktemp("runs")
    return run_report(ann, test.x, test.y, train.x, time_steps=4, neuron="if", runs_dir=root, name="pot",
                      potentials=True)


def test_report_potentials_are_measured_from_the_neurons(potential_run, digits):
    import snn_onnx

    run, folder = potential_run
    ann, test, _ = digits
    sess = snn_onnx.Session(snn_onnx.convert(ann, time_steps=4, neuron="if", data=digits[2].x).model,
                            potentials=True)
    out = sess.run(test.x)
    assert list(run.potentials) == [s["site"] for s in sess.sites]
    for site in sess.potential_sites:
        p = run.potentials[site.site]
        v = out.potentials[site.site]
        assert p["unit"] == "v / θ" and p["num"] == [v[0].size] * 4
        assert site.scale.size == 1  # the example: one threshold per layer
        np.testing.assert_allclose(p["near"], _near_by_hand(v, float(site.scale.ravel()[0])), rtol=1e-12)
        assert np.asarray(p["counts"]).sum(axis=1).tolist() == p["num"]


def test_report_potentials_files_and_tensorboard(potential_run):
    import csv
    import json

    from tensorboard.backend.event_processing import event_accumulator as ea

    run, folder = potential_run
    for f in ("plots/potentials.png", "plots/near_threshold.png", "potentials.csv"):
        assert (folder / f).is_file(), f
    rows = list(csv.DictReader(open(folder / "potentials.csv")))
    assert [r["layer"] for r in rows] == list(run.potentials)
    summary = json.loads((folder / "summary.json").read_text())
    assert [p["layer"] for p in summary["potentials"]] == list(run.potentials)
    acc = ea.EventAccumulator(str(folder / "tensorboard"), size_guidance={ea.SCALARS: 0, ea.HISTOGRAMS: 0})
    acc.Reload()
    for site, p in run.potentials.items():
        near = acc.Scalars(f"PotentialNearThresh/{site}")
        assert [s.step for s in near] == [1, 2, 3, 4]
        np.testing.assert_allclose([s.value for s in near], p["near"], rtol=1e-6)
        hists = acc.Histograms(f"PotentialHist/{site}")
        assert [h.step for h in hists] == [1, 2, 3, 4]
        for h, num, mx in zip(hists, p["num"], p["max"]):
            assert h.histogram_value.num == num and h.histogram_value.max == pytest.approx(mx)


def test_report_without_potentials_has_none(digits):
    pytest.importorskip("matplotlib", reason="the report extra: matplotlib")
    import snn_onnx
    from snn_onnx.report import measure, panels

    ann, test, train = digits
    run = measure(snn_onnx.convert(ann, time_steps=2, neuron="if", data=train.x).model, test.x[:8], test.y[:8])
    assert run.potentials == {} and "potentials" not in run.summary()
    assert {"potentials", "near_threshold"}.isdisjoint(panels.render_all(run))


def test_report_potentials_of_multi_threshold_neurons(digits):
    """Transformer mode (the digits ViT): potentials in units of each neuron's smallest level."""
    import snn_onnx
    from snn_onnx.report import measure
    from snn_onnx_models.digits_vit import digits_vit_path

    _, test, train = digits
    res = snn_onnx.convert(str(digits_vit_path()), time_steps=3, data=train.x[:32])
    assert res.mode == "transformer"
    run = measure(res.model, test.x[:16], test.y[:16], potentials=True)
    sess = snn_onnx.Session(res.model, potentials=True)
    v = sess.run(test.x[:16]).potentials
    assert len(run.potentials) == len(res.sites) and {p["op"] for p in run.potentials.values()} == {
        "MultiThresholdNeuron"}
    site = sess.potential_sites[0]
    p = run.potentials[site.site]
    assert p["unit"] == "v / smallest level"
    vv = v[site.site].astype(np.float64)
    sp = ref.broadcast_param(site.scale, vv.shape[1:], site.channel_axis, "mt", "s")
    sn = ref.broadcast_param(site.scale_neg, vv.shape[1:], site.channel_axis, "mt", "s")
    z = np.where(vv >= 0, vv / sp, vv / sn)
    dist = np.min(np.abs(np.abs(z)[..., None] - (2.0 ** np.arange(site.levels) - 0.5)), axis=-1)
    np.testing.assert_allclose(p["near"], (dist <= 0.05).reshape(3, -1).mean(axis=1), rtol=1e-12)


def test_report_page_with_potentials_in_chromium(potential_run):
    import os
    import sys

    from snn_onnx.report.browser import check_html, find_chromium

    if find_chromium() is None:
        reason = "Chromium is not installed (apt-get install chromium); the HTML report was not checked in a browser"
        if os.environ.get("SNN_ONNX_REQUIRE_CHROMIUM"):
            pytest.fail(reason)
        print(f"SKIP: {reason}", file=sys.stderr)
        pytest.skip(reason)
    run, folder = potential_run
    check = check_html(folder / "report.html")
    assert check.errors == [] and check.console_errors == []
    assert check.figures == 8 and len(check.images) == 8  # the six of every run and the two potential panels
    for img in check.images:
        assert img["width"] > 100 and img["height"] > 100 and img["shown"] > 100, img
    assert check.ok


def test_cli_report_potentials(tmp_path, monkeypatch):
    import csv

    from click.testing import CliRunner
    from snn_onnx_cli.main import cli

    pytest.importorskip("matplotlib", reason="the report extra: matplotlib")
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["report", "--potentials", "-T", "3", "--limit", "16", "--quiet"])
    assert res.exit_code == 0, res.output
    (folder,) = list((tmp_path / "runs").glob("*/*"))
    rows = list(csv.DictReader(open(folder / "potentials.csv")))
    assert len(rows) == 3 and all(0.0 <= float(r["near_threshold"]) <= 1.0 for r in rows)
    res = CliRunner().invoke(cli, ["report", "-T", "3", "--limit", "16", "--quiet", "--name", "plain"])
    assert res.exit_code == 0, res.output
    (plain,) = list((tmp_path / "runs" / "plain").glob("*"))
    assert not (plain / "potentials.csv").exists() and not (plain / "plots" / "potentials.png").exists()


def test_potential_plots_at_depth():
    """120 layers (a transformer's worth): both panels render, with bounded size (ranked bars,
    heatmaps with every layer as a row)."""
    pytest.importorskip("matplotlib", reason="the report extra: matplotlib")
    import struct
    from types import SimpleNamespace

    from snn_onnx.report.potentials import EDGES, histogram_plot, near_threshold_plot

    rng = np.random.default_rng(0)
    pots = {f"blocks/blocks.{i // 12}/layer{i}": {
        "op": "MultiThresholdNeuron", "unit": "v / smallest level", "margin": 0.05, "edges": EDGES,
        "counts": rng.integers(0, 50, size=(8, len(EDGES) - 1)), "near": rng.random(8).tolist(),
        "near_overall": float(rng.random()), "num": [100] * 8, "non_finite": [0] * 8} for i in range(120)}
    run = SimpleNamespace(potentials=pots)
    for png in (histogram_plot(run), near_threshold_plot(run)):
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        w, h = struct.unpack(">II", png[16:24])
        assert w == 1200 and 300 < h <= 1200, (w, h)
    assert histogram_plot(SimpleNamespace(potentials={})) is None

"""Reports at real sizes: a 120-layer SNN's plots keep legends short and bars few, its HTML
opens on the summary and plots with long tables folded and fits a 1400 px window; the panel
and TensorBoard registries take new per-layer measurements without other changes."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

pytest.importorskip("matplotlib", reason="the report extra: matplotlib")
pytest.importorskip("tensorboard", reason="the report extra: tensorboard")

import snn_onnx  # noqa: E402
from snn_onnx.report import measure, plots  # noqa: E402
from snn_onnx.report.runs import aggregate, write_run  # noqa: E402

DEPTH = 120
WIDTH = 12


def deep_mlp(depth: int = DEPTH, width: int = WIDTH, seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    nodes, inits, cur = [], [], "x"
    for i in range(depth):
        w = rng.normal(0, 1.2 / np.sqrt(width), (width, width)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(np.full(width, 0.05, np.float32), f"b{i}")]
        nodes += [helper.make_node("Gemm", [cur, f"w{i}", f"b{i}"], [f"g{i}"], name=f"fc{i}"),
                  helper.make_node("Relu", [f"g{i}"], [f"a{i}"], name=f"block{i // 10}/act{i}")]
        cur = f"a{i}"
    inits += [numpy_helper.from_array(rng.normal(0, 0.3, (width, 10)).astype(np.float32), "wo")]
    nodes.append(helper.make_node("MatMul", [cur, "wo"], ["logits"], name="head"))
    graph = helper.make_graph(nodes, "deep", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", width])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model


@pytest.fixture(scope="module")
def deep_run():
    ann = deep_mlp()
    x = np.random.default_rng(1).uniform(0, 1, (24, WIDTH)).astype(np.float32)
    y = np.arange(24) % 10
    snn = snn_onnx.convert(ann, time_steps=6, neuron="if", data=x, parity_samples=8).model
    return measure(snn, x, y, ann=ann, config={"name": "deep", "model": "deep_mlp"})


@pytest.fixture()
def figures(monkeypatch):
    """Every figure the plots draw, captured before it becomes PNG bytes."""
    seen = []
    real = plots._png

    def capture(fig):
        seen.append(fig)
        return real(fig)

    monkeypatch.setattr(plots, "_png", capture)
    return seen


def legend_sizes(fig) -> list[int]:
    return [len(ax.get_legend().get_texts()) for ax in fig.axes if ax.get_legend() is not None]


def test_plots_at_depth(deep_run, figures):
    assert len(deep_run.energy.neurons) == DEPTH
    for draw in (plots.firing_rates, plots.rate_heatmap, plots.neuron_rate_histograms, plots.energy_layers,
                 plots.accuracy_vs_t):
        png = draw(deep_run)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        fig = figures[-1]
        assert all(n <= plots.MAX_LEGEND for n in legend_sizes(fig)), (draw.__name__, legend_sizes(fig))
        for ax in fig.axes:  # never one tick label per layer at depth
            assert len(ax.get_yticklabels()) <= 41 and len(ax.get_xticklabels()) <= 41, draw.__name__
        width, height = fig.get_size_inches() * fig.dpi
        assert width <= 1300 and height <= 1300, (draw.__name__, width, height)
    rates_fig = figures[0]
    bars = [p for p in rates_fig.axes[0].patches]
    assert len(bars) == plots.TOP_K + 1  # the most active layers and "other N layers"
    assert "other 105 layers" in rates_fig.axes[0].get_yticklabels()[-1].get_text()


def test_top_k_groups_the_rest():
    labels, vals, idx = plots.top_k([f"l{i}" for i in range(40)], np.arange(40, dtype=float), k=5)
    assert labels[:5] == ["l39", "l38", "l37", "l36", "l35"] and labels[5] == "other 35 layers (sum)"
    assert vals[5] == pytest.approx(sum(range(35))) and idx == [39, 38, 37, 36, 35, -1]
    labels, vals, _ = plots.top_k(["a", "b"], [1.0, 2.0], k=5)
    assert labels == ["b", "a"]  # nothing to group


def test_dashboard_legend_stays_short(figures):
    runs = [{"label": f"r{i}", "model": f"m{i % 3}", "neuron": "if" if i % 2 else "paraif", "energy_uj": 1.0 + i,
             "accuracy": 0.5 + i / 100, "ann_energy_uj": 10.0, "ann_accuracy": 0.9, "spikes": 100.0 * (i + 1),
             "anytime": [(0.5 + i, 0.4), (1.0 + i, 0.5 + i / 100)], "anytime_spikes": [(50.0, 0.4), (100.0 * (i + 1), 0.5)]}
            for i in range(30)]
    plots.dashboard(runs, highlight="r3")
    assert legend_sizes(figures[-1]) == [6]  # 3 models x 2 neurons, not 30 runs
    many = [{**r, "model": f"m{i}"} for i, r in enumerate(runs)]
    plots.dashboard(many)
    assert legend_sizes(figures[-1]) == []  # 60 groups: no legend at all
    assert len(figures[-1].axes[1].collections) == 30  # but every run is on the spikes panel


def test_html_opens_on_the_summary(deep_run, tmp_path):
    folder = write_run(deep_run, tmp_path / "runs", tensorboard=False)
    html = (folder / "report.html").read_text()
    first_table, first_plot = html.index("<table"), html.index("<figure")
    assert first_plot < first_table and html.index("<h2>Plots</h2>") < html.index("Counted as MACs")
    assert '<details id="layers">' in html and '<details id="spiking-layers">' in html  # folded: > 15 rows
    assert '<details id="anytime" open>' in html  # 6 rows: open
    from snn_onnx.report.browser import check_html, find_chromium

    if find_chromium() is None:
        reason = "Chromium is not installed (apt-get install chromium); the deep report was not checked in a browser"
        if os.environ.get("SNN_ONNX_REQUIRE_CHROMIUM"):
            pytest.fail(reason)
        print(f"SKIP: {reason}", file=sys.stderr)
        pytest.skip(reason)
    check = check_html(folder / "report.html", width=1400)
    assert check.ok and check.fits_width, (check.page_width, check.viewport, check.errors)
    assert check.viewport == 1400 and check.folded_sections >= 3
    assert all(img["shown"] <= 1300 for img in check.images)


def test_registries_take_new_measurements(deep_run, tmp_path, monkeypatch):
    """A later per-layer measurement (membrane potentials) is one panel and one tag writer."""
    from snn_onnx.report import panels, tensorboard

    names = [n.site for n in deep_run.energy.neurons]
    edges = np.linspace(-1, 1, 11)
    fake = {n: np.histogram(np.random.default_rng(i).normal(0, 0.4, 200), bins=edges)[0] for i, n in enumerate(names)}
    monkeypatch.setattr(panels, "PANELS", panels.PANELS + [
        panels.Panel("potential_hist", "Membrane potentials per layer.",
                     lambda run: plots.layer_histograms(names, np.array([fake[n] for n in names]), edges,
                                                        title="membrane potential", xlabel="v / θ", marks=[1.0])),
        panels.Panel("never", "A panel whose data the run lacks.", lambda run: None),
    ])

    def potential_tags(run, w):
        for n in names[:3]:
            w.scalar(f"PotentialNearThresh/{n}", 0.25, run.energy.time_steps)

    monkeypatch.setattr(tensorboard, "TAG_WRITERS", tensorboard.TAG_WRITERS + [potential_tags])
    folder = write_run(deep_run, tmp_path / "runs")
    html = (folder / "report.html").read_text()
    assert 'id="plot-potential_hist"' in html and "Membrane potentials per layer." in html and "plot-never" not in html
    assert (folder / "plots" / "potential_hist.png").is_file() and not (folder / "plots" / "never.png").exists()
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(str(folder / "tensorboard"), size_guidance={ea.SCALARS: 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert f"PotentialNearThresh/{names[0]}" in tags and "anytime/spikes" in tags
    spikes = [s.value for s in acc.Scalars("anytime/spikes")]
    assert spikes == sorted(spikes) and spikes[-1] == pytest.approx(deep_run.anytime[-1].spikes, rel=1e-6)


def test_spikes_per_sample_are_the_counts(deep_run, tmp_path):
    """The dashboard's x axis: spikes per sample = all spike counts / samples."""
    total = sum(n.spikes for n in deep_run.energy.neurons) / deep_run.samples
    assert deep_run.anytime[-1].spikes == pytest.approx(total, rel=1e-9)
    assert deep_run.headline()["spikes"] == pytest.approx(total, rel=1e-9)
    write_run(deep_run, tmp_path / "runs", tensorboard=False)
    csv_path, png, n = aggregate(tmp_path / "runs")
    assert n == 1 and "spikes" in csv_path.read_text().splitlines()[0]
    summary = json.loads(next((tmp_path / "runs").glob("*/*/summary.json")).read_text())
    assert [p["spikes"] for p in summary["anytime"]] == [p.spikes for p in deep_run.anytime]

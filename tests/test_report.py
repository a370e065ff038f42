"""Run folders, anytime accuracy, TensorBoard events, the HTML page in a real browser, the
dashboard across runs and the CLI (`snn-onnx report`, `runs aggregate`, `eval --report`)."""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

pytest.importorskip("sklearn", reason="the report tests use the digits data (scikit-learn)")
pytest.importorskip("matplotlib", reason="the report extra: matplotlib")
pytest.importorskip("tensorboard", reason="the report extra: tensorboard")

import snn_onnx  # noqa: E402
from snn_onnx import data  # noqa: E402
from snn_onnx.energy import EnergyConfig, EnergyModel  # noqa: E402
from snn_onnx.report import measure, run_report  # noqa: E402
from snn_onnx.report.runs import aggregate, load_runs  # noqa: E402
from snn_onnx_models import example_model_path  # noqa: E402

T = 4
N_TEST = 64


@pytest.fixture(scope="module")
def digits():
    ann = onnx.load(example_model_path())
    test = data.load("digits", split="test", limit=N_TEST)
    train = data.load("digits", split="train", limit=128)
    return ann, test, train


@pytest.fixture(scope="module")
def runs(tmp_path_factory, digits):
    """Two runs in one runs folder: IF at T=4 and ParaIF at T=4."""
    ann, test, train = digits
    root = tmp_path_factory.mktemp("runs")
    cfg = EnergyConfig(e_ac_pj=0.9, e_mac_pj=4.6)
    out = {}
    for neuron in ("if", "paraif"):
        out[neuron] = run_report(ann, test.x, test.y, train.x, time_steps=T, neuron=neuron, energy=cfg, runs_dir=root,
                                 name=f"digits-{neuron}", config={"model": "example", "data": {"name": test.name}})
    return root, out


def test_run_folder(runs) -> None:
    root, out = runs
    run, folder = out["if"]
    assert folder.parent.parent == root and folder.parent.name == "digits-if"
    for f in ("config.json", "summary.json", "layers.csv", "spiking_layers.csv", "anytime.csv", "report.html",
              "plots/firing_rates.png", "plots/accuracy_vs_t.png", "plots/energy_layers.png", "plots/dashboard.png",
              "plots/rate_heatmap.png", "plots/neuron_rates.png"):
        assert (folder / f).is_file(), f
    for png in (folder / "plots").glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["time_steps"] == T and cfg["neuron"]["kind"] == "if" and cfg["energy"] == {"e_ac_pj": 0.9, "e_mac_pj": 4.6}
    summary = json.loads((folder / "summary.json").read_text())
    h = summary["headline"]
    e = run.energy
    assert h["sops"] == pytest.approx(e.sops) and h["energy_ratio"] == pytest.approx(e.energy_ratio)
    assert h["energy_uj"] == pytest.approx((0.9 * e.sops + 4.6 * e.macs) * 1e-6)
    assert h["ann_energy_uj"] == pytest.approx(4.6 * e.ann_macs * 1e-6)
    # the example: 3 QCFS sites, conv1 on the repeated input (MAC), conv2, conv3 and the head fed by spikes
    assert [l["name"] for l in summary["mac_layers"]] == ["features.1"]
    with (folder / "layers.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["layer"] for r in rows] == [l.name for l in e.layers]
    assert [r["counting"] for r in rows] == ["MAC", "SOP", "SOP", "SOP"]
    for r, l in zip(rows, e.layers):
        assert float(r["sops"]) == pytest.approx(l.sops.sum(), rel=1e-5)
        assert float(r["energy_pj"]) == pytest.approx(l.energy_pj, rel=1e-5)
    with (folder / "anytime.csv").open() as f:
        anytime = list(csv.DictReader(f))
    assert [int(r["t"]) for r in anytime] == list(range(1, T + 1))
    assert float(anytime[-1]["energy_pj"]) == pytest.approx(e.energy_pj, rel=1e-5)
    assert float(anytime[-1]["accuracy"]) == pytest.approx(run.accuracy)
    with (folder / "spiking_layers.csv").open() as f:
        srows = list(csv.DictReader(f))
    assert [r["layer"] for r in srows] == ["features.2", "features.5", "features.9"]


def test_anytime_equals_shorter_if_runs(runs, digits) -> None:
    """IF is causal: the T=4 run's accuracy and energy after t steps are those of an SNN
    converted for T=t (same thresholds), run on its own."""
    ann, test, train = digits
    run, _ = runs[1]["if"]
    for t in (1, 2):
        short = snn_onnx.convert(ann, time_steps=t, neuron="if", data=train.x, parity_samples=4).model
        r = measure(short, test.x, test.y, ann=ann)
        p = run.anytime[t - 1]
        assert p.accuracy == pytest.approx(r.accuracy) and p.agreement == pytest.approx(r.agreement)
        assert p.energy_pj == pytest.approx(r.energy.energy_pj, rel=1e-9)
        assert r.energy.sops == pytest.approx(sum(l.sops[:t].sum() for l in run.energy.layers), rel=1e-9)


def test_anytime_accuracy_from_per_step_output(runs, digits) -> None:
    """The anytime accuracy and agreement are those of the per-step running-mean output."""
    from snn_onnx.report.measure import ann_outputs, run_snn

    ann, test, train = digits
    run, _ = runs[1]["paraif"]
    assert not run.causal
    snn = snn_onnx.convert(ann, time_steps=T, neuron="paraif", data=train.x, parity_samples=4).model
    per_step, counts, n = run_snn(snn_onnx.Session(snn), test.x, "logits", batch_size=10)
    assert per_step.shape == (T, N_TEST, 10) and n == N_TEST
    ann_pred = ann_outputs(ann, test.x, "logits").argmax(-1)
    for t in range(T):
        assert run.anytime[t].accuracy == pytest.approx(np.mean(per_step[t].argmax(-1) == test.y))
        assert run.anytime[t].agreement == pytest.approx(np.mean(per_step[t].argmax(-1) == ann_pred))
    assert run.ann_accuracy == pytest.approx(np.mean(ann_pred == test.y))
    # spike counts summed over batches of 10 equal those of the run's batches of 64
    for layer in run.energy.neurons:
        assert int(counts[layer.site].sum()) == layer.spikes


def test_tensorboard_events(runs) -> None:
    from tensorboard.backend.event_processing import event_accumulator as ea

    run, folder = runs[1]["if"]
    files = list((folder / "tensorboard").glob("events.out.tfevents.*"))
    assert len(files) == 1
    acc = ea.EventAccumulator(str(folder / "tensorboard"), size_guidance={ea.SCALARS: 0, ea.HISTOGRAMS: 0})
    acc.Reload()
    tags = acc.Tags()
    expected_scalars = {"anytime/accuracy", "anytime/agreement", "anytime/firing_rate", "anytime/energy_uj",
                        "firing_rate/all", "summary/accuracy", "summary/energy_ratio", "summary/sops", "summary/energy_uj"}
    expected_scalars |= {f"firing_rate/{n.site}" for n in run.energy.neurons}
    expected_scalars |= {f"sops/{l.name}" for l in run.energy.layers if l.counting == "SOP"}
    expected_scalars |= {f"energy_uj/{l.name}" for l in run.energy.layers}
    assert expected_scalars <= set(tags["scalars"]), expected_scalars - set(tags["scalars"])
    hist = {f"neuron_rate/{n.site}" for n in run.energy.neurons} | {f"neuron_rate_per_step/{n.site}" for n in run.energy.neurons}
    assert hist <= set(tags["histograms"])
    accs = acc.Scalars("anytime/accuracy")
    assert [s.step for s in accs] == list(range(1, T + 1))
    np.testing.assert_allclose([s.value for s in accs], [p.accuracy for p in run.anytime], rtol=1e-6)
    ratio = acc.Scalars("summary/energy_ratio")
    assert ratio[0].value == pytest.approx(run.energy.energy_ratio, rel=1e-6)
    site = run.energy.neurons[0]
    h = acc.Histograms(f"neuron_rate/{site.site}")[0].histogram_value
    assert h.num == site.neurons and h.sum == pytest.approx(site.per_neuron_rate.sum(), rel=1e-6)
    per_step = acc.Histograms(f"neuron_rate_per_step/{site.site}")
    assert [p.step for p in per_step] == list(range(1, T + 1))
    # the mean of the per-neuron rates at step t is the layer's firing rate at t
    for p, r in zip(per_step, site.rate_per_step):
        assert p.histogram_value.sum / p.histogram_value.num == pytest.approx(r, rel=1e-6)


def test_html_opens_in_chromium(runs, tmp_path) -> None:
    from snn_onnx.report.browser import check_html, find_chromium

    if find_chromium() is None:
        reason = "Chromium is not installed (apt-get install chromium); the HTML report was not checked in a browser"
        if os.environ.get("SNN_ONNX_REQUIRE_CHROMIUM"):
            pytest.fail(reason)
        print(f"SKIP: {reason}", file=sys.stderr)
        pytest.skip(reason)
    run, folder = runs[1]["if"]
    html = (folder / "report.html").read_text()
    assert "<script" not in html and "http://" not in html and "https://" not in html  # self-contained
    check = check_html(folder / "report.html")
    assert check.errors == [] and check.console_errors == []
    assert check.title == f"snn-onnx report: {run.name}"
    assert check.figures == 6 and len(check.images) == 6
    for img in check.images:
        assert img["src"].startswith("data:image/png;base64,")
        assert img["width"] > 100 and img["height"] > 100 and img["shown"] > 100, img
    assert check.ok
    # the checker is not vacuous: a page with a corrupt image fails it
    broken = tmp_path / "broken.html"
    broken.write_text(html.replace("data:image/png;base64,", "data:image/png;base64,AAAA", 1))
    bad = check_html(broken)
    assert not bad.ok and sum(i["width"] == 0 for i in bad.images) == 1


def test_aggregate(runs) -> None:
    root, out = runs
    csv_path, png, n = aggregate(root)
    assert n == 2 and png.read_bytes()[:4] == b"\x89PNG"
    with csv_path.open() as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["neuron"] for r in rows) == ["if", "paraif"]
    for r in rows:
        run = out[r["neuron"]][0]
        assert float(r["energy_ratio"]) == pytest.approx(run.energy.energy_ratio, rel=1e-6)
        assert float(r["accuracy"]) == pytest.approx(run.accuracy)
    assert len(load_runs(root)) == 2


def test_cli_report_eval_and_aggregate(tmp_path, monkeypatch) -> None:
    from click.testing import CliRunner

    from snn_onnx_cli.main import cli

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    res = runner.invoke(cli, ["report"])  # no arguments: the bundled example
    assert res.exit_code == 0, res.output
    for needle in ("SNN/ANN", "SOPs", "firing rate", "counted as MAC", "features.1", "wrote runs/digits_qcfs_cnn-if-T8/"):
        assert needle in res.output, needle
    folders = list((tmp_path / "runs").glob("*/*/report.html"))
    assert len(folders) == 1
    res = runner.invoke(cli, ["eval", "-T", "1,2", "--neurons", "if,paraif", "--limit", "32", "--quiet", "--report", "evalruns",
                              "--e-ac", "1.0", "--e-mac", "5.0"])
    assert res.exit_code == 0, res.output
    names = sorted(p.parent.parent.name for p in (tmp_path / "evalruns").glob("*/*/summary.json"))
    assert names == ["digits_qcfs_cnn-if-T2", "digits_qcfs_cnn-paraif-T1", "digits_qcfs_cnn-paraif-T2"]
    assert (tmp_path / "evalruns" / "runs.csv").is_file() and (tmp_path / "evalruns" / "dashboard.png").is_file()
    cfg = json.loads(next((tmp_path / "evalruns").glob("*/*/config.json")).read_text())
    assert cfg["energy"] == {"e_ac_pj": 1.0, "e_mac_pj": 5.0}
    res = runner.invoke(cli, ["runs", "aggregate"])
    assert res.exit_code == 0 and "1 runs" in res.output, res.output
    res = runner.invoke(cli, ["runs", "aggregate", "--runs-dir", "nowhere"])
    assert res.exit_code == 1 and "runs folder not found" in res.output
    res = runner.invoke(cli, ["report", "--e-ac", "-1"])
    assert res.exit_code == 1 and "e_ac_pj" in res.output


def test_energy_model_needs_snn(digits) -> None:
    from snn_onnx.energy import EnergyError

    ann, test, _ = digits
    with pytest.raises(EnergyError, match="not an snn-onnx SNN"):
        EnergyModel(ann, {"input": test.x[:1]})

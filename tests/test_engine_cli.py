"""--engine on run / eval / report / bench, and --ray on eval (issue 10)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from snn_onnx_cli.main import cli

import snn_onnx
from snn_onnx import data
from snn_onnx_models import example_model_path


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=True)


@pytest.fixture(scope="module")
def digits_snn(tmp_path_factory):
    import onnx

    d = tmp_path_factory.mktemp("engine")
    ann = onnx.load(str(example_model_path()))
    x = data.load("digits", split="test", limit=9).x
    np.save(d / "x.npy", x)
    paths = {}
    for neuron in ("paraif", "if"):
        paths[neuron] = d / f"digits.{neuron}.snn.onnx"
        snn_onnx.convert(ann, time_steps=8, neuron=neuron, data=x, parity_samples=2, output=paths[neuron])
    return d, paths


def test_run_engines(digits_snn):
    d, paths = digits_snn
    outs = {}
    for engine in ("steps", "collapsed", "auto"):
        res = invoke("run", str(paths["paraif"]), "--input", str(d / "x.npy"), "--engine", engine,
                     "--output", str(d / f"{engine}.npz"), "--force")
        assert res.exit_code == 0, res.output
        assert f"engine: {'collapsed' if engine == 'auto' else engine}" in res.stderr
        outs[engine] = np.load(d / f"{engine}.npz")
    for k in outs["steps"].files:
        ref = outs["steps"][k]
        if ref.dtype == np.int64:
            assert np.array_equal(outs["collapsed"][k], ref), k
        else:
            np.testing.assert_allclose(outs["collapsed"][k], ref, atol=1e-4 * np.abs(ref).max(), err_msg=k)
    res = invoke("run", str(paths["if"]), "--input", str(d / "x.npy"), "--engine", "collapsed")
    assert res.exit_code == 1 and res.stderr.startswith("error: node ") and "IFNeuron" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    res = invoke("run", str(paths["if"]), "--input", str(d / "x.npy"))
    assert res.exit_code == 0 and "engine: steps (node 'features.2/IFNeuron'" in res.stderr


def test_eval_engines_and_json(tmp_path):
    out = tmp_path / "eval.json"
    res = invoke("eval", "-T", "2,8", "--neurons", "paraif", "--limit", "60", "--json-out", str(out), "--quiet")
    assert res.exit_code == 0, res.output
    rows = json.loads(out.read_text())["rows"]
    assert [r["engine"] for r in rows] == ["collapsed", "collapsed"] and rows[1]["parity_rel_max_diff"] < 1e-5
    assert all(r["sops"] > 0 and r["energy_uj"] > 0 for r in rows)
    res = invoke("eval", "-T", "2", "--neurons", "paraif", "--limit", "60", "--engine", "steps", "--json-out",
                 str(tmp_path / "steps.json"), "--quiet")
    steps = json.loads((tmp_path / "steps.json").read_text())["rows"]
    assert steps[0]["engine"] == "steps" and steps[0]["snn_accuracy"] == rows[0]["snn_accuracy"]
    assert steps[0]["sops"] == rows[0]["sops"] and steps[0]["firing_rate"] == rows[0]["firing_rate"]
    for bad, msg in ((["--engine", "collapsed"], "--neurons paraif"), (["--workers", "3"], "--ray only"),
                     (["--ray", "--report", str(tmp_path / "r")], "cannot be combined with --ray")):
        res = invoke("eval", "-T", "2", "--limit", "10", *bad)
        assert res.exit_code == 2 and msg in res.output, res.output


def test_eval_ray_without_ray_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    res = invoke("eval", "-T", "2", "--limit", "10", "--ray")
    assert res.exit_code == 1 and "pip install 'snn-onnx[ray]'" in res.stderr


def test_report_records_engine(tmp_path):
    res = invoke("report", "--neuron", "paraif", "-T", "4", "--limit", "30", "--runs-dir", str(tmp_path), "--no-tensorboard",
                 "--quiet", "--engine", "collapsed")
    assert res.exit_code == 0, res.output
    config = json.loads(next(tmp_path.rglob("config.json")).read_text())
    assert config["engine"] == "collapsed"


def test_bench_engine_option(monkeypatch):
    from snn_onnx.bench import cpu

    args = cpu.parse_args(["--quick", "--engine", "collapsed"])
    assert args.engine == "collapsed"

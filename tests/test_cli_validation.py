"""The CLI validates every option it takes: lists of T, shapes, classes, options that do not
apply to the model or mode (refused, never ignored), module:factory models from the current
folder; it states provenance (random-init weights, random calibration data); its progress
display handles any phase names."""

from __future__ import annotations

import io
import json
import textwrap

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx_builders import inputs, small_cnn
from snn_onnx_cli.main import cli
from snn_onnx_cli.progress import Progress


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=True)


def one_line_error(res, code: int, *fragments: str) -> str:
    assert res.exit_code == code, (res.exit_code, res.output)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.output and "Usage:" not in res.output
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


@pytest.fixture()
def relu_model(tmp_path):
    path = tmp_path / "relu.onnx"
    onnx.save(small_cnn(), str(path))
    np.savez(tmp_path / "calib.npz", x=inputs(32), y=np.arange(32) % 10)
    return path


@pytest.mark.parametrize("t_list, fragment", [
    ("4,x", "entry 'x'"), ("4,,8", "entry ''"), ("0,4", "positive"), ("4,4", "repeats a value"), ("", "entry ''"),
    ("2.5", "entry '2.5'"),
])
def test_lists_of_t(t_list, fragment):
    one_line_error(invoke("eval", "-T", t_list, "--quiet"), 2, "--time-steps", fragment)


def test_single_t_and_shapes(relu_model, tmp_path):
    one_line_error(invoke("convert", "-T", "4,x", "--quiet"), 2, "-T", "'4,x'")
    one_line_error(invoke("convert", "-T", "0", "--quiet"), 2, "-T", "0")
    one_line_error(invoke("report", "-T", "-2", "--quiet"), 2, "-T")
    one_line_error(invoke("convert", "resnet18", "--input-shape", "3,32,x", "--quiet", "-o", str(tmp_path / "r.onnx")), 2,
                   "--input-shape", "entry ''")
    one_line_error(invoke("convert", "resnet18", "--input-shape", "3,0,32", "--quiet", "-o", str(tmp_path / "r.onnx")), 2,
                   "--input-shape", "positive")


@pytest.mark.parametrize("flag", [["--input-shape", "1,6,6"], ["--num-classes", "10"], ["--exporter", "legacy"],
                                  ["--qcfs-levels", "4"]])
def test_export_options_refused_for_onnx_files(relu_model, tmp_path, flag):
    one_line_error(invoke("convert", str(relu_model), "-o", str(tmp_path / "o.onnx"), "--quiet", *flag), 2,
                   f"{flag[0]} does not apply", "is an ONNX model")
    one_line_error(invoke("eval", str(relu_model), "--data", str(tmp_path / "calib.npz"), "--quiet", *flag), 2,
                   f"{flag[0]} does not apply")
    assert not (tmp_path / "o.onnx").exists()


def test_calibration_options_refused_where_they_do_not_apply(relu_model, tmp_path):
    out = tmp_path / "o.onnx"
    # the bundled example is QCFS: every threshold comes from the ANN
    one_line_error(invoke("convert", "--calib-method", "percentile", "-o", str(out), "--quiet"), 2,
                   "--calib-method does not apply", "all 3 thresholds come from the ANN")
    one_line_error(invoke("convert", "--per-channel", "-o", str(out), "--quiet"), 2, "--per-channel does not apply")
    # a staircase (QCFS) fixes its own offset: the converter refuses a contradicting --v-init by node
    one_line_error(invoke("convert", "--v-init", "0.3", "-o", str(out), "--quiet"), 1,
                   "v_init=0.3 does not apply to the staircase activation", "leave v_init unset")
    one_line_error(invoke("convert", "--v-init", "0.5", "-o", str(out), "--quiet"), 2,
                   "--v-init does not apply", "every activation is a staircase")
    one_line_error(invoke("convert", str(relu_model), "--percentile", "99", "-o", str(out), "--quiet"), 2,
                   "--percentile does not apply", "--calib-method percentile")
    one_line_error(invoke("convert", "--mode", "transformer", "--calib-method", "percentile", "-o", str(out), "--quiet"), 2,
                   "--calib-method does not apply", "transformer mode")
    one_line_error(invoke("convert", "--mode", "cnn", "--levels", "4", "-o", str(out), "--quiet"), 2,
                   "--levels does not apply")
    # --mode auto chooses CNN mode for the example: transformer options are refused after analysis
    one_line_error(invoke("convert", "--mt-percentile", "99.5", "-o", str(out), "--quiet"), 2,
                   "--mt-percentile does not apply", "CNN mode")
    assert not out.exists()
    # where they apply they are taken
    res = invoke("convert", str(relu_model), "--data", str(tmp_path / "calib.npz"), "--calib-method", "percentile",
                 "--percentile", "99", "--v-init", "0.25", "-T", "2", "--neuron", "if", "-o", str(out), "--quiet")
    assert res.exit_code == 0, res.output
    meta = json.loads(invoke("info", str(out), "--json").output)
    assert meta["calibration"]["method"] == "percentile" and meta["calibration"]["percentile"] == 99
    assert meta["neuron"]["v_init"] == 0.25


def test_classes_must_fit_the_model(relu_model, tmp_path):
    np.savez(tmp_path / "bad.npz", x=inputs(8), y=np.array([0, 1, 2, 3, 4, 5, 6, 12]))
    one_line_error(invoke("eval", str(relu_model), "--data", str(tmp_path / "bad.npz"), "-T", "2", "--quiet"), 1,
                   "labels 0..12", "outputs 10 classes")


def test_module_factory_from_the_current_folder(tmp_path, monkeypatch):
    pytest.importorskip("torch", reason="module:factory models are exported with torch")
    (tmp_path / "ux_cwd_nets.py").write_text(textwrap.dedent("""
        import torch.nn as nn

        def small(num_classes: int = 10):
            return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, num_classes))

        def fixed():
            return small()
    """))
    monkeypatch.chdir(tmp_path)
    import sys

    assert str(tmp_path) not in sys.path and "" not in sys.path  # found by the CLI, not by the test's path
    res = invoke("convert", "ux_cwd_nets:small", "--input-shape", "1x6x6", "--num-classes", "7", "-T", "2", "--neuron", "if",
                 "--quiet", "--exporter", "legacy")
    assert res.exit_code == 0, res.output
    snn = onnx.load(str(tmp_path / "ux_cwd_nets_small.T2.if.snn.onnx"))
    assert snn.graph.output[0].type.tensor_type.shape.dim[-1].dim_value == 7  # --num-classes applied
    info = invoke("info", "ux_cwd_nets_small.T2.if.snn.onnx").output
    assert "weights: as the factory ux_cwd_nets:small makes them" in info
    assert "calibration data: random inputs (seed 0)" in info and "RANDOM" in info
    one_line_error(invoke("convert", "ux_cwd_nets:fixed", "--input-shape", "1,6,6", "--num-classes", "7", "--quiet"), 1,
                   "takes no num_classes argument")
    one_line_error(invoke("convert", "ux_cwd_nets:nothing", "--input-shape", "1,6,6", "--quiet"), 1,
                   "cannot import model factory 'ux_cwd_nets:nothing'")


def test_random_init_weights_are_stated(tmp_path, monkeypatch):
    pytest.importorskip("timm", reason="timm model names need timm")
    monkeypatch.chdir(tmp_path)
    res = invoke("convert", "test_resnet", "--input-shape", "3,32,32", "--num-classes", "10", "-T", "2", "--neuron", "if",
                 "--num-calib", "16", "--quiet", "--exporter", "legacy")
    assert res.exit_code == 0, res.output
    assert "test_resnet has random-init weights" in res.stderr and "random inputs" in res.stderr
    info = invoke("info", "test_resnet.T2.if.snn.onnx").output
    assert "weights: timm test_resnet, random init" in info and "RANDOM INIT: accuracy means nothing" in info
    meta = json.loads(invoke("info", "test_resnet.T2.if.snn.onnx", "--json").output)
    assert meta["provenance"]["weights_random"] is True and meta["provenance"]["calibration_random"] is True


def test_report_states_provenance_and_runs_without_labels(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib", reason="the report extra")
    monkeypatch.chdir(tmp_path)
    onnx.save(small_cnn(), str(tmp_path / "m.onnx"))
    res = invoke("report", "m.onnx", "--data", "random", "--limit", "16", "-T", "3", "--quiet", "--no-tensorboard")
    assert res.exit_code == 0, res.output
    folder = next((tmp_path / "runs").glob("*/*"))
    html = (folder / "report.html").read_text()
    assert 'class="warn"><b>Provenance.</b>' in html and "test data: random inputs (seed 0), no labels" in html
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["headline"]["accuracy"] is None and summary["headline"]["agreement"] is not None
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["provenance"]["calibration_random"] is True


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_handles_any_phase():
    out = FakeTTY()
    p = Progress(stream=out, interval=0.01)
    with p.step("convert"):
        for phase, n, total in [("analyse", 1, 1), ("calibrate", 8, 32), ("calibrate", 24, 32), ("rewrite", 0, 0),
                                ("a phase nobody planned", 1, 3)]:
            p(phase, n, total)
        assert p.line().startswith("a phase nobody planned")
        p("validate", 0, 0)
        assert p.line().startswith("validate")
    with p.step("run"):
        assert p.line().startswith("run ")  # a step without phases still shows its name and time
    p.close()
    text = out.getvalue()
    for line in ("analyse: done in", "calibrate: done in", "(32/32)", "rewrite: done in", "a phase nobody planned: done in",
                 "validate: done in", "convert: done in", "run: done in"):
        assert line in text, (line, text)
    # a counted phase that completes hands the line back to its step until the next phase
    q = Progress(stream=FakeTTY(), interval=0.01)
    with q.step("convert"):
        q("calibrate", 4, 4)
        assert q.line().startswith("convert ")
    q.close()
    quiet = io.StringIO()  # not a terminal: nothing at all
    r = Progress(stream=quiet)
    r("calibrate", 1, 2)
    with r.step("export"):
        pass
    r.close()
    assert quiet.getvalue() == ""

"""``snn-onnx export-nir / import-nir / check``: exit codes, one-line errors, the table."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from onnx_builders import inputs, small_cnn
from snn_onnx_cli.main import cli

import snn_onnx

pytest.importorskip("nir", reason="NIR support is the 'nir' extra (pip install 'snn-onnx[nir]')")


def invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=True)


def one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])


@pytest.fixture(scope="module")
def snn_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    out = {}
    for name, cfg in {"zero": dict(kind="if", reset="zero", v_init=0.0), "subtract": dict(kind="if", v_init=0.0)}.items():
        out[name] = d / f"{name}.snn.onnx"
        snn_onnx.convert(small_cnn(), time_steps=6, neuron=snn_onnx.NeuronConfig(**cfg), data=inputs(),
                         output=out[name], parity_samples=4)
    return out


def test_export_import_check_round_trip(tmp_path, snn_files):
    nir_path = tmp_path / "m.nir"
    r = invoke("export-nir", snn_files["zero"], "-o", nir_path)
    assert r.exit_code == 0, r.output
    assert "IF" in r.output and nir_path.exists()
    back = tmp_path / "back.snn.onnx"
    r = invoke("import-nir", nir_path, "-o", back, "-T", 6, "--static-input")
    assert r.exit_code == 0, r.output
    r = invoke("check", back, "--nir-reader", "spikingjelly", "--markdown", tmp_path / "t.md")
    assert r.exit_code == 0, r.output
    assert "| NIR sim" in r.output and "100.000 %" in r.output and "pass" in r.output
    assert (tmp_path / "t.md").read_text().count("\n") > 5


def test_export_refuses_to_overwrite_and_names_the_reset(tmp_path, snn_files):
    nir_path = tmp_path / "m.nir"
    nir_path.write_text("keep me")
    one_line_error(invoke("export-nir", snn_files["zero"], "-o", nir_path), "exists", "--force")
    assert nir_path.read_text() == "keep me"
    one_line_error(invoke("export-nir", snn_files["subtract"], "-o", tmp_path / "s.nir"),
                   "subtractive reset", "--lossy")
    assert not (tmp_path / "s.nir").exists()
    one_line_error(invoke("import-nir", tmp_path / "missing.nir", "-o", tmp_path / "x.snn.onnx", "-T", 4), "not found")
    one_line_error(invoke("import-nir", nir_path, "-o", tmp_path / "x.snn.onnx", "-T", 4), "not a NIR file")


def test_lossy_export_prints_the_measured_agreement(tmp_path, snn_files):
    r = invoke("export-nir", snn_files["subtract"], "-o", tmp_path / "s.nir", "--lossy", "--samples", 8)
    assert r.exit_code == 0, r.output
    assert "LOSSY" in r.output and "spike agreement" in r.output and "random" in r.output
    import nir

    assert "lossy_agreement" in nir.read(str(tmp_path / "s.nir")).metadata


def test_check_fails_past_the_tolerance(snn_files):
    r = invoke("check", snn_files["subtract"], "--lossy", "--samples", 8)
    assert r.exit_code == 1
    assert "FAIL" in r.stderr and "NIR sim" in r.stderr


def test_check_of_the_example_against_spikingjelly_ann2snn(tmp_path):
    """The bundled QCFS digits CNN converted with IF neurons (subtractive reset, v_init 0.5 from
    QCFS's shift): SpikingJelly's own converter with our thresholds (HalfThresholdIFNode) gives
    the same spikes; NIR cannot say this neuron, so those columns are not available."""
    pytest.importorskip("spikingjelly")
    path = tmp_path / "digits.snn.onnx"
    r = invoke("convert", "-o", path, "--neuron", "if", "-T", 8, "--num-calib", 64, "--quiet")
    assert r.exit_code == 0, r.output
    r = invoke("check", path, "--samples", 16)
    assert r.exit_code == 0, r.output
    table = r.output
    assert "digits" in table and "SpikingJelly ann2snn" in table
    sj_col = [ln for ln in table.splitlines() if ln.startswith("| verdict")][0].split("|")[-2].strip()
    assert sj_col == "pass", table
    assert "export refused" in table and "subtractive reset" in table

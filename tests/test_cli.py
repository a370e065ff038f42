"""The snn-onnx command: the main job on the example, and one clear error line per bad input."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx_builders import inputs, small_cnn
from snn_onnx_cli.main import cli

import snn_onnx


def invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=True)


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])


@pytest.fixture()
def cnn_file(tmp_path):
    path = tmp_path / "cnn.onnx"
    onnx.save(small_cnn(), str(path))
    np.savez(tmp_path / "calib.npz", x=inputs(32))
    return path


def test_convert_info_run_on_a_file(tmp_path, cnn_file):
    out = tmp_path / "cnn.snn.onnx"
    res = invoke("convert", str(cnn_file), "-o", str(out), "-T", "4", "--neuron", "if", "--data", str(tmp_path / "calib.npz"), "--quiet")
    assert res.exit_code == 0, res.output
    assert "parity 'logits' vs ANN on 32 samples" in res.output and out.exists()
    res = invoke("info", str(out))
    assert res.exit_code == 0 and "time steps T: 4" in res.output and "IFNeuron" in res.output
    np.save(tmp_path / "x.npy", inputs(3))
    res = invoke("run", str(out), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "o.npz"))
    assert res.exit_code == 0 and "logits: shape [3, 10]" in res.output
    saved = np.load(tmp_path / "o.npz")
    assert saved["logits"].shape == (3, 10) and saved["spike_counts/act"].shape == (4, 4, 6, 6)


def test_convert_refuses_existing_output_unless_forced(tmp_path, cnn_file):
    out = tmp_path / "exists.onnx"
    out.write_bytes(b"keep me")
    res = invoke("convert", str(cnn_file), "-o", str(out), "-T", "2", "--quiet")
    assert_one_line_error(res, "output file exists", "--force")
    assert out.read_bytes() == b"keep me"
    res = invoke("convert", str(cnn_file), "-o", str(out), "-T", "2", "--quiet", "--force")
    assert res.exit_code == 0 and onnx.load(str(out)).graph.node


def test_unsupported_op_error_names_node_and_op(tmp_path):
    path = tmp_path / "bad.onnx"
    onnx.save(small_cnn(extra_op="Hardmax"), str(path))
    res = invoke("convert", str(path), "-o", str(tmp_path / "o.onnx"), "--quiet")
    assert_one_line_error(res, "node 'my_hardmax' (Hardmax)")
    assert not (tmp_path / "o.onnx").exists()


def test_threshold_not_positive(tmp_path):
    path = tmp_path / "clip0.onnx"
    onnx.save(small_cnn("Clip", clip_max=0.0), str(path))
    res = invoke("convert", str(path), "-o", str(tmp_path / "o.onnx"), "--quiet")
    assert_one_line_error(res, "node 'act' (Clip)", "must be > 0")


def test_missing_and_corrupt_model_files(tmp_path):
    res = invoke("convert", str(tmp_path / "nope.onnx"), "-o", str(tmp_path / "o.onnx"))
    assert_one_line_error(res, "model file not found", "nope.onnx")
    bad = tmp_path / "corrupt.onnx"
    bad.write_bytes(os.urandom(64))
    res = invoke("info", str(bad))
    assert_one_line_error(res, "corrupt.onnx", "not a valid ONNX model")


def test_batch_not_divisible_by_t(tmp_path):
    out = tmp_path / "events.snn.onnx"
    snn_onnx.convert(small_cnn(), time_steps=4, neuron="if", data=inputs(), output=out, event_inputs=("x",))
    np.save(tmp_path / "x.npy", inputs(10))
    res = invoke("run", str(out), "--input", str(tmp_path / "x.npy"))
    assert_one_line_error(res, "10 rows, not a multiple of T=4")


def test_library_not_found(tmp_path, cnn_file):
    out = tmp_path / "m.snn.onnx"
    snn_onnx.convert(small_cnn(), time_steps=2, data=inputs(), output=out)
    np.save(tmp_path / "x.npy", inputs(2))
    missing = str(tmp_path / "libmissing.so")
    res = invoke("run", str(out), "--input", str(tmp_path / "x.npy"), "--engine", "steps",
                 env={"SNN_ONNX_LIBRARY": missing})
    assert_one_line_error(res, "SNN_ONNX_LIBRARY", "libmissing.so")
    # the collapsed engine (standard ONNX ops) needs no library: a ParaIF SNN still runs
    res = invoke("run", str(out), "--input", str(tmp_path / "x.npy"), env={"SNN_ONNX_LIBRARY": missing})
    assert res.exit_code == 0 and "engine: collapsed" in res.output, res.output


def test_debug_shows_the_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "snn_onnx_cli", "--debug", "info", str(tmp_path / "nope.onnx")],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "ModelLoadError" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "snn_onnx_cli", "info", str(tmp_path / "nope.onnx")], capture_output=True, text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"error: model file not found: {tmp_path / 'nope.onnx'}"]


def test_eval_on_the_bundled_example():
    pytest.importorskip("sklearn", reason="the digits example needs scikit-learn")
    res = invoke("eval", "-T", "2,8", "--neurons", "paraif", "--limit", "100", "--quiet")
    assert res.exit_code == 0, res.output
    rows = [ln.split() for ln in res.output.splitlines() if ln.startswith("paraif")]
    assert [r[1] for r in rows] == ["2", "8"]
    ann_acc, snn_acc_t8 = float(rows[1][2].rstrip("%")), float(rows[1][3].rstrip("%"))
    assert ann_acc > 90 and snn_acc_t8 == ann_acc  # T = L = 8: ParaIF reproduces the QCFS ANN

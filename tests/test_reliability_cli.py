"""Issue 14, the CLI / Python side: each defect the sweep found, fed exactly as found, plus the
behaviours that need a real process (signals, a closed pipe, the umask, a read-only mount).
The misuse table (tests/test_cli_misuse.py) covers the one-line errors of every command."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from onnx_builders import inputs, small_cnn
from reliability_helpers import (
    assert_one_line_error, can_mount_read_only, cli_command, cli_env, snapshot, unwritable_dir,
)
from snn_onnx_cli.main import cli

import snn_onnx
from snn_onnx import files
from snn_onnx.errors import ConversionError, DataError, MemoryLimitError, OutputExistsError, OutputWriteError
from snn_onnx.runtime import memory


def invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(cli, list(args), env=env or {}, catch_exceptions=False)


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The bundled example's ANN and its SNN at T = 8 (ParaIF, exact)."""
    from snn_onnx_models import example_model_path

    folder = tmp_path_factory.mktemp("example")
    snn = folder / "ex.snn.onnx"
    res = invoke("convert", "-o", str(snn), "--quiet")
    assert res.exit_code == 0, res.output
    return Path(example_model_path()), snn


# --- silently wrong -------------------------------------------------------------------------


def test_all_nan_input_is_refused_where_the_snn_would_give_finite_logits(example):
    ann_path, snn_path = example
    x = np.full((2, 1, 8, 8), np.nan, np.float32)
    ann = ort.InferenceSession(str(ann_path), providers=["CPUExecutionProvider"])
    assert np.isnan(ann.run(None, {ann.get_inputs()[0].name: x})[0]).all()  # the ANN says NaN
    # the SNN as ONNX Runtime runs it (no checks): finite logits, argmax 9, as the sweep found
    raw = snn_onnx.make_session(onnx.load(str(snn_path)))
    logits = raw.run(["logits"], {"input": x})[0]
    assert np.isfinite(logits).all()
    # snn_onnx.Session and `snn-onnx run` refuse the input instead, saying how much and where
    with pytest.raises(DataError, match=r"128 NaN and 0 Inf .*first at index \[0, 0, 0, 0\]"):
        snn_onnx.Session(snn_path).run(x)
    one_inf = np.zeros((3, 1, 8, 8), np.float32)
    one_inf[2, 0, 5, 1] = -np.inf
    with pytest.raises(DataError, match=r"0 NaN and 1 Inf .*\[2, 0, 5, 1\], sample 2"):
        snn_onnx.Session(snn_path).run(one_inf)
    big = np.full((1, 1, 8, 8), 1e300)  # float64 that becomes inf in float32
    with pytest.raises(DataError, match="Inf"):
        snn_onnx.Session(snn_path).run(big)


def test_run_output_never_clobbers_victim_npz(example, tmp_path):
    _, snn_path = example
    np.save(tmp_path / "x.npy", np.full((2, 1, 8, 8), 0.5, np.float32))
    victim = tmp_path / "victim.npz"
    np.savez(victim, mine=np.arange(5))
    before = victim.read_bytes()
    res = invoke("run", str(snn_path), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "victim"))
    assert_one_line_error(res.exit_code, res.stderr, res.output, 1, "--output must name a .npz file", "victim.npz")
    assert victim.read_bytes() == before and not (tmp_path / "victim").exists()
    # the name given is the name written (np.savez alone would write out.npz.npz for some names)
    res = invoke("run", str(snn_path), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "out.NPZ"))
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.NPZ", "victim.npz", "x.npy"]
    with np.load(tmp_path / "out.NPZ") as f:
        assert f["logits"].shape == (2, 10)
    res = invoke("run", str(snn_path), "--input", str(tmp_path / "x.npy"), "--output", str(victim), "--force")
    assert res.exit_code == 0, res.output
    with np.load(victim) as f:
        assert "logits" in f.files and "mine" not in f.files


def test_complex_data_is_refused_not_truncated(example, tmp_path):
    ann_path, snn_path = example
    x = np.random.default_rng(0).random((8, 1, 8, 8)) * (1 + 0.5j)
    with pytest.raises(DataError, match="complex numbers"):
        snn_onnx.convert(str(ann_path), data=x.astype(np.complex64))
    with pytest.raises(DataError, match="complex numbers"):
        snn_onnx.Session(snn_path).run(x[:2])
    np.savez(tmp_path / "c.npz", x=x, y=np.arange(8) % 10)
    with pytest.raises(DataError, match="array 'x' holds complex numbers"):
        snn_onnx.data.load(tmp_path / "c.npz")
    res = invoke("eval", "--data", str(tmp_path / "c.npz"), "-T", "2", "--quiet")
    assert_one_line_error(res.exit_code, res.stderr, res.output, 1, "complex")


def test_the_ann_giving_nan_on_finite_data_is_refused(tmp_path):
    """The converter's other half of the NaN policy: parity cannot be "nan" and pass."""
    model = small_cnn(extra_op="Log")  # log(relu(x)): -inf wherever the ReLU gives 0
    with pytest.raises(ConversionError, match="the ANN itself gives NaN or Inf"):
        snn_onnx.convert(model, data=inputs(16), neuron="if", time_steps=4, output=str(tmp_path / "o.onnx"))
    assert not any(tmp_path.iterdir())


# --- errors that escaped as "internal error" -------------------------------------------------------


def test_unwritable_output_folder_is_refused_before_converting(tmp_path):
    (tmp_path / "out").mkdir()
    with unwritable_dir(tmp_path / "out") as how:
        if how is None:
            pytest.skip("no folder here refuses new files to this process (root without chattr)")
        res = invoke("convert", "-o", str(tmp_path / "out" / "x.onnx"))
        assert_one_line_error(res.exit_code, res.stderr, res.output, 1, "is not writable")
        assert res.stdout == ""  # refused before the conversion: no summary
        with pytest.raises(OutputExistsError, match="not writable"):
            snn_onnx.convert("no_such_timm_model_xyz", output=str(tmp_path / "out" / "x.onnx"))


@pytest.mark.skipif(not can_mount_read_only(), reason="unshare cannot mount a read-only tmpfs here")
def test_run_output_on_a_read_only_mount(example, tmp_path):
    _, snn_path = example
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 8, 8), np.float32))
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = (f"mount -t tmpfs -o ro none '{mnt}' && exec " + " ".join(f"'{a}'" for a in cli_command(
        "run", str(snn_path), "--input", str(tmp_path / "x.npy"), "--output", str(mnt / "o.npz"))))
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, env=cli_env(),
                          timeout=300)
    assert_one_line_error(proc.returncode, proc.stderr, proc.stdout, 1, "is not writable", "Read-only file system")
    assert proc.stdout == ""  # refused before the run


def test_strings_and_batch_0_are_refused_by_session(example):
    _, snn_path = example
    sess = snn_onnx.Session(snn_path)
    with pytest.raises(DataError, match=r"not numeric \(dtype <U1\)"):
        sess.run(np.full((2, 1, 8, 8), "a"))
    with pytest.raises(DataError, match=r"no samples \(shape \[0, 1, 8, 8\]\)"):
        sess.run(np.zeros((0, 1, 8, 8), np.float32))


def test_huge_t_is_refused_with_the_estimate(example, monkeypatch):
    ann_path, snn_path = example
    monkeypatch.setenv(memory.ENV, "2G")
    t0 = time.perf_counter()
    expected = (r"T=100000 on a batch of 16\) needs about 57\.\d GB \(28\.\d GB of tensors at once, x2 for "
                r"ONNX Runtime's memory arena; .* 2\.0 GB is free")
    with pytest.raises(MemoryLimitError, match=expected):
        snn_onnx.convert(str(ann_path), time_steps=100000)
    assert time.perf_counter() - t0 < 120  # the sweep's run failed after 27 s inside a kernel
    monkeypatch.setenv(memory.ENV, "100K")
    with pytest.raises(MemoryLimitError, match=r"running the SNN \(T=8\) on a batch of 4 needs about"):
        snn_onnx.Session(snn_path).run(np.zeros((4, 1, 8, 8), np.float32))
    monkeypatch.setenv(memory.ENV, "off")
    assert snn_onnx.Session(snn_path).run(np.zeros((4, 1, 8, 8), np.float32)).outputs["logits"].shape == (4, 10)


def test_t_and_options_are_checked_before_the_model_is_touched():
    # a model name that does not exist: any look at it would fail with another message
    for t in (0, -1, 2**31, 2.5, True):
        with pytest.raises(ConversionError, match="time steps T must be an integer in"):
            snn_onnx.convert("no_such_timm_model_xyz", time_steps=t)
    with pytest.raises(TypeError, match="calib_mthod"):
        snn_onnx.convert("no_such_timm_model_xyz", calib_mthod="max")
    with pytest.raises(ConversionError, match="mode must be one of"):
        snn_onnx.convert("no_such_timm_model_xyz", mode="spiking")
    res = invoke("import-nir", "no_such.nir", "-o", "x.onnx", "-T", "0")
    assert_one_line_error(res.exit_code, res.stderr, res.output, 2, "-T")


# --- atomic outputs, temporary files, permissions ---------------------------------------------


def test_atomic_write_leaves_the_old_file_or_the_new_one(tmp_path):
    out = tmp_path / "out.txt"
    out.write_text("old")

    def fails(p: str) -> None:
        Path(p).write_text("half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        files.atomic_write(out, fails)
    assert out.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]

    def interrupted(p: str) -> None:
        Path(p).write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        files.atomic_write(out, interrupted)
    assert out.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    files.write_text(out, "new")
    assert out.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_write_errors_are_one_line_errors(tmp_path):
    with pytest.raises(OutputWriteError, match="cannot write .*No such file or directory"):
        files.write_text(tmp_path / "gone" / "x.txt", "text")
    with pytest.raises(OutputExistsError, match="is a directory"):
        files.check_output_path(tmp_path, force=True)
    with pytest.raises(OutputExistsError, match="not a file name"):
        files.check_output_path("", force=True)


@pytest.fixture(scope="module")
def big_ann(tmp_path_factory) -> Path:
    """An ANN with 17 MB of weights: saving its SNN takes long enough to be caught in the act."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    ws = [rng.normal(0, s, shape).astype(np.float32) for shape, s in (((64, 2048), 0.1), ((2048, 2048), 0.02),
                                                                      ((2048, 10), 0.02))]
    nodes = [helper.make_node("MatMul", ["x", "w0"], ["a"]), helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("MatMul", ["r", "w1"], ["b"]), helper.make_node("Relu", ["b"], ["s"]),
             helper.make_node("MatMul", ["s", "w2"], ["logits"])]
    graph = helper.make_graph(nodes, "big", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
                              [numpy_helper.from_array(w, f"w{i}") for i, w in enumerate(ws)])
    path = tmp_path_factory.mktemp("big") / "big.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_while_the_snn_is_written_leaves_no_temporary_file(big_ann, tmp_path, sig):
    """A real process, stopped the moment its temporary output file appears, then sent the
    signal: it exits 128 + signal with one line, and leaves neither the temporary file nor a
    partial output."""
    out = tmp_path / "out.onnx"
    args = ("convert", str(big_ann), "-o", str(out), "-T", "2", "--neuron", "if", "--quiet")
    # a foreground command's signals: a test run started in the background (`cmd &`) ignores
    # SIGINT, the child inherits that, and the CLI rightly leaves ignored signals ignored
    proc = subprocess.Popen(cli_command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli_env(), cwd=tmp_path, preexec_fn=lambda: signal.signal(sig, signal.SIG_DFL))
    caught = None
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        tmps = list(tmp_path.glob(files.temp_prefix(out) + "*" + files.TEMP_SUFFIX))
        if tmps:
            caught = tmps[0].name
            os.kill(proc.pid, signal.SIGSTOP)  # frozen mid-write ...
            os.kill(proc.pid, sig)  # ... the signal waits ...
            os.kill(proc.pid, signal.SIGCONT)  # ... and lands as it resumes
            break
        time.sleep(0.0005)
    stdout, stderr = proc.communicate(timeout=300)
    assert caught is not None, (proc.returncode, stderr)
    assert_one_line_error(proc.returncode, stderr, stdout, 128 + sig, f"stopped by {signal.Signals(sig).name}")
    assert list(tmp_path.iterdir()) == [], [p.name for p in tmp_path.iterdir()]


def test_outputs_follow_the_umask(example, tmp_path):
    _, snn_path = example
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 8, 8), np.float32))
    kept = tmp_path / "kept.npz"
    np.savez(kept, a=np.zeros(1))
    kept.chmod(0o600)
    cmds = [cli_command("convert", "-o", str(tmp_path / "ex.onnx"), "--quiet"),
            cli_command("run", str(snn_path), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "o.npz")),
            cli_command("run", str(snn_path), "--input", str(tmp_path / "x.npy"), "--output", str(kept), "--force")]
    script = "umask 027 && " + " && ".join(" ".join(f"'{a}'" for a in c) for c in cmds)
    proc = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=cli_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr
    mode = lambda p: stat.S_IMODE((tmp_path / p).stat().st_mode)  # noqa: E731
    assert (mode("ex.onnx"), mode("o.npz"), mode("kept.npz")) == (0o640, 0o640, 0o600)  # mkstemp alone: 0o600


def test_a_closed_stdout_ends_quietly(example):
    """``snn-onnx info m.onnx | head -1``: the reader is gone before the command writes."""
    _, snn_path = example
    read, write = os.pipe()
    os.close(read)
    proc = subprocess.run(cli_command("info", str(snn_path)), stdout=write, stderr=subprocess.PIPE, text=True,
                          env=cli_env(), timeout=300)
    os.close(write)
    assert proc.returncode == 141 and proc.stderr == "", (proc.returncode, proc.stderr)


def test_run_output_unwritable_folder_is_refused_before_running(example, tmp_path):
    _, snn_path = example
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 8, 8), np.float32))
    (tmp_path / "ro").mkdir()
    with unwritable_dir(tmp_path / "ro") as how:
        if how is None:
            pytest.skip("no folder here refuses new files to this process (root without chattr)")
        before = snapshot(tmp_path)
        res = invoke("run", str(snn_path), "--input", str(tmp_path / "x.npy"),
                     "--output", str(tmp_path / "ro" / "o.npz"))
        assert_one_line_error(res.exit_code, res.stderr, res.output, 1, "not writable")
        assert res.stdout == "" and snapshot(tmp_path) == before


# --- the memory estimate ------------------------------------------------------------------


def test_estimate_is_the_liveness_peak_of_a_known_graph():
    """x [B, 1000] -> Relu -> Relu -> Add(x): at the Add, x, the second Relu's output and the
    Add's output are live (the first Relu's output is dead); weights: none."""
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Add", ["b", "x"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 1000])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 1000])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    est = memory.estimate(model, {"x": (7, 1000)})
    assert est.bytes == est.activations == 3 * 7 * 1000 * 4 and est.unknown == []


def test_estimate_knows_the_spiking_ops_shapes(example):
    """Through ParaIFNeuron with static_input (x [B, ...] -> y [T*B, ...]) and its counts
    ([T, ...]): the largest tensor of the example at T = 8 and batch 16 is the second conv's
    output, [128, 32, 8, 8] float32."""
    _, snn_path = example
    est = memory.estimate(onnx.load(str(snn_path)), {"input": (16, 1, 8, 8)})
    assert est.largest == ("getitem_3", 128 * 32 * 8 * 8 * 4) and est.unknown == []
    assert not onnx.defs.has("IFNeuron", "snn_onnx")  # the schemas are registered only while estimating


@pytest.mark.parametrize("text, value", [("8G", 8_000_000_000), ("512M", 512_000_000), ("1.5GB", 1_500_000_000),
                                         ("4096", 4096)])
def test_memory_limit_environment(monkeypatch, text, value):
    monkeypatch.setenv(memory.ENV, text)
    assert memory.available() == (value, f"{memory.ENV}={text}")


def test_memory_limit_off_and_bad(monkeypatch):
    monkeypatch.setenv(memory.ENV, "off")
    assert memory.available() is None
    monkeypatch.setenv(memory.ENV, "-3G")
    with pytest.raises(snn_onnx.SnnOnnxError, match="must be > 0"):
        memory.available()
    monkeypatch.delenv(memory.ENV)
    budget = memory.available()
    assert budget is None or budget[0] > 0


def test_a_report_that_fails_half_way_leaves_no_run_folder(tmp_path, monkeypatch):
    """The TensorBoard writer, the last step of a run folder, interrupted (Ctrl-C): the folder
    it was filling, and the folders made for it, are gone; the command says so in one line."""
    import snn_onnx.report.runs as runs

    def interrupted(run, logdir):
        Path(logdir).mkdir()
        raise KeyboardInterrupt

    monkeypatch.setattr(runs, "write_events", interrupted)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["report", "--limit", "16", "-T", "4", "--quiet", "--runs-dir", "runs"])
    assert res.exit_code == 1 and res.stderr.strip() == "error: aborted", (res.exit_code, res.output)
    assert list(tmp_path.iterdir()) == []

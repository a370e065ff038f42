"""The CLI misuse table: every way of calling ``snn-onnx`` wrongly that we know of ends in one
``error:`` line and a non-zero exit code, and leaves every file in the folder as it was (no
output, no temporary file, nothing overwritten).

Each row: an id, the arguments (run in a folder of prepared files), the exit code (1: the
input or the environment is wrong; 2: the command line is), fragments of the one line and,
for a few rows, environment variables. docs/reliability.md describes the table."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx_builders import small_cnn
from reliability_helpers import assert_one_line_error, snapshot, unwritable_dir
from snn_onnx_cli.main import cli

MAX_T = 2**31 - 1


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder holding an SNN (the bundled example at T = 8), an ANN, good and bad inputs and
    files an output could clobber; ``ro`` is a folder this process cannot write to (None when
    that cannot be arranged here)."""
    ws = tmp_path_factory.mktemp("misuse")
    res = CliRunner().invoke(cli, ["convert", "-o", str(ws / "ex.snn.onnx"), "--quiet"])
    assert res.exit_code == 0, res.output
    onnx.save(small_cnn(), str(ws / "relu.onnx"))
    ok = np.full((2, 1, 8, 8), 0.5, np.float32)
    np.save(ws / "ok.npy", ok)
    np.save(ws / "nan.npy", np.full_like(ok, np.nan))
    inf = ok.copy()
    inf[1, 0, 3, 3] = np.inf
    np.save(ws / "inf.npy", inf)
    np.save(ws / "str.npy", np.full((2, 1, 8, 8), "a"))
    np.save(ws / "cplx.npy", ok * (1 + 2j))
    np.save(ws / "b0.npy", ok[:0])
    np.save(ws / "wrongshape.npy", np.zeros((2, 1, 6, 6), np.float32))
    np.save(ws / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    for name in ("text.npz", "text.npy", "text.onnx"):
        (ws / name).write_text("hello\nthis is text\n")
    calib = np.random.default_rng(0).random((8, 1, 8, 8)).astype(np.float32)
    np.savez(ws / "cplx.npz", x=calib * (1 + 1j), y=np.arange(8))
    nan1 = calib.copy()
    nan1[3, 0, 2, 2] = np.nan  # one NaN among 512 values
    np.savez(ws / "nan.npz", x=nan1, y=np.arange(8))
    np.savez(ws / "victim.npz", kept=np.arange(3))
    for name in ("exists.onnx", "exists.json", "exists.nir", "exists.md", "afile"):
        (ws / name).write_text("the user's file\n")
    (ws / "adir").mkdir()
    (ws / "adir.npz").mkdir()
    (ws / "ro").mkdir()
    with unwritable_dir(ws / "ro") as how:
        yield ws, how


# id, args, exit code, fragments of the error line[, env]
CASES = [
    # convert: values, paths, data
    ("convert-T0", ["convert", "-T", "0"], 2, ["-T", "0"]),
    ("convert-T-negative", ["convert", "-T", "-3"], 2, ["-T"]),
    ("convert-T-over-int32", ["convert", "-T", str(MAX_T + 1)], 2, ["-T", str(MAX_T)]),
    ("convert-T-text", ["convert", "-T", "x"], 2, ["-T", "'x'"]),
    ("convert-o-directory", ["convert", "-o", "adir"], 1, ["'adir' is a directory"]),
    ("convert-o-exists", ["convert", "-o", "exists.onnx"], 1, ["file exists", "--force"]),
    ("convert-o-missing-folder", ["convert", "-o", "nowhere/x.onnx"], 1, ["does not exist", "nowhere"]),
    ("convert-o-unwritable", ["convert", "-o", "ro/x.onnx"], 1, ["'ro' is not writable"]),
    ("convert-data-text-as-npz", ["convert", "--data", "text.npz", "-o", "n.onnx"], 1,
     ["not an .npz archive", "holds text"]),
    ("convert-data-complex", ["convert", "--data", "cplx.npz", "-o", "n.onnx"], 1, ["complex", "imaginary"]),
    ("convert-data-one-nan", ["convert", "--data", "nan.npz", "-o", "n.onnx"], 1, ["1 NaN / Inf", "sample 3"]),
    ("convert-data-missing", ["convert", "--data", "nope.npz", "-o", "n.onnx"], 1, ["nope.npz", "no such file"]),
    ("convert-data-npy", ["convert", "--data", "ok.npy", "-o", "n.onnx"], 1, ["not a .npz file or an image folder"]),
    ("convert-data-empty-folder", ["convert", "--data", "adir", "-o", "n.onnx"], 1, ["holds no images"]),
    ("convert-checkpoint-missing", ["convert", "resnet18", "--checkpoint", "nope.pt", "-o", "n.onnx"], 1,
     ["--checkpoint 'nope.pt'", "no such file"]),
    ("convert-event-missing", ["convert", "--event-input", "nope.npz", "-o", "n.onnx"], 1,
     ["nope.npz", "no such file"]),
    ("convert-event-text", ["convert", "--event-input", "text.npz", "-o", "n.onnx"], 1, ["holds text"]),
    ("convert-levels-0", ["convert", "--mode", "transformer", "--levels", "0", "-o", "n.onnx"], 2, ["levels"]),
    ("convert-leak-paraif", ["convert", "--leak", "0.9", "-o", "n.onnx"], 2, ["--leak does not apply"]),
    ("convert-lif-no-leak", ["convert", "--neuron", "lif", "-o", "n.onnx"], 2, ["needs --leak"]),
    ("convert-lif-leak-nan", ["convert", "relu.onnx", "--neuron", "lif", "--leak", "nan", "-o", "n.onnx"], 2, ["leak"]),
    ("convert-v-init-inf", ["convert", "relu.onnx", "--neuron", "if", "--v-init", "inf", "-o", "n.onnx"], 2,
     ["v_init must be finite"]),
    ("convert-T-1e5-memory", ["convert", "-T", "100000", "-o", "n.onnx"], 1,
     ["T=100000", "needs about", "SNN_ONNX_MEMORY_LIMIT=2G"], {"SNN_ONNX_MEMORY_LIMIT": "2G"}),
    ("convert-T-max-memory", ["convert", "-T", str(MAX_T), "-o", "n.onnx"], 1, ["needs about", "TB", "lower T"]),
    ("convert-model-missing", ["convert", "nope.onnx", "-o", "n.onnx"], 1, ["not found", "nope.onnx"]),
    ("convert-model-text", ["convert", "text.onnx", "-o", "n.onnx"], 1, ["text.onnx", "not a valid ONNX model"]),
    ("convert-model-converted", ["convert", "ex.snn.onnx", "-o", "n.onnx"], 1, ["converted"]),
    ("convert-mode-bogus", ["convert", "--mode", "bogus"], 2, ["--mode"]),
    ("convert-shape-huge", ["convert", "resnet18", "--input-shape", "3,1000000,1000000", "-o", "n.onnx"], 2,
     ["--input-shape", "TB"]),
    ("convert-percentile-max", ["convert", "relu.onnx", "--percentile", "99", "-o", "n.onnx"], 2,
     ["--percentile does not apply"]),
    ("convert-data-and-events", ["convert", "--data", "digits", "--event-input", "digits-events"], 2,
     ["--data does not apply"]),
    ("convert-unknown-flag", ["convert", "--no-such-flag"], 2, ["--no-such-flag"]),
    # run
    ("run-all-nan", ["run", "ex.snn.onnx", "--input", "nan.npy"], 1, ["128 NaN and 0 Inf", "never fires"]),
    ("run-one-inf", ["run", "ex.snn.onnx", "--input", "inf.npy"], 1, ["0 NaN and 1 Inf", "[1, 0, 3, 3]"]),
    ("run-strings", ["run", "ex.snn.onnx", "--input", "str.npy"], 1, ["not numeric", "<U1"]),
    ("run-complex", ["run", "ex.snn.onnx", "--input", "cplx.npy"], 1, ["complex"]),
    ("run-batch-0", ["run", "ex.snn.onnx", "--input", "b0.npy"], 1, ["no samples", "[0, 1, 8, 8]"]),
    ("run-text-as-npz", ["run", "ex.snn.onnx", "--input", "text.npz"], 1, ["not an .npz archive", "holds text"]),
    ("run-text-as-npy", ["run", "ex.snn.onnx", "--input", "text.npy"], 1, ["not an .npy array"]),
    ("run-object-array", ["run", "ex.snn.onnx", "--input", "obj.npy"], 1, ["object arrays"]),
    ("run-input-missing", ["run", "ex.snn.onnx", "--input", "nope.npy"], 1, ["not found", "nope.npy"]),
    ("run-input-directory", ["run", "ex.snn.onnx", "--input", "adir"], 1, ["'adir' is a directory"]),
    ("run-wrong-shape", ["run", "ex.snn.onnx", "--input", "wrongshape.npy"], 1, ["[2, 1, 6, 6]", "expects"]),
    ("run-output-no-npz", ["run", "ex.snn.onnx", "--input", "ok.npy", "--output", "victim"], 1,
     ["--output must name a .npz file", "victim.npz"]),
    ("run-output-exists", ["run", "ex.snn.onnx", "--input", "ok.npy", "--output", "victim.npz"], 1, ["file exists"]),
    ("run-output-directory", ["run", "ex.snn.onnx", "--input", "ok.npy", "--output", "adir.npz"], 1,
     ["is a directory"]),
    ("run-output-unwritable", ["run", "ex.snn.onnx", "--input", "ok.npy", "--output", "ro/o.npz"], 1, ["not writable"]),
    ("run-no-input", ["run", "ex.snn.onnx"], 2, ["exactly one of --input"]),
    ("run-force-alone", ["run", "ex.snn.onnx", "--input", "ok.npy", "--force"], 2, ["--force does not apply"]),
    ("run-limit-static", ["run", "ex.snn.onnx", "--input", "ok.npy", "--limit", "3"], 2, ["--limit does not apply"]),
    ("run-ann", ["run", "relu.onnx", "--input", "ok.npy"], 1, ["not an snn-onnx SNN"]),
    ("run-memory", ["run", "ex.snn.onnx", "--input", "ok.npy"], 1, ["T=8", "batch of 2", "needs about", "1.0 KB"],
     {"SNN_ONNX_MEMORY_LIMIT": "1K"}),
    ("run-memory-env-bogus", ["run", "ex.snn.onnx", "--input", "ok.npy"], 1, ["SNN_ONNX_MEMORY_LIMIT='lots'"],
     {"SNN_ONNX_MEMORY_LIMIT": "lots"}),
    # info
    ("info-missing", ["info", "nope.onnx"], 1, ["not found"]),
    ("info-directory", ["info", "adir"], 1, ["is a directory"]),
    ("info-text", ["info", "text.onnx"], 1, ["not a valid ONNX model"]),
    # eval
    ("eval-T0", ["eval", "-T", "0"], 2, ["--time-steps", "positive"]),
    ("eval-T-over-int32", ["eval", "-T", f"4,{MAX_T + 1}"], 2, ["--time-steps", str(MAX_T)]),
    ("eval-json-directory", ["eval", "--json-out", "adir"], 1, ["--json-out 'adir' is a directory"]),
    ("eval-json-exists", ["eval", "--json-out", "exists.json"], 1, ["file exists"]),
    ("eval-json-unwritable", ["eval", "--json-out", "ro/e.json"], 1, ["not writable"]),
    ("eval-force-alone", ["eval", "--force"], 2, ["--force does not apply"]),
    ("eval-energy-events-without-report", ["eval", "--event-input", "digits-events", "--e-ac", "1"], 2,
     ["--e-ac does not apply"]),
    ("eval-report-is-file", ["eval", "--report", "afile"], 1, ["--report 'afile' exists and is not a folder"]),
    ("eval-neurons-repeat", ["eval", "--neurons", "if,if"], 2, ["repeats a neuron"]),
    ("eval-data-missing", ["eval", "--data", "nope.npz"], 1, ["nope.npz"]),
    # report
    ("report-T0", ["report", "-T", "0"], 2, ["-T"]),
    ("report-runs-dir-file", ["report", "--runs-dir", "afile"], 1, ["--runs-dir 'afile' exists and is not a folder"]),
    ("report-runs-dir-unwritable", ["report", "--runs-dir", "ro/runs"], 1, ["not writable"]),
    ("report-batch-0", ["report", "--batch-size", "0"], 2, ["--batch-size"]),
    # NIR and check
    ("export-nir-directory", ["export-nir", "ex.snn.onnx", "-o", "adir"], 1, ["is a directory"]),
    ("export-nir-exists", ["export-nir", "ex.snn.onnx", "-o", "exists.nir"], 1, ["file exists"]),
    ("export-nir-dt-0", ["export-nir", "ex.snn.onnx", "-o", "x.nir", "--dt", "0"], 2, ["--dt"]),
    ("export-nir-samples-exact", ["export-nir", "ex.snn.onnx", "-o", "x.nir", "--samples", "5"], 2,
     ["--samples applies to --lossy only"]),
    ("import-nir-T0", ["import-nir", "x.nir", "-o", "y.onnx", "-T", "0"], 2, ["-T"]),
    ("import-nir-missing", ["import-nir", "nope.nir", "-o", "y.onnx", "-T", "4"], 1, ["nope.nir"]),
    ("import-nir-o-exists", ["import-nir", "nope.nir", "-o", "exists.onnx", "-T", "4"], 1, ["file exists"]),
    ("check-markdown-directory", ["check", "ex.snn.onnx", "--markdown", "adir"], 1,
     ["--markdown 'adir' is a directory"]),
    ("check-markdown-exists", ["check", "ex.snn.onnx", "--markdown", "exists.md"], 1, ["file exists"]),
    ("check-samples-0", ["check", "ex.snn.onnx", "--samples", "0"], 2, ["--samples"]),
    ("check-tolerance-negative", ["check", "ex.snn.onnx", "--spike-tol", "-1"], 2, ["--spike-tol"]),
    ("check-force-alone", ["check", "ex.snn.onnx", "--force"], 2, ["--force does not apply"]),
    # bench (its own option parser), runs, the group
    ("bench-batches-0", ["bench", "--batches", "0"], 2, ["--batches", "'0'"]),
    ("bench-reps-text", ["bench", "--reps", "x"], 2, ["--reps"]),
    ("bench-threads-0", ["bench", "--threads", "0"], 2, ["--threads"]),
    ("bench-out-directory", ["bench", "--out", "adir"], 1, ["--out 'adir' is a directory"]),
    ("runs-aggregate-missing", ["runs", "aggregate", "--runs-dir", "nope"], 1, ["runs folder not found"]),
    ("unknown-command", ["nonsense"], 2, ["nonsense"]),
]


def test_the_table_is_large_enough():
    assert len(CASES) >= 50 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_misuse(workspace, monkeypatch, case):
    ws, unwritable = workspace
    name, args, code, fragments = case[:4]
    env = case[4] if len(case) > 4 else {}
    if "ro/" in " ".join(args) and unwritable is None:
        pytest.skip("no folder here refuses new files to this process (root without chattr)")
    monkeypatch.chdir(ws)
    monkeypatch.delenv("SNN_ONNX_MEMORY_LIMIT", raising=False)
    before = snapshot(ws)
    res = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    assert_one_line_error(res.exit_code, res.stderr, res.output, code, *fragments)
    assert snapshot(ws) == before, "the folder changed"


def test_misuse_cases_listed_in_reliability_md():
    """docs/reliability.md states the size of the table."""
    from reliability_helpers import REPO

    text = (REPO / "docs" / "reliability.md").read_text()
    assert f"{len(CASES)} cases" in text


def test_table_covers_every_command():
    assert set(cli.commands) <= {c[1][0] for c in CASES}

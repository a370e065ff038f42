"""The CPU benchmark's plumbing (snn_onnx/bench/cpu.py): options, report, entry points.
Speed itself is measured by the benchmark, never asserted here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from snn_onnx.bench import cpu

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_cover_the_issue_grid():
    a = cpu.parse_args([], default_out=ROOT / "docs" / "benchmarks.md")
    assert a.models == ["resnet18", "vgg16", "vit_tiny"]
    assert a.time_steps == [4, 8, 16] and a.batches == [1, 32]
    assert a.out.endswith("docs/benchmarks.md")
    assert cpu.parse_args([]).out is None  # no default: the caller says where the report goes
    q = cpu.parse_args(["--quick"])
    assert q.models == ["resnet18"] and q.out is None and q.reps >= 3
    with pytest.raises(SystemExit):
        cpu.parse_args(["--models", "alexnet"])


def test_time_alternating_rotates_and_keeps_every_run():
    calls = []
    fns = {k: (lambda k=k: calls.append(k)) for k in "abc"}
    runs = cpu.time_alternating(fns, reps=3)
    assert calls[:3] == ["a", "b", "c"]  # warm-up
    assert calls[3:] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert all(len(v) == 3 for v in runs.values())


def test_report_has_ratios_targets_and_skips():
    row = cpu.Row("resnet18", 8, 32, ms={"snn": 50.0, "ann_xT": 100.0, "ann_fold": 60.0, "sj_s": 400.0, "sj_m": 200.0},
                  runs={"snn": [50.0] * 3}, peak_mib={"snn": 300.0}, before_mib={"snn": 250.0})
    args = cpu.parse_args(["--models", "resnet18"])
    prof = {"model": "resnet18", "T": 8, "B": 32, "runs": 3, "ops": {"Conv": 40.0, "ParaIFNeuron": 2.0, "(whole run)": 50.0}}
    conv = {"command": "snn-onnx convert resnet18", "wall_s": 9.0, "cpu_s": 12.0, "ok": True, "cli_line": ""}
    text = cpu.render([row], {"vit_tiny": "not yet"}, prof, conv, {"cpu": "x"}, args, 60.0)
    assert "**0.50**" in text and "**4.00**" in text  # SNN/(T×ANN), SJ best (multi-step) / SNN
    assert "300 (+50)" in text and "| Conv | 40.0 | 80.0% |" in text
    assert "measured **0.50** — met" in text and "measured **4.00 ×**" in text and "9.0 s** — met" in text
    assert "## vit_tiny\n\nSkipped: not yet" in text


def test_report_collapses_a_note_shared_by_configurations():
    def row(T, B, note):
        r = cpu.Row("vit_tiny", T, B, ms={"snn": 2.0, "ann_xT": 1.0, "ann_fold": 1.0}, runs={"snn": [2.0] * 3})
        r.note = note
        return r

    args = cpu.parse_args(["--models", "vit_tiny", "--no-memory"])
    text = cpu.render([row(4, 1, "no peer"), row(4, 32, "no peer")], {}, None, None, {}, args, 1.0)
    assert text.count("no peer") == 1 and "* no peer (all configurations)" in text
    text = cpu.render([row(4, 1, "no peer"), row(4, 32, "")], {}, None, None, {}, args, 1.0)
    assert "* T=4 B=1: no peer" in text


def test_entry_points_answer_help():
    script = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cpu_speed.py"), "--help"],
                            capture_output=True, text=True, timeout=120)
    assert script.returncode == 0 and "--quick" in script.stdout
    from click.testing import CliRunner

    from snn_onnx_cli.main import cli

    res = CliRunner().invoke(cli, ["bench", "--help"])
    assert res.exit_code == 0 and "--quick" in res.output


def test_cli_bench_writes_where_the_user_runs_it(tmp_path, monkeypatch):
    """`snn-onnx bench` puts its report in the current folder, never into the installed package."""
    from click.testing import CliRunner

    from snn_onnx_cli.main import cli

    seen = {}
    monkeypatch.setattr(cpu, "main", lambda argv, default_out=None: seen.update(argv=argv, out=default_out) or 0)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["bench", "--models", "resnet18"])
    assert res.exit_code == 0, res.output
    assert seen["argv"] == ["--models", "resnet18"] and Path(seen["out"]).parent == tmp_path
    assert cpu.parse_args(["--models", "resnet18"], default_out=seen["out"]).out == str(tmp_path / "snn-onnx-bench.md")

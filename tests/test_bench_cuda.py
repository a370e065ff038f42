"""benchmarks/bench_cuda.py and benchmarks/profile_cuda.py, dry-run on the CPU.

The scripts target a GPU; their CPU path (`--provider cpu --quick`) goes through every step
except the GPU itself: export, conversion (and the skip of a model the converter refuses),
timing, the placement check, the report. So a GPU run fails, if at all, only on GPU matters.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import snn_onnx

pytest.importorskip("torch", reason="the benchmarks export timm models: needs torch")
pytest.importorskip("timm", reason="the benchmarks need timm")

ROOT = Path(__file__).resolve().parent.parent


def _run(script, *args):
    env = dict(os.environ)
    # The checkout goes first on the path for benchmarks/, but its snn_onnx/ may hold no built
    # library (CI installs the package instead): point the scripts at the one this process uses.
    env.setdefault("SNN_ONNX_LIBRARY", snn_onnx.library_path())
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), str(ROOT / "models"), str(ROOT / "cli"), env.get("PYTHONPATH", "")])
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True,
                         text=True, env=env, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res.stdout


def test_bench_cuda_dry_run(tmp_path):
    out = tmp_path / "bench.md"
    _run("bench_cuda.py", "--provider", "cpu", "--quick", "--out", str(out))
    text = out.read_text()
    assert "CPU dry run (not a CUDA benchmark)" in text
    data = json.loads(out.with_suffix(".json").read_text())
    rows = data["rows"]
    timed = [r for r in rows if not r["skipped"]]
    resnet = {(r["model"], r["batch"]) for r in timed if r["model"].startswith("resnet18")}
    assert resnet == {("resnet18 32×32", 1), ("resnet18 32×32", 2)}
    for r in timed:  # the ViT has no QCFS variant: only the plain ANN is its reference
        assert r["snn_ms"] > 0 and r["ann_plain_ms"] > 0
        assert r["model"].startswith("vit_small") or r["ann_qcfs_ms"] > 0
        assert r["ratio_plain"] == pytest.approx(r["snn_ms"] / (r["time_steps"] * r["ann_plain_ms"]))
    # the one-block ViT goes through the transformer converter and is timed
    vit = [r for r in rows if r["model"].startswith("vit_small")]
    assert len(vit) == 2 and all(r["snn_ms"] and not r["skipped"] for r in vit)
    # every snn_onnx node ran on the requested provider
    placement = data["placement"]["resnet18 32×32 T=2"]
    assert placement and set(placement.values()) == {"CPUExecutionProvider"}
    assert "Target (issue 5)" not in text  # no batch-32 row in a dry run


def test_profile_cuda_dry_run(tmp_path):
    out = tmp_path / "profile.md"
    _run("profile_cuda.py", "--provider", "cpu", "--quick", "--out", str(out))
    text = out.read_text()
    assert "| ParaIFNeuron | CPU |" in text and "| Conv | CPU |" in text and "**total**" in text

#!/usr/bin/env python
"""Render run reports in headless Chromium at 1400 px: check that every plot decodes and shows,
that the page needs no horizontal scrolling and has no script error, and write screenshots.

    PYTHONPATH=.:models:cli python scripts/report_screenshot.py [--preset example|resnet18|potentials|vit_tiny|all]

Presets (each is one `snn-onnx report` command):

* ``example``  — the bundled digits example (after three other runs, so the dashboard across
  runs has company) -> docs/report_screenshot.png
* ``resnet18`` — timm resnet18 with QCFS (L = 8), **random init**, 32×32, ParaIF at T = 8, on
  random inputs -> docs/report_resnet18.png
* ``vit_tiny`` — timm vit_tiny_patch16_224, **random init**, transformer mode at T = 8, on
  random inputs (the conversion takes minutes) -> docs/report_vit_tiny.png
* ``potentials`` — the ``resnet18`` run with ``--potentials`` (membrane-potential histograms and
  near-threshold fractions of 17 layers; random init, so the values mean nothing)
  -> docs/report_potentials.png

Random-init weights and random inputs check the report's layout at real depths; their
accuracies mean nothing (the reports say so). Needs Chromium (Debian: apt-get install chromium).
Run folders go to a temporary directory unless --runs-dir is given.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIDTH = 1400
MAX_HEIGHT = 7000

PRESETS = {
    "example": {
        "before": [["-T", "4"], ["-T", "16"], ["--neuron", "paraif"]],
        "args": [],
        "out": "report_screenshot.png",
    },
    "resnet18": {
        "args": ["resnet18", "--input-shape", "3,32,32", "--num-classes", "10", "--qcfs-levels", "8", "--data", "random",
                 "--limit", "32", "-T", "8", "--neuron", "paraif", "--exporter", "legacy"],
        "out": "report_resnet18.png",
    },
    "potentials": {
        "args": ["resnet18", "--input-shape", "3,32,32", "--num-classes", "10", "--qcfs-levels", "8", "--data", "random",
                 "--limit", "32", "-T", "8", "--neuron", "paraif", "--exporter", "legacy", "--potentials"],
        "out": "report_potentials.png",
    },
    "vit_tiny": {
        "args": ["vit_tiny_patch16_224", "--data", "random", "--limit", "8", "-T", "8", "--batch-size", "4"],
        "out": "report_vit_tiny.png",
    },
}


def run_preset(name: str, runs: Path, out_dir: Path) -> int:
    from click.testing import CliRunner

    from snn_onnx.report.browser import check_html, screenshot
    from snn_onnx_cli.main import cli

    spec = PRESETS[name]
    for extra in [*spec.get("before", []), spec["args"]]:
        t0 = time.time()
        res = CliRunner().invoke(cli, ["report", "--runs-dir", str(runs), "--quiet", *extra])
        print(f"snn-onnx report {' '.join(extra)}: exit {res.exit_code} in {time.time() - t0:.0f} s; {res.output.strip()}")
        if res.exit_code != 0:
            print(res.stderr if hasattr(res, "stderr") else "", file=sys.stderr)
            return 1
    # the last "wrote <folder> (open …)" line (warnings, e.g. random-init weights, may come first)
    wrote = [ln for ln in res.output.splitlines() if ln.startswith("wrote ")]
    page = Path(wrote[-1].split()[1]) / "report.html"
    check = check_html(page, width=WIDTH)
    for img in check.images:
        print(f"  image {img['alt']}: {img['width']}x{img['height']} decoded, shown {img['shown']:.0f} px wide")
    print(f"  page {check.page_width}x{check.page_height} px at a {check.viewport} px window; "
          f"{check.folded_sections} folded and {check.open_sections} open sections")
    if not check.ok or not check.fits_width:
        print(f"report check failed: errors {check.errors} {check.console_errors}, fits width {check.fits_width}",
              file=sys.stderr)
        return 1
    out = screenshot(page, out_dir / spec["out"], width=WIDTH, height=min(check.page_height, MAX_HEIGHT))
    print(f"{page}: {len(check.images)} images decoded, no script errors; wrote {out}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=[*PRESETS, "all"], default="example")
    ap.add_argument("--runs-dir", help="keep the run folders here")
    ap.add_argument("--out-dir", default=str(ROOT / "docs"))
    args = ap.parse_args()

    from snn_onnx.report.browser import find_chromium

    if find_chromium() is None:
        print("Chromium not found: apt-get install chromium (or set $CHROMIUM)", file=sys.stderr)
        return 1
    names = list(PRESETS) if args.preset == "all" else [args.preset]
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            runs = Path(args.runs_dir or tmp) / f"runs-{name}"
            if run_preset(name, runs, Path(args.out_dir)):
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

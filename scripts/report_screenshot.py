#!/usr/bin/env python
"""Render the report of the bundled example (`snn-onnx report`, after three other runs for the
dashboard) in headless Chromium: check that every plot
decodes and shows and that no script error occurs, then write docs/report_screenshot.png.

    PYTHONPATH=.:models:cli python scripts/report_screenshot.py [--runs-dir DIR] [--height 3000]

Needs Chromium (Debian: apt-get install chromium). The run folder goes to a temporary
directory unless --runs-dir is given.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs-dir", help="keep the example's run folder here")
    ap.add_argument("--out", default=str(ROOT / "docs" / "report_screenshot.png"))
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=3000)
    args = ap.parse_args()

    from click.testing import CliRunner

    from snn_onnx.report.browser import check_html, find_chromium, screenshot
    from snn_onnx_cli.main import cli

    if find_chromium() is None:
        print("Chromium not found: apt-get install chromium (or set $CHROMIUM)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(args.runs_dir or tmp) / "runs"
        # two other runs first, so that the dashboard across runs has company; the default last
        for extra in (["-T", "4"], ["-T", "16"], ["--neuron", "paraif"], []):
            res = CliRunner().invoke(cli, ["report", "--runs-dir", str(runs), *extra])
            print(res.output)
            if res.exit_code != 0:
                return 1
        page = sorted(runs.glob("digits_qcfs_cnn-if-T8/*/report.html"))[-1]
        check = check_html(page)
        for img in check.images:
            print(f"image {img['alt']}: {img.get('width')}x{img.get('height')} decoded, shown {img.get('shown'):.0f} px wide")
        if not check.ok:
            print(f"report check failed: errors {check.errors} {check.console_errors}", file=sys.stderr)
            return 1
        out = screenshot(page, args.out, width=args.width, height=args.height)
        print(f"{page}: {len(check.images)} images decoded, no script errors; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""CPU speed benchmark (issue 6): snn-onnx's SNN vs T × the ANN and the folded ANN in ONNX
Runtime, and SpikingJelly, for timm resnet18 / vgg16 (32×32) and vit_tiny (224×224).

    python benchmarks/cpu_speed.py            # full grid, writes docs/benchmarks.md
    python benchmarks/cpu_speed.py --quick    # CI-size check, prints the table
    python benchmarks/cpu_speed.py --help

Works from a source checkout without installing: it puts the checkout on sys.path and builds
the custom-op library (scripts/build_dev.sh) if it is missing. Needs the `bench` and `torch`
extras (torch, timm, spikingjelly). Same as `snn-onnx bench`.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT / "cli", ROOT / "models", ROOT):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from snn_onnx.bench.cpu import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(default_out=ROOT / "docs" / "benchmarks.md"))

#!/usr/bin/env bash
# Development build: compile libsnn_onnx_ops and install it into this source tree's
# snn_onnx/_lib/, so `PYTHONPATH=<repo>` finds it (snn_onnx.library_path()).
#
#   scripts/build_dev.sh [extra cmake -D options, e.g. -DORT_INCLUDE_DIR=... -DSNN_ONNX_NATIVE=ON]
#
# ONNX Runtime headers: -DORT_INCLUDE_DIR / $SNN_ONNX_ORT_INCLUDE_DIR, else fetched once by
# custom_ops/scripts/fetch_ort_headers.sh into ~/.cache/snn_onnx/.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${SNN_ONNX_BUILD_DIR:-$root/build/custom_ops}

gen=()
if [[ ! -f $build/CMakeCache.txt ]] && command -v ninja >/dev/null; then gen=(-G Ninja); fi
cmake -S "$root/custom_ops" -B "$build" "${gen[@]}" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$root" "$@"
cmake --build "$build" --parallel
cmake --install "$build"
echo "built: $root/snn_onnx/_lib/ (use with PYTHONPATH=$root)"

#!/usr/bin/env bash
# The op library under AddressSanitizer + UndefinedBehaviorSanitizer: builds it with
# -DSNN_ONNX_SANITIZE=ON into its own directory (the installed / in-tree library is not
# touched), then runs the op tests and the op fuzz (both ISAs) and the host emulation of the
# CUDA kernels (compiled with the same sanitizers) in a Python process with libasan and
# libstdc++ preloaded. Any finding aborts that process, so the script fails (docs/reliability.md).
#
#   scripts/sanitize_ops.sh [python]      # python: the interpreter with snn_onnx's test deps
#
# GCC or Clang with libasan / libubsan (Debian: gcc's own). SNN_ONNX_FUZZ_SCALE scales the fuzz.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${1:-python3}
build=${SNN_ONNX_SANITIZE_BUILD_DIR:-$root/build/custom_ops_sanitize}
cxx=${CXX:-c++}

command -v cmake >/dev/null || { echo "sanitize_ops.sh: cmake not on PATH (needed to build the library)" >&2; exit 1; }
gen=()
if [[ ! -f $build/CMakeCache.txt ]] && command -v ninja >/dev/null; then gen=(-G Ninja); fi
cmake -S "$root/custom_ops" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSNN_ONNX_SANITIZE=ON \
  -DCMAKE_CXX_COMPILER="$cxx" >/dev/null
cmake --build "$build" --parallel
lib=$(find "$build" -maxdepth 1 -name 'libsnn_onnx_ops*' -type f | head -n 1)
[[ -n $lib ]] || { echo "sanitize_ops.sh: no library in $build" >&2; exit 1; }

asan=$("$cxx" -print-file-name=libasan.so)
stdcxx=$("$cxx" -print-file-name=libstdc++.so)
for f in "$asan" "$stdcxx"; do
  [[ -f $f ]] || { echo "sanitize_ops.sh: $f not found (install the compiler's libasan / libstdc++)" >&2; exit 1; }
done

cd "$root"
# detect_leaks=0: the Python interpreter itself never frees much of what it allocates.
# allocator_may_return_null=1: malloc of a size too large to serve returns null as without
# ASan (a failed operator new still aborts: the one test of that skips, SNN_ONNX_SANITIZER).
# --capture=sys: pytest leaves file descriptor 2 alone, so a sanitizer report reaches the log.
LD_PRELOAD="$asan $stdcxx" \
ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1:${ASAN_OPTIONS:-}" \
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}" \
SNN_ONNX_LIBRARY="$lib" SNN_ONNX_SANITIZER=1 \
SNN_ONNX_EMU_CXXFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
  "$python" -m pytest -q -p no:cacheprovider --capture=sys \
    tests/test_kernels.py tests/test_library.py tests/test_multi_threshold.py tests/test_ops_fuzz.py \
    tests/test_signgd_kernels.py \
    "tests/test_compensation.py::test_fused_kernel_matches_reference" \
    "tests/test_compensation.py::test_fused_kernel_bad_input" \
    "tests/test_potentials.py::test_kernel_potentials_match_the_reference" \
    "tests/test_potentials.py::test_kernel_potentials_with_nan_and_inf" \
    "tests/test_potentials.py::test_kernel_potentials_threads_agree" \
    tests/test_cuda.py -k "not build_compiles and not test_cuda_"
echo "sanitize_ops.sh: no sanitizer findings"

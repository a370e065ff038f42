"""The CUDA kernels of libsnn_onnx_ops (custom_ops/src/cuda/, docs/cuda.md).

Three layers, so that every machine checks what it can:

1. Everywhere (needs a C++ compiler): the kernels' own per-thread bodies (``src/cuda/*.cuh``),
   run on the host by ``src/cuda/emulate.cc`` through the same launch plan, grid and dispatch
   as on the GPU, against the NumPy reference: every op, randomized, every samples-per-thread
   variant, counts stored directly and accumulated.
2. Where nvcc is on PATH: the CUDA build configures, compiles and links (one architecture,
   into a temporary directory), has no dynamic CUDA dependency and loads into onnxruntime.
3. With an NVIDIA GPU, onnxruntime-gpu and a CUDA build of the library (``scripts/build_dev.sh
   -DSNN_ONNX_CUDA=ON``): CPU vs CUDA parity op by op (spikes and counts identical) and on
   converted timm resnet18 models, errors, parameters fed as changing graph inputs, concurrent
   runs. Elsewhere these skip and say why (``pytest -rs`` lists the reasons).
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from snn_onnx import library
from snn_onnx.errors import SnnOnnxError
from snn_onnx.ops import reference as ref
from snn_onnx.ops import schema
from test_kernels import (
    BAD,
    N_CASES,
    OMIT,
    build,
    check_spikes,
    if_case,
    make_param,
    para_case,
    pick,
    rand_param_layout,
    rand_positive,
    rand_shape,
    rand_x,
    resolved,
    run,
    static_case,
    temporal_case,
)

ROOT = Path(__file__).resolve().parent.parent
F32 = np.float32
CUDA_EP = "CUDAExecutionProvider"
# TF32 would round Conv / MatMul inputs to 10 mantissa bits on Ampere and newer.
CUDA_PROVIDERS = [(CUDA_EP, {"use_tf32": "0"})]


# ---------------------------------------------------------------------------------------------
# MultiThresholdNeuron: the NumPy reference once it lands in snn_onnx/ops/reference.py, until
# then this transcription of the spec (DESIGN.md, schema.py).


def mt_spec(x, scale_pos, scale_neg, *, time_steps, levels=8, channel_axis=-1):
    op = "MultiThresholdNeuron"
    x = np.asarray(x, F32)
    xt = ref.split_time(x, time_steps, op)
    sp = ref.broadcast_param(scale_pos, x.shape, channel_axis, op, "scale_pos")
    sn = ref.broadcast_param(scale_neg, x.shape, channel_axis, op, "scale_neg")
    v = np.zeros(xt.shape[1:], F32)
    y = np.empty_like(xt)
    counts = np.empty((time_steps,) + x.shape[1:], np.int64)
    for t in range(time_steps):
        v = v + xt[t]
        e = np.zeros_like(v)
        pos = np.zeros(v.shape, bool)
        mid = [F32(0.5)] + [F32(0.75 * 2.0**k) for k in range(1, levels)]  # nearest level
        for k in range(levels):  # ascending: the last level that passes is the largest
            p = sp * F32(2.0**k)
            ok = v >= sp * mid[k]
            e = np.where(ok, p, e)
            pos |= ok
        neg = np.zeros(v.shape, bool)
        for k in range(levels):
            q = sn * F32(2.0**k)
            ok = ~pos & (-v >= sn * mid[k])
            e = np.where(ok, -q, e)
            neg |= ok
        e = e.astype(F32)
        y[t] = e
        v = v - e
        counts[t] = np.count_nonzero(pos | neg, axis=0)
    return y.reshape(x.shape), counts


def mt_reference():
    return ref.REFERENCES.get("MultiThresholdNeuron", mt_spec)


def mt_case(seed):
    rng = np.random.default_rng(4000 + seed)
    T = int(rng.integers(1, 13))
    shape = rand_shape(rng, T)
    rank = len(shape)
    # default channel_axis is -1 (per feature); scalars, or per channel on a random axis
    if rank >= 2 and rng.random() < 0.6:
        axis = int(rng.integers(1, rank))
        channel_axis = pick(rng, [OMIT, -1]) if axis == rank - 1 else pick(rng, [axis, axis - rank])
    else:
        axis, channel_axis = None, pick(rng, [OMIT, -1]) if rank >= 2 else OMIT
    sp = make_param(rng, shape, axis, rand_positive)
    sn = make_param(rng, shape, axis if rng.random() < 0.7 else None, rand_positive)
    x = rand_x(rng, shape) * F32(pick(rng, [1.0, 4.0, 20.0]))
    attrs = {"time_steps": T, "levels": pick(rng, [OMIT, 1, 2, 4, 8, 12]), "channel_axis": channel_axis}
    return x.astype(F32), sp, sn, attrs, bool(rng.random() < 0.6), bool(rng.random() < 0.7)


def mt_resolved(attrs):
    return resolved("MultiThresholdNeuron", attrs)


# ---------------------------------------------------------------------------------------------
# 1. host emulation of the kernels


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if not cxx:
        pytest.skip("no C++ compiler on PATH: the host emulation of the CUDA kernels is not checked")
    out = tmp_path_factory.mktemp("emu") / "libsnn_cuda_emu.so"
    src = ROOT / "custom_ops" / "src"
    cmd = [cxx, "-std=c++17", "-O2", "-ffp-contract=off", "-Wall", "-Wextra", "-shared",
           "-fPIC", "-I", str(src), str(src / "cuda" / "emulate.cc"), "-o", str(out),
           *os.environ.get("SNN_ONNX_EMU_CXXFLAGS", "").split()]  # e.g. -fsanitize=address,undefined
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, f"{' '.join(cmd)}\n{res.stderr}"
    return Emu(str(out))


P_F = ctypes.POINTER(ctypes.c_float)
P_I64 = ctypes.POINTER(ctypes.c_int64)
I64, C_INT, C_F = ctypes.c_int64, ctypes.c_int, ctypes.c_float
BAD_PLAN = -1  # device.cuh kBadPlan


def _f(a):
    return None if a is None else a.ctypes.data_as(P_F)


def _layout(p, x_shape, channel_axis):
    """(contiguous values, channels, inner) as snn::ParamLayout; channels 1 = scalar."""
    if p is None:
        return None, 1, 1
    p = np.ascontiguousarray(np.asarray(p, F32).reshape(-1))
    if p.size == 1:
        return p, 1, 1
    rank = len(x_shape)
    axis = channel_axis + rank if channel_axis < 0 else channel_axis
    return p, int(x_shape[axis]), int(np.prod(x_shape[axis + 1:], dtype=np.int64))


class Emu:
    """ctypes front of emulate.cc: the CUDA kernels' bodies run on the host."""

    def __init__(self, path):
        self.lib = lib = ctypes.CDLL(path)
        # the last argument of the neurons: the membrane potentials (None: not declared)
        lib.snn_emu_if.argtypes = [P_F, P_F, P_I64, I64, I64, I64, P_F, I64, I64, C_F, C_F, C_INT, C_F,
                                   C_INT, I64, C_INT, C_INT, P_F]
        lib.snn_emu_para.argtypes = [P_F, P_F, P_I64, I64, I64, I64, P_F, I64, I64, P_F, I64, I64, P_F,
                                     I64, I64, C_F, I64, C_INT, C_INT, P_F]
        lib.snn_emu_mt.argtypes = [P_F, P_F, P_I64, I64, I64, I64, P_F, I64, I64, P_F, I64, I64, C_INT,
                                   I64, C_INT, P_F]
        lib.snn_emu_temporal.argtypes = [C_INT, P_F, P_F, I64, I64]
        lib.snn_emu_compensated.argtypes = [C_INT, P_F, P_F, I64, I64]
        lib.snn_emu_compensated.restype = C_INT
        lib.snn_emu_plan.argtypes = [I64, I64, C_INT, I64, P_I64]
        for fn in (lib.snn_emu_if, lib.snn_emu_para, lib.snn_emu_mt, lib.snn_emu_temporal):
            fn.restype = C_INT

    @staticmethod
    def _io(x, T, counts, static=False):
        x = np.ascontiguousarray(x, F32)
        B = x.shape[0] if static else x.shape[0] // T
        N = int(np.prod(x.shape[1:], dtype=np.int64))
        y = np.full((T * B,) + x.shape[1:], np.nan, F32)  # every element must be written
        c = np.full((T,) + x.shape[1:], 987654321, np.int64) if counts else None  # and every count
        return x, y, c, B, N

    @staticmethod
    def _result(rc, y, c, pot):
        """(status, y, counts), and the potentials when they were asked for."""
        return (rc, y, c) if pot is None else (rc, y, c, pot)

    def if_neuron(self, x, threshold, a, counts, resident, force_bpt=0, potentials=False):
        T, static = a["time_steps"], bool(a.get("static_input", 0))
        x, y, c, B, N = self._io(x, T, counts, static)
        pot = np.full_like(y, np.nan) if potentials else None
        th, ch, inner = _layout(threshold, x.shape, a["channel_axis"])
        rc = self.lib.snn_emu_if(_f(x), _f(y), None if c is None else c.ctypes.data_as(P_I64), T, B, N,
                                 _f(th), ch, inner, a["v_init"], a["leak"], int(bool(a["signed"])),
                                 a["signed_eps"], int(a["reset"] == "zero"), resident, force_bpt, int(static),
                                 _f(pot))
        return self._result(rc, y, c, pot)

    def para_if_neuron(self, x, pre, post, bias, a, counts, resident, force_bpt=0, potentials=False):
        T, axis, static = a["time_steps"], a["channel_axis"], bool(a.get("static_input", 0))
        x, y, c, B, N = self._io(x, T, counts, static)
        pot = np.full_like(y, np.nan) if potentials else None
        p0, p1, p2 = (_layout(p, x.shape, axis) for p in (pre, post, bias))
        rc = self.lib.snn_emu_para(_f(x), _f(y), None if c is None else c.ctypes.data_as(P_I64), T, B, N,
                                   _f(p0[0]), p0[1], p0[2], _f(p1[0]), p1[1], p1[2], _f(p2[0]), p2[1],
                                   p2[2], a["v_init"], resident, force_bpt, int(static), _f(pot))
        return self._result(rc, y, c, pot)

    def multi_threshold(self, x, sp, sn, a, counts, resident, force_bpt=0, potentials=False):
        T, axis = a["time_steps"], a["channel_axis"]
        x, y, c, B, N = self._io(x, T, counts)
        pot = np.full_like(y, np.nan) if potentials else None
        p0, p1 = (_layout(p, x.shape, axis) for p in (sp, sn))
        rc = self.lib.snn_emu_mt(_f(x), _f(y), None if c is None else c.ctypes.data_as(P_I64), T, B, N,
                                 _f(p0[0]), p0[1], p0[2], _f(p1[0]), p1[1], p1[2], a["levels"], resident,
                                 force_bpt, _f(pot))
        return self._result(rc, y, c, pot)

    def temporal(self, x, T, delta):
        x, y, _, B, N = self._io(x, T, False)
        rc = self.lib.snn_emu_temporal(int(delta), _f(x), _f(y), T, B * N)
        return rc, y

    def compensated(self, x, T, fn_index):
        x, y, _, B, N = self._io(x, T, False)
        rc = self.lib.snn_emu_compensated(int(fn_index), _f(x), _f(y), T, B * N)
        return rc, y

    def plan(self, B, N, counts, resident):
        out = np.zeros(4, np.int64)
        self.lib.snn_emu_plan(B, N, int(counts), resident, out.ctypes.data_as(P_I64))
        return {"bpt": int(out[0]), "groups": int(out[1]), "threads": int(out[2]), "direct": bool(out[3])}


def emu_variants(seed, counts):
    """(resident, force_bpt) pairs: the automatic plan for a small and a big GPU, and every
    samples-per-thread variant when counts are written (without counts only bpt 1 exists)."""
    out = [(1, 0), (1 << 30, 0)]
    if counts:
        out += [(0, 1), (0, 4), (0, 16)]
    return out


@pytest.mark.parametrize("seed", range(N_CASES))
def test_emulated_if_neuron(emu, seed):
    x, threshold, attrs, counts, _ = if_case(seed)
    a = resolved("IFNeuron", attrs)
    ry, rc = ref.if_neuron(x, threshold, **a)
    for resident, bpt in emu_variants(seed, counts):
        status, y, c = emu.if_neuron(x, threshold, a, counts, resident, bpt)
        assert status == 0
        check_spikes(y, c, ry, rc, counts)


@pytest.mark.parametrize("seed", range(N_CASES))
def test_emulated_para_if_neuron(emu, seed):
    x, pre, post, bias, attrs, counts, _ = para_case(seed)
    a = resolved("ParaIFNeuron", attrs)
    ry, rc = ref.para_if_neuron(x, pre, post, bias, **a)
    for resident, bpt in emu_variants(seed, counts):
        status, y, c = emu.para_if_neuron(x, pre, post, bias, a, counts, resident, bpt)
        assert status == 0
        check_spikes(y, c, ry, rc, counts)


@pytest.mark.parametrize("seed", range(0, N_CASES, 4))
def test_emulated_static_input(emu, seed):
    """static_input = 1 (x is one step [B, ...], y is [T*B, ...]): IF and ParaIF bodies read
    the same step at every t."""
    x, threshold, attrs, counts, _ = static_case(if_case, seed)
    a = resolved("IFNeuron", attrs)
    ry, rc = ref.if_neuron(x, threshold, **a)
    for resident, bpt in emu_variants(seed, counts):
        status, y, c = emu.if_neuron(x, threshold, a, counts, resident, bpt)
        assert status == 0
        check_spikes(y, c, ry, rc, counts)
    x, pre, post, bias, attrs, counts, _ = static_case(para_case, seed)
    a = resolved("ParaIFNeuron", attrs)
    ry, rc = ref.para_if_neuron(x, pre, post, bias, **a)
    for resident, bpt in emu_variants(seed, counts):
        status, y, c = emu.para_if_neuron(x, pre, post, bias, a, counts, resident, bpt)
        assert status == 0
        check_spikes(y, c, ry, rc, counts)


@pytest.mark.parametrize("seed", range(N_CASES))
def test_emulated_multi_threshold(emu, seed):
    x, sp, sn, attrs, counts, _ = mt_case(seed)
    a = mt_resolved(attrs)
    ry, rc = mt_reference()(x, sp, sn, **a)
    for resident, bpt in emu_variants(seed, counts):
        status, y, c = emu.multi_threshold(x, sp, sn, a, counts, resident, bpt)
        assert status == 0
        check_spikes(y, c, ry, rc, counts)


@pytest.mark.parametrize("seed", range(0, N_CASES, 2))
def test_emulated_potentials(emu, seed):
    """The membrane-potential output (docs/ops.md) of the three neuron bodies, every plan: bit
    for bit the reference's, spikes unchanged."""
    x, threshold, attrs, counts, _ = static_case(if_case, seed) if seed % 3 == 0 else if_case(seed)
    a = resolved("IFNeuron", attrs)
    ry, rc, rp = ref.if_neuron(x, threshold, **a, potentials=True)
    for resident, bpt in emu_variants(seed, counts):
        status, y, c, p = emu.if_neuron(x, threshold, a, counts, resident, bpt, potentials=True)
        assert status == 0
        check_spikes(y, c, ry, rc, counts)
        np.testing.assert_array_equal(p, rp)
    x, pre, post, bias, attrs, counts, _ = static_case(para_case, seed) if seed % 3 == 0 else para_case(seed)
    a = resolved("ParaIFNeuron", attrs)
    ry, rc, rp = ref.para_if_neuron(x, pre, post, bias, **a, potentials=True)
    for resident, bpt in emu_variants(seed, counts):
        status, y, c, p = emu.para_if_neuron(x, pre, post, bias, a, counts, resident, bpt, potentials=True)
        assert status == 0
        check_spikes(y, c, ry, rc, counts)
        np.testing.assert_array_equal(p, rp)
    x, sp, sn, attrs, counts, _ = mt_case(seed)
    a = mt_resolved(attrs)
    ry, rc, rp = ref.multi_threshold_neuron(x, sp, sn, **a, potentials=True)
    for resident, bpt in emu_variants(seed, counts):
        status, y, c, p = emu.multi_threshold(x, sp, sn, a, counts, resident, bpt, potentials=True)
        assert status == 0
        check_spikes(y, c, ry, rc, counts)
        np.testing.assert_array_equal(p, rp)


@pytest.mark.parametrize("seed", range(N_CASES))
def test_emulated_temporal(emu, seed):
    x, T = temporal_case(seed)
    for delta, fn in ((False, ref.temporal_mean), (True, ref.temporal_delta)):
        status, y = emu.temporal(x, T, delta)
        assert status == 0
        # same float32 operations in the same order: equal, not just close
        np.testing.assert_array_equal(y, fn(x, time_steps=T))


FUSED_FUNCS = ("gelu", "gelu_tanh", "silu", "sigmoid", "tanh", "hardsigmoid", "hardswish", "relu")  # common/ops.h order


def fused_case(seed):
    rng = np.random.default_rng(900 + seed)
    fn = FUSED_FUNCS[seed % len(FUSED_FUNCS)]
    T = int(rng.integers(1, 17))
    shape = [T * int(rng.integers(1, 4))] + [int(rng.integers(1, 40)) for _ in range(int(rng.integers(0, 3)))]
    x = (rng.standard_normal(shape) * rng.choice([0.5, 2.0, 6.0])).astype(F32)
    # f in float32 (math library) vs the float64 reference; the delta multiplies by up to T
    return x, T, fn, 2e-6 * T * max(1.0, float(np.abs(x).max()))


@pytest.mark.parametrize("seed", range(40))
def test_emulated_compensated_elementwise(emu, seed):
    x, T, fn, atol = fused_case(seed)
    status, y = emu.compensated(x, T, FUSED_FUNCS.index(fn))
    assert status == 0
    np.testing.assert_allclose(y, ref.compensated_elementwise(x, time_steps=T, function=fn), rtol=0, atol=atol)


def test_emulated_multi_threshold_spec_edges(emu):
    """Hand-checked steps of the spec: ties at s*2^k - s/2, the largest level first, the
    negative side only when no positive level passes, one spike per step, residue kept."""
    sp, sn = F32(1.0), F32(0.5)
    # T = 6, B = 1, N = 1, levels = 3: positive levels 1, 2, 4 (thresholds 0.5, 1.5, 3.5),
    # negative levels -0.5, -1, -2 (-v thresholds 0.25, 0.75, 1.75)
    x = np.array([0.5, 1.0, 10.0, -9.75, -0.25, 0.0], F32)
    a = {"time_steps": 6, "levels": 3, "channel_axis": -1}
    # v: 0.5 -> emit 1 (tie at 0.5), v=-0.5; +1 -> 0.5 -> emit 1, v=-0.5; +10 -> 9.5 -> emit 4
    # (largest), v=5.5; -9.75 -> -4.25 -> -v=4.25 -> emit -2, v=-2.25; -0.25 -> -2.5 -> emit -2,
    # v=-0.5; 0 -> -v=0.5 >= 0.25 -> emit -0.5, v=0
    want = np.array([1.0, 1.0, 4.0, -2.0, -2.0, -0.5], F32)
    ry, rc = mt_reference()(x, sp, sn, **a)
    np.testing.assert_array_equal(ry, want)
    for counts in (True, False):
        status, y, c = emu.multi_threshold(x, sp, sn, a, counts, 1, 0)
        assert status == 0
        check_spikes(y, c, ry, rc, counts)


@pytest.mark.parametrize("shape,T", [((16 * 37, 3, 5), 16), ((4 * 130, 33), 4), ((2 * 3, 1000), 2)])
def test_emulated_batch_groups(emu, shape, T):
    """Batches that do not divide into the groups: partial last groups, counts accumulated."""
    rng = np.random.default_rng(5)
    x = rand_x(rng, shape)
    th = rand_positive(rng, shape[1])
    a = resolved("IFNeuron", {"time_steps": T, "signed": 1, "leak": 0.9})
    ry, rc = ref.if_neuron(x, th, **a)
    for bpt in (1, 4, 16):
        status, y, c = emu.if_neuron(x, th, a, True, 0, bpt)
        assert status == 0
        check_spikes(y, c, ry, rc, True)
    a = resolved("ParaIFNeuron", {"time_steps": T})
    ry, rc = ref.para_if_neuron(x, th, **a)
    for bpt in (1, 4, 16):
        status, y, c = emu.para_if_neuron(x, th, None, None, a, True, 0, bpt)
        assert status == 0
        check_spikes(y, c, ry, rc, True)


def test_emulated_empty_batch_zeroes_counts(emu):
    x = np.zeros((0, 3, 2), F32)
    a = resolved("IFNeuron", {"time_steps": 4})
    status, y, c = emu.if_neuron(x, F32(1.0), a, True, 1, 0)
    assert status == 0 and y.shape == (0, 3, 2) and c.shape == (4, 3, 2) and not c.any()


def test_plan(emu):
    # without counts: one thread per (sample, neuron)
    assert emu.plan(32, 1000, False, 1) == {"bpt": 1, "groups": 32, "threads": 32000, "direct": False}
    # with counts, a small GPU: the most samples per thread, one group = direct stores
    assert emu.plan(8, 1000, True, 1) == {"bpt": 16, "groups": 1, "threads": 1000, "direct": True}
    assert emu.plan(1, 1000, True, 1) == {"bpt": 1, "groups": 1, "threads": 1000, "direct": True}
    # with counts, a big GPU: keep a quarter of `resident` threads busy before grouping samples
    assert emu.plan(128, 16384, True, 270336)["bpt"] == 16  # 16384 * 8 groups >= resident / 4
    assert emu.plan(128, 4096, True, 270336)["bpt"] == 4    # 4096 * 8 < resident / 4 <= 4096 * 32
    assert emu.plan(128, 512, True, 270336)["bpt"] == 1     # 512 * 128 < resident / 4
    # no kernel exists for several samples per thread without counts
    x = np.ones((4, 3), F32)
    a = resolved("IFNeuron", {"time_steps": 2})
    assert emu.if_neuron(x, F32(1.0), a, False, 0, 4)[0] == BAD_PLAN


# ---------------------------------------------------------------------------------------------
# 2. the CUDA build


def test_cuda_build_compiles(tmp_path):
    """Configure, compile and link custom_ops with -DSNN_ONNX_CUDA=ON (sm_90 only, to keep this
    quick; CI builds the default architecture list, see docs/cuda.md)."""
    nvcc, cmake = shutil.which("nvcc"), shutil.which("cmake")
    if not nvcc or not cmake:
        pytest.skip("nvcc or cmake not on PATH: the CUDA build is not compiled here")
    if os.environ.get("SNN_ONNX_SKIP_CUDA_BUILD") == "1":
        pytest.skip("SNN_ONNX_SKIP_CUDA_BUILD=1")
    build_dir, prefix = tmp_path / "build", tmp_path / "prefix"
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    steps = [
        [cmake, "-S", str(ROOT / "custom_ops"), "-B", str(build_dir), *gen, "-DCMAKE_BUILD_TYPE=Release",
         "-DSNN_ONNX_CUDA=ON", "-DCMAKE_CUDA_ARCHITECTURES=90", f"-DCMAKE_INSTALL_PREFIX={prefix}"],
        [cmake, "--build", str(build_dir), "--parallel"],
        [cmake, "--install", str(build_dir)],
    ]
    for cmd in steps:
        res = subprocess.run(cmd, capture_output=True, text=True)
        assert res.returncode == 0, f"{' '.join(cmd)}\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}"
    lib = prefix / "snn_onnx" / "_lib" / library.LIBRARY_NAME
    assert lib.is_file()
    assert library.cuda_runtime_version(str(lib)) >= 11080
    if sys.platform.startswith("linux") and shutil.which("readelf"):
        needed = subprocess.run(["readelf", "-d", str(lib)], capture_output=True, text=True).stdout
        assert "libcudart" not in needed and "libcuda.so" not in needed, needed  # runtime linked statically
    # it loads into onnxruntime (any build, GPU or not) and its CPU ops still run
    so = ort.SessionOptions()
    so.register_custom_ops_library(str(lib))
    model, feeds = build("TemporalMean", [("x", np.array([1.0, 3.0], F32))], {"time_steps": 2})
    (y,) = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"]).run(None, feeds)
    np.testing.assert_array_equal(y, [1.0, 2.0])


def test_library_reports_cuda(snn_library):
    v = library.cuda_runtime_version(snn_library)
    assert v == 0 or v >= 11080
    assert library.has_cuda_kernels(snn_library) == (v > 0)


def test_session_refuses_cuda_without_cuda_kernels(monkeypatch):
    """make_session names the problem when CUDA is asked for and the library cannot serve it."""
    from snn_onnx.runtime import session as session_mod

    model, _ = build("TemporalMean", [("x", np.ones(2, F32))], {"time_steps": 2})
    if CUDA_EP not in ort.get_available_providers():
        with pytest.raises(SnnOnnxError, match="onnxruntime-gpu"):
            session_mod.make_session(model, providers=[CUDA_EP, "CPUExecutionProvider"])
        # pretend onnxruntime has the CUDA provider: the library check comes next
        monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA_EP, "CPUExecutionProvider"])
    monkeypatch.setattr(library, "cuda_runtime_version", lambda path=None: 0)
    with pytest.raises(SnnOnnxError, match="built without CUDA kernels.*SNN_ONNX_CUDA=ON"):
        session_mod.make_session(model, providers=[(CUDA_EP, {}), "CPUExecutionProvider"])


# ---------------------------------------------------------------------------------------------
# 3. on the GPU


def cuda_unavailable(lib: str) -> str | None:
    """Why the CUDA kernels cannot run here, or None."""
    why = []
    if not library.has_cuda_kernels(lib):
        why.append(f"libsnn_onnx_ops ({lib}) was built without CUDA kernels "
                   "(scripts/build_dev.sh -DSNN_ONNX_CUDA=ON)")
    if CUDA_EP not in ort.get_available_providers():
        why.append(f"onnxruntime {ort.__version__} has no {CUDA_EP} (install onnxruntime-gpu)")
    if why:
        return "; ".join(why)
    try:
        model, feeds = build("TemporalMean", [("x", np.ones(4, F32))], {"time_steps": 2})
        sess = cuda_session(lib, model)
        sess.run(None, feeds)
    except Exception as err:  # no GPU, no driver, missing CUDA / cuDNN libraries
        return f"ONNX Runtime could not run {CUDA_EP}: {str(err).splitlines()[0][:300]}"
    if CUDA_EP not in sess.get_providers():
        return f"ONNX Runtime fell back from {CUDA_EP} to {sess.get_providers()} (no usable GPU?)"
    return None


def cuda_session(lib, model, profile_dir=None):
    """Session on the CUDA provider alone: a node without a CUDA kernel is an error, not a
    silent fallback to the CPU kernel."""
    so = ort.SessionOptions()
    so.register_custom_ops_library(lib)
    so.log_severity_level = 4
    so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    if profile_dir is not None:
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(profile_dir) / "prof")
    return ort.InferenceSession(model, so, providers=CUDA_PROVIDERS)


@pytest.fixture(scope="module")
def gpu(snn_library):
    reason = cuda_unavailable(snn_library)
    if reason:
        pytest.skip(f"CUDA parity not run: {reason}")
    return snn_library


@pytest.fixture(scope="module")
def cpu_so(snn_library):
    so = ort.SessionOptions()
    so.register_custom_ops_library(snn_library)
    so.log_severity_level = 4
    return so


def run_cuda(lib, model, feeds):
    return cuda_session(lib, model).run(None, feeds)


def check_if_neurons(gpu, cpu_so, op, case):
    """IFNeuron / ParaIFNeuron on CUDA: spikes = the NumPy reference, outputs = the CPU kernel's."""
    if op == "IFNeuron":
        x, threshold, attrs, counts, inits = case
        params = [("threshold", threshold)]
    else:
        x, pre, post, bias, attrs, counts, inits = case
        params = [("theta_pre", pre), ("theta_post", post), ("bias", bias)]
    model, feeds = build(op, [("x", x), *params], attrs, counts, initializers=inits)
    out = run_cuda(gpu, model, feeds)
    assert len(out) == (2 if counts else 1)
    ry, rc = ref.REFERENCES[op](x, *[v for _, v in params], **resolved(op, attrs))
    check_spikes(out[0], out[1] if counts else None, ry, rc, counts)
    for a, b in zip(out, run(cpu_so, model, feeds)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("seed", range(N_CASES))
def test_cuda_if_neuron(gpu, cpu_so, seed):
    check_if_neurons(gpu, cpu_so, "IFNeuron", if_case(seed))


def test_cuda_static_input(gpu, cpu_so):
    """static_input = 1 (what the converter emits for the first neuron): CUDA = reference = CPU."""
    for seed in range(0, N_CASES, 4):
        check_if_neurons(gpu, cpu_so, "IFNeuron", static_case(if_case, seed))
        check_if_neurons(gpu, cpu_so, "ParaIFNeuron", static_case(para_case, seed))


@pytest.mark.parametrize("seed", range(N_CASES))
def test_cuda_para_if_neuron(gpu, cpu_so, seed):
    check_if_neurons(gpu, cpu_so, "ParaIFNeuron", para_case(seed))


@pytest.mark.parametrize("seed", range(N_CASES))
def test_cuda_multi_threshold(gpu, cpu_so, seed):
    x, sp, sn, attrs, counts, inits = mt_case(seed)
    inputs = [("x", x), ("scale_pos", sp), ("scale_neg", sn)]
    model, feeds = build("MultiThresholdNeuron", inputs, attrs, counts, initializers=inits)
    out = run_cuda(gpu, model, feeds)
    ry, rc = mt_reference()(x, sp, sn, **mt_resolved(attrs))
    check_spikes(out[0], out[1] if counts else None, ry, rc, counts)
    try:  # the CPU kernel, where this build has it
        cpu = run(cpu_so, model, feeds)
    except Exception as err:
        if "MultiThresholdNeuron" not in str(err) and "kernel" not in str(err).lower():
            raise
        return
    for a, b in zip(out, cpu):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("seed", range(N_CASES))
def test_cuda_temporal(gpu, cpu_so, seed):
    x, T = temporal_case(seed)
    for op, fn in (("TemporalMean", ref.temporal_mean), ("TemporalDelta", ref.temporal_delta)):
        model, feeds = build(op, [("x", x)], {"time_steps": T})
        (y,) = run_cuda(gpu, model, feeds)
        np.testing.assert_allclose(y, fn(x, time_steps=T), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(y, run(cpu_so, model, feeds)[0], rtol=1e-6, atol=1e-6)


def test_cuda_compensated_elementwise(gpu, cpu_so):
    for seed in range(40):
        x, T, fn, atol = fused_case(seed)
        model, feeds = build("CompensatedElementwise", [("x", x)], {"time_steps": T, "function": fn})
        (y,) = run_cuda(gpu, model, feeds)
        np.testing.assert_allclose(y, ref.compensated_elementwise(x, time_steps=T, function=fn), rtol=0, atol=atol)
        np.testing.assert_allclose(y, run(cpu_so, model, feeds)[0], rtol=0, atol=atol)


# Big enough for many blocks and, depending on the GPU's size, every samples-per-thread plan.
@pytest.mark.parametrize("shape,T", [((8 * 128, 64, 8, 8), 8), ((4 * 32, 64, 32, 32), 4),
                                     ((16 * 3, 3000), 16), ((2 * 1, 197, 384), 2), ((4 * 130, 33), 4)])
def test_cuda_large(gpu, cpu_so, shape, T):
    rng = np.random.default_rng(11)
    x = rand_x(rng, shape)
    th = rand_positive(rng, shape[1])
    cases = [
        ("IFNeuron", [("x", x), ("threshold", th)], {"time_steps": T, "signed": 1, "leak": 0.9}),
        ("IFNeuron", [("x", x), ("threshold", th)], {"time_steps": T, "reset": "zero"}),
        ("ParaIFNeuron", [("x", x), ("theta_pre", th)], {"time_steps": T}),
        ("MultiThresholdNeuron", [("x", x), ("scale_pos", th), ("scale_neg", th * F32(0.5))],
         {"time_steps": T, "channel_axis": 1}),
    ]
    for op, inputs, attrs in cases:
        for counts in (True, False):
            model, feeds = build(op, inputs, attrs, counts)
            out = run_cuda(gpu, model, feeds)
            if op == "MultiThresholdNeuron":
                ry, rc = mt_reference()(x, th, th * F32(0.5), **mt_resolved(attrs))
            else:
                ry, rc = ref.REFERENCES[op](x, *[v for _, v in inputs[1:]], **resolved(op, attrs))
            check_spikes(out[0], out[1] if counts else None, ry, rc, counts)
    for op in ("TemporalMean", "TemporalDelta"):
        model, feeds = build(op, [("x", x)], {"time_steps": T})
        (y,) = run_cuda(gpu, model, feeds)
        np.testing.assert_allclose(y, run(cpu_so, model, feeds)[0], rtol=1e-6, atol=1e-6)


def test_cuda_potentials(gpu, cpu_so):
    """The membrane-potential output on the GPU: the reference's and the CPU kernel's, bit for
    bit, with and without counts, and on shapes that use every samples-per-thread plan."""
    rng = np.random.default_rng(31)
    cases = []
    for seed in range(0, N_CASES, 3):
        x, th, attrs, counts, inits = static_case(if_case, seed) if seed % 2 else if_case(seed)
        cases.append(("IFNeuron", [("x", x), ("threshold", th)], attrs, counts, inits))
        x, pre, post, bias, attrs, counts, inits = para_case(seed)
        cases.append(("ParaIFNeuron", [("x", x), ("theta_pre", pre), ("theta_post", post), ("bias", bias)], attrs,
                      counts, inits))
        x, sp, sn, attrs, counts, inits = mt_case(seed)
        cases.append(("MultiThresholdNeuron", [("x", x), ("scale_pos", sp), ("scale_neg", sn)], attrs, counts, inits))
    x = rand_x(rng, (8 * 64, 64, 8, 8))
    th = rand_positive(rng, 64)
    for counts in (True, False):
        cases += [("IFNeuron", [("x", x), ("threshold", th)], {"time_steps": 8, "signed": 1}, counts, True),
                  ("ParaIFNeuron", [("x", x), ("theta_pre", th)], {"time_steps": 8}, counts, True),
                  ("MultiThresholdNeuron", [("x", x), ("scale_pos", th), ("scale_neg", th)],
                   {"time_steps": 8, "channel_axis": 1}, counts, True)]
    for op, inputs, attrs, counts, inits in cases:
        model, feeds = build(op, inputs, attrs, counts, initializers=inits, potentials=True)
        out = run_cuda(gpu, model, feeds)
        a = mt_resolved(attrs) if op == "MultiThresholdNeuron" else resolved(op, attrs)
        ry, rc, rp = ref.REFERENCES[op](*[v for _, v in inputs], **a, potentials=True)
        check_spikes(out[0], out[1] if counts else None, ry, rc, counts)
        np.testing.assert_array_equal(out[-1], rp)
        for g, c in zip(out, run(cpu_so, model, feeds)):
            np.testing.assert_array_equal(g, c)


def test_cuda_empty_batch(gpu):
    x = np.zeros((0, 3, 2), F32)
    model, feeds = build("IFNeuron", [("x", x), ("threshold", F32(1.0))], {"time_steps": 4}, True)
    y, c = run_cuda(gpu, model, feeds)
    assert y.shape == (0, 3, 2) and c.shape == (4, 3, 2) and not c.any()


def test_cuda_changing_parameters(gpu):
    """Thresholds fed as graph inputs: each run uses its own values (the device copy is
    replaced when they change), also from concurrent runs of one session."""
    T, B = 4, 8
    rng = np.random.default_rng(2)
    x = rand_x(rng, (T * B, 16, 5))
    model, _ = build("IFNeuron", [("x", x), ("threshold", np.ones(16, F32))], {"time_steps": T}, True,
                     initializers=False)
    sess = cuda_session(gpu, model)
    ths = [rand_positive(rng, 16) for _ in range(6)]

    def one(th):
        y, c = sess.run(None, {"x": x, "threshold": th})
        ry, rc = ref.if_neuron(x, th, time_steps=T)
        check_spikes(y, c, ry, rc, True)

    for th in ths + ths[::-1]:
        one(th)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, ths * 5))


MT_BAD = [
    ("MultiThresholdNeuron", [("x", np.ones((6, 4, 2), F32)), ("scale_pos", 1.0), ("scale_neg", 0.0)],
     {"time_steps": 2}, ["scale_neg must be finite and > 0"]),
    ("MultiThresholdNeuron", [("x", np.ones((6, 4, 2), F32)), ("scale_pos", np.ones(4, F32)),
                              ("scale_neg", 1.0)], {"time_steps": 2}, ["scale_pos has 4 values", "is 2"]),
    ("MultiThresholdNeuron", [("x", np.ones((6, 4, 2), F32)), ("scale_pos", 1.0), ("scale_neg", 1.0)],
     {"time_steps": 2, "levels": 0}, ["levels must be in [1, 32], got 0"]),
    ("MultiThresholdNeuron", [("x", np.ones((6, 4, 2), F32)), ("scale_pos", 1.0), ("scale_neg", 1.0)],
     {"time_steps": 4}, ["not divisible by time_steps 4"]),
]


@pytest.mark.parametrize("case", range(len(BAD) + len(MT_BAD)))
def test_cuda_bad_input(gpu, case):
    """The CPU kernels' validation and messages (test_kernels.BAD), on the GPU."""
    op, inputs, attrs, fragments = (BAD + MT_BAD)[case]
    inputs = [(n, None if v is None else np.asarray(v, F32)) for n, v in inputs]
    node_name = f"bad_node_{case}"
    model, feeds = build(op, inputs, attrs, op in schema.SPIKING_OPS, node_name=node_name)
    with pytest.raises(Exception) as info:
        run_cuda(gpu, model, feeds)
    msg = str(info.value)
    assert f"{op} node '{node_name}'" in msg, msg
    for fragment in fragments:
        assert fragment in msg, msg
    good, feeds = build("TemporalMean", [("x", np.ones((6, 2), F32))], {"time_steps": 3})
    (y,) = run_cuda(gpu, good, feeds)
    np.testing.assert_allclose(y, ref.temporal_mean(np.ones((6, 2), F32), time_steps=3))


def node_providers(profile_path):
    """{node name: provider} from an ORT profile."""
    events = json.loads(Path(profile_path).read_text())
    return {e["name"].removesuffix("_kernel_time"): e["args"].get("provider")
            for e in events if e.get("cat") == "Node" and "provider" in e.get("args", {})}


# -- whole converted models --------------------------------------------------------------------


@pytest.fixture(scope="module")
def resnet18_ann():
    pytest.importorskip("torch", reason="model parity exports a timm model: needs torch")
    pytest.importorskip("timm", reason="model parity needs timm")
    from snn_onnx.export.torch_export import export_module
    from snn_onnx_models.timm_qcfs import create_qcfs_timm

    def make(levels):
        model = create_qcfs_timm("resnet18", levels=levels, num_classes=10, img_size=32, seed=0)
        return export_module(model, (3, 32, 32))

    return make


def model_parity(gpu, snn, x, tmp_path):
    """Run one SNN on the CPU and on CUDA (snn_onnx.Session); the CUDA run's snn_onnx nodes
    must all run on the GPU."""
    import snn_onnx

    cpu = snn_onnx.Session(snn, providers=["CPUExecutionProvider"])
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.enable_profiling = True
    so.profile_file_prefix = str(tmp_path / "prof")
    cuda = snn_onnx.Session(snn, providers=CUDA_PROVIDERS + ["CPUExecutionProvider"], sess_options=so)
    outs = []
    for sess in (cpu, cuda):
        res = [sess.run(x[i:i + 8]) for i in range(0, len(x), 8)]
        logits = np.concatenate([r.outputs[sess.output_names[0]] for r in res])
        counts = {k: sum(r.spike_counts[k] for r in res) for k in res[0].spike_counts}
        outs.append((logits, counts))
    placed = node_providers(cuda.inner.end_profiling())
    spiking = [n.name for n in snn.graph.node if n.domain == schema.DOMAIN]
    assert spiking and all(placed.get(n) == CUDA_EP for n in spiking), {n: placed.get(n) for n in spiking}
    return outs


@pytest.mark.parametrize("levels", [4, 8])
def test_cuda_resnet18_paraif(gpu, resnet18_ann, levels, tmp_path):
    """ParaIF resnet18 (T = L): the CUDA SNN equals the CPU SNN up to float ties. cuDNN and the
    CPU sum a convolution in different orders, so a pre-activation within rounding of a
    quantisation level may land one level apart (tests/test_parity.py); such samples must be
    rare and every other sample equal to float tolerance."""
    import snn_onnx

    x = np.random.default_rng(1234).standard_normal((32, 3, 32, 32)).astype(F32)
    ann = resnet18_ann(levels)
    snn = snn_onnx.convert(ann, time_steps=levels, neuron="paraif", data=x[:16], parity_samples=8).model
    (ref_logits, ref_counts), (logits, counts) = model_parity(gpu, snn, x, tmp_path)
    scale = np.abs(ref_logits).max()
    close = np.abs(logits - ref_logits).max(1) <= 1e-4 * scale
    assert close.mean() >= 0.9, f"{np.sum(~close)} of {len(close)} samples differ by > 1e-4 × {scale:.3g}"
    assert np.array_equal(logits[close].argmax(1), ref_logits[close].argmax(1))
    for site, c in ref_counts.items():
        assert abs(int(counts[site].sum()) - int(c.sum())) <= 0.01 * max(int(c.sum()), 100), site


def test_cuda_resnet18_if(gpu, resnet18_ann, tmp_path):
    """IF-neuron resnet18 (T = 16): CPU and CUDA runs of the same SNN differ only where float
    rounding of a convolution moves a membrane across a threshold; firing and predictions must
    agree closely."""
    import snn_onnx

    x = np.random.default_rng(99).standard_normal((32, 3, 32, 32)).astype(F32)
    snn = snn_onnx.convert(resnet18_ann(8), time_steps=16, neuron="if", data=x[:16], parity_samples=8).model
    (ref_logits, ref_counts), (logits, counts) = model_parity(gpu, snn, x, tmp_path)
    assert np.mean(logits.argmax(1) == ref_logits.argmax(1)) >= 0.9
    scale = np.abs(ref_logits).max()
    assert np.median(np.abs(logits - ref_logits).max(1)) <= 1e-2 * scale
    for site, c in ref_counts.items():
        assert abs(int(counts[site].sum()) - int(c.sum())) <= 0.02 * max(int(c.sum()), 100), site

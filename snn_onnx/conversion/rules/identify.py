"""Identify the function an activation chain computes by running it, not by its spelling.

A chain is a run of elementwise ONNX nodes whose other operands are constants (Relu, Clip,
Min, Max, Mul, Div, Add, Sub, Floor, Round, QuantizeLinear → DequantizeLinear, Cast, …). It
is evaluated in ONNX Runtime on a dense grid, per channel where its constants are per channel,
and matched against the families a spiking neuron reproduces:

``relu``
    ``f(x) = a·max(x, 0)`` (a > 0): IF / ParaIF with a calibrated threshold.
``clip``
    ``f(x) = a·clip(x, 0, λ)``: IF / ParaIF with θ = λ.
``staircase``
    ``f(x) = y0 + Δout·clamp(floor((x − J1)/Δin) + 1, 0, L)``: L equal steps of width Δin
    starting at the first jump J1, each worth Δout — QCFS (floor(·+0.5)), quantizers rounding
    half to even, PACT / LSQ, QuantizeLinear → DequantizeLinear of any integer type, with or
    without a zero point. A ParaIF neuron with θ = L·Δin and ``v_init`` from the offset
    reproduces it exactly at T = L (up to float ties at the jumps).

Anything else is reported with the reason, so ``--explain`` can show near misses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
import onnx_ir as ir

from ..graph_utils import const_array

_SNAP = 1e-5  # offsets this close to 0, 0.5 or 1 (in steps) are that value up to float rounding
_MAX_GRID = 1 << 24  # grid points × channels evaluated at once
_MAX_LEVELS = 1 << 16


class NotIdentified(Exception):
    """The chain computes none of the families (the message says why)."""


CONSTANT = "it is constant"


@dataclass
class Function:
    """What a chain computes, per channel (arrays of shape [C], C = 1 for per-tensor)."""

    family: str  # "relu" | "clip" | "staircase"
    scale: np.ndarray  # a = Δout/Δin for staircases: output per unit of neuron output
    threshold: np.ndarray | None = None  # λ (clip) or L·Δin (staircase); None: calibrate (relu)
    levels: int | None = None  # L (staircase)
    step_in: np.ndarray | None = None  # Δin
    step_out: np.ndarray | None = None  # Δout
    first_jump: np.ndarray | None = None  # J1
    v_init: np.ndarray | None = None  # staircase: the neuron's initial membrane (in θ·1/L units)
    input_shift: np.ndarray | None = None  # c: the neuron reads x − c (None: 0)
    output_offset: np.ndarray | None = None  # y0: added to the neuron's output (None: 0)
    channel_axis: int | None = None  # axis of x the per-channel arrays run along
    extra: dict = field(default_factory=dict)

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1

    def describe(self) -> str:
        def fmt(a: np.ndarray | None) -> str:
            if a is None:
                return "-"
            a = np.asarray(a).ravel()
            return f"{a[0]:.6g}" if a.size == 1 or np.all(a == a[0]) else f"[{a.min():.4g}..{a.max():.4g}] per channel"

        if self.family == "relu":
            return "ReLU" + ("" if np.all(self.scale == 1) else f" scaled by {fmt(self.scale)}")
        if self.family == "clip":
            return f"clip(0, λ={fmt(self.threshold)})" + ("" if np.all(self.scale == 1) else f" scaled by {fmt(self.scale)}")
        text = (f"staircase with L={self.levels} levels, step {fmt(self.step_in)} in / {fmt(self.step_out)} out, "
                f"offset v_init={fmt(self.v_init)}")
        if self.input_shift is not None:
            text += f", input shift {fmt(self.input_shift)}"
        if self.output_offset is not None:
            text += f", output offset {fmt(self.output_offset)}"
        return text


# --- the chain as a small ONNX model --------------------------------------------------------


def _channel_layout(nodes: list[ir.Node], x: ir.Value) -> tuple[int, int | None, int]:
    """(rank r, channel axis or None, channels C) of the chain's constants relative to x."""
    inside = {x} | {v for n in nodes for v in n.outputs}
    rank = len(x.shape) if x.shape is not None else None
    axes: dict[int, int] = {}
    consts = []
    for n in nodes:
        for i, v in enumerate(n.inputs):
            if v is None or v in inside:
                continue
            arr = const_array(v)
            if arr is None:
                raise NotIdentified(f"input {i} of {n.op_type} '{n.name}' is not a constant")
            consts.append((n, i, arr))
    if rank is None:
        rank = max([a.ndim for _, _, a in consts] + [1])
    for n, i, arr in consts:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and arr.ndim == 1 and arr.size > 1:
            ax = n.attributes.get_int("axis", 1)  # per-axis scale / zero point: an attribute, not broadcasting
            ax = ax + rank if ax < 0 else ax
            axes[ax] = arr.size
            continue
        if arr.ndim > rank:
            raise NotIdentified(f"constant of {n.op_type} '{n.name}' has rank {arr.ndim} > the input's {rank}")
        for k, d in enumerate(arr.shape):
            if d != 1:
                axes[rank - arr.ndim + k] = d
    if len(axes) > 1:
        raise NotIdentified(f"its constants vary along several axes {sorted(axes)}")
    if not axes:
        return rank, None, 1
    (axis, c), = axes.items()
    if axis == 0:
        raise NotIdentified("its constants vary along the batch axis")
    return rank, axis, c


class ChainEvaluator:
    """Runs a chain's nodes on arrays of shape [G, C] (G grid points per channel)."""

    def __init__(self, nodes: list[ir.Node], x: ir.Value, y: ir.Value, opsets: dict[str, int]):
        self.rank, self.axis, self.channels = _channel_layout(nodes, x)
        inside = {x} | {v for n in nodes for v in n.outputs}
        inits, seen = [], set()
        for n in nodes:
            for v in n.inputs:
                if v is None or v in inside or v.name in seen:
                    continue
                seen.add(v.name)
                inits.append(onnx.numpy_helper.from_array(np.asarray(const_array(v)), v.name))
        elem = (x.dtype or ir.DataType.FLOAT).value
        if elem not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16):
            raise NotIdentified(f"its input '{x.name}' is not a float tensor")
        self.np_dtype = onnx.helper.tensor_dtype_to_np_dtype(elem) if elem != onnx.TensorProto.BFLOAT16 else np.float32
        try:
            graph = onnx.helper.make_graph(
                [ir.serde.serialize_node(n) for n in nodes], "chain",
                [onnx.helper.make_tensor_value_info(x.name, elem, None)],
                [onnx.helper.make_tensor_value_info(y.name, (y.dtype or ir.DataType.FLOAT).value, None)],
                inits,
            )
            model = onnx.helper.make_model(
                graph, opset_imports=[onnx.helper.make_opsetid(d, v) for d, v in opsets.items()], ir_version=10,
            )
            import onnxruntime as ort

            so = ort.SessionOptions()
            so.log_severity_level = 4
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # evaluate the nodes as written
            self.sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        except Exception as err:
            raise NotIdentified(f"ONNX Runtime cannot run it on its own ({str(err).splitlines()[0][:200]})") from None
        self.x_name, self.y_name = x.name, y.name

    def __call__(self, grid: np.ndarray) -> np.ndarray:
        """grid [G, C] (or [G], the same for every channel) -> f(grid) [G, C] as float64."""
        grid = np.asarray(grid, dtype=np.float64)
        if grid.ndim == 1:
            grid = np.repeat(grid[:, None], self.channels, axis=1)
        g = grid.shape[0]
        shape = [g] + [1] * (self.rank - 1)
        if self.axis is not None:
            shape[self.axis] = self.channels
            xin = np.moveaxis(grid.reshape([g, self.channels] + [1] * (self.rank - 2)), 1, self.axis)
        else:
            xin = grid.reshape(shape)
        xin = np.ascontiguousarray(xin, dtype=self.np_dtype)
        try:
            (out,) = self.sess.run([self.y_name], {self.x_name: xin})
        except Exception as err:
            raise NotIdentified(f"ONNX Runtime failed to evaluate it ({str(err).splitlines()[0][:200]})") from None
        out = np.asarray(out, dtype=np.float64)
        if out.shape != xin.shape:
            raise NotIdentified(f"it is not elementwise (output shape {list(out.shape)} for input {list(xin.shape)})")
        if self.axis is not None:
            out = np.moveaxis(out, self.axis, 1)
        return out.reshape(g, self.channels)


# --- identification ---------------------------------------------------------------------------


def _probe_grid(dtype) -> np.ndarray:
    mags = np.logspace(-6, 6, 12 * 48 + 1)
    grid = np.concatenate([-mags[::-1], [0.0], mags])
    return grid.astype(dtype).astype(np.float64)


def identify(f: ChainEvaluator) -> Function:
    """The family ``f`` belongs to, with its parameters per channel; NotIdentified otherwise."""
    xs = _probe_grid(f.np_dtype)
    ys = f(xs)
    if not np.all(np.isfinite(ys)):
        raise NotIdentified("it gives NaN or Inf for finite inputs")
    scale = np.max(np.abs(ys), axis=0)
    tol = 1e-6 * np.maximum(scale, 1e-30)
    if np.any(np.diff(ys, axis=0) < -tol):
        raise NotIdentified("it is not monotone non-decreasing (not a ReLU, clip or staircase)")
    top_flat = np.all(ys[-1] == ys[-4:], axis=0)
    bottom_flat = np.all(ys[0] == ys[:4], axis=0)
    if not np.all(bottom_flat):
        raise NotIdentified("it is not constant for large negative inputs")
    if not np.any(top_flat):
        return _relu(f, xs, ys)
    if not np.all(top_flat):
        raise NotIdentified("it saturates in some channels and not in others")
    return _bounded(f, xs, ys)


def _relu(f: ChainEvaluator, xs: np.ndarray, ys: np.ndarray) -> Function:
    neg = xs <= 0
    if np.any(ys[neg] != 0):
        raise NotIdentified("it is unbounded above but not zero for x <= 0 (not a ReLU)")
    pos = xs > 0
    a = ys[-1] / xs[-1]
    if np.any(a <= 0):
        raise NotIdentified("its slope is not positive")
    ref = a[None, :] * xs[pos][:, None]
    if not np.allclose(ys[pos], ref, rtol=1e-5, atol=0):
        raise NotIdentified("it is unbounded above but not linear for x > 0 (not a ReLU)")
    return Function("relu", scale=_snap_one(a.astype(np.float64)), channel_axis=f.axis)


def _bounded(f: ChainEvaluator, xs: np.ndarray, ys: np.ndarray) -> Function:
    lo_val, hi_val = ys[0], ys[-1]
    if np.any(hi_val <= lo_val):
        raise NotIdentified(CONSTANT)
    # the interval where f moves, per channel, from the probe grid
    moving = ys != lo_val[None, :]
    first = np.argmax(moving, axis=0)  # first index above the bottom
    at_top = ys == hi_val[None, :]
    top = np.argmax(at_top, axis=0)  # first index at the top
    a = xs[np.maximum(first - 1, 0)]
    b = xs[top]
    n = 8193
    while True:
        grid = a[None, :] + (b - a)[None, :] * np.linspace(0.0, 1.0, n)[:, None]
        vals = f(grid)
        distinct = max(len(np.unique(vals[:, c])) for c in range(vals.shape[1]))
        if distinct <= n // 8 or n * vals.shape[1] * 8 > _MAX_GRID:
            break
        n = 8 * n - 7
    if distinct <= n // 8:
        return _staircase(f, grid, vals)
    return _clip(f, xs, ys)


def _clip(f: ChainEvaluator, xs: np.ndarray, ys: np.ndarray) -> Function:
    if np.any(ys[0] != 0):
        raise NotIdentified("it is bounded but does not start at 0 (not a clip(0, λ))")
    hi = ys[-1]
    # λ: where f reaches its top, found by bisection on the float line
    lo_x = np.zeros_like(hi)
    hi_x = xs[np.argmax(ys == hi[None, :], axis=0)]
    for _ in range(200):
        mid = (lo_x + hi_x) / 2
        at = f(mid[None, :])[0] >= hi
        hi_x = np.where(at, mid, hi_x)
        lo_x = np.where(at, lo_x, mid)
    lam = hi_x
    slope = hi / lam
    grid = lam[None, :] * np.linspace(-0.5, 1.5, 4097)[:, None]
    ref = slope[None, :] * np.clip(grid, 0, lam[None, :])
    got = f(grid)
    if not np.allclose(got, ref, rtol=1e-4, atol=1e-6 * float(np.max(hi))):
        raise NotIdentified("it is bounded and continuous but not linear between 0 and its top (not a clip(0, λ))")
    # a threshold of float32: the value the ANN's Clip max holds
    lam32 = lam.astype(np.float32).astype(np.float64)
    return Function("clip", scale=_snap_one(slope), threshold=lam32, channel_axis=f.axis)


def _staircase(f: ChainEvaluator, grid: np.ndarray, vals: np.ndarray) -> Function:
    n_ch = vals.shape[1]
    levels = [np.unique(vals[:, c]) for c in range(n_ch)]
    L = len(levels[0]) - 1
    if any(len(lv) - 1 != L for lv in levels):
        raise NotIdentified("its channels have different numbers of levels")
    if L > _MAX_LEVELS:
        raise NotIdentified(f"it has {L} levels (more than {_MAX_LEVELS})")
    lv = np.stack(levels, axis=1)  # [L+1, C]
    d_out = (lv[-1] - lv[0]) / L
    k = np.arange(L + 1)[:, None]
    if not np.allclose(lv, lv[0] + k * d_out, rtol=0, atol=1e-3 * np.max(np.abs(d_out)) + 1e-6 * np.max(np.abs(lv))):
        raise NotIdentified("its levels are not equally spaced")
    jumps = _jumps(f, grid, vals, lv)  # [L, C]
    if L >= 2:
        d_in = (jumps[-1] - jumps[0]) / (L - 1)
        pred = jumps[0] + np.arange(L)[:, None] * d_in
        ulp = np.spacing(np.max(np.abs(jumps), axis=0).astype(np.float32)).astype(np.float64)
        tol = np.maximum(1e-4 * d_in, 16 * ulp)
        if np.any(np.abs(jumps - pred) > tol):
            raise NotIdentified("its steps are not equally wide")
        if np.any(d_in <= 0):
            raise NotIdentified("its steps have no width")
        raw = 1.0 - jumps[0] / d_in
    else:  # one step: any width fits; take v_init = 0.5
        j1 = jumps[0]
        d_in = np.where(j1 > 0, 2 * j1, np.maximum(d_out, 1e-30))
        raw = 1.0 - j1 / d_in
    v_init, shift = _split_offset(raw, jumps[0], d_in)
    fn = Function(
        "staircase",
        scale=_snap_one(d_out / d_in),
        threshold=L * d_in,
        levels=L,
        step_in=d_in,
        step_out=d_out,
        first_jump=jumps[0],
        v_init=v_init,
        input_shift=shift,
        output_offset=None if np.all(lv[0] == 0) else lv[0],
        channel_axis=f.axis,
    )
    return fn


def _snap_one(a: np.ndarray) -> np.ndarray:
    """Output scales within float rounding of 1 (Δout computed from the levels, Δin from the
    jumps) are 1: no extra Mul after the neuron."""
    return np.where(np.abs(a - 1.0) < _SNAP, 1.0, a)


def _split_offset(raw: np.ndarray, j1: np.ndarray, d_in: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Initial membrane v_init in [0, 1] and an input shift c for ``floor((x − c)/Δin + v_init)``
    to step at the staircase's jumps. The shift is used only when the offset does not fit in
    [0, 1] (a zero point below the first level): it is an extra input current."""
    snapped = raw.copy()
    for target in (0.0, 0.5, 1.0):
        snapped = np.where(np.abs(raw - target) < _SNAP, target, snapped)
    if np.all((snapped >= 0) & (snapped <= 1)):
        return snapped, None
    v_init = np.full_like(raw, 0.5)
    shift = j1 - 0.5 * d_in  # (x − c)/Δin + 0.5 == (x − J1)/Δin + 1
    return v_init, shift


def _jumps(f: ChainEvaluator, grid: np.ndarray, vals: np.ndarray, lv: np.ndarray) -> np.ndarray:
    """The smallest input reaching each level k = 1..L, per channel, to the float."""
    mid = (lv[:-1] + lv[1:]) / 2  # [L, C]
    lo = np.empty_like(mid)
    hi = np.empty_like(mid)
    for c in range(vals.shape[1]):
        idx = np.searchsorted(vals[:, c], mid[:, c])  # first grid point at or above the midpoint
        if np.any(idx == 0) or np.any(idx >= len(grid)):
            raise NotIdentified("its steps could not be located")
        hi[:, c] = grid[idx, c]
        lo[:, c] = grid[idx - 1, c]
    dtype = f.np_dtype
    lo, hi = lo.astype(dtype), hi.astype(dtype)
    for _ in range(80):
        m = (lo.astype(np.float64) + hi.astype(np.float64)) / 2
        m = m.astype(dtype)
        stuck = (m <= lo) | (m >= hi)
        if np.all(stuck):
            break
        up = f(m) >= mid  # row k of channel c at m[k, c]
        hi = np.where(~stuck & up, m, hi)
        lo = np.where(~stuck & ~up, m, lo)
    return hi.astype(np.float64)

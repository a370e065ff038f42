"""Conversion rules: which ANN nodes become spiking neurons, which are wrapped in expectation
compensation, and which pass through unchanged.

Each activation rule is a pattern (the nodes it matches), a condition (checked while
matching; a rule that does not apply returns None) and a replacement (a spiking neuron built
by ``rewrite.py`` from the :class:`Site` the rule returns). Ops are looked up by type in the
tables below; anything not listed that touches a time-varying tensor stops the conversion
with an error that names the node.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import onnx_ir as ir

from ..errors import ConversionError
from .graph_utils import const_array


@dataclass
class Site:
    """An activation of the ANN that becomes one spiking neuron."""

    name: str  # stable, readable id: the activation's module path or node name (unique)
    kind: str  # "relu" | "clip" | "qcfs"
    nodes: list[ir.Node]  # the ANN nodes the neuron replaces
    input: ir.Value  # pre-activation
    output: ir.Value  # activation
    threshold: np.ndarray | None = None  # known from the ANN (Clip max, QCFS lambda)
    levels: int | None = None  # QCFS quantisation levels L
    channel_axis: int = 1
    extra: dict = field(default_factory=dict)


ActivationRule = Callable[[ir.Node], "Site | None"]


def readable_name(node: ir.Node) -> str:
    """The module path of the activation when the exporter recorded it, else the node name:
    torch's dynamo exporter keeps name scopes in metadata ("layer1.0.act1"); the TorchScript
    exporter names nodes "/layer1/layer1.0/act1/Mul_2"."""
    scopes = node.metadata_props.get("pkg.torch.onnx.name_scopes")
    if scopes:
        try:
            parts = [p for p in ast.literal_eval(scopes) if p]
        except (ValueError, SyntaxError):
            parts = []
        if len(parts) >= 2:
            return parts[-2]
    name = node.name or node.op_type
    if name.startswith("/") and name.count("/") >= 2:
        return name[1:].rsplit("/", 1)[0]
    return name


def _single_consumer(value: ir.Value, op_type: str) -> ir.Node | None:
    uses = list(value.uses())
    if len(uses) != 1 or value.is_graph_output():
        return None
    node = uses[0].node
    return node if node.op_type == op_type and node.domain == "" else None


def _scalar_or_channels(arr: np.ndarray, rank: int | None) -> tuple[np.ndarray, int] | None:
    """Reduce a broadcastable constant to a scalar or a per-channel vector and its axis."""
    arr = np.asarray(arr, dtype=np.float32)
    if arr.size == 1:
        return arr.reshape(()), 1
    nontrivial = [i for i, d in enumerate(arr.shape) if d != 1]
    if len(nontrivial) != 1:
        return None
    axis = nontrivial[0] - arr.ndim  # count from the end: broadcasting aligns right
    if rank is not None:
        axis += rank
    return arr.reshape(-1), axis


def match_relu(node: ir.Node) -> Site | None:
    if node.op_type != "Relu" or node.domain != "":
        return None
    return Site(readable_name(node), "relu", [node], node.inputs[0], node.outputs[0])


def match_clip(node: ir.Node) -> Site | None:
    """Clip(x, 0, λ) (ReLU6 and friends) fires at λ; Clip(x, 0) is a ReLU."""
    if node.op_type != "Clip" or node.domain != "":
        return None
    if node.inputs[0] is None:
        return None
    if len(node.inputs) > 1 or "min" not in node.attributes:  # opset >= 11: inputs
        lo = const_array(node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1] is not None else None
        hi = const_array(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
        if len(node.inputs) > 1 and node.inputs[1] is not None and lo is None:
            return None
        if len(node.inputs) > 2 and node.inputs[2] is not None and hi is None:
            return None
    else:  # opset < 11: attributes
        lo = np.float32(node.attributes["min"].as_float())
        hi = np.float32(node.attributes["max"].as_float()) if "max" in node.attributes else None
    if lo is None or float(lo) != 0.0:
        return None  # a clip that does not start at 0 is compensated, not spiked
    producer = node.inputs[0].producer()
    if producer is not None and producer.op_type == "Floor":
        # Floor -> Clip(0, L) is the middle of a QCFS activation that match_qcfs did not
        # recognise; spiking the Clip alone would silently compute something else
        raise ConversionError(
            "Floor -> Clip(0, L) looks like a QCFS activation, but its Mul/Add/Mul constants "
            "were not recognised (expected Mul(x, L/λ) -> Add(0.5) -> Floor -> Clip(0, L) -> "
            "Mul(λ/L) with constant scales)",
            node.name,
            "Clip",
        )
    if hi is None or not np.isfinite(hi) or float(hi) > 3.0e38:
        return Site(readable_name(node), "relu", [node], node.inputs[0], node.outputs[0])
    if float(hi) <= 0:
        raise ConversionError(f"Clip max {float(hi)} must be > 0 to act as a threshold", node.name, "Clip")
    return Site(readable_name(node), "clip", [node], node.inputs[0], node.outputs[0], threshold=np.float32(hi).reshape(()))


def match_qcfs(node: ir.Node) -> Site | None:
    """The QCFS chain ``Mul(x, L/λ) -> Add(., shift) -> Floor -> Clip(., 0, L) -> Mul(., λ/L)``
    (as ``snn_onnx_models.qcfs.QCFS`` exports; Div(x, λ/L) is accepted for the first Mul).
    Matched at the Floor node."""
    if node.op_type != "Floor" or node.domain != "":
        return None
    add = node.inputs[0].producer() if node.inputs[0] is not None else None
    if add is None or add.op_type != "Add":
        return None
    a_in = [v for v in add.inputs]
    shift = [const_array(v) for v in a_in]
    if shift[1] is not None:
        scaled, shift_v = a_in[0], shift[1]
    elif shift[0] is not None:
        scaled, shift_v = a_in[1], shift[0]
    else:
        return None
    if shift_v.size != 1 or len(list(scaled.uses())) != 1:
        return None
    mul = scaled.producer()
    if mul is None or mul.op_type not in ("Mul", "Div"):
        return None
    m_c = [const_array(v) for v in mul.inputs]
    if mul.op_type == "Mul" and m_c[1] is not None:
        x, scale = mul.inputs[0], m_c[1]
    elif mul.op_type == "Mul" and m_c[0] is not None:
        x, scale = mul.inputs[1], m_c[0]
    elif mul.op_type == "Div" and m_c[1] is not None:
        x, scale = mul.inputs[0], 1.0 / m_c[1].astype(np.float64)
    else:
        return None
    clip = _single_consumer(node.outputs[0], "Clip")
    if clip is None or len(list(add.outputs[0].uses())) != 1:
        return None
    lo = const_array(clip.inputs[1]) if len(clip.inputs) > 1 and clip.inputs[1] is not None else None
    hi = const_array(clip.inputs[2]) if len(clip.inputs) > 2 and clip.inputs[2] is not None else None
    if lo is None or hi is None or float(lo) != 0.0:
        return None
    levels = float(hi)
    if levels < 1 or levels != round(levels):
        return None
    out_mul = _single_consumer(clip.outputs[0], "Mul")
    if out_mul is None:
        return None
    oc = [const_array(v) for v in out_mul.inputs]
    post = oc[1] if oc[1] is not None else oc[0]
    if post is None:
        return None
    levels = int(levels)
    rank = len(x.shape) if x.shape is not None else None
    lam_pre = _scalar_or_channels(levels / np.asarray(scale, dtype=np.float64), rank)
    lam_post = _scalar_or_channels(np.asarray(post, dtype=np.float64) * levels, rank)
    if lam_pre is None or lam_post is None:
        return None
    (lam, axis), (lam2, _) = lam_pre, lam_post
    if lam.shape != lam2.shape or not np.allclose(lam, lam2, rtol=1e-5):
        raise ConversionError(
            "QCFS pattern with inconsistent thresholds: input scale gives "
            f"{lam.ravel()[:4]}, output scale gives {lam2.ravel()[:4]}",
            node.name,
            "Floor",
        )
    if np.any(lam2 <= 0):
        raise ConversionError("QCFS threshold must be > 0", out_mul.name, "Mul")
    return Site(
        readable_name(out_mul),
        "qcfs",
        [mul, add, node, clip, out_mul],
        x,
        out_mul.outputs[0],
        threshold=lam2.astype(np.float32),
        levels=levels,
        channel_axis=axis,
        extra={"shift": float(shift_v.reshape(()))},
    )


# Tried in order at every node; QCFS first so its inner Clip is not taken for a ReLU6.
ACTIVATION_RULES: tuple[ActivationRule, ...] = (match_qcfs, match_relu, match_clip)


# --- op tables ---------------------------------------------------------------------------

# Linear (affine with constants) in their time-varying inputs and acting on each sample
# separately: the mean over time commutes with them, so they run on all steps at once.
LINEAR_OPS = frozenset(
    """Identity Dropout Reshape Flatten Squeeze Unsqueeze Transpose Concat Split Slice Gather
    GatherND GatherElements Expand Tile Pad DepthToSpace SpaceToDepth Resize Upsample
    AveragePool GlobalAveragePool ReduceMean ReduceSum Neg Add Sub Sum Mean Cast CastLike
    BatchNormalization Where Trilu CumSum""".split()
)
# Bilinear ops: linear while at most one operand varies in time (Div: only the numerator).
BILINEAR_OPS = frozenset("Conv ConvTranspose Gemm MatMul Mul Div Einsum".split())
# Outputs describe shapes, not values: never time-varying.
SHAPE_OPS = frozenset("Shape Size".split())
# Non-linear ops that act on each sample separately: wrapped in expectation compensation
# TemporalDelta(f(TemporalMean(x))).
COMPENSATED_OPS = frozenset(
    """MaxPool GlobalMaxPool LpPool ReduceMax ReduceMin ReduceL1 ReduceL2 ReduceLogSumExp
    ReduceProd ReduceSumSquare Softmax LogSoftmax Sigmoid HardSigmoid HardSwish Tanh Erf Gelu
    Exp Log Sqrt Reciprocal Pow Abs LeakyRelu PRelu Elu Selu Celu Softplus Softsign Mish
    LayerNormalization InstanceNormalization GroupNormalization RMSNormalization Sin Cos Max
    Min Floor Ceil Round Clip Sign ThresholdedRelu Shrink LRN""".split()
)

"""Transformer mode: multi-threshold neurons on the activation inputs of every Linear / MatMul.

CNN mode turns each ReLU / clip / QCFS activation into an IF or ParaIF neuron. Transformers
have few such activations: their non-linearities (Softmax, LayerNorm, GELU) are compensated
(``blocks.py``, ``compensation.py``), and spikes are placed where the synaptic work is: a
two-sided MultiThresholdNeuron on every input of a MatMul / Gemm / Einsum that carries
activations (the values before qkv, q, k and v, the attention probabilities, the input of the
output projection, of fc1 and of fc2). The neuron sits on that edge only: a LayerNorm output
that feeds Q, K, V and a residual Add spikes into the three projections while the residual
keeps the analog value. Left as they are: residual adds, embeddings (Gather, position
tables), the patch-embedding convolution (its input is the image) and the head (a MatMul whose
output reaches the graph outputs through linear ops only).

Each neuron's scales come from two-sided percentile calibration on the ANN (default 99th /
1st percentile of the site's values), the percentile placed at level ``anchor_level``
(default 3: ``s = P / 2^3``), per tensor or (for Linear inputs) per input feature. docs/transformers.md
explains the choices.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import onnx_ir as ir

from ..errors import CalibrationError, ConversionError
from ..ops import schema
from ..ops import onnx_table
from . import batch_axis, blocks
from .analysis import Plan
from .calibrate import CalibrationConfig, SiteRequest
from .graph_utils import const_array, insert_after_producer, is_float, make_node, reachable
from .rewrite import SiteRecord, SnnBuilder
from .rules import readable_name, tag

MODES = ("auto", "cnn", "transformer")
SITE_CHOICES = ("all", "linear")
# Weight layers whose activation inputs get a multi-threshold neuron (Conv: CNNs with SiLU /
# GELU and no ReLU-family activation take this path too).
LINEAR_LIKE = frozenset({"MatMul", "Gemm", "Einsum", "Conv", "ConvTranspose"})
# Non-linear ops whose outputs count as activations (what a neuron may be put after).
_NONLINEAR = onnx_table.NONLINEAR_OPS | onnx_table.LOGICAL_OPS
_SAMPLE_CAP = 1 << 18
DEFAULT_ANCHOR = 3  # percentile at level 3: s = P99 / 8 (docs/fidelity.md, issue 16)


@dataclass(frozen=True)
class MultiThresholdConfig:
    """Multi-threshold neurons and their calibration (transformer mode).

    ``percentile`` / ``lower_percentile``: the positive scale puts the top level at the
    ``percentile``-th percentile of the site's values, the negative one at minus the
    ``lower_percentile``-th (default ``100 - percentile``). ``per_channel``: one scale pair per
    input feature of a Linear layer (attention operands keep one per tensor). ``anchor_level``:
    the level k whose value ``s·2^k`` is the calibrated percentile; None: level 3 (or the top
    level when there are fewer), the best measured with the nearest-level neuron (docs/fidelity.md)."""

    levels: int = 8
    percentile: float = 99.0
    lower_percentile: float | None = None
    per_channel: bool = False
    sites: str = "all"  # "all": Linear inputs and attention operands; "linear": Linear inputs only
    anchor_level: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.levels <= schema.MAX_LEVELS:
            raise ConversionError(f"levels must be in [1, {schema.MAX_LEVELS}], got {self.levels}")
        if not 50 < self.percentile <= 100:
            raise CalibrationError(f"percentile must be in (50, 100], got {self.percentile}")
        lo = self.lower
        if not 0 <= lo < 50:
            raise CalibrationError(f"lower percentile must be in [0, 50), got {lo}")
        if self.anchor_level is not None and not 0 <= self.anchor_level < self.levels:
            raise ConversionError(f"anchor_level must be in [0, levels), got {self.anchor_level}")
        if self.sites not in SITE_CHOICES:
            raise ConversionError(f"sites must be one of {SITE_CHOICES}, got {self.sites!r}")

    @property
    def lower(self) -> float:
        return 100.0 - self.percentile if self.lower_percentile is None else self.lower_percentile

    @property
    def anchor(self) -> int:
        """The level the percentile is placed at (``anchor_level``, by default 3)."""
        return min(DEFAULT_ANCHOR, self.levels - 1) if self.anchor_level is None else self.anchor_level

    def describe(self) -> dict:
        d = asdict(self)
        d["kind"] = "multi_threshold"
        d["lower_percentile"] = self.lower
        d["anchor_level"] = self.anchor
        return d


@dataclass
class MTSite:
    """An edge (value into one or more MatMul-like inputs) that gets a multi-threshold neuron."""

    name: str
    value: ir.Value
    uses: list[tuple[ir.Node, int]]
    role: str  # "linear": the activation input of a Linear layer; "operand": a product of two activations
    channel_axis: int | None  # feature axis for per-channel scales, None: per tensor only


@dataclass
class MTRecord(SiteRecord):
    """What the converter did at one multi-threshold site; serialised into the metadata."""

    consumers: list[str]
    levels: int
    scale_pos: list[float]
    scale_neg: list[float]
    range_pos: list[float]
    range_neg: list[float]
    percentile: float
    lower_percentile: float
    channel_axis: int | None
    threshold: list[float]  # = range_pos (top positive level), for tools that read "threshold"
    threshold_source: str
    negative_fallback: bool = False  # no negative values in calibration: scale_neg = scale_pos


# --- mode -------------------------------------------------------------------------------


def choose_mode(graph: ir.Graph, mode: str, n_neuron_sites: int = 0, has_staircase: bool = False) -> str:
    """``cnn`` or ``transformer``. ``auto`` picks transformer for graphs with MatMul / Gemm on
    activations and a LayerNorm (fused or decomposed) or an attention softmax (a Softmax whose
    output reaches a MatMul), and no staircase (QCFS / quantized) activation; and for graphs
    with no activation a CNN-mode neuron can take (SiLU / GELU networks): multi-threshold
    neurons on the inputs of their weight layers, the non-linearities compensated."""
    if mode not in MODES:
        raise ConversionError(f"mode must be one of {MODES}, got {mode!r}")
    if mode != "auto":
        return mode
    if has_staircase:
        return "cnn"
    if n_neuron_sites == 0:
        return "transformer"
    ops = {n.op_type for n in graph}
    layer_norm = bool(ops & {"LayerNormalization", "RMSNormalization"}) or {"ReduceMean", "Sqrt"} <= ops
    attention = any(n.op_type == "Softmax" and _reaches_matmul(n.outputs[0]) for n in graph)
    if (layer_norm or attention) and find_sites(graph):
        return "transformer"
    return "cnn"


def _reaches_matmul(value: ir.Value, depth: int = 6) -> bool:
    if depth == 0:
        return False
    for use in value.uses():
        n = use.node
        if n.op_type in LINEAR_LIKE:
            return True
        if n.op_type in blocks.BLOCK_OPS | blocks.BLOCK_ONLY_OPS and any(_reaches_matmul(o, depth - 1) for o in n.outputs):
            return True
    return False


# --- sites ------------------------------------------------------------------------------


def _activations(graph: ir.Graph) -> set[ir.Value]:
    """Values computed from the output of some non-linear op (data paths only)."""
    return reachable(graph, starts=lambda n: n.op_type in _NONLINEAR, keep=is_float)


def _feeds_nonlinear(graph: ir.Graph) -> set[ir.Node]:
    """Nodes from whose outputs a non-linear op can be reached."""
    feeds: set[ir.Node] = set()
    for node in reversed(list(graph)):
        for out in node.outputs:
            for use in out.uses():
                if use.node.op_type in _NONLINEAR or use.node in feeds:
                    feeds.add(node)
                    break
            if node in feeds:
                break
    return feeds


def _operand_indices(node: ir.Node) -> list[int]:
    if node.op_type == "Gemm":
        return [0, 1]
    if node.op_type in ("Conv", "ConvTranspose"):
        return [0]
    return list(range(len(node.inputs)))


def find_sites(graph: ir.Graph) -> list[MTSite]:
    """The activation inputs of the MatMul / Gemm / Einsum nodes that are not the head."""
    act = _activations(graph)
    feeds = _feeds_nonlinear(graph)
    by_value: dict[ir.Value, MTSite] = {}
    bases: dict[str, int] = {}
    for node in graph:
        if node.op_type not in LINEAR_LIKE or node.domain not in ("", "ai.onnx"):
            continue
        if node not in feeds:
            continue  # the head: its output reaches the outputs through linear ops only
        operands = [i for i in _operand_indices(node) if i < len(node.inputs) and node.inputs[i] is not None]
        carrying = [i for i in operands if node.inputs[i] in act and const_array(node.inputs[i]) is None]
        if not carrying:
            continue
        base = readable_name(node)
        bases[base] = bases.get(base, 0) + 1
        if bases[base] > 1:  # two attention products in one module: q·kᵀ, then attn·v
            base = f"{base}#{bases[base]}"
        for i in carrying:
            v = node.inputs[i]
            if v in by_value:
                by_value[v].uses.append((node, i))
                continue
            others_const = all(const_array(node.inputs[j]) is not None for j in operands if j != i)
            role = "linear" if others_const else "operand"
            axis = _feature_axis(node, i, v) if role == "linear" else None
            label = "input" if role == "linear" else ("AB"[i] if node.op_type != "Einsum" and i < 2 else f"in{i}")
            by_value[v] = MTSite(f"{base}:{label}", v, [(node, i)], role, axis)
    return list(by_value.values())


def _feature_axis(node: ir.Node, i: int, v: ir.Value) -> int | None:
    """The axis of a Linear layer's input that runs along its input features."""
    if node.op_type == "MatMul" and i == 0:
        return -1
    if node.op_type == "Gemm" and i == 0:
        return 0 if node.attributes.get_int("transA", 0) else -1
    if node.op_type in ("Conv", "ConvTranspose") and i == 0:
        return 1
    return None


# --- planning ---------------------------------------------------------------------------


def select_sites(graph: ir.Graph, which: str = "all") -> list[MTSite]:
    """The multi-threshold sites (all, or Linear inputs only), each with its batch on axis 0."""
    sites = [s for s in find_sites(graph) if which == "all" or s.role == "linear"]
    if not sites:
        raise ConversionError(
            "no activation to turn into spiking neurons: no ReLU, clip or staircase activation after a "
            "weight layer, and no MatMul / Gemm / Conv with an activation input other than the head"
        )
    static = batch_axis.static_axes(graph)
    for s in sites:
        a = static.get(s.value, 0)
        if a != 0:
            node = s.uses[0][0]
            raise ConversionError(
                f"the activation '{s.value.name}' into this {node.op_type} carries the batch on axis {a}; "
                "a spiking neuron needs it on axis 0",
                node.name,
                node.op_type,
            )
    return sites


# --- calibration ------------------------------------------------------------------------


class TwoSidedStats:
    """A bounded random sample of a site's values (per tensor, or per channel) for its upper
    and lower percentiles; the running max and min as well."""

    def __init__(self, request: SiteRequest, config: CalibrationConfig, n_batches: int, rng, mt: MultiThresholdConfig):
        self.req, self.cfg, self.mt, self.rng = request, config, mt, rng
        self.per_channel = request.channel_axis is not None
        self.samples: list[np.ndarray] = []
        self.max: np.ndarray | None = None
        self.min: np.ndarray | None = None
        self.per_batch = max(1, _SAMPLE_CAP // max(1, n_batches))

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float32)
        if self.per_channel:
            axis = self.req.channel_axis % x.ndim
            xc = np.moveaxis(x, axis, 0).reshape(x.shape[axis], -1)
        else:
            xc = x.reshape(1, -1)
        if xc.shape[1] == 0:
            return
        mx, mn = xc.max(axis=1), xc.min(axis=1)
        self.max = mx if self.max is None else np.maximum(self.max, mx)
        self.min = mn if self.min is None else np.minimum(self.min, mn)
        cols = xc.shape[1]
        if cols > self.per_batch:
            xc = xc[:, self.rng.choice(cols, self.per_batch, replace=False)]
        self.samples.append(xc)

    def threshold(self) -> dict[str, Any]:
        if not self.samples:
            raise CalibrationError(f"site '{self.req.site}': no values seen during calibration")
        allv = np.concatenate(self.samples, axis=1).astype(np.float64)
        hi = np.percentile(allv, self.mt.percentile, axis=1)
        lo = np.percentile(allv, self.mt.lower, axis=1)
        return {"hi": hi, "lo": lo, "max": self.max.astype(np.float64), "min": self.min.astype(np.float64)}


def calibrate_sites(
    ann, sites: list[MTSite], inputs: dict[str, np.ndarray], cal: CalibrationConfig, mt: MultiThresholdConfig, progress=None
) -> dict[str, dict[str, Any]]:
    from .calibrate import collect

    requests = [
        SiteRequest(s.name, s.value.name, s.channel_axis if (mt.per_channel and s.channel_axis is not None) else None)
        for s in sites
    ]
    return collect(
        ann, requests, inputs, cal, progress,
        stats_factory=lambda r, c, n, rng: TwoSidedStats(r, c, n, rng, mt),
    )


def scales(stats: dict[str, Any], levels: int, anchor: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
    """Positive and negative scales (the smallest level, s) from the calibrated percentiles:
    the percentile value is level ``anchor``, ``s = percentile / 2^anchor``.

    A percentile that is not positive (a site with no values above zero, or none below) takes
    the other side's, or the largest magnitude seen, so every scale is finite and > 0."""
    hi, lo = np.asarray(stats["hi"], np.float64), np.asarray(stats["lo"], np.float64)
    mag = np.maximum(np.abs(stats["max"]), np.abs(stats["min"]))
    rp, rn = hi.copy(), -lo
    fallback = bool(np.any(rn <= 0))
    rp = np.where(rp > 0, rp, np.where(rn > 0, rn, mag))
    rn = np.where(rn > 0, rn, rp)
    tiny = np.float64(1e-12)
    rp, rn = np.maximum(rp, tiny), np.maximum(rn, tiny)
    div = float(2 ** min(anchor, levels - 1))
    return (rp / div).astype(np.float32), (rn / div).astype(np.float32), rp, rn, fallback


# --- rewrite ----------------------------------------------------------------------------


def add_neuron(
    builder: SnnBuilder,
    site: MTSite,
    scale_pos: np.ndarray,
    scale_neg: np.ndarray,
    mt: MultiThresholdConfig,
    spike_counts: bool,
    channel_axis: int | None,
) -> tuple[ir.Node, str | None]:
    """Insert a MultiThresholdNeuron on the site's edge: its MatMul inputs read the spikes,
    every other consumer keeps the value."""
    graph = builder.graph
    x = site.uses[0][0].inputs[site.uses[0][1]]  # the value now feeding the edge (may be a TemporalDelta)
    sp = builder.const(f"{site.name}/scale_pos", scale_pos.reshape(()) if scale_pos.size == 1 else scale_pos)
    sn = builder.const(f"{site.name}/scale_neg", scale_neg.reshape(()) if scale_neg.size == 1 else scale_neg)
    attrs: dict = {"time_steps": builder.T, "levels": int(mt.levels)}
    if channel_axis is not None and scale_pos.size > 1:
        attrs["channel_axis"] = int(channel_axis)
    op = schema.MULTI_THRESHOLD_NEURON.name
    node = make_node(
        builder.namer, op, [x, sp, sn], attrs, domain=schema.DOMAIN,
        num_outputs=2 if spike_counts else 1, name=f"{site.name}/{op}",
        output_names=[f"{site.name}/spikes", f"{site.name}/spike_counts"],
    )
    tag(node, "multi_threshold")
    insert_after_producer(builder.graph, x, [node])
    y = node.outputs[0]
    y.dtype, y.shape = ir.DataType.FLOAT, x.shape
    for n, i in site.uses:
        n.replace_input_with(i, y)
    counts = None
    if spike_counts:
        c = node.outputs[1]
        c.dtype = ir.DataType.INT64
        if x.shape is not None:
            c.shape = ir.Shape([builder.T, *list(x.shape)[1:]])
        graph.outputs.append(c)
        counts = c.name
    return node, counts


def place_neurons(
    builder: SnnBuilder,
    sites: list[MTSite],
    stats: dict[str, dict[str, Any]],
    mt: MultiThresholdConfig,
    spike_counts: bool,
) -> list[MTRecord]:
    """A multi-threshold neuron on every site's edge (compensation follows, in the pipeline)."""
    records: list[MTRecord] = []
    for site in sites:
        st = stats[site.name]
        sp, sn, rp, rn, fallback = scales(st, mt.levels, mt.anchor)
        if not (np.all(np.isfinite(sp)) and np.all(np.isfinite(sn))):
            raise CalibrationError(f"site '{site.name}': calibrated scales are not finite ({sp.ravel()[:4]}, {sn.ravel()[:4]})")
        axis = site.channel_axis if (mt.per_channel and site.channel_axis is not None and sp.size > 1) else None
        in_name = site.value.name
        node, counts = add_neuron(builder, site, sp, sn, mt, spike_counts, axis)
        records.append(MTRecord(
            site=site.name, kind=f"multi_threshold:{site.role}", op=node.op_type, node=node.name, input=in_name,
            output=node.outputs[0].name, counts=counts, consumers=[n.name for n, _ in site.uses], levels=mt.levels,
            scale_pos=[float(v) for v in sp.ravel()], scale_neg=[float(v) for v in sn.ravel()],
            range_pos=[float(v) for v in rp.ravel()], range_neg=[float(v) for v in rn.ravel()],
            percentile=mt.percentile, lower_percentile=mt.lower, channel_axis=axis,
            threshold=[float(v) for v in rp.ravel()], threshold_source="calibration:percentile",
            negative_fallback=fallback,
        ))
    return records


def block_summary(p: Plan) -> list[dict[str, Any]]:
    return [
        {"name": b.name, "kind": b.kind, "nodes": [n.name for n in b.nodes], "input": b.input.name, "output": b.output.name}
        for b in p.blocks
    ]

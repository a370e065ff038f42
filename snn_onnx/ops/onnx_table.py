"""What each standard ONNX op means to the converter, written once.

Every analysis reads this table instead of keeping its own list: the activation rules (which
ops may form an activation chain), the time analysis (which ops pass a time-varying tensor
through unchanged, which must be compensated, which describe shapes), the batch-axis analysis
(elementwise ops keep the batch axis counted from the right, ``leading`` ops need it first),
the optimiser (which ops commute with the running mean over time) and the energy accounting
(what an op costs on analog values).

Roles
-----
``affine``
    linear in its (one) time-varying input, with constants: Add, Reshape, AveragePool …; the
    mean over time commutes with it, so it runs on all steps at once.
``bilinear``
    linear while at most one operand varies in time (Conv, Gemm, MatMul, Mul, Div's numerator);
    a product of two time-varying operands is compensated in its two-input form.
``nonlinear``
    acts on each sample separately but not linearly: expectation compensation
    ``TemporalDelta(f(TemporalMean(x)))``, or an activation rule turns it into a neuron.
``logical``
    non-float results (IsNaN, Equal …): only inside a compensated block.
``shape``
    the output describes shapes, never values: never time-varying.
"""

from __future__ import annotations

from dataclasses import dataclass

AFFINE, BILINEAR, NONLINEAR, LOGICAL, SHAPE = "affine", "bilinear", "nonlinear", "logical", "shape"

# cost rules (snn_onnx/energy/costs.py): what one run on analog values costs
FREE, SYNAPTIC, PER_ELEMENT, WINDOWED, REDUCTION = "free", "synaptic", "per_element", "windowed", "reduction"


@dataclass(frozen=True)
class OpInfo:
    role: str
    elementwise: bool = False  # broadcasting elementwise op: batch axis kept, counted from the right
    leading_batch: bool = False  # needs the batch on axis 0 (NCHW-style) and keeps it there
    commutes_with_mean: bool = False  # mean_t f(x_t, c) == f(mean_t x_t, c) with one varying input
    chain: bool = False  # may sit in an activation chain (elementwise, other operands constant)
    cost: str = FREE
    macs_per_element: int = 1  # for PER_ELEMENT costs
    standalone: bool = True  # non-linear: may be compensated on its own (else only inside a block)


def _table() -> dict[str, OpInfo]:
    t: dict[str, OpInfo] = {}

    def add(names: str, **kw) -> None:
        for name in names.split():
            t[name] = OpInfo(**kw)

    # affine, elementwise (broadcasting)
    add("Identity Dropout Neg Add Sub Sum Mean", role=AFFINE, elementwise=True, commutes_with_mean=True, chain=True)
    add("Cast CastLike", role=AFFINE, elementwise=True, commutes_with_mean=True, chain=True)
    add("Where Expand", role=AFFINE, elementwise=True, commutes_with_mean=True)
    # affine, moving or selecting elements
    add("""Reshape Flatten Squeeze Unsqueeze Transpose Concat Split Slice Gather GatherND
        GatherElements Tile Pad DepthToSpace SpaceToDepth Resize Upsample Trilu CumSum ReduceMean
        ReduceSum""", role=AFFINE, commutes_with_mean=True)
    add("AveragePool GlobalAveragePool BatchNormalization", role=AFFINE, leading_batch=True, commutes_with_mean=True)
    for name in ("DepthToSpace", "SpaceToDepth", "Resize", "Upsample"):
        t[name] = OpInfo(role=AFFINE, leading_batch=True, commutes_with_mean=True)
    # bilinear
    add("Mul Div", role=BILINEAR, elementwise=True, commutes_with_mean=True, chain=True)
    add("Conv ConvTranspose", role=BILINEAR, leading_batch=True, commutes_with_mean=True, cost=SYNAPTIC)
    add("Gemm MatMul Einsum", role=BILINEAR, commutes_with_mean=True, cost=SYNAPTIC)
    # non-linear, elementwise
    add("""Sigmoid HardSigmoid HardSwish Tanh Erf Gelu Exp Log Sqrt Reciprocal Pow Abs LeakyRelu
        PRelu Elu Selu Celu Softplus Softsign Mish Sin Cos Sign ThresholdedRelu Shrink Swish""", role=NONLINEAR,
        elementwise=True, cost=PER_ELEMENT)
    add("Mod BitShift", role=NONLINEAR, elementwise=True, cost=PER_ELEMENT, standalone=False)
    # activation-chain ops: what ReLU, clip, QCFS and quantizers are written with
    add("Relu Max Min Clip Floor Ceil Round", role=NONLINEAR, elementwise=True, chain=True, cost=PER_ELEMENT)
    add("QuantizeLinear DequantizeLinear", role=NONLINEAR, elementwise=True, chain=True, cost=PER_ELEMENT,
        standalone=False)
    # non-linear, per sample
    add("Softmax LogSoftmax", role=NONLINEAR, cost=PER_ELEMENT, macs_per_element=3)
    add("Hardmax", role=NONLINEAR, cost=PER_ELEMENT, standalone=False)  # one-hot: not averaged on its own
    add("LayerNormalization", role=NONLINEAR, cost=PER_ELEMENT, macs_per_element=4)
    add("RMSNormalization", role=NONLINEAR, cost=PER_ELEMENT, macs_per_element=3)
    add("InstanceNormalization GroupNormalization", role=NONLINEAR, leading_batch=True, cost=PER_ELEMENT,
        macs_per_element=4)
    add("LRN", role=NONLINEAR, leading_batch=True, cost=PER_ELEMENT)
    add("MaxPool LpPool", role=NONLINEAR, leading_batch=True, cost=WINDOWED)
    add("GlobalMaxPool GlobalLpPool", role=NONLINEAR, leading_batch=True, cost=REDUCTION)
    add("ReduceMax ReduceMin ReduceL1 ReduceL2 ReduceLogSumExp ReduceProd ReduceSumSquare", role=NONLINEAR,
        cost=REDUCTION)
    # logical (non-float results)
    add("IsNaN IsInf Not And Or Xor Equal Greater GreaterOrEqual Less LessOrEqual", role=LOGICAL, elementwise=True)
    add("Shape Size", role=SHAPE)
    return t


OPS: dict[str, OpInfo] = _table()

# Domains whose ops this table describes. ONNX Runtime's com.microsoft Q/DQ (4- and 16-bit
# quantization before opset 21) computes the same functions as the standard ones.
STANDARD_DOMAINS = ("", "ai.onnx")
QDQ_DOMAINS = ("", "ai.onnx", "com.microsoft")
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})


def info(op_type: str, domain: str = "") -> OpInfo | None:
    """The table's entry for a node's op, None for ops it does not describe."""
    if domain in STANDARD_DOMAINS or (domain == "com.microsoft" and op_type in QDQ_OPS):
        return OPS.get(op_type)
    return None


def ops_with(**conditions) -> frozenset[str]:
    """Op types whose entry matches every ``field=value`` condition (``role`` may be a tuple)."""
    out = []
    for name, entry in OPS.items():
        ok = True
        for key, want in conditions.items():
            have = getattr(entry, key)
            ok = ok and (have in want if isinstance(want, tuple) else have == want)
        if ok:
            out.append(name)
    return frozenset(out)


# Views used across the converter (derived, never edited by hand)
LINEAR_OPS = ops_with(role=AFFINE)
BILINEAR_OPS = ops_with(role=BILINEAR)
SHAPE_OPS = ops_with(role=SHAPE)
NONLINEAR_OPS = ops_with(role=NONLINEAR)
COMPENSABLE_OPS = ops_with(role=NONLINEAR, standalone=True)  # wrapped on their own when not in a block
LOGICAL_OPS = ops_with(role=LOGICAL)
ELEMENTWISE_OPS = ops_with(elementwise=True)
LEADING_BATCH_OPS = ops_with(leading_batch=True)
CHAIN_OPS = ops_with(chain=True)
# ops whose output can no longer be a staircase level: a chain holding one is a quantizer
QUANTIZING_OPS = frozenset({"Floor", "Ceil", "Round", "QuantizeLinear"})

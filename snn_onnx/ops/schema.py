"""Names, inputs and attribute defaults of the ``snn_onnx`` ops: the one place they are written.

The converter, the NumPy references, the docs and the tests all read these tables; the C++
and CUDA kernels repeat the defaults (they cannot import Python) and the kernel tests check
that both agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DOMAIN = "snn_onnx"
OPSET_VERSION = 1


@dataclass(frozen=True)
class OpSchema:
    name: str
    inputs: tuple[str, ...]  # trailing names after `n_required` are optional
    n_required: int
    attributes: dict[str, object] = field(default_factory=dict)  # name -> default (None: required)
    has_spike_counts: bool = False  # optional second output: int64 counts [T, *x.shape[1:]]
    # optional third output: float32 membrane potentials, the shape of y (a debug output)
    has_potentials: bool = False


IF_NEURON = OpSchema(
    name="IFNeuron",
    inputs=("x", "threshold"),
    n_required=2,
    attributes={
        "time_steps": None,
        "v_init": 0.5,
        "leak": 1.0,
        "reset": "subtract",
        "signed": 0,
        "signed_eps": 1e-3,
        "channel_axis": 1,
        "static_input": 0,
    },
    has_spike_counts=True,
    has_potentials=True,
)

PARA_IF_NEURON = OpSchema(
    name="ParaIFNeuron",
    inputs=("x", "theta_pre", "theta_post", "bias"),
    n_required=2,
    attributes={"time_steps": None, "v_init": 0.5, "channel_axis": 1, "static_input": 0},
    has_spike_counts=True,
    has_potentials=True,
)

TEMPORAL_MEAN = OpSchema(
    name="TemporalMean", inputs=("x",), n_required=1, attributes={"time_steps": None}
)

TEMPORAL_DELTA = OpSchema(
    name="TemporalDelta", inputs=("x",), n_required=1, attributes={"time_steps": None}
)

# Two-sided multi-threshold neuron for transformers (Huang et al., 2024); spec in docs/ops.md.
MULTI_THRESHOLD_NEURON = OpSchema(
    name="MultiThresholdNeuron",
    inputs=("x", "scale_pos", "scale_neg"),
    n_required=3,
    attributes={"time_steps": None, "levels": 8, "channel_axis": -1},
    has_spike_counts=True,
    has_potentials=True,
)

# Fused expectation compensation TemporalDelta(f(TemporalMean(x))) for an elementwise f;
# spec in docs/ops.md. The unfused form (the three nodes) is the reference.
COMPENSATED_ELEMENTWISE = OpSchema(
    name="CompensatedElementwise",
    inputs=("x",),
    n_required=1,
    attributes={"time_steps": None, "function": None},
)
ELEMENTWISE_FUNCTIONS = ("gelu", "gelu_tanh", "silu", "sigmoid", "tanh", "hardsigmoid", "hardswish", "relu")

# SignGD neurons (Oh & Lee, ICML 2024); spec in docs/ops.md#signgd-neurons.
SIGNGD_STEP = {"eta0": 0.15, "gamma": 0.95}  # η_t = eta0 * gamma^(t-1), the paper's defaults
SIGNGD_UNARY_FUNCTIONS = ("relu", "leaky_relu", "clip", "abs", "square", "exp", "sigmoid", "silu", "tanh", "gelu",
                          "gelu_tanh", "hardsigmoid", "hardswish")
SIGNGD_BINARY_FUNCTIONS = ("max", "min", "mul", "div", "div_sqrt")
SIGNGD_NEURON = OpSchema(
    name="SignGDNeuron",
    inputs=("x", "offset", "bias", "amplitude"),
    n_required=1,
    attributes={"time_steps": None, "function": None, "alpha": 0.01, "beta": 0.5, "lo": float("-inf"),
                "hi": float("inf"), **SIGNGD_STEP},
    has_spike_counts=True,
)
SIGNGD_NEURON2 = OpSchema(
    name="SignGDNeuron2",
    inputs=("a", "b", "offset_a", "bias_a", "offset_b", "bias_b", "amplitude"),
    n_required=2,
    attributes={"time_steps": None, "function": None, "denominator_floor": 0.0, **SIGNGD_STEP},
    has_spike_counts=True,
)
SIGNGD_DECODE = OpSchema(
    name="SignGDDecode", inputs=("z", "offset", "bias"), n_required=1, attributes={"time_steps": None, **SIGNGD_STEP}
)
SIGNGD_ENCODE = OpSchema(
    name="SignGDEncode", inputs=("w",), n_required=1, attributes={"time_steps": None, "static_input": 0, **SIGNGD_STEP}
)
SIGNGD_OPS = frozenset(s.name for s in (SIGNGD_NEURON, SIGNGD_NEURON2, SIGNGD_DECODE, SIGNGD_ENCODE))

ALL_OPS: dict[str, OpSchema] = {
    s.name: s
    for s in (IF_NEURON, PARA_IF_NEURON, MULTI_THRESHOLD_NEURON, TEMPORAL_MEAN, TEMPORAL_DELTA,
              COMPENSATED_ELEMENTWISE, SIGNGD_NEURON, SIGNGD_NEURON2, SIGNGD_DECODE, SIGNGD_ENCODE)
}

SPIKING_OPS = frozenset(name for name, s in ALL_OPS.items() if s.has_spike_counts)
NEURON_OPS = frozenset(name for name, s in ALL_OPS.items() if s.has_potentials)
COUNTS_OUTPUT = 1  # output index of the spike counts
POTENTIALS_OUTPUT = 2  # output index of the membrane potentials (docs/ops.md, debug output)
RESET_MODES = ("subtract", "zero")
MAX_LEVELS = 32  # MultiThresholdNeuron: levels k = 0 .. levels-1 are worth s * 2^k
MAX_TIME_STEPS = 2**31 - 1  # time_steps: the kernels count a neuron's spikes over time in int32


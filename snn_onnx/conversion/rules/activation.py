"""The activation rule: ReLU, clip and staircase activations, however spelled, become IF or
ParaIF neurons.

pattern      a maximal chain of elementwise nodes with constant operands (``chains.py``),
             after a weight layer, and the sub-chains left when leading or trailing affine
             nodes (a bias add, an output scale) stay outside the neuron;
check        the sub-chain computes a ReLU, a clip(0, λ) or a staircase (``identify.py``,
             evaluated numerically per channel), and its output is not a factor of a product
             with another tensor (HardSwish, SiLU and gates are compensated as one block);
replacement  ``[Sub c] -> IFNeuron | ParaIFNeuron -> [Mul a] -> [Add y0]`` in place of the
             sub-chain (shift, scale and offset only where the function needs them).

A chain holding Floor / Ceil / Round / QuantizeLinear that is neither identified nor left to
compensation stops the conversion with an error naming its nodes: a quantizer the converter
does not understand must never become something else silently.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx_ir as ir

from ...errors import ConversionError
from .base import Rule, Trace, readable_name, unique_name
from .chains import Chain, after_synapse, find_chains, is_nonaffine
from .identify import CONSTANT, ChainEvaluator, Function, NotIdentified, identify


@dataclass
class Site:
    """An activation of the ANN that becomes one spiking neuron."""

    name: str  # stable, readable id: the activation's module path or node name (unique)
    kind: str  # "relu" | "clip" | "staircase"
    nodes: list[ir.Node]  # the ANN nodes the neuron replaces
    input: ir.Value  # pre-activation
    output: ir.Value  # activation
    threshold: np.ndarray | None = None  # known from the ANN (clip λ, staircase L·Δin)
    levels: int | None = None  # staircase levels L (T = L is exact with ParaIF)
    channel_axis: int = 1
    function: Function | None = None
    extra: dict = field(default_factory=dict)

    def recognised(self) -> str:
        what = self.function.describe() if self.function is not None else self.kind
        return f"{what}; from {', '.join(f'{n.op_type} {n.name!r}' for n in self.nodes)}"


_PRODUCTS = frozenset({"Mul", "Div", "Pow"})


class ActivationRule(Rule):
    name = "activation"

    def __init__(self, opsets: dict[str, int], trace: Trace | None = None):
        self.opsets = opsets
        self.trace = trace if trace is not None else Trace()
        self._cache: dict[str, Function | str] = {}

    # -- pattern + check ---------------------------------------------------------------------
    def match(self, graph: ir.Graph) -> list[Site]:
        downstream = after_synapse(graph)
        sites: list[Site] = []
        names: set[str] = set()
        for chain in find_chains(graph):
            if chain.input not in downstream:
                self.trace.miss(self.name, chain.nodes, "acts on the static input before any weight layer; runs once as it is")
                continue
            site = self.check(chain)
            if site == CONSTANT:
                raise _constant_error(chain)
            if isinstance(site, str):
                self.trace.miss(self.name, chain.nodes, site)
                quant = chain.quantizing
                if quant and not site.startswith(_GATE):
                    raise ConversionError(
                        f"the activation chain {[n.name or n.op_type for n in chain.nodes]} quantizes "
                        f"({', '.join(n.op_type for n in quant)}) but is not a ReLU, clip(0, λ) or staircase "
                        f"snn-onnx can turn into a neuron: {site}. Rewrite the activation in the ANN (see "
                        "docs/what_converts.md for the forms that convert)",
                        quant[0].name, quant[0].op_type,
                    )
                continue
            site.name = unique_name(site.name, names)
            sites.append(site)
        return sites

    def check(self, chain: Chain) -> Site | str:
        """The best sub-chain's Site, or the reason none fits."""
        gate = _gates_product(chain.output)
        if gate:
            return f"{_GATE} {gate}: compensated as one block"
        nl = [i for i, n in enumerate(chain.nodes) if is_nonaffine(n)]
        first_nl, last_nl = nl[0], nl[-1]
        best: tuple[tuple, Site] | None = None
        reasons: list[str] = []
        for start in range(0, first_nl + 1):
            for end in range(len(chain.nodes) - 1, last_nl - 1, -1):
                sub = chain.sub(start, end)
                fn = self._identify(sub)
                if isinstance(fn, str):
                    reasons.append(fn)
                    continue
                # the simplest replacement wins: no input shift, then no output scale or offset
                # (affine nodes outside the neuron stay as they are), then the longest chain
                score = (fn.input_shift is not None,
                         bool(np.any(fn.scale != 1.0)) or fn.output_offset is not None,
                         -len(sub.nodes))
                if best is None or score < best[0]:
                    best = (score, _site(sub, fn))
        if best is not None:
            return best[1]
        return reasons[0] if reasons else "no sub-chain to identify"

    def _identify(self, chain: Chain) -> Function | str:
        key = _chain_key(chain)
        if key not in self._cache:
            try:
                self._cache[key] = identify(ChainEvaluator(chain.nodes, chain.input, chain.output, self.opsets))
            except NotIdentified as why:
                self._cache[key] = str(why)
        return self._cache[key]


_GATE = "its output is a factor of a product with"


def _constant_error(chain: Chain) -> ConversionError:
    from ..graph_utils import const_array

    for n in chain.nodes:
        if n.op_type == "Clip" and len(n.inputs) > 2 and n.inputs[2] is not None:
            hi = const_array(n.inputs[2])
            if hi is not None:
                return ConversionError(
                    f"Clip max {float(np.asarray(hi).ravel()[0])} must be > 0 to act as a threshold: the activation "
                    "is constant", n.name, n.op_type)
    n = chain.nodes[-1]
    return ConversionError("the activation chain outputs a constant; remove it from the ANN", n.name, n.op_type)


def _gates_product(y: ir.Value) -> str | None:
    from ..graph_utils import const_array

    for use in y.uses():
        n = use.node
        if n.op_type in _PRODUCTS and n.domain in ("", "ai.onnx"):
            others = [v for i, v in enumerate(n.inputs) if i != use.idx and v is not None]
            if any(const_array(v) is None for v in others):
                return f"{n.op_type} '{n.name}'"
    return None


def _chain_key(chain: Chain) -> str:
    """Chains with the same ops, attributes and constants compute the same function."""
    from ..graph_utils import const_array

    h = hashlib.sha1()
    inside = {chain.input} | {v for n in chain.nodes for v in n.outputs}
    for n in chain.nodes:
        h.update(f"{n.domain}:{n.op_type}:{sorted((k, str(a.value)) for k, a in n.attributes.items())}".encode())
        for i, v in enumerate(n.inputs):
            if v is None:
                h.update(b"none")
            elif v in inside:
                h.update(f"in{i}".encode())
            else:
                arr = np.asarray(const_array(v))
                h.update(f"{arr.dtype}{arr.shape}".encode() + arr.tobytes())
    rank = len(chain.input.shape) if chain.input.shape is not None else -1
    h.update(f"rank{rank}:{chain.input.dtype}".encode())
    return h.hexdigest()


def _site(chain: Chain, fn: Function) -> Site:
    threshold = None if fn.threshold is None else np.asarray(fn.threshold, np.float32)
    axis = fn.channel_axis if fn.channel_axis is not None else 1
    if threshold is not None and threshold.size == 1:
        threshold = threshold.reshape(())
    return Site(
        name=readable_name(chain.nodes[-1]),
        kind=fn.family,
        nodes=list(chain.nodes),
        input=chain.input,
        output=chain.output,
        threshold=threshold,
        levels=fn.levels,
        channel_axis=axis,
        function=fn,
    )


def describe_sites(sites: list[Site]) -> list[dict[str, Any]]:
    return [{"site": s.name, "recognised_as": s.recognised()} for s in sites]

"""Energy rule of the SignGD op family (docs/energy.md, "SignGD neurons").

Spikes of a SignGD neuron are events like any neuron's: the layers they feed count SOPs (the
accounting traces them). What is new is the neuron itself, which does arithmetic at every
step, and the encoder / decoder, which handle analog values. Conventions, per element and
step (the same scale as ``costs.py``: one MAC per non-linear evaluation):

* each input estimate ``x̂ −= η_t·(2z − offset)``: 1 MAC (a multiplication by η_t);
* ``f(x̂)``: 0 for piecewise-linear functions (relu, clip, abs, max, min), 1 otherwise
  (a product, a quotient or a transcendental function);
* the output estimate ``w ± λ·η_t`` and the comparison: free, like an IF membrane update;
* ``SignGDDecode`` and ``SignGDEncode``: 1 MAC.

The ANN's side of the comparison is ``f`` once per element (its cost here), as the ANN
evaluates the non-linearity the neuron replaces.
"""

from __future__ import annotations

import numpy as np
import onnx

from ..ops import schema

PIECEWISE_LINEAR = frozenset({"relu", "clip", "abs", "max", "min"})


def function_macs(function: str) -> int:
    return 0 if function in PIECEWISE_LINEAR else 1


def _attr(node: onnx.NodeProto, name: str):
    for a in node.attribute:
        if a.name == name:
            v = onnx.helper.get_attribute_value(a)
            return v.decode() if isinstance(v, bytes) else v
    return None


def layer_cost(node: onnx.NodeProto, shape: tuple[int, ...]) -> tuple[int, float, str] | None:
    """(MACs over the T steps of one sample, the ANN's MACs per sample, reason) of a SignGD
    node whose first output has ``shape`` (one sample: ``[T, ...]``); None for other ops."""
    if node.domain != schema.DOMAIN or node.op_type not in schema.SIGNGD_OPS:
        return None
    elems = int(np.prod(shape)) if len(shape) else 1
    per_sample = elems // shape[0] if len(shape) and shape[0] else elems
    if node.op_type in (schema.SIGNGD_ENCODE.name, schema.SIGNGD_DECODE.name):
        what = "encoder" if node.op_type == schema.SIGNGD_ENCODE.name else "decoder"
        return elems, 0.0, f"SignGD {what}: 1 MAC per element and step (analog values)"
    fn = str(_attr(node, "function"))
    n_in = 2 if node.op_type == schema.SIGNGD_NEURON2.name else 1
    f = function_macs(fn)
    per = n_in + f
    return elems * per, float(per_sample * f), (f"SignGD neuron ({fn}): {n_in} MAC{'s' if n_in > 1 else ''} for the "
                                                f"input estimate{'s' if n_in > 1 else ''} + {f} for f, per neuron and step")

"""Run an SNN graph with the NumPy references instead of the compiled kernels.

``onnx.reference.ReferenceEvaluator`` executes the standard ops; every ``snn_onnx`` op is
given by its reference in ``reference.REFERENCES`` (attributes not on the node take
``schema.py``'s defaults). Slow (Python / NumPy), but independent of the custom-op library:
the tests use it to check what the converter builds against what the kernels compute.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import onnx
from onnx import helper
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun

from .reference import REFERENCES
from .schema import ALL_OPS, DOMAIN


def _op_class(name: str) -> type[OpRun]:
    schema = ALL_OPS[name]
    fn = REFERENCES[name]

    class _Op(OpRun):
        op_domain = DOMAIN

        def _run(self, *inputs, **_):
            attrs = dict(schema.attributes)
            for a in self.onnx_node.attribute:
                v = helper.get_attribute_value(a)
                attrs[a.name] = v.decode() if isinstance(v, bytes) else v
            out = fn(*inputs, **attrs)
            out = out if isinstance(out, tuple) else (out,)
            return tuple(out[: len(self.onnx_node.output)])

    _Op.__name__ = name
    return _Op


def reference_session(model: onnx.ModelProto) -> ReferenceEvaluator:
    return ReferenceEvaluator(model, new_ops=[_op_class(n) for n in ALL_OPS])


def run_reference(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], names: list[str] | None = None) -> list[np.ndarray]:
    """Outputs ``names`` (default: all) of ``model`` on ``feeds``."""
    return reference_session(model).run(names, dict(feeds))

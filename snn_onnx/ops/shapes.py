"""Output shapes of the ``snn_onnx`` ops for ONNX shape inference (docs/ops.md).

ONNX knows nothing of a custom domain, so ``onnx.shape_inference`` stops at the first spiking
op. :func:`registered` registers a schema per op, with the shape rule below, for the duration
of a ``with`` block (and removes it after, so that ``onnx.checker`` elsewhere keeps treating
the domain as unknown); the memory estimate of :mod:`snn_onnx.runtime.memory` runs inside it.

Rules: ``y`` has the shape of ``x``, except with ``static_input = 1`` where its first axis is
``T`` times as long; ``counts`` is int64 ``[T, *x.shape[1:]]``.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator

import onnx
import onnx.defs as defs

from .schema import ALL_OPS, DOMAIN, OPSET_VERSION, OpSchema

_LOCK = threading.Lock()


def _attr_int(ctx, name: str, default: int | None) -> int | None:
    a = ctx.get_attribute(name)
    return default if a is None else int(a.i)


def _infer(ctx) -> None:
    x = ctx.get_input_type(0)
    if x is None or not x.HasField("tensor_type"):
        return
    t = _attr_int(ctx, "time_steps", None)
    static = _attr_int(ctx, "static_input", 0) == 1
    xt = x.tensor_type
    y = onnx.TypeProto()
    y.tensor_type.elem_type = xt.elem_type
    if xt.HasField("shape"):
        y.tensor_type.shape.CopyFrom(xt.shape)
        dims = y.tensor_type.shape.dim
        if static and len(dims):
            d0 = dims[0]
            if d0.HasField("dim_value") and t is not None:
                d0.dim_value = d0.dim_value * t
            else:
                d0.Clear()
    ctx.set_output_type(0, y)
    if ctx.get_num_outputs() > 1 and ctx.has_output(1):
        counts = onnx.TypeProto()
        counts.tensor_type.elem_type = onnx.TensorProto.INT64
        if xt.HasField("shape"):
            first = counts.tensor_type.shape.dim.add()
            if t is not None:
                first.dim_value = t
            for d in list(xt.shape.dim)[1:]:
                counts.tensor_type.shape.dim.add().CopyFrom(d)
        ctx.set_output_type(1, counts)


def _onnx_schema(spec: OpSchema) -> defs.OpSchema:
    single, optional = defs.OpSchema.FormalParameterOption.Single, defs.OpSchema.FormalParameterOption.Optional
    inputs = [defs.OpSchema.FormalParameter(name, "T", param_option=single if i < spec.n_required else optional)
              for i, name in enumerate(spec.inputs)]
    outputs = [defs.OpSchema.FormalParameter("y", "T")]
    constraints = [("T", ["tensor(float)"], "")]
    if spec.has_spike_counts:
        outputs.append(defs.OpSchema.FormalParameter("counts", "C", param_option=optional))
        constraints.append(("C", ["tensor(int64)"], ""))
    kinds = {int: defs.OpSchema.AttrType.INT, float: defs.OpSchema.AttrType.FLOAT, str: defs.OpSchema.AttrType.STRING}
    required = {"time_steps": int, "function": str}  # the attributes without a default
    attrs = [defs.OpSchema.Attribute(name, kinds[type(default) if default is not None else required[name]], "",
                                     required=False)
             for name, default in spec.attributes.items()]
    schema = defs.OpSchema(spec.name, DOMAIN, OPSET_VERSION, inputs=inputs, outputs=outputs,
                           type_constraints=constraints, attributes=attrs)
    schema.set_type_and_shape_inference_function(_infer)
    return schema


@contextlib.contextmanager
def registered() -> Iterator[None]:
    """Our ops' schemas known to ONNX inside the block (ops someone else registered already
    are left as they are)."""
    with _LOCK:
        added = []
        try:
            for spec in ALL_OPS.values():
                if defs.has(spec.name, DOMAIN):
                    continue
                defs.register_schema(_onnx_schema(spec))
                added.append(spec.name)
            yield
        finally:
            for name in added:
                defs.deregister_schema(name, OPSET_VERSION, DOMAIN)

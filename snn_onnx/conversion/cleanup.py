"""Clean-up before conversion: constant folding, BatchNorm folded into Conv/Gemm, identity
removal and shape inference (onnxscript's optimizer does all of them)."""

from __future__ import annotations

import onnx
import onnx_ir as ir
import onnxscript.optimizer

from ..errors import ConversionError


def cleanup(ann: onnx.ModelProto) -> tuple[ir.Model, int | None]:
    """Optimised IR copy of the ANN and its fixed batch size (None when the batch is dynamic)."""
    model = ir.from_proto(ann)
    inputs = [v for v in model.graph.inputs if v.name not in model.graph.initializers]
    if not inputs:
        raise ConversionError("the model has no inputs")
    fixed = None
    for v in inputs:
        if v.shape is not None and len(v.shape) and isinstance(v.shape[0], int):
            fixed = v.shape[0]
    # The TorchScript exporter writes `L / λ` as ConstantOfShape(...) / λ; onnxscript keeps
    # ConstantOfShape unfolded by default, which would hide the QCFS pattern's constants.
    onnxscript.optimizer.fold_constants(model, should_fold=_fold_small_constant_of_shape)
    onnxscript.optimizer.optimize(model)
    ir.passes.common.ShapeInferencePass(strict_mode=False)(model)
    return model, fixed


def _fold_small_constant_of_shape(node: ir.Node) -> bool | None:
    if node.op_type != "ConstantOfShape" or node.domain != "":
        return None
    shape = ir.convenience.get_const_tensor(node.inputs[0]) if node.inputs else None
    if shape is None:
        return None
    size = 1
    for d in shape.numpy().ravel():
        size *= int(d)
    return True if size <= 4096 else None

"""Getting an ANN as ONNX: from a file, a ModelProto, a torch module, a timm model name or a
``module:factory`` path. torch and timm are imported only on the paths that need them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx

from ..load import check, load_onnx
from ..errors import ModelLoadError

from .hf_export import is_hf_folder
from .torch_export import build_module, default_input_shape, export_module

__all__ = ["build_module", "default_input_shape", "export_module", "is_hf_folder", "is_onnx_path", "resolve_model"]


def is_onnx_path(spec: str | Path) -> bool:
    p = Path(spec)
    return p.suffix == ".onnx" or p.exists()


def resolve_model(model: Any, *, input_shape: tuple[int, ...] | None = None, **kwargs) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        check(model, "the given ModelProto")
        return model
    if isinstance(model, (str, Path)):
        from .hf_export import is_hf_folder

        if is_hf_folder(model):  # a Hugging Face model folder: token inputs, dynamic batch and sequence
            from .hf_export import export_hf

            return export_hf(model, **{k: v for k, v in kwargs.items() if k in ("exporter", "opset")})
        if is_onnx_path(model):
            return load_onnx(model)
        from .torch_export import export_spec

        return export_spec(str(model), input_shape=input_shape, **kwargs)
    if type(model).__module__.startswith("torch") or hasattr(model, "state_dict"):
        from .torch_export import export_module

        if input_shape is None:
            raise ModelLoadError("exporting a torch module needs input_shape (without the batch axis)")
        return export_module(model, input_shape)
    raise ModelLoadError(f"cannot convert an object of type {type(model).__name__}; give a path, ModelProto or torch module")

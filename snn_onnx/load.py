"""Loading ANN files with errors that say what is wrong with them."""

from __future__ import annotations

from pathlib import Path

import onnx

from .errors import ModelLoadError


def load_onnx(path: str | Path) -> onnx.ModelProto:
    p = Path(path)
    if not p.exists():
        raise ModelLoadError(f"model file not found: {p}")
    if p.is_dir():
        raise ModelLoadError(f"{p} is a directory, not an .onnx file")
    try:
        model = onnx.load(str(p))
    except Exception as err:  # protobuf raises a variety of errors on garbage
        raise ModelLoadError(f"{p} is not a valid ONNX model (cannot parse: {_first_line(err)})") from None
    check(model, str(p))
    return model


def check(model: onnx.ModelProto, where: str) -> None:
    if model.ir_version <= 0 or not model.HasField("graph") or not model.graph.node:
        raise ModelLoadError(f"{where} is not a valid ONNX model (no graph or no nodes)")
    try:
        onnx.checker.check_model(model)
    except Exception as err:
        raise ModelLoadError(f"{where} is not a valid ONNX model: {_first_line(err)}") from None


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else err.__class__.__name__

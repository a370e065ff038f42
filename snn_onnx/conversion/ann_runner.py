"""One way to run an ANN in ONNX Runtime with extra outputs (calibration, shape probes,
parity, the exactness gate), whatever its size and whatever ONNX Runtime's optimiser does
to it."""

from __future__ import annotations

import os
import tempfile
from typing import Sequence

import onnx
import onnxruntime as ort

from ..errors import ConversionError

_LEVELS = (
    ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
)
_PROTO_LIMIT = (1 << 31) - (1 << 26)


def with_outputs(model: onnx.ModelProto, names: Sequence[str]) -> onnx.ModelProto:
    """A copy of ``model`` that also outputs the values ``names`` (any type)."""
    if not names:
        return model
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for n in names:
        if n not in have:
            m.graph.output.append(onnx.helper.make_empty_tensor_value_info(n))
            have.add(n)
    return m


def ann_session(
    model: onnx.ModelProto,
    outputs: Sequence[str] = (),
    *,
    as_written: bool = False,
) -> ort.InferenceSession:
    """A CPU session of ``model`` (plus ``outputs``). ONNX Runtime's full optimisation is tried
    first and the next lower level where it fails (its QDQ fusions reject 4-bit MaxPool, for
    one); ``as_written`` runs the nodes unoptimised. Models over 2 GB go through a file."""
    m = with_outputs(model, outputs)
    levels = _LEVELS[2:] if as_written else _LEVELS
    last: Exception | None = None
    path = None
    try:
        if m.ByteSize() > _PROTO_LIMIT:
            fd, path = tempfile.mkstemp(suffix=".onnx")
            os.close(fd)
            onnx.save(m, path, save_as_external_data=True, location=os.path.basename(path) + ".data")
            source: str | bytes = path
        else:
            source = m.SerializeToString()
        for level in levels:
            so = ort.SessionOptions()
            so.log_severity_level = 3
            so.graph_optimization_level = level
            try:
                return ort.InferenceSession(source, so, providers=["CPUExecutionProvider"])
            except Exception as err:  # noqa: PERF203 - a few levels at most
                last = err
    finally:
        if path is not None:
            for p in (path, path + ".data"):
                if os.path.exists(p):
                    os.unlink(p)
    first = str(last).strip().splitlines()[0] if last is not None else "unknown error"
    raise ConversionError(f"ONNX Runtime cannot run the ANN: {first[:400]}")

"""``snn_onnx.convert``: the converter for any model a user holds.

It resolves the model (an .onnx file, a ModelProto, a torch module, a timm name, a
``module:factory`` path or a Hugging Face folder, through ``snn_onnx.export``) and text data
(sentences tokenised for a Hugging Face folder, ``snn_onnx.data.text``), then runs the
conversion pipeline on the ONNX model (``snn_onnx.conversion.pipeline.convert``), which knows
neither torch nor tokenisers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx

from .conversion import pipeline
from .conversion.pipeline import ConversionResult

HF_FOLDER_KEY = "snn_onnx.hf.folder"


def convert(model: str | Path | onnx.ModelProto | Any, *, input_shape: tuple[int, ...] | None = None,
            data: Any = None, source_name: str | None = None, data_source: str | None = None,
            **options: Any) -> ConversionResult:
    """Convert an ANN to a spiking ONNX model.

    ``model``: path to an .onnx file, an ``onnx.ModelProto``, a torch ``nn.Module`` (needs
    ``input_shape`` without the batch axis), a timm model name, a ``module:factory`` path or a
    Hugging Face model folder. ``data``: calibration samples (an array, a dict or ``.npz`` by
    input name, a ``snn_onnx.data`` dataset, or sentences for a Hugging Face folder; a text
    encoder without data takes the bundled calibration sentences). Every other option is
    :func:`snn_onnx.conversion.pipeline.convert`'s (time_steps, neuron, calibration, output,
    mode, parity_gate, …)."""
    from .export import resolve_model  # lazy: torch only when needed

    check_options(options)  # before any export
    ann = resolve_model(model, input_shape=input_shape)
    source_name = source_name or (str(model) if isinstance(model, (str, Path)) else type(model).__name__)
    folder = next((p.value for p in ann.metadata_props if p.key == HF_FOLDER_KEY), None)
    if folder is not None and (data is None or _sentences(data)):
        from .data.text import CALIBRATION, tokenize

        if data is None:
            data, data_source = list(CALIBRATION), data_source or "bundled sentences"
        data = tokenize(folder, list(data), input_names=pipeline.graph_input_names(ann))
    return pipeline.convert(ann, data=data, source_name=source_name, data_source=data_source, **options)


def _sentences(data: Any) -> bool:
    return isinstance(data, (list, tuple)) and bool(data) and all(isinstance(s, str) for s in data)


MODES = ("auto", "cnn", "transformer")


def check_options(options: dict[str, Any]) -> None:
    """What can be refused without the model: unknown options, T, the neuron, the mode, the
    output path (so that a bad value never waits for an export or a calibration)."""
    import inspect

    from .errors import ConversionError
    from .ops.schema import MAX_TIME_STEPS

    known = set(inspect.signature(pipeline.convert).parameters) - {"model"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"convert() got unexpected keyword argument(s) {unknown}")
    t = options.get("time_steps", 8)
    if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 1 <= t <= MAX_TIME_STEPS:
        raise ConversionError(f"time steps T must be an integer in [1, {MAX_TIME_STEPS}], got {t!r}")
    if isinstance(options.get("neuron"), str) and options["neuron"] != "signgd":  # signgd: its own mode
        pipeline.NeuronConfig(kind=options["neuron"])
    if options.get("mode", "auto") not in MODES:
        raise ConversionError(f"mode must be one of {', '.join(MODES)}, got {options['mode']!r}")
    pipeline.check_output_path(options.get("output"), options.get("force", False))

"""snn-onnx: convert trained ANNs to spiking neural networks that run in ONNX Runtime.

Public API: :func:`convert`, :class:`Session`, :func:`library_path`, :func:`session_options`.
Deployment needs only onnxruntime and :func:`library_path`; torch is imported only when a
PyTorch / timm model is exported.
"""

from .errors import (
    CalibrationError,
    ConversionError,
    DataError,
    LibraryNotFoundError,
    MemoryLimitError,
    ModelLoadError,
    OptionalDependencyError,
    OutputExistsError,
    OutputWriteError,
    SnnOnnxError,
    UnsupportedOpError,
)
from .library import library_path, session_options
from .version import __version__


# The public API, imported on first use (keeps `import snn_onnx` light: the converter pulls in
# onnxscript). name -> (module, attribute)
_LAZY = {
    "convert": ("api", "convert"),
    "ConversionResult": ("conversion.pipeline", "ConversionResult"),
    "ConversionWarning": ("conversion.pipeline", "ConversionWarning"),
    "check_output_path": ("conversion.pipeline", "check_output_path"),
    "save_model": ("conversion.pipeline", "save_atomic"),
    "input_names": ("conversion.pipeline", "graph_input_names"),
    "as_inputs": ("conversion.pipeline", "as_inputs"),
    "format_parity": ("conversion.validate", "format_parity"),
    "CalibrationConfig": ("conversion.calibrate", "CalibrationConfig"),
    "CorrectionConfig": ("conversion.corrections", "CorrectionConfig"),
    "NeuronConfig": ("conversion.rewrite", "NeuronConfig"),
    "MultiThresholdConfig": ("conversion.transformer", "MultiThresholdConfig"),
    "SignGDConfig": ("conversion.signgd_mode", "SignGDConfig"),
    "signgd_forms": ("conversion.signgd_mode", "read_forms"),
    "load_onnx": ("load", "load_onnx"),
    "Session": ("runtime.session", "Session"),
    "SnnOutput": ("runtime.session", "SnnOutput"),
    "make_session": ("runtime.session", "make_session"),
    "collapse": ("runtime.collapsed", "collapse"),
    "RayConfig": ("runtime.ray_eval", "RayConfig"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'snn_onnx' has no attribute {name!r}")


__all__ = sorted({*_LAZY, "CalibrationConfig", "CalibrationError", "ConversionError", "ConversionResult", "DataError", "LibraryNotFoundError", "MemoryLimitError", "ModelLoadError", "NeuronConfig", "OptionalDependencyError", "OutputExistsError", "OutputWriteError", "Session", "SnnOnnxError", "SnnOutput", "UnsupportedOpError", "__version__", "convert", "library_path", "session_options"})

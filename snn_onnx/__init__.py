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
    ModelLoadError,
    OptionalDependencyError,
    OutputExistsError,
    SnnOnnxError,
    UnsupportedOpError,
)
from .library import library_path, session_options
from .version import __version__


def __getattr__(name: str):
    # keep `import snn_onnx` light: the converter pulls in onnxscript
    if name in ("convert", "ConversionResult"):
        from .conversion import pipeline

        return getattr(pipeline, name)
    if name in ("CalibrationConfig",):
        from .conversion.calibrate import CalibrationConfig

        return CalibrationConfig
    if name in ("NeuronConfig",):
        from .conversion.rewrite import NeuronConfig

        return NeuronConfig
    if name in ("Session", "SnnOutput"):
        from .runtime import session

        return getattr(session, name)
    raise AttributeError(f"module 'snn_onnx' has no attribute {name!r}")


__all__ = [
    "CalibrationConfig",
    "CalibrationError",
    "ConversionError",
    "ConversionResult",
    "DataError",
    "LibraryNotFoundError",
    "ModelLoadError",
    "NeuronConfig",
    "OptionalDependencyError",
    "OutputExistsError",
    "Session",
    "SnnOnnxError",
    "SnnOutput",
    "UnsupportedOpError",
    "__version__",
    "convert",
    "library_path",
    "session_options",
]

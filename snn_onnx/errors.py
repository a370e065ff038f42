"""Errors snn-onnx raises on bad input. Each names what is wrong (file, node, shape,
attribute); the CLI prints ``str(err)`` on one line and exits non-zero."""

from __future__ import annotations


class SnnOnnxError(Exception):
    """Base class of every error snn-onnx raises on purpose."""


class OpInputError(SnnOnnxError, ValueError):
    """An op got inputs or attributes its spec forbids (reference implementations)."""


class ModelLoadError(SnnOnnxError):
    """A model file is missing, unreadable or not a valid ONNX model."""


class ConversionError(SnnOnnxError):
    """The converter met something it cannot turn into an equivalent SNN."""

    def __init__(self, message: str, node: str | None = None, op_type: str | None = None):
        where = ""
        if node is not None:
            where = f"node '{node}'" + (f" ({op_type})" if op_type else "") + ": "
        super().__init__(where + message)
        self.node = node
        self.op_type = op_type


class UnsupportedOpError(ConversionError):
    """An op the converter has no rule for."""


class CalibrationError(SnnOnnxError):
    """Calibration produced unusable thresholds (e.g. a threshold <= 0)."""


class LibraryNotFoundError(SnnOnnxError):
    """The compiled custom-op library could not be found or loaded."""


class OutputExistsError(SnnOnnxError):
    """The output path exists and overwriting was not asked for."""


class OutputWriteError(SnnOnnxError):
    """An output file could not be written (disk full, the folder became read-only ...)."""


class MemoryLimitError(SnnOnnxError):
    """A run would need more memory than the machine has (the estimate, before running)."""


class DataError(SnnOnnxError):
    """A data source is missing or does not fit the model's input."""


class OptionalDependencyError(SnnOnnxError):
    """A feature needs an optional extra (torch, timm, transformers …) that is not installed."""

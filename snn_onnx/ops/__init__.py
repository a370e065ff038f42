"""The ``snn_onnx`` op set: schemas (names, attributes) and NumPy reference semantics."""

from . import reference, schema
from .schema import ALL_OPS, DOMAIN, OPSET_VERSION, SPIKING_OPS

__all__ = ["ALL_OPS", "DOMAIN", "OPSET_VERSION", "SPIKING_OPS", "reference", "schema"]

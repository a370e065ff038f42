"""Running converted SNNs in ONNX Runtime with the custom-op library registered."""

from .session import Session, SnnOutput, make_session

__all__ = ["Session", "SnnOutput", "make_session"]

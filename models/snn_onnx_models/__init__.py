"""Model definitions for snn-onnx: QCFS activations, QCFS variants of timm models and the
bundled example model (a QCFS CNN trained on scikit-learn's 8×8 digits).

Importing this package does not import torch: a deployment uses only
:func:`example_model_path`. The torch-dependent parts are submodules:

* ``snn_onnx_models.qcfs`` — :class:`QCFS`, ``qcfsify``, ``calibrate_thresholds``
* ``snn_onnx_models.timm_qcfs`` — ``create_qcfs_timm``
* ``snn_onnx_models.digits_cnn`` — ``DigitsQCFSCNN`` (the example model's definition)
* ``snn_onnx_models.digits_event_cnn`` — ``DigitsEventCNN`` (the event-camera example)
* ``snn_onnx_models.lowbit`` — ``NBQuant``, the NB-SNN b-bit activation quantizer
* ``snn_onnx_models.digits_lowbit`` — ``DigitsLowBitCNN`` (2-, 3- and 4-bit digits CNNs)
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "EXAMPLE_LEVELS",
    "EXAMPLE_DATASET",
    "EXAMPLE_INPUT_SHAPE",
    "example_model_path",
    "example_weights_path",
    "digits_event_cnn_path",
    "LOW_BITS",
    "digits_lowbit_path",
]

#: QCFS levels L of the example model (convert it with T = L for an exact ParaIF SNN).
EXAMPLE_LEVELS = 8
#: ``snn_onnx.data`` source the example model was trained on.
EXAMPLE_DATASET = "digits"
#: Input shape of the example model (dynamic batch).
EXAMPLE_INPUT_SHAPE = ("batch", 1, 8, 8)

_WEIGHTS = Path(__file__).resolve().parent / "weights"


def example_model_path() -> Path:
    """Path of the bundled example ANN (``digits_qcfs_cnn.onnx``: input ``input``
    ``[B,1,8,8]`` float32 in [0, 1], output ``logits`` ``[B,10]``)."""
    return _WEIGHTS / "digits_qcfs_cnn.onnx"


def example_weights_path() -> Path:
    """Path of the example model's torch state dict (``digits_qcfs_cnn.pt``)."""
    return _WEIGHTS / "digits_qcfs_cnn.pt"


def digits_event_cnn_path() -> Path:
    """Path of the event-camera example ANN (``digits_event_cnn.onnx``: input ``input``
    ``[B,2,10,10]`` event counts, output ``logits`` ``[B,10]``; convert with an event input)."""
    return _WEIGHTS / "digits_event_cnn.onnx"


#: Bit widths of the shipped low-bit digits CNNs (``digits_lowbit_path``).
LOW_BITS = (2, 3, 4)


def digits_lowbit_path(bits: int, suffix: str = ".onnx") -> Path:
    """Path of the shipped b-bit digits CNN (NB-SNN quantizer, ``L = 2^b − 1`` levels):
    ``.onnx`` (input ``input`` ``[B,1,8,8]``, output ``logits``; convert with ``T = 2^b − 1``,
    docs/low_bit.md) or ``.pt`` (its state dict)."""
    if bits not in LOW_BITS:
        raise ValueError(f"low-bit digits models ship for bits {LOW_BITS}, got {bits!r}")
    return _WEIGHTS / f"digits_lowbit_{bits}bit{suffix}"

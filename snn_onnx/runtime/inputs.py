"""Checks of the arrays fed to a model (a run, calibration): what ONNX Runtime would reject
deep inside with a traceback, or accept and compute something else from.

* not numbers (strings, objects) or complex numbers (a cast would drop the imaginary part):
  refused, naming the input and the dtype;
* no samples (a batch of 0): refused;
* NaN or Inf in a float input: refused with the count and where the first one is. A spiking
  neuron cannot carry them: a comparison with NaN is false, so a neuron whose membrane is NaN
  never fires and everything after it is finite where the ANN's output is NaN
  (docs/ops.md, "NaN and infinity").
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..errors import DataError

_FLOAT_TYPES = ("tensor(float)", "tensor(double)", "tensor(float16)", "tensor(bfloat16)")


def check_dtype(name: str, arr: np.ndarray, role: str = "input", onnx_type: str | None = None) -> None:
    """Refuse arrays that are not real numbers (or booleans); ``onnx_type`` (ORT's
    ``tensor(int64)`` …): an integer input also refuses floats with a fractional part."""
    kind = arr.dtype.kind
    if kind == "c":
        raise DataError(f"{role} '{name}' holds complex numbers (dtype {arr.dtype}); the model takes real values "
                        "(casting would drop the imaginary part)")
    if kind not in "biuf":
        raise DataError(f"{role} '{name}' is not numeric (dtype {arr.dtype}); give numbers")
    if onnx_type is not None and onnx_type not in _FLOAT_TYPES and onnx_type != "tensor(bool)" and kind == "f":
        if arr.size and not np.all(np.isfinite(arr) & (np.mod(arr, 1) == 0)):
            raise DataError(f"{role} '{name}' holds non-integer values, the model takes {onnx_type}")


def check_samples(name: str, arr: np.ndarray, role: str = "input") -> None:
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise DataError(f"{role} '{name}' holds no samples (shape {list(arr.shape)})")


def check_finite(name: str, arr: np.ndarray, role: str = "input") -> None:
    if arr.dtype.kind != "f":
        return
    bad = ~np.isfinite(arr)
    if not bad.any():
        return
    n_nan = int(np.isnan(arr).sum())
    n_inf = int(bad.sum()) - n_nan
    first = np.argwhere(bad)[0].tolist()
    raise DataError(
        f"{role} '{name}' holds {n_nan} NaN and {n_inf} Inf value(s) of {arr.size} (first at index {first}, "
        f"sample {first[0]}): an SNN cannot carry them (a neuron whose membrane is NaN never fires, so its "
        "outputs would be finite where the ANN's are not); remove or replace them"
    )


def check_feed(feed: Mapping[str, np.ndarray], role: str = "input", types: Mapping[str, str] | None = None) -> None:
    """All three checks on every array of ``feed``."""
    for name, arr in feed.items():
        a = np.asarray(arr)
        check_dtype(name, a, role, (types or {}).get(name))
        check_samples(name, a, role)
        check_finite(name, a, role)

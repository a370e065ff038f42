"""Keys under which a converted model records how it was made (ONNX metadata_props)."""

from __future__ import annotations

import json
from typing import Any

import onnx

PREFIX = "snn_onnx."
TIME_STEPS = PREFIX + "time_steps"
NEURON = PREFIX + "neuron"
CALIBRATION = PREFIX + "calibration"
PARITY = PREFIX + "parity"
SITES = PREFIX + "sites"
INPUTS = PREFIX + "inputs"
OUTPUTS = PREFIX + "outputs"
SOURCE = PREFIX + "source"
VERSION = PREFIX + "version"
COMPENSATED = PREFIX + "compensated"
MODE = PREFIX + "mode"  # "cnn" | "transformer"
BLOCKS = PREFIX + "blocks"  # compensation blocks (multi-node non-linearities) and clean-up counts
CLEANUP = PREFIX + "cleanup"  # what the clean-up changed (opset upgrade, folded shapes, quantized weights)
PROVENANCE = PREFIX + "provenance"  # where weights and calibration data came from
EXACT_TIME_STEPS = PREFIX + "exact_time_steps"  # the T at which ParaIF reproduces the ANN (-1: none)
NIR = PREFIX + "nir"  # imported from NIR: dt, NIR node -> our neuron (snn_onnx/interop/nir_import.py)

_JSON_KEYS = {NEURON, CALIBRATION, PARITY, SITES, INPUTS, OUTPUTS, COMPENSATED, BLOCKS, CLEANUP, PROVENANCE, NIR}


def read(model: onnx.ModelProto) -> dict[str, Any]:
    """All snn_onnx metadata of a model, JSON values decoded, keys without the prefix."""
    out: dict[str, Any] = {}
    for prop in model.metadata_props:
        if not prop.key.startswith(PREFIX):
            continue
        value: Any = prop.value
        if prop.key in _JSON_KEYS:
            value = json.loads(value)
        elif prop.key in (TIME_STEPS, EXACT_TIME_STEPS):
            value = int(value)
        out[prop.key[len(PREFIX) :]] = value
    return out


def write(model: onnx.ModelProto, values: dict[str, Any]) -> None:
    """Set metadata entries (full keys), replacing existing ones with the same key."""
    keep = [p for p in model.metadata_props if p.key not in values]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in values.items():
        text = json.dumps(value, sort_keys=True) if key in _JSON_KEYS else str(value)
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=text))

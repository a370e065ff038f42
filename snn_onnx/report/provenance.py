"""Where a model's weights and its calibration data came from, in words (``snn-onnx info`` and
the report). Random-init weights and random calibration data are stated, never implied.

Sources, in order: the ``snn_onnx.provenance`` metadata entry (JSON: ``weights``,
``weights_random``, ``calibration_data``, ``calibration_random`` and any other keys), then the
calibration record the converter always writes (``calibration.data``: ``given`` / ``random``).
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import onnx

KEY = "snn_onnx.provenance"


def read(model: onnx.ModelProto) -> dict[str, Any]:
    """The provenance entry of a model (empty if it has none); a plain string becomes
    ``{"weights": text}``."""
    for p in model.metadata_props:
        if p.key == KEY:
            return parse(p.value)
    return {}


def parse(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError:
            return {"weights": value}
        return dict(decoded) if isinstance(decoded, Mapping) else {"weights": str(decoded)}
    return {}


def write(model: onnx.ModelProto, values: Mapping[str, Any], *, overwrite: bool = False) -> bool:
    """Record ``values`` under ``snn_onnx.provenance`` unless the model already has an entry
    (the converter's own, when it writes one) or ``overwrite``. Returns whether it wrote."""
    existing = [p for p in model.metadata_props if p.key == KEY]
    if existing and not overwrite:
        return False
    for p in existing:
        model.metadata_props.remove(p)
    model.metadata_props.append(onnx.StringStringEntryProto(key=KEY, value=json.dumps(dict(values), sort_keys=True)))
    return True


def lines(meta: Mapping[str, Any]) -> list[str]:
    """Human-readable provenance from decoded metadata (``snn_onnx.metadata.read``)."""
    prov = parse(meta.get("provenance", {}))
    out = []
    weights = prov.get("weights")
    if weights:
        out.append(f"weights: {weights}" + (" — RANDOM INIT: accuracy means nothing" if prov.get("weights_random") else ""))
    cal = meta.get("calibration", {}) or {}
    source = prov.get("calibration_data")
    random_cal = prov.get("calibration_random", cal.get("data") == "random")
    if source or cal:
        text = source or ("random inputs" if cal.get("data") == "random" else "given samples")
        n = cal.get("num_samples")
        out.append(f"calibration data: {text}" + (f" ({n} samples)" if n else "")
                   + (" — RANDOM: thresholds and parity are structural checks only" if random_cal else ""))
    for k, v in prov.items():
        if k not in ("weights", "weights_random", "calibration_data", "calibration_random"):
            out.append(f"{k.replace('_', ' ')}: {v}")
    return out


def is_random(meta: Mapping[str, Any]) -> bool:
    prov = parse(meta.get("provenance", {}))
    cal = meta.get("calibration", {}) or {}
    return bool(prov.get("weights_random") or prov.get("calibration_random", cal.get("data") == "random"))

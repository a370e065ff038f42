"""Readable names of graph nodes: the module path an exporter recorded, else the node name.
Shared by the converter (site names) and the energy report (layer names)."""

from __future__ import annotations

import ast

SCOPES_KEY = "pkg.torch.onnx.name_scopes"
# metadata key on every node the converter makes or wraps: the rule or stage that did it
# (activation, multi_threshold, compensation, time_entry, time_exit); the energy report reads it
RULE_TAG = "snn_onnx.rule"


def readable(name: str, op_type: str, scopes: str | None = None) -> str:
    """torch's dynamo exporter keeps name scopes in metadata ("layer1.0.act1"); the
    TorchScript exporter names nodes "/layer1/layer1.0/act1/Mul_2"."""
    if scopes:
        try:
            parts = [p for p in ast.literal_eval(scopes) if p]
        except (ValueError, SyntaxError):
            parts = []
        if len(parts) >= 2:
            return parts[-2]
    name = name or op_type
    if name.startswith("/") and name.count("/") >= 2:
        return name[1:].rsplit("/", 1)[0]
    return name


def readable_name(node) -> str:
    """:func:`readable` of an onnx-ir node or an ``onnx.NodeProto``."""
    props = node.metadata_props
    scopes = props.get(SCOPES_KEY) if isinstance(props, dict) or hasattr(props, "get") else \
        next((p.value for p in props if p.key == SCOPES_KEY), None)
    return readable(node.name, node.op_type, scopes)

"""Interop with other SNN frameworks: NIR export and import, and the cross-framework check.

``nir`` (``pip install 'snn-onnx[nir]'``) is imported only when a NIR graph is built or
read; deployment of an SNN never needs it (docs/interop.md).
"""

from __future__ import annotations


def __getattr__(name: str):
    if name in ("to_nir", "NirExport", "DEFAULT_DT"):
        from . import nir_export

        return getattr(nir_export, name)
    if name in ("from_nir", "NirImport"):
        from . import nir_import

        return getattr(nir_import, name)
    if name in ("simulate_nir", "NirRun"):
        from . import nir_sim

        return getattr(nir_sim, name)
    if name in ("check", "CheckReport"):
        from . import check

        return getattr(check, name)
    raise AttributeError(f"module 'snn_onnx.interop' has no attribute {name!r}")


__all__ = ["DEFAULT_DT", "CheckReport", "NirExport", "NirImport", "NirRun", "check", "from_nir", "simulate_nir", "to_nir"]

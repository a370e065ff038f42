"""Shared pytest fixtures. Keep this file small: fixtures used by one module live there."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def snn_library() -> str:
    """Path of the built custom-op library (``scripts/build_dev.sh`` or ``pip install .``).

    A missing library is an error, not a skip: the kernels' tests must never pass vacuously."""
    from snn_onnx.errors import LibraryNotFoundError
    from snn_onnx.library import library_path

    try:
        return library_path()
    except LibraryNotFoundError as err:
        pytest.fail(str(err), pytrace=False)

"""Where the compiled custom-op library (``libsnn_onnx_ops``) is, and how to register it.

Any plain onnxruntime session runs a converted model once the library is registered::

    so = onnxruntime.SessionOptions()
    so.register_custom_ops_library(snn_onnx.library_path())

:func:`session_options` does the same and turns a failure into
:class:`~snn_onnx.errors.LibraryNotFoundError`.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import LibraryNotFoundError

if TYPE_CHECKING:  # onnxruntime is imported only when options are built
    import onnxruntime

ENV_VAR = "SNN_ONNX_LIBRARY"

if sys.platform == "win32":
    LIBRARY_NAME = "snn_onnx_ops.dll"
elif sys.platform == "darwin":
    LIBRARY_NAME = "libsnn_onnx_ops.dylib"
else:
    LIBRARY_NAME = "libsnn_onnx_ops.so"

_BUILD_HINT = (
    "install the package with `pip install snn-onnx` (or `pip install .` in a checkout), which "
    "builds the library; for development run `scripts/build_dev.sh` in the source tree; or point "
    f"{ENV_VAR} at a built {LIBRARY_NAME}"
)


def bundled_library_path() -> Path:
    """Where the build installs the library: ``snn_onnx/_lib/`` beside this module."""
    return Path(__file__).resolve().parent / "_lib" / LIBRARY_NAME


def library_path() -> str:
    """Absolute path of the custom-op library.

    ``$SNN_ONNX_LIBRARY`` wins when set; otherwise the copy inside the package. Raises
    :class:`LibraryNotFoundError` naming what was tried when neither exists."""
    override = os.environ.get(ENV_VAR)
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise LibraryNotFoundError(
                f"{ENV_VAR} is set to '{override}', but no such file exists; unset it or {_BUILD_HINT}"
            )
        return str(path.resolve())
    path = bundled_library_path()
    if not path.is_file():
        raise LibraryNotFoundError(
            f"snn_onnx custom-op library not found: tried '{path}' ({ENV_VAR} is not set); "
            + _BUILD_HINT
        )
    return str(path)


def session_options(so: onnxruntime.SessionOptions | None = None) -> onnxruntime.SessionOptions:
    """``so`` (or new SessionOptions) with the custom-op library registered."""
    import onnxruntime

    path = library_path()
    if so is None:
        so = onnxruntime.SessionOptions()
    try:
        so.register_custom_ops_library(path)
    except Exception as err:  # ORT raises its own Fail / RuntimeError types
        raise LibraryNotFoundError(
            f"onnxruntime {onnxruntime.__version__} could not load the custom-op library "
            f"'{path}': {err}".rstrip()
        ) from err
    return so


def cuda_runtime_version(path: str | None = None) -> int:
    """CUDA runtime version the library's CUDA kernels were built with (e.g. 13000 for 13.0),
    or 0 for a library built without them (the default CPU-only build; rebuild with
    ``SNN_ONNX_CUDA=ON``). Reads the library's exported ``snn_onnx_has_cuda()``."""
    return _cuda_runtime_version(path or library_path())


@functools.lru_cache(maxsize=None)
def _cuda_runtime_version(path: str) -> int:
    # Loading the library is harmless without a GPU: its CUDA runtime is linked statically and
    # starts only when a CUDA op runs.
    lib = ctypes.CDLL(path)
    fn = getattr(lib, "snn_onnx_has_cuda", None)
    if fn is None:  # a library older than the CUDA kernels
        return 0
    fn.restype = ctypes.c_int
    fn.argtypes = []
    return int(fn())


def has_cuda_kernels(path: str | None = None) -> bool:
    """Whether the library has the CUDA kernels (for ``CUDAExecutionProvider``)."""
    return cuda_runtime_version(path) > 0

"""snn_onnx.library: finding and registering the custom-op library."""

from __future__ import annotations

import re
import shutil

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import snn_onnx
from snn_onnx import library
from snn_onnx.errors import LibraryNotFoundError


def _temporal_mean_model() -> bytes:
    node = helper.make_node("TemporalMean", ["x"], ["y"], domain="snn_onnx", time_steps=2)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("snn_onnx", 1)],
                              ir_version=10)
    return model.SerializeToString()


def test_public_api():
    assert snn_onnx.library_path is library.library_path
    assert snn_onnx.session_options is library.session_options


def test_env_override(snn_library, tmp_path, monkeypatch):
    copy = tmp_path / "custom" / library.LIBRARY_NAME
    copy.parent.mkdir()
    shutil.copy(snn_library, copy)
    monkeypatch.setenv(library.ENV_VAR, str(copy))
    assert library.library_path() == str(copy.resolve())
    so = library.session_options()
    sess = ort.InferenceSession(_temporal_mean_model(), so, providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"x": np.array([1.0, 3.0], np.float32)})
    np.testing.assert_array_equal(y, [1.0, 2.0])


def test_env_override_missing_file(tmp_path, monkeypatch):
    missing = tmp_path / "nope.so"
    monkeypatch.setenv(library.ENV_VAR, str(missing))
    with pytest.raises(LibraryNotFoundError) as info:
        library.library_path()
    assert str(missing) in str(info.value) and library.ENV_VAR in str(info.value)


def test_missing_library(tmp_path, monkeypatch):
    monkeypatch.delenv(library.ENV_VAR, raising=False)
    gone = tmp_path / "_lib" / library.LIBRARY_NAME
    monkeypatch.setattr(library, "bundled_library_path", lambda: gone)
    with pytest.raises(LibraryNotFoundError) as info:
        library.library_path()
    msg = str(info.value)
    assert str(gone) in msg and "build_dev.sh" in msg and "pip install" in msg
    with pytest.raises(LibraryNotFoundError):
        library.session_options()


def test_default_location(snn_library, monkeypatch):
    """Without the variable: the copy inside the package, or an error naming where it looked
    (a checkout whose library was built elsewhere, as in the sanitizer job)."""
    monkeypatch.delenv(library.ENV_VAR, raising=False)
    bundled = library.bundled_library_path()
    if bundled.is_file():
        assert library.library_path() == str(bundled)
    else:
        with pytest.raises(LibraryNotFoundError, match=re.escape(str(bundled))):
            library.library_path()


def test_not_a_library(tmp_path, monkeypatch):
    fake = tmp_path / library.LIBRARY_NAME
    fake.write_bytes(b"this is not a shared object\n")
    monkeypatch.setenv(library.ENV_VAR, str(fake))
    assert library.library_path() == str(fake.resolve())
    with pytest.raises(LibraryNotFoundError) as info:
        library.session_options()
    msg = str(info.value)
    assert str(fake.resolve()) in msg and "could not load" in msg


def test_session_options_reuses_given_options(snn_library, monkeypatch):
    monkeypatch.setenv(library.ENV_VAR, snn_library)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    assert library.session_options(so) is so
    # registering into several options (and sessions) shares one op domain
    for opts in (so, library.session_options()):
        sess = ort.InferenceSession(_temporal_mean_model(), opts,
                                    providers=["CPUExecutionProvider"])
        (y,) = sess.run(None, {"x": np.array([2.0, 4.0], np.float32)})
        np.testing.assert_array_equal(y, [2.0, 3.0])

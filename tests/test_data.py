"""snn_onnx.data: digits split, npz files, image folders, random inputs and every DataError."""

from __future__ import annotations

import hashlib
import sys

import numpy as np
import pytest

from snn_onnx.data import DIGITS_SPLIT_SEED, Dataset, batches, load
from snn_onnx.errors import DataError, OptionalDependencyError

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


# --------------------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits():
    pytest.importorskip("sklearn", reason="the digits source needs scikit-learn")
    return {s: load("digits", s) for s in ("train", "test", "all")}


def test_digits_sizes_and_values(digits):
    tr, te, al = digits["train"], digits["test"], digits["all"]
    assert (len(tr), len(te), len(al)) == (1346, 451, 1797)
    for ds in (tr, te, al):
        assert isinstance(ds, Dataset)
        assert ds.x.dtype == np.float32 and ds.y.dtype == np.int64
        assert ds.x.shape[1:] == (1, 8, 8) and ds.y.shape == (len(ds),)
        assert ds.x.min() == 0.0 and ds.x.max() == 1.0
        # pixel / 16 with integer pixels 0..16
        assert np.array_equal(ds.x * 16, np.round(ds.x * 16))
    assert te.name == "digits:test" and tr.name == "digits:train"


def test_digits_split_is_stratified_disjoint_and_pinned(digits):
    tr, te, al = digits["train"], digits["test"], digits["all"]
    counts_all = np.bincount(al.y, minlength=10)
    counts_te = np.bincount(te.y, minlength=10)
    assert np.array_equal(counts_te, np.floor(counts_all * 0.25 + 0.5).astype(int))
    assert np.array_equal(np.bincount(tr.y, minlength=10) + counts_te, counts_all)
    # train and test are disjoint and make up the whole set (compare samples as bytes)
    key = lambda ds: {ds.x[i].tobytes() + bytes([int(ds.y[i])]) for i in range(len(ds))}  # noqa: E731
    assert len(key(tr) | key(te)) == len(key(al))
    # the split is frozen: a change of numpy/sklearn must not move samples between splits
    from snn_onnx.data import _digits_split_indices

    idx = _digits_split_indices(al.y)["test"]
    assert DIGITS_SPLIT_SEED == 20240501
    assert hashlib.sha256(idx.astype(np.int64).tobytes()).hexdigest()[:16] == DIGITS_TEST_SHA


DIGITS_TEST_SHA = "02f621b11d06834a"


def test_digits_deterministic_limit_and_shape(digits):
    again = load("digits", "test")
    assert np.array_equal(again.x, digits["test"].x) and np.array_equal(again.y, digits["test"].y)
    small = load("digits", "train", limit=5, input_shape=("batch", 1, 8, 8))
    assert small.x.shape == (5, 1, 8, 8) and np.array_equal(small.y, digits["train"].y[:5])
    load("digits", input_shape=(None, 1, 8, 8))
    load("digits", input_shape=(1, 1, -1, "w"))  # symbolic / unknown dims are wildcards


def test_digits_errors(digits):
    with pytest.raises(DataError, match=r"'digits'.*expected shape \[N, 3, 32, 32\], got \[N, 1, 8, 8\]"):
        load("digits", input_shape=(1, 3, 32, 32))
    with pytest.raises(DataError, match=r"'digits'.*expected shape \[N, 64\], got \[N, 1, 8, 8\]"):
        load("digits", input_shape=(1, 64))
    with pytest.raises(DataError, match="split must be one of"):
        load("digits", "validation")
    with pytest.raises(DataError, match="limit must be a positive integer"):
        load("digits", limit=0)
    with pytest.raises(DataError, match="takes no options"):
        load("digits", seed=3)


def test_digits_needs_sklearn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(OptionalDependencyError, match=r"scikit-learn.*pip install 'snn-onnx\[data\]'"):
        load("digits")


# --------------------------------------------------------------------------- npz


def test_npz_with_and_without_labels(tmp_path):
    x = np.arange(2 * 3 * 4 * 4, dtype=np.float64).reshape(2, 3, 4, 4)
    p = tmp_path / "d.npz"
    np.savez(p, x=x, y=np.array([3, 1], dtype=np.int32))
    ds = load(p, input_shape=(None, 3, 4, 4))
    assert ds.x.dtype == np.float32 and np.array_equal(ds.x, x.astype(np.float32))
    assert ds.y.dtype == np.int64 and ds.y.tolist() == [3, 1]
    assert ds.name == str(p)
    assert len(load(str(p), limit=1)) == 1
    q = tmp_path / "nolabels.npz"
    np.savez(q, x=x)
    assert load(q).y is None


def test_npz_errors(tmp_path):
    missing = tmp_path / "missing.npz"
    with pytest.raises(DataError, match=f"'{missing}'.*no such file"):
        load(missing)
    p = tmp_path / "nox.npz"
    np.savez(p, images=np.zeros((2, 3)))
    with pytest.raises(DataError, match=f"'{p}' has no array 'x'"):
        load(p)
    p = tmp_path / "nhwc.npz"
    np.savez(p, x=np.zeros((2, 8, 8, 3), dtype=np.float32))
    with pytest.raises(DataError, match=rf"'{p}'.*expected shape \[N, 3, 8, 8\], got \[N, 8, 8, 3\].*NHWC"):
        load(p, input_shape=(1, 3, 8, 8))
    p = tmp_path / "bady.npz"
    np.savez(p, x=np.zeros((3, 2), dtype=np.float32), y=np.zeros(2, dtype=np.int64))
    with pytest.raises(DataError, match=rf"'{p}'.*'y'.*expected shape \[3\], got \[2\]"):
        load(p)
    p = tmp_path / "empty.npz"
    np.savez(p, x=np.zeros((0, 2), dtype=np.float32))
    with pytest.raises(DataError, match=f"'{p}'.*empty"):
        load(p)
    p = tmp_path / "broken.npz"
    p.write_bytes(b"not a zip")
    with pytest.raises(DataError, match=f"'{p}' is not an .npz archive"):
        load(p)
    p = tmp_path / "data.csv"
    p.write_text("1,2\n")
    with pytest.raises(DataError, match=f"'{p}': not a .npz file or an image folder"):
        load(p)


def test_unknown_source():
    with pytest.raises(DataError, match=r"'cifar10'.*no such file.*named sources are digits, random"):
        load("cifar10")


# --------------------------------------------------------------------------- image folders


def _png(path, color, size=(20, 10), mode="RGB"):
    from PIL import Image

    Image.new(mode, size, color).save(path)


@pytest.fixture()
def image_folder(tmp_path):
    pytest.importorskip("PIL", reason="image folders need Pillow")
    root = tmp_path / "imgs"
    for cls, color in (("b_cat", (255, 0, 0)), ("a_dog", (0, 128, 255))):
        (root / cls).mkdir(parents=True)
        for i in range(2):
            _png(root / cls / f"{i}.png", color)
    (root / "a_dog" / "notes.txt").write_text("ignored")
    return root


def test_image_folder_labels_and_normalisation(image_folder):
    ds = load(image_folder, input_shape=(None, 3, 6, 8))
    assert ds.x.shape == (4, 3, 6, 8) and ds.x.dtype == np.float32
    assert ds.classes == ["a_dog", "b_cat"] and ds.y.tolist() == [0, 0, 1, 1]
    want_dog = (np.array([0, 128, 255], np.float32) / 255 - IMAGENET_MEAN) / IMAGENET_STD
    want_cat = (np.array([255, 0, 0], np.float32) / 255 - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(ds.x[0].mean(axis=(1, 2)), want_dog, rtol=0, atol=1e-5)
    np.testing.assert_allclose(ds.x[3].mean(axis=(1, 2)), want_cat, rtol=0, atol=1e-5)
    gray = load(image_folder, input_shape=(1, 1, 4, 4), normalize=False, limit=3)
    assert gray.x.shape == (3, 1, 4, 4) and 0.0 <= gray.x.min() <= gray.x.max() <= 1.0
    assert gray.y.tolist() == [0, 0, 1]


def test_image_folder_resize_and_center_crop(tmp_path):
    pytest.importorskip("PIL", reason="image folders need Pillow")
    from PIL import Image

    # 8x4 image: left half black, right half white; shorter side 4 -> crop 4x4 from the centre
    a = np.zeros((4, 8), dtype=np.uint8)
    a[:, 4:] = 255
    (tmp_path / "flat").mkdir()
    Image.fromarray(a, mode="L").save(tmp_path / "flat" / "x.png")
    ds = load(tmp_path / "flat", input_shape=(1, 1, 4, 4), normalize=False)
    assert ds.y is None and ds.classes is None
    np.testing.assert_array_equal(ds.x[0, 0], np.tile([0, 0, 1, 1], (4, 1)).astype(np.float32))


def test_image_folder_errors(tmp_path, image_folder):
    empty = tmp_path / "empty"
    (empty / "cls").mkdir(parents=True)
    with pytest.raises(DataError, match=f"'{empty}' holds no images"):
        load(empty, input_shape=(1, 3, 8, 8))
    with pytest.raises(DataError, match=f"'{image_folder}' needs input_shape"):
        load(image_folder)
    with pytest.raises(DataError, match=rf"'{image_folder}'.*expected shape \[N, 4, 8, 8\]"):
        load(image_folder, input_shape=(1, 4, 8, 8))
    with pytest.raises(DataError, match=f"'{image_folder}' needs a fixed NCHW input shape"):
        load(image_folder, input_shape=(1, 3, "h", "w"))
    with pytest.raises(DataError, match="unknown options"):
        load(image_folder, input_shape=(1, 3, 8, 8), colour="yes")
    bad = tmp_path / "bad" / "c"
    bad.mkdir(parents=True)
    (bad / "x.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=f"'{bad / 'x.png'}' cannot be read"):
        load(bad.parent, input_shape=(1, 3, 8, 8))


def test_image_folder_needs_pillow(monkeypatch, image_folder):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(OptionalDependencyError, match=r"Pillow.*pip install 'snn-onnx\[data\]'"):
        load(image_folder, input_shape=(1, 3, 8, 8))


def test_image_folder_timm_transform(image_folder):
    pytest.importorskip("timm", reason="timm_model= needs timm")
    ds = load(image_folder, input_shape=(1, 3, 32, 32), timm_model="resnet18")
    assert ds.x.shape == (4, 3, 32, 32) and ds.x.dtype == np.float32
    want = (np.array([0, 128, 255], np.float32) / 255 - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(ds.x[0].mean(axis=(1, 2)), want, atol=1e-3)
    with pytest.raises(DataError, match="timm has no model named"):
        load(image_folder, input_shape=(1, 3, 32, 32), timm_model="no_such_model_xyz")


# --------------------------------------------------------------------------- random, batches


def test_random_source():
    a = load("random", input_shape=("batch", 3, 5, 5), limit=4, seed=1)
    b = load("random", input_shape=(7, 3, 5, 5), limit=4, seed=1)
    c = load("random", input_shape=(7, 3, 5, 5), limit=4, seed=2)
    assert a.x.shape == (4, 3, 5, 5) and a.x.dtype == np.float32 and a.y is None
    assert np.array_equal(a.x, b.x) and not np.array_equal(a.x, c.x)
    assert len(load("random", input_shape=(None, 10))) == 8
    with pytest.raises(DataError, match="'random' needs input_shape"):
        load("random")
    with pytest.raises(DataError, match=r"'random' needs a fixed input shape.*\[\?, 3, \?, \?\]"):
        load("random", input_shape=("b", 3, "h", "w"))


def test_batches():
    x = np.arange(10)
    assert [b.tolist() for b in batches(x, 4)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [len(b) for b in batches(x, 10)] == [10]
    assert list(batches(x[:0], 3)) == []
    with pytest.raises(ValueError):
        list(batches(x, 0))

"""Data sources for calibration, parity checks and accuracy reports.

``load(source, split="test", limit=None, input_shape=None, **opts)`` returns a
:class:`Dataset` (``x`` float32 NCHW, ``y`` int64 labels or ``None``). ``source`` is one of:

``"digits"``
    scikit-learn's bundled 8×8 handwritten digits (1797 real images, 10 classes):
    ``x = images / 16`` as ``[N, 1, 8, 8]`` float32 in [0, 1]. A fixed stratified split,
    made with NumPy's frozen legacy ``RandomState(DIGITS_SPLIT_SEED)`` (never sklearn's RNG):
    for each class, a permutation of that class's samples puts ``round(n_c / 4)`` into
    ``"test"`` and the rest into ``"train"``; each split keeps the original sample order.
    Sizes: ``train`` 1346, ``test`` 451, ``all`` 1797. Needs scikit-learn.
a path to an ``.npz`` file
    arrays ``x`` (cast to float32, used as is: no scaling or normalisation) and optionally
    ``y`` (cast to int64, one label per sample). ``split`` is ignored.
a path to an image folder
    one subfolder per class, class names sorted → labels 0, 1, …; or a folder of images
    without subfolders (``y`` is then ``None``). Images are read with Pillow
    (``.png .jpg .jpeg .bmp .gif .ppm .pgm .tif .tiff .webp``, sorted by file name) and
    preprocessed into ``input_shape``. ``split`` is ignored. Two preprocessings:

    * default (Pillow + NumPy, no torch): convert to RGB (C = 3) or grayscale (C = 1);
      resize so that the image covers ``H/crop_pct × W/crop_pct`` keeping its aspect ratio
      (``crop_pct`` option, default 1.0: the shorter side becomes the crop size),
      bilinear (``interpolation="bilinear"|"bicubic"|"nearest"``); center-crop ``H×W``;
      scale to [0, 1]; normalise with ``mean``/``std`` options, by default ImageNet's
      ``(0.485, 0.456, 0.406)`` / ``(0.229, 0.224, 0.225)`` (one channel: 0.449 / 0.226);
      ``normalize=False`` skips it.
    * ``timm_model=`` a timm model name (its pretrained config: mean, std, crop_pct,
      interpolation, crop mode), a timm model instance, or a dict of timm data arguments:
      ``timm.data.resolve_data_config`` + ``timm.data.create_transform`` (eval transform).
      With ``input_shape`` given its ``C×H×W`` overrides the config's input size. Needs timm
      (and torch).

    Needs ``input_shape`` (or ``timm_model``) and Pillow.
``"random"``
    seeded standard-normal inputs of ``input_shape`` (option ``seed``, default 0);
    ``limit`` samples (default 8); ``y`` is ``None``. For structural checks of
    random-init models.

``input_shape`` is the model's input shape *including* the leading batch dimension, which
is ignored (it may be an int, ``None``, ``-1`` or a symbolic name); other non-int or
non-positive entries are wildcards. Data that does not fit it raises
:class:`~snn_onnx.errors.DataError` naming the source, the expected and the actual shape.
``limit`` keeps the first ``limit`` samples.

scikit-learn and Pillow are optional (``pip install 'snn-onnx[data]'``); they are imported
only when a source needs them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import DataError, OptionalDependencyError

__all__ = [
    "Dataset",
    "load",
    "batches",
    "check_array_file",
    "check_source",
    "read_arrays",
    "DIGITS_SPLIT_SEED",
    "DIGITS_TEST_FRACTION",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_EXTENSIONS",
    "SOURCES",
]

#: Seed of the legacy NumPy ``RandomState`` that fixes the digits train/test split.
DIGITS_SPLIT_SEED = 20240501
#: Fraction of each digit class that goes into the test split.
DIGITS_TEST_FRACTION = 0.25
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = (
    ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp",
)
#: Named sources (besides paths to ``.npz`` files and image folders).
SOURCES = ("digits", "random")
_SPLITS = ("train", "test", "all")
_DATA_EXTRA = "pip install 'snn-onnx[data]'"
_TORCH_EXTRA = "pip install 'snn-onnx[torch]'"


@dataclass
class Dataset:
    """Samples for a model: ``x`` float32 NCHW (any rank, batch first), ``y`` int64 ``[N]``
    labels or ``None``, ``name`` where they came from. ``classes`` holds the class names of an
    image folder (index = label), else ``None``."""

    x: np.ndarray
    y: np.ndarray | None
    name: str
    classes: list[str] | None = None
    inputs: dict[str, np.ndarray] | None = None  # a multi-input model's arrays, by input name

    def __len__(self) -> int:
        return int(self.x.shape[0])


def batches(x: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Consecutive slices ``x[i:i+batch_size]`` along the first axis (the last may be shorter)."""
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    n = int(np.shape(x)[0])
    for i in range(0, n, int(batch_size)):
        yield x[i : i + int(batch_size)]


def load(
    source: str | os.PathLike,
    split: str = "test",
    limit: int | None = None,
    input_shape: Sequence[Any] | None = None,
    input_names: Sequence[str] | None = None,
    **opts: Any,
) -> Dataset:
    """Load samples from ``source`` (see the module docstring) and check they fit
    ``input_shape``; raise :class:`DataError` otherwise. ``input_names``: the model's inputs;
    an ``.npz`` whose arrays are named after them (a BERT's ``input_ids``, ``attention_mask``,
    …) loads as ``Dataset.inputs``, each array with its own dtype."""
    if limit is not None and (int(limit) != limit or limit < 1):
        raise DataError(f"data source '{source}': limit must be a positive integer, got {limit!r}")
    if input_shape is not None:
        input_shape = tuple(input_shape)
        if len(input_shape) < 1:
            raise DataError(f"data source '{source}': input_shape must include the batch axis")
    src = os.fspath(source)
    if src == "digits":
        _no_opts(src, opts)
        ds = _load_digits(split)
    elif src == "random":
        ds = _load_random(input_shape, limit, **opts)
    else:
        path = Path(src)
        if not path.exists():
            hint = "" if path.suffix or os.sep in src else f"; named sources are {', '.join(SOURCES)}"
            raise DataError(f"data source '{src}': no such file or directory{hint}")
        if path.is_dir():
            ds = _load_image_folder(path, input_shape, limit, **opts)
        elif path.suffix.lower() == ".npz":
            _no_opts(src, opts)
            ds = _load_npz(path, input_names)
        else:
            raise DataError(
                f"data source '{src}': not a .npz file or an image folder "
                f"(named sources are {', '.join(SOURCES)})"
            )
    if limit is not None:
        ds.x = ds.x[: int(limit)]
        if ds.y is not None:
            ds.y = ds.y[: int(limit)]
        if ds.inputs is not None:
            ds.inputs = {k: v[: int(limit)] for k, v in ds.inputs.items()}
    if input_shape is not None and ds.inputs is None:
        _check_shape(ds.x, input_shape, src)
    return ds


def check_source(source: str | os.PathLike) -> None:
    """What :func:`load` would refuse about ``source`` before reading it all: an unknown name,
    a missing path, a file that is not an ``.npz``. For callers that validate options before
    any heavy work (the CLI, before exporting a model)."""
    src = os.fspath(source)
    if src in SOURCES:
        return
    path = Path(src)
    if not path.exists():
        hint = "" if path.suffix or os.sep in src else f"; named sources are {', '.join(SOURCES)}"
        raise DataError(f"data source '{src}': no such file or directory{hint}")
    if path.is_dir():
        return
    if path.suffix.lower() != ".npz":
        raise DataError(f"data source '{src}': not a .npz file or an image folder (named sources are {', '.join(SOURCES)})")
    check_array_file(path)


# ---------------------------------------------------------------------------------------
# shape checks


def _known(d: Any) -> bool:
    return isinstance(d, (int, np.integer)) and not isinstance(d, bool) and int(d) > 0


def _fmt_shape(shape: Sequence[Any]) -> str:
    return "[" + ", ".join("?" if not _known(d) else str(int(d)) for d in shape) + "]"


def _check_shape(x: np.ndarray, input_shape: tuple, source: str) -> None:
    actual = ["N"] + [str(d) for d in x.shape[1:]]
    expected = ["N"] + ["?" if not _known(d) else str(int(d)) for d in input_shape[1:]]
    fits = x.ndim == len(input_shape) and all(
        not _known(e) or int(e) == a for e, a in zip(input_shape[1:], x.shape[1:])
    )
    if not fits:
        hint = ""
        if x.ndim == 4 and len(input_shape) == 4 and _known(input_shape[1]):
            if x.shape[3] == int(input_shape[1]) and x.shape[1] != int(input_shape[1]):
                hint = " (the data looks channels-last, NHWC; the model wants NCHW)"
        raise DataError(
            f"data source '{source}' does not fit the model input: expected shape "
            f"[{', '.join(expected)}], got [{', '.join(actual)}]{hint}"
        )


def _no_opts(source: str, opts: dict) -> None:
    if opts:
        raise DataError(f"data source '{source}' takes no options, got {sorted(opts)}")


# ---------------------------------------------------------------------------------------
# digits


def _digits_split_indices(y: np.ndarray) -> dict[str, np.ndarray]:
    rng = np.random.RandomState(DIGITS_SPLIT_SEED)  # legacy generator: stream frozen by NumPy
    test = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        n_test = int(np.floor(len(idx) * DIGITS_TEST_FRACTION + 0.5))
        test.append(idx[rng.permutation(len(idx))[:n_test]])
    test_idx = np.sort(np.concatenate(test))
    mask = np.ones(len(y), dtype=bool)
    mask[test_idx] = False
    return {"train": np.flatnonzero(mask), "test": test_idx, "all": np.arange(len(y))}


def _load_digits(split: str) -> Dataset:
    if split not in _SPLITS:
        raise DataError(f"data source 'digits': split must be one of {_SPLITS}, got {split!r}")
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise OptionalDependencyError(
            f"data source 'digits' needs scikit-learn: {_DATA_EXTRA}"
        ) from e
    d = load_digits()
    images = np.asarray(d.images, dtype=np.float32)
    y_all = np.asarray(d.target, dtype=np.int64)
    idx = _digits_split_indices(y_all)[split]
    x = (images[idx] / np.float32(16.0)).astype(np.float32)[:, None, :, :]
    return Dataset(x=np.ascontiguousarray(x), y=y_all[idx].copy(), name=f"digits:{split}",
                   classes=[str(i) for i in range(10)])


# ---------------------------------------------------------------------------------------
# random


def _load_random(input_shape: tuple | None, limit: int | None, seed: int = 0, **opts: Any) -> Dataset:
    _no_opts("random", opts)
    if input_shape is None:
        raise DataError("data source 'random' needs input_shape (the model's input shape)")
    dims = input_shape[1:]
    if not all(_known(d) for d in dims):
        raise DataError(
            f"data source 'random' needs a fixed input shape besides the batch axis, "
            f"got {_fmt_shape(input_shape)}"
        )
    n = 8 if limit is None else int(limit)
    rng = np.random.RandomState(int(seed))
    x = rng.standard_normal((n,) + tuple(int(d) for d in dims)).astype(np.float32)
    return Dataset(x=x, y=None, name=f"random:seed={int(seed)}")


# ---------------------------------------------------------------------------------------
# npz


_MAGIC = {".npy": (b"\x93NUMPY",), ".npz": (b"PK\x03\x04", b"PK\x05\x06")}
_WHAT = {".npy": "an .npy array", ".npz": "an .npz archive (NumPy's zip of .npy arrays)"}


def check_array_file(path: str | os.PathLike, role: str = "data file") -> Path:
    """Refuse, in one line, a path that is missing, a folder, or not what its suffix says
    (``.npy`` / ``.npz``): NumPy would try to unpickle it and call it "pickled data"."""
    p = Path(path)
    suffix = p.suffix.lower()
    if not p.exists():
        raise DataError(f"{role} not found: {p}")
    if p.is_dir():
        raise DataError(f"{role} '{p}' is a directory, not a {suffix or '.npy / .npz'} file")
    if suffix not in _MAGIC:
        raise DataError(f"{role} '{p}' must be an .npy or .npz file")
    try:
        with open(p, "rb") as f:
            head = f.read(64)
    except OSError as e:
        raise DataError(f"{role} '{p}' cannot be read: {e.strerror or e}") from None
    if not head.startswith(_MAGIC[suffix]):
        if not head:
            kind = "it is empty"
        elif head.startswith(_MAGIC[".npy"] if suffix == ".npz" else _MAGIC[".npz"][0]):
            kind = f"it is {_WHAT['.npy' if suffix == '.npz' else '.npz']}: rename it"
        elif all(32 <= c < 127 or c in (9, 10, 13) for c in head):
            kind = f"it holds text ({head[:24].decode('ascii').splitlines()[0]!r} ...)"
        else:
            kind = f"it starts with {head[:8]!r}"
        raise DataError(f"{role} '{p}' is not {_WHAT[suffix]}: {kind}")
    return p


def read_arrays(path: str | os.PathLike, role: str = "input file") -> np.ndarray | dict[str, np.ndarray]:
    """The array of an ``.npy`` file or the arrays of an ``.npz`` (by name); never unpickles."""
    p = check_array_file(path, role)
    try:
        loaded = np.load(p, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                return {k: loaded[k] for k in loaded.files}
        return loaded
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise DataError(f"{role} '{p}' holds object arrays (Python objects), which are not loaded; save numbers") from None
        raise DataError(f"{role} '{p}' cannot be read: {' '.join(str(e).split())}") from None
    except Exception as e:  # zipfile.BadZipFile, EOFError (truncated), OSError …
        raise DataError(f"{role} '{p}' cannot be read ({type(e).__name__}: {' '.join(str(e).split())})") from None


def _real(path: Path, name: str, a: np.ndarray) -> None:
    if a.dtype.kind == "c":
        raise DataError(f"data file '{path}': array '{name}' holds complex numbers (dtype {a.dtype}); the model takes "
                        "real values (casting would drop the imaginary part)")


def _load_npz(path: Path, input_names: Sequence[str] | None = None) -> Dataset:
    check_array_file(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = list(f.files)
            named = [n for n in (input_names or []) if n in keys]
            if input_names and len(named) == len(input_names) and (len(named) > 1 or "x" not in keys):
                return _named_inputs(path, {n: np.asarray(f[n]) for n in named},
                                     np.asarray(f["y"]) if "y" in keys else None)
            if "x" not in keys:
                wanted = f"'x' or arrays named after the model's inputs {list(input_names)}" if input_names else "'x'"
                raise DataError(f"data file '{path}' has no array {wanted} (arrays: {keys})")
            x = np.asarray(f["x"])
            y = np.asarray(f["y"]) if "y" in keys else None
    except DataError:
        raise
    except Exception as e:  # zipfile.BadZipFile, ValueError (pickled arrays), OSError …
        raise DataError(f"data file '{path}' is not a readable .npz file: {e}") from e
    if x.ndim < 1 or x.shape[0] == 0:
        raise DataError(f"data file '{path}': array 'x' is empty (shape {list(x.shape)})")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise DataError(f"data file '{path}': array 'x' is not numeric (dtype {x.dtype})")
    _real(path, "x", x)
    x = np.ascontiguousarray(x, dtype=np.float32)
    if y is not None:
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise DataError(
                f"data file '{path}': array 'y' must hold one label per sample: "
                f"expected shape [{x.shape[0]}], got {list(y.shape)}"
            )
        if not np.issubdtype(y.dtype, np.integer):
            if not np.issubdtype(y.dtype, np.floating) or not np.all(np.mod(y, 1) == 0):
                raise DataError(f"data file '{path}': array 'y' must hold integer labels (dtype {y.dtype})")
        y = y.astype(np.int64)
    return Dataset(x=x, y=y, name=str(path))


def _named_inputs(path: Path, arrays: dict[str, np.ndarray], y: np.ndarray | None) -> Dataset:
    sizes = {k: (v.shape[0] if v.ndim else 0) for k, v in arrays.items()}
    if len(set(sizes.values())) != 1 or 0 in sizes.values():
        raise DataError(f"data file '{path}': the input arrays must hold the same number (> 0) of samples, got {sizes}")
    for k, v in arrays.items():
        if not (np.issubdtype(v.dtype, np.number) or v.dtype == np.bool_):
            raise DataError(f"data file '{path}': array '{k}' is not numeric (dtype {v.dtype})")
        _real(path, k, v)
    first = next(iter(arrays.values()))
    if y is not None:
        if y.ndim != 1 or y.shape[0] != first.shape[0]:
            raise DataError(f"data file '{path}': array 'y' must hold one label per sample")
        y = y.astype(np.int64)
    return Dataset(x=first, y=y, name=str(path), inputs=arrays)


# ---------------------------------------------------------------------------------------
# image folders


def _list_images(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
        key=lambda p: p.name,
    )


def _load_image_folder(
    path: Path, input_shape: tuple | None, limit: int | None, timm_model: Any = None, **opts: Any
) -> Dataset:
    try:
        from PIL import Image
    except ImportError as e:
        raise OptionalDependencyError(f"image folder data sources need Pillow: {_DATA_EXTRA}") from e
    subdirs = sorted((p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")),
                     key=lambda p: p.name)
    files: list[Path] = []
    labels: list[int] = []
    classes: list[str] | None
    if subdirs:
        classes = [p.name for p in subdirs]
        for label, d in enumerate(subdirs):
            imgs = _list_images(d)
            files += imgs
            labels += [label] * len(imgs)
    else:
        classes = None
        files = _list_images(path)
    if not files:
        raise DataError(
            f"image folder '{path}' holds no images (expected one subfolder per class with "
            f"{', '.join(IMAGE_EXTENSIONS)} files)"
        )
    if limit is not None:
        files, labels = files[: int(limit)], labels[: int(limit)]
    if timm_model is not None:
        tf = _timm_transform(timm_model, input_shape, str(path))
        convert = lambda img: tf(img.convert("RGB")).numpy().astype(np.float32)  # noqa: E731
    else:
        if input_shape is None:
            raise DataError(
                f"image folder '{path}' needs input_shape (the model's input shape) or timm_model=..."
            )
        convert = _pil_transform(input_shape, str(path), **opts)
    xs = []
    for f in files:
        try:
            with Image.open(f) as img:
                img.load()
                xs.append(convert(img))
        except DataError:
            raise
        except Exception as e:
            raise DataError(f"image '{f}' cannot be read: {e}") from e
    x = np.stack(xs).astype(np.float32)
    y = np.asarray(labels, dtype=np.int64) if classes is not None else None
    return Dataset(x=x, y=y, name=str(path), classes=classes)


_RESAMPLE = {"bilinear": 2, "bicubic": 3, "nearest": 0, "lanczos": 1, "box": 4, "hamming": 5}


def _pil_transform(
    input_shape: tuple,
    source: str,
    crop_pct: float = 1.0,
    interpolation: str = "bilinear",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    normalize: bool = True,
    **opts: Any,
):
    if opts:
        raise DataError(f"image folder '{source}': unknown options {sorted(opts)}")
    if len(input_shape) != 4 or not all(_known(d) for d in input_shape[1:]):
        raise DataError(
            f"image folder '{source}' needs a fixed NCHW input shape, got {_fmt_shape(input_shape)}"
        )
    c, h, w = (int(d) for d in input_shape[1:])
    if c not in (1, 3):
        raise DataError(
            f"data source '{source}' does not fit the model input: expected shape [N, {c}, {h}, {w}], "
            f"but images give 1 (grayscale) or 3 (RGB) channels"
        )
    if interpolation not in _RESAMPLE:
        raise DataError(f"image folder '{source}': interpolation must be one of {sorted(_RESAMPLE)}")
    if not 0 < crop_pct <= 1:
        raise DataError(f"image folder '{source}': crop_pct must be in (0, 1], got {crop_pct}")
    if mean is None:
        mean = IMAGENET_MEAN if c == 3 else (float(np.mean(IMAGENET_MEAN)),)
    if std is None:
        std = IMAGENET_STD if c == 3 else (float(np.mean(IMAGENET_STD)),)
    mean_a = np.asarray(mean, dtype=np.float32).reshape(-1, 1, 1)
    std_a = np.asarray(std, dtype=np.float32).reshape(-1, 1, 1)
    if mean_a.shape[0] not in (1, c) or std_a.shape[0] not in (1, c):
        raise DataError(f"image folder '{source}': mean/std need 1 or {c} values")
    resample = _RESAMPLE[interpolation]

    def convert(img):
        img = img.convert("RGB" if c == 3 else "L")
        iw, ih = img.size
        scale = max(h / crop_pct / ih, w / crop_pct / iw)
        nw, nh = max(w, int(round(iw * scale))), max(h, int(round(ih * scale)))
        if (nw, nh) != (iw, ih):
            img = img.resize((nw, nh), resample=resample)
        left, top = (nw - w) // 2, (nh - h) // 2
        img = img.crop((left, top, left + w, top + h))
        a = np.asarray(img, dtype=np.float32) / np.float32(255.0)
        a = a[None, :, :] if a.ndim == 2 else a.transpose(2, 0, 1)
        if normalize:
            a = (a - mean_a) / std_a
        return a.astype(np.float32)

    return convert


def _timm_transform(timm_model: Any, input_shape: tuple | None, source: str):
    try:
        import timm.data
        import timm.models
    except ImportError as e:
        raise OptionalDependencyError(
            f"image folder '{source}': timm_model= needs timm and torch: {_TORCH_EXTRA}"
        ) from e
    args: dict[str, Any] = {}
    kw: dict[str, Any] = {}
    if isinstance(timm_model, str):
        cfg = timm.models.get_pretrained_cfg(timm_model)
        if cfg is None:
            raise DataError(f"image folder '{source}': timm has no model named {timm_model!r}")
        kw["pretrained_cfg"] = cfg.to_dict()
    elif isinstance(timm_model, dict):
        args.update(timm_model)
    else:
        kw["model"] = timm_model
    if input_shape is not None:
        if len(input_shape) != 4 or not all(_known(d) for d in input_shape[1:]):
            raise DataError(
                f"image folder '{source}' needs a fixed NCHW input shape, got {_fmt_shape(input_shape)}"
            )
        args["input_size"] = tuple(int(d) for d in input_shape[1:])
    if not args and not kw:
        raise DataError(f"image folder '{source}': empty timm_model configuration")
    config = timm.data.resolve_data_config(args=args, **kw)
    if input_shape is not None and int(config["input_size"][0]) != int(input_shape[1]):
        raise DataError(
            f"data source '{source}' does not fit the model input: expected shape "
            f"{_fmt_shape(input_shape)}, timm's transform gives {list(config['input_size'])}"
        )
    return timm.data.create_transform(**config, is_training=False)

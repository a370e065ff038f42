"""PyTorch / timm -> ONNX with a dynamic batch axis (torch.onnx's dynamo exporter)."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import io
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

import onnx

from ..errors import ModelLoadError, OptionalDependencyError


def _torch():
    try:
        import torch
    except ImportError:
        raise OptionalDependencyError("exporting from PyTorch needs torch: pip install 'snn-onnx[torch]'") from None
    return torch


WEIGHTS_KEY = "snn_onnx.weights"  # where an exported model's weights came from (random-init, checkpoint)


def export_module(module, input_shape: tuple[int, ...], opset: int = 18, exporter: str = "auto") -> onnx.ModelProto:
    """Export an ``nn.Module`` in eval mode with a dynamic batch axis.

    ``exporter``: "legacy" (TorchScript, seconds), "dynamo" (torch.export, the default of
    torch.onnx, ~10x slower but handles more models) or "auto" (legacy, then dynamo if the
    legacy exporter cannot express the model)."""
    torch = _torch()
    if exporter not in ("auto", "legacy", "dynamo"):
        raise ModelLoadError(f"exporter must be auto, legacy or dynamo, got {exporter!r}")
    module = module.eval()
    x = torch.randn(2, *input_shape)
    errors = []
    for kind in (["legacy", "dynamo"] if exporter == "auto" else [exporter]):
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            try:
                model = _export(torch, module, x, opset, kind)
            except Exception as err:
                errors.append(f"{kind}: {str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}")
                continue
        weights = getattr(module, "snn_onnx_weights", None)
        if weights:
            model.metadata_props.append(onnx.StringStringEntryProto(key=WEIGHTS_KEY, value=weights))
        return model
    raise ModelLoadError(f"torch.onnx.export failed for {type(module).__name__} ({'; '.join(errors)})")


def _export(torch, module, x, opset: int, kind: str) -> onnx.ModelProto:
    if kind == "dynamo":
        program = torch.onnx.export(
            module, (x,), dynamo=True, opset_version=opset, verbose=False,
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            input_names=["input"], output_names=["logits"],
        )
        return program.model_proto
    buf = io.BytesIO()
    torch.onnx.export(
        module, (x,), buf, dynamo=False, opset_version=opset,
        input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    return onnx.load_from_string(buf.getvalue())


def load_checkpoint(module, checkpoint: str | Path) -> None:
    torch = _torch()
    p = Path(checkpoint)
    if not p.exists():
        raise ModelLoadError(f"checkpoint not found: {p}")
    try:
        state = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as err:
        raise ModelLoadError(f"cannot read checkpoint {p}: {str(err).splitlines()[0]}") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    try:
        module.load_state_dict(state)
    except Exception as err:
        raise ModelLoadError(f"checkpoint {p} does not fit the model: {str(err).splitlines()[0]}") from None


def build_module(spec: str, *, num_classes: int | None = None, checkpoint: str | Path | None = None,
                 prepare: Callable[[Any], None] | None = None, **kwargs):
    """A torch module from a timm model name (random init unless ``checkpoint``) or a
    ``package.module:factory`` path (a module in the current folder is found too). The factory
    is called with ``num_classes=`` when given; a factory without that parameter refuses it.
    ``prepare(module)`` runs before the checkpoint is loaded (e.g. the caller's QCFS activations,
    whose thresholds the checkpoint holds)."""
    _torch()
    if ":" in spec:
        factory = import_factory(spec)
        if num_classes is not None:
            if not _accepts(factory, "num_classes"):
                raise ModelLoadError(f"the factory '{spec}' takes no num_classes argument, so the number of "
                                     "classes cannot be set (drop --num-classes or add the parameter)")
            module = factory(num_classes=num_classes)
        else:
            module = factory()
        origin = f"module:factory '{spec}'"
    else:
        try:
            import timm
        except ImportError:
            raise OptionalDependencyError("timm model names need timm: pip install 'snn-onnx[torch]'") from None
        if not timm.is_model(spec):
            raise ModelLoadError(f"'{spec}' is neither an .onnx file, a 'module:factory' path nor a timm model name")
        kw = dict(pretrained=False, **kwargs)
        if num_classes is not None:
            kw["num_classes"] = num_classes
        module = timm.create_model(spec, **kw)
        origin = f"random-init (timm '{spec}' without pretrained weights)"
    if prepare is not None:
        prepare(module)
    if checkpoint is not None:
        load_checkpoint(module, checkpoint)
        origin = f"checkpoint {Path(checkpoint).name}"
    module.snn_onnx_weights = origin  # recorded in the exported model's metadata (WEIGHTS_KEY)
    return module.eval()


def import_factory(spec: str):
    """``package.module:factory`` -> the callable. A module that is not importable from
    ``sys.path`` is looked up in the current folder as well (as ``python -c`` would)."""
    mod_name, _, attr = spec.partition(":")
    if not mod_name or not attr:
        raise ModelLoadError(f"'{spec}' is not a 'module:factory' path")
    top = mod_name.split(".")[0]
    cwd = os.getcwd()
    if importlib.util.find_spec(top) is None and cwd not in sys.path:
        if (Path(cwd) / f"{top}.py").is_file() or (Path(cwd) / top).is_dir():
            sys.path.append(cwd)  # after everything else: never shadows an installed package
    try:
        factory = getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError) as err:
        raise ModelLoadError(f"cannot import model factory '{spec}': {err}") from None
    if not callable(factory):
        raise ModelLoadError(f"'{spec}' is not callable")
    return factory


def _accepts(fn, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def default_input_shape(module) -> tuple[int, ...] | None:
    cfg = getattr(module, "pretrained_cfg", None) or getattr(module, "default_cfg", None)
    if cfg and "input_size" in cfg:
        return tuple(cfg["input_size"])
    return None


def export_spec(spec: str, *, input_shape: tuple[int, ...] | None = None, **kwargs) -> onnx.ModelProto:
    module = build_module(spec, **kwargs)
    shape = input_shape or default_input_shape(module)
    if shape is None:
        raise ModelLoadError(f"give the input shape for '{spec}' (e.g. --input-shape 3,32,32)")
    return export_module(module, tuple(shape))

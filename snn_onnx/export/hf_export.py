"""Hugging Face model folder -> ONNX encoder with token inputs (dynamic batch and sequence).

A folder with a ``config.json`` (and weights) of a ``transformers`` encoder, e.g. BERT or
MiniLM, is exported with the inputs its tokenizer produces (``input_ids``, ``attention_mask``
and, where the model takes it, ``token_type_ids``), int64, axes ``[batch, seq]``, and the
output ``last_hidden_state`` ``[batch, seq, hidden]``. A sentence-transformers folder
(``modules.json`` with a Pooling module) also gets ``sentence_embedding``: the pooled
(mean over the tokens the attention mask keeps, or the CLS token) and, if the folder says
so, L2-normalised embedding, computed in the graph.

Everything is read from the folder (``local_files_only``): no download.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import onnx

from ..errors import ModelLoadError, OptionalDependencyError

TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def is_hf_folder(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and (p / "config.json").is_file()


def _transformers():
    try:
        import torch
        import transformers
    except ImportError:
        raise OptionalDependencyError(
            "exporting a Hugging Face model needs torch and transformers: pip install 'snn-onnx[transformers]'"
        ) from None
    return torch, transformers


def load_tokenizer(folder: str | Path):
    _, transformers = _transformers()
    try:
        return transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as err:
        raise ModelLoadError(f"cannot load the tokenizer of {folder}: {str(err).splitlines()[0]}") from None


def pooling_config(folder: str | Path) -> dict | None:
    """The sentence-transformers pooling of a folder: {"mode": "mean"|"cls", "normalize": bool}."""
    p = Path(folder)
    modules = p / "modules.json"
    if not modules.is_file():
        return None
    try:
        mods = json.loads(modules.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    pool = next((m for m in mods if m.get("type", "").endswith("models.Pooling")), None)
    if pool is None:
        return None
    cfg_path = p / pool.get("path", "") / "config.json"
    cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
    if cfg.get("pooling_mode_cls_token"):
        mode = "cls"
    elif cfg.get("pooling_mode_mean_tokens", True):
        mode = "mean"
    else:
        return None  # max / sqrt-len pooling: export the token states only
    normalize = any(m.get("type", "").endswith("models.Normalize") for m in mods)
    return {"mode": mode, "normalize": normalize}


def _wrapper(torch, model, names: list[str], pooling: dict | None):
    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *args):
            kw = dict(zip(names, args))
            h = self.model(**kw).last_hidden_state
            if pooling is None:
                return h
            if pooling["mode"] == "cls":
                e = h[:, 0]
            else:
                m = kw["attention_mask"].unsqueeze(-1).to(h.dtype)
                e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            if pooling["normalize"]:
                e = e / e.norm(dim=-1, keepdim=True).clamp(min=1e-12)
            return h, e

    return Encoder().eval()


def export_hf(folder: str | Path, opset: int = 18, exporter: str = "auto", pooling: bool = True) -> onnx.ModelProto:
    """Export the encoder of a Hugging Face folder (see the module docstring)."""
    torch, transformers = _transformers()
    folder = Path(folder)
    if not is_hf_folder(folder):
        raise ModelLoadError(f"{folder} is not a Hugging Face model folder (no config.json)")
    try:
        model = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    except Exception as err:
        raise ModelLoadError(f"cannot load the model in {folder}: {str(err).splitlines()[0]}") from None
    tok = load_tokenizer(folder)
    names = [n for n in tok.model_input_names if n in TOKEN_INPUTS]
    if "input_ids" not in names:
        raise ModelLoadError(f"the tokenizer of {folder} produces {tok.model_input_names}; need input_ids")
    pool = pooling_config(folder) if pooling else None
    if pool is not None and "attention_mask" not in names:
        pool = None
    enc = tok(["a short example sentence", "and a second, longer example sentence for export"],
              padding=True, return_tensors="pt")
    args = tuple(enc[n] for n in names)
    outputs = ["last_hidden_state"] + (["sentence_embedding"] if pool else [])
    module = _wrapper(torch, model, names, pool)
    errors = []
    for kind in (["legacy", "dynamo"] if exporter == "auto" else [exporter]):
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            try:
                proto = _export(torch, module, args, names, outputs, opset, kind)
            except Exception as err:
                errors.append(f"{kind}: {str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}")
                continue
        meta = {"snn_onnx.hf.folder": str(folder.resolve()), "snn_onnx.hf.pooling": json.dumps(pool)}
        for k, v in meta.items():
            proto.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
        return proto
    raise ModelLoadError(f"torch.onnx.export failed for {folder} ({'; '.join(errors)})")


def _export(torch, module, args, names, outputs, opset: int, kind: str) -> onnx.ModelProto:
    if kind == "dynamo":
        batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
        program = torch.onnx.export(
            module, args, dynamo=True, opset_version=opset, verbose=False,
            input_names=names, output_names=outputs,
            dynamic_shapes=tuple({0: batch, 1: seq} for _ in names),
        )
        return program.model_proto
    buf = io.BytesIO()
    axes = {n: {0: "batch", 1: "seq"} for n in names}
    axes["last_hidden_state"] = {0: "batch", 1: "seq"}
    if "sentence_embedding" in outputs:
        axes["sentence_embedding"] = {0: "batch"}
    torch.onnx.export(
        module, args, buf, dynamo=False, opset_version=opset,
        input_names=names, output_names=outputs, dynamic_axes=axes,
    )
    return onnx.load_from_string(buf.getvalue())

"""Two small networks for scikit-learn's 8×8 digits whose every non-linearity has a SignGD
form (the ``neuron="signgd"`` examples, docs/signgd.md).

Input ``[B, 1, 8, 8]`` float32 in [0, 1] (pixel / 16, ``snn_onnx.data.load("digits")``), output
``[B, 10]`` logits. Both are timm's own classes at a small size, so they export with exactly
the nodes the full-size models export with:

* ``digits_convnext``: timm ``ConvNeXt``, 1×1 patch stem, four stages of one block at widths
  16, 32, 48, 64 (8×8, 4×4, 2×2, 1×1 maps), 3×3 depthwise convolutions, channels-last
  LayerNorm, GELU MLPs (ratio 4), layer scale, global average pool, LayerNorm head; 86 k
  parameters;
* ``digits_mixer``: timm ``MlpMixer``, 2×2 patches (16 tokens), width 48, 4 blocks of token
  mixing (hidden 24) and channel mixing (hidden 192) with GELU, LayerNorm; 79 k parameters.

Trained by ``models/train_digits_signgd.py``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CONFIGS", "create", "onnx_path", "weights_path", "load"]

CONFIGS = {
    "digits_convnext": dict(in_chans=1, num_classes=10, depths=(1, 1, 1, 1), dims=(16, 32, 48, 64), kernel_sizes=3, patch_size=1,
                            ls_init_value=1e-1),
    "digits_mixer": dict(num_classes=10, img_size=8, in_chans=1, patch_size=2, num_blocks=4, embed_dim=48,
                         mlp_ratio=(0.5, 4.0)),
}
_WEIGHTS = Path(__file__).resolve().parent / "weights"


def onnx_path(name: str) -> Path:
    """The exported ANN ``<name>.onnx`` (input ``input`` ``[B,1,8,8]``, output ``logits``)."""
    return _WEIGHTS / f"{name}.onnx"


def weights_path(name: str) -> Path:
    return _WEIGHTS / f"{name}.pt"


def create(name: str, drop_rate: float = 0.0):
    """The untrained model (needs torch and timm)."""
    if name == "digits_convnext":
        from timm.models.convnext import ConvNeXt

        return ConvNeXt(**CONFIGS[name], drop_rate=drop_rate)
    if name == "digits_mixer":
        from timm.models.mlp_mixer import MlpMixer

        return MlpMixer(**CONFIGS[name], drop_rate=drop_rate)
    raise ValueError(f"unknown model {name!r}; one of {sorted(CONFIGS)}")


def load(name: str):
    """The trained model in eval mode."""
    import torch

    model = create(name)
    model.load_state_dict(torch.load(weights_path(name), map_location="cpu", weights_only=True))
    return model.eval()

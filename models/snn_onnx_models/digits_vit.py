"""A small Vision Transformer for scikit-learn's 8×8 digits (the transformer-mode example).

Input ``[B, 1, 8, 8]`` float32 in [0, 1] (pixel / 16, ``snn_onnx.data.load("digits")``), output
``[B, 10]`` logits. timm's ``VisionTransformer``: 2×2 patches (16 tokens + a class token),
width 48, 4 blocks of pre-norm attention (4 heads) and a GELU MLP (ratio 2), final LayerNorm,
class-token head; about 80 k parameters. Trained by ``models/train_digits_vit.py``; the ONNX
file converts in transformer mode (multi-threshold neurons, compensated Softmax / LayerNorm /
GELU, docs/transformers.md).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["VIT_CONFIG", "create_digits_vit", "digits_vit_path", "digits_vit_weights_path", "load_digits_vit"]

VIT_CONFIG = dict(
    img_size=8, patch_size=2, in_chans=1, num_classes=10, embed_dim=48, depth=4, num_heads=4,
    mlp_ratio=2.0, qkv_bias=True, class_token=True, global_pool="token",
)
_WEIGHTS = Path(__file__).resolve().parent / "weights"


def digits_vit_path() -> Path:
    """The exported ANN: ``digits_vit.onnx`` (input ``input`` ``[B,1,8,8]``, output ``logits``)."""
    return _WEIGHTS / "digits_vit.onnx"


def digits_vit_weights_path() -> Path:
    return _WEIGHTS / "digits_vit.pt"


def create_digits_vit(drop_rate: float = 0.0):
    """The untrained model (timm ``VisionTransformer`` with :data:`VIT_CONFIG`)."""
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(**VIT_CONFIG, drop_rate=drop_rate)


def load_digits_vit():
    """The trained model in eval mode (needs torch and timm)."""
    import torch

    model = create_digits_vit()
    model.load_state_dict(torch.load(digits_vit_weights_path(), map_location="cpu", weights_only=True))
    return model.eval()

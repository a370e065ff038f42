"""QCFS variants of timm models (random init, no download) for conversion tests and demos.

``create_qcfs_timm("resnet18", levels=8)`` builds the timm model, replaces every ReLU by
:class:`~snn_onnx_models.qcfs.QCFS`, calibrates each λ on a fixed random batch (so a
random-init network has sensible, site-specific thresholds) and returns it in eval mode.
Checked for ``resnet18``, ``resnet34`` and ``vgg16`` at 32×32 (timm's VGG head, ``ConvMlp``,
upsamples a feature map smaller than 7×7 with ``adaptive_avg_pool2d``; it exports with the
dynamo exporter and runs in ONNX Runtime with a dynamic batch).

Export incantation (torch 2.14)::

    torch.onnx.export(model, (x,), path, dynamo=True,
                      dynamic_shapes=({0: torch.export.Dim("batch")},),
                      input_names=["input"], output_names=["logits"])

The exported ``batch`` axis is symbolic, so one file runs at any batch size (checked at 1
and 7). Prefer an example batch of 2: torch.export treats sizes 0 and 1 specially (a size-1
example did work in torch 2.14 on a small model). Large models are written with their
weights in ``<path>.data`` next to the ``.onnx`` (torch's default ``external_data=True``);
pass ``external_data=False`` for one self-contained file (< 2 GB).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .qcfs import calibrate_thresholds, qcfsify

__all__ = ["create_qcfs_timm"]


def create_qcfs_timm(
    name: str,
    levels: int,
    num_classes: int = 10,
    img_size: int = 32,
    pretrained: bool = False,
    seed: int = 0,
    calib_batch: int = 8,
    percentile: float = 99.9,
    per_channel: bool = False,
    in_chans: int = 3,
    bn_stats: bool = True,
    **timm_kwargs: Any,
) -> nn.Module:
    """A timm model with QCFS activations, thresholds calibrated, in eval mode.

    Args:
        name: timm model name (``resnet18``, ``resnet34``, ``vgg16`` …).
        levels: QCFS levels ``L`` (convert with ``T = L``).
        num_classes: classifier outputs.
        img_size: spatial size of the (square) calibration batch; timm ResNet / VGG accept
            any size, this only fixes the calibration input.
        pretrained: load timm's pretrained weights (needs them in the local cache or network
            access; the head is re-initialised by timm when ``num_classes`` differs).
        seed: seeds the weight init (``torch.manual_seed``) and the calibration batch.
        calib_batch: size of the standard-normal calibration batch.
        percentile, per_channel: passed to :func:`calibrate_thresholds`.
        bn_stats: for a random-init model (``pretrained=False``), make it look more like a
            trained one before calibrating: BatchNorm weights that timm zero-initialises
            (``zero_init_last`` of ResNet blocks, which would make every residual branch
            compute exactly 0) are set to 1, and BatchNorm running statistics are estimated
            from the calibration batch with the original ReLUs (one train-mode pass), so that
            the exported graph has non-trivial folded Conv weights and biases.
        **timm_kwargs: passed to ``timm.create_model``.

    The steps, all deterministic for a given ``seed``: create, (BN statistics), ``qcfsify``,
    eval mode, :func:`calibrate_thresholds` on ``calib_batch`` standard-normal images
    ``[calib_batch, in_chans, img_size, img_size]``.
    """
    try:
        import timm
    except ImportError as e:  # pragma: no cover - depends on the environment
        from snn_onnx.errors import OptionalDependencyError

        raise OptionalDependencyError(
            "create_qcfs_timm needs timm: pip install 'snn-onnx[torch]'"
        ) from e
    torch.manual_seed(seed)
    model = timm.create_model(
        name, pretrained=pretrained, num_classes=num_classes, in_chans=in_chans, **timm_kwargs
    )
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(calib_batch, in_chans, img_size, img_size, generator=gen)
    if bn_stats and not pretrained:
        _estimate_bn_stats(model, x)
    qcfsify(model, levels)
    model.eval()
    calibrate_thresholds(model, x, percentile=percentile, per_channel=per_channel)
    return model


@torch.no_grad()
def _estimate_bn_stats(model: nn.Module, x: torch.Tensor) -> None:
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    saved = []
    for bn in bns:
        if bn.weight is not None and bool(torch.all(bn.weight == 0)):
            bn.weight.fill_(1.0)
        saved.append(bn.momentum)
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: one pass sets the batch statistics
    was_training = model.training
    model.train()
    try:
        model(x)
    finally:
        for bn, mom in zip(bns, saved):
            bn.momentum = mom
        model.train(was_training)

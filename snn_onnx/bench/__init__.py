"""Benchmarks of snn-onnx (``snn-onnx bench``, ``benchmarks/``). They import torch, timm and
SpikingJelly when they run; nothing else in the package imports this subpackage."""

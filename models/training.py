"""The training loop every digits training script shares: AdamW with a one-cycle schedule,
label-smoothed cross entropy, one augmentation draw per batch from a seeded generator.

Deterministic on CPU (one thread, deterministic algorithms): the same call gives the same
weights bit for bit, which is how the shipped weights are checked against their scripts.
"""

from __future__ import annotations

import os
import random
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def set_determinism(seed: int) -> None:
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def fit(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, groups: Iterable[dict], *, epochs: int,
        lr: float, seed: int, augment: Augment, batch_size: int = 64, label_smoothing: float = 0.05,
        pct_start: float = 0.3, clip_grad: float | None = None, log: Callable[[str], None] = print,
        prefix: str = "") -> torch.nn.Module:
    """Train ``model`` in place on ``(x, y)``; ``groups`` are AdamW parameter groups (each with
    its own weight decay). Logs loss and train accuracy every ten epochs and at the end."""
    opt = torch.optim.AdamW(list(groups), lr=lr)
    steps = (len(x) + batch_size - 1) // batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps, pct_start=pct_start)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), batch_size):
            idx = perm[i : i + batch_size]
            loss = F.cross_entropy(model(augment(x[idx], gen)), y[idx], label_smoothing=label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip_grad is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        if (epoch + 1) % 10 == 0 or epoch == epochs - 1:
            log(f"{prefix}epoch {epoch + 1:3d}  loss {total / len(x):.4f}  train acc {accuracy(model, x, y):.4f}")
    return model.eval()

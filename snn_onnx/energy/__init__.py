"""Energy accounting of converted SNNs: exact synaptic operations (SOPs) from the spiking ops'
count outputs, MACs of the layers fed by analog values and of compensation blocks, firing
rates, and energy against the ANN. Rules: docs/energy.md."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .accounting import (
    EnergyConfig,
    EnergyError,
    EnergyModel,
    EnergyResult,
    LayerEnergy,
    LayerSpec,
    NeuronLayer,
    SpikeSource,
)


def sample_inputs(input_kinds: Mapping[str, str], inputs: Mapping[str, np.ndarray], time_steps: int) -> dict[str, np.ndarray]:
    """One sample's inputs (for shapes): static inputs ``[:1]``, event inputs their first T rows."""
    return {k: np.asarray(v)[: time_steps if input_kinds.get(k) == "event" else 1] for k, v in inputs.items()}


__all__ = [
    "EnergyConfig",
    "EnergyError",
    "EnergyModel",
    "EnergyResult",
    "LayerEnergy",
    "LayerSpec",
    "NeuronLayer",
    "SpikeSource",
    "sample_inputs",
]

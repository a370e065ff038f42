"""Firing rates from the spiking ops' count outputs agree with rates computed from the spike
tensors themselves (a test-only copy of the SNN that also outputs them)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import energy_helpers as H
import snn_onnx
from snn_onnx.energy import EnergyModel


def _check_rates(snn: onnx.ModelProto, x: np.ndarray) -> None:
    T = snn_onnx.metadata.read(snn)["time_steps"]
    B = len(x)
    spikes, counts = H.run_debug(snn, x)
    res = EnergyModel(snn, {"input": x[:1]}).account(counts, B)
    assert [n.site for n in res.neurons] == list(spikes)
    total_spikes = total_neurons = 0
    for n in res.neurons:
        fired = (spikes[n.site] != 0).reshape(T, B, -1)  # time-major rows t*B + b
        assert n.neurons == fired.shape[2]
        # the count output is the spike tensor's non-zeros per step and neuron, summed over the batch
        np.testing.assert_array_equal(np.asarray(counts[n.site]).reshape(T, -1), fired.sum(axis=1))
        np.testing.assert_allclose(n.rate_per_step, fired.mean(axis=(1, 2)), rtol=1e-12)
        assert n.rate == pytest.approx(fired.mean(), rel=1e-12)
        np.testing.assert_allclose(n.per_neuron_rate, fired.mean(axis=(0, 1)), rtol=1e-12)
        total_spikes += fired.sum()
        total_neurons += fired.shape[2]
    assert res.firing_rate == pytest.approx(total_spikes / (total_neurons * T * B), rel=1e-12)
    assert 0 < res.firing_rate < 1


@pytest.mark.parametrize("neuron", ["if", "paraif", "signed_if"])
def test_rates_match_spike_tensors_small_net(neuron: str) -> None:
    torch = pytest.importorskip("torch", reason="the small test network is built in PyTorch")
    H.load_torch()
    from test_energy_sops import Convs

    from snn_onnx.conversion.rewrite import NeuronConfig
    from snn_onnx.export.torch_export import export_module

    torch.manual_seed(0)
    net = Convs().eval()
    ann = export_module(net, (3, 11, 9), exporter="legacy")
    x = np.random.default_rng(4).standard_normal((6, 3, 11, 9)).astype(np.float32)
    cfg = NeuronConfig(kind="signed-if") if neuron == "signed_if" else neuron
    snn = snn_onnx.convert(ann, time_steps=5, neuron=cfg, data=x, parity_samples=4).model
    _check_rates(snn, x)


def test_rates_match_spike_tensors_example() -> None:
    pytest.importorskip("sklearn", reason="the digits data needs scikit-learn")
    from snn_onnx import data
    from snn_onnx_models import example_model_path

    ann = onnx.load(example_model_path())
    x = data.load("digits", split="test", limit=24).x
    snn = snn_onnx.convert(ann, time_steps=6, neuron="if", data=x, parity_samples=4).model
    _check_rates(snn, x)

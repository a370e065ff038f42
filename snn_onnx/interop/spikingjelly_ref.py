"""The source ANN converted by SpikingJelly's own ``ann2snn`` converter, with our thresholds.

SpikingJelly's ``RateCodingRecipe`` replaces each ``nn.ReLU`` by ``scaler0 → neuron →
scaler1`` (``VoltageScaler``\\ s around a spiking neuron). We let it do that on the source
ANN (QCFS activations swapped for ``nn.ReLU``: the SNN only needs where the activations
are), build each neuron with SpikingJelly's own class for our neuron (:func:`sj_neuron`),
and set the scalers to ``1`` and ``θ``: the neuron then integrates the same currents as ours
against the same threshold and its spikes are worth θ, as ours. Where SpikingJelly has no
such neuron, :func:`sj_neuron` says so and the check shows the column as not available.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..errors import OptionalDependencyError, SnnOnnxError
from .snn_graph import Neuron

F32 = np.float32


def sj_neuron_kind(n: Neuron) -> tuple[str, dict] | str:
    """SpikingJelly's class and arguments for our neuron, or why it has none."""
    if n.op != "IFNeuron":
        return f"SpikingJelly has no {n.op}"
    if n.attrs.get("signed", 0):
        return "SpikingJelly has no signed IF neuron with memory"
    th = np.unique(n.threshold)
    if th.size != 1:
        return "per-channel thresholds: SpikingJelly's neurons take one threshold"
    theta = float(th[0])
    hard = n.reset == "zero"
    if n.leak == 1.0:
        if n.v_init == 0.0:
            return "IFNode", {"v_threshold": theta, "v_reset": 0.0 if hard else None}
        if n.v_init == 0.5 and not hard:
            return "HalfThresholdIFNode", {"v_threshold": theta}
        return f"SpikingJelly has no IF neuron starting at v_init {n.v_init:g}·θ with reset '{n.reset}'"
    if n.v_init != 0.0:
        return f"SpikingJelly has no LIF neuron starting at v_init {n.v_init:g}·θ"
    tau = 1.0 / (1.0 - n.leak)
    return "LIFNode", {"tau": tau, "decay_input": False, "v_threshold": theta, "v_reset": 0.0 if hard else None}


def relu_model(ann: Any) -> Any:
    """A copy of a torch model with every QCFS activation replaced by ``nn.ReLU``."""
    import copy

    import torch.nn as nn

    model = copy.deepcopy(ann).eval()
    for name, mod in list(model.named_modules()):
        if type(mod).__name__ == "QCFS":
            parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
            setattr(parent, name.rpartition(".")[2], nn.ReLU())
    return model


def convert_with_spikingjelly(ann: Any, neurons: Sequence[Neuron], sample: np.ndarray):
    """SpikingJelly's ann2snn of ``ann`` with our neurons in graph order. Returns the SNN
    module and the list of its neuron modules (same order as ``neurons``)."""
    try:
        import torch
        from spikingjelly.activation_based import ann2snn, neuron as sjn
    except ImportError:
        raise OptionalDependencyError("the SpikingJelly column needs spikingjelly and torch: pip install 'snn-onnx[bench]'") from None
    kinds = [sj_neuron_kind(n) for n in neurons]
    bad = [f"{n.node}: {k}" for n, k in zip(neurons, kinds) if isinstance(k, str)]
    if bad:
        raise SnnOnnxError(bad[0])
    made: list = []

    def factory(_scale: float):
        if len(made) >= len(kinds):
            raise SnnOnnxError(f"the source ANN has more ReLU / QCFS activations than the SNN has neurons ({len(kinds)})")
        cls, kw = kinds[len(made)]
        mod = getattr(sjn, cls)(**kw)
        made.append(mod)
        return mod

    import contextlib
    import io
    import warnings

    model = relu_model(ann)
    with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        conv = ann2snn.Converter(recipe=ann2snn.RateCodingRecipe(dataloader=[torch.from_numpy(sample)], mode="Max",
                                                                 neuron_factory=factory), device="cpu")
        snn = conv.convert(model)
    if len(made) != len(kinds):
        raise SnnOnnxError(f"SpikingJelly converted {len(made)} activations, the SNN has {len(kinds)} neurons")
    # scaler0 -> neuron -> scaler1: our units (input current as is, spikes worth θ)
    mods = dict(snn.named_modules())
    by_id = {id(m): i for i, m in enumerate(made)}
    for node in snn.graph.nodes:
        if node.op != "call_module" or id(mods.get(node.target)) not in by_id:
            continue
        i = by_id[id(mods[node.target])]
        before = mods[node.args[0].target]
        after = mods[next(iter(node.users)).target]
        theta = float(np.unique(neurons[i].threshold)[0])
        before.scale.fill_(1.0)
        after.scale.fill_(theta)
    return snn, made


def run_spikingjelly(snn, made: list, x: np.ndarray, T: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Run ``T`` single steps on the static input ``x``; the output per step [T, B, ...] and
    each neuron's spikes [T, B, ...]."""
    import torch
    from spikingjelly.activation_based import functional

    rec: list[list] = [[] for _ in made]
    hooks = [m.register_forward_hook(lambda _m, _i, out, k=k: rec[k].append(out.detach().numpy().astype(F32)))
             for k, m in enumerate(made)]
    xt = torch.from_numpy(np.asarray(x, F32))
    outs = []
    try:
        with torch.no_grad():
            functional.set_step_mode(snn, "s")
            functional.reset_net(snn)
            for _ in range(T):
                outs.append(snn(xt).detach().numpy().astype(F32))
    finally:
        for h in hooks:
            h.remove()
    return np.stack(outs), [np.stack(r) for r in rec]

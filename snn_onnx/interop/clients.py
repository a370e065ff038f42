"""Run a NIR graph in another framework through that framework's own NIR reader.

Each client is loaded with its documented entry point (SpikingJelly
``nir_exchange.import_from_nir``, Norse ``norse.torch.from_nir``, snnTorch
``snntorch.import_nir.import_from_nir``), stepped T times, and its neuron modules are
observed with forward hooks: what comes back is what that framework computes, spikes per NIR
neuron node and the Output node's values per step. What a reader cannot represent is said
before running (:func:`unsupported`), from what its reader does with each node
(docs/interop.md has the table); nothing here corrects a reader.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from typing import Any, Callable, Mapping

import numpy as np

from ..errors import OptionalDependencyError, SnnOnnxError
from .nir_sim import NirRun

F32 = np.float32
CLIENTS = ("spikingjelly", "norse", "snntorch")


def _neurons(graph) -> dict[str, Any]:
    import nir

    return {k: n for k, n in graph.nodes.items() if isinstance(n, (nir.IF, nir.LIF, nir.CubaLIF))}


def unsupported(client: str, graph, dt: float) -> str | None:
    """Why ``client``'s NIR reader would compute something else than NIR's equations on this
    graph (None when it reads every node of it faithfully)."""
    import nir

    neurons = _neurons(graph)
    resets = any(np.any(np.asarray(n.v_reset) != 0) for n in neurons.values())
    kinds = {type(n).__name__ for n in graph.nodes.values()}
    if client == "norse":
        if resets:
            return "Norse 1.1 ignores v_reset (it resets to 0): the file starts neurons above 0 (v_init != 0)"
        if any(isinstance(n, nir.LIF) for n in neurons.values()):
            return "Norse 1.1 ignores r of a LIF node (reads r = 1), so a LIF's input is scaled by dt/tau"
        if "Scale" in kinds or "AvgPool2d" in kinds:
            return "Norse 1.1 has no Scale or AvgPool2d node (its reader drops them; export with pooling='sum')"
        return None
    if client == "snntorch":
        if any(isinstance(n, nir.IF) for n in neurons.values()):
            return "snnTorch 1.0 reads NIR IF only with r = 1, and then as a leaky neuron (beta 0.9, subtractive reset)"
        if resets:
            return "snnTorch 1.0 ignores v_reset and v_leak of a LIF"
        if abs(dt - 1e-4) > 1e-12:
            return f"snnTorch 1.0 reads NIR with dt = 1e-4, the file is written for dt = {dt}"
        if "Scale" in kinds:
            return "snnTorch 1.0 has no Scale node"
        if any(np.unique(n.v_threshold).size > 1 for n in neurons.values()):
            return "snnTorch 1.0 needs one threshold per layer"
        return None
    if client == "spikingjelly":
        if any(np.unique(getattr(n, a)).size > 1 for n in neurons.values() for a in ("v_threshold", "v_reset")):
            return "SpikingJelly needs one threshold and one v_reset per layer"
        if "Scale" in kinds:
            return "SpikingJelly 2.0 has no Scale node"
        if any(isinstance(n, nir.Conv2d) and int(n.groups) != 1 for n in graph.nodes.values()):
            return "SpikingJelly refuses grouped convolutions"
        return None
    raise SnnOnnxError(f"unknown NIR client {client!r}; one of {CLIENTS}")


def _load(client: str, graph, dt: float):
    try:
        if client == "spikingjelly":
            from spikingjelly.activation_based.nir_exchange import import_from_nir

            return import_from_nir(graph, dt=dt)
        if client == "norse":
            import norse.torch

            return norse.torch.from_nir(graph, dt=dt)
        if client == "snntorch":
            from snntorch.import_nir import import_from_nir

            return import_from_nir(graph)
    except ImportError as err:
        raise OptionalDependencyError(f"{client} is not installed ({err}): pip install 'snn-onnx[nir-clients]'") from None
    raise SnnOnnxError(f"unknown NIR client {client!r}; one of {CLIENTS}")


def _first_tensor(out):
    import torch

    while isinstance(out, (tuple, list)):
        out = out[0]
    return out if isinstance(out, torch.Tensor) else None


def run_client(client: str, graph, inputs: Mapping[str, np.ndarray], dt: float, skip_known_limits: bool = True) -> NirRun:
    """Run ``graph`` in ``client`` for T steps; ``inputs``: the NIR Input node -> [T, B, ...].
    Raises when the reader cannot take the graph (see :func:`unsupported`);
    ``skip_known_limits=False`` runs it anyway (to show what the reader then computes)."""
    import torch

    why = unsupported(client, graph, dt) if skip_known_limits else None
    if why:
        raise SnnOnnxError(f"{client}: {why}")
    if len(inputs) != 1:
        raise SnnOnnxError(f"{client}: only single-input graphs are run")
    outs = [k for k, n in graph.nodes.items() if type(n).__name__ == "Output"]
    if len(outs) != 1:
        raise SnnOnnxError(f"{client}: only single-output graphs are run")
    x = torch.from_numpy(np.ascontiguousarray(next(iter(inputs.values())), dtype=F32))
    if client in ("norse", "snntorch") and any(type(n).__name__ == "Flatten" for n in graph.nodes.values()) and x.shape[1] > 1:
        # their readers map NIR Flatten (dims without the batch) to torch.nn.Flatten(start_dim=0),
        # which also flattens the batch axis: run one sample at a time, the batch they support
        runs = [run_client(client, graph, {k: v[:, b : b + 1] for k, v in inputs.items()}, dt, skip_known_limits)
                for b in range(x.shape[1])]
        T = x.shape[0]
        shapes = {k: tuple(np.asarray(n.v_threshold).shape) for k, n in _neurons(graph).items()}
        shapes.update({k: tuple(int(d) for d in graph.nodes[k].output_type["output"]) for k in outs})
        return NirRun(outputs={k: np.concatenate([r.outputs[k].reshape((T, 1) + shapes[k]) for r in runs], axis=1) for k in outs},
                      spikes={k: np.concatenate([r.spikes[k].reshape((T, 1) + shapes[k]) for r in runs], axis=1) for k in shapes if k not in outs})
    with _quiet():
        module = _load(client, graph, dt)
    neurons = _neurons(graph)
    record: dict[str, list] = {k: [] for k in neurons}
    hooks = []
    for mod_name, mod in module.named_modules():
        key = _neuron_key(mod_name, neurons)
        if key is not None and mod_name.count(".") == 0:
            hooks.append(mod.register_forward_hook(_recorder(record[key])))
    steps = []
    state = None
    with torch.no_grad(), _quiet():
        if client == "snntorch":
            _reset_snntorch(module)
        for t in range(x.shape[0]):
            if client == "snntorch":
                out = module(x[t])
            else:
                out = module(x[t], state)
            if isinstance(out, tuple) and len(out) == 2 and client != "snntorch":
                out, state = out
            elif isinstance(out, tuple) and len(out) == 2:
                out = out[0]
            steps.append(_first_tensor(out).detach().numpy().astype(F32))
    for h in hooks:
        h.remove()
    missing = [k for k, v in record.items() if len(v) != x.shape[0]]
    if missing:
        raise SnnOnnxError(f"{client}: could not observe the neuron module(s) {missing}")
    return NirRun(outputs={outs[0]: np.stack(steps)}, spikes={k: np.stack(v) for k, v in record.items()})


def _neuron_key(mod_name: str, neurons: Mapping[str, Any]) -> str | None:
    for k in neurons:
        if mod_name in (k, k.replace(".", "_")):
            return k
    return None


def _recorder(sink: list) -> Callable:
    def hook(_mod, _inp, out):
        t = _first_tensor(out)
        sink.append(t.detach().numpy().astype(F32))

    return hook


def _reset_snntorch(module) -> None:
    import snntorch

    for m in module.modules():
        if isinstance(m, snntorch.SpikingNeuron) and hasattr(m, "reset_hidden"):
            m.reset_hidden()


@contextlib.contextmanager
def _quiet():
    """Readers print and log as they load (warnings about r, deprecations): keep them off
    the user's terminal; what matters is checked, not printed."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            logger.setLevel(level)

"""Reports a spiking-network team reads: accuracy per time step, firing rates, SOPs and energy
per layer, as terminal tables, a run folder (JSON, CSV, PNG plots, a self-contained HTML page,
TensorBoard events) and a dashboard across runs.

``measure`` runs an SNN on labelled data and gives a :class:`RunResult`; ``write_run`` writes its
folder; ``aggregate`` writes the table and dashboard across a runs folder; ``run_report`` does
conversion, measurement and writing in one call. Needs the ``report`` extra (matplotlib,
tensorboard) for plots and events; measuring needs neither.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import onnx

from ..energy import EnergyConfig
from .measure import RunResult, StepPoint, ann_outputs, measure, run_snn, summarize
from .tables import anytime_table, full_report, headline_table, layer_table, spiking_table


def run_report(
    ann: onnx.ModelProto | None,
    test_x: np.ndarray,
    test_y: np.ndarray | None,
    calib_x: np.ndarray | None,
    *,
    time_steps: int = 8,
    neuron: Any = "if",
    calibration=None,
    energy: EnergyConfig | None = None,
    runs_dir: str | Path = "runs",
    name: str | None = None,
    config: Mapping[str, Any] | None = None,
    batch_size: int = 64,
    tensorboard: bool = True,
    snn: onnx.ModelProto | None = None,
    event_inputs: tuple[str, ...] = (),
    on_progress=None,
    potentials: bool = False,
    engine: str = "auto",
) -> tuple[RunResult, Path]:
    """Convert ``ann`` (unless ``snn`` is given), measure it on ``(test_x, test_y)`` and write
    the run folder ``<runs_dir>/<name>/<timestamp>/``. Returns the result and the folder.
    With ``snn`` given, ``ann`` may be None (no ANN accuracy and agreement then).
    ``neuron``: a name or a ``NeuronConfig``. ``event_inputs``: inputs that take one frame per
    step; their test data are frames ``[T, N, ...]`` and their calibration data the mean
    frames ``[N, ...]`` (what the SNN's rates approximate). ``potentials``: also measure the
    membrane potentials (histograms, near-threshold fractions, their panels and tags).
    ``engine``: how the SNN runs (``snn_onnx.Session``; the config records the one used)."""
    from ..conversion.pipeline import convert
    from ..metadata import read
    from .provenance import parse
    from .runs import write_run

    if snn is None:
        if ann is None:
            raise ValueError("run_report needs an ANN to convert or an SNN (snn=...)")
        res = convert(ann, time_steps=time_steps, neuron=neuron, data=calib_x, calibration=calibration, parity_samples=16,
                      event_inputs=tuple(event_inputs), on_progress=on_progress)
        snn = res.model
    meta = read(snn)
    kind = meta.get("neuron", {}).get("kind", getattr(neuron, "kind", neuron))
    cfg = {"name": name or f"{kind}-T{meta['time_steps']}", "calibration": meta.get("calibration"),
           "parity": meta.get("parity"), "batch_size": batch_size,
           **({"provenance": parse(meta["provenance"])} if "provenance" in meta else {}), **dict(config or {})}
    run = measure(snn, test_x, test_y, ann=ann, batch_size=batch_size, energy=energy, config=cfg,
                  potentials=potentials, engine=engine)
    folder = write_run(run, runs_dir, name=cfg["name"], tensorboard=tensorboard)
    return run, folder


def aggregate(runs_dir: str | Path = "runs") -> tuple[Path, Path, int]:
    from .runs import aggregate as _aggregate

    return _aggregate(runs_dir)


def write_run(run: RunResult, runs_dir: str | Path = "runs", **kwargs) -> Path:
    from .runs import write_run as _write_run

    return _write_run(run, runs_dir, **kwargs)


__all__ = [
    "RunResult",
    "StepPoint",
    "aggregate",
    "ann_outputs",
    "anytime_table",
    "full_report",
    "headline_table",
    "layer_table",
    "measure",
    "run_report",
    "run_snn",
    "spiking_table",
    "summarize",
    "write_run",
]

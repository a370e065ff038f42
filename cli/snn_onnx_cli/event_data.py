"""``--event-input``: event data for convert, run, eval and report (docs/events.md)."""

from __future__ import annotations

import click
import numpy as np

EVENT_HELP = ("Event data, one frame per time step: digits-events, or an .npz with frames [T, N, ...] or raw "
              "(x, y, t, p) events binned into T frames with tonic (docs/events.md).")


def event_option(fn):
    return click.option("--event-input", "event_input", default=None, metavar="SOURCE", help=EVENT_HELP)(fn)


def single_input(model) -> str:
    """The name of the model's one data input (event data feeds exactly one)."""
    from snn_onnx import input_names as graph_input_names

    names = graph_input_names(model)
    if len(names) != 1:
        raise click.UsageError(f"--event-input needs a model with one input, this one has {names}")
    return names[0]


def load(source: str, split: str, limit: int | None, model, *, snn: bool = False):
    """Event data that fits ``model``'s input: a frame must have the shape of one ANN sample
    (an SNN's event input is ``[T*B, ...]``, the same per-frame shape)."""
    from snn_onnx.data.events import load_events
    from snn_onnx.errors import DataError

    data = load_events(source, split=split, limit=limit)
    name = single_input(model)
    inp = next(i for i in model.graph.input if i.name == name)
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim]
    want = dims[1:]
    got = list(data.frame_shape)
    if len(want) != len(got) or any(w is not None and w != g for w, g in zip(want, got)):
        raise DataError(f"event data '{data.name}' has frames of shape {got}, the model input '{name}' takes "
                        f"{['?' if w is None else w for w in want]} per {'step' if snn else 'sample'}")
    return data


def check_time_steps(data, ts) -> None:
    """Fixed frames fix T; raw events are binned for any T."""
    if data.time_steps is not None and set(ts) != {data.time_steps}:
        raise click.UsageError(f"event data '{data.name}' holds frames for T={data.time_steps} only; "
                               f"use -T {data.time_steps} or give raw events (binned for any T)")


def calibration_frames(data, time_steps: int, name: str) -> dict[str, np.ndarray]:
    """Each calibration sample's mean frame over the T steps: what the SNN's rates approximate,
    so thresholds fit the integrated input (docs/events.md)."""
    return {name: data.frames(time_steps).mean(axis=0)}

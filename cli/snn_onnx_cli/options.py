"""Option parsing and validation shared by the commands: lists of T, shapes, neuron options, and
which options apply to which kind of model. Every refusal is one line that names the option."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable

import click
from click.core import ParameterSource
from snn_onnx.ops.schema import MAX_TIME_STEPS

NEURON_NAMES = ("paraif", "if", "lif", "signed-if")
# options that shape a model exported from PyTorch; a model given as an .onnx file or a Hugging
# Face folder is already fixed
EXPORT_OPTIONS = ("input_shape", "num_classes", "checkpoint", "qcfs_levels", "exporter")
MT_OPTIONS = ("levels", "mt_percentile", "mt_lower_percentile", "anchor_level", "mt_sites")
NEURON_OPTIONS = ("neuron", "leak", "reset", "v_init", "signed_eps")
CALIB_METHOD_OPTIONS = ("calib_method", "percentile")


def flag(name: str) -> str:
    """``input_shape`` -> ``--input-shape`` (the spelling users typed)."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        for p in ctx.command.params:
            if p.name == name and isinstance(p, click.Option):
                longs = [o for o in p.opts if o.startswith("--")]
                return longs[0] if longs else p.opts[0]
    return "--" + name.replace("_", "-")


def given(name: str) -> bool:
    """Whether the user set option ``name`` (command line or environment), not its default."""
    ctx = click.get_current_context()
    return ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)


def given_of(names: Iterable[str]) -> list[str]:
    return [n for n in names if given(n)]


def refuse(names: Iterable[str], why: str) -> None:
    """Refuse the given options among ``names``: ``why`` completes '<flags> ...'."""
    bad = given_of(names)
    if bad:
        flags = ", ".join(flag(n) for n in bad)
        raise click.UsageError(f"{flags} {'does' if len(bad) == 1 else 'do'} not apply: {why}")


# -T: the op library counts spikes over time in int32 (docs/ops.md)
TIME_STEPS = click.IntRange(min=1, max=MAX_TIME_STEPS)


def check_sources(data_source: str | None, event_input: str | None, checkpoint: str | None) -> None:
    """Files the command will read, checked before any export or calibration: a missing
    --data, --event-input or --checkpoint file is refused at once, not after minutes."""
    from snn_onnx import data as data_mod
    from snn_onnx.errors import DataError

    if data_source is not None:
        data_mod.check_source(data_source)
    if event_input is not None and event_input not in ("digits-events",):
        path = Path(event_input)
        if not path.is_file():
            raise DataError(f"event data '{event_input}': no such file (named event sources: digits-events)")
        data_mod.check_array_file(path, "event data")
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.is_file():
            raise DataError(f"--checkpoint '{checkpoint}': " + ("is a directory" if path.is_dir() else "no such file"))


def check_folder(path: str, option: str) -> None:
    """A folder the command will write into (creating it if needed): refused now if it is a
    file or cannot take a new entry, rather than after the work."""
    from snn_onnx import files
    from snn_onnx.errors import OutputExistsError

    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputExistsError(f"{option} '{path}' exists and is not a folder")
    existing = p
    while not existing.exists():  # the nearest folder that exists must let us create the rest
        existing = existing.parent
    if not existing.is_dir():
        raise OutputExistsError(f"{option} '{path}': '{existing}' is not a folder")
    files.probe_writable(existing)


def parse_int_list(text: str | None, what: str, *, sep: str = ",", allow_repeats: bool = False) -> tuple[int, ...] | None:
    """Strictly parse ``"1,2,4"``: every entry a positive integer, none empty."""
    if text is None:
        return None
    parts = re.split(sep, text.strip())
    vals = []
    for part in parts:
        part = part.strip()
        if not re.fullmatch(r"\+?\d+", part):
            raise click.BadParameter(f"expected positive integers separated by '{sep.strip('[]')}', got {text!r} "
                                     f"(entry {part!r})", param_hint=what)
        vals.append(int(part))
    if any(v <= 0 for v in vals):
        raise click.BadParameter(f"must be positive integers, got {text!r}", param_hint=what)
    if not allow_repeats and len(set(vals)) != len(vals):
        raise click.BadParameter(f"repeats a value: {text!r}", param_hint=what)
    return tuple(vals)


def parse_time_steps(text: str | None, what: str = "--time-steps") -> tuple[int, ...] | None:
    ts = parse_int_list(text, what)
    if ts and max(ts) > MAX_TIME_STEPS:
        raise click.BadParameter(f"T must be at most {MAX_TIME_STEPS}, got {max(ts)}", param_hint=what)
    return ts


def parse_shape(text: str | None, what: str = "--input-shape") -> tuple[int, ...] | None:
    """``3,32,32`` or ``3x32x32`` (without the batch axis); one float32 sample of it must fit
    in the memory there is (the export runs the model on one)."""
    from snn_onnx.runtime.memory import available, format_bytes

    shape = parse_int_list(text, what, sep="[,x]", allow_repeats=True)
    budget = available()
    if shape and budget is not None:
        size = 4
        for d in shape:
            size *= d
        if size > budget[0]:
            raise click.BadParameter(f"one sample of shape {list(shape)} takes {format_bytes(size)} as float32, "
                                     f"more than the {format_bytes(budget[0])} free ({budget[1]})", param_hint=what)
    return shape


def neuron_options(fn):
    """--leak, --reset, --v-init, --signed-eps: None unless given, so that a neuron without the
    option refuses it even at its default value."""
    for opt in reversed([
        click.option("--leak", type=float, default=None, help="LIF leak in (0, 1): v = leak*v + x (lif only)."),
        click.option("--reset", type=click.Choice(["subtract", "zero"]), default=None,
                     help="After a spike: subtract the threshold (default) or set v to 0 (if, lif, signed-if)."),
        click.option("--v-init", type=float, default=None,
                     help="Initial membrane v_init*θ (default 0.5; ParaIF: its bias). QCFS activations carry their own."),
        click.option("--signed-eps", type=float, default=None, help="Negative-spike margin of signed-if (default 1e-3)."),
    ]):
        fn = opt(fn)
    return fn


def neuron_config(kind: str, leak: float | None, reset: str | None, v_init: float | None, signed_eps: float | None):
    """A NeuronConfig from CLI options; an option the neuron lacks is one usage error."""
    from snn_onnx import NeuronConfig
    from snn_onnx.errors import ConversionError

    opts = {"leak": leak, "reset": reset, "v_init": v_init, "signed_eps": signed_eps}
    for name, value in opts.items():
        if value is not None and kind not in NeuronConfig.OPTIONS[name]:
            have = [k for k in NEURON_NAMES if k in NeuronConfig.OPTIONS[name]]
            raise click.UsageError(f"{flag(name)} does not apply to the {kind} neuron (it is an option of "
                                   f"{', '.join(have)})")
    if kind == "lif" and leak is None:
        raise click.UsageError("the lif neuron needs --leak, in (0, 1) (e.g. --leak 0.9)")
    try:
        return NeuronConfig.from_options(kind, **opts)
    except ConversionError as err:
        raise click.UsageError(str(err)) from None


def neuron_configs(kinds: list[str], leak, reset, v_init, signed_eps) -> list:
    """One config per neuron of an ``eval --neurons`` list: each option goes to the neurons
    that have it; an option that none of them has is refused."""
    from snn_onnx import NeuronConfig

    opts = {"leak": leak, "reset": reset, "v_init": v_init, "signed_eps": signed_eps}
    for name, value in opts.items():
        if value is not None and not any(k in NeuronConfig.OPTIONS[name] for k in kinds):
            have = [k for k in NEURON_NAMES if k in NeuronConfig.OPTIONS[name]]
            raise click.UsageError(f"{flag(name)} applies to none of the neurons {','.join(kinds)} "
                                   f"(it is an option of {', '.join(have)})")
    return [neuron_config(k, *(v if k in NeuronConfig.OPTIONS[n] else None for n, v in opts.items())) for k in kinds]


def parse_neurons(text: str) -> list[str]:
    kinds = [k.strip() for k in text.split(",")]
    bad = [k for k in kinds if k not in NEURON_NAMES]
    if bad or not kinds:
        raise click.BadParameter(f"takes a comma-separated list of {', '.join(NEURON_NAMES)}, got {text!r}",
                                 param_hint="--neurons")
    if len(set(kinds)) != len(kinds):
        raise click.BadParameter(f"repeats a neuron: {text!r}", param_hint="--neurons")
    return kinds


def model_kind(model: str, is_example: bool) -> str:
    """"onnx" (a file, the bundled example included), "hf" (a Hugging Face folder), "factory"
    (module:factory) or "timm"."""
    from snn_onnx.export import is_onnx_path
    from snn_onnx.export.hf_export import is_hf_folder

    if is_example:
        return "onnx"
    if is_hf_folder(model):
        return "hf"
    if is_onnx_path(model):
        return "onnx"
    return "factory" if ":" in model and not Path(model).exists() else "timm"


def check_export_options(kind: str, model: str) -> None:
    """Refuse export options that cannot act on this kind of model."""
    if kind == "onnx":
        what = model if model.startswith("the bundled") else f"'{model}'"
        refuse(EXPORT_OPTIONS, f"{what} is an ONNX model: its input shape, classes and weights are fixed "
                               "(they shape timm / module:factory models)")
    elif kind == "hf":
        refuse(("input_shape", "num_classes", "checkpoint", "qcfs_levels"),
               f"'{model}' is a Hugging Face folder, exported with its own weights and token inputs")


def labels_fit(y, num_outputs: int | None, source: str) -> None:
    """Class labels must index the model's outputs."""
    from snn_onnx.errors import DataError

    if y is None or num_outputs is None or len(y) == 0:
        return
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= num_outputs:
        raise DataError(f"data '{source}' has labels {lo}..{hi}, but the model outputs {num_outputs} classes "
                        "(labels must be 0..classes-1)")


def output_classes(model) -> int | None:
    """The last dimension of the model's first output, if it is fixed."""
    out = model.graph.output[0].type.tensor_type.shape.dim
    if len(out) >= 2 and out[-1].HasField("dim_value"):
        return int(out[-1].dim_value)
    return None


def describe_given(names: Iterable[str]) -> dict[str, Any]:
    ctx = click.get_current_context()
    return {n: ctx.params[n] for n in names if given(n)}

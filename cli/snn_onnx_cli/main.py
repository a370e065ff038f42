"""The ``snn-onnx`` command: a thin layer over the ``snn_onnx`` package's public API.

Errors the user can fix print one line (``error: ...``) and exit 1 (2 for a misused option);
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import functools
import json
import sys
import warnings
from pathlib import Path

import click
import numpy as np

import snn_onnx
from snn_onnx.errors import DataError, SnnOnnxError

from .correction_opts import CORRECTION_OPTIONS, correction_options
from .interop_cmds import register as register_interop_commands
from . import event_data
from .options import (
    CALIB_METHOD_OPTIONS, MT_OPTIONS, NEURON_NAMES, NEURON_OPTIONS, check_export_options, given, labels_fit,
    model_kind, neuron_config, neuron_configs, neuron_options, output_classes, parse_neurons, parse_shape,
    parse_time_steps, refuse, check_folder, check_sources, TIME_STEPS,
)
from . import signgd_cli
from .progress import Progress
from .safety import Stopped, one_line, signals_stop, stop_on_broken_pipe
from .report_cmds import energy_options, eval_run_writer, register as register_report_commands

EXAMPLE = "example"


def _example_path() -> Path:
    from snn_onnx_models import example_model_path

    return example_model_path()


def handle_errors(fn):
    """Turn SnnOnnxError (and anything unexpected) into one line on stderr + exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        ctx = click.get_current_context()
        debug = (ctx.obj or {}).get("debug", False)
        try:
            return fn(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except BrokenPipeError:
            stop_on_broken_pipe()
        except SnnOnnxError as err:
            if debug:
                raise
            click.echo(f"error: {one_line(err)}", err=True)
            sys.exit(1)
        except MemoryError as err:  # an allocation the memory estimate did not foresee
            if debug:
                raise
            click.echo(f"error: out of memory{f' ({one_line(err)})' if str(err) else ''}; lower T or the number of "
                       "samples", err=True)
            sys.exit(1)
        except OSError as err:  # the file system said no (a file named by the user, a full disk ...)
            if debug or err.filename is None:
                raise
            click.echo(f"error: {err.strerror or one_line(err)}: {err.filename}", err=True)
            sys.exit(1)
        except Exception as err:  # a bug of ours: still one clear line
            if debug:
                raise
            click.echo(f"error: internal error ({type(err).__name__}: {one_line(err)}); rerun with --debug for the "
                       "traceback", err=True)
            sys.exit(2)

    return wrapper


def _parse_ints(text: str | None, what: str) -> tuple[int, ...] | None:
    """Shapes (``3,32,32`` or ``3x32x32``), for the commands registered from other modules."""
    return parse_shape(text, what)


def _resolve_model_arg(model: str | None) -> tuple[str, bool]:
    if model in (None, EXAMPLE):
        return str(_example_path()), True
    return model, False


def _load_data(source: str, split: str, limit: int | None, ann, timm_name: str | None = None):
    from snn_onnx import data as data_mod
    from snn_onnx import input_names as graph_input_names

    shape = _input_shape_of(ann)
    opts = {"timm_model": timm_name} if timm_name and Path(source).is_dir() else {}
    if source == "random":
        opts["seed"] = 0
        limit = limit or 64
    if Path(source).suffix.lower() == ".npz":
        opts["input_names"] = graph_input_names(ann)
    return data_mod.load(source, split=split, limit=limit, input_shape=shape, **opts)


def _input_shape_of(ann) -> tuple | None:
    from snn_onnx import input_names as graph_input_names

    names = graph_input_names(ann)
    if len(names) != 1:
        return None
    inp = next(i for i in ann.graph.input if i.name == names[0])
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim)


def _get_ann(model: str, input_shape, num_classes, checkpoint, qcfs_levels, exporter):
    """The ANN as ONNX. Options that cannot act on ``model`` are refused before this runs
    (``options.check_export_options``)."""
    from snn_onnx.export import is_onnx_path, resolve_model
    from snn_onnx.export.hf_export import is_hf_folder

    if is_hf_folder(model):
        return resolve_model(model, exporter=exporter)
    if is_onnx_path(model):
        if checkpoint or qcfs_levels or input_shape or num_classes:
            raise click.UsageError("--input-shape, --num-classes, --checkpoint and --qcfs-levels apply to timm / "
                                   "module:factory models, not .onnx files")
        return resolve_model(model)
    from snn_onnx.export import build_module, default_input_shape, export_module

    prepare = None
    if qcfs_levels:  # QCFS activations in place of the ReLUs, before a QCFS checkpoint loads
        from snn_onnx_models.qcfs import qcfsify

        prepare = lambda m: qcfsify(m, qcfs_levels)  # noqa: E731
    module = build_module(model, num_classes=num_classes, checkpoint=checkpoint, prepare=prepare)
    shape = input_shape or default_input_shape(module)
    if shape is None:
        raise click.UsageError(f"give --input-shape for '{model}' (e.g. 3,32,32)")
    if qcfs_levels and not checkpoint:
        # random-init QCFS thresholds are meaningless: set them from a random batch
        import torch
        from snn_onnx_models.qcfs import calibrate_thresholds

        torch.manual_seed(0)
        calibrate_thresholds(module, torch.randn(16, *shape))
    return export_module(module, tuple(shape), exporter=exporter)


def _provenance(model: str, kind: str, is_example: bool, checkpoint, qcfs_levels, calib_source: str | None) -> dict:
    """Where the weights and the calibration data came from (``snn_onnx.provenance``)."""
    prov: dict = {}
    if is_example:
        prov["weights"] = "the bundled digits example (trained by models/train_digits.py)"
    elif kind == "onnx":
        prov["weights"] = f"from the ONNX file {Path(model).name}"
    elif kind == "hf":
        prov["weights"] = f"the Hugging Face folder {Path(model).resolve().name}"
    elif checkpoint:
        prov["weights"] = f"{model} with the checkpoint {Path(checkpoint).name}"
    elif kind == "timm":
        prov.update(weights=f"timm {model}, random init (no --checkpoint; nothing is downloaded)", weights_random=True)
    else:
        prov["weights"] = f"as the factory {model} makes them (no --checkpoint)"
    if qcfs_levels and not checkpoint:
        prov["qcfs_thresholds"] = f"QCFS λ (L={qcfs_levels}) set from 16 random inputs"
    if calib_source is not None:
        prov["calibration_data"] = "random inputs (seed 0)" if calib_source == "random" else calib_source
        prov["calibration_random"] = calib_source == "random"
    return prov


class OneLineGroup(click.Group):
    """Usage errors (a bad value, an option that does not apply) as one ``error:`` line too,
    exit code 2, instead of click's usage block."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            with signals_stop():
                rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except Stopped as stop:  # temporary files are gone: every finally has run
            click.echo(f"error: stopped by {stop.name}", err=True)
            sys.exit(stop.exit_code)
        except BrokenPipeError:
            stop_on_broken_pipe()
        except click.ClickException as err:
            msg = " ".join(err.format_message().split())
            ctx = getattr(err, "ctx", None)
            hint = f" (see {ctx.command_path} --help)" if isinstance(err, click.UsageError) and ctx is not None else ""
            click.echo(f"error: {msg}{hint}", err=True)
            sys.exit(err.exit_code)
        except click.Abort:
            click.echo("error: aborted", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.version_option(snn_onnx.__version__, prog_name="snn-onnx")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Convert ANNs to spiking neural networks and run them in ONNX Runtime."""
    ctx.ensure_object(dict)["debug"] = debug
    if not debug:  # library warnings as one line each, like errors
        warnings.showwarning = lambda message, category, *a, **k: click.echo(f"warning: {one_line(message)}", err=True)


def _engine_option(default: str = "auto"):
    return click.option(
        "--engine", type=click.Choice(["auto", "steps", "collapsed"]), default=default, show_default=True,
        help="steps: T steps with the custom-op kernels; collapsed: one pass over time means (ParaIF networks "
             "only, same outputs and spike counts; docs/collapsed.md); auto: collapsed where it applies.")


def _model_options(fn):
    for opt in reversed(
        [
            click.option("--input-shape", help="Input shape without batch, e.g. 3,32,32 (timm / module:factory models)."),
            click.option("--num-classes", type=click.IntRange(min=1),
                         help="Classes of the head (timm; module:factory whose factory takes num_classes)."),
            click.option("--checkpoint", type=click.Path(), help="State dict for a timm / module:factory model."),
            click.option("--qcfs-levels", type=click.IntRange(min=1), help="Replace ReLUs by QCFS with L levels before export."),
            click.option("--exporter", type=click.Choice(["auto", "legacy", "dynamo"]), default="auto", show_default=True,
                         help="torch.onnx exporter (timm / module:factory / Hugging Face models)."),
        ]
    ):
        fn = opt(fn)
    return fn


def _calib_options(fn):
    for opt in reversed(
        [
            click.option("--calib-method", type=click.Choice(["max", "percentile", "mse", "ltb"]), default="mse",
                         show_default=True, help="Thresholds of the calibrated IF / ParaIF neurons (CNN mode): max, "
                         "percentile, least squared error at T (mse), local threshold balancing (ltb); docs/fidelity.md."),
            click.option("--percentile", type=click.FloatRange(0, 100, min_open=True), default=99.99, show_default=True,
                         help="With --calib-method percentile."),
            click.option("--per-channel/--per-tensor", default=True, show_default=True,
                         help="IF / ParaIF thresholds per channel or one per layer (CNN mode); in transformer mode "
                         "--per-channel gives Linear inputs one scale pair per feature."),
            click.option("--num-calib", type=click.IntRange(min=1), default=256, show_default=True, help="Calibration samples."),
        ]
    ):
        fn = opt(fn)
    return fn


def _transformer_options(fn):
    for opt in reversed(
        [
            click.option("--mode", type=click.Choice(["auto", "cnn", "transformer"]), default="auto", show_default=True,
                         help="cnn: ReLU/QCFS -> spiking neurons (--neuron); transformer: multi-threshold neurons on Linear/MatMul inputs."),
            click.option("--levels", type=int, default=8, show_default=True, help="Multi-threshold neuron levels N (transformer mode)."),
            click.option("--mt-percentile", type=float, default=99.0, show_default=True,
                         help="Upper calibration percentile of the multi-threshold neurons."),
            click.option("--mt-lower-percentile", type=float, default=None, help="Lower percentile (default 100 - --mt-percentile)."),
            click.option("--anchor-level", type=int, default=None,
                         help="Level k whose value s*2^k is the calibrated percentile (default 3, or the top level "
                         "with fewer levels)."),
            click.option("--mt-sites", type=click.Choice(["all", "linear"]), default="all", show_default=True,
                         help="Neurons on Linear inputs and attention operands (all) or Linear inputs only."),
            click.option("--fused", is_flag=True, help="Use fused compensation kernels where they exist."),
        ]
    ):
        fn = opt(fn)
    return fn


def _mt_config(levels, percentile, lower, anchor, sites, per_channel):
    from snn_onnx import MultiThresholdConfig

    try:
        return MultiThresholdConfig(levels=levels, percentile=percentile, lower_percentile=lower,
                                    per_channel=per_channel, sites=sites, anchor_level=anchor)
    except SnnOnnxError as err:
        raise click.BadParameter(str(err)) from None


def _load_sentences(path: str) -> list[str]:
    p = Path(path)
    if p.suffix != ".txt" or not p.is_file():
        raise DataError(f"calibration data for a text model must be a .txt file with one sentence per line, got {path!r}")
    lines = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if not lines:
        raise DataError(f"{path} holds no sentences")
    return lines


def _check_calibration_options(calib_method: str) -> None:
    if given("percentile") and calib_method != "percentile":
        raise click.UsageError("--percentile does not apply: it is the statistic of --calib-method percentile")


NEURON_HELP = ("Spiking neuron (CNN mode): paraif (parallel, exact for QCFS ANNs at T=L), if, lif (with --leak), "
               "signed-if (may fire -1; event data, low-bit ANNs). Default paraif. signgd: SignGD neurons on every "
               "non-linearity (GELU, LayerNorm, Softmax, MaxPool, products; docs/signgd.md).")


@cli.command()
@click.argument("model", required=False)
@click.option("-o", "--output", type=click.Path(), help="Where to write the SNN (default: <model>.T<T>.<neuron>.snn.onnx in the current folder).")
@click.option("-T", "--time-steps", type=TIME_STEPS, default=None, help="Time steps T (default 8).")
@click.option("--neuron", type=click.Choice(NEURON_NAMES + ("signgd",)), default=None, help=NEURON_HELP)
@neuron_options
@click.option("--allow-compensation", is_flag=True,
              help="signgd: compensate non-linearities without a SignGD form (computed on decoded values) instead of "
                   "refusing them.")
@click.option("--data", "data_source", default=None, help="Calibration data: digits, a .npz, an image folder, or random (default: digits for the example, random otherwise).")
@event_data.event_option
@_calib_options
@_model_options
@_transformer_options
@click.option("--no-spike-counts", is_flag=True, help="Omit the spike-count outputs.")
@click.option("--no-per-step", is_flag=True, help="Omit the per-step running-mean outputs.")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@click.option("--quiet", is_flag=True, help="No progress display.")
@click.option("--no-parity-gate", is_flag=True,
              help="Write the SNN even when it should reproduce the ANN exactly (ParaIF, T = L) and does not.")
@click.option("--explain", is_flag=True, help="List every activation the rules looked at and did not take, and why.")
@correction_options
@handle_errors
def convert(model, output, time_steps, neuron, leak, reset, v_init, signed_eps, allow_compensation, data_source, event_input, calib_method,
            percentile, per_channel, num_calib, input_shape, num_classes, checkpoint, qcfs_levels, exporter, mode, levels,
            mt_percentile, mt_lower_percentile, anchor_level, mt_sites, fused, no_spike_counts, no_per_step, force, quiet,
            no_parity_gate, explain, corrections):
    """Convert MODEL (an .onnx file, a timm model name, module:factory or a Hugging Face model
    folder; default: the bundled digits example) into a spiking ONNX model.

    CNNs (ReLU / QCFS) get the --neuron of your choice; transformers (--mode auto detects them)
    get multi-threshold neurons on every Linear / MatMul input and compensated Softmax,
    LayerNorm, GELU and attention products (docs/transformers.md). --event-input makes the
    model's input take one event frame per time step (docs/events.md)."""
    from snn_onnx import CalibrationConfig, check_output_path, convert as do_convert, save_model as save_atomic
    from snn_onnx.report import provenance

    model, is_example = _resolve_model_arg(model)
    kind = model_kind(model, is_example)
    hf = kind == "hf"
    check_export_options(kind, "the bundled example" if is_example else model)
    _check_calibration_options(calib_method)
    if event_input is not None and data_source is not None:
        raise click.UsageError("--data does not apply with --event-input: the event data calibrates the model")
    if mode == "cnn":
        refuse(MT_OPTIONS, "--mode cnn converts activations to --neuron neurons; these configure transformer mode")
    if mode == "transformer" or hf:
        refuse(NEURON_OPTIONS + CALIB_METHOD_OPTIONS + CORRECTION_OPTIONS, "transformer mode uses multi-threshold "
               "neurons, calibrated with --mt-percentile (docs/transformers.md)")
        if hf and event_input:
            raise click.UsageError("--event-input does not apply to a Hugging Face text model")
    if neuron == "signgd":
        cfg = signgd_cli.config(allow_compensation, calib_method, leak=leak, reset=reset, v_init=v_init,
                                signed_eps=signed_eps)
    elif allow_compensation:
        raise click.UsageError("--allow-compensation applies to --neuron signgd only")
    else:
        cfg = neuron_config(neuron or "paraif", leak, reset, v_init, signed_eps)
    time_steps = time_steps or 8
    if output is None:
        if hf:
            stem = Path(model).resolve().name
        else:
            stem = Path(model).stem if model.endswith(".onnx") else model.replace(":", "_").replace("/", "_")
        output = f"{stem}.T{time_steps}.{'mt' if mode == 'transformer' or hf else cfg.kind}.snn.onnx"
    out_path = check_output_path(output, force)  # refuse before spending time on export and calibration
    check_sources(data_source if not hf else None, event_input, checkpoint)
    sentences = _load_sentences(data_source) if hf and data_source else None
    mt = _mt_config(levels, mt_percentile, mt_lower_percentile, anchor_level, mt_sites,
                    per_channel and given("per_channel"))  # per tensor unless asked: CNN and MT defaults differ
    progress = Progress(not quiet)
    try:
        with progress.step("export" if kind in ("timm", "factory", "hf") else "load"):
            ann = _get_ann(model, parse_shape(input_shape), num_classes, checkpoint, qcfs_levels, exporter)
        event_inputs: tuple[str, ...] = ()
        with progress.step("load data"):
            if event_input is not None:
                name = event_data.single_input(ann)
                ev = event_data.load(event_input, "train", num_calib, ann)
                event_data.check_time_steps(ev, [time_steps])
                ds, source, event_inputs = event_data.calibration_frames(ev, time_steps, name), ev.name, (name,)
            elif hf:  # a text encoder: sentences (the bundled calibration set, or --data FILE.txt)
                source = data_source or "sentences (bundled)"
                ds = sentences
            else:
                source = data_source or ("digits" if is_example else "random")
                ds = _load_data(source, "train", num_calib, ann, timm_name=None if is_example or ":" in model else model)
                source = ds.name if source != "random" else "random"
        cal = CalibrationConfig(method=calib_method, percentile=percentile, per_channel=per_channel, num_samples=num_calib)
        with progress.step("convert"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the summary prints them
            res = do_convert(ann, time_steps=time_steps, neuron=cfg, data=ds, calibration=cal, output=None,
                             spike_counts=not no_spike_counts, per_step=not no_per_step, on_progress=progress,
                             source_name=model, mode=mode, multi_threshold=mt, fused=fused, event_inputs=event_inputs,
                             parity_gate=not no_parity_gate, data_source=source, corrections=corrections)
    finally:
        progress.close()
    _check_applied(res)
    # the converter records what it knows (weights of an exported model, calibration data); the
    # CLI knows more (which file, random init, how QCFS λ were set)
    prov = {**provenance.read(res.model), **_provenance(model, kind, is_example, checkpoint, qcfs_levels, source)}
    provenance.write(res.model, prov, overwrite=True)
    save_atomic(res.model, out_path)
    if explain:
        click.echo("activations not turned into neurons:" if res.explain else "every activation chain became a neuron")
        for line in res.explain:
            click.echo(f"  {line}")
    if source == "random":
        click.echo("note: calibrated and checked on random inputs (give --data for real samples)", err=True)
    if kind == "timm" and not checkpoint:
        click.echo(f"note: {model} has random-init weights (no --checkpoint): the SNN is a structural check", err=True)
    click.echo(res.summary())
    click.echo(f"wrote {out_path}")
    click.echo(f"conversion took {res.seconds['total']:.1f} s (calibration {res.seconds['calibrate']:.1f} s)")


def _check_applied(res) -> None:
    """Options given for the mode the converter chose in the end (``--mode auto``) or for
    sites that turned out not to need them are refused: the SNN is not written."""
    if res.mode == "signgd":
        refuse(MT_OPTIONS, "SignGD neurons replace every non-linearity; these configure transformer mode")
        return
    if res.mode == "transformer":
        refuse(NEURON_OPTIONS + CALIB_METHOD_OPTIONS,
               "the model converted in transformer mode (multi-threshold neurons, calibrated with --mt-percentile); "
               "use --mode cnn for --neuron")
        return
    refuse(MT_OPTIONS, "the model converted in CNN mode; these configure transformer mode (--mode transformer)")
    if res.calibration.get("sites_calibrated", 1) == 0:
        refuse(CALIB_METHOD_OPTIONS + ("per_channel",),
               f"all {len(res.sites)} thresholds come from the ANN (QCFS / Clip), none is calibrated")
    if given("v_init"):
        own = [r.site for r in res.sites if getattr(r, "kind", None) == "staircase"]
        if own and len(own) == len(res.sites):
            raise click.UsageError(f"--v-init does not apply: every activation is a staircase (QCFS, quantizer) and "
                                   f"carries its own offset ({len(own)} sites)")
        if own:
            click.echo(f"note: --v-init set {len(res.sites) - len(own)} neurons; {len(own)} staircase sites keep "
                       "their own offset", err=True)


@cli.command()
@click.argument("model", type=click.Path())
@click.option("--input", "input_path", type=click.Path(), help=".npy (single input) or .npz (arrays by input name).")
@event_data.event_option
@click.option("--limit", type=click.IntRange(min=1), help="Run the first N samples of --event-input only.")
@click.option("--output", "output_path", type=click.Path(), help="Write outputs and spike counts to this .npz.")
@click.option("--provider", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@_engine_option()
@click.option("--force", is_flag=True, help="Overwrite an existing --output file.")
@handle_errors
def run(model, input_path, event_input, limit, output_path, provider, engine, force):
    """Run a converted SNN on inputs from a file (or event data) and print its outputs and
    firing rates. An event input takes [T*B, ...] or [T, B, ...] arrays."""
    from snn_onnx import data as data_mod, files

    if (input_path is None) == (event_input is None):
        raise click.UsageError("give exactly one of --input FILE and --event-input SOURCE")
    if limit is not None and event_input is None:
        raise click.UsageError("--limit does not apply: it counts the samples of --event-input")
    if force and not output_path:
        raise click.UsageError("--force does not apply: it lets --output replace a file")
    if output_path:
        files.check_output_path(output_path, force, suffix=".npz", option="--output")
    if input_path is not None:
        data_mod.check_array_file(input_path, "input file")
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if provider == "cuda" else ["CPUExecutionProvider"]
    sess = snn_onnx.Session(model, providers=providers, engine=engine)
    labels = None
    if event_input is not None:
        events = [k for k, v in sess.input_kinds.items() if v == "event"]
        if len(events) != 1 or len(sess.input_names) != 1:
            raise click.UsageError(f"--event-input needs an SNN with one event input; {model} has inputs "
                                   f"{sess.input_kinds or sess.input_names} (convert with --event-input)")
        ev = event_data.load(event_input, "test", limit, sess.model, snn=True)
        event_data.check_time_steps(ev, [sess.time_steps])
        inputs, labels = {events[0]: ev.frames(sess.time_steps)}, ev.labels
    else:
        inputs = data_mod.read_arrays(input_path, "input file")
    out = sess.run(inputs)
    # after the run, so that a refused input stays a one-line error
    why = f" ({sess.engine_note.split(';')[0]})" if engine == "auto" and sess.engine_note else ""
    click.echo(f"engine: {sess.engine}{why}", err=True)
    for name, v in out.outputs.items():
        line = f"{name}: shape {list(v.shape)}"
        if v.ndim == 2 and v.shape[1] > 1:
            line += f", argmax {v.argmax(1)[:16].tolist()}{' …' if len(v) > 16 else ''}"
        click.echo(line)
    if labels is not None and out.outputs:
        pred = next(iter(out.outputs.values())).argmax(-1)
        click.echo(f"accuracy on {len(labels)} labelled samples: {100 * np.mean(pred == labels):.2f}%")
    rates = out.firing_rates()
    if rates:
        click.echo(f"firing rate (spikes per neuron per step), mean over {len(rates)} layers: {np.mean(list(rates.values())):.4f}")
    if output_path:
        arrays = {**out.outputs, **{f"per_step/{k}": v for k, v in out.per_step.items()},
                  **{f"spike_counts/{k}": v for k, v in out.spike_counts.items()}}
        files.write_npz(output_path, arrays)
        click.echo(f"wrote {output_path}")


def _neuron_text(neuron: dict) -> str:
    kind = neuron.get("kind", "?")
    opts = [f"{k}={neuron[k]}" for k in ("leak", "reset", "v_init", "signed_eps") if k in neuron]
    return f"{kind} ({', '.join(opts)})" if opts else kind


@cli.command()
@click.argument("model", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the metadata as JSON.")
@handle_errors
def info(model, as_json):
    """Show how a converted SNN was made: T, neurons, provenance, calibration, parity, layers."""
    from collections import Counter

    from snn_onnx import metadata as md
    from snn_onnx.load import load_onnx
    from snn_onnx import format_parity
    from snn_onnx.report import provenance

    proto = load_onnx(model)
    meta = md.read(proto)
    if as_json:
        meta = {**meta, **({"provenance": provenance.parse(meta["provenance"])} if "provenance" in meta else {})}
        click.echo(json.dumps(meta, indent=2, sort_keys=True))
        return
    ops = Counter(f"{n.domain + '.' if n.domain else ''}{n.op_type}" for n in proto.graph.node)
    click.echo(f"model: {model}")
    if "time_steps" not in meta:
        click.echo("not an snn-onnx SNN (no snn_onnx metadata): an ANN")
    else:
        neuron = meta.get("neuron", {})
        neuron_s = "multi-threshold" if meta.get("mode") == "transformer" else _neuron_text(neuron)
        click.echo(f"time steps T: {meta['time_steps']}   neuron: {neuron_s}   converted from: {meta.get('source', '?')}")
        for line in provenance.lines(meta):
            click.echo(line)
        events = [k for k, v in meta.get("inputs", {}).items() if v == "event"]
        if events:
            click.echo(f"event inputs (one frame per step, [T*B, ...] or [T, B, ...]): {', '.join(events)}")
        cal = meta.get("calibration", {})
        click.echo(f"calibration: {cal.get('method')} on {cal.get('num_samples')} samples, "
                   f"per-channel={cal.get('per_channel')}; {cal.get('sites_from_ann', 0)} thresholds from the ANN (QCFS/clip)")
        corr = cal.get("corrections")
        if corr:  # docs/calibration.md
            done = [k for k in ("shift", "bias", "potential") if corr.get(k)]
            click.echo(f"corrections: {', '.join(done)} at {len(corr.get('sites', []))} neurons"
                       + (f" (measured on {corr['samples']} samples)" if corr.get("bias") or corr.get("potential") else ""))
        for line in format_parity(meta.get("parity", {})):
            click.echo(line)
        prov = meta.get("provenance", {})
        if prov:
            click.echo("provenance: " + ", ".join(f"{k}: {v}" for k, v in sorted(prov.items())))
        if meta.get("exact_time_steps") is not None:
            exact = meta["exact_time_steps"]
            click.echo(f"exact at T = {exact} (ParaIF on staircases with L = {exact} levels)" if exact > 0 else
                       "no T is exact: the staircases have different numbers of levels")
        if meta.get("cleanup"):
            click.echo("clean-up: " + json.dumps(meta["cleanup"], sort_keys=True))
        sites = meta.get("sites", [])
        click.echo(f"spiking layers: {len(sites)}; compensated ops: {len(meta.get('compensated', []))}")
        if meta.get("mode"):
            blocks = meta.get("blocks", {}).get("blocks", [])
            kinds = Counter(b["kind"] for b in blocks)
            click.echo(f"mode: {meta['mode']}; compensated blocks: " + (", ".join(f"{k}×{v}" for k, v in sorted(kinds.items())) or "none"))
        for s in sites:
            th = s["threshold"]
            th_s = f"{th[0]:.4g}" if len(th) == 1 else f"per-channel[{len(th)}] {min(th):.3g}..{max(th):.3g}"
            if "scale_pos" in s:  # multi-threshold neuron
                sp, sn = s["scale_pos"], s["scale_neg"]
                sc = (f"s+={sp[0]:.4g} s-={sn[0]:.4g}" if len(sp) == 1 else
                      f"s+ per-channel[{len(sp)}] {min(sp):.3g}..{max(sp):.3g}")
                click.echo(f"  {s['site']:<48} {s['op']:<21} N={s['levels']} {sc} "
                           f"(p{s['percentile']:g}/p{s['lower_percentile']:g})")
                continue
            click.echo(f"  {s['site']:<40} {s['op']:<13} θ={th_s} ({s['threshold_source']})")
            if s.get("recognised_as"):
                click.echo(f"      recognised as {s['recognised_as']}")
        for line in signgd_cli.info_lines(proto):
            click.echo(line)
    click.echo("inputs: " + ", ".join(f"{i.name}{_dims(i)}" for i in proto.graph.input))
    click.echo("outputs: " + ", ".join(f"{o.name}{_dims(o)}" for o in proto.graph.output if not o.name.endswith("/spike_counts")))
    click.echo("ops: " + ", ".join(f"{k}×{v}" for k, v in sorted(ops.items())))


def _dims(v) -> str:
    dims = [d.dim_param or str(d.dim_value) for d in v.type.tensor_type.shape.dim]
    return f"[{', '.join(dims)}]"


@cli.command("eval")
@click.argument("model", required=False)
@click.option("--data", "data_source", default=None, help="Labelled data (default: digits for the example).")
@event_data.event_option
@click.option("-T", "--time-steps", "t_list", default="1,2,4,8,16,32", show_default=True, help="Comma-separated T values.")
@click.option("--neurons", default="if,paraif", show_default=True, help=f"Comma-separated, from {', '.join(NEURON_NAMES)}.")
@neuron_options
@click.option("--limit", type=click.IntRange(min=1), help="Evaluate on the first N test samples only.")
@_calib_options
@_model_options
@click.option("--json-out", type=click.Path(), help="Also write the table as JSON.")
@click.option("--force", is_flag=True, help="Overwrite an existing --json-out file.")
@click.option("--quiet", is_flag=True, help="No progress display.")
@click.option("--report", "report_dir", type=click.Path(), help="Also write a run folder per SNN run (energy, plots, HTML) under DIR.")
@energy_options
@_engine_option()
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--provider", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
              help="Shard the evaluation over Ray (pip install 'snn-onnx[ray]'): alone, a local cluster on this "
                   "machine; with an ADDRESS (auto, ray://head:10001), that cluster.")
@click.option("--workers", type=int, default=2, show_default=True, help="Ray actors (with --ray).")
@handle_errors
def eval_cmd(model, data_source, event_input, t_list, neurons, leak, reset, v_init, signed_eps, limit, calib_method,
             percentile, per_channel, num_calib, input_shape, num_classes, checkpoint, qcfs_levels, exporter, json_out,
             force, quiet, report_dir, e_ac, e_mac, engine, batch_size, provider, ray_address, workers):
    """ANN and SNN accuracy and ANN agreement for every T and neuron (default: the bundled
    digits example on its test split; thresholds calibrated on the train split). Options such
    as --leak go to the neurons that have them. ParaIF runs collapsed (--engine auto): a sweep
    costs about one ANN pass per T."""
    from snn_onnx import CalibrationConfig, files
    from snn_onnx.evaluate import evaluate

    if json_out:
        files.check_output_path(json_out, force, option="--json-out")
    elif force:
        raise click.UsageError("--force does not apply: it lets --json-out replace a file")
    if report_dir:
        check_folder(report_dir, "--report")
        from snn_onnx.energy import EnergyConfig

        EnergyConfig(e_ac_pj=e_ac, e_mac_pj=e_mac)  # refuses NaN / negative prices now, not after the runs
    elif event_input is not None:
        refuse(("e_ac", "e_mac"), "energy prices are for the run folders of --report (event data has no energy column)")
    ts = parse_time_steps(t_list)
    kinds = parse_neurons(neurons)
    cfgs = neuron_configs(kinds, leak, reset, v_init, signed_eps)
    model, is_example = _resolve_model_arg(model)
    kind = model_kind(model, is_example)
    check_export_options(kind, "the bundled example" if is_example else model)
    _check_calibration_options(calib_method)
    if event_input is not None and data_source is not None:
        raise click.UsageError("--data does not apply with --event-input: the event data is the test data")
    sequential = [k for k in kinds if k != "paraif"]
    if engine == "collapsed" and sequential:
        raise click.UsageError(f"--engine collapsed runs ParaIF networks only ({sequential[0]} spikes depend on the "
                               "order of their inputs); use --neurons paraif (or --engine auto)")
    ray_cfg = None
    if ray_address is not None:
        if report_dir:
            raise click.UsageError("--report writes run folders in this process; it cannot be combined with --ray")
        if event_input is not None:
            raise click.UsageError("--ray shards static test data; event data (--event-input) runs in this process")
        from snn_onnx.runtime.ray_eval import RayConfig, import_ray

        import_ray()  # says what to install before any work is done
        ray_cfg = RayConfig(address=None if ray_address == "local" else ray_address, workers=workers,
                            num_gpus=1.0 if provider == "cuda" else 0.0)
    elif workers != 2:
        raise click.UsageError("--workers applies to --ray only")
    if event_input is not None and engine == "collapsed":
        raise click.UsageError("--engine collapsed does not apply to event data (--event-input): it runs step by step")
    check_sources(data_source, event_input, checkpoint)
    progress = Progress(not quiet)
    with progress.step("export" if kind in ("timm", "factory") else "load"):
        ann = _get_ann(model, parse_shape(input_shape), num_classes, checkpoint, qcfs_levels, exporter)
    progress.close()
    name = None
    if event_input is not None:
        name = event_data.single_input(ann)
        test = event_data.load(event_input, "test", limit, ann)
        event_data.check_time_steps(test, ts)
        named = event_input in ("digits-events",)
        calib = event_data.load(event_input, "train", num_calib, ann) if named else test
    else:
        source = data_source or ("digits" if is_example else None)
        if source is None:
            raise click.UsageError("give --data (labelled data) or --event-input to evaluate a model other than the example")
        test = _load_data(source, "test", limit, ann)
        named = source == "digits"
        calib = _load_data(source, "train", num_calib, ann) if named else test
    if test.y is None:
        raise DataError(f"data '{test.name}' has no labels; eval needs labelled data")
    labels_fit(test.y, output_classes(ann), test.name)
    cal = CalibrationConfig(method=calib_method, percentile=percentile, per_channel=per_channel,
                            num_samples=num_calib)
    where = "the train split" if named else "the test samples themselves (the source has no train split)"
    click.echo(f"model: {model}\ndata: {test.name}, {len(test)} test samples; calibration on {min(len(calib), num_calib)} "
               f"samples of {where}", err=True)
    prov = _provenance(model, kind, is_example, checkpoint, qcfs_levels, getattr(calib, "name", None))
    on_run, written = (eval_run_writer(report_dir, model, is_example, ann, test, e_ac, e_mac, event_input=name,
                                       provenance=prov) if report_dir else (None, []))
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if provider == "cuda" else None
    n_rows = len(ts) * len(cfgs)
    with click.progressbar(length=n_rows, label="evaluating", file=sys.stderr, hidden=quiet) as bar:
        result = evaluate(ann, test if event_input else test.x, test.y, calib if event_input else calib.x,
                          time_steps=ts, neurons=cfgs, calibration=cal, on_step=lambda msg: bar.update(1),
                          on_run=on_run, event_input=name, engine=engine, ray=ray_cfg, batch_size=batch_size,
                          energy=None if event_input else _energy_cfg(e_ac, e_mac), providers=providers)
    click.echo(result.table())
    engines = sorted({r.engine for r in result.rows if r.engine})
    where = f" on Ray ({workers} workers)" if ray_cfg is not None else ""
    click.echo(f"engine: {', '.join(engines)}{where}", err=True)
    if report_dir:
        from snn_onnx.report import aggregate

        csv_path, png, _ = aggregate(report_dir)
        click.echo("\n".join(f"wrote {p}" for p in written) + f"\nwrote {csv_path} and {png}")
    if json_out:
        files.write_text(json_out, json.dumps({"model": model, "data": test.name, **result.as_dict()}, indent=2))
        click.echo(f"wrote {json_out}")


def _energy_cfg(e_ac: float, e_mac: float):
    from snn_onnx.energy import EnergyConfig

    return EnergyConfig(e_ac_pj=e_ac, e_mac_pj=e_mac)


register_report_commands(cli, handle_errors, {
    "resolve_model_arg": _resolve_model_arg, "get_ann": _get_ann, "load_data": _load_data, "parse_ints": _parse_ints,
    "calib_options": _calib_options, "model_options": _model_options, "provenance": _provenance,
    "check_calibration_options": _check_calibration_options, "check_applied": _check_applied,
    "engine_option": _engine_option,
})

register_interop_commands(cli, handle_errors)


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True}, add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@handle_errors
def bench(args):
    """CPU speed: the SNN vs T × ANN, the folded ANN and SpikingJelly (bench --help for options).
    Its report is written into the current folder (--out), never into the installed package."""
    from snn_onnx.bench.cpu import main as bench_main

    sys.exit(bench_main(list(args), default_out=Path.cwd() / "snn-onnx-bench.md"))


def main() -> None:
    cli(prog_name="snn-onnx")


if __name__ == "__main__":
    main()

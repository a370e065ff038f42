"""The ``snn-onnx`` command: a thin layer over the ``snn_onnx`` package's public API.

Errors the user can fix print one line (``error: ...``) and exit 1; ``--debug`` shows the
traceback instead.
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

from .correction_opts import correction_options
from .interop_cmds import register as register_interop_commands
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
        except SnnOnnxError as err:
            if debug:
                raise
            click.echo(f"error: {err}", err=True)
            sys.exit(1)
        except Exception as err:  # a bug of ours: still one clear line
            if debug:
                raise
            click.echo(f"error: internal error ({type(err).__name__}: {err}); rerun with --debug for the traceback", err=True)
            sys.exit(2)

    return wrapper


def _parse_ints(text: str | None, what: str) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        vals = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{what} must be comma-separated integers, got {text!r}") from None
    if not vals or any(v <= 0 for v in vals):
        raise click.BadParameter(f"{what} must be positive integers, got {text!r}")
    return vals


def _resolve_model_arg(model: str | None) -> tuple[str, bool]:
    if model in (None, EXAMPLE):
        return str(_example_path()), True
    return model, False


def _load_data(source: str, split: str, limit: int | None, ann, timm_name: str | None = None):
    from snn_onnx import data as data_mod
    from snn_onnx.conversion.pipeline import graph_input_names

    shape = _input_shape_of(ann)
    opts = {"timm_model": timm_name} if timm_name and Path(source).is_dir() else {}
    if source == "random":
        opts["seed"] = 0
        limit = limit or 64
    if Path(source).suffix.lower() == ".npz":
        opts["input_names"] = graph_input_names(ann)
    return data_mod.load(source, split=split, limit=limit, input_shape=shape, **opts)


def _input_shape_of(ann) -> tuple | None:
    from snn_onnx.conversion.pipeline import graph_input_names

    names = graph_input_names(ann)
    if len(names) != 1:
        return None
    inp = next(i for i in ann.graph.input if i.name == names[0])
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim)


def _get_ann(model: str, input_shape, num_classes, checkpoint, qcfs_levels, exporter):
    from snn_onnx.export import is_onnx_path, resolve_model

    if is_onnx_path(model):
        if checkpoint or qcfs_levels:
            raise click.UsageError("--checkpoint and --qcfs-levels apply to timm / module:factory models, not .onnx files")
        return resolve_model(model)
    from snn_onnx.export.torch_export import build_module, default_input_shape, export_module

    module = build_module(model, num_classes=num_classes, qcfs_levels=qcfs_levels, checkpoint=checkpoint)
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


class Progress:
    """A click progress bar per phase, on stderr."""

    def __init__(self, enabled: bool):
        self.enabled, self.bar, self.phase = enabled, None, None

    def __call__(self, phase: str, n: int, total: int) -> None:
        if not self.enabled:
            return
        if phase != self.phase:
            self.close()
            self.phase = phase
            self.bar = click.progressbar(length=total, label=phase, file=sys.stderr)
            self.bar.__enter__()
        self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.version_option(snn_onnx.__version__, prog_name="snn-onnx")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Convert ANNs to spiking neural networks and run them in ONNX Runtime."""
    ctx.ensure_object(dict)["debug"] = debug
    if not debug:  # library warnings as one line each, like errors
        warnings.showwarning = lambda message, category, *a, **k: click.echo(f"warning: {message}", err=True)


def _model_options(fn):
    for opt in reversed(
        [
            click.option("--input-shape", help="Input shape without batch, e.g. 3,32,32 (timm / module models)."),
            click.option("--num-classes", type=int, help="Classes of a timm model's head."),
            click.option("--checkpoint", type=click.Path(), help="State dict for a timm / module:factory model."),
            click.option("--qcfs-levels", type=int, help="Replace ReLUs by QCFS with L levels before export."),
            click.option("--exporter", type=click.Choice(["auto", "legacy", "dynamo"]), default="auto", show_default=True, help="torch.onnx exporter."),
        ]
    ):
        fn = opt(fn)
    return fn


def _calib_options(fn):
    for opt in reversed(
        [
            click.option("--calib-method", type=click.Choice(["max", "percentile", "mse", "ltb"]), default="max",
                         show_default=True, help="ReLU thresholds: max, percentile, least squared error at T (mse), "
                         "local threshold balancing (ltb); docs/fidelity.md."),
            click.option("--percentile", type=float, default=99.99, show_default=True),
            click.option("--per-channel", is_flag=True, help="One threshold per channel."),
            click.option("--num-calib", type=int, default=256, show_default=True, help="Calibration samples."),
        ]
    ):
        fn = opt(fn)
    return fn


def _transformer_options(fn):
    for opt in reversed(
        [
            click.option("--mode", type=click.Choice(["auto", "cnn", "transformer"]), default="auto", show_default=True,
                         help="cnn: ReLU/QCFS -> IF/ParaIF; transformer: multi-threshold neurons on Linear/MatMul inputs."),
            click.option("--levels", type=int, default=8, show_default=True, help="Multi-threshold neuron levels N (transformer mode)."),
            click.option("--mt-percentile", type=float, default=99.0, show_default=True,
                         help="Upper calibration percentile of the multi-threshold neurons."),
            click.option("--mt-lower-percentile", type=float, default=None, help="Lower percentile (default 100 - --mt-percentile)."),
            click.option("--anchor-level", type=int, default=2, show_default=True,
                         help="Level k whose value s*2^k is the calibrated percentile."),
            click.option("--mt-sites", type=click.Choice(["all", "linear"]), default="all", show_default=True,
                         help="Neurons on Linear inputs and attention operands (all) or Linear inputs only."),
            click.option("--fused", is_flag=True, help="Use fused compensation kernels where they exist (transformer mode)."),
        ]
    ):
        fn = opt(fn)
    return fn


def _mt_config(levels, percentile, lower, anchor, sites, per_channel):
    from snn_onnx.conversion.transformer import MultiThresholdConfig

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


@cli.command()
@click.argument("model", required=False)
@click.option("-o", "--output", type=click.Path(), help="Where to write the SNN (default: <model>.snn.onnx in the current folder).")
@click.option("-T", "--time-steps", type=int, default=None, help="Time steps T (default: the example's L=8, else 8).")
@click.option("--neuron", type=click.Choice(["paraif", "if"]), default="paraif", show_default=True)
@click.option("--data", "data_source", default=None, help="Calibration data: digits, a .npz, an image folder, or random (default: digits for the example, random otherwise).")
@_calib_options
@_model_options
@_transformer_options
@click.option("--no-spike-counts", is_flag=True, help="Omit the spike-count outputs.")
@click.option("--no-per-step", is_flag=True, help="Omit the per-step running-mean outputs.")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--no-parity-gate", is_flag=True,
              help="Write the SNN even when it should reproduce the ANN exactly (ParaIF, T = L) and does not.")
@click.option("--explain", is_flag=True, help="List every activation the rules looked at and did not take, and why.")
@correction_options
@handle_errors
def convert(model, output, time_steps, neuron, data_source, calib_method, percentile, per_channel, num_calib,
            input_shape, num_classes, checkpoint, qcfs_levels, exporter, mode, levels, mt_percentile,
            mt_lower_percentile, anchor_level, mt_sites, fused, no_spike_counts, no_per_step, force, quiet,
            no_parity_gate, explain, corrections):
    """Convert MODEL (an .onnx file, a timm model name, module:factory or a Hugging Face model
    folder; default: the bundled digits example) into a spiking ONNX model.

    CNNs (ReLU / QCFS) get IF or ParaIF neurons; transformers (--mode auto detects them) get
    multi-threshold neurons on every Linear / MatMul input and compensated Softmax, LayerNorm,
    GELU and attention products (docs/transformers.md)."""
    from snn_onnx.conversion.calibrate import CalibrationConfig
    from snn_onnx.conversion.pipeline import check_output_path, convert as do_convert
    from snn_onnx.export.hf_export import is_hf_folder

    model, is_example = _resolve_model_arg(model)
    if time_steps is None:
        time_steps = 8
    hf = is_hf_folder(model)
    if output is None:
        if hf:
            stem = Path(model).resolve().name
        else:
            stem = Path(model).stem if model.endswith(".onnx") else model.replace(":", "_").replace("/", "_")
        output = f"{stem}.T{time_steps}.{'mt' if mode == 'transformer' or hf else neuron}.snn.onnx"
    check_output_path(output, force)  # refuse before spending time on export and calibration
    ann = _get_ann(model, _parse_ints(input_shape, "--input-shape"), num_classes, checkpoint, qcfs_levels, exporter)
    if hf:  # a text encoder: sentences (the bundled calibration set, or --data FILE.txt)
        source = data_source or "sentences"
        ds = _load_sentences(data_source) if data_source else None
    else:
        source = data_source or ("digits" if is_example else "random")
        ds = _load_data(source, "train", num_calib, ann, timm_name=None if is_example or ":" in model else model)
    cal = CalibrationConfig(method=calib_method, percentile=percentile, per_channel=per_channel, num_samples=num_calib)
    mt = _mt_config(levels, mt_percentile, mt_lower_percentile, anchor_level, mt_sites, per_channel)
    progress = Progress(not quiet)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the summary prints them
            res = do_convert(ann, time_steps=time_steps, neuron=neuron, data=ds, calibration=cal, output=output,
                             force=force, spike_counts=not no_spike_counts, per_step=not no_per_step,
                             on_progress=progress, source_name=model, mode=mode, multi_threshold=mt, fused=fused,
                             parity_gate=not no_parity_gate, data_source=source, corrections=corrections)
    finally:
        progress.close()
    if explain:
        click.echo("activations not turned into neurons:" if res.explain else "every activation chain became a neuron")
        for line in res.explain:
            click.echo(f"  {line}")
    if source == "random":
        click.echo("note: calibrated and checked on random inputs (give --data for real samples)", err=True)
    click.echo(res.summary())
    click.echo(f"conversion took {res.seconds['total']:.1f} s (calibration {res.seconds['calibrate']:.1f} s)")


@cli.command()
@click.argument("model", type=click.Path())
@click.option("--input", "input_path", type=click.Path(), required=True, help=".npy (single input) or .npz (arrays by input name).")
@click.option("--output", "output_path", type=click.Path(), help="Write outputs and spike counts to this .npz.")
@click.option("--provider", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--force", is_flag=True, help="Overwrite an existing --output file.")
@handle_errors
def run(model, input_path, output_path, provider, force):
    """Run a converted SNN on inputs from a file and print its outputs and firing rates."""
    from snn_onnx.conversion.pipeline import check_output_path

    if output_path:
        check_output_path(output_path, force)
    p = Path(input_path)
    if not p.exists():
        raise DataError(f"input file not found: {p}")
    try:
        loaded = np.load(p, allow_pickle=False)
    except Exception as err:
        raise DataError(f"cannot read input file {p}: {err}") from None
    inputs = dict(loaded) if isinstance(loaded, np.lib.npyio.NpzFile) else loaded
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if provider == "cuda" else ["CPUExecutionProvider"]
    sess = snn_onnx.Session(model, providers=providers)
    out = sess.run(inputs)
    for name, v in out.outputs.items():
        line = f"{name}: shape {list(v.shape)}"
        if v.ndim == 2 and v.shape[1] > 1:
            line += f", argmax {v.argmax(1)[:16].tolist()}{' …' if len(v) > 16 else ''}"
        click.echo(line)
    rates = out.firing_rates()
    if rates:
        click.echo(f"firing rate (spikes per neuron per step), mean over {len(rates)} layers: {np.mean(list(rates.values())):.4f}")
    if output_path:
        arrays = {**out.outputs, **{f"per_step/{k}": v for k, v in out.per_step.items()},
                  **{f"spike_counts/{k}": v for k, v in out.spike_counts.items()}}
        np.savez(output_path, **arrays)
        click.echo(f"wrote {output_path}")


@cli.command()
@click.argument("model", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the metadata as JSON.")
@handle_errors
def info(model, as_json):
    """Show how a converted SNN was made: T, neurons, calibration, parity, layers."""
    from collections import Counter

    from snn_onnx import metadata as md
    from snn_onnx.conversion.load import load_onnx
    from snn_onnx.conversion.validate import format_parity

    proto = load_onnx(model)
    meta = md.read(proto)
    if as_json:
        click.echo(json.dumps(meta, indent=2, sort_keys=True))
        return
    ops = Counter(f"{n.domain + '.' if n.domain else ''}{n.op_type}" for n in proto.graph.node)
    click.echo(f"model: {model}")
    if "time_steps" not in meta:
        click.echo("not an snn-onnx SNN (no snn_onnx metadata): an ANN")
    else:
        neuron = meta.get("neuron", {})
        click.echo(f"time steps T: {meta['time_steps']}   neuron: {neuron.get('kind')}   converted from: {meta.get('source', '?')}")
        cal = meta.get("calibration", {})
        click.echo(f"calibration: {cal.get('method')} on {cal.get('num_samples')} samples ({cal.get('data')}), "
                   f"per-channel={cal.get('per_channel')}; {cal.get('sites_from_ann', 0)} thresholds from the ANN (QCFS/clip)")
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
    click.echo("inputs: " + ", ".join(f"{i.name}{_dims(i)}" for i in proto.graph.input))
    click.echo("outputs: " + ", ".join(f"{o.name}{_dims(o)}" for o in proto.graph.output if not o.name.endswith("/spike_counts")))
    click.echo("ops: " + ", ".join(f"{k}×{v}" for k, v in sorted(ops.items())))


def _dims(v) -> str:
    dims = [d.dim_param or str(d.dim_value) for d in v.type.tensor_type.shape.dim]
    return f"[{', '.join(dims)}]"


@cli.command("eval")
@click.argument("model", required=False)
@click.option("--data", "data_source", default=None, help="Data source (default: digits for the example).")
@click.option("-T", "--time-steps", "t_list", default="1,2,4,8,16,32", show_default=True, help="Comma-separated T values.")
@click.option("--neurons", default="if,paraif", show_default=True, help="Comma-separated neuron types.")
@click.option("--limit", type=int, help="Evaluate on the first N test samples only.")
@_calib_options
@_model_options
@click.option("--json-out", type=click.Path(), help="Also write the table as JSON.")
@click.option("--force", is_flag=True, help="Overwrite an existing --json-out file.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--report", "report_dir", type=click.Path(), help="Also write a run folder per SNN run (energy, plots, HTML) under DIR.")
@energy_options
@handle_errors
def eval_cmd(model, data_source, t_list, neurons, limit, calib_method, percentile, per_channel, num_calib,
             input_shape, num_classes, checkpoint, qcfs_levels, exporter, json_out, force, quiet, report_dir, e_ac, e_mac):
    """ANN and SNN accuracy and ANN agreement for every T and neuron type (default: the bundled
    digits example on its test split; thresholds calibrated on the train split)."""
    from snn_onnx.conversion.calibrate import CalibrationConfig
    from snn_onnx.conversion.pipeline import check_output_path
    from snn_onnx.evaluate import evaluate

    if json_out:
        check_output_path(json_out, force)
    model, is_example = _resolve_model_arg(model)
    ts = _parse_ints(t_list, "--time-steps")
    kinds = [k.strip() for k in neurons.split(",") if k.strip()]
    bad = [k for k in kinds if k not in ("if", "paraif")]
    if bad or not kinds:
        raise click.BadParameter(f"--neurons takes if and/or paraif, got {neurons!r}")
    ann = _get_ann(model, _parse_ints(input_shape, "--input-shape"), num_classes, checkpoint, qcfs_levels, exporter)
    source = data_source or ("digits" if is_example else None)
    if source is None:
        raise click.UsageError("give --data (labelled data) to evaluate a model other than the example")
    test = _load_data(source, "test", limit, ann)
    calib = _load_data(source, "train", num_calib, ann) if source == "digits" else test
    cal = CalibrationConfig(method=calib_method, percentile=percentile, per_channel=per_channel, num_samples=num_calib)
    steps = (len(ts) if "if" in kinds else 0) + len(ts) * sum(k != "if" for k in kinds)
    click.echo(f"model: {model}\ndata: {test.name}, {len(test.x)} test samples; calibration on {len(calib.x)} samples", err=True)
    on_run, written = eval_run_writer(report_dir, model, is_example, ann, test, e_ac, e_mac) if report_dir else (None, [])
    with click.progressbar(length=steps, label="evaluating", file=sys.stderr, hidden=quiet) as bar:
        result = evaluate(ann, test.x, test.y, calib.x, time_steps=ts, neurons=kinds, calibration=cal,
                          on_step=lambda msg: bar.update(1), on_run=on_run)
    click.echo(result.table())
    if report_dir:
        from snn_onnx.report import aggregate

        csv_path, png, _ = aggregate(report_dir)
        click.echo("\n".join(f"wrote {p}" for p in written) + f"\nwrote {csv_path} and {png}")
    if json_out:
        Path(json_out).write_text(json.dumps({"model": model, "data": test.name, **result.as_dict()}, indent=2))
        click.echo(f"wrote {json_out}")


register_report_commands(cli, handle_errors, {
    "resolve_model_arg": _resolve_model_arg, "get_ann": _get_ann, "load_data": _load_data, "parse_ints": _parse_ints,
    "calib_options": _calib_options, "model_options": _model_options,
})

register_interop_commands(cli, handle_errors)


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True}, add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench(args):
    """CPU speed: the SNN vs T × ANN, the folded ANN and SpikingJelly (bench --help for options)."""
    from snn_onnx.bench.cpu import main as bench_main

    sys.exit(bench_main(list(args)))


def main() -> None:
    cli(prog_name="snn-onnx")


if __name__ == "__main__":
    main()

"""``snn-onnx report`` and ``snn-onnx runs aggregate``, and the run folders of ``eval --report``.

Thin: the work is done by ``snn_onnx.report`` and ``snn_onnx.energy``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

import click
import numpy as np


def energy_options(fn):
    for opt in reversed(
        [
            click.option("--e-ac", type=float, default=0.9, show_default=True, help="Energy per accumulate (SOP), pJ."),
            click.option("--e-mac", type=float, default=4.6, show_default=True, help="Energy per multiply-accumulate, pJ."),
        ]
    ):
        fn = opt(fn)
    return fn


def _energy_config(e_ac: float, e_mac: float):
    from snn_onnx.energy import EnergyConfig

    return EnergyConfig(e_ac_pj=e_ac, e_mac_pj=e_mac)


def _model_label(model: str, is_example: bool) -> str:
    if is_example:
        return "digits_qcfs_cnn"
    return Path(model).stem if model.endswith(".onnx") else model.replace(":", "_").replace("/", "_")


def eval_run_writer(runs_dir: str, model: str, is_example: bool, ann, test, e_ac: float, e_mac: float) -> tuple[Callable, list[Path]]:
    """A callback for ``snn_onnx.evaluate.evaluate(on_run=...)`` that writes one run folder per
    converted SNN it runs (IF: one at T_max, with its anytime curve; ParaIF: one per T)."""
    from snn_onnx.report import ann_outputs, summarize
    from snn_onnx.report.runs import write_run

    written: list[Path] = []
    cfg = _energy_config(e_ac, e_mac)
    label = _model_label(model, is_example)
    output = ann.graph.output[0].name
    ann_logits = ann_outputs(ann, test.x, output)

    def on_run(neuron: str, t: int, conv, per_step: np.ndarray, counts: dict[str, np.ndarray]) -> None:
        from snn_onnx.conversion.pipeline import as_inputs

        run = summarize(conv.model, per_step, counts, len(test.x), as_inputs(test.x[:1], conv.model), labels=test.y,
                        ann_logits=ann_logits, energy=cfg,
                        config={"name": f"{label}-{neuron}-T{t}", "model": model, "data": {"name": test.name}})
        written.append(write_run(run, runs_dir))

    return on_run, written


def register(cli: click.Group, handle_errors: Callable, helpers: dict[str, Any]) -> None:
    """Add ``report`` and ``runs`` to the CLI group. ``helpers``: functions of main.py the
    commands share (model resolution, data loading, option decorators)."""
    resolve_model_arg = helpers["resolve_model_arg"]
    get_ann = helpers["get_ann"]
    load_data = helpers["load_data"]
    parse_ints = helpers["parse_ints"]
    calib_options = helpers["calib_options"]
    model_options = helpers["model_options"]
    engine_option = helpers["engine_option"]

    @cli.command("report")
    @click.argument("model", required=False)
    @click.option("--data", "data_source", default=None, help="Labelled data (default: digits for the example).")
    @click.option("--limit", type=int, help="Use the first N test samples only.")
    @click.option("-T", "--time-steps", type=int, default=8, show_default=True, help="Time steps T (anytime accuracy for every t <= T).")
    @click.option("--neuron", type=click.Choice(["if", "paraif"]), default="if", show_default=True)
    @click.option("--ann", "ann_path", type=click.Path(), help="The ANN of an already converted MODEL (for agreement and accuracy).")
    @click.option("--runs-dir", default="runs", show_default=True, type=click.Path(), help="Where run folders go.")
    @click.option("--name", help="Run name (default: <model>-<neuron>-T<T>).")
    @energy_options
    @click.option("--batch-size", type=int, default=64, show_default=True)
    @click.option("--no-tensorboard", is_flag=True, help="Do not write TensorBoard event files.")
    @calib_options
    @model_options
    @engine_option()
    @click.option("--quiet", is_flag=True, help="Print only the folder written.")
    @handle_errors
    def report_cmd(model, data_source, limit, time_steps, neuron, ann_path, runs_dir, name, e_ac, e_mac, batch_size,
                   no_tensorboard, calib_method, percentile, per_channel, num_calib, input_shape, num_classes, checkpoint,
                   qcfs_levels, exporter, engine, quiet):
        """Convert MODEL (default: the bundled digits example), run it on labelled test data and
        write a run folder: config.json, summary.json, CSVs, PNG plots, report.html and
        TensorBoard events; print the headline numbers."""
        from snn_onnx import metadata as md
        from snn_onnx.conversion.calibrate import CalibrationConfig
        from snn_onnx.conversion.load import load_onnx
        from snn_onnx.errors import DataError
        from snn_onnx.report import full_report, run_report

        if time_steps < 1:
            raise click.BadParameter("must be >= 1", param_hint="--time-steps")
        model, is_example = resolve_model_arg(model)
        cfg = _energy_config(e_ac, e_mac)
        snn = None
        if model.endswith(".onnx") and Path(model).exists() and "time_steps" in md.read(load_onnx(model)):
            snn = load_onnx(model)  # already an SNN: measure it as it is
            ann = load_onnx(ann_path) if ann_path else None
            time_steps, neuron = md.read(snn)["time_steps"], md.read(snn).get("neuron", {}).get("kind", neuron)
        else:
            if ann_path:
                raise click.UsageError("--ann is for a MODEL that is already a converted SNN")
            ann = get_ann(model, parse_ints(input_shape, "--input-shape"), num_classes, checkpoint, qcfs_levels, exporter)
        source = data_source or ("digits" if is_example else None)
        if source is None:
            raise click.UsageError("give --data (labelled data) to report on a model other than the example")
        test = load_data(source, "test", limit, ann if ann is not None else snn)
        if test.y is None:
            raise DataError(f"data '{test.name}' has no labels; the report needs labelled data")
        calib = load_data(source, "train", num_calib, ann) if source == "digits" and snn is None else test
        label = _model_label(model, is_example)
        run_name = name or f"{label}-{neuron}-T{time_steps}"
        if not quiet:
            click.echo(f"model: {model}\ndata: {test.name}, {len(test.x)} samples", err=True)
        cal = CalibrationConfig(method=calib_method, percentile=percentile, per_channel=per_channel, num_samples=num_calib)
        run, folder = run_report(
            ann, test.x, test.y, calib.x, time_steps=time_steps, neuron=neuron, calibration=cal, energy=cfg,
            runs_dir=runs_dir, name=run_name, batch_size=batch_size, tensorboard=not no_tensorboard, snn=snn, engine=engine,
            config={"model": "bundled example digits_qcfs_cnn.onnx" if is_example else model, "data": {"source": source, "name": test.name, "split": "test", "limit": limit},
                    "command": " ".join(["snn-onnx", *sys.argv[1:]])},
        )
        if not quiet:
            click.echo(full_report(run))
            click.echo("")
        click.echo(f"wrote {folder} (open {folder / 'report.html'})")

    @cli.group("runs")
    def runs_group():
        """Work with run folders (runs/<name>/<timestamp>/)."""

    @runs_group.command("aggregate")
    @click.option("--runs-dir", default="runs", show_default=True, type=click.Path(), help="The runs folder.")
    @handle_errors
    def aggregate_cmd(runs_dir):
        """Write <runs-dir>/runs.csv (one row per run) and <runs-dir>/dashboard.png (accuracy
        against energy across runs)."""
        from snn_onnx.report import aggregate

        csv_path, png, n = aggregate(runs_dir)
        click.echo(f"{n} runs: wrote {csv_path} and {png}")

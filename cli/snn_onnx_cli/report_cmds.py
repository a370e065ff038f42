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


def eval_run_writer(runs_dir: str, model: str, is_example: bool, ann, test, e_ac: float, e_mac: float,
                    event_input: str | None = None, provenance: dict | None = None) -> tuple[Callable, list[Path]]:
    """A callback for ``snn_onnx.evaluate.evaluate(on_run=...)`` that writes one run folder per
    converted SNN it runs (sequential neurons: one at T_max, with its anytime curve; ParaIF and
    event data: one per T). ``test``: a dataset, or event data with ``event_input``."""
    from snn_onnx.report import ann_outputs, summarize
    from snn_onnx.report.measure import first_sample
    from snn_onnx.report.runs import write_run

    written: list[Path] = []
    cfg = _energy_config(e_ac, e_mac)
    label = _model_label(model, is_example)
    output = ann.graph.output[0].name
    static_logits = None if event_input else ann_outputs(ann, test.x, output)

    def on_run(neuron: str, t: int, conv, per_step: np.ndarray, counts: dict[str, np.ndarray]) -> None:
        from snn_onnx import as_inputs

        if event_input:
            frames = test.frames(t)
            ann_logits = ann_outputs(ann, {event_input: frames.mean(axis=0)}, output)
            sample = first_sample({event_input: frames}, {event_input: "event"})
        else:
            ann_logits, sample = static_logits, as_inputs(test.x[:1], conv.model)
        run = summarize(conv.model, per_step, counts, len(test), sample, labels=test.y,
                        ann_logits=ann_logits, energy=cfg,
                        config={"name": f"{label}-{neuron}-T{t}", "model": model, "data": {"name": test.name},
                                **({"provenance": provenance} if provenance else {})})
        written.append(write_run(run, runs_dir))

    return on_run, written


def register(cli: click.Group, handle_errors: Callable, helpers: dict[str, Any]) -> None:
    """Add ``report`` and ``runs`` to the CLI group. ``helpers``: functions of main.py the
    commands share (model resolution, data loading, option decorators)."""
    from . import event_data
    from .options import (
        CALIB_METHOD_OPTIONS, EXPORT_OPTIONS, NEURON_NAMES, NEURON_OPTIONS, TIME_STEPS, check_export_options,
        check_folder, check_sources, labels_fit, model_kind, neuron_config, neuron_options, output_classes, parse_shape,
        refuse,
    )
    from .progress import Progress

    resolve_model_arg = helpers["resolve_model_arg"]
    get_ann = helpers["get_ann"]
    load_data = helpers["load_data"]
    calib_options = helpers["calib_options"]
    model_options = helpers["model_options"]
    provenance_of = helpers["provenance"]
    check_calibration_options = helpers["check_calibration_options"]
    check_applied = helpers["check_applied"]
    engine_option = helpers["engine_option"]

    @cli.command("report")
    @click.argument("model", required=False)
    @click.option("--data", "data_source", default=None,
                  help="Test data (default: digits for the example); without labels (e.g. random) the report "
                       "shows agreement with the ANN, no accuracy.")
    @event_data.event_option
    @click.option("--limit", type=click.IntRange(min=1), help="Use the first N test samples only.")
    @click.option("-T", "--time-steps", type=TIME_STEPS, default=8, show_default=True,
                  help="Time steps T (anytime accuracy for every t <= T).")
    @click.option("--neuron", type=click.Choice(NEURON_NAMES), default=None, help="Spiking neuron (default if).")
    @neuron_options
    @click.option("--ann", "ann_path", type=click.Path(), help="The ANN of an already converted MODEL (for agreement and accuracy).")
    @click.option("--runs-dir", default="runs", show_default=True, type=click.Path(), help="Where run folders go.")
    @click.option("--name", help="Run name (default: <model>-<neuron>-T<T>).")
    @energy_options
    @click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
    @click.option("--no-tensorboard", is_flag=True, help="Do not write TensorBoard event files.")
    @click.option("--potentials", is_flag=True,
                  help="Also record the neurons' membrane potentials: per-layer histograms and the fraction near "
                       "threshold (plots, potentials.csv, TensorBoard PotentialHist/ and PotentialNearThresh/).")
    @calib_options
    @model_options
    @engine_option()
    @click.option("--quiet", is_flag=True, help="Print only the folder written.")
    @handle_errors
    def report_cmd(model, data_source, event_input, limit, time_steps, neuron, leak, reset, v_init, signed_eps, ann_path,
                   runs_dir, name, e_ac, e_mac, batch_size, no_tensorboard, potentials, calib_method, percentile, per_channel,
                   num_calib, input_shape, num_classes, checkpoint, qcfs_levels, exporter, engine, quiet):
        """Convert MODEL (default: the bundled digits example), run it on test data and write a
        run folder: config.json, summary.json, CSVs, PNG plots, report.html and TensorBoard
        events; print the headline numbers. MODEL may be an SNN converted already."""
        from snn_onnx import metadata as md
        from snn_onnx import CalibrationConfig
        from snn_onnx.load import load_onnx
        from snn_onnx.report import full_report, provenance, run_report

        model, is_example = resolve_model_arg(model)
        kind = model_kind(model, is_example)
        cfg = _energy_config(e_ac, e_mac)
        check_calibration_options(calib_method)
        if potentials and engine == "collapsed":
            raise click.UsageError("--potentials needs --engine steps (or auto): the collapsed engine has no "
                                   "membrane potential per step")
        if event_input is not None and data_source is not None:
            raise click.UsageError("--data does not apply with --event-input: the event data is the test data")
        check_folder(runs_dir, "--runs-dir")
        check_sources(data_source, event_input, checkpoint)
        snn = None
        if kind == "onnx" and Path(model).exists() and "time_steps" in md.read(load_onnx(model)):
            snn = load_onnx(model)  # already an SNN: measure it as it is
            meta = md.read(snn)
            refuse(NEURON_OPTIONS + CALIB_METHOD_OPTIONS + ("per_channel", "num_calib", "time_steps") + EXPORT_OPTIONS,
                   f"{model} is converted already (T={meta['time_steps']}, {meta.get('neuron', {}).get('kind', '?')})")
            ann = load_onnx(ann_path) if ann_path else None
            time_steps = meta["time_steps"]
            neuron_kind = meta.get("neuron", {}).get("kind", "?") if meta.get("mode") != "transformer" else "mt"
            prov = provenance.parse(meta.get("provenance", {}))
        else:
            if ann_path:
                raise click.UsageError("--ann is for a MODEL that is already a converted SNN")
            check_export_options(kind, "the bundled example" if is_example else model)
            neuron_cfg = neuron_config(neuron or "if", leak, reset, v_init, signed_eps)
            neuron_kind = neuron_cfg.kind
            progress = Progress(not quiet)
            with progress.step("export" if kind in ("timm", "factory", "hf") else "load"):
                ann = get_ann(model, parse_shape(input_shape), num_classes, checkpoint, qcfs_levels, exporter)
            progress.close()
        ref = ann if ann is not None else snn
        event_name = None
        if event_input is not None:
            event_name = event_data.single_input(ref)
            test = event_data.load(event_input, "test", limit, ref)
            event_data.check_time_steps(test, [time_steps])
            if snn is not None and md.read(snn).get("inputs", {}).get(event_name) != "event":
                raise click.UsageError(f"--event-input does not apply: {model} takes '{event_name}' as a static input "
                                       "(convert it with --event-input)")
            named = event_input in ("digits-events",)
            calib = event_data.load(event_input, "train", num_calib, ann) if named and snn is None else test
            test_x = {event_name: test.frames(time_steps)}
            calib_x = event_data.calibration_frames(calib, time_steps, event_name) if snn is None else None
            source = test.name
        else:
            source = data_source or ("digits" if is_example else None)
            if source is None:
                raise click.UsageError("give --data (test data; 'random' for a structural check) or --event-input to "
                                       "report on a model other than the example")
            test = load_data(source, "test", limit, ref)
            calib = load_data(source, "train", num_calib, ann) if source == "digits" and snn is None else test
            test_x, calib_x = test.x, calib.x
        labels_fit(test.y, output_classes(ref), test.name)
        if snn is None:
            calib_name = getattr(calib, "name", source)
            prov = provenance_of(model, kind, is_example, checkpoint, qcfs_levels,
                                 "random" if source == "random" else calib_name)
        report_prov = dict(prov)
        if source == "random":
            report_prov["test_data"] = "random inputs (seed 0), no labels: agreement with the ANN only"
        label = _model_label(model, is_example)
        if not quiet:
            click.echo(f"model: {model}\ndata: {test.name}, {len(test)} samples", err=True)
        progress = Progress(not quiet)
        try:
            if snn is None:  # convert here, so that options the chosen mode ignores are refused first
                from snn_onnx import convert

                cal = CalibrationConfig(method=calib_method, percentile=percentile, per_channel=per_channel,
                                        num_samples=num_calib)
                with progress.step("convert"):
                    res = convert(ann, time_steps=time_steps, neuron=neuron_cfg, data=calib_x, calibration=cal,
                                  parity_samples=16, event_inputs=(event_name,) if event_name else (),
                                  on_progress=progress, source_name=model)
                check_applied(res)
                provenance.write(res.model, prov)
                snn = res.model
                neuron_kind = "mt" if res.mode == "transformer" else neuron_cfg.kind
            run_name = name or f"{label}-{neuron_kind}-T{time_steps}"
            with progress.step("run and measure"):
                run, folder = run_report(
                    ann, test_x, test.y, None, time_steps=time_steps, calibration=None, energy=cfg, runs_dir=runs_dir,
                    name=run_name, batch_size=batch_size, tensorboard=not no_tensorboard, snn=snn, potentials=potentials,
                    engine=engine,
                    config={"model": "bundled example digits_qcfs_cnn.onnx" if is_example else model,
                            "data": {"source": source, "name": test.name, "split": "test", "limit": limit},
                            "provenance": report_prov, "command": " ".join(["snn-onnx", *sys.argv[1:]])},
                )
        finally:
            progress.close()
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
        against energy and against spikes per sample, across runs)."""
        from snn_onnx.report import aggregate

        csv_path, png, n = aggregate(runs_dir)
        click.echo(f"{n} runs: wrote {csv_path} and {png}")

"""``snn-onnx export-nir``, ``import-nir`` and ``check``: thin over ``snn_onnx.interop``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import click
import numpy as np

from snn_onnx.errors import DataError


def _check_output(path: str, force: bool, option: str = "--output") -> Path:
    from snn_onnx import files

    return files.check_output_path(path, force, option=option)


def _write_atomic(out: Path, write: Callable[[str], None]) -> None:
    from snn_onnx import files

    files.atomic_write(out, write)


# --dt and the tolerances: a finite positive step, finite non-negative tolerances
DT = click.FloatRange(min=0, min_open=True, max=1e6)
TOLERANCE = click.FloatRange(min=0, max=1e30)


def _is_example(snn) -> bool:
    from snn_onnx_models import example_model_path

    return str(snn.metadata.get("source", "")) == str(example_model_path())


def _samples(snn, source: str | None, n: int) -> tuple[np.ndarray, str]:
    """Static inputs [n, ...] for a single-input SNN: digits for the bundled example,
    seeded random inputs otherwise (said in the output)."""
    from snn_onnx import data as data_mod

    if len(snn.input_kinds) != 1:
        raise DataError(f"{snn.path} has inputs {list(snn.input_kinds)}; only single-input SNNs are checked from the CLI")
    name = next(iter(snn.input_kinds))
    if snn.input_kinds[name] != "static":
        raise DataError(f"input '{name}' is an event input (one frame per step); give static inputs to check")
    source = source or ("digits" if _is_example(snn) else "random")
    shape = (None, *snn.shapes[name])
    opts = {"seed": 0} if source == "random" else {}
    ds = data_mod.load(source, split="train", limit=n, input_shape=shape, **opts)
    return np.asarray(ds.x, np.float32), f"{ds.name if hasattr(ds, 'name') else source} ({len(ds.x)} samples)"


def _lossy_agreement(snn, exp, x: np.ndarray) -> dict[str, Any]:
    from snn_onnx.interop.nir_sim import simulate_nir
    from snn_onnx.interop.trace import trace_snn

    T = snn.time_steps
    ours = trace_snn(snn, x)
    run = simulate_nir(exp.graph, {k: np.broadcast_to(x, (T,) + x.shape) for k in exp.inputs}, exp.dt)
    layers = {}
    for ne in exp.neurons:
        a, b = ours.spikes[ne.onnx_node], run.spikes[ne.nir_node].reshape(ours.spikes[ne.onnx_node].shape)
        layers[ne.onnx_node] = {"spike_agreement": float(np.mean(a == b)), "spikes_ours": int(np.count_nonzero(a)),
                                "spikes_nir": int(np.count_nonzero(b))}
    outs = {}
    for k, name in exp.outputs.items():
        m_ours, m_nir = ours.outputs[name].mean(0), run.outputs[k].reshape(ours.outputs[name].shape).mean(0)
        outs[name] = {"max_abs_diff": float(np.max(np.abs(m_ours - m_nir))),
                      "argmax_agreement": float(np.mean(m_ours.argmax(-1) == m_nir.argmax(-1))) if m_ours.ndim == 2 else None}
    return {"layers": layers, "outputs": outs}


def register(cli: click.Group, handle_errors: Callable) -> None:
    """Add ``export-nir``, ``import-nir`` and ``check`` to the CLI group."""
    from .options import TIME_STEPS

    @cli.command("export-nir")
    @click.argument("model", type=click.Path())
    @click.option("-o", "--output", required=True, type=click.Path(), help="The .nir file to write.")
    @click.option("--dt", type=DT, default=1e-4, show_default=True,
                  help="Euler step the NIR time constants are written for (readers must simulate with it).")
    @click.option("--pooling", type=click.Choice(["avg", "sum"]), default="avg", show_default=True,
                  help="Average pooling as AvgPool2d, or SumPool2d with 1/k² in the next weights (for Norse).")
    @click.option("--lossy", is_flag=True,
                  help="Export subtractive-reset / v_init != 0 neurons with NIR's semantics and print the measured agreement.")
    @click.option("--data", "data_source", default=None,
                  help="--lossy: samples to measure on (digits, .npz, random; default digits for the example, else random).")
    @click.option("--samples", type=click.IntRange(min=1), default=None, help="--lossy: how many samples (default 64).")
    @click.option("--force", is_flag=True, help="Overwrite an existing output file.")
    @handle_errors
    def export_nir(model, output, dt, pooling, lossy, data_source, samples, force):
        """Write an SNN (IF / LIF neurons, reset to zero) as a NIR graph (docs/interop.md)."""
        from snn_onnx.interop.nir_export import to_nir
        from snn_onnx.interop.snn_graph import read_snn

        if not lossy and (data_source or samples is not None):
            raise click.UsageError(f"{'--data' if data_source else '--samples'} applies to --lossy only (an exact export "
                                   "needs no measurement)")
        samples = samples or 64
        out = _check_output(output, force)
        snn = read_snn(model)
        exp = to_nir(snn, dt=dt, lossy=lossy, pooling=pooling)
        if exp.lossy:
            x, what = _samples(snn, data_source, samples)
            agreement = _lossy_agreement(snn, exp, x)
            exp.graph.metadata["lossy_agreement"] = json.dumps(agreement)
            click.echo(f"LOSSY export ({len(exp.lossy)} changes, e.g. {exp.lossy[0]}); NIR semantics vs ours on {what}:")
            for layer, a in agreement["layers"].items():
                click.echo(f"  {layer:<40} spike agreement {100 * a['spike_agreement']:.2f} %  "
                           f"spikes ours {a['spikes_ours']} / NIR {a['spikes_nir']}")
            for name, o in agreement["outputs"].items():
                arg = "" if o["argmax_agreement"] is None else f", argmax agreement {100 * o['argmax_agreement']:.1f} %"
                click.echo(f"  output '{name}': max |Δ| of the mean over T {o['max_abs_diff']:.4g}{arg}")
        _write_atomic(out, exp.write)
        kinds = sorted({type(n).__name__ for n in exp.graph.nodes.values()})
        click.echo(f"wrote {out}: {len(exp.graph.nodes)} NIR nodes ({', '.join(kinds)}), {len(exp.neurons)} spiking layers, "
                   f"dt {dt:g}, T {snn.time_steps}; inputs repeated at every step: "
                   f"{[k for k, v in snn.input_kinds.items() if v == 'static']}")

    @cli.command("import-nir")
    @click.argument("nir_file", type=click.Path())
    @click.option("-o", "--output", required=True, type=click.Path(), help="The .snn.onnx file to write.")
    @click.option("-T", "--time-steps", type=TIME_STEPS, required=True, help="Time steps T the SNN runs.")
    @click.option("--dt", type=DT, default=None,
                  help="Euler step of the file's time constants (default: the file's dt metadata; snnTorch/SpikingJelly: 1e-4).")
    @click.option("--static-input", is_flag=True, help="Inputs are one sample repeated at every step (else one frame per step).")
    @click.option("--force", is_flag=True, help="Overwrite an existing output file.")
    @handle_errors
    def import_nir(nir_file, output, time_steps, dt, static_input, force):
        """Turn a NIR graph (IF / LIF, affine, conv, pooling) into an SNN for ONNX Runtime."""
        import onnx

        from snn_onnx.interop.nir_import import from_nir
        from snn_onnx import make_session

        out = _check_output(output, force)
        imp = from_nir(nir_file, time_steps=time_steps, dt=dt, static_inputs=static_input)
        make_session(imp.model)  # it must load in ONNX Runtime before it is written
        _write_atomic(out, lambda p: onnx.save(imp.model, p))
        ins = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in imp.model.graph.input}
        click.echo(f"wrote {out}: {len(imp.neurons)} spiking layers, T {time_steps}; inputs {ins} "
                   f"({'one sample, repeated' if static_input else 'T*B frames, time-major'})")

    @cli.command("check")
    @click.argument("model", type=click.Path())
    @click.option("--data", "data_source", default=None, help="Inputs: digits, .npz, random (default digits for the example, else random).")
    @click.option("--samples", type=click.IntRange(min=1), default=32, show_default=True)
    @click.option("--nir-reader", "readers", multiple=True, type=click.Choice(["spikingjelly", "norse", "snntorch"]),
                  help="NIR readers to run besides the NumPy simulator (repeatable; default: spikingjelly when installed).")
    @click.option("--ann", default=None, help="Source ANN for SpikingJelly's ann2snn: module:factory or a timm name "
                                             "(default: the bundled example's, for the example).")
    @click.option("--checkpoint", type=click.Path(), default=None, help="State dict for --ann.")
    @click.option("--num-classes", type=click.IntRange(min=1), default=None, help="Classes of a timm --ann.")
    @click.option("--lossy", is_flag=True, help="Export to NIR even where NIR cannot say our neurons (measure the difference).")
    @click.option("--dt", type=DT, default=1e-4, show_default=True)
    @click.option("--spike-tol", type=TOLERANCE, default=0.0, show_default=True, help="Allowed fraction of non-tie spike differences.")
    @click.option("--output-tol", type=TOLERANCE, default=1e-4, show_default=True, help="Allowed output difference, relative.")
    @click.option("--markdown", type=click.Path(), default=None, help="Also write the table to this file.")
    @click.option("--force", is_flag=True, help="Overwrite an existing --markdown file.")
    @handle_errors
    def check(model, data_source, samples, readers, ann, checkpoint, num_classes, lossy, dt, spike_tol, output_tol, markdown,
              force):
        """The same SNN in our CPU / CUDA runtimes, through NIR, and via SpikingJelly: per-layer agreement."""
        import importlib.util

        from snn_onnx.interop.check import check as run_check
        from snn_onnx.interop.snn_graph import read_snn

        if markdown:
            _check_output(markdown, force, "--markdown")
        elif force:
            raise click.UsageError("--force does not apply: it lets --markdown replace a file")
        snn = read_snn(model)
        x, what = _samples(snn, data_source, samples)
        if not readers:
            readers = ("spikingjelly",) if importlib.util.find_spec("spikingjelly") else ()
        module = None
        spec = ann or ("snn_onnx_models.digits_cnn:load_example_model" if _is_example(snn) else None)
        if spec:
            from snn_onnx.export import build_module

            module = build_module(spec, num_classes=num_classes, checkpoint=checkpoint)
        report = run_check(snn, x, nir_readers=readers, ann=module, lossy=lossy, dt=dt, spike_tol=spike_tol,
                           output_tol=output_tol)
        head = f"check {model}: T {report.time_steps}, {what}"
        click.echo(head)
        click.echo(report.table())
        if markdown:
            from snn_onnx import files

            files.write_text(markdown, head + "\n\n" + report.table() + "\n")
        failed = [c.name for c in report.columns if c.passed is False]
        if failed:
            click.echo(f"FAIL: {', '.join(failed)} past the tolerance (spikes {spike_tol:g}, output {output_tol:g})", err=True)
            raise SystemExit(1)
        if not any(c.passed is not None for c in report.columns):
            click.echo("nothing to compare: no column besides the CPU reference could run (see the notes)")
            return
        click.echo("pass: every column that ran agrees within the tolerance")

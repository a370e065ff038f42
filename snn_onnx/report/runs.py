"""Run folders ``<runs>/<name>/<timestamp>/`` and the dashboard across them.

A run folder holds ``config.json`` (how the run was made), ``summary.json`` (every number the
report shows), ``layers.csv``, ``spiking_layers.csv``, ``anytime.csv``, ``potentials.csv`` (runs
measured with potentials), ``plots/*.png``,
``report.html`` (self-contained) and ``tensorboard/`` (event files).
``aggregate(runs)`` writes ``<runs>/runs.csv`` (one row per run) and ``<runs>/dashboard.png``.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import json
import re
import shutil
from pathlib import Path
from typing import Any

from .. import files
from ..errors import DataError, OutputExistsError
from . import html, panels, plots
from .measure import RunResult
from .tensorboard import write_events

RUN_COLUMNS = [
    "name", "timestamp", "path", "model", "neuron", "time_steps", "data", "samples", "accuracy", "ann_accuracy",
    "agreement", "firing_rate", "sops", "macs", "energy_uj", "ann_macs", "ann_energy_uj", "energy_ratio",
    "e_ac_pj", "e_mac_pj", "spikes",
]


def safe_name(name: str) -> str:
    out = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return out or "run"


def _new_folder(root: Path, name: str, timestamp: str | None) -> Path:
    stamp = timestamp or _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = root / safe_name(name)
    folder, k = base / stamp, 1
    while folder.exists():
        k += 1
        folder = base / f"{stamp}-{k}"
    folder.mkdir(parents=True)
    return folder


def _write_csv(path: Path, head: list[str], rows: list[list[Any]]) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(head)
        w.writerows(rows)


def write_run(run: RunResult, runs_dir: str | Path = "runs", *, name: str | None = None, timestamp: str | None = None,
              tensorboard: bool = True) -> Path:
    """Write the run folder and refresh the dashboard; returns the folder."""
    root = Path(runs_dir)
    if root.exists() and not root.is_dir():
        raise OutputExistsError(f"runs folder {root} exists and is not a folder")
    name = safe_name(name or run.name)
    run.config["name"] = name
    new_dirs = [d for d in (root / name, root) if not d.exists()]  # made here: removed with a failed run
    folder = _new_folder(root, name, timestamp)
    try:
        _write_run_files(run, root, name, folder, tensorboard)
    except BaseException:  # an error or a signal: no half-written run folder for aggregate to read
        shutil.rmtree(folder, ignore_errors=True)
        for d in new_dirs:
            with contextlib.suppress(OSError):
                d.rmdir()
        raise
    return folder


def _write_run_files(run: RunResult, root: Path, name: str, folder: Path, tensorboard: bool) -> None:
    created = _dt.datetime.now().isoformat(timespec="seconds")
    config = {**run.config, "created": created}
    (folder / "config.json").write_text(json.dumps(html._jsonable(config), indent=2, sort_keys=True) + "\n")
    summary = run.summary()
    summary["timestamp"] = folder.name
    (folder / "summary.json").write_text(json.dumps(html._jsonable(summary), indent=2) + "\n")
    e = run.energy
    _write_csv(folder / "layers.csv",
               ["layer", "node", "op", "role", "counting", "sources", "sops", "macs", "energy_pj", "ann_macs",
                "ann_energy_pj", "energy_ratio", "reason"],
               [[l.name, l.node, l.op, l.role, l.counting, ";".join(l.sources), f"{l.sops.sum():.6g}", f"{l.macs.sum():.6g}",
                 f"{l.energy_pj:.6g}", f"{l.ann_macs:.6g}", f"{l.ann_energy_pj:.6g}",
                 f"{l.energy_pj / l.ann_energy_pj:.6g}" if l.ann_energy_pj else "", l.reason] for l in e.layers])
    T = e.time_steps
    _write_csv(folder / "spiking_layers.csv",
               ["layer", "op", "neurons", "firing_rate", *[f"rate_t{t}" for t in range(1, T + 1)]],
               [[n.site, n.op, n.neurons, f"{n.rate:.6g}", *[f"{r:.6g}" for r in n.rate_per_step]] for n in e.neurons])
    if run.potentials:
        _write_csv(folder / "potentials.csv",
                   ["layer", "op", "unit", "near_threshold", *[f"near_t{t}" for t in range(1, T + 1)], "non_finite"],
                   [[k, p["op"], p["unit"], f"{p['near_overall']:.6g}", *[f"{v:.6g}" for v in p["near"]],
                     int(sum(p["non_finite"]))] for k, p in run.potentials.items()])
    _write_csv(folder / "anytime.csv", ["t", "accuracy", "agreement", "firing_rate", "energy_pj"],
               [[p.t, "" if p.accuracy is None else f"{p.accuracy:.6g}", "" if p.agreement is None else f"{p.agreement:.6g}",
                 f"{p.firing_rate:.6g}", f"{p.energy_pj:.6g}"] for p in run.anytime])
    pngs = panels.render_all(run)
    pngs["dashboard"] = plots.dashboard(dashboard_points(load_runs(root)), highlight=f"{name}/{folder.name}")
    (folder / "plots").mkdir()
    for key, png in pngs.items():
        (folder / "plots" / f"{key}.png").write_bytes(png)
    (folder / "report.html").write_text(html.render(run, pngs, created), encoding="utf-8")
    if tensorboard:
        write_events(run, folder / "tensorboard")


def load_runs(runs_dir: str | Path) -> list[dict[str, Any]]:
    """``summary.json`` + ``config.json`` of every run folder ``<runs>/<name>/<timestamp>/``."""
    root = Path(runs_dir)
    out = []
    for s in sorted(root.glob("*/*/summary.json")):
        try:
            summary = json.loads(s.read_text())
            config = json.loads((s.parent / "config.json").read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise DataError(f"cannot read run {s.parent}: {err}") from None
        out.append({"path": str(s.parent), "summary": summary, "config": config})
    return out


def run_row(r: dict[str, Any]) -> dict[str, Any]:
    s, c = r["summary"], r["config"]
    h = s["headline"]
    data = c.get("data", {})
    return {
        "name": s.get("name", c.get("name")), "timestamp": Path(r["path"]).name, "path": r["path"],
        "model": c.get("model", c.get("source")), "neuron": c.get("neuron", {}).get("kind"),
        "time_steps": h.get("time_steps"), "data": data.get("name", data.get("source")) if isinstance(data, dict) else data,
        "samples": h.get("samples"), "accuracy": h.get("accuracy"), "ann_accuracy": h.get("ann_accuracy"),
        "agreement": h.get("agreement"), "firing_rate": h.get("firing_rate"), "sops": h.get("sops"), "macs": h.get("macs"),
        "energy_uj": h.get("energy_uj"), "ann_macs": h.get("ann_macs"), "ann_energy_uj": h.get("ann_energy_uj"),
        "energy_ratio": h.get("energy_ratio"), "e_ac_pj": c.get("energy", {}).get("e_ac_pj"),
        "e_mac_pj": c.get("energy", {}).get("e_mac_pj"), "spikes": h.get("spikes"),
    }


def dashboard_points(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    points = []
    for r in runs:
        row = run_row(r)
        anytime = r["summary"].get("anytime", [])
        points.append({
            "label": f"{row['name']}/{row['timestamp']}", "model": Path(str(row["model"])).stem,
            "neuron": row["neuron"], "energy_uj": row["energy_uj"], "accuracy": row["accuracy"],
            "ann_energy_uj": row["ann_energy_uj"], "ann_accuracy": row["ann_accuracy"],
            "anytime": [(p["energy_pj"] * 1e-6, p["accuracy"]) for p in anytime],
            "spikes": row["spikes"],
            "anytime_spikes": [(p["spikes"], p["accuracy"]) for p in anytime if "spikes" in p],
            "agreement": row["agreement"],
            "anytime_agreement": [(p["energy_pj"] * 1e-6, p["agreement"]) for p in anytime],
            "anytime_spikes_agreement": [(p["spikes"], p["agreement"]) for p in anytime if "spikes" in p],
        })
    return points


def aggregate(runs_dir: str | Path = "runs") -> tuple[Path, Path, int]:
    """Write ``runs.csv`` and ``dashboard.png`` into ``runs_dir`` from all its runs."""
    root = Path(runs_dir)
    if not root.is_dir():
        raise DataError(f"runs folder not found: {root}")
    runs = load_runs(root)
    if not runs:
        raise DataError(f"no runs under {root} (expected {root}/<name>/<timestamp>/summary.json)")
    csv_path = root / "runs.csv"
    with files.atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=RUN_COLUMNS)
        w.writeheader()
        for r in runs:
            w.writerow(run_row(r))
    png = root / "dashboard.png"
    files.write_bytes(png, plots.dashboard(dashboard_points(runs)))
    return csv_path, png, len(runs)

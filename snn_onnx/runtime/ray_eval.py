"""Evaluation sharded over a Ray cluster with Ray Data (``pip install 'snn-onnx[ray]'``).

The evaluation set is cut into the same batches a single-process run uses (each a row of a
Ray Dataset: its start index and its input arrays); ``map_batches`` hands groups of these
rows to actors, each holding one ONNX Runtime session of the ANN and one per SNN (steps or
collapsed engine; ``num_gpus`` for CUDA). An actor runs every batch it gets exactly as
:func:`snn_onnx.evaluate.evaluate` does in one process (the same ``BatchRunner``) and
returns what it accumulated: predictions with their sample indices, spike counts summed over
its batches and the largest deviation from the ANN. The driver puts predictions back in order
and adds up the integer counts, so accuracy, firing rates, SOPs and energy are identical to a
single-process run. SNNs are run in groups whose models and spike counts fit in memory.

docs/collapsed.md has a multi-node recipe (``ray start --head`` / ``ray start --address``).
"""

from __future__ import annotations

import pickle
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np
import onnx

from ..errors import OptionalDependencyError, SnnOnnxError

#: Upper bound on the bytes of SNN models plus their per-step spike counts in one pass.
GROUP_BYTES = 256 << 20
#: Batches an actor gets per call (it returns one summary per call).
BATCHES_PER_CALL = 4


@dataclass
class RayConfig:
    """Where and how wide to run. ``address``: None starts a local cluster on this machine
    (``local_cpus`` CPUs, default ``workers * num_cpus``); "auto" joins the cluster this
    machine belongs to; "ray://head:10001" connects a client. ``workers``: actors (each holds
    one session per model); ``num_cpus`` / ``num_gpus``: per actor (``num_gpus > 0`` runs the
    sessions on CUDAExecutionProvider)."""

    address: str | None = None
    workers: int = 2
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    local_cpus: int | None = None

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise SnnOnnxError(f"ray workers must be >= 1, got {self.workers}")
        if self.num_cpus <= 0 or self.num_gpus < 0:
            raise SnnOnnxError(f"ray num_cpus must be > 0 and num_gpus >= 0, got {self.num_cpus}, {self.num_gpus}")

    def describe(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def providers(self) -> list[str]:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"] if self.num_gpus > 0 else ["CPUExecutionProvider"]


def ray_config(value: Any) -> RayConfig:
    """``True`` (a local cluster), an address string, or a :class:`RayConfig`."""
    if isinstance(value, RayConfig):
        return value
    if value is True:
        return RayConfig()
    if isinstance(value, str) and value:
        return RayConfig(address=None if value == "local" else value)
    raise SnnOnnxError(f"ray must be True, an address or a RayConfig, got {value!r}")


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise OptionalDependencyError(
            "sharded evaluation needs Ray (Ray Data): pip install 'snn-onnx[ray]' (or pip install 'ray[data]')"
        ) from None
    return ray


class _Shard:
    """A Ray Data actor: the ANN and one group of SNNs, one ORT session each."""

    def __init__(self, ann: Any, jobs: list, output: str, providers: list[str], threads: int,
                 library: str | None = None):
        import os

        import onnxruntime as ort
        import ray

        # A worker may import another copy of snn_onnx than the driver (Ray puts the driver's
        # working directory on the workers' path: a source checkout without a built library);
        # on the same machine, point it at the library the driver uses.
        if library and not os.environ.get("SNN_ONNX_LIBRARY") and os.path.isfile(library):
            os.environ["SNN_ONNX_LIBRARY"] = library

        from ..evaluate import BatchRunner

        # the models come as object-store references (a constructor's own arguments would be
        # pickled into the task: Ray warns above ~100 MB and ships them once per actor anyway)
        ann = ray.get(ann) if isinstance(ann, ray.ObjectRef) else ann
        for job in jobs:
            if isinstance(job.model, ray.ObjectRef):
                job.model = ray.get(job.model)
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.intra_op_num_threads = threads
        self.ann = ort.InferenceSession(ann, so, providers=providers)
        self.output, self.providers, self.threads, self.jobs = output, providers, threads, jobs
        self.runner_cls = BatchRunner

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        inputs = [k for k in batch if k != "start"]
        runners = [self.runner_cls(job, self.output, self.providers, threads=self.threads) for job in self.jobs]
        starts = [int(s) for s in batch["start"]]
        for i in range(len(starts)):
            feed = {k: np.asarray(batch[k][i]) for k in inputs}
            ann_out = self.ann.run([self.output], feed)[0]
            for r in runners:
                r.add(feed, ann_out)
        result = {"starts": starts, "sizes": [len(r) for r in runners[0].preds[0]], "stats": [r.stats() for r in runners]}
        return {"result": np.array([pickle.dumps(result)], dtype=object)}


def _groups(jobs: list, bytes_of: Callable[[Any], int]) -> list[list[int]]:
    groups: list[list[int]] = [[]]
    size = 0
    for i, job in enumerate(jobs):
        b = bytes_of(job)
        if groups[-1] and size + b > GROUP_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(i)
        size += b
    return groups


def _counts_bytes(model: onnx.ModelProto) -> int:
    """Bytes of one run's spike counts: T * neurons * 8, from the count outputs' shapes."""
    total = 0
    for o in model.graph.output:
        if o.name.endswith("/spike_counts"):
            dims = [d.dim_value for d in o.type.tensor_type.shape.dim]
            total += int(np.prod(dims)) * 8 if dims and all(dims) else 0
    return total


def _driver_library() -> str | None:
    from ..library import LibraryNotFoundError, library_path

    try:
        return library_path()
    except LibraryNotFoundError:
        return None  # collapsed jobs need no library; step-by-step ones fail in the worker, naming it


def run_sharded(
    ann: onnx.ModelProto,
    feed: dict[str, np.ndarray],
    jobs: list,
    batch_size: int,
    cfg: RayConfig,
    output: str,
    on_done: Callable[[Any], None] | None = None,
) -> list:
    """Run every job (``snn_onnx.evaluate.Job``) over ``feed`` on Ray; one ``RunStats`` per job."""
    from ..evaluate import RunStats

    ray = import_ray()
    started = False
    if not ray.is_initialized():
        if cfg.address is None:
            cpus = cfg.local_cpus or max(1, int(np.ceil(cfg.workers * cfg.num_cpus)))
            # workers import snn_onnx from where this process found it (a checkout on sys.path too)
            import os
            from pathlib import Path

            root = str(Path(__file__).resolve().parents[2])
            path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, configure_logging=False,
                     runtime_env={"env_vars": {"PYTHONPATH": path}})
        else:
            ray.init(address=cfg.address, log_to_driver=False, configure_logging=False)
        started = True
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        n = len(next(iter(feed.values())))
        rows = [{"start": s, **{k: v[s : s + batch_size] for k, v in feed.items()}} for s in range(0, n, batch_size)]
        ds = ray.data.from_items(rows)
        ann_ref = ray.put(ann.SerializeToString())
        blobs = [j.model if isinstance(j.model, bytes) else j.model.SerializeToString() for j in jobs]
        sizes = [len(b) + _counts_bytes(j.model if isinstance(j.model, onnx.ModelProto) else onnx.load_from_string(b))
                 for j, b in zip(jobs, blobs)]
        results: list[RunStats | None] = [None] * len(jobs)
        library = _driver_library()
        for group in _groups(list(range(len(jobs))), lambda i: sizes[i]):
            shipped = [_ship(jobs[i], ray.put(blobs[i])) for i in group]
            out = ds.map_batches(
                _Shard,
                fn_constructor_kwargs={"ann": ann_ref, "jobs": shipped, "output": output, "providers": cfg.providers,
                                       "threads": max(1, int(cfg.num_cpus)), "library": library},
                batch_size=BATCHES_PER_CALL, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=cfg.workers),
                num_cpus=cfg.num_cpus, num_gpus=cfg.num_gpus,
            )
            parts = [pickle.loads(r["result"]) for r in out.iter_rows()]
            for j, i in enumerate(group):
                results[i] = _merge([(p["starts"], p["sizes"], p["stats"][j]) for p in parts])
                if on_done:
                    on_done(jobs[i])
        return results  # type: ignore[return-value]
    finally:
        if started:
            ray.shutdown()


def _ship(job, blob: Any):
    from ..evaluate import Job

    return Job(job.label, blob, job.steps, job.engine, False)


def _merge(parts: list[tuple[list[int], list[int], Any]]):
    """Put the batches' predictions back in sample order and add up the counts."""
    from ..evaluate import RunStats

    first = parts[0][2]
    pieces: dict[int, dict[int, np.ndarray]] = {}
    for starts, sizes, st in parts:
        offsets = np.cumsum([0, *sizes])
        for s, a, b in zip(starts, offsets[:-1], offsets[1:]):
            pieces[s] = {t: p[a:b] for t, p in st.predictions.items()}
    order = sorted(pieces)
    preds = {t: np.concatenate([pieces[s][t] for s in order]) for t in first.predictions}
    counts: dict[str, np.ndarray] = {}
    for _, _, st in parts:
        for k, v in st.counts.items():
            counts[k] = counts[k] + v if k in counts else v.copy()
    return RunStats(preds, counts, sum(st.samples for _, _, st in parts), max(st.max_abs_diff for _, _, st in parts),
                    max(st.max_abs_ann for _, _, st in parts), first.engine)

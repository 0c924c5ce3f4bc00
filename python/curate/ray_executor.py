"""Runs a pipeline on Ray: every task of every stage is a Ray task running the Rust engine on
one input shard; a global step's reduce is a Ray task too. Ray's object store carries task
descriptions and reports, never records: records go through the shared output directory
and store, as with ``curate worker``. The driver holds the output, plans, and commits the
version; the output is byte-identical to a local run.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import _native
from .pipeline import Pipeline, RunResult
from .udf import MapBatches

# Ray retries a task whose worker died (killed, out of memory) this many times; a task
# that commits twice is committed once, so a retry cannot duplicate output.
MAX_RETRIES = 3


@dataclass(frozen=True)
class TaskSpec:
    """What a Ray worker needs to run any task of one run: the spec, the Python operators,
    where the project state lives and the directory relative paths start from."""

    text: str
    origin: str
    ops: Tuple[MapBatches, ...]
    home: str
    cwd: str

    @property
    def key(self) -> str:
        h = hashlib.sha256()
        for part in (self.text, self.origin, self.home, self.cwd, *(op.content_key for op in self.ops)):
            h.update(part.encode())
            h.update(b"\0")
        return h.hexdigest()


# A worker process keeps the runs it joined: later tasks of the same run skip planning.
_JOINED: Dict[str, "_native.Run"] = {}


def _joined(spec: TaskSpec) -> "_native.Run":
    os.chdir(spec.cwd)
    run = _JOINED.get(spec.key)
    if run is None:
        run = _native.Run(spec.text, spec.origin, list(spec.ops), spec.home, True)
        _JOINED.clear()
        _JOINED[spec.key] = run
    return run


def _map_task(spec: TaskSpec, stage: int, shard: int, key: str, threads: int, no_cache: bool) -> Dict[str, Any]:
    report = json.loads(_joined(spec).run_task(stage, shard, key, threads, no_cache))
    # The driver needs counters, not the per-file details (they stay in run.json).
    report.pop("files", None)
    return report


def _reduce_task(spec: TaskSpec, stage: int, memory_limit: Optional[int]) -> None:
    _joined(spec).reduce(stage, memory_limit)


def run(pipeline: Pipeline, *, workers: Optional[int] = None, threads: int = 1, resume: bool = False, no_cache: bool = False,
        memory_limit: Optional[int] = None, home: Optional[str] = None) -> RunResult:
    """Runs ``pipeline`` on Ray (see the module's documentation); at most ``workers`` tasks
    at once (default: the cluster's CPUs), each on ``threads`` threads (and as many CPUs)."""
    import ray

    if not ray.is_initialized():
        ray.init()
    home = os.path.abspath(home or os.environ.get("CURATE_HOME") or ".curate")
    text, origin = pipeline._spec()
    ops = tuple(pipeline._python_ops())
    driver = _native.Run(text, origin, list(ops), home, False)
    driver.hold(f"a Ray run of {pipeline.name} (driver pid {os.getpid()})", resume)
    try:
        spec_ref = ray.put(TaskSpec(text, origin, ops, home, os.getcwd()))
        limit = max(1, workers or int(ray.cluster_resources().get("CPU", 1)))
        map_task = ray.remote(num_cpus=threads, max_retries=MAX_RETRIES)(_map_task)
        reduce_task = ray.remote(num_cpus=threads, max_retries=MAX_RETRIES)(_reduce_task)
        tasks: List[Tuple[int, int, str]] = driver.tasks()
        stages = max((t[0] for t in tasks), default=0) + 1
        for stage in range(stages):
            _bounded(ray, [t for t in tasks if t[0] == stage], lambda t: map_task.remote(spec_ref, *t, threads, no_cache), limit)
            if stage + 1 < stages:
                _bounded(ray, [(stage, 0, "")], lambda t: reduce_task.remote(spec_ref, t[0], memory_limit), 1)
        return RunResult._from_json(driver.commit())
    finally:
        driver.release()


def _bounded(ray: Any, tasks: List[Tuple[int, int, str]], submit: Callable[[Tuple[int, int, str]], Any], limit: int) -> None:
    """Runs ``tasks`` with at most ``limit`` in flight, raising the first failure."""
    pending = list(reversed(tasks))
    in_flight: List[Any] = []
    try:
        while pending or in_flight:
            while pending and len(in_flight) < limit:
                in_flight.append(submit(pending.pop()))
            done, in_flight = ray.wait(in_flight, num_returns=1)
            ray.get(done)
    except BaseException:
        # A failure or Ctrl-C stops the run's other tasks; what they committed stays for
        # a resume.
        for ref in in_flight:
            ray.cancel(ref)
        raise

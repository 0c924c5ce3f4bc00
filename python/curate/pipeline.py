"""Pipelines built in Python or loaded from YAML, validated and run by the Rust engine."""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Union

from . import _native
from .udf import MapBatches


class Step:
    """A built-in operator with its parameters (``curate.ops.NAME(...)`` makes one)."""

    def __init__(self, op: str, **params: Any) -> None:
        self.op = op
        self.params = params

    def to_spec(self) -> Dict[str, Any]:
        """The step as a pipeline spec writes it."""
        return {"op": self.op, **self.params}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{self.op}({args})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Step) and other.to_spec() == self.to_spec()


StepLike = Union[Step, MapBatches, Callable[[Any], Any]]


class Input(dict):
    """A pipeline's input settings (the spec's ``input:``)."""


class Output(dict):
    """A pipeline's output settings (the spec's ``output:``)."""


def _settings(cls: type, **kw: Any) -> Any:
    return cls({k: v for k, v in kw.items() if v is not None})


def read_jsonl(path: Union[str, List[str]], *, id_field: Optional[str] = None, text_field: Optional[str] = None,
               **settings: Any) -> Input:
    """JSON Lines input (plain, .gz or .zst): paths, globs or ``s3://`` URLs."""
    return _settings(Input, path=path, format="jsonl", id_field=id_field, text_field=text_field, **settings)


def read_parquet(path: Union[str, List[str]], *, id_field: Optional[str] = None, text_field: Optional[str] = None,
                 **settings: Any) -> Input:
    """Parquet input: paths, globs or ``s3://`` URLs."""
    return _settings(Input, path=path, format="parquet", id_field=id_field, text_field=text_field, **settings)


def read_dataset(reference: str, **settings: Any) -> Input:
    """A registered dataset version as input (``web-en@latest``, ``web-en@3``, a tag)."""
    return _settings(Input, dataset=reference, **settings)


def write_parquet(path: str, *, dataset: Optional[str] = None, **settings: Any) -> Output:
    """Parquet output: data, rejects, quarantine and lineage under ``path``; committed as
    the next version of ``dataset`` (the pipeline's name when omitted)."""
    return _settings(Output, path=path, format="parquet", dataset=dataset, **settings)


def write_jsonl(path: str, *, dataset: Optional[str] = None, **settings: Any) -> Output:
    """JSON Lines output (see :func:`write_parquet`)."""
    return _settings(Output, path=path, format="jsonl", dataset=dataset, **settings)


@dataclass
class RunResult:
    """What a run did: counters, the registry's run and the committed version."""

    #: The registry's run id (``None`` with ``no_registry``).
    run: Optional[int]
    #: The dataset version holding the output (``web-en@3``).
    version: Optional[str]
    #: False when the output equals the previous version's, which stays the latest.
    new_version: Optional[bool]
    #: The full report: per-step counters and drop reasons, files, cache use.
    report: Dict[str, Any] = field(repr=False)

    @property
    def records_in(self) -> int:
        """Records parsed from the input."""
        return int(self.report.get("records_in", 0))

    @property
    def records_out(self) -> int:
        """Records written to the output's data."""
        return int(self.report.get("records_out", 0))

    @property
    def rejected(self) -> int:
        """Records dropped by a step, kept in rejects with their reason."""
        return int(self.report.get("rejected", 0))

    @property
    def quarantined(self) -> int:
        """Records that could not be parsed or whose batch an operator failed on."""
        return int(self.report.get("quarantined", 0))

    @property
    def steps(self) -> List[Dict[str, Any]]:
        """Per step: operator, records in and out, drops by reason."""
        return list(self.report.get("steps", []))

    @classmethod
    def _from_json(cls, text: str) -> "RunResult":
        d = json.loads(text)
        return cls(run=d.get("run"), version=d.get("version"), new_version=d.get("new_version"), report=d.get("report") or {})


class Pipeline:
    """A pipeline: input, an ordered list of steps (a plain list: append, insert, remove),
    output. Built in Python, from a dict, or from a YAML spec; the engine checks it fully
    before anything runs."""

    def __init__(self, name: str, input: Dict[str, Any], steps: Iterable[StepLike] = (), output: Optional[Dict[str, Any]] = None,
                 **settings: Any) -> None:
        self.name = name
        self.input: Dict[str, Any] = dict(input)
        self.steps: List[StepLike] = list(steps)
        self.output: Dict[str, Any] = dict(output) if output is not None else {}
        #: Other top-level spec settings (``memory_limit``, ``cache``, ``trigger``).
        self.settings: Dict[str, Any] = dict(settings)
        self._origin: Optional[str] = None
        self._text: Optional[str] = None
        self._loaded: Optional[Dict[str, Any]] = None

    @classmethod
    def from_yaml(cls, path: Union[str, os.PathLike]) -> "Pipeline":
        """Loads a YAML (or JSON) spec file; errors name its line and column."""
        path = os.fspath(path)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        p = cls.from_dict(json.loads(_native.parse_spec(text, path)))
        p._origin, p._text, p._loaded = path, text, p.to_dict()
        return p

    @classmethod
    def from_dict(cls, spec: Dict[str, Any]) -> "Pipeline":
        """A pipeline from a spec as a dict (the structure of the YAML file)."""
        spec = copy.deepcopy(spec)
        steps: List[StepLike] = []
        for s in spec.pop("steps", None) or []:
            s = dict(s)
            steps.append(Step(s.pop("op"), **s))
        name = spec.pop("name", "")
        return cls(name, spec.pop("input", {}), steps, spec.pop("output", None), **spec)

    def _steps(self) -> List[StepLike]:
        """The steps, a plain function taken as ``@curate.map_batches`` with version 1."""
        out: List[StepLike] = []
        for s in self.steps:
            if isinstance(s, (Step, MapBatches)):
                out.append(s)
            elif callable(s):
                out.append(MapBatches(s))
            else:
                raise TypeError(f"a step must be a curate.ops operator or a function over pyarrow batches, not {type(s).__name__}")
        return out

    def to_dict(self) -> Dict[str, Any]:
        """The spec as a dict (Python steps appear by name)."""
        d: Dict[str, Any] = {"name": self.name, "input": dict(self.input), "steps": [s.to_spec() for s in self._steps()]}
        if self.output:
            d["output"] = dict(self.output)
        d.update(self.settings)
        return d

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, steps={self.steps!r})"

    def _python_ops(self) -> List[MapBatches]:
        ops: Dict[str, MapBatches] = {}
        for s in self._steps():
            if isinstance(s, MapBatches):
                if s.name in ops and ops[s.name].content_key != s.content_key:
                    raise ValueError(f"two Python steps are named {s.name!r}; give one another name: @curate.map_batches(name=...)")
                ops[s.name] = s
        return list(ops.values())

    def _spec(self) -> tuple:
        """The spec text and origin the engine gets: the file as written while it is
        unchanged (errors then point into it), otherwise JSON."""
        d = self.to_dict()
        if self._text is not None and d == self._loaded:
            return self._text, self._origin
        if self._origin is not None:
            # Relative paths in parameters still start at the spec's directory.
            return json.dumps(d, indent=1), f"{self._origin} (as changed in Python)"
        return json.dumps(d, indent=1), f"<pipeline {self.name}>"

    def _native_run(self, home: Optional[str] = None, join: bool = False) -> "_native.Run":
        text, origin = self._spec()
        return _native.Run(text, origin, self._python_ops(), home, join)

    def validate(self, *, home: Optional[str] = None) -> Dict[str, Any]:
        """Checks the pipeline fully (input files, output, operators, parameters, columns)
        and returns its plan: shards, stages, steps, the kept records' schema.
        Raises :class:`curate.SpecError` naming what is wrong."""
        return json.loads(self._native_run(home).summary())

    def run(self, threads: Optional[int] = None, *, executor: str = "local", resume: bool = False, no_cache: bool = False,
            no_registry: bool = False, memory_limit: Optional[int] = None, home: Optional[str] = None,
            workers: Optional[int] = None, progress: Optional[Callable[[Dict[str, int]], Any]] = None) -> RunResult:
        """Runs the pipeline and commits its output as the next version of its dataset.

        ``executor="local"`` runs on ``threads`` threads of this process (every core by
        default) with the GIL released. ``executor="ray"`` runs each task inside a Ray task
        on the connected (or a new local) Ray cluster, at most ``workers`` at once, each on
        ``threads`` threads (1 by default); the output is byte-identical to a local run.
        Ctrl-C cancels; ``resume=True`` keeps what an interrupted run of the same plan
        committed. ``progress`` (local runs) is called about twice a second, and at the end,
        with ``tasks``, ``records``, ``bytes`` and ``total_bytes``; raising from it cancels
        the run.
        """
        if executor == "ray":
            from . import ray_executor

            if no_registry:
                raise ValueError("executor='ray' records its run: the registry is how the driver and the Ray tasks agree on it")
            return ray_executor.run(self, workers=workers, threads=threads or 1, resume=resume, no_cache=no_cache,
                                    memory_limit=memory_limit, home=home)
        if executor != "local":
            raise ValueError(f"unknown executor {executor!r}: use 'local' or 'ray'")
        text = self._native_run(home).run(threads, resume, no_cache, no_registry, memory_limit, progress)
        return RunResult._from_json(text)

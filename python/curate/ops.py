"""Every built-in operator as a function: ``curate.ops.gopher_quality(max_non_alpha_words_ratio=0.7)``.

The functions are made from the engine's operator registry, so their names, parameters,
defaults and documentation are exactly what a YAML spec accepts. Each returns a
:class:`curate.Step`; the engine checks the values when the pipeline is validated.
"""

from __future__ import annotations

import inspect
import json
from typing import Any, Callable, Dict, List

from . import _native
from .pipeline import Step

_PY_TYPES = {"integer": int, "number": float, "string": str, "boolean": bool, "array": list, "object": dict}


def _describe(op: Dict[str, Any]) -> str:
    lines = [f"{op['summary']}", "", f"Operator ``{op['name']}`` v{op['version']} ({op['kind']}).", ""]
    if op["params"]:
        lines.append("Parameters:")
    for p in op["params"]:
        default = "" if p.get("default") is None else f" (default {json.dumps(p['default'])})"
        doc = " ".join((p.get("doc") or "").split())
        lines.append(f"    {p['name']} ({p['ty']}){default}: {doc}")
    return "\n".join(lines)


def _make(op: Dict[str, Any]) -> Callable[..., Step]:
    name = op["name"]
    known = [p["name"] for p in op["params"]]

    def make_step(**params: Any) -> Step:
        unknown = [k for k in params if k not in known]
        if unknown:
            raise TypeError(f"{name}() has no parameter {unknown[0]!r}; parameters are: {', '.join(known) or '(none)'}")
        return Step(name, **params)

    parameters = [
        inspect.Parameter(
            p["name"],
            inspect.Parameter.KEYWORD_ONLY,
            # Shown for help(); only the parameters given are sent, so the engine's own
            # defaults (and its check of required ones) apply.
            default=p.get("default"),
            annotation=_PY_TYPES.get(p["ty"], Any),
        )
        for p in op["params"]
    ]
    make_step.__name__ = make_step.__qualname__ = name
    make_step.__doc__ = _describe(op)
    make_step.__signature__ = inspect.Signature(parameters, return_annotation=Step)  # type: ignore[attr-defined]
    make_step.__module__ = __name__
    return make_step


#: The engine's operators, as ``curate ops --json`` lists them.
OPERATORS: List[Dict[str, Any]] = json.loads(_native.operators())

for _op in OPERATORS:
    globals()[_op["name"]] = _make(_op)

__all__ = [op["name"] for op in OPERATORS]


def __getattr__(name: str) -> Any:
    raise AttributeError(f"curate.ops has no operator {name!r}; operators are: {', '.join(__all__)}")

"""A thin client of ``curate serve``'s REST API (standard library only)."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, List, Optional, Union

from ._native import CurateError

TERMINAL = ("succeeded", "failed", "cancelled")


class ApiError(CurateError):
    """The service refused a call: ``status`` is the HTTP status, ``problem`` the
    ``application/problem+json`` body (``detail``, located ``errors``)."""

    def __init__(self, status: int, problem: Dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        detail = problem.get("detail") or problem.get("title") or "request failed"
        errors = "; ".join(e.get("message", str(e)) if isinstance(e, dict) else str(e) for e in problem.get("errors", []))
        super().__init__(f"{status}: {detail}" + (f" ({errors})" if errors else ""))


class Client:
    """Calls a ``curate serve`` at ``url`` with a token (default ``$CURATE_SERVER`` and
    ``$CURATE_TOKEN``): pipelines, runs, datasets, lineage."""

    def __init__(self, url: Optional[str] = None, token: Optional[str] = None, *, timeout: float = 30.0) -> None:
        url = url or os.environ.get("CURATE_SERVER")
        if not url:
            raise ValueError("Client needs the service's URL (or $CURATE_SERVER)")
        self.url = url.rstrip("/")
        self.token = token if token is not None else os.environ.get("CURATE_TOKEN")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Any = None, *, query: Optional[Dict[str, Any]] = None,
              headers: Optional[Dict[str, str]] = None) -> Any:
        url = self.url + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                problem = json.loads(raw)
            except ValueError:
                problem = {"detail": raw.decode(errors="replace")}
            raise ApiError(e.code, problem) from None
        return json.loads(raw) if raw else None

    # Pipelines
    def put_pipeline(self, spec: str, *, priority: Optional[int] = None, max_slots: Optional[int] = None) -> Dict[str, Any]:
        """Registers (or updates) a pipeline from its YAML spec text."""
        body = {"spec": spec, "priority": priority, "max_slots": max_slots}
        return self._call("POST", "/v1/pipelines", {k: v for k, v in body.items() if v is not None})

    def pipelines(self) -> List[Dict[str, Any]]:
        """The registered pipelines."""
        return self._call("GET", "/v1/pipelines")

    # Runs
    def submit(self, pipeline: Optional[str] = None, *, spec: Optional[str] = None, priority: Optional[int] = None,
               idempotency_key: Optional[str] = None) -> Dict[str, Any]:
        """Queues a run of a registered pipeline or of a spec; the same ``idempotency_key``
        returns the run it created."""
        if (pipeline is None) == (spec is None):
            raise ValueError("give a registered pipeline's name or a spec, one of them")
        body = {k: v for k, v in {"pipeline": pipeline, "spec": spec, "priority": priority}.items() if v is not None}
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self._call("POST", "/v1/runs", body, headers=headers)

    def runs(self, *, state: Optional[str] = None, pipeline: Optional[str] = None, limit: int = 50) -> Dict[str, Any]:
        """A page of runs, newest first."""
        return self._call("GET", "/v1/runs", query={"state": state, "pipeline": pipeline, "limit": limit})

    def run(self, run_id: int) -> Dict[str, Any]:
        """One run: state, counters, version, what it waits for."""
        return self._call("GET", f"/v1/runs/{run_id}")

    def cancel(self, run_id: int) -> Dict[str, Any]:
        """Cancels a queued or running run."""
        return self._call("POST", f"/v1/runs/{run_id}/cancel")

    def retry(self, run_id: int) -> Dict[str, Any]:
        """Runs a failed or cancelled run again, keeping what it committed."""
        return self._call("POST", f"/v1/runs/{run_id}/retry")

    def wait(self, run_id: int, *, timeout: Optional[float] = None, poll: float = 0.5) -> Dict[str, Any]:
        """Waits for a run to end and returns it (raises ``TimeoutError`` after ``timeout``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            r = self.run(run_id)
            if r.get("state") in TERMINAL:
                return r
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} is still {r.get('state')} after {timeout} s")
            time.sleep(poll)

    # Datasets and lineage
    def datasets(self) -> Any:
        """Datasets with their latest versions."""
        return self._call("GET", "/v1/datasets")

    def dataset(self, name: str) -> Dict[str, Any]:
        """A dataset's versions."""
        return self._call("GET", f"/v1/datasets/{urllib.parse.quote(name, safe='')}")

    def records(self, reference: str, *, limit: int = 20) -> Any:
        """The first records of a version."""
        return self._call("GET", f"/v1/datasets/{urllib.parse.quote(reference, safe='@')}/records", query={"limit": limit})

    def tag(self, reference: str, tag: str) -> Any:
        """Tags a version."""
        return self._call("POST", f"/v1/datasets/{urllib.parse.quote(reference, safe='@')}/tags", {"tag": tag})

    def diff(self, old: str, new: str) -> Dict[str, Any]:
        """Records and files added and removed between two versions, and why."""
        return self._call("GET", "/v1/diff", query={"from": old, "to": new})

    def explain(self, record_id: str) -> Dict[str, Any]:
        """A record's lineage."""
        return self._call("GET", f"/v1/records/{urllib.parse.quote(record_id, safe='')}")

    def forget(self, ids: Union[str, List[str]], *, reason: str, purge: bool = False) -> Dict[str, Any]:
        """Removes source records from every derived version (audited)."""
        return self._call("POST", "/v1/forget", {"ids": [ids] if isinstance(ids, str) else list(ids), "reason": reason, "purge": purge})

    def ops(self) -> Any:
        """The service's operators."""
        return self._call("GET", "/v1/ops")

#!/usr/bin/env python3
"""Chaos trials for `curate serve`: kill -9 a worker or the server mid-run, check nothing is
lost or repeated.

Each trial makes a fresh directory (and, on PostgreSQL, a fresh schema), writes an input of
several JSONL files with unique ids (some records short enough for `length_filter` to drop),
runs the same steps with `curate run` as the reference, then starts `curate serve --workers 0
--lease-secs 2` and two `curate worker --slots 1` processes, submits the run and, at a random
moment, kills with SIGKILL either a worker (a replacement is started) or the server (it is
started again on a new port, and the workers are killed and started against it); sometimes
a second kill follows. When the run has ended it checks:

  * the run succeeded and committed NAME@1 with records_out == the kept records;
  * the names and bytes of the files under out/data/ equal those under ref/data/;
  * every store object of the committed version is byte-identical to one file of out/data/
    (a multiset match), and (JSONL output) the ids read from them are exactly the kept ids,
    each once;
  * after a worker kill, the task it held is held by another worker (GET /v1/queue) or done
    (the run's task events) within lease + 10 s.

One line per trial, then a summary; exit 1 on any failure. Stdlib only.

  python3 bench/serve/chaos.py --trials 20 --backend sqlite
  python3 bench/serve/chaos.py --trials 20 --backend postgres
"""

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from harness import PG_BASE, api, psql, run_curate, start_serve

LEASE = 2.0
RETAKE_LIMIT = LEASE + 10.0


def log(msg):
    print(msg, flush=True)


class ApiError(Exception):
    pass


class Events(threading.Thread):
    """Follows a run's server-sent events, noting when each arrived (monotonic clock)."""

    def __init__(self, addr, token, run, after, sink):
        super().__init__(daemon=True)
        self.addr, self.token, self.run_id, self.after, self.sink = addr, token, run, after, sink

    def run(self):
        try:
            conn = http.client.HTTPConnection(self.addr, timeout=600)
            h = {"Authorization": f"Bearer {self.token}"}
            if self.after:
                h["Last-Event-ID"] = str(self.after)
            conn.request("GET", f"/v1/runs/{self.run_id}/events", headers=h)
            r = conn.getresponse()
            kind, eid = None, None
            while True:
                line = r.readline()
                if not line:
                    return
                line = line.decode("utf-8", "replace").rstrip("\r\n")
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("id:"):
                    eid = int(line[3:].strip())
                elif line.startswith("data:"):
                    try:
                        data = json.loads(line[5:].strip())
                    except ValueError:
                        data = {}
                    self.sink.append((time.monotonic(), eid, kind, data))
        except (OSError, http.client.HTTPException, ValueError):
            return


class Trial:
    def __init__(self, args, n, rng):
        self.args, self.n, self.rng = args, n, rng
        self.dir = Path(tempfile.mkdtemp(prefix=f"curate-chaos-{n:02d}-"))
        self.env = dict(os.environ, CURATE_LOG="info")
        self.env.pop("CURATE_SERVER", None)
        self.env.pop("CURATE_TOKEN", None)
        self.schema = None
        if args.backend == "postgres":
            self.schema = f"chaos_{os.getpid()}_{n}_{rng.randrange(1 << 30)}"
            psql(f"CREATE SCHEMA {self.schema}")
            self.env["CURATE_REGISTRY"] = f"{PG_BASE}?options=-csearch_path%3D{self.schema}"
        self.procs = []  # every process started, to end them all at the end
        self.server = None
        self.addr = None
        self.workers = []  # (Popen, name)
        self.worker_count = 0
        self.run_id = None
        self.token = None
        self.incarnation = 0
        self.events = []
        self.notes = []

    # --- processes ---------------------------------------------------------------

    def curate(self, *argv):
        return run_curate(self.args.bin, self.dir, self.env, *argv)

    def start_server(self):
        self.incarnation += 1
        p, self.addr = start_serve(self.args.bin, self.dir, self.env, self.dir / f"serve-{self.incarnation}.log",
                                   "--workers", "0", "--lease-secs", str(int(LEASE)))
        self.procs.append(p)
        self.server = p
        if self.run_id is not None:  # follow the run's events again on the new server
            Events(self.addr, self.token, self.run_id, self.last_event_id(), self.events).start()

    def start_worker(self):
        self.worker_count += 1
        out = open(self.dir / f"worker-{self.worker_count}.log", "wb")
        env = dict(self.env, CURATE_TOKEN=self.token)
        p = subprocess.Popen([self.args.bin, "worker", "--server", f"http://{self.addr}", "--slots", "1"],
                             cwd=self.dir, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(p)
        self.workers.append((p, f"worker-{p.pid}"))
        return p

    def kill(self, p):
        try:
            os.kill(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                self.kill(p)

    def last_event_id(self):
        ids = [e[1] for e in self.events if e[1] is not None]
        return max(ids) if ids else 0

    # --- helpers -------------------------------------------------------------------

    def call(self, method, path, body=None, tries=50):
        """An API call to the current server, retried while it is unreachable (a restart)."""
        for _ in range(tries):
            try:
                return api(self.addr, self.token, method, path, body)
            except (OSError, http.client.HTTPException):
                time.sleep(0.1)
        raise RuntimeError(f"{method} {path}: the server at {self.addr} did not answer")

    def held(self):
        status, q = self.call("GET", "/v1/queue")
        if status != 200:
            raise RuntimeError(f"GET /v1/queue: {status} {q}")
        return q.get("held", [])

    def worker_ids(self):
        """Registry worker id -> worker name (`worker-PID`)."""
        status, w = self.call("GET", "/v1/workers")
        return {x["id"]: x["name"] for x in w.get("workers", [])}

    def run_state(self):
        status, r = self.call("GET", f"/v1/runs/{self.run_id}")
        if status != 200:
            raise RuntimeError(f"GET /v1/runs/{self.run_id}: {status} {r}")
        return r

    # --- the trial -----------------------------------------------------------------

    def write_input(self):
        a = self.args
        (self.dir / "in").mkdir()
        self.expected = set()
        self.total = 0
        for f in range(a.files):
            lines = []
            for i in range(f * a.records, (f + 1) * a.records):
                rid = f"r{i}"
                if self.rng.random() < 0.25:
                    text = f"short {i}"
                else:
                    text = f"record number {i} has enough words to pass the length filter easily" + " and more" * self.rng.randrange(4)
                    self.expected.add(rid)
                lines.append(json.dumps({"id": rid, "text": text}))
                self.total += 1
            (self.dir / "in" / f"part-{f}.jsonl").write_text("\n".join(lines) + "\n")

    def spec(self, name, out):
        fmt = f"  format: {self.args.format}\n" if self.args.format != "parquet" else ""
        return (f"name: {name}\ninput:\n  path: in/*.jsonl\n  id_field: id\nsteps:\n  - op: length_filter\n    min_chars: 30\n"
                f"  - op: normalize\n    form: nfc\noutput:\n  path: {out}\n{fmt}")

    def execute(self):
        a, rng = self.args, self.rng
        t0 = time.monotonic()
        self.write_input()
        (self.dir / "ref.yaml").write_text(self.spec("reference", "ref"))
        r0 = time.monotonic()
        self.curate("run", "ref.yaml")
        self.ref_secs = time.monotonic() - r0
        self.token = self.curate("tokens", "create", "--scope", "run", "--name", "chaos").split()[-1]
        self.start_server()
        self.start_worker()
        self.start_worker()
        status, created = self.call("POST", "/v1/runs", {"spec": self.spec("chaos", "out")})
        if status != 201:
            raise RuntimeError(f"POST /v1/runs: {status} {created}")
        self.run_id = created["id"]
        submitted = self.submitted = time.monotonic()
        Events(self.addr, self.token, self.run_id, 0, self.events).start()

        # The kills: the first alternates worker/server by trial, a second (half the trials) is
        # random. A worker is killed while it holds a map task; the server while the run is
        # being planned, mapped or committed (chosen at random).
        kinds = ["worker" if self.n % 2 == 1 else "server"]
        if rng.random() < a.second_kill:
            kinds.append(rng.choice(["worker", "server"]))
        self.retakes = []
        for i, kind in enumerate(kinds):
            if i > 0:
                time.sleep(rng.uniform(0.1, 0.5))
            phase = "map" if kind == "worker" else rng.choice(["plan", "map", "commit"])
            if not self.wait_phase(phase):
                self.notes.append(f"{kind} kill ({phase}) skipped: the run ended first")
                continue
            at = time.monotonic() - submitted
            if kind == "worker":
                self.kill_worker(at)
            else:
                self.kill_server(at, phase)

        # Wait for the end.
        deadline = time.monotonic() + a.run_timeout
        while True:
            run = self.run_state()
            if run["state"] in ("succeeded", "failed", "cancelled"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"run {self.run_id} did not end within {a.run_timeout}s: {run}")
            time.sleep(0.1)
        self.run_secs = time.monotonic() - submitted
        self.run = run
        self.check(run)
        self.wall = time.monotonic() - t0

    def wait_phase(self, phase):
        """Waits for a random moment of `phase`: planning (right after submission), a random map
        task held, or the commit held. False when the run ends first."""
        if phase == "plan":
            time.sleep(max(0.0, self.rng.uniform(0.0, 0.3) - (time.monotonic() - self.submitted)))
            return self.run_state()["state"] not in ("succeeded", "failed", "cancelled")
        target = self.rng.randrange(max(1, self.args.files - 1))
        while True:
            held = self.held()
            if phase == "map" and any(t["kind"] == "map" and t["shard"] >= target for t in held):
                time.sleep(self.rng.uniform(0.0, 0.2))
                return True
            if phase == "commit" and any(t["kind"] == "commit" for t in held):
                return True
            if self.run_state()["state"] in ("succeeded", "failed", "cancelled"):
                return False
            time.sleep(0.01)

    def kill_worker(self, at):
        """SIGKILL a worker that holds a map or reduce task, start a replacement, time the retake."""
        deadline = time.monotonic() + 30
        victim = None
        while victim is None:
            held = [t for t in self.held() if t["kind"] in ("map", "reduce") and t.get("worker")]
            names = self.worker_ids()
            live = {name: p for p, name in self.workers if p.poll() is None}
            holders = {}
            for t in held:
                name = names.get(t["worker"])
                if name in live:
                    holders.setdefault((t["worker"], name), []).append(t["task"])
            if holders:
                (wid, name), tasks = self.rng.choice(sorted(holders.items()))
                victim = (wid, name, tasks, live[name])
                break
            if self.run_state()["state"] in ("succeeded", "failed", "cancelled"):
                self.notes.append("worker kill skipped: run ended before a worker held a task")
                return
            if time.monotonic() > deadline:
                raise RuntimeError("no worker held a map/reduce task for 30 s")
            time.sleep(0.02)
        wid, name, tasks, proc = victim
        self.kill(proc)
        killed = time.monotonic()
        self.start_worker()
        # Until each task is held by another worker or done.
        pending = set(tasks)
        how = {}
        while pending:
            now = time.monotonic()
            for t in self.held():
                if t["task"] in pending and t.get("worker") and t["worker"] != wid:
                    how[t["task"]] = (now - killed, f"held by {'-'.join(t['worker'].split('-')[:2])}")
                    pending.discard(t["task"])
            for (at_ev, _, kind, data) in list(self.events):
                if kind == "task" and data.get("task") in pending and at_ev >= killed:
                    if data.get("state") == "done" or (data.get("state") == "leased" and data.get("worker") != wid):
                        how[data["task"]] = (at_ev - killed, f"{data.get('state')} (event)")
                        pending.discard(data["task"])
            if pending and now - killed > 60:
                raise RuntimeError(f"tasks {sorted(pending)} of killed worker {name} not retaken within 60 s")
            if pending:
                time.sleep(0.05)
        worst = max(v[0] for v in how.values())
        self.retakes.append(worst)
        detail = ", ".join(f"task {t} {how[t][1]} after {how[t][0]:.2f}s" for t in sorted(how))
        self.notes.append(f"killed worker {name} at {at:.2f}s holding {sorted(tasks)}: {detail}")

    def kill_server(self, at, phase):
        self.kill(self.server)
        pause = self.rng.uniform(0.0, 1.0)
        time.sleep(pause)
        self.start_server()
        old = [p for p, _ in self.workers if p.poll() is None]
        for p in old:
            self.kill(p)
        for _ in old:
            self.start_worker()
        self.notes.append(f"killed server ({phase}) at {at:.2f}s, back after {pause:.2f}s on {self.addr} (incarnation {self.incarnation}), workers restarted")

    def check(self, run):
        problems = []
        if run["state"] != "succeeded":
            problems.append(f"run {self.run_id} is {run['state']}: {run.get('error')}")
        if run.get("version") != "chaos@1":
            problems.append(f"run committed {run.get('version')}, expected chaos@1")
        if run.get("records_out") != len(self.expected):
            problems.append(f"records_out {run.get('records_out')} != {len(self.expected)} kept")
        if run.get("records_in") != self.total:
            problems.append(f"records_in {run.get('records_in')} != {self.total}")

        def tree(d):
            root = self.dir / d
            return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()} if root.is_dir() else {}

        out, ref = tree("out/data"), tree("ref/data")
        if out != ref:
            only_out = sorted(set(out) - set(ref))
            only_ref = sorted(set(ref) - set(out))
            differ = sorted(k for k in set(out) & set(ref) if out[k] != ref[k])
            problems.append(f"out/data differs from ref/data: only in out {only_out}, only in ref {only_ref}, different bytes {differ}")

        # The committed version's store objects: each one of out/data's files, all of them once.
        status, ds = self.call("GET", "/v1/datasets/chaos")
        versions = ds.get("versions", []) if status == 200 else []
        if len(versions) != 1:
            problems.append(f"dataset chaos has {len(versions)} versions: {[v.get('version') for v in versions]}")
        else:
            v = versions[0]
            store = self.dir / ".curate" / "store"
            objects = [(store / f["path"]).read_bytes() for f in v["files"]]
            if Counter(objects) != Counter(out.values()):
                problems.append(f"chaos@1's {len(objects)} store objects are not out/data's {len(out)} files")
            if v["rows"] != len(self.expected):
                problems.append(f"chaos@1 has {v['rows']} rows, expected {len(self.expected)}")
            if self.args.format == "jsonl":
                ids = Counter(json.loads(line)["id"] for b in objects for line in b.decode().splitlines() if line)
                repeated = sorted(i for i, c in ids.items() if c > 1)
                missing = sorted(self.expected - set(ids))
                extra = sorted(set(ids) - self.expected)
                if repeated or missing or extra or sum(ids.values()) != len(self.expected):
                    problems.append(f"chaos@1 ids: {sum(ids.values())} records, {len(repeated)} repeated {repeated[:5]}, "
                                    f"{len(missing)} missing {missing[:5]}, {len(extra)} unexpected {extra[:5]}")
        for r in self.retakes:
            if r > RETAKE_LIMIT:
                problems.append(f"a killed worker's task was retaken after {r:.2f}s > lease + 10 s = {RETAKE_LIMIT}s")
        self.problems = problems

    def cleanup(self, keep):
        self.stop_all()
        if self.schema and not keep:
            psql(f"DROP SCHEMA {self.schema} CASCADE")
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--seed", type=int, default=None, help="default: from the clock (printed)")
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--records", type=int, default=20000, help="records per file")
    ap.add_argument("--format", choices=["jsonl", "parquet"], default="jsonl",
                    help="output format (jsonl: the version's ids are also read and checked one by one)")
    ap.add_argument("--second-kill", type=float, default=0.5, help="chance of a second kill in a trial")
    ap.add_argument("--run-timeout", type=float, default=300)
    ap.add_argument("--bin", default=str(Path(__file__).resolve().parents[2] / "target/debug/curate"), help="the curate binary (copy it first if it may be rebuilt meanwhile)")
    ap.add_argument("--verbose", action="store_true", help="print each trial's run events")
    ap.add_argument("--keep", action="store_true", help="keep every trial's directory (failed ones are always kept)")
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else int(time.time())
    log(f"chaos: {a.trials} trials, backend {a.backend}, seed {seed}, {a.files} files x {a.records} records, "
        f"output {a.format}, lease {LEASE:.0f}s, binary {a.bin}")
    rng = random.Random(seed)
    start = time.monotonic()
    passed, retakes, failures = 0, [], []
    for n in range(1, a.trials + 1):
        t = Trial(a, n, random.Random(rng.randrange(1 << 62)))
        ok = False
        try:
            t.execute()
            ok = not t.problems
            retakes += t.retakes
            status = "ok" if ok else "FAIL: " + "; ".join(t.problems)
            if a.verbose:
                for (at_ev, _, kind, data) in t.events:
                    log(f"    {at_ev - t.submitted:7.2f}s {kind} {json.dumps(data)}")
            log(f"trial {n:2d} {status} | {'; '.join(t.notes) or 'no kill'} | run {t.run_secs:.1f}s (reference {t.ref_secs:.1f}s), "
                f"trial {t.wall:.1f}s, {len(t.expected)} kept of {t.total}, dir {t.dir if not ok or a.keep else '(removed)'}")
        except Exception as e:  # noqa: BLE001 - a trial that breaks is a failure, reported with its directory
            t.problems = [f"{type(e).__name__}: {e}"]
            log(f"trial {n:2d} FAIL: {e} | {'; '.join(t.notes)} | dir {t.dir}")
        finally:
            t.cleanup(keep=a.keep or not ok)
        if ok:
            passed += 1
        else:
            failures.append((n, t.dir, t.schema))
    wall = time.monotonic() - start
    log(f"summary: {passed}/{a.trials} trials passed, backend {a.backend}, seed {seed}, worker kills timed {len(retakes)}, "
        f"max retake {('%.2fs' % max(retakes)) if retakes else '-'} (limit {RETAKE_LIMIT:.0f}s), wall {wall:.0f}s")
    for n, d, schema in failures:
        log(f"  failed trial {n}: dir {d}" + (f", schema {schema}" if schema else ""))
    sys.exit(0 if passed == a.trials else 1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A stand-in for `curate serve` with canned answers, for developing the web UI without the Rust server.

    python3 tests/browser/mock-server.py PORT [TOKEN] [-q]   (TOKEN defaults to "secret"; -q: no request log)
    node tests/browser/ui.mjs --url http://127.0.0.1:PORT --token secret --run 12 \
        --dataset web --record web-000042 --live 15

Serves crates/curate-server/ui/index.html at / (read on every request, so edits show on reload) and
the /v1 API of the contract. Runs 15 and up are "live": queued for a moment, then one task a second,
then succeeded; their /events stream sends state/progress/task events and closes every few seconds
so that the UI's reconnect with Last-Event-ID gets exercised. Listens on 127.0.0.1 only.
"""
import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

ROOT = Path(__file__).resolve().parents[2]
INDEX = ROOT / "crates" / "curate-server" / "ui" / "index.html"
ARGS = [a for a in sys.argv[1:] if a != "-q"]
QUIET = "-q" in sys.argv[1:]
TOKEN = ARGS[1] if len(ARGS) > 1 else "secret"
LOCK = threading.Lock()
# "server": diff, explain, ops and pipelines answer in the shapes crates/curate-server produces
# ({old,new,added:[ids],added_count,...}, {record, occurrences:[...]}, summary, no trigger);
# "brief": in the shapes of the first API sketch ({from,to,added:N,added_ids}, {id, source, ...}).
SHAPE = os.environ.get("MOCK_SHAPE", "server")
T0 = time.time()


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


STEPS = ["00-clean_text", "01-lang_filter", "02-quality", "03-dedup_exact", "04-dedup_minhash"]


def finished_run(rid, pipeline, state, created, n_in, version=None, error=None, attempt=1):
    steps, left = [], n_in
    rejected = 0
    for i, s in enumerate(STEPS if state != "cancelled" else STEPS[:2]):
        drop = {"too_short": left // 50} if i == 0 else ({"not_en": left // 30} if i == 1 else ({"low_quality": left // 40, "boilerplate": left // 90} if i == 2 else {"duplicate": left // 20}))
        errs = 3 if (state == "failed" and i == len(STEPS) - 1) else 0
        d = sum(drop.values())
        steps.append({"step": s, "input": left, "kept": left - d, "errors": errs, "dropped": drop})
        left -= d
        rejected += d
    tasks = 8
    return {
        "id": rid, "pipeline": pipeline, "state": state, "priority": rid % 3,
        "created_at": iso(created), "started_at": iso(created + 4), "ended_at": iso(created + 4 + 37 + rid * 3),
        "records_in": n_in, "records_out": left if state == "succeeded" else 0, "records_rejected": rejected,
        "steps": steps, "progress": {"tasks_done": tasks if state == "succeeded" else 5, "tasks_total": tasks},
        "version": version, "error": error, "waiting_for": None, "attempt": attempt,
    }


RUNS = {}
now = time.time()
for i in range(1, 15):
    pipe = ["web", "books", "code"][i % 3]
    state = "succeeded"
    err = None
    if i in (5, 9):
        state, err = "failed", "step 04-dedup_minhash: worker w-2 lost its lease 3 times (last: connection reset by peer)"
    if i == 7:
        state = "cancelled"
    ver = None
    if state == "succeeded":
        ver = {12: "web@3", 6: "web@2", 3: "web@1"}.get(i, f"{pipe}@{max(1, i // 3)}")
    RUNS[i] = finished_run(i, pipe, state, now - (20 - i) * 3600, 655 if i == 12 else 400 + i * 37, ver, err)
RUNS[12]["steps"][0] = {"step": "00-clean_text", "input": 655, "kept": 650, "errors": 0, "dropped": {"too_short": 5}}

# Live runs: (t_start, total_tasks, pipeline, cancelled_at)
LIVE = {}


def add_live(rid, pipeline, delay):
    LIVE[rid] = {"t0": time.time() + delay, "total": 10, "pipeline": pipeline, "cancelled": None, "attempt": 1,
                 "created": time.time()}


add_live(15, "web", 3)
add_live(16, "books", 40)


def live_run(rid):
    lv = LIVE[rid]
    t = time.time()
    done = max(0, min(lv["total"], int(t - lv["t0"])))
    if lv["cancelled"] is not None:
        state = "cancelled"
        done = max(0, min(lv["total"], int(lv["cancelled"] - lv["t0"])))
    elif t < lv["t0"]:
        state = "queued"
    elif done < lv["total"]:
        state = "running"
    else:
        state = "succeeded"
    n_in, n_out = done * 100, done * 92
    ended = None
    if state == "succeeded":
        ended = iso(lv["t0"] + lv["total"])
    elif state == "cancelled":
        ended = iso(lv["cancelled"])
    steps = []
    if done:
        steps = [{"step": "00-clean_text", "input": n_in, "kept": n_in - done * 3, "errors": 0, "dropped": {"too_short": done * 3}},
                 {"step": "01-lang_filter", "input": n_in - done * 3, "kept": n_out, "errors": 0, "dropped": {"not_en": done * 5}}]
    return {
        "id": rid, "pipeline": lv["pipeline"], "state": state, "priority": 1,
        "created_at": iso(lv["created"]), "started_at": iso(lv["t0"]) if t >= lv["t0"] else None, "ended_at": ended,
        "records_in": n_in, "records_out": n_out, "records_rejected": n_in - n_out, "steps": steps,
        "progress": {"tasks_done": done, "tasks_total": lv["total"]},
        "version": f"{lv['pipeline']}@9" if state == "succeeded" else None, "error": None,
        "waiting_for": "a free slot (4/4 used)" if state == "queued" else None, "attempt": lv["attempt"],
    }


def get_run(rid):
    return live_run(rid) if rid in LIVE else RUNS.get(rid)


def all_runs():
    ids = sorted(set(RUNS) | set(LIVE), reverse=True)
    return [get_run(i) for i in ids]


SPEC_WEB = """# pipelines/web.toml
[source]
kind = "jsonl"
path = "s3://corpus/web/*.jsonl.zst"

[[step]]
op = "clean_text"
min_chars = 200

[[step]]
op = "lang_filter"
keep = ["en"]
threshold = 0.65

[[step]]
op = "dedup_minhash"
bands = 20
rows = 5

[sink]
dataset = "web"
format = "parquet"
"""
PIPELINES = [
    {"name": "web", "spec": SPEC_WEB, "updated_at": iso(now - 86400), "priority": 1, "max_slots": 4,
     "trigger": {"kind": "watch", "path": "s3://corpus/web/", "debounce_s": 60}},
    {"name": "books", "spec": "[source]\nkind = \"parquet\"\npath = \"data/books/\"\n\n[[step]]\nop = \"clean_text\"\n\n[sink]\ndataset = \"books\"\n",
     "updated_at": iso(now - 7200), "priority": 0, "max_slots": 2, "trigger": None},
    {"name": "code", "spec": "[source]\nkind = \"jsonl\"\npath = \"data/code/\"\n\n[[step]]\nop = \"dedup_exact\"\n\n[sink]\ndataset = \"code\"\n",
     "updated_at": iso(now - 3600), "priority": 2, "max_slots": 1, "trigger": {"kind": "cron", "schedule": "0 * * * *"}},
]


def version(name, v, rows, run):
    return {"version": f"{name}@{v}", "created": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(now - (5 - v) * 86400)),
            "rows": rows, "bytes": rows * 2113,
            "files": [{"path": f"{name}/v{v}/part-{k:05d}.parquet", "content_hash": f"blake3:{(v * 7919 + k) * 104729:064x}"[:71],
                       "rows": rows // 2, "bytes": rows * 1056} for k in range(2)],
            "parents": [f"{name}@{v - 1}"] if v > 1 else [],
            "sources": [{"path": f"s3://corpus/{name}/shard-{k}.jsonl.zst", "content_hash": f"sha256:{k * 31337 + v:064x}"} for k in range(3)],
            "spec_hash": f"{v * 0xabcdef:016x}", "run": {1: 3, 2: 6, 3: 12}.get(v, 1), "tags": ["prod"] if v == 3 else [],
            "forget_audit": {"requests": 1, "removed": 2, "at": "2026-12-06 09:00:00Z"} if (name == "web" and v == 3) else None}


DATASETS = {
    "web": [version("web", 1, 600, 3), version("web", 2, 580, 6), version("web", 3, 600, 12)],
    "web-dedup": [version("web-dedup", 1, 510, 13)],
    "books": [version("books", 1, 1200, 11), version("books", 2, 1210, 14)],
}
DERIVED = {"web-dedup": "web"}


def ids_of(ver):
    name, v = ver.split("@")
    v = int(v)
    if name == "web":
        if v == 1:
            return list(range(1, 601))
        if v == 2:
            return list(range(21, 601))
        return list(range(21, 621))
    return list(range(1, 1 + 500 + v * 10))


WORDS = ("the quick brown fox jumps over the lazy dog while curated corpora keep only clean text "
         "deduplicated by minhash and filtered by language so training sees fewer boilerplate pages").split()


def record(name, i):
    text = " ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(12 + i % 30)).capitalize() + "."
    return {"id": f"{name}-{i:06d}", "text": text, "lang": "en", "quality": round(0.5 + (i % 50) / 100, 2),
            "url": f"https://example.org/{name}/{i}"}


WATCHES = {
    "web": {"pipeline": "web", "state": "active", "cursor": {"s3_after": "web/shard-0042.jsonl.zst"}, "lag_seconds": 42, "last_version": "web@3"},
    "code": {"pipeline": "code", "state": "paused", "cursor": "2026-12-05T09:00:00Z", "lag_seconds": 7300, "last_version": None},
}
OPS = [
    {"name": "clean_text", "kind": "map", "version": "1.2.0", "description": "Normalise unicode and whitespace; drop records shorter than min_chars.",
     "params": {"type": "object", "properties": {"min_chars": {"type": "integer", "default": 200}}}},
    {"name": "lang_filter", "kind": "filter", "version": "0.9.1", "description": "Keep records whose detected language is in keep.",
     "params": {"type": "object", "properties": {"keep": {"type": "array", "items": {"type": "string"}}, "threshold": {"type": "number"}}}},
    {"name": "dedup_minhash", "kind": "global", "version": "2.0.0", "description": "Near-duplicate removal with MinHash LSH.",
     "params": {"type": "object", "properties": {"bands": {"type": "integer"}, "rows": {"type": "integer"}}}},
]


def problem(status, title, detail):
    return status, {"type": "about:blank", "title": title, "status": status, "detail": detail}


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        if not QUIET:
            sys.stderr.write("mock: " + (fmt % args) + "\n")

    def send_json(self, status, body, ctype="application/json"):
        data = json.dumps(body).encode()
        if status >= 400 and ctype == "application/json":
            ctype = "application/problem+json"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(n) if n else b""
        self.handle_any("POST")

    def handle_any(self, method):
        u = urlsplit(self.path)
        path, q = u.path, {k: v[0] for k, v in parse_qs(u.query).items()}
        if path in ("/", "/index.html") and method == "GET":
            data = INDEX.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if path == "/healthz":
            return self.send_json(200, {"status": "ok"})
        if not path.startswith("/v1/"):
            return self.send_json(*problem(404, "Not Found", f"no route {path}"))
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return self.send_json(*problem(401, "Unauthorized", "missing bearer token"))
        if auth[7:] != TOKEN:
            return self.send_json(*problem(401, "Unauthorized", "invalid token"))
        parts = [unquote(p) for p in path[4:].split("/") if p]
        try:
            with LOCK:
                out = self.route(method, parts, q)
        except KeyError as e:
            out = problem(404, "Not Found", f"unknown {e.args[0]}")
        if out == "SSE":
            return self.sse(int(parts[1]))
        status, body = out
        self.send_json(status, body)

    def route(self, m, p, q):
        if p == ["runs"] and m == "GET":
            runs = all_runs()
            if q.get("state"):
                runs = [r for r in runs if r["state"] == q["state"]]
            if q.get("pipeline"):
                runs = [r for r in runs if r["pipeline"] == q["pipeline"]]
            off = int(q.get("cursor") or 0)
            lim = int(q.get("limit") or 50)
            page = runs[off:off + lim]
            nxt = str(off + lim) if off + lim < len(runs) else None
            return 200, {"runs": page, "next_cursor": nxt}
        if p == ["runs"] and m == "POST":
            body = json.loads(self.body or b"{}")
            name = body.get("pipeline")
            if name not in [x["name"] for x in PIPELINES]:
                return problem(404, "Not Found", f"no pipeline named {name!r}")
            rid = max(set(RUNS) | set(LIVE)) + 1
            add_live(rid, name, 2)
            return 201, live_run(rid)
        if len(p) >= 2 and p[0] == "runs":
            try:
                rid = int(p[1])
            except ValueError:
                return problem(400, "Bad Request", f"run id {p[1]!r} is not a number")
            r = get_run(rid)
            if r is None:
                return problem(404, "Not Found", f"no run {rid}")
            if len(p) == 2:
                return 200, r
            if p[2] == "events":
                return "SSE"
            if p[2] == "cancel" and m == "POST":
                if r["state"] not in ("queued", "running"):
                    return problem(409, "Conflict", f"run {rid} is {r['state']}; only queued or running runs can be cancelled")
                if rid in LIVE:
                    LIVE[rid]["cancelled"] = time.time()
                else:
                    r["state"] = "cancelled"
                return 200, get_run(rid)
            if p[2] == "retry" and m == "POST":
                if r["state"] not in ("failed", "cancelled"):
                    return problem(409, "Conflict", f"run {rid} is {r['state']}; only failed or cancelled runs can be retried")
                att = r["attempt"] + 1
                if rid in RUNS:
                    del RUNS[rid]
                add_live(rid, r["pipeline"], 2)
                LIVE[rid]["attempt"] = att
                return 200, live_run(rid)
        if p == ["pipelines"]:
            if SHAPE == "server":
                return 200, {"pipelines": [{k: v for k, v in x.items() if k != "trigger"} | {"created_at": iso(now - 9 * 86400)} for x in PIPELINES]}
            return 200, {"pipelines": PIPELINES}
        if len(p) == 2 and p[0] == "pipelines":
            for x in PIPELINES:
                if x["name"] == p[1]:
                    return 200, x
            return problem(404, "Not Found", f"no pipeline named {p[1]!r}")
        if p == ["datasets"]:
            return 200, {"datasets": [{"name": n, "latest": len(v), "derived_from": DERIVED.get(n)} for n, v in DATASETS.items()]}
        if len(p) == 2 and p[0] == "datasets":
            if p[1] not in DATASETS:
                return problem(404, "Not Found", f"no dataset named {p[1]!r}")
            return 200, {"name": p[1], "versions": DATASETS[p[1]]}
        if len(p) == 3 and p[0] == "datasets" and p[2] == "records":
            name, _, v = p[1].partition("@")
            if name not in DATASETS or not v.isdigit() or not (1 <= int(v) <= len(DATASETS[name])):
                return problem(404, "Not Found", f"no dataset version {p[1]!r}")
            lim = int(q.get("limit") or 20)
            return 200, {"records": [record(name, i) for i in ids_of(p[1])[:lim]]}
        if p == ["diff"]:
            a, b = q.get("from", ""), q.get("to", "")
            try:
                ia, ib = set(ids_of(a)), set(ids_of(b))
            except (ValueError, KeyError):
                return problem(400, "Bad Request", "from and to must be NAME@VERSION")
            lim = int(q.get("limit") or 50)
            name = b.split("@")[0]
            add, rem = sorted(ib - ia), sorted(ia - ib)
            if SHAPE == "server":
                return 200, {"old": a, "new": b, "added": [f"{name}-{i:06d}" for i in add[:lim]], "removed": [f"{name}-{i:06d}" for i in rem[:lim]],
                             "added_count": len(add), "removed_count": len(rem), "files_added": 2, "files_removed": 2,
                             "why": ["input file changed: s3://corpus/web/shard-1.jsonl.zst", "spec changed (steps, parameters, operator versions or input settings)"]}
            return 200, {"from": a, "to": b, "added": len(add), "removed": len(rem),
                         "added_ids": [f"{name}-{i:06d}" for i in add[:lim]], "removed_ids": [f"{name}-{i:06d}" for i in rem[:lim]]}
        if len(p) == 2 and p[0] == "records":
            mt = re.fullmatch(r"([a-z-]+)-(\d{6})", p[1])
            if not mt or mt.group(1) not in DATASETS:
                return problem(404, "Not Found", f"no record with id {p[1]!r} in any run's lineage")
            name, i = mt.group(1), int(mt.group(2))
            dropped = {"step": "00-clean_text", "reason": "too_short"} if i % 97 == 0 else None
            vers = [v["version"] for v in DATASETS[name] if i in ids_of(v["version"])] if not dropped else []
            ops = [{"name": o["name"], "version": o["version"], "params": {"min_chars": 200} if o["name"] == "clean_text" else {}} for o in OPS]
            if SHAPE == "server":
                return 200, {"record": p[1],
                             "occurrences": [{"run": 12, "source_id": f"src-{i}", "source_file": f"s3://corpus/{name}/shard-{i % 3}.jsonl.zst", "source_offset": i * 1711,
                                              "operators": ops, "dropped": dropped, "file": None if dropped else f"{name}/v3/part-00000.parquet"}],
                             "versions": [{"version": v, "file": f"{name}/v{v.split('@')[1]}/part-00000.parquet"} for v in vers],
                             "derived": [{"record": f"web-dedup-{i:06d}", "from": f"src-{i}", "versions": [{"version": "web-dedup@1", "file": "web-dedup/v1/part-00000.parquet"}]}] if name == "web" else [],
                             "forgotten": []}
            return 200, {"id": p[1], "found": True,
                         "source": {"id": f"src-{i}", "file": f"s3://corpus/{name}/shard-{i % 3}.jsonl.zst", "offset": i * 1711, "row": None},
                         "operators": [{"name": o["name"], "version": o["version"], "params": {"min_chars": 200} if o["name"] == "clean_text" else {}} for o in OPS],
                         "dropped": dropped, "versions": vers, "forgotten": []}
        if p == ["queue"]:
            live = [r for r in all_runs() if r["state"] in ("running", "queued")]
            held = [{"worker": f"w-{k + 1}", "task": f"t-{r['id']}-{k}", "run": r["id"], "pipeline": r["pipeline"], "kind": "map",
                     "stage": "00-clean_text", "shard": k, "lease_expires": iso(time.time() + 30)}
                    for r in live if r["state"] == "running" for k in range(2)]
            held.append({"worker": "w-3", "task": "t-ext-1", "run": 14, "pipeline": "code", "kind": "global", "stage": "03-dedup_exact", "shard": None, "lease_expires": iso(time.time() + 12)})
            queued = [{"run": r["id"], "pipeline": r["pipeline"], "waiting_for": r["waiting_for"] or "a free slot", "priority": r["priority"]} for r in live if r["state"] == "queued"]
            return 200, {"slots": {"total": 4, "used": len(held)}, "held": held, "queued": queued}
        if p == ["workers"]:
            return 200, {"workers": [
                {"id": "w-1", "name": "alpha", "host": "node-a", "slots": 2, "last_seen": iso(time.time() - 2), "tasks": 2, "alive": True},
                {"id": "w-2", "name": "beta", "host": "node-b", "slots": 2, "last_seen": iso(time.time() - 900), "tasks": 0, "alive": False},
                {"id": "w-3", "name": "gamma", "host": "node-c", "slots": 1, "last_seen": iso(time.time() - 1), "tasks": 1, "alive": True}]}
        if p == ["watches"]:
            return 200, {"watches": list(WATCHES.values())}
        if len(p) == 3 and p[0] == "watches" and p[2] in ("pause", "resume") and self.command == "POST":
            w = WATCHES[p[1]]
            w["state"] = "paused" if p[2] == "pause" else "active"
            return 200, w
        if p == ["ops"]:
            if SHAPE == "server":
                return 200, {"ops": [{"name": o["name"], "version": o["version"], "kind": o["kind"], "summary": o["description"], "params": o["params"]} for o in OPS]}
            return 200, {"ops": OPS}
        return problem(404, "Not Found", "no route /v1/" + "/".join(p))

    def sse(self, rid):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            n = int(self.headers.get("Last-Event-ID") or 0)
        except ValueError:
            n = 0
        start = time.time()
        last = None

        def emit(ev, data):
            nonlocal n
            n += 1
            self.wfile.write(f"id: {n}\nevent: {ev}\ndata: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()

        try:
            self.wfile.write(b"retry: 1000\n: hello\n\n")
            while True:
                with LOCK:
                    r = get_run(rid)
                snap = (r["state"], r["progress"]["tasks_done"])
                if last is None:
                    emit("state", {"state": r["state"]})
                if last is None or snap[1] != last[1]:
                    if last is not None and snap[1] > last[1]:
                        emit("task", {"task": f"t-{rid}-{snap[1]}", "stage": "00-clean_text", "state": "succeeded"})
                    emit("progress", {"tasks_done": r["progress"]["tasks_done"], "tasks_total": r["progress"]["tasks_total"],
                                      "records_in": r["records_in"], "records_out": r["records_out"]})
                if last is not None and snap[0] != last[0]:
                    emit("state", {"state": r["state"]})
                last = snap
                if r["state"] in ("succeeded", "failed", "cancelled"):
                    return
                if time.time() - start > 4.5:  # hang up now and then: the client must reconnect
                    return
                time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            return


def main():
    port = int(ARGS[0]) if ARGS else 8787
    srv = ThreadingHTTPServer(("127.0.0.1", port), H)
    srv.daemon_threads = True
    print(f"mock curate serve on http://127.0.0.1:{port}/ (token {TOKEN!r})", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A toy model served over HTTP, with injectable faults, for testing remote operators.

The service scores text deterministically so a client's output can be checked
exactly, and it misbehaves on demand (429 over capacity, 503s, hangs, slow
phases, lost replies, poison records) so retry/backoff/idempotency logic can be
exercised against a real socket.

Usage:
    python3 model_service.py [--host 127.0.0.1] [--port 0] [--name toy-scorer]
        [--version 1] [--capacity 4] [--latency 0.01] [--fail-rate 0]
        [--timeout-rate 0] [--hang 5] [--duplicate-rate 0]
        [--slow-phase START:END:LATENCY] [--always-fail-ids ID1,ID2]
        [--seed 0] [--verbose]

It prints exactly one line, `listening on http://HOST:PORT`, then serves until
SIGTERM/SIGINT.

Endpoints:
    GET  /manifest  model description (name, version, columns, limits)
    POST /batch     score rows; needs an Idempotency-Key header. Body is JSON
                    {"columns": {"id": [...], "text": [...]}} or, when pyarrow
                    is installed, an Arrow IPC stream
                    (Content-Type: application/vnd.apache.arrow.stream).
    GET  /stats     counters, including how often each Idempotency-Key was
                    processed (so tests can see duplicate processing)
    POST /reset     clear the counters

Model: toy_score = (sum of ord(c) for c in text) % 1000 / 1000.0,
       toy_label = "long" if len(text) > 200 else "short".
"""
import argparse
import json
import random
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    import pyarrow as pa
except ImportError:  # Arrow is optional; JSON still works without it.
    pa = None

ARROW_TYPE = "application/vnd.apache.arrow.stream"
MAX_BATCH_SIZE = 64


class HttpError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def score(text):
    return sum(ord(c) for c in text) % 1000 / 1000.0, ("long" if len(text) > 200 else "short")


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.in_flight = 0
        self.reset()

    def reset(self):
        self.requests = 0
        self.ok = 0
        self.status_counts = {}
        self.processed = 0
        self.keys = {}
        self.rows_ok = 0
        # Requests still running across a reset keep counting toward the peak.
        self.max_in_flight = self.in_flight

    def snapshot(self):
        return {
            "requests": self.requests,
            "ok": self.ok,
            "status_counts": dict(self.status_counts),
            "processed": self.processed,
            "keys": dict(self.keys),
            "max_in_flight": self.max_in_flight,
            "rows_ok": self.rows_ok,
        }


def parse_json(body):
    try:
        doc = json.loads(body)
        cols = doc["columns"]
        ids, texts = cols["id"], cols["text"]
    except (ValueError, KeyError, TypeError) as e:
        raise HttpError(400, "malformed JSON batch: %r" % (e,))
    if not isinstance(ids, list) or not isinstance(texts, list) or len(ids) != len(texts):
        raise HttpError(400, "columns id and text must be lists of equal length")
    return ids, texts


def parse_arrow(body):
    try:
        table = pa.ipc.open_stream(pa.py_buffer(body)).read_all()
        ids = table.column("id").to_pylist()
        texts = table.column("text").to_pylist()
    except (pa.ArrowException, KeyError, ValueError) as e:
        raise HttpError(400, "malformed Arrow batch: %s" % (e,))
    return ids, texts


def encode_arrow(scores, labels):
    batch = pa.record_batch(
        [pa.array(scores, pa.float64()), pa.array(labels, pa.string())],
        names=["toy_score", "toy_label"],
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def make_handler(args, stats, rng, rng_lock, started):
    always_fail = set(filter(None, (args.always_fail_ids or "").split(",")))

    def batch_latency():
        if args.slow_phase:
            start, end, latency = args.slow_phase
            if start <= time.monotonic() - started < end:
                return latency
        return args.latency

    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.1 so clients can keep connections alive, as with a real service.
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            if args.verbose:
                super().log_message(fmt, *a)

        def send(self, status, body, content_type="application/json", headers=()):
            if not isinstance(body, bytes):
                body = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (e.g. timed out); nothing to do

        def read_body(self):
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def do_GET(self):
            if self.path == "/manifest":
                self.send(200, {
                    "name": args.name,
                    "version": args.version,
                    "input_columns": ["text"],
                    "output_schema": [{"name": "toy_score", "type": "float64"},
                                      {"name": "toy_label", "type": "utf8"}],
                    "max_batch_size": MAX_BATCH_SIZE,
                    "max_concurrency": args.advertise or args.capacity,
                })
            elif self.path == "/stats":
                with stats.lock:
                    snap = stats.snapshot()
                self.send(200, snap)
            else:
                self.send(404, {"error": "no such endpoint %s" % self.path})

        def do_POST(self):
            # Always drain the body so a kept-alive connection stays in sync.
            body = self.read_body()
            if self.path == "/reset":
                with stats.lock:
                    stats.reset()
                self.send(200, {"reset": True})
            elif self.path == "/batch":
                self.batch(body)
            else:
                self.send(404, {"error": "no such endpoint %s" % self.path})

        def batch(self, body):
            with stats.lock:
                stats.requests += 1
                admitted = stats.in_flight < args.capacity
                if admitted:
                    stats.in_flight += 1
                    stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
            if not admitted:
                self.finish_batch(429, {"error": "over capacity"},
                                  headers=[("Retry-After", "0.05")])
                return
            try:
                status, payload, ctype = self.process(body)
            except HttpError as e:
                status, payload, ctype = e.status, {"error": str(e)}, "application/json"
            finally:
                with stats.lock:
                    stats.in_flight -= 1
            self.finish_batch(status, payload, ctype)

        def finish_batch(self, status, payload, ctype="application/json", headers=()):
            with stats.lock:
                key = str(status)
                stats.status_counts[key] = stats.status_counts.get(key, 0) + 1
            self.send(status, payload, ctype, headers)

        def process(self, body):
            key = self.headers.get("Idempotency-Key")
            if not key:
                raise HttpError(400, "missing Idempotency-Key header")
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype == "application/json":
                ids, texts = parse_json(body)
            elif ctype == ARROW_TYPE and pa is not None:
                ids, texts = parse_arrow(body)
            else:
                raise HttpError(415, "unsupported Content-Type %r" % ctype)
            if len(ids) > MAX_BATCH_SIZE:
                raise HttpError(413, "batch of %d rows exceeds max_batch_size %d"
                                % (len(ids), MAX_BATCH_SIZE))
            if any(t is not None and not isinstance(t, str) for t in texts):
                raise HttpError(400, "text values must be strings or null")
            for i in ids:
                if str(i) in always_fail:
                    raise HttpError(500, "cannot score record %s" % i)
            # Draw every fault each time so a seed gives one fixed random stream.
            with rng_lock:
                fail, hang, dup = rng.random(), rng.random(), rng.random()
            if fail < args.fail_rate:
                raise HttpError(503, "injected 503")
            time.sleep(args.hang if hang < args.timeout_rate else batch_latency())
            scores, labels = zip(*(score(t or "") for t in texts)) if texts else ((), ())
            # Count before replying: the work is done even if the reply is lost.
            times = 2 if dup < args.duplicate_rate else 1
            with stats.lock:
                stats.processed += times
                stats.keys[key] = stats.keys.get(key, 0) + times
                stats.ok += 1
                stats.rows_ok += len(texts)
            if ctype == ARROW_TYPE:
                return 200, encode_arrow(list(scores), list(labels)), ARROW_TYPE
            return 200, {"columns": {"toy_score": list(scores), "toy_label": list(labels)}}, ctype

    return Handler


def slow_phase(value):
    try:
        start, end, latency = (float(x) for x in value.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError("expected START:END:LATENCY, got %r" % value)
    return start, end, latency


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--name", default="toy-scorer")
    p.add_argument("--version", default="1")
    p.add_argument("--capacity", type=int, default=4)
    p.add_argument("--advertise", type=int, help="max_concurrency the manifest claims (default: --capacity); "
                   "more than the capacity makes clients find the real limit through 429s")
    p.add_argument("--latency", type=float, default=0.01)
    p.add_argument("--fail-rate", type=float, default=0.0)
    p.add_argument("--timeout-rate", type=float, default=0.0)
    p.add_argument("--hang", type=float, default=5.0)
    p.add_argument("--duplicate-rate", type=float, default=0.0)
    p.add_argument("--slow-phase", type=slow_phase)
    p.add_argument("--always-fail-ids")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", action="store_true", help="log each request to stderr")
    args = p.parse_args()

    stats = Stats()
    handler = make_handler(args, stats, random.Random(args.seed), threading.Lock(),
                           time.monotonic())
    server = ThreadingHTTPServer((args.host, args.port), handler)
    server.daemon_threads = True  # a hung request must not block shutdown
    host, port = server.server_address[:2]
    print("listening on http://%s:%d" % (host, port), flush=True)
    # SystemExit from the handler unwinds serve_forever in the main thread.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()

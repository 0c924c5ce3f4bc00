"""What bench/serve/chaos.py and soak.py share: the local PostgreSQL, JSON calls to a
`curate serve`, running `curate`, and starting a server on a free port."""

import http.client
import json
import subprocess
import threading

PG_BASE = "postgres://root@127.0.0.1:5432/test"


def api(addr, token, method, path, body=None, headers=None, timeout=60):
    """One JSON call; returns (status, parsed body). Raises OSError when the server is unreachable."""
    conn = http.client.HTTPConnection(addr, timeout=timeout)
    try:
        h = {"Authorization": f"Bearer {token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        raw = r.read()
        try:
            return r.status, json.loads(raw)
        except ValueError:
            return r.status, raw.decode("utf-8", "replace")
    finally:
        conn.close()


def psql(sql, url=PG_BASE):
    """Runs SQL with psql; returns its unaligned output (columns separated by `|`)."""
    out = subprocess.run(["psql", url, "-qAt", "-F", "|", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True, capture_output=True, text=True)
    return out.stdout


def run_curate(binary, cwd, env, *argv):
    """Runs `curate ARGV`; returns its stdout, raising with its stderr when it fails."""
    out = subprocess.run([binary, *argv], cwd=cwd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"curate {' '.join(argv)} failed ({out.returncode}): {out.stderr[-2000:]}")
    return out.stdout


def start_serve(binary, cwd, env, log_path, *args):
    """Starts `curate serve --listen 127.0.0.1:0 ARGS` logging to `log_path`; returns (process, address)."""
    err = open(log_path, "wb")
    p = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0", *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=err)
    line = p.stdout.readline().decode().strip()
    if not line.startswith("listening on http://"):
        p.kill()
        raise RuntimeError(f"curate serve said {line!r} (log {log_path})")
    # Keep draining stdout so the server never blocks on a full pipe.
    threading.Thread(target=lambda: p.stdout.read(), daemon=True).start()
    return p, line[len("listening on http://"):]

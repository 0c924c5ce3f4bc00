"""The `remote` operator against tests/services/model_service.py, in one run (bench/remote/run.sh):

1. honest manifest (max_concurrency = capacity): throughput against the service's capacity,
   time until 90% of it is reached, share of 429s;
2. a manifest that claims 4x the real capacity: the same, the client finding the limit
   through 429s (additive increase, multiplicative decrease);
3. faults (503s, timeouts, lost replies, a slow phase): every record out exactly once;
4. a re-run with nothing changed: batch requests sent (target 0);
5. a slow service (every batch 10x slower) at two input sizes: curate's peak RSS.

Usage: python3 bench/remote/bench.py CURATE_BIN WORKDIR RECORDS
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
SERVICE = ROOT / "tests/services/model_service.py"
CAPACITY, LATENCY, BATCH = 8, 0.05, 64


def start(*args):
    p = subprocess.Popen([sys.executable, str(SERVICE), *args], stdout=subprocess.PIPE, text=True)
    url = p.stdout.readline().split("listening on ")[1].strip()
    return p, url


def stats(url):
    return json.loads(urllib.request.urlopen(f"{url}/stats").read())


def corpus(d, n):
    (d / "in").mkdir(parents=True, exist_ok=True)
    per = n // 4
    for f in range(4):
        with open(d / "in" / f"{f}.jsonl", "w") as out:
            for i in range(f * per, (f + 1) * per):
                out.write(json.dumps({"id": f"r{i:07d}", "text": f"record {i} " + "word " * (i % 50)}) + "\n")


def measured_capacity(url, seconds=5.0):
    """Batches per second the service answers to an ideal client: CAPACITY persistent
    connections sending back to back (the Python service falls short of its nominal
    CAPACITY / LATENCY, so this is the capacity the operator is held against)."""
    import http.client

    host, port = url[len("http://"):].split(":")
    body = json.dumps({"columns": {"id": [f"r{i}" for i in range(BATCH)], "text": ["record word word"] * BATCH}})
    ok = [0] * CAPACITY
    stop = time.monotonic() + seconds

    def client(k):
        c = http.client.HTTPConnection(host, int(port))
        i = 0
        while time.monotonic() < stop:
            c.request("POST", "/batch", body, {"Content-Type": "application/json", "Idempotency-Key": f"probe-{k}-{i}"})
            r = c.getresponse()
            r.read()
            ok[k] += r.status == 200
            i += 1

    ts = [threading.Thread(target=client, args=(k,)) for k in range(CAPACITY)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    urllib.request.urlopen(urllib.request.Request(f"{url}/reset", method="POST")).read()
    return sum(ok) / seconds * BATCH


def run(curate, d, url, extra=""):
    (d / "p.yaml").write_text(f"name: r\ninput: {{path: in/*.jsonl, id_field: id}}\nsteps:\n  - op: remote\n    url: {url}\n"
                              f"    batch_size: {BATCH}\n{extra}output: {{path: out}}\n")
    samples = []
    done = threading.Event()

    def poll():
        while not done.is_set():
            samples.append((time.monotonic(), stats(url)["rows_ok"]))
            time.sleep(0.5)

    t = threading.Thread(target=poll)
    t.start()
    start_t = time.monotonic()
    proc = subprocess.Popen([curate, "run", "p.yaml"], cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, CURATE_HOME=str(d / ".curate")))
    peak_kb = 0
    while proc.poll() is None:
        peak_kb = max(peak_kb, vm_hwm_kb(proc.pid))
        time.sleep(0.2)
    elapsed = time.monotonic() - start_t
    done.set()
    t.join()
    if proc.returncode != 0:
        raise SystemExit(f"curate run failed in {d}")
    run.peak_rss_mb = round(peak_kb / 1024, 1)
    return elapsed, samples


def vm_hwm_kb(pid):
    """A live process's peak RSS so far (VmHWM), 0 once it is gone."""
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def throughput(samples, elapsed, capacity_rows):
    rates = [(t1, (r1 - r0) / (t1 - t0)) for (t0, r0), (t1, r1) in zip(samples, samples[1:]) if t1 > t0]
    t_start = samples[0][0] if samples else 0
    first90 = next((t - t_start for t, r in rates if r >= 0.9 * capacity_rows), None)
    steady = [r for _, r in rates[len(rates) // 4: -1]] or [r for _, r in rates]
    return {"seconds_to_90pct": None if first90 is None else round(first90, 1),
            "steady_rows_per_s": round(sum(steady) / max(1, len(steady))),
            "steady_fraction_of_capacity": round(sum(steady) / max(1, len(steady)) / capacity_rows, 3)}


def scenario(curate, work, n, label, service_args):
    d = work / label
    shutil.rmtree(d, ignore_errors=True)
    corpus(d, n)
    svc, url = start(*service_args)
    try:
        capacity_rows = measured_capacity(url)
        params = "    timeout: 2\n    max_attempts: 30\n"
        elapsed, samples = run(curate, d, url, params)
        s = stats(url)
        out = json.loads((d / "out/run.json").read_text())
        row = {"capacity_rows_per_s": round(capacity_rows), "records_in": out["records_in"], "records_out": out["records_out"], "quarantined": out["quarantined"],
               "seconds": round(elapsed, 1), "requests": s["requests"], "429_share": round(s["status_counts"].get("429", 0) / max(1, s["requests"]), 4),
               "max_in_flight": s["max_in_flight"], "curate_peak_rss_mb": run.peak_rss_mb,
               **throughput(samples, elapsed, capacity_rows)}
        before = s["requests"]
        run(curate, d, url, params)
        row["rerun_batch_requests"] = stats(url)["requests"] - before
        return row
    finally:
        svc.kill()
        svc.wait()


def main():
    curate, work, n = str(pathlib.Path(sys.argv[1]).resolve()), pathlib.Path(sys.argv[2]).resolve(), int(sys.argv[3])
    base = ["--capacity", str(CAPACITY), "--latency", str(LATENCY)]
    report = {
        "nominal_capacity_rows_per_s": CAPACITY / LATENCY * BATCH,
        "honest_manifest": scenario(curate, work, n, "honest", base),
        "manifest_claims_4x": scenario(curate, work, n, "overclaim", base + ["--advertise", str(4 * CAPACITY)]),
        "faults": scenario(curate, work, n, "faults", base + ["--fail-rate", "0.05", "--timeout-rate", "0.01", "--hang", "5",
                                                            "--duplicate-rate", "0.01", "--slow-phase", "5:10:0.5", "--seed", "3"]),
    }
    # Memory while the service is slow (every batch 10x slower): the engine holds one batch
    # per thread and the operator one request per slot, whatever the input size.
    report["slow_service_small_input"] = scenario(curate, work, n // 10, "slow-small", ["--capacity", str(CAPACITY), "--latency", "0.5"])
    report["slow_service_large_input"] = scenario(curate, work, n // 5, "slow-large", ["--capacity", str(CAPACITY), "--latency", "0.5"])
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

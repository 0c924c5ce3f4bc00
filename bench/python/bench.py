"""The Python package's targets, measured side by side in one run (bench/python/run.sh):

1. a no-op Python operator added to the bench filter chain (GopherRepetition, GopherQuality,
   C4, FineWeb): wall time with it / without it (target <= 1.10);
2. two Python threads each running a pipeline vs one thread running one: throughput ratio
   (target >= 1.8 on 2 cores: the GIL is released while the engine works);
3. Ray on a local 2-CPU cluster: the chain + MinHash dedup with 2 workers vs 1 worker
   (target >= 1.7), output identical to the local executor, and the driver's peak RSS at
   two input sizes (target <= 300 MB at both).

Usage: python bench/python/bench.py WORKDIR SIZE_BYTES [SIZE_BYTES_2]
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import time

import curate

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def corpus(work: pathlib.Path, size: float, files: int = 8) -> pathlib.Path:
    """`files` JSONL files of the seeded bench corpus, `size` bytes in all."""
    d = work / f"corpus-{int(size)}"
    if not d.exists():
        tmp = work / "tmp.jsonl"
        subprocess.run([sys.executable, str(ROOT / "bench/gen_corpus.py"), str(tmp), str(size)], check=True)
        d.mkdir(parents=True)
        lines = tmp.read_text().splitlines(keepends=True)
        per = (len(lines) + files - 1) // files
        for i in range(files):
            (d / f"part-{i:02d}.jsonl").write_text("".join(lines[i * per:(i + 1) * per]))
        tmp.unlink()
    return d


CHAIN = [curate.ops.gopher_repetition, curate.ops.gopher_quality, curate.ops.c4_quality, curate.ops.fineweb_quality]


@curate.map_batches(version="1")
def noop(batch):
    return batch


def pipeline(name, raw, out, *extra):
    return curate.Pipeline(name, input=curate.read_jsonl(f"{raw}/*.jsonl", id_field="id"),
                           steps=[op() for op in CHAIN] + list(extra), output=curate.write_parquet(str(out)))


def timed(f):
    t = time.perf_counter()
    r = f()
    return time.perf_counter() - t, r


def best_of(n, f):
    return min(timed(f)[0] for _ in range(n))


def python_operator_overhead(work, raw):
    base = best_of(3, lambda: pipeline("chain", raw, work / "o1").run(threads=2, no_registry=True))
    with_py = best_of(3, lambda: pipeline("chain-py", raw, work / "o2", noop).run(threads=2, no_registry=True))
    return {"chain_s": round(base, 3), "chain_plus_noop_python_s": round(with_py, 3), "ratio": round(with_py / base, 3)}


def two_threads(work, raw):
    one = best_of(2, lambda: pipeline("t1", raw, work / "t1").run(threads=1, no_registry=True))

    def both():
        ts = [threading.Thread(target=lambda i=i: pipeline(f"t2-{i}", raw, work / f"t2-{i}").run(threads=1, no_registry=True))
              for i in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    two = best_of(2, both)
    return {"one_pipeline_s": round(one, 3), "two_pipelines_two_threads_s": round(two, 3),
            "throughput_ratio": round(2 * one / two, 3)}


def ray_driver(raw, workers, out):
    """One Ray run of the chain + MinHash in this process (a fresh driver); prints its peak RSS."""
    import ray

    ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
    t, r = timed(lambda: pipeline("ray", raw, out, curate.ops.minhash_dedup()).run(executor="ray", workers=workers))
    print(json.dumps({"seconds": t, "records_out": r.records_out, "driver_peak_rss_mb": round(peak_rss_mb(), 1)}))


def peak_rss_mb():
    """This process's peak RSS since it started (VmHWM: unlike getrusage's ru_maxrss, it does
    not carry over the forked parent's size across exec)."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def ray_runs(work, raws):
    import ray

    ctx = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    env = dict(os.environ, RAY_ADDRESS=ctx.address_info["gcs_address"])
    results = {}
    try:
        for size, raw in raws:
            row = {}
            for workers in (1, 2):
                d = work / f"ray-{size}-{workers}"
                shutil.rmtree(d, ignore_errors=True)
                d.mkdir(parents=True)
                out = subprocess.run([sys.executable, __file__, "--ray-driver", str(raw), str(workers), "out"], cwd=d,
                                     env=dict(env, CURATE_HOME=str(d / ".curate")), check=True, capture_output=True, text=True)
                row[workers] = json.loads(out.stdout.strip().splitlines()[-1])
            local = work / f"local-{size}"
            shutil.rmtree(local, ignore_errors=True)
            local.mkdir()
            os.chdir(local)
            os.environ["CURATE_HOME"] = str(local / ".curate")
            pipeline("ray", raw, "out", curate.ops.minhash_dedup()).run(threads=2)
            os.chdir(work)
            same = all(_files(work / f"ray-{size}-{w}" / "out") == _files(local / "out") for w in (1, 2))
            results[f"{size / 1e6:.0f}MB"] = {
                "one_worker_s": round(row[1]["seconds"], 3), "two_workers_s": round(row[2]["seconds"], 3),
                "speedup": round(row[1]["seconds"] / row[2]["seconds"], 3),
                "driver_peak_rss_mb": max(row[1]["driver_peak_rss_mb"], row[2]["driver_peak_rss_mb"]),
                "identical_to_local": same,
            }
    finally:
        ray.shutdown()
    return results


def _files(out):
    return {str(p.relative_to(out)): p.read_bytes() for sub in ("data", "rejects", "_lineage") for p in sorted((out / sub).rglob("*")) if p.is_file()}


def main():
    if sys.argv[1] == "--ray-driver":
        return ray_driver(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    work = pathlib.Path(sys.argv[1]).resolve()
    sizes = [float(s) for s in sys.argv[2:]] or [1e8, 4e8]
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)
    os.environ["CURATE_HOME"] = str(work / ".curate")
    raws = [(s, corpus(work, s)) for s in sizes]
    report = {
        "python_operator": python_operator_overhead(work, raws[0][1]),
        "two_python_threads": two_threads(work, raws[0][1]),
        "ray_local_2cpu": ray_runs(work, raws),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

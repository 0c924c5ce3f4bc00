"""Compare datatrove and curate outputs of the parity harness.

  compare.py filters DT.jsonl CURATE.jsonl [DISAGREEMENTS.jsonl]
  compare.py tokens  DT.jsonl CURATE.jsonl
  compare.py bench   DT.json  CURATE.json
  compare.py pipeline DT.json RUN.json TIME.json...   `curate run` of the chain (best of the TIME files)
"""
import collections
import json
import sys

FILTERS = ["gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality", "c4_quality_sentences"]
# Filters whose kept documents carry a rewritten text to compare.
REWRITES = {"c4_quality", "c4_quality_sentences"}


def read(path):
    with open(path, encoding="utf-8") as f:
        return {r["id"]: r for r in map(json.loads, f) if r}


def filters(dt, cu, dis_path):
    ids = [i for i in dt if i in cu]
    print(f"documents compared: {len(ids)} (datatrove {len(dt)}, curate {len(cu)})")
    print(f"{'filter':<20}{'docs':>7}{'dt kept':>9}{'keep/drop agree':>17}{'reason agree':>14}{'rewrite identical':>19}")
    dis = []
    ok = True
    for name in FILTERS:
        agree = reason = text_same = both_kept = 0
        for i in ids:
            a, b = dt[i][name], cu[i][name]
            if (a is None) == (b is None):
                agree += 1
            if a == b:
                reason += 1
            else:
                dis.append({"id": i, "filter": name, "datatrove": a, "curate": b})
            if name in REWRITES and a is None and b is None:
                both_kept += 1
                if dt[i][name + "_text"] == cu[i][name + "_text"]:
                    text_same += 1
                else:
                    dis.append({"id": i, "filter": name + "_text"})
        kept = sum(dt[i][name] is None for i in ids)
        pct = 100 * agree / len(ids)
        ok &= pct >= 99.5
        c4 = f"{100 * text_same / max(both_kept, 1):.2f}% of {both_kept}" if name in REWRITES else ""
        print(f"{name:<20}{len(ids):>7}{kept:>9}{pct:>16.2f}%{100 * reason / len(ids):>13.2f}%{c4:>19}")
    classes = collections.Counter((d["filter"], d.get("datatrove"), d.get("curate")) for d in dis)
    if classes:
        print("disagreement classes (filter, datatrove reason, curate reason): count")
        for k, v in classes.most_common():
            print(f"  {k}: {v}")
    if dis_path:
        with open(dis_path, "w", encoding="utf-8") as f:
            for d in dis:
                f.write(json.dumps(d) + "\n")
    return ok


def tokens(dt, cu):
    ids = [i for i in dt if i in cu]
    same_docs = same_words = total = 0
    first = []
    for i in ids:
        a, b = dt[i]["words"], cu[i]["words"]
        total += len(a)
        if a == b:
            same_docs += 1
            same_words += len(a)
            continue
        sm = collections.Counter(a) & collections.Counter(b)
        same_words += sum(sm.values())
        if len(first) < 15:
            j = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            first.append((i, a[max(0, j - 3): j + 4], b[max(0, j - 3): j + 4]))
    print(f"token parity: {100 * same_docs / len(ids):.2f}% of {len(ids)} documents tokenised identically; "
          f"{100 * same_words / max(total, 1):.3f}% of {total} datatrove words matched")
    for i, a, b in first:
        print(f"  {i}\n    datatrove: {a}\n    curate:    {b}")




def bench(dt_path, cu_path):
    with open(dt_path) as f:
        dt = json.loads(f.read().strip().splitlines()[-1])
    with open(cu_path) as f:
        cu = json.loads(f.read().strip().splitlines()[-1])
    print("chain GopherRepetition -> GopherQuality -> C4(filter_no_terminal_punct=False) -> FineWeb, one core")
    print(f"{'':<12}{'docs':>7}{'kept':>7}{'cpu s':>10}{'docs/cpu-s':>13}{'wall s':>10}{'docs/wall-s':>13}")
    for name, r in (("datatrove", dt), ("curate", cu)):
        n = r["docs"] * r["repeats"]
        print(f"{name:<12}{n:>7}{r['kept']:>7}{r['cpu_seconds']:>10.2f}{r['docs_per_cpu_s']:>13.1f}"
              f"{r['wall_seconds']:>10.2f}{r['docs_per_wall_s']:>13.1f}")
    print(f"speed-up per core (CPU time): {cu['docs_per_cpu_s'] / dt['docs_per_cpu_s']:.1f}x; "
          f"(wall clock: {cu['docs_per_wall_s'] / dt['docs_per_wall_s']:.1f}x)")
    if dt["kept"] != cu["kept"]:
        print(f"WARNING: chain kept counts differ: datatrove {dt['kept']}, curate {cu['kept']}")


def pipeline(dt_path, run_path, time_paths):
    with open(dt_path) as f:
        dt = json.loads(f.read().strip().splitlines()[-1])
    with open(run_path) as f:
        run = json.load(f)
    times = []
    for p in time_paths:
        with open(p) as f:
            times.append(json.loads(f.read().strip().splitlines()[-1]))
    best = min(times, key=lambda t: t["user"] + t["sys"])
    cpu, wall = best["user"] + best["sys"], best["wall"]
    n = run["records_in"]
    print(f"chain as `curate run --threads 1` steps (best of {len(times)} runs; whole process: read, filter, write)")
    print(f"{'':<12}{'docs':>7}{'kept':>7}{'cpu s':>10}{'docs/cpu-s':>13}{'wall s':>10}{'docs/wall-s':>13}")
    dt_n = dt["docs"] * dt["repeats"]
    print(f"{'datatrove':<12}{dt_n:>7}{dt['kept']:>7}{dt['cpu_seconds']:>10.2f}{dt['docs_per_cpu_s']:>13.1f}"
          f"{dt['wall_seconds']:>10.2f}{dt['docs_per_wall_s']:>13.1f}")
    print(f"{'curate run':<12}{n:>7}{run['records_out']:>7}{cpu:>10.2f}{n / cpu:>13.1f}{wall:>10.2f}{n / wall:>13.1f}")
    print(f"pipeline speed-up per core (CPU time): {n / cpu / dt['docs_per_cpu_s']:.1f}x; "
          f"(wall clock: {n / wall / dt['docs_per_wall_s']:.1f}x)")
    if dt["kept"] != run["records_out"]:
        print(f"WARNING: kept counts differ: datatrove {dt['kept']}, curate run {run['records_out']}")


if __name__ == "__main__":
    mode, a, b = sys.argv[1:4]
    if mode == "filters":
        sys.exit(0 if filters(read(a), read(b), sys.argv[4] if len(sys.argv) > 4 else None) else 1)
    elif mode == "tokens":
        tokens(read(a), read(b))
    elif mode == "pipeline":
        pipeline(a, b, sys.argv[4:])
    else:
        bench(a, b)

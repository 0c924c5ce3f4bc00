"""Word-level agreement of curate's extractor with trafilatura.

usage: compare.py TRAFILATURA.jsonl CURATE.jsonl TRAF_TIME.json CURATE_TIME.json

Words are maximal runs of Unicode word characters, lower-cased; each page is a bag of
words. Precision/recall/F1 of curate against trafilatura are micro-averaged (overlaps and
counts summed over all pages) and the per-page F1 median is printed too, with the pages
of each documentation set reported separately.
"""
import json
import re
import statistics
import sys
from collections import Counter

WORD = re.compile(r"\w+")


def load(path):
    return {r["path"]: r["text"] for r in map(json.loads, open(path))}


def bag(text):
    return Counter(WORD.findall(text.lower()))


def f1(p, r):
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def report(name, rows):
    overlap = sum(o for o, _, _, _ in rows)
    n_cu = sum(c for _, c, _, _ in rows)
    n_tr = sum(t for _, _, t, _ in rows)
    p = overlap / n_cu if n_cu else 0.0
    r = overlap / n_tr if n_tr else 0.0
    med = statistics.median(x for _, _, _, x in rows) if rows else 0.0
    print(f"{name:8} pages={len(rows):4}  micro P={p:.3f} R={r:.3f} F1={f1(p, r):.3f}  median page F1={med:.3f}")


def main():
    tr, cu = load(sys.argv[1]), load(sys.argv[2])
    sets = {}
    for path, ttext in tr.items():
        tb, cb = bag(ttext), bag(cu.get(path, ""))
        overlap = sum((tb & cb).values())
        n_cu, n_tr = sum(cb.values()), sum(tb.values())
        if n_cu == 0 and n_tr == 0:
            page_f1 = 1.0
        else:
            page_f1 = f1(overlap / n_cu if n_cu else 0.0, overlap / n_tr if n_tr else 0.0)
        kind = "rust" if "/rust" in path else "python"
        sets.setdefault(kind, []).append((overlap, n_cu, n_tr, page_f1))
    print("== word-level agreement, curate vs trafilatura (reference)")
    for kind in sorted(sets):
        report(kind, sets[kind])
    report("all", [row for rows in sets.values() for row in rows])
    t_tr, t_cu = json.load(open(sys.argv[3])), json.load(open(sys.argv[4]))
    print("== speed (one core, extraction only; CPU time, wall time in brackets)")
    for name, t in (("trafilatura", t_tr), ("curate", t_cu)):
        cpu = t["cpu_seconds"]
        print(f"{name:12} {t['pages']} pages, {t['bytes'] / 1e6:.1f} MB in {cpu:.2f}s CPU ({t['seconds']:.2f}s wall): "
              f"{t['pages'] / cpu:.0f} pages/s, {t['bytes'] / 1e6 / cpu:.1f} MB/s")
    print(f"speed ratio curate/trafilatura: {t_tr['cpu_seconds'] / t_cu['cpu_seconds']:.1f}x CPU "
          f"({t_tr['seconds'] / t_cu['seconds']:.1f}x wall)")


if __name__ == "__main__":
    main()

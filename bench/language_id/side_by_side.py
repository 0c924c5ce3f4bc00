"""Per-language accuracy of several detectors on the same corpus, one column each.

usage: side_by_side.py CORPUS.jsonl NAME=PREDICTIONS.jsonl [NAME=PREDICTIONS.jsonl ...]
PREDICTIONS as report.py reads them ({"lang", "pred", "score"} per corpus line). Also prints
micro/macro accuracy with every paragraph and without translated paragraphs of >= 50%
English words (the label noise report.py describes), and each detector's speed when a
TIME.json sits beside its predictions (same name, _time.json).
"""
import json
import os
import sys
from collections import defaultdict


def accuracy(rows, keep):
    per = defaultdict(list)
    for r, k in zip(rows, keep):
        if k:
            per[r["lang"]].append(r["pred"] == r["lang"])
    micro = sum(sum(v) for v in per.values()) / sum(len(v) for v in per.values())
    macro = sum(sum(v) / len(v) for v in per.values()) / len(per)
    return per, micro, macro


def main():
    corpus = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
    detectors = []
    for arg in sys.argv[2:]:
        name, path = arg.split("=", 1)
        rows = [json.loads(l) for l in open(path, encoding="utf-8")]
        assert len(rows) == len(corpus), (path, len(rows), len(corpus))
        detectors.append((name, path, rows))
    everything = [True] * len(corpus)
    clean = [c["lang"] == "en" or c["english_share"] < 0.5 for c in corpus]
    results = [(name, accuracy(rows, everything), accuracy(rows, clean)) for name, _, rows in detectors]
    width = max(12, *(len(n) for n, _, _ in detectors))
    print("accuracy per language (all paragraphs | without mostly-English translated ones)")
    print(f"{'lang':5} {'n':>5}  " + "  ".join(f"{n:>{width}}" for n, _, _ in detectors))
    langs = sorted(results[0][1][0])
    for lang in langs:
        n = len(results[0][1][0][lang])
        cells = []
        for _, (per, _, _), (cper, _, _) in results:
            a = sum(per[lang]) / len(per[lang])
            c = sum(cper[lang]) / len(cper[lang]) if cper.get(lang) else float("nan")
            cells.append(f"{a:.3f} | {c:.3f}".rjust(width))
        print(f"{lang:5} {n:5}  " + "  ".join(cells))
    for name, (_, micro, macro), (cper, cmicro, cmacro) in results:
        kept = sum(len(v) for v in cper.values())
        print(f"{name}: micro {micro:.4f} / macro {macro:.4f} over {len(langs)} languages, {len(corpus)} "
              f"paragraphs; without mostly-English: micro {cmicro:.4f} / macro {cmacro:.4f} ({kept} paragraphs)")
    for name, path, _ in detectors:
        tpath = path[: -len(".jsonl")] + "_time.json"
        if os.path.exists(tpath):
            t = json.load(open(tpath))
            print(f"{name} speed: {t['texts']} texts, {t['bytes'] / 1e6:.2f} MB in {t['seconds']:.3f}s: "
                  f"{t['texts'] / t['seconds']:.0f} texts/s, {t['bytes'] / 1e6 / t['seconds']:.1f} MB/s (one core)")


if __name__ == "__main__":
    main()

"""Precision and recall of a dedup run against make_corpus.py's ground truth, and what
MinHash-LSH finds on the same corpus.

usage: score.py TRUTH.jsonl [REJECTS] [--corpus CORPUS.jsonl] [--no-minhash]
                [--threshold 0.8] [--ngram 5] [--num-perm 128] [--json]

TRUTH.jsonl: make_corpus.py's truth.jsonl ({"id", "duplicate_of", "group", "jaccard5"}).
REJECTS: the documents the dedup removed, each {"id", "duplicate_of"} (the kept document it
duplicates; null or absent if the operator does not say): a JSONL file, a parquet file or a
directory of either. Without REJECTS only the MinHash baseline is scored.

A removal is correct when the removed document belongs to a planted group (a source and its
paraphrases) and its duplicate_of is in the same group (or, when duplicate_of is not given, some
member of the group was kept); at most size-1 removals per group count as correct.
precision = correct / removals; recall = correct / sum over groups of (size - 1).

The baseline: datasketch MinHashLSH (threshold --threshold, --num-perm permutations) over
--ngram-word shingles of the text lowercased, punctuation turned to spaces and whitespace
collapsed (curate's minhash `lowercase_punct`); documents in corpus order, each one that
collides with an earlier one is removed as its duplicate. The planted paraphrases were built to
fall below Jaccard 0.8, so its recall shows what MinHash misses.
"""
import argparse
import glob
import json
import os
import re
import sys
import time
from collections import Counter, defaultdict


def normalize(text):
    return " ".join(re.sub(r"[^\w\s]|_", " ", text.lower()).split())


def shingles(text, n):
    w = normalize(text).split()
    if len(w) < n:
        return [" ".join(w)] if w else []
    return list({" ".join(w[i:i + n]) for i in range(len(w) - n + 1)})


def read_rows(path, columns):
    if os.path.isdir(path):
        parts = sorted(glob.glob(os.path.join(path, "*.parquet"))) or sorted(glob.glob(os.path.join(path, "*.jsonl")))
        rows = []
        for p in parts:
            rows += read_rows(p, columns)
        return rows
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        t = pq.read_table(path)
        cols = [c for c in columns if c in t.column_names]
        return t.select(cols).to_pylist()
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def score(truth, removals):
    """removals: list of (id, duplicate_of or None). Returns a dict of metrics."""
    group = {r["id"]: r["group"] for r in truth}
    size = Counter(group.values())
    expected = sum(s - 1 for s in size.values() if s > 1)
    removed = {rid for rid, _ in removals}
    kept_in_group = Counter(group[i] for i in group if i not in removed)
    correct_per_group = defaultdict(int)
    correct = unknown = not_planted = wrong_twin = 0
    for rid, twin in removals:
        g = group.get(rid)
        if g is None:
            unknown += 1
            continue
        if size[g] < 2:
            not_planted += 1
            continue
        ok = group.get(twin) == g if twin is not None else kept_in_group[g] > 0
        if not ok:
            wrong_twin += 1
            continue
        if correct_per_group[g] < size[g] - 1:
            correct_per_group[g] += 1
            correct += 1
    n = len(removals)
    return {
        "documents": len(truth), "planted_groups": sum(1 for s in size.values() if s > 1),
        "expected_removals": expected, "removals": n, "correct": correct,
        "precision": round(correct / n, 4) if n else None,
        "recall": round(correct / expected, 4) if expected else None,
        "false_removals": {"not_in_a_planted_group": not_planted, "twin_in_another_group": wrong_twin,
                           "unknown_id": unknown, "beyond_group_size": n - correct - not_planted - wrong_twin - unknown},
        "groups_fully_removed": sum(1 for g, s in size.items() if s > 1 and kept_in_group[g] == 0),
    }


def minhash_removals(corpus, threshold, ngram, num_perm, seed=1):
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    out = []
    batch = 10_000
    for start in range(0, len(corpus), batch):
        chunk = corpus[start:start + batch]
        sets = [[s.encode() for s in shingles(r["text"], ngram)] for r in chunk]
        hashes = MinHash.bulk(sets, num_perm=num_perm, seed=seed)
        for r, m in zip(chunk, hashes):
            hits = lsh.query(m)
            if hits:
                out.append((r["id"], min(hits)))
            lsh.insert(r["id"], m)
    return out


def recall_by_jaccard(truth, removals):
    """Recall of the planted paraphrases per band of their exact 5-shingle Jaccard."""
    removed = {rid for rid, _ in removals}
    group = {r["id"]: r["group"] for r in truth}
    members = defaultdict(list)
    for r in truth:
        members[r["group"]].append(r["id"])
    bands = defaultdict(lambda: [0, 0])
    for r in truth:
        j = r.get("jaccard5")
        if r.get("duplicate_of") is None or j is None:
            continue
        band = f"{min(int(j * 10), 9) / 10:.1f}-{min(int(j * 10), 9) / 10 + 0.1:.1f}"
        bands[band][1] += 1
        # The pair counts as found when either member of it was removed.
        if r["id"] in removed or r["duplicate_of"] in removed:
            bands[band][0] += 1
    return {k: {"found": v[0], "pairs": v[1]} for k, v in sorted(bands.items())}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("truth")
    ap.add_argument("rejects", nargs="?")
    ap.add_argument("--corpus", help="default: corpus.jsonl beside TRUTH")
    ap.add_argument("--no-minhash", action="store_true")
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--ngram", type=int, default=5)
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    truth = read_rows(args.truth, ["id", "duplicate_of", "group", "jaccard5"])
    report = {}
    if args.rejects:
        rows = read_rows(args.rejects, ["id", "duplicate_of"])
        removals = [(str(r["id"]), None if r.get("duplicate_of") is None else str(r["duplicate_of"])) for r in rows]
        report["dedup"] = score(truth, removals)
        report["dedup"]["recall_by_jaccard5"] = recall_by_jaccard(truth, removals)
    if not args.no_minhash:
        corpus_path = args.corpus or os.path.join(os.path.dirname(os.path.abspath(args.truth)), "corpus.jsonl")
        corpus = read_rows(corpus_path, ["id", "text"])
        t0 = time.perf_counter()
        mh = minhash_removals(corpus, args.threshold, args.ngram, args.num_perm)
        report["minhash"] = score(truth, mh)
        report["minhash"]["recall_by_jaccard5"] = recall_by_jaccard(truth, mh)
        report["minhash"]["settings"] = {"threshold": args.threshold, "ngram": args.ngram,
                                         "num_perm": args.num_perm, "seconds": round(time.perf_counter() - t0, 1)}
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
        return
    for name, r in report.items():
        print(f"{name}: {r['removals']} removals, {r['correct']} correct of {r['expected_removals']} planted "
              f"({r['planted_groups']} groups, {r['documents']} documents): precision {r['precision']}, "
              f"recall {r['recall']}")
        fr = r["false_removals"]
        print(f"  false removals: {fr['not_in_a_planted_group']} not planted, {fr['twin_in_another_group']} "
              f"twin in another group, {fr['beyond_group_size']} beyond group size, {fr['unknown_id']} unknown ids; "
              f"groups removed whole: {r['groups_fully_removed']}")
        bands = ", ".join(f"{k}: {v['found']}/{v['pairs']}" for k, v in r["recall_by_jaccard5"].items())
        print(f"  planted pairs found, by 5-shingle Jaccard: {bands}")
        if "settings" in r:
            print(f"  settings: {r['settings']}")


if __name__ == "__main__":
    main()

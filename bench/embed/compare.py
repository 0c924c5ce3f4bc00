"""Cosine agreement of two sets of embeddings, row pairs matched by id.

usage: compare.py A B [--ids IDS] [--column embedding] [--id-column id] [--threshold 0.999]
                  [--worst 5] [--json]

A and B are each one of:
  X.npy      float [n, d]; ids from X.ids.json beside it (written by st_bench.py and
             wordllama_bench.py), else from --ids (a JSON list, or a JSONL whose rows have "id"
             in the same order), else the row numbers;
  X.parquet  a table with an id column and a list-of-float embedding column (as curate writes);
  X.jsonl    rows {"id": ..., "embedding": [...]} (or the names given by --id-column/--column);
  a directory of .parquet or .jsonl parts, read in name order.
Prints, for the ids present in both: the count, min and mean cosine similarity, how many fall
below --threshold, the worst rows, and the ids present in only one. Exit status 0 always (this
reports; the caller decides).
"""
import argparse
import glob
import json
import os
import sys

import numpy as np


def read_ids(path):
    if path.endswith(".json"):
        with open(path) as fh:
            return [str(x) for x in json.load(fh)]
    with open(path, encoding="utf-8") as fh:
        return [str(json.loads(line)["id"]) for line in fh if line.strip()]


def load(path, args):
    if os.path.isdir(path):
        parts = sorted(glob.glob(os.path.join(path, "*.parquet"))) or sorted(glob.glob(os.path.join(path, "*.jsonl")))
        if not parts:
            sys.exit(f"{path}: no .parquet or .jsonl files")
        ids, vecs = [], []
        for p in parts:
            i, v = load(p, args)
            ids += i
            vecs.append(v)
        return ids, np.concatenate(vecs)
    if path.endswith(".npy"):
        emb = np.load(path).astype(np.float64)
        side = path[:-4] + ".ids.json"
        if os.path.exists(side):
            ids = read_ids(side)
        elif args.ids:
            ids = read_ids(args.ids)
        else:
            ids = [str(i) for i in range(len(emb))]
        if len(ids) != len(emb):
            sys.exit(f"{path}: {len(emb)} rows but {len(ids)} ids")
        return ids, emb
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        t = pq.read_table(path, columns=[args.id_column, args.column])
        ids = [str(x) for x in t.column(args.id_column).to_pylist()]
        vecs = t.column(args.column).to_pylist()
    else:
        ids, vecs = [], []
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    r = json.loads(line)
                    ids.append(str(r[args.id_column]))
                    vecs.append(r[args.column])
    missing = sum(v is None for v in vecs)
    if missing:
        sys.exit(f"{path}: {missing} rows without an embedding")
    return ids, np.asarray(vecs, dtype=np.float64)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--ids", help="ids for a .npy without a .ids.json beside it")
    ap.add_argument("--column", default="embedding")
    ap.add_argument("--id-column", default="id")
    ap.add_argument("--threshold", type=float, default=0.999)
    ap.add_argument("--worst", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = ap.parse_args()

    ia, ea = load(args.a, args)
    ib, eb = load(args.b, args)
    if ea.shape[1] != eb.shape[1]:
        sys.exit(f"dimensions differ: {ea.shape[1]} vs {eb.shape[1]}")
    pos_b = {k: i for i, k in enumerate(ib)}
    if len(pos_b) != len(ib) or len(set(ia)) != len(ia):
        sys.exit("duplicate ids")
    common = [(i, pos_b[k]) for i, k in enumerate(ia) if k in pos_b]
    only_a = len(ia) - len(common)
    only_b = len(ib) - len(common)
    if not common:
        sys.exit("no ids in common")
    xa = ea[[i for i, _ in common]]
    xb = eb[[j for _, j in common]]
    na, nb = np.linalg.norm(xa, axis=1), np.linalg.norm(xb, axis=1)
    zero = (na == 0) | (nb == 0)
    cos = np.where(zero, np.where((na == 0) & (nb == 0), 1.0, 0.0),
                   (xa * xb).sum(axis=1) / np.where(zero, 1.0, na * nb))
    order = np.argsort(cos)
    summary = {
        "a": args.a, "b": args.b, "matched": len(common), "only_a": only_a, "only_b": only_b,
        "dim": int(ea.shape[1]),
        "min_cosine": float(cos.min()), "mean_cosine": float(cos.mean()),
        "threshold": args.threshold, "below_threshold": int((cos < args.threshold).sum()),
        "max_abs_norm_ratio_diff": float(np.max(np.abs(na / np.where(nb == 0, 1, nb) - 1.0))),
        "worst": [{"id": ia[common[k][0]], "cosine": float(cos[k])} for k in order[: args.worst]],
    }
    if args.json:
        json.dump(summary, sys.stdout, indent=1)
        print()
        return
    print(f"matched {summary['matched']} rows (only in A: {only_a}, only in B: {only_b}), dim {summary['dim']}")
    print(f"cosine min {summary['min_cosine']:.7f} mean {summary['mean_cosine']:.7f}; "
          f"below {args.threshold}: {summary['below_threshold']}")
    print(f"max |norm_a/norm_b - 1|: {summary['max_abs_norm_ratio_diff']:.2e}")
    for w in summary["worst"]:
        print(f"  {w['id']}\t{w['cosine']:.7f}")


if __name__ == "__main__":
    main()

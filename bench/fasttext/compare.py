"""Agreement and speed of curate-fasttext against the fastText Python package on one run.

usage: compare.py NAME RUST.jsonl RUST_TIME.json PY.jsonl PY_TIME.json
Prints one JSON object: texts, top-label differences, texts whose label lists differ, max
|prob diff| over labels both return at the same rank, texts/s of each and the ratio.
"""
import json
import sys


def main():
    name, rust, rust_t, py, py_t = sys.argv[1:6]
    r = [json.loads(l) for l in open(rust)]
    p = [json.loads(l) for l in open(py)]
    rt, pt = json.load(open(rust_t)), json.load(open(py_t))
    assert len(r) == len(p), (len(r), len(p))
    top = sum((a["labels"][:1] != b["labels"][:1]) for a, b in zip(r, p))
    lists = sum(a["labels"] != b["labels"] for a, b in zip(r, p))
    diff = max((abs(x - y) for a, b in zip(r, p) if a["labels"] == b["labels"]
                for x, y in zip(a["probs"], b["probs"])), default=0.0)
    out = {"model": name, "texts": len(r), "top_label_diffs": top, "label_list_diffs": lists,
           "max_prob_diff": diff, "rust_texts_per_s": round(rt["texts"] / rt["seconds"]),
           "python_texts_per_s": round(pt["texts"] / pt["seconds"]),
           "speedup": round(pt["seconds"] / rt["seconds"], 2),
           "rust_seconds": round(rt["seconds"], 4), "python_seconds": round(pt["seconds"], 4),
           "rust_load_s": round(rt["load_seconds"], 4), "python_load_s": round(pt["load_seconds"], 4),
           "mb": round(rt["bytes"] / 1e6, 2)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()

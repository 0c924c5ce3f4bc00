"""The official fastText Python package on the same texts as curate-fasttext-bench.

usage: py_bench.py MODEL IN.jsonl OUT.jsonl K
Writes {"labels", "probs"} per line and prints {"texts", "bytes", "seconds", "load_seconds"},
`seconds` covering the predict calls only (best of PASSES passes, default 3), each text
passed as `model.predict(text.replace("\\n", " "), k=K)`, one call per text as a caller
classifying a stream of documents does.
"""
import json
import os
import sys
import time

import fasttext


def main():
    model_path, inp, out, k = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    passes = max(1, int(os.environ.get("PASSES", "3")))
    texts = [json.loads(l)["text"] for l in open(inp, encoding="utf-8") if l.strip()]
    t0 = time.perf_counter()
    model = fasttext.load_model(model_path)
    load_seconds = time.perf_counter() - t0
    lines = [t.replace("\n", " ") for t in texts]
    best = float("inf")
    for _ in range(passes):
        t0 = time.perf_counter()
        results = [model.predict(t, k=k) for t in lines]
        best = min(best, time.perf_counter() - t0)
    with open(out, "w", encoding="utf-8") as fh:
        for labels, probs in results:
            fh.write(json.dumps({"labels": list(labels), "probs": [float(p) for p in probs]}) + "\n")
    print(json.dumps({"texts": len(texts), "bytes": sum(len(t.encode()) for t in texts), "seconds": best,
                      "load_seconds": load_seconds}))


if __name__ == "__main__":
    main()

"""Runs trafilatura with default settings (output_format="txt") on every page of a list.

usage: trafilatura_run.py LIST OUT.jsonl  -> prints {"pages", "bytes", "seconds", "cpu_seconds"}
Both cover extraction only; files are read before the clock starts.
"""
import json
import sys
import time

import trafilatura


def main():
    paths = [l.rstrip("\n") for l in open(sys.argv[1]) if l.strip()]
    pages = [open(p, "rb").read().decode("utf-8", errors="replace") for p in paths]
    start, cpu_start = time.perf_counter(), time.process_time()
    texts = [trafilatura.extract(p, output_format="txt") or "" for p in pages]
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    with open(sys.argv[2], "w") as fh:
        for path, text in zip(paths, texts):
            fh.write(json.dumps({"path": path, "text": text}) + "\n")
    print(json.dumps({"pages": len(pages), "bytes": sum(len(p.encode()) for p in pages), "seconds": seconds,
                      "cpu_seconds": cpu}))


if __name__ == "__main__":
    main()

"""Times wordllama (l2_supercat, dim 256) embedding paragraphs, one thread.

usage: .venv-bench-embed/bin/python bench/embed/wordllama_bench.py PARAGRAPHS.jsonl OUT_PREFIX
         [THREADS] [--batch-size 64] [--norm] [--models DIR]

PARAGRAPHS.jsonl: rows {"id", "text"} (bench/embed/paragraphs.py). THREADS (default 1) bounds
the tokenizer's thread pool (RAYON_NUM_THREADS) and BLAS (OMP/OPENBLAS/MKL_NUM_THREADS); with 1
the tokenizer's parallelism is switched off. wordllama is used with its defaults,
WordLlama.load(dim=256).embed(texts) (no normalisation, batch 64), unless --norm.
WordLlama.load cannot find its bundled tokenizer offline (see NOTES.md), so it is given a cache
folder holding DIR/wordllama-l2-256/tokenizer.json.

Writes OUT_PREFIX.npy (float32 [n, 256], input order), OUT_PREFIX.ids.json and OUT_PREFIX.json
(docs/s and settings), and prints the JSON. Timing excludes loading and a warm-up batch.
"""
import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paragraphs")
    ap.add_argument("out_prefix")
    ap.add_argument("threads", nargs="?", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--norm", action="store_true", help="L2-normalise (wordllama's default is not to)")
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    ap.add_argument("--models", default=os.environ.get("CURATE_MODELS", os.path.join(root, ".models")))
    args = ap.parse_args()

    n = str(args.threads)
    for var in ("RAYON_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = n
    if args.threads == 1:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    import numpy as np
    import wordllama
    from wordllama import WordLlama

    rows = [json.loads(line) for line in open(args.paragraphs, encoding="utf-8")]
    ids = [r["id"] for r in rows]
    texts = [r["text"] for r in rows]

    t0 = time.perf_counter()
    cache = tempfile.mkdtemp(prefix="wordllama-cache-")
    try:
        os.makedirs(os.path.join(cache, "tokenizers"))
        shutil.copy(os.path.join(args.models, "wordllama-l2-256", "tokenizer.json"),
                    os.path.join(cache, "tokenizers", "l2_supercat_tokenizer_config.json"))
        wl = WordLlama.load(dim=256, cache_dir=cache, disable_download=True)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    load_s = time.perf_counter() - t0
    wl.embed(texts[: args.batch_size], norm=args.norm, batch_size=args.batch_size)  # warm-up

    t0 = time.perf_counter()
    emb = wl.embed(texts, norm=args.norm, batch_size=args.batch_size)
    secs = time.perf_counter() - t0

    emb = np.ascontiguousarray(emb, dtype=np.float32)
    os.makedirs(os.path.dirname(os.path.abspath(args.out_prefix)), exist_ok=True)
    np.save(args.out_prefix + ".npy", emb)
    with open(args.out_prefix + ".ids.json", "w") as fh:
        json.dump(ids, fh)
    result = {
        "library": "wordllama",
        "model": "l2_supercat dim 256",
        "docs": len(texts),
        "chars": sum(len(t) for t in texts),
        "threads": args.threads,
        "batch_size": args.batch_size,
        "normalized": args.norm,
        "seconds": round(secs, 3),
        "docs_per_s": round(len(texts) / secs, 1),
        "load_seconds": round(load_s, 3),
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "dim": int(emb.shape[1]),
        "versions": {"wordllama": wordllama.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
        "cpu": platform.processor() or platform.machine(),
        "embeddings": args.out_prefix + ".npy",
    }
    with open(args.out_prefix + ".json", "w") as fh:
        json.dump(result, fh, indent=1)
    json.dump(result, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()

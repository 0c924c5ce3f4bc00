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
import os
import time

from peers import load_wordllama, read_paragraphs, timed, write_report


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
    import wordllama

    ids, texts = read_paragraphs(args.paragraphs)

    t0 = time.perf_counter()
    wl = load_wordllama(os.path.join(args.models, "wordllama-l2-256"))
    load_s = time.perf_counter() - t0
    emb, secs = timed(lambda t: wl.embed(t, norm=args.norm, batch_size=args.batch_size), texts, args.batch_size)
    write_report(args.out_prefix, emb, ids, texts, secs, {
        "library": "wordllama",
        "model": "l2_supercat dim 256",
        "threads": args.threads,
        "batch_size": args.batch_size,
        "normalized": args.norm,
        "load_seconds": round(load_s, 3),
        "versions": {"wordllama": wordllama.__version__},
    })


if __name__ == "__main__":
    main()

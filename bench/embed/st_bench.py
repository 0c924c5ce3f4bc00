"""Times sentence-transformers (all-MiniLM-L6-v2) encoding paragraphs on CPU.

usage: .venv-bench-embed/bin/python bench/embed/st_bench.py PARAGRAPHS.jsonl OUT_PREFIX [THREADS]
         [--batch-size 32] [--models DIR]

PARAGRAPHS.jsonl: rows {"id", "text"} (bench/embed/paragraphs.py). THREADS (default 2) is given
to torch.set_num_threads and to the tokenizer's thread pool (RAYON_NUM_THREADS); inter-op
threads are 1. The model is SentenceTransformer(DIR/all-MiniLM-L6-v2, device="cpu") exactly as
its modules define it (unit-length output), encode(texts, batch_size=32).

Writes OUT_PREFIX.npy (float32 [n, 384], rows in input order), OUT_PREFIX.ids.json (the ids, in
that order) and OUT_PREFIX.json (docs/s and the settings), and prints the JSON. Timing excludes
loading the model and a warm-up batch; it includes tokenisation.
"""
import argparse
import os
import time

from peers import read_paragraphs, timed, write_report


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paragraphs")
    ap.add_argument("out_prefix")
    ap.add_argument("threads", nargs="?", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    ap.add_argument("--models", default=os.environ.get("CURATE_MODELS", os.path.join(root, ".models")))
    args = ap.parse_args()

    os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    ids, texts = read_paragraphs(args.paragraphs)

    t0 = time.perf_counter()
    model = SentenceTransformer(os.path.join(args.models, "all-MiniLM-L6-v2"), device="cpu")
    load_s = time.perf_counter() - t0
    emb, secs = timed(lambda t: model.encode(t, batch_size=args.batch_size, convert_to_numpy=True), texts,
                      args.batch_size)
    write_report(args.out_prefix, emb, ids, texts, secs, {
        "library": "sentence-transformers",
        "model": "all-MiniLM-L6-v2",
        "threads": args.threads,
        "batch_size": args.batch_size,
        "load_seconds": round(load_s, 3),
        "versions": {"sentence_transformers": sentence_transformers.__version__, "torch": torch.__version__},
    })


if __name__ == "__main__":
    main()

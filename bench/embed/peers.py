"""What the scripts that run peer libraries share: reading the paragraphs, loading wordllama
offline, timing the encode call after a warm-up batch, and writing the vectors and the report."""
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time


def read_paragraphs(path):
    """The ids and texts of a JSONL file of {"id", "text"} rows, in file order."""
    with open(path, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    return [r["id"] for r in rows], [r["text"] for r in rows]


def load_wordllama(model_dir):
    """WordLlama.load(dim=256) without the network.

    WordLlama.load looks for its bundled tokenizer in wordllama/tokenizer/ (singular) while the
    wheel ships it in wordllama/tokenizers/, so offline it would try to download it. A cache_dir
    holding tokenizers/<name> (the same file, copied by scripts/models.sh) resolves it locally."""
    from wordllama import WordLlama

    cache = tempfile.mkdtemp(prefix="wordllama-cache-")
    try:
        os.makedirs(os.path.join(cache, "tokenizers"))
        shutil.copy(os.path.join(model_dir, "tokenizer.json"),
                    os.path.join(cache, "tokenizers", "l2_supercat_tokenizer_config.json"))
        return WordLlama.load(dim=256, cache_dir=cache, disable_download=True)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def timed(encode, texts, batch_size):
    """encode(texts) as float32 and its seconds, after a warm-up call on the first batch."""
    import numpy as np

    encode(texts[:batch_size])
    t0 = time.perf_counter()
    emb = encode(texts)
    secs = time.perf_counter() - t0
    return np.ascontiguousarray(emb, dtype=np.float32), secs


def write_report(out_prefix, emb, ids, texts, secs, settings):
    """Writes OUT_PREFIX.npy, .ids.json and .json (docs/s, peak RSS, `settings`) and prints the
    JSON."""
    import numpy as np

    os.makedirs(os.path.dirname(os.path.abspath(out_prefix)), exist_ok=True)
    np.save(out_prefix + ".npy", emb)
    with open(out_prefix + ".ids.json", "w") as fh:
        json.dump(ids, fh)
    result = dict(settings)
    result.update({
        "docs": len(texts),
        "chars": sum(len(t) for t in texts),
        "seconds": round(secs, 3),
        "docs_per_s": round(len(texts) / secs, 1),
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "dim": int(emb.shape[1]),
        "cpu": platform.processor() or platform.machine(),
        "embeddings": out_prefix + ".npy",
    })
    result["versions"]["python"] = platform.python_version()
    with open(out_prefix + ".json", "w") as fh:
        json.dump(result, fh, indent=1)
    json.dump(result, sys.stdout, indent=1)
    print()

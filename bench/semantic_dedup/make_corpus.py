"""A JSONL corpus with planted paraphrase near-duplicates, and its ground truth.

usage: make_corpus.py N OUT_DIR [--dup-fraction 0.1] [--seed 0] [--paragraphs P.jsonl]
                      [--synthetic] [--sentences-per-doc 4]

Writes OUT_DIR/corpus.jsonl ({"id", "text"}, in shuffled order) and OUT_DIR/truth.jsonl
({"id", "duplicate_of": id or null, "group": id, "jaccard5": float or null}), deterministic
for given arguments and paragraphs file.

Originals. Real English paragraphs from bench/embed/paragraphs.py (--paragraphs, default
bench/.work/embed/paragraphs-10000.jsonl, made if missing). Paragraphs that are near-duplicates of
one another already (same normalised text, 5-word-shingle Jaccard >= 0.4 by MinHash-LSH, or
wordllama cosine >= 0.9; run it with .venv-bench-embed/bin/python) are left out first, so that
the planted duplicates are the only ones as far as those measures tell. (A wordllama-based dedup
therefore has no natural false positives at cosine >= 0.9 on this corpus by construction.) When N*(1-f) originals are
more than the paragraphs (the 1M memory run), or with --synthetic, every original is
synthesised instead: sentences of all paragraphs are dealt into K columns of p sentences (p
prime, K = --sentences-per-doc) and document (a, b) takes from column i the sentence
a + b*i mod p. Two such documents share at most one sentence (two lines of the affine plane
over Z_p meet at most once), so they are distinct and not near-duplicates of each other.

Planted near-duplicates. round(N*f) documents are paraphrases of another document (its
"duplicate_of"); a tenth of the sources get two paraphrases (groups of three). A paraphrase
keeps the meaning but changes the surface enough for MinHash (5-word shingles on lowercased,
punctuation-free text, Jaccard 0.8) to miss it: sentences reordered, about 1 word in 6 changed
(replaced by a synonym from a fixed table, or a filler word dropped), commas and full stops
changed, casing of some words changed. "jaccard5" is the exact 5-shingle Jaccard of the
paraphrase and its source (on the normalisation above).
"""
import argparse
import hashlib
import json
import os
import random
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
DEFAULT_PARAGRAPHS = os.path.join(ROOT, "bench", ".work", "embed", "paragraphs-10000.jsonl")

SYNONYMS = {
    "use": "employ", "used": "employed", "using": "employing", "uses": "employs",
    "can": "could", "may": "might", "must": "shall", "should": "ought to",
    "returns": "gives back", "return": "give back", "returned": "given back",
    "create": "make", "created": "made", "creates": "makes",
    "new": "fresh", "example": "instance", "default": "standard", "value": "quantity",
    "values": "quantities", "called": "invoked", "call": "invoke", "calls": "invokes",
    "also": "additionally", "only": "solely", "however": "nevertheless", "instead": "rather",
    "because": "since", "when": "whenever", "each": "every",
    "more": "additional", "many": "numerous", "some": "certain", "other": "different",
    "same": "identical", "first": "initial", "last": "final", "given": "supplied",
    "specified": "indicated", "specify": "indicate", "provides": "offers", "provide": "offer",
    "provided": "supplied", "allows": "lets", "allow": "let", "contains": "holds",
    "containing": "holding", "contain": "hold", "need": "require", "needs": "requires",
    "required": "needed", "available": "accessible", "possible": "feasible",
    "different": "distinct", "useful": "handy", "usually": "normally", "always": "invariably",
    "often": "frequently", "directly": "straight", "automatically": "implicitly",
    "following": "subsequent", "before": "prior to", "after": "following",
    "error": "failure", "errors": "failures", "change": "alter", "changed": "altered",
    "changes": "alters", "start": "begin", "starts": "begins",
    "get": "obtain", "gets": "obtains", "find": "locate", "found": "located",
    "show": "display", "shows": "displays", "check": "verify", "checks": "verifies",
    "add": "append", "added": "appended", "remove": "delete", "removed": "deleted",
    "large": "big", "small": "little", "big": "large", "little": "small",
    "important": "significant", "simple": "straightforward", "easy": "simple",
    "common": "frequent", "specific": "particular", "particular": "specific",
    "similar": "comparable", "whether": "if", "within": "inside",
    "about": "regarding", "between": "among", "through": "via", "until": "till",
    "number": "count", "information": "details",
    "program": "application", "application": "program", "documentation": "docs",
    "directory": "folder", "file": "document", "files": "documents", "make": "produce",
    "makes": "produces", "want": "wish", "wants": "wishes", "work": "operate",
    "works": "operates", "run": "execute", "runs": "executes", "running": "executing",
    "read": "load", "reads": "loads",
    "means": "signifies", "include": "comprise", "includes": "comprises",
    "already": "previously", "still": "yet", "currently": "presently", "now": "at present",
    "therefore": "thus", "thus": "hence", "since": "as",
    "while": "whereas", "although": "though", "though": "although", "unless": "except if",
    "support": "handle", "supports": "handles", "supported": "handled",
    "option": "setting", "options": "settings", "method": "routine", "methods": "routines",
    "function": "routine", "functions": "routines", "argument": "parameter",
    "arguments": "parameters", "parameter": "argument", "parameters": "arguments",
    "raised": "thrown", "raise": "throw", "raises": "throws", "object": "item",
    "objects": "items", "string": "text string", "strings": "text strings",
    "list": "sequence", "correct": "right", "wrong": "incorrect", "problem": "issue",
    "problems": "issues", "fast": "quick", "slow": "sluggish", "quickly": "rapidly",
    "system": "platform", "behavior": "behaviour",
}
FILLERS = {"the", "a", "an", "very", "also", "just", "simply", "really", "then", "that", "still",
           "already", "actually", "usually", "generally", "currently", "now"}
WORD = re.compile(r"[A-Za-z]+(?:'[a-z]+)?")
SENT_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(\[])")


def normalize(text):
    """Lowercase, punctuation to spaces, whitespace collapsed: curate's `lowercase_punct`."""
    return " ".join(re.sub(r"[^\w\s]|_", " ", text.lower()).split())


def shingles(text, n=5):
    w = normalize(text).split()
    if len(w) < n:
        return {" ".join(w)} if w else set()
    return {" ".join(w[i:i + n]) for i in range(len(w) - n + 1)}


def jaccard(a, b):
    sa, sb = shingles(a), shingles(b)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def sentences(text):
    return [s for s in SENT_SPLIT.split(text) if s.strip()]


def match_case(src, repl):
    if src.isupper() and len(src) > 1:
        return repl.upper()
    if src[0].isupper():
        return repl[0].upper() + repl[1:]
    return repl


def paraphrase(text, rng, rate=1 / 6):
    """Same meaning, different surface: reorder sentences, swap/drop words, punctuation, casing."""
    sents = sentences(text)
    if len(sents) >= 2:
        k = rng.randrange(1, len(sents))
        sents = sents[k:] + sents[:k]  # rotation: every sentence keeps its own content
        if len(sents) >= 3 and rng.random() < 0.5:
            i = rng.randrange(len(sents) - 1)
            sents[i], sents[i + 1] = sents[i + 1], sents[i]
    out = []
    for s in sents:
        def swap(m):
            w = m.group(0)
            lw = w.lower()
            r = rng.random()
            if lw in SYNONYMS and r < rate * 2.2:
                return match_case(w, SYNONYMS[lw])
            if lw in FILLERS and r < rate * 2.2:
                return ""
            return w
        s = WORD.sub(swap, s)
        s = re.sub(r"  +", " ", s).replace(" ,", ",").replace(" .", ".").strip()
        # Punctuation: some commas dropped or turned into dashes, a final full stop changed.
        s = re.sub(r",(?= )", lambda m: rng.choice([",", "", " -", ","]), s)
        if s.endswith(".") and rng.random() < 0.3:
            s = s[:-1] + rng.choice([";", "!", ""])
        # Casing: sometimes the whole sentence lower case, sometimes one word upper case.
        r = rng.random()
        if r < 0.15:
            s = s.lower()
        elif r < 0.3:
            ws = s.split(" ")
            j = rng.randrange(len(ws))
            ws[j] = ws[j].upper()
            s = " ".join(ws)
        if s:
            s = s[0].upper() + s[1:] if rng.random() < 0.85 else s
            out.append(s)
    return " ".join(out)


def load_paragraphs(path):
    if not os.path.exists(path):
        subprocess.run([sys.executable, os.path.join(ROOT, "bench", "embed", "paragraphs.py"), path, "--large"],
                       check=True)
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line)["text"] for line in fh]


def wordllama_model():
    """wordllama (bench/embed/env.sh) loaded from .models/, or None when it is not installed."""
    try:
        import shutil
        import tempfile

        from wordllama import WordLlama
    except ImportError:
        return None
    tok = os.path.join(os.environ.get("CURATE_MODELS", os.path.join(ROOT, ".models")), "wordllama-l2-256",
                       "tokenizer.json")
    if not os.path.exists(tok):
        return None
    cache = tempfile.mkdtemp(prefix="wordllama-cache-")
    try:
        os.makedirs(os.path.join(cache, "tokenizers"))
        shutil.copy(tok, os.path.join(cache, "tokenizers", "l2_supercat_tokenizer_config.json"))
        return WordLlama.load(dim=256, cache_dir=cache, disable_download=True)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def distinct_originals(texts, seed, max_cosine=0.9):
    """Drops paragraphs that are (near-)duplicates of an earlier one: the same normalised text,
    5-shingle Jaccard >= 0.4 by MinHash-LSH (datasketch), or wordllama cosine >= max_cosine
    (natural paraphrases: "16-bit ... host to network" beside "32-bit ... network to host")."""
    seen, kept = set(), []
    for t in texts:
        key = normalize(t)
        if key not in seen:
            seen.add(key)
            kept.append(t)
    try:
        from datasketch import MinHash, MinHashLSH
    except ImportError:
        sys.exit("datasketch is needed to filter the originals: run with .venv-bench-embed/bin/python "
                 "(bench/embed/env.sh)")
    lsh = MinHashLSH(threshold=0.4, num_perm=128)
    out = []
    for i, t in enumerate(kept):
        m = MinHash(num_perm=128, seed=seed)
        m.update_batch([s.encode() for s in shingles(t)])
        if lsh.query(m):
            continue
        lsh.insert(str(i), m)
        out.append(t)
    kept = out
    wl = wordllama_model()
    if wl is None:
        sys.exit("wordllama and .models/wordllama-l2-256 are needed to filter the originals: run with "
                 ".venv-bench-embed/bin/python after scripts/models.sh")
    import numpy as np

    emb = wl.embed(kept, norm=True)
    keep = np.zeros(len(kept), dtype=bool)
    for start in range(0, len(kept), 1024):
        block = emb[start:start + 1024] @ emb.T
        for r in range(block.shape[0]):
            i = start + r
            prev = block[r, :i][keep[:i]]
            keep[i] = prev.size == 0 or prev.max() < max_cosine
    return [t for t, k in zip(kept, keep) if k]


def is_prime(n):
    return n >= 2 and all(n % d for d in range(2, int(n ** 0.5) + 1))


def synthetic_originals(paragraphs, n, k, rng):
    sents = sorted({s.strip() for p in paragraphs for s in sentences(p) if 40 <= len(s.strip()) <= 400})
    rng.shuffle(sents)
    p = len(sents) // k
    while not is_prime(p):
        p -= 1
    if p * p < n:
        sys.exit(f"only {p * p} synthetic documents possible from {len(sents)} sentences, {n} asked")
    cols = [sents[i * p:(i + 1) * p] for i in range(k)]
    chosen = rng.sample(range(p * p), n)
    return [" ".join(cols[i][(c // p + (c % p) * i) % p] for i in range(k)) for c in chosen]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("n", type=int)
    ap.add_argument("out_dir")
    ap.add_argument("--dup-fraction", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--paragraphs", default=DEFAULT_PARAGRAPHS)
    ap.add_argument("--synthetic", action="store_true", help="synthesise originals even if paragraphs suffice")
    ap.add_argument("--sentences-per-doc", type=int, default=4)
    args = ap.parse_args()
    rng = random.Random(args.seed)

    n_dups = round(args.n * args.dup_fraction)
    n_orig = args.n - n_dups
    paragraphs = load_paragraphs(args.paragraphs)
    originals = None
    if not args.synthetic and len(paragraphs) >= n_orig:
        pool = distinct_originals(paragraphs, args.seed)
        if len(pool) >= n_orig:
            pool.sort(key=lambda t: hashlib.sha1(f"{args.seed}:{t}".encode()).hexdigest())
            originals, kind = pool[:n_orig], "paragraphs"
    if originals is None:
        originals, kind = synthetic_originals(paragraphs, n_orig, args.sentences_per_doc, rng), "synthetic"

    # Sources: a tenth of them get two paraphrases.
    n_two = n_dups // 11
    n_sources = n_dups - n_two
    sources = rng.sample(range(n_orig), n_sources)
    plan = [(s, 2 if j < n_two else 1) for j, s in enumerate(sources)]
    docs = [{"text": t, "duplicate_of": None, "group": i, "jaccard5": None} for i, t in enumerate(originals)]
    for src, copies in plan:
        for _ in range(copies):
            text = paraphrase(originals[src], rng)
            tries = 0
            while (jaccard(text, originals[src]) >= 0.6 or text == originals[src]) and tries < 5:
                text = paraphrase(originals[src], rng, rate=1 / 4)
                tries += 1
            docs.append({"text": text, "duplicate_of": src, "group": src,
                         "jaccard5": round(jaccard(text, originals[src]), 4)})
    order = list(range(len(docs)))
    rng.shuffle(order)
    width = max(7, len(str(len(docs))))
    new_id = {old: f"d{pos:0{width}d}" for pos, old in enumerate(order)}

    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "corpus.jsonl"), "w", encoding="utf-8") as c, \
            open(os.path.join(args.out_dir, "truth.jsonl"), "w", encoding="utf-8") as t:
        for old in order:
            d = docs[old]
            did = new_id[old]
            c.write(json.dumps({"id": did, "text": d["text"]}, ensure_ascii=False) + "\n")
            t.write(json.dumps({"id": did,
                                "duplicate_of": None if d["duplicate_of"] is None else new_id[d["duplicate_of"]],
                                "group": new_id[d["group"]], "jaccard5": d["jaccard5"]}) + "\n")
    js = sorted(d["jaccard5"] for d in docs if d["jaccard5"] is not None)
    msg = (f"{len(docs)} documents ({n_orig} {kind} originals, {n_dups} planted paraphrases of {n_sources} "
           f"sources) -> {args.out_dir}")
    if js:
        msg += (f"; paraphrase 5-shingle Jaccard median {js[len(js) // 2]:.3f}, max {js[-1]:.3f}, "
                f">= 0.8: {sum(j >= 0.8 for j in js)}")
    print(msg, file=sys.stderr)


if __name__ == "__main__":
    main()

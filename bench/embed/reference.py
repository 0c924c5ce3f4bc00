"""Reference embeddings (and token ids) for curate-embed's parity tests.

usage: .venv-bench-embed/bin/python bench/embed/reference.py [--models DIR] [--out DIR]

Writes into --out (default crates/curate-embed/tests/data/):
  reference_texts.json  the texts, [{"id", "text"}], ~40 varied real texts
  minilm.json           all-MiniLM-L6-v2 under sentence-transformers, exactly as the model's
                        modules.json defines it (Transformer -> mean Pooling -> Normalize):
                        SentenceTransformer(DIR/all-MiniLM-L6-v2, device="cpu").encode(texts)
  wordllama.json        wordllama 0.4.0.post1, WordLlama.load(dim=256).embed(texts) with its
                        defaults (norm=False, binary=False, batch_size=64)
Each row has the token ids the library fed to the model, the embedding (7 significant digits)
and the L2 norm of the mean-pooled vector before any normalisation, so that a mismatch can be
located (tokenizer, encoder, pooling or normalisation). Nothing is downloaded: both models load
from DIR (default .models/, made by scripts/models.sh). Run bench/embed/env.sh first.
"""
import argparse
import json
import os
import platform
import sys

from peers import load_wordllama

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# Long enough (about 420 BERT word pieces) to be cut at 256 by MiniLM; wordllama does not truncate.
LONG = (
    "The following methods can be defined to implement container objects. Containers usually are sequences "
    "(such as lists or tuples) or mappings (like dictionaries), but can represent other containers as well. "
    "The first set of methods is used either to emulate a sequence or to emulate a mapping; the difference is "
    "that for a sequence, the allowable keys should be the integers k for which 0 <= k < N where N is the "
    "length of the sequence, or slice objects, which define a range of items. It is also recommended that "
    "mappings provide the methods keys(), values(), items(), get(), clear(), setdefault(), pop(), popitem(), "
    "copy(), and update() behaving similar to those for Python\u2019s standard dictionary objects. The "
    "collections.abc module provides a MutableMapping abstract base class to help create those methods from a "
    "base set of __getitem__(), __setitem__(), __delitem__(), and keys(). Mutable sequences should provide "
    "methods append(), count(), index(), extend(), insert(), pop(), remove(), reverse() and sort(), like Python "
    "standard list objects. Finally, sequence types should implement addition (meaning concatenation) and "
    "multiplication (meaning repetition) by defining the methods __add__(), __radd__(), __iadd__(), __mul__(), "
    "__rmul__() and __imul__() described below; they should not define other numerical operators. It is "
    "recommended that both mappings and sequences implement the __contains__() method to allow efficient use "
    "of the in operator; for mappings, in should search the mapping\u2019s keys; for sequences, it should search "
    "through the values. It is further recommended that both mappings and sequences implement the __iter__() "
    "method to allow efficient iteration through the container; for mappings, __iter__() should iterate through "
    "the object\u2019s keys; for sequences, it should iterate through the values."
)

TEXTS = [
    ("en_python_doc",
     "Python is an interpreted, interactive, object-oriented programming language. It incorporates modules, "
     "exceptions, dynamic typing, very high level dynamic data types, and classes. It supports multiple "
     "programming paradigms beyond object-oriented programming, such as procedural and functional programming. "
     "Python combines remarkable power with very clear syntax."),
    ("en_debian_reference",
     "The powerful design of Debian GNU/Linux comes from the Unix operating system, i.e., a multiuser, "
     "multitasking operating system. You must learn to take advantage of the power of these features and "
     "similarities between Unix and GNU/Linux."),
    ("en_tkinter",
     "Note that widgets do not appear until they have had their geometry specified with a geometry manager. "
     "It\u2019s a common early mistake to leave out the geometry specification, and then be surprised when the "
     "widget is created but nothing appears."),
    ("en_pangram", "The quick brown fox jumps over the lazy dog."),
    ("en_question", "How many people live in Berlin?"),
    ("en_two_paragraphs",
     "First paragraph: the committee met on Tuesday.\n\nSecond paragraph: it adjourned without a decision,\n"
     "and will meet again next week."),
    ("en_all_caps", "THIS IS SHOUTING IN ALL CAPS, PLEASE STOP."),
    ("en_mixed_case", "ThIs Is MiXeD cAsE tExT wItH iPhone AND macOS."),
    ("fr_accents", "L\u2019\u00e9t\u00e9 dernier, nous sommes all\u00e9s \u00e0 la plage pr\u00e8s de Nice ; "
                   "c\u2019\u00e9tait magnifique, na\u00efve et tr\u00e8s \u00ab\u00a0cool\u00a0\u00bb."),
    ("de_umlauts", "Die Stra\u00dfe ist nass, weil es gestern geregnet hat. Gr\u00fc\u00dfe aus M\u00fcnchen! "
                   "\u00c4pfel, \u00d6l und \u00dcbermut."),
    ("es_inverted", "\u00bfD\u00f3nde est\u00e1 la biblioteca? \u00a1El ni\u00f1o peque\u00f1o juega en el "
                    "jard\u00edn!"),
    ("vi_diacritics", "Ti\u1ebfng Vi\u1ec7t c\u00f3 nhi\u1ec1u d\u1ea5u thanh \u0111i\u1ec7u v\u00e0 "
                      "ch\u1eef c\u00e1i \u0111\u1eb7c bi\u1ec7t."),
    ("combining_nfd", "Cafe\u0301 cre\u0300me bru\u0302le\u0301e (decomposed accents, NFD)."),
    ("zh_cjk", "\u6211\u4eec\u4eca\u5929\u53bb\u516c\u56ed\u6563\u6b65\uff0c\u5929\u6c14\u975e\u5e38\u597d\u3002"
               "\u5317\u4eac\u662f\u4e2d\u56fd\u7684\u9996\u90fd\u3002"),
    ("ja_kana_kanji", "\u6771\u4eac\u306f\u65e5\u672c\u306e\u9996\u90fd\u3067\u3059\u3002\u3072\u3089\u304c"
                      "\u306a\u3068\u30ab\u30bf\u30ab\u30ca\u3092\u4f7f\u3044\u307e\u3059\u3002"),
    ("ko_hangul", "\uc548\ub155\ud558\uc138\uc694, \ub9cc\ub098\uc11c \ubc18\uac11\uc2b5\ub2c8\ub2e4. "
                  "\uc11c\uc6b8\uc740 \ud55c\uad6d\uc758 \uc218\ub3c4\uc785\ub2c8\ub2e4."),
    ("ru_cyrillic", "\u041c\u043e\u0441\u043a\u0432\u0430 \u2014 \u0441\u0442\u043e\u043b\u0438\u0446\u0430 "
                    "\u0420\u043e\u0441\u0441\u0438\u0438. \u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! "
                    "\u0401\u043b\u043a\u0430 \u0438 \u0439\u043e\u0433\u0443\u0440\u0442."),
    ("uk_cyrillic", "\u041a\u0438\u0457\u0432 \u0454 \u0441\u0442\u043e\u043b\u0438\u0446\u0435\u044e "
                    "\u0423\u043a\u0440\u0430\u0457\u043d\u0438, \u0430 \u0491\u0430\u043d\u043e\u043a "
                    "\u2014 \u0446\u0435 \u0433\u0430\u043d\u043e\u043a."),
    ("el_greek", "\u0397 \u0391\u03b8\u03ae\u03bd\u03b1 \u03b5\u03af\u03bd\u03b1\u03b9 \u03b7 "
                 "\u03c0\u03c1\u03c9\u03c4\u03b5\u03cd\u03bf\u03c5\u03c3\u03b1 \u03c4\u03b7\u03c2 "
                 "\u0395\u03bb\u03bb\u03ac\u03b4\u03b1\u03c2."),
    ("ar_arabic", "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645\u060c "
                  "\u0647\u0630\u0627 \u0646\u0635 \u0639\u0631\u0628\u064a."),
    ("hi_devanagari", "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e, "
                      "\u092f\u0939 \u0939\u093f\u0902\u0926\u0940 \u0939\u0948\u0964"),
    ("th_thai", "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a \u0e22\u0e34\u0e19\u0e14\u0e35"
                "\u0e15\u0e49\u0e2d\u0e19\u0e23\u0e31\u0e1a"),
    ("emoji", "I love pizza \U0001f355\U0001f355 and coffee \u2615\ufe0f! \U0001f602\U0001f44d\U0001f3fd "
              "Best day ever \U0001f389"),
    ("emoji_zwj_only", "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466 \U0001f3f3\ufe0f\u200d"
                       "\U0001f308"),
    ("url", "See https://www.example.com/docs/v2/index.html?query=embeddings&lang=en#section-3 for details."),
    ("email_handle", "Write to john.doe+newsletter@example.org or ping @curate_bot on Mastodon. #NLP"),
    ("code_python", "def add(a, b):\n    \"\"\"Return the sum.\"\"\"\n    return a + b  # TODO: overflow?\n"),
    ("code_rust", "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n"
                  "    println!(\"{:?}\", v);\n}"),
    ("json", "{\"id\": 42, \"tags\": [\"a\", \"b\"], \"nested\": {\"ok\": true, \"value\": null}}"),
    ("html", "<p class=\"lead\">Hello <b>world</b> &amp; friends</p><br/>"),
    ("numbers", "3.14159 2,718,281 1e-9 42% $1,000.00 \u20ac9,99 12:30 2024-01-31"),
    ("math_symbols", "\u2211 x\u00b2 \u2264 \u221e, \u03b1 + \u03b2 = \u03b3, \u221a2 \u2248 1.414"),
    ("fullwidth", "\uff21\uff22\uff23 \uff11\uff12\uff13 \uff48\uff45\uff4c\uff4c\uff4f"),
    ("control_chars", "tab\tseparated\u0000nul\u0007bell zero\u200bwidth soft\u00adhyphen\r\nend"),
    ("long_word", "Pneumonoultramicroscopicsilicovolcanoconiosis and " + "x" * 120 + " end."),
    ("repeated_punct", "!!!!!!!!!! ?????????? .......... ,,,,,,,,,, ;;;;;; ---- ~~~~ ***"),
    ("punct_words", "Wow!!! Really??? ... OK... (yes) [no] {maybe} \"quoted\" 'single'"),
    ("single_char", "a"),
    ("single_word", "embedding"),
    ("empty", ""),
    ("whitespace_only", "   \t\n  \n "),
    ("long_truncated", LONG),
]


def g7(x):
    return float(f"{float(x):.7g}")


def vec(v):
    return [g7(x) for x in v]


def write(path, obj):
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, ensure_ascii=False, separators=(",", ":"))
        fh.write("\n")


def minilm(model_dir, texts):
    import numpy as np
    import sentence_transformers
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(1)  # deterministic reduction order
    m = SentenceTransformer(model_dir, device="cpu")
    names = [type(mod).__name__ for mod in m]
    assert names == ["Transformer", "Pooling", "Normalize"], names
    # As the model's modules define it: the Normalize module makes the output unit length.
    emb = m.encode(texts, batch_size=32, convert_to_numpy=True)
    # The same without the Normalize module, for the pooled norm.
    pooled = SentenceTransformer(modules=[m[0], m[1]], device="cpu").encode(texts, batch_size=32)
    assert np.allclose(emb, pooled / np.linalg.norm(pooled, axis=1, keepdims=True), atol=1e-6)
    rows = []
    for (tid, text), e, p in zip(TEXTS, emb, pooled):
        ids = m[0].preprocess([text])["input_ids"][0].tolist()
        rows.append({"id": tid, "input_ids": ids, "n_tokens": len(ids), "pooled_norm": g7(np.linalg.norm(p)),
                     "embedding": vec(e)})
    return {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "model_files": os.path.relpath(model_dir, ROOT),
        "call": "SentenceTransformer(model_dir, device='cpu').encode(texts, batch_size=32) "
                "(modules Transformer -> Pooling(mean) -> Normalize; the Normalize module makes it unit length)",
        "versions": {"sentence_transformers": sentence_transformers.__version__,
                     "transformers": transformers.__version__, "torch": torch.__version__,
                     "python": platform.python_version()},
        "max_seq_length": m.max_seq_length,
        "dim": int(emb.shape[1]),
        "normalized": True,
        "rows": rows,
    }


def wordllama(model_dir, texts):
    import numpy as np
    import wordllama as wl_pkg
    from safetensors.numpy import load_file

    wl = load_wordllama(model_dir)
    # The weights it loaded (from the wheel) are the ones in model_dir.
    local = load_file(os.path.join(model_dir, "model.safetensors"))["embedding.weight"].astype(np.float32)
    assert np.array_equal(local, wl.embedding), "wordllama weights differ from model_dir"
    emb = wl.embed(texts)  # defaults: norm=False, return_np=True, pool_embeddings=True, batch_size=64
    rows = []
    for (tid, text), e in zip(TEXTS, emb):
        ids = wl.tokenize([text])[0].ids
        rows.append({"id": tid, "input_ids": ids, "n_tokens": len(ids), "pooled_norm": g7(np.linalg.norm(e)),
                     "embedding": vec(e)})
    return {
        "model": "wordllama l2_supercat dim 256",
        "model_files": os.path.relpath(model_dir, ROOT),
        "call": "WordLlama.load(dim=256).embed(texts) (defaults norm=False, binary=False, batch_size=64: "
                "mean of the token rows, no normalisation)",
        "versions": {"wordllama": wl_pkg.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
        "dim": int(emb.shape[1]),
        "normalized": False,
        "rows": rows,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=os.environ.get("CURATE_MODELS", os.path.join(ROOT, ".models")))
    ap.add_argument("--out", default=os.path.join(ROOT, "crates", "curate-embed", "tests", "data"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    ids = [t for t, _ in TEXTS]
    assert len(ids) == len(set(ids))
    texts = [t for _, t in TEXTS]
    write(os.path.join(args.out, "reference_texts.json"), [{"id": i, "text": t} for i, t in TEXTS])
    m = minilm(os.path.join(args.models, "all-MiniLM-L6-v2"), texts)
    write(os.path.join(args.out, "minilm.json"), m)
    w = wordllama(os.path.join(args.models, "wordllama-l2-256"), texts)
    write(os.path.join(args.out, "wordllama.json"), w)
    trunc = [r["id"] for r in m["rows"] if r["n_tokens"] == m["max_seq_length"]]
    print(f"{len(texts)} texts; minilm truncated: {trunc}; "
          f"wordllama longest: {max(r['n_tokens'] for r in w['rows'])} tokens", file=sys.stderr)


if __name__ == "__main__":
    main()

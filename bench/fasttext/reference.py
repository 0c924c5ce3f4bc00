"""Trains small fastText models with the official Python package and records its predictions,
the fixtures that crates/curate-fasttext/tests/reference.rs checks the Rust predictor against.

usage: .venv-bench-fasttext/bin/python bench/fasttext/reference.py CORPUS.jsonl [--out DIR]
       (bench/fasttext/make_fixtures.sh does the whole thing)

CORPUS is bench/language_id/build_corpus.py output (real paragraphs of Debian's translated
documentation, labelled by language). Besides it the fixture texts take real messages of the
translation catalogs installed on the machine (/usr/share/locale/*/LC_MESSAGES/*.mo: Arabic,
Hebrew, Persian, Hindi, Thai, Georgian, Greek, ...), and edge cases (empty, whitespace only,
very long, emoji, unknown words, separators fastText treats specially, "</s>" and label-like
tokens inside the text).

Writes into DIR (default crates/curate-fasttext/tests/data):
  softmax.bin   loss softmax, wordNgrams 2, char n-grams 2..4
  hs.bin        loss hs (hierarchical softmax), char n-grams 3..5
  ova.bin       loss ova (one-vs-all), wordNgrams 3, no char n-grams
  softmax.ftz   softmax.bin quantized with -cutoff and -qnorm
  hs.ftz        hs.bin quantized without either, 4-wide sub-vectors (-dsub 4)
  topics.ftz    300+ labels (the man page a paragraph comes from), quantized with -cutoff,
                -qnorm and -qout (only outputs of >= 256 rows can be quantized)
  texts.jsonl   the fixture texts, one JSON string per line
  *.jsonl       the package's predictions for each model: a header {"model", "fasttext",
                "labels"}, then [text index, k, threshold, label indices, probs] per query
                (k = -1 means all labels; probs to 9 significant digits, exact for float32)
and lid176.jsonl, the top 5 of .models/lid.176.ftz for the same texts.
"""
import argparse
import gettext
import glob
import hashlib
import json
import os
import random
import re
import sys
import tempfile
from importlib.metadata import version

import fasttext

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# fastText 0.9.3 initialises only the first tenth of the input matrix with thread=1 (its
# DenseMatrix::uniform splits the work in ten blocks, one per thread) and leaves the rest as
# allocated: make_fixtures.sh sets MALLOC_MMAP_THRESHOLD_ so that memory comes zeroed, else
# training may read garbage and stop with "Encountered NaN". One thread keeps it reproducible.
SMALL = dict(bucket=2000, epoch=15, lr=0.1, thread=1, seed=1, verbose=0)
MO_LANGS = ["ar", "he", "fa", "hi", "th", "ka", "hy", "el", "ja", "zh_CN", "zh_TW", "ko", "ru", "uk", "bg",
            "vi", "tr", "ta", "bn", "am", "ur", "km", "my", "si", "pl", "de", "fr", "es", "pt_BR", "it",
            "nl", "sv", "fi", "hu", "cs", "ro", "eu", "ca", "gl", "lt", "lv", "et", "sk", "sl", "hr",
            "sr", "id", "ms", "sw", "eo", "cy", "ga", "is"]


def by_hash(items):
    return sorted(items, key=lambda s: hashlib.sha1(s.encode()).hexdigest())


def mo_messages(lang, n):
    """Translated messages of the catalogs installed for one language, the longer first."""
    out = set()
    for path in sorted(glob.glob(f"/usr/share/locale/{lang}/LC_MESSAGES/*.mo")):
        try:
            with open(path, "rb") as fh:
                cat = gettext.GNUTranslations(fh)._catalog
        except Exception:
            continue
        for v in cat.values():
            v = re.sub(r"\s+", " ", v).strip()
            if len(v) >= 25 and sum(c.isalpha() for c in v) >= 0.6 * len(v) and "%" not in v:
                out.add(v)
    return by_hash(out)[:n]


def edge_cases(paragraphs):
    long_text = " ".join(paragraphs[:25])
    return [
        "", " ", "\t \r \v \f ", "\n", "  leading and trailing spaces  ",
        "a", "the", "der", "的", "日本語", "Привет", "</s>", "__label__en", "__label__xx unknown label",
        "hello </s> world after the end of sentence", "first line\nsecond line\nthird line",
        "tabs\tand\rcarriage\vvertical\ffeeds", "nul\0separated\0words",
        "non\u00a0breaking\u00a0spaces\u2003and em spaces",
        "I love this 😀🎉🚀 so much ❤️", "🙂🙂🙂", "😀",
        "qwzxv fjkdlsa ghrtyu plmokn xcvbnm zzzzzzz", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "123 456 7890 3.14159 2024-01-01", "https://example.com/path?query=1 user@example.org",
        "C'est l'été, n'est-ce pas ? Ça va très bien.", "Straße, Größe, Übermäßig, äöü ÄÖÜ ß",
        "東京は日本の首都です。", "我爱北京天安门。", "안녕하세요, 반갑습니다.", "Γειά σου Κόσμε",
        "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก",
        "mixed English и русский 日本語 text", "ÀÉÎÕÜ àéîõü", "\u0301\u0301 combining marks alone",
        long_text, long_text.replace(" ", "\n"),
    ]


def write_fixture(path, model, name, texts, queries, every=None):
    """One header line, then [text index, k, threshold, label indices, probs] per query.
    `every` maps a query to a stride: that query is asked for every n-th text only."""
    labels = model.get_labels()
    index = {l: i for i, l in enumerate(labels)}
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(json.dumps({"model": name, "fasttext": version("fasttext"), "labels": labels},
                            ensure_ascii=False) + "\n")
        for t, text in enumerate(texts):
            for q, (k, threshold) in enumerate(queries):
                if every and t % every.get(q, 1):
                    continue
                got, probs = model.predict(text.replace("\n", " "), k=k, threshold=threshold)
                # 9 significant digits identify a float32 exactly.
                row = [t, k, threshold, [index[l] for l in got], [float(f"{p:.9g}") for p in probs]]
                fh.write(json.dumps(row, separators=(",", ":")) + "\n")


def train_file(rows, path):
    with open(path, "w", encoding="utf-8") as fh:
        for label, text in rows:
            fh.write(f"__label__{label} {text}\n")


def man_topics(pages=320):
    """English man page paragraphs labelled by page: a task with hundreds of labels."""
    sys.path.insert(0, os.path.join(ROOT, "bench", "language_id"))
    from build_corpus import man_paragraphs, prose_like
    rows, labels = [], set()
    for path in by_hash(glob.glob("/usr/share/man/man1/*.gz")):
        name = re.sub(r"\W", "_", os.path.basename(path).split(".")[0])
        paras = [p for p in man_paragraphs(path) if prose_like(p, 60)]
        if len(paras) >= 4 and name not in labels:
            labels.add(name)
            rows += [(name, p) for p in paras[:12]]
            if len(labels) == pages:
                return rows
    sys.exit(f"only {len(labels)} man pages with text: need {pages}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("--out", default=os.path.join(ROOT, "crates", "curate-fasttext", "tests", "data"))
    ap.add_argument("--lid", default=os.path.join(ROOT, ".models", "lid.176.ftz"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    corpus = [json.loads(l) for l in open(args.corpus, encoding="utf-8")]
    by_lang = {}
    for r in corpus:
        by_lang.setdefault(r["lang"], []).append(r["text"])
    # Training: up to 150 paragraphs per language; fixtures: 8 others per language.
    train, held = [], []
    for lang, texts in sorted(by_lang.items()):
        texts = by_hash(texts)
        train += [(lang, t) for t in texts[:150]]
        held += texts[150:158]
    random.Random(0).shuffle(train)
    seen = [t for _, t in sorted(train, key=lambda r: hashlib.sha1(r[1].encode()).hexdigest())[:40]]
    mo = []
    for lang in MO_LANGS:
        mo += mo_messages(lang, 4)
    texts = edge_cases(held) + seen + held + mo
    print(f"{len(texts)} fixture texts: {len(held)} held-out paragraphs, {len(seen)} training ones, "
          f"{len(mo)} catalog messages, {len(edge_cases(held))} edge cases", file=sys.stderr)

    with tempfile.TemporaryDirectory() as tmp:
        train_path = os.path.join(tmp, "train.txt")
        train_file(train, train_path)
        common = dict(input=train_path, minCount=15, **SMALL)
        models = {
            "softmax.bin": fasttext.train_supervised(loss="softmax", dim=16, wordNgrams=2, minn=2, maxn=4, **common),
            "hs.bin": fasttext.train_supervised(loss="hs", dim=16, wordNgrams=1, minn=3, maxn=5, **common),
            # dim 10: not one of the widths fastText averages with SIMD.
            "ova.bin": fasttext.train_supervised(loss="ova", dim=10, wordNgrams=3, minn=0, maxn=0, **common),
        }
        for name, m in models.items():
            m.save_model(os.path.join(args.out, name))
        sm = fasttext.load_model(os.path.join(args.out, "softmax.bin"))
        sm.quantize(input=train_path, cutoff=1500, qnorm=True, retrain=False)
        sm.save_model(os.path.join(args.out, "softmax.ftz"))
        hm = fasttext.load_model(os.path.join(args.out, "hs.bin"))
        hm.quantize(dsub=4, qnorm=False)
        hm.save_model(os.path.join(args.out, "hs.ftz"))

        topics_path = os.path.join(tmp, "topics.txt")
        topics = man_topics()
        random.Random(0).shuffle(topics)
        train_file(topics, topics_path)
        # dim 9: product quantizers of 2-wide sub-vectors whose last one is 1 wide.
        tm = fasttext.train_supervised(input=topics_path, minCount=3, loss="softmax", dim=9, wordNgrams=2, minn=3,
                                       maxn=4, **SMALL)
        tm.quantize(input=topics_path, cutoff=2000, qnorm=True, qout=True, retrain=False)
        tm.save_model(os.path.join(args.out, "topics.ftz"))

    with open(os.path.join(args.out, "texts.jsonl"), "w", encoding="utf-8") as fh:
        for text in texts:
            fh.write(json.dumps(text, ensure_ascii=False) + "\n")
    # Top 3 of every text; all labels for every 4th text, all above 0.05 for every 6th.
    small = [(3, 0.0), (-1, 0.0), (-1, 0.05)]
    for name in ["softmax.bin", "hs.bin", "ova.bin", "softmax.ftz", "hs.ftz"]:
        m = fasttext.load_model(os.path.join(args.out, name))
        write_fixture(os.path.join(args.out, name.replace(".", "_") + ".jsonl"), m, name, texts, small,
                      every={1: 4, 2: 6})
    tm = fasttext.load_model(os.path.join(args.out, "topics.ftz"))
    # All 320 labels for every 40th text: their many near-zero ties test fastText's heap order.
    write_fixture(os.path.join(args.out, "topics_ftz.jsonl"), tm, "topics.ftz", texts, [(3, 0.0), (-1, 0.0)],
                  every={1: 40})
    lid = fasttext.load_model(args.lid)
    write_fixture(os.path.join(args.out, "lid176.jsonl"), lid, "lid.176.ftz", texts, [(5, 0.0)])
    for f in sorted(os.listdir(args.out)):
        print(f"{f:20} {os.path.getsize(os.path.join(args.out, f)):>9} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()

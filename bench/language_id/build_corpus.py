"""Paragraphs of real text with their true language, from Debian's translated documentation.

usage: build_corpus.py OUT.jsonl [--min-chars N] [--per-source N]

Sources (whatever is installed): the Debian Reference in its translations
(/usr/share/debian-reference/debian-reference.LANG.txt.gz) and translated manual pages
(/usr/share/man/LANG/man{1,5,8}/*.gz). A paragraph is labelled with the language of the
package it comes from. Translations are partial (po4a keeps untranslated strings in
English), so a paragraph that also occurs in the English original is left out, as are
paragraphs that are mostly code, options or numbers. Each row carries `english_share`, the
share of its words that occur in the English paragraphs, so that translated paragraphs
which stayed mostly English despite the filter can be told apart in the report. Per language and source at most
--per-source paragraphs are kept, chosen by a hash of their text (deterministic).
"""
import argparse
import glob
import gzip
import hashlib
import json
import os
import re
from collections import Counter

REF = "/usr/share/debian-reference/debian-reference.{}.txt.gz"
REF_LANGS = {"en": "en", "de": "de", "es": "es", "fr": "fr", "id": "id", "it": "it", "ja": "ja", "pt": "pt",
             "zh-cn": "zh", "zh-tw": "zh"}
MAN_DIRS = {"cs": "cs", "da": "da", "de": "de", "el": "el", "es": "es", "fi": "fi", "fr": "fr", "hr": "hr",
            "hu": "hu", "id": "id", "it": "it", "ja": "ja", "ko": "ko", "mk": "mk", "nb": "nb", "nl": "nl",
            "pl": "pl", "pt": "pt", "pt_BR": "pt", "ro": "ro", "ru": "ru", "sl": "sl", "sr": "sr", "sv": "sv",
            "tr": "tr", "uk": "uk", "zh_CN": "zh", "zh_TW": "zh"}
SECTIONS = ("man1", "man5", "man8")
WORD = re.compile(r"[^\W\d_]+")


def norm(text):
    return re.sub(r"\s+", " ", text).strip()


def prose_like(text, min_chars):
    if len(text) < min_chars:
        return False
    letters = sum(c.isalpha() for c in text)
    return letters >= 0.6 * len(text) and not re.search(r"[{}<>$|]{2}|[/\\][\w.-]+[/\\]", text)


def reference_paragraphs(code):
    path = REF.format(code)
    if not os.path.exists(path):
        return []
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:
        blocks = re.split(r"\n\s*\n", fh.read())
    # Indented blocks are code, tables of contents or tables.
    return [norm(b) for b in blocks if b.strip() and not b.startswith((" ", "\t"))]


FONT = re.compile(r"\\f(\[[^\]]*\]|\(..|.)")
ESCAPES = [(re.compile(r"\\\((..)"), " "), (re.compile(r"\\\[[^\]]*\]"), " "), (re.compile(r"\\\*(\(..|\[[^\]]*\]|.)"), ""),
           (re.compile(r"\\[&|^%:]"), ""), (re.compile(r"\\-"), "-"), (re.compile(r"\\e"), r"\\"),
           (re.compile(r"\\ "), " "), (re.compile(r"\\s[-+]?\d"), "")]
BREAKS = {"PP", "P", "LP", "SH", "SS", "TP", "IP", "HP", "sp", "br", "RS", "RE", "TH", "nf", "fi", "EX", "EE",
          "TS", "TE", "in", "ti", "ce", "bp", "ne"}
TEXT_MACROS = {"B", "I", "BR", "BI", "IB", "IR", "RB", "RI", "SM", "SB"}


def man_paragraphs(path):
    try:
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except (OSError, EOFError):
        return []
    paras, cur, in_table = [], [], False
    for line in lines:
        if line.startswith((".", "'")):
            parts = line[1:].split(None, 1)
            macro = parts[0] if parts else ""
            if macro == "TS":
                in_table = True
            elif macro == "TE":
                in_table = False
            if macro in TEXT_MACROS and len(parts) > 1:
                cur.append(parts[1].replace('"', ""))
            elif macro in BREAKS or macro.startswith("\\\""):
                if cur:
                    paras.append(" ".join(cur))
                cur = []
            continue
        if in_table:
            continue
        if not line.strip():
            if cur:
                paras.append(" ".join(cur))
            cur = []
            continue
        cur.append(line)
    if cur:
        paras.append(" ".join(cur))
    out = []
    for p in paras:
        p = FONT.sub("", p)
        for rx, rep in ESCAPES:
            p = rx.sub(rep, p)
        out.append(norm(p))
    return out


def take(paras, n):
    unique = sorted(set(paras), key=lambda p: hashlib.sha1(p.encode()).hexdigest())
    return unique[:n]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--min-chars", type=int, default=100)
    ap.add_argument("--per-source", type=int, default=300)
    args = ap.parse_args()
    rows = []

    english = set(reference_paragraphs("en"))
    by_lang = {}
    for code, lang in REF_LANGS.items():
        paras = [p for p in reference_paragraphs(code) if prose_like(p, args.min_chars)]
        if lang != "en":
            paras = [p for p in paras if p not in english]
        by_lang.setdefault(lang, []).extend(paras)
    for lang, paras in sorted(by_lang.items()):
        rows += [{"lang": lang, "source": "debian-reference", "text": p} for p in take(paras, args.per_source)]

    by_lang = {}
    for d, lang in MAN_DIRS.items():
        for sec in SECTIONS:
            for path in sorted(glob.glob(f"/usr/share/man/{d}/{sec}/*.gz")):
                original = f"/usr/share/man/{sec}/{os.path.basename(path)}"
                untranslated = set(man_paragraphs(original)) if os.path.exists(original) else set()
                by_lang.setdefault(lang, []).extend(
                    p for p in man_paragraphs(path) if prose_like(p, args.min_chars) and p not in untranslated)
    english_man = []
    for sec in SECTIONS:
        for path in sorted(glob.glob(f"/usr/share/man/{sec}/*.gz")):
            english_man.extend(p for p in man_paragraphs(path) if prose_like(p, args.min_chars))
    by_lang.setdefault("en", []).extend(english_man)
    for lang, paras in sorted(by_lang.items()):
        rows += [{"lang": lang, "source": "man", "text": p} for p in take(paras, args.per_source)]

    # Share of a paragraph's words that are English words (seen in the English sources): the
    # report shows accuracy with and without translated paragraphs that are mostly English.
    vocab = Counter(w for r in rows if r["lang"] == "en" for w in WORD.findall(r["text"].lower()))
    for r in rows:
        words = WORD.findall(r["text"].lower())
        english = sum(1 for w in words if vocab[w] >= 2 and not w.isdigit())
        r["english_share"] = round(english / len(words), 3) if words else 0.0
    with open(args.out, "w") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    counts = {}
    for r in rows:
        counts[r["lang"]] = counts.get(r["lang"], 0) + 1
    print(f"{len(rows)} paragraphs: " + " ".join(f"{k}={v}" for k, v in sorted(counts.items())))


if __name__ == "__main__":
    main()

"""Per-language accuracy and confusions of language-id predictions.

usage: report.py PREDICTIONS.jsonl TIME.json [NAME [CORPUS.jsonl]]
PREDICTIONS has {"lang", "pred", "score"} per paragraph; TIME has {"texts", "bytes", "seconds"}.
"""
import json
import sys
from collections import Counter, defaultdict


def main():
    rows = [json.loads(l) for l in open(sys.argv[1])]
    t = json.load(open(sys.argv[2]))
    name = sys.argv[3] if len(sys.argv) > 3 else "detector"
    by_lang = defaultdict(list)
    for r in rows:
        by_lang[r["lang"]].append(r["pred"])
    print(f"== {name}: accuracy per language (true label = language of the Debian package)")
    print(f"{'lang':5} {'n':>5} {'acc':>7}  most frequent wrong answers")
    accs = []
    for lang in sorted(by_lang):
        preds = by_lang[lang]
        ok = sum(p == lang for p in preds)
        acc = ok / len(preds)
        accs.append(acc)
        wrong = Counter(p or "none" for p in preds if p != lang).most_common(3)
        print(f"{lang:5} {len(preds):5} {acc:7.3f}  " + ", ".join(f"{p}:{c}" for p, c in wrong))
    total_ok = sum(r["pred"] == r["lang"] for r in rows)
    print(f"overall: {len(rows)} paragraphs, micro accuracy {total_ok / len(rows):.4f}, "
          f"macro accuracy {sum(accs) / len(accs):.4f} over {len(accs)} languages")
    pairs = Counter((r["lang"], r["pred"] or "none") for r in rows if r["pred"] != r["lang"])
    print("largest confusions (true -> predicted): " + ", ".join(f"{a}->{b}:{c}" for (a, b), c in pairs.most_common(10)))
    # Translated paragraphs made mostly of English words are likely untranslated text whose
    # label is wrong; the same figures without them bound the effect of that label noise.
    corpus = [json.loads(l) for l in open(sys.argv[4])] if len(sys.argv) > 4 else []
    if corpus:
        kept = [r for r, c in zip(rows, corpus) if c["lang"] == "en" or c["english_share"] < 0.5]
        per = defaultdict(list)
        for r in kept:
            per[r["lang"]].append(r["pred"] == r["lang"])
        macro = sum(sum(v) / len(v) for v in per.values()) / len(per)
        ok = sum(r["pred"] == r["lang"] for r in kept)
        print(f"without translated paragraphs of >= 50% English words: {len(kept)} paragraphs, "
              f"micro accuracy {ok / len(kept):.4f}, macro accuracy {macro:.4f}; per language: "
              + " ".join(f"{k}={sum(v) / len(v):.3f}" for k, v in sorted(per.items())))
    if t.get("seconds"):
        print(f"speed: {t['texts']} texts, {t['bytes'] / 1e6:.2f} MB in {t['seconds']:.3f}s: "
              f"{t['texts'] / t['seconds']:.0f} texts/s, {t['bytes'] / 1e6 / t['seconds']:.1f} MB/s (one core)")


if __name__ == "__main__":
    main()

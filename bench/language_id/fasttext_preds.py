"""Turns curate-fasttext-bench output for lid.176.ftz into report.py's predictions.

usage: fasttext_preds.py CORPUS.jsonl RAW.jsonl OUT.jsonl
RAW has {"labels", "probs"} per corpus line (top 1); OUT gets {"lang", "pred", "score"}, the
label without its "__label__" prefix. lid.176 calls Norwegian "no" (its training text is mostly
Bokmål): it is counted as "nb", the corpus's and whatlang's code; no other code is changed.
"""
import json
import sys

ALIASES = {"no": "nb"}


def main():
    corpus = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
    raw = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8")]
    assert len(corpus) == len(raw), (len(corpus), len(raw))
    with open(sys.argv[3], "w", encoding="utf-8") as fh:
        for c, r in zip(corpus, raw):
            pred = r["labels"][0].removeprefix("__label__") if r["labels"] else None
            pred = ALIASES.get(pred, pred)
            fh.write(json.dumps({"lang": c["lang"], "pred": pred, "score": r["probs"][0] if r["probs"] else None})
                     + "\n")


if __name__ == "__main__":
    main()

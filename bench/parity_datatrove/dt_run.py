"""datatrove 0.10.1 side of the parity harness, using the filter classes in-process.

  dt_run.py filters IN.jsonl OUT.jsonl   per-filter reasons (default params) + C4 text, and C4
                                         with split_paragraph=False
  dt_run.py tokens  IN.jsonl OUT.jsonl   split_into_words(text, "en") per document
  dt_run.py bench   IN.jsonl REPEATS     time the chain Repetition -> Quality -> C4 -> FineWeb
"""
import json
import sys
import time
import warnings

from datatrove.data import Document
from datatrove.pipeline.filters import C4QualityFilter, FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter
from datatrove.pipeline.filters.base_filter import get_filter_result
from datatrove.utils.text import split_into_words

warnings.filterwarnings("ignore")  # numpy's mean-of-empty warning


def read(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def run(filt, doc_id, text):
    doc = Document(text=text, id=str(doc_id))
    keep, reason = get_filter_result(filt.filter(doc))
    return keep, reason, doc.text


def filters(docs, out):
    rep, qual, c4, fw = GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(), FineWebQualityFilter()
    # C4 also in its sentence mode, which splits with spaCy's sentencizer instead of lines.
    c4_sent = C4QualityFilter(split_paragraph=False)
    with open(out, "w", encoding="utf-8") as f:
        for d in docs:
            row = {"id": d["id"]}
            for name, filt in (("gopher_repetition", rep), ("gopher_quality", qual), ("fineweb_quality", fw)):
                keep, reason, _ = run(filt, d["id"], d["text"])
                row[name] = None if keep else (reason or "")
            for name, filt in (("c4_quality", c4), ("c4_quality_sentences", c4_sent)):
                keep, reason, text = run(filt, d["id"], d["text"])
                row[name] = None if keep else (reason or "")
                row[name + "_text"] = text if keep else None
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def tokens(docs, out):
    with open(out, "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({"id": d["id"], "words": split_into_words(d["text"], "eng")}, ensure_ascii=False) + "\n")


def chain(docs):
    steps = [GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(filter_no_terminal_punct=False),
             FineWebQualityFilter()]
    kept = 0
    for d in docs:
        doc = Document(text=d["text"], id=str(d["id"]))
        if all(get_filter_result(s.filter(doc))[0] for s in steps):
            kept += 1
    return kept


def bench(docs, repeats):
    chain(docs[:20])  # load spaCy outside the timed region
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        kept = chain(docs)
    secs, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    n = len(docs) * repeats
    print(json.dumps({"docs": len(docs), "repeats": repeats, "kept": kept, "wall_seconds": secs,
                      "docs_per_wall_s": n / secs, "cpu_seconds": cpu, "docs_per_cpu_s": n / cpu}))


if __name__ == "__main__":
    mode, inp, arg = sys.argv[1:4]
    docs = read(inp)
    if mode == "filters":
        filters(docs, arg)
    elif mode == "tokens":
        tokens(docs, arg)
    elif mode == "bench":
        bench(docs, int(arg))
    else:
        sys.exit(__doc__)

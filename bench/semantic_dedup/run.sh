#!/usr/bin/env bash
# Quality of semantic dedup on real paragraphs with planted paraphrases, against MinHash.
#
#   bench/semantic_dedup/run.sh                      # 10,000 documents, 10% planted paraphrases
#   REJECTS=out/rejects.jsonl bench/semantic_dedup/run.sh
#       (curate's rejected rows, each with `id` and `duplicate_of`: JSONL, parquet or a folder)
#   N=1000000 bench/semantic_dedup/run.sh             # the memory-run corpus (synthesised documents)
#
# Prints the corpus path to feed curate, then precision/recall of REJECTS (if given) and of
# datasketch MinHash-LSH (threshold 0.8, 5-word shingles) on the same corpus.
# Everything it writes goes under bench/.work/semantic_dedup/ (gitignored).
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-10000}
SEED=${SEED:-0}
WORK=bench/.work/semantic_dedup/n$N-s$SEED
PY=.venv-bench-embed/bin/python
bash bench/embed/env.sh
bash scripts/models.sh
PARAS=bench/.work/embed/paragraphs-10000.jsonl
[ -s "$PARAS" ] || "$PY" bench/embed/paragraphs.py "$PARAS" --large
[ -s "$WORK/corpus.jsonl" ] || "$PY" bench/semantic_dedup/make_corpus.py "$N" "$WORK" --seed "$SEED" --paragraphs "$PARAS"
echo "corpus: $WORK/corpus.jsonl  truth: $WORK/truth.jsonl"
"$PY" bench/semantic_dedup/score.py "$WORK/truth.jsonl" ${REJECTS:+"$REJECTS"}

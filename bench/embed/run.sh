#!/usr/bin/env bash
# Python side of the embed benchmark: real paragraphs, then sentence-transformers
# (all-MiniLM-L6-v2, batch 32, $THREADS torch threads) and wordllama (1 thread) timings and
# embeddings; optionally compares curate's embeddings of the same paragraphs with them.
#
#   bench/embed/run.sh                        # 1,000 paragraphs, 2 threads
#   N=10000 THREADS=1 bench/embed/run.sh
#   CURATE_MINILM=out/minilm.parquet CURATE_WORDLLAMA=out/wl.parquet bench/embed/run.sh
#       (files or folders with an `id` and an `embedding` list column, as curate writes)
#
# Everything it writes goes under bench/.work/embed/ (gitignored). Models come from .models/
# (scripts/models.sh); nothing is downloaded at run time.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-1000}
THREADS=${THREADS:-2}
WORK=bench/.work/embed
PY=.venv-bench-embed/bin/python
mkdir -p "$WORK"
bash bench/embed/env.sh
bash scripts/models.sh
PARAS="$WORK/paragraphs-$N.jsonl"
[ -s "$PARAS" ] || "$PY" bench/embed/paragraphs.py "$PARAS" --n "$N"
"$PY" bench/embed/st_bench.py "$PARAS" "$WORK/st-$N-t$THREADS" "$THREADS"
"$PY" bench/embed/wordllama_bench.py "$PARAS" "$WORK/wordllama-$N" 1
if [ -n "${CURATE_MINILM:-}" ]; then
  "$PY" bench/embed/compare.py "$WORK/st-$N-t$THREADS.npy" "$CURATE_MINILM"
fi
if [ -n "${CURATE_WORDLLAMA:-}" ]; then
  "$PY" bench/embed/compare.py "$WORK/wordllama-$N.npy" "$CURATE_WORDLLAMA"
fi

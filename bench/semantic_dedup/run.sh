#!/usr/bin/env bash
# `semantic_dedup` on real paragraphs with planted paraphrases (sentences reordered, light
# edits) that MinHash misses: precision and recall against the planted truth, beside
# datasketch MinHash-LSH (threshold 0.8, 5-word shingles) on the same corpus; output identical
# for 1 and 2 threads; time and peak RSS.
#
#   bench/semantic_dedup/run.sh                                   # 10,000 docs, MiniLM, eps 0.1
#   MODEL=wordllama-l2-256 EPS=0.05 bench/semantic_dedup/run.sh   # static embeddings
#   N=1000000 MODEL=wordllama-l2-256 MINHASH=0 bench/semantic_dedup/run.sh   # the memory run
#
# Everything it writes goes under bench/.work/semantic_dedup/ (gitignored).
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-10000}
SEED=${SEED:-0}
MODEL=${MODEL:-all-MiniLM-L6-v2}
EPS=${EPS:-0.1}
THREADS=${THREADS:-"1 2"}
MINHASH=${MINHASH:-1}
ROOT=$(pwd)
WORK=$ROOT/bench/.work/semantic_dedup/n$N-s$SEED
PY=$ROOT/.venv-bench-embed/bin/python
bash bench/embed/env.sh
bash scripts/models.sh
cargo build --release -q -p curate-cli
PARAS=bench/.work/embed/paragraphs-10000.jsonl
[ -s "$PARAS" ] || "$PY" bench/embed/paragraphs.py "$PARAS" --large
[ -s "$WORK/corpus.jsonl" ] || "$PY" bench/semantic_dedup/make_corpus.py "$N" "$WORK" --seed "$SEED" --paragraphs "$PARAS"
echo "corpus: $WORK/corpus.jsonl ($(wc -c <"$WORK/corpus.jsonl") bytes), truth: $WORK/truth.jsonl"

RUN="$WORK/curate-$MODEL-eps$EPS"
mkdir -p "$RUN"
cat >"$RUN/p.yaml" <<EOF
name: semdedup-bench
input: {path: $WORK/corpus.jsonl, id_field: id}
steps:
  - op: semantic_dedup
    model: $ROOT/.models/$MODEL
    eps: $EPS
output: {path: out, format: jsonl}
memory_limit: 1GB
EOF
first=""
for t in $THREADS; do
  rm -rf "$RUN/out"
  (cd "$RUN" && /usr/bin/time -f "%M %e" -o "$RUN/time-$t" "$ROOT/target/release/curate" run p.yaml --no-registry --no-cache --threads "$t" >/dev/null)
  read -r kib secs <"$RUN/time-$t"
  digest=$(cd "$RUN/out" && find data rejects -type f | sort | xargs cat | sha256sum | cut -c1-16)
  echo "curate semantic_dedup ($MODEL, eps $EPS), $t thread(s): $secs s, peak RSS $((kib / 1024)) MiB, output digest $digest"
  if [ -z "$first" ]; then first=$digest; elif [ "$digest" != "$first" ]; then echo "OUTPUT DIFFERS between thread counts"; exit 1; fi
done
NO_MINHASH=()
[ "$MINHASH" = 1 ] || NO_MINHASH=(--no-minhash)
"$PY" bench/semantic_dedup/score.py "$WORK/truth.jsonl" "$RUN/out/rejects" --corpus "$WORK/corpus.jsonl" "${NO_MINHASH[@]}"

#!/usr/bin/env bash
# Parity + speed harness: curate-text vs datatrove 0.10.1 on a corpus of real English
# text shipped on this Debian machine plus degraded variants of it.
#
#   bench/parity_datatrove/run.sh              # full run (~10 min on a quiet 2-core box)
#   SCALE=0.2 bench/parity_datatrove/run.sh    # smaller corpus
#   BENCH_DOCS=1000 BENCH_REPEATS=3 ...        # datatrove timing subset / curate repeats
#   REUSE_DT=1 ...                             # reuse datatrove's parity outputs (corpus and fuzz corpus)
#   PIPELINE_REPEATS=3 ...                     # `curate run` timings of the chain (best is kept)
#
# Everything it writes goes under bench/.work/ (gitignored).
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=bench/parity_datatrove
WORK=bench/.work
SCALE=${SCALE:-1.0}
BENCH_DOCS=${BENCH_DOCS:-0}        # 0 = time the whole corpus on both sides
BENCH_REPEATS=${BENCH_REPEATS:-3}  # curate repeats (datatrove runs the corpus once)
CORE=${CORE:-0}
mkdir -p "$WORK"

# 0. Real English prose from Debian (optional: the corpus builder skips what is absent).
if [ ! -d /usr/share/doc/python3.11/html ] && command -v apt-get >/dev/null; then
  apt-get install -y -q python3-doc >/dev/null 2>&1 || echo "python3-doc not installed; continuing without it"
fi

# 1. Python side: datatrove with the spaCy tokenizer it loads for English.
if [ ! -x "$WORK/venv/bin/python" ]; then
  python3 -m venv "$WORK/venv"
fi
"$WORK/venv/bin/pip" install -q "datatrove==0.10.1" "spacy==3.8.18" regex
PY="$WORK/venv/bin/python"

# 2. Rust side, release builds of the parity binary and of the `curate` CLI.
cargo build --release -q -p curate-text --features parity-bin --bin curate-text-parity
cargo build --release -q -p curate-cli --bin curate
CU=target/release/curate-text-parity

# 3. Corpus (real documents + degraded variants), rebuilt only when missing.
CORPUS="$WORK/corpus-$SCALE.jsonl"
[ -s "$CORPUS" ] || python3 "$HERE/build_corpus.py" "$CORPUS" --scale "$SCALE"

# One core for each timed side; taskset is optional.
PIN=()
if command -v taskset >/dev/null; then PIN=(taskset -c "$CORE"); fi

# 4. Parity: each filter alone with datatrove's defaults on the same documents.
echo "== parity (datatrove 0.10.1 vs curate-text) on $CORPUS"
DT_F="$WORK/dt_filters-$SCALE.jsonl" DT_T="$WORK/dt_tokens-$SCALE.jsonl"
if [ "${REUSE_DT:-0}" = 0 ] || [ ! -s "$DT_F" ]; then "$PY" "$HERE/dt_run.py" filters "$CORPUS" "$DT_F"; fi
"$CU" filters "$CORPUS" "$WORK/cu_filters.jsonl"
status=0
python3 "$HERE/compare.py" filters "$DT_F" "$WORK/cu_filters.jsonl" "$WORK/disagreements.jsonl" || status=$?

echo "== tokenizer parity (split_into_words vs Doc::words)"
if [ "${REUSE_DT:-0}" = 0 ] || [ ! -s "$DT_T" ]; then "$PY" "$HERE/dt_run.py" tokens "$CORPUS" "$DT_T"; fi
"$CU" tokens "$CORPUS" "$WORK/cu_tokens.jsonl"
python3 "$HERE/compare.py" tokens "$DT_T" "$WORK/cu_tokens.jsonl"

# 4b. Differential fuzzing: random documents made of tokenizer/filter-sensitive fragments.
FUZZ="$WORK/fuzz.jsonl"
[ -s "$FUZZ" ] || python3 "$HERE/fuzz_corpus.py" "$FUZZ" 3000 7
echo "== parity on $FUZZ (generated adversarial documents)"
if [ "${REUSE_DT:-0}" = 0 ] || [ ! -s "$WORK/dt_fuzz.jsonl" ]; then "$PY" "$HERE/dt_run.py" filters "$FUZZ" "$WORK/dt_fuzz.jsonl"; fi
"$CU" filters "$FUZZ" "$WORK/cu_fuzz.jsonl"
python3 "$HERE/compare.py" filters "$WORK/dt_fuzz.jsonl" "$WORK/cu_fuzz.jsonl" "$WORK/disagreements_fuzz.jsonl" || status=$?
if [ "${REUSE_DT:-0}" = 0 ] || [ ! -s "$WORK/dt_fuzz_tokens.jsonl" ]; then "$PY" "$HERE/dt_run.py" tokens "$FUZZ" "$WORK/dt_fuzz_tokens.jsonl"; fi
"$CU" tokens "$FUZZ" "$WORK/cu_fuzz_tokens.jsonl"
python3 "$HERE/compare.py" tokens "$WORK/dt_fuzz_tokens.jsonl" "$WORK/cu_fuzz_tokens.jsonl"

# 5. Speed: the same chain in both, in-process, pinned to one core.
BENCH="$CORPUS"
if [ "$BENCH_DOCS" != 0 ]; then
  BENCH="$WORK/bench-$BENCH_DOCS.jsonl"
  head -n "$BENCH_DOCS" "$CORPUS" > "$BENCH"
fi
echo "== speed on $BENCH"
"${PIN[@]}" "$PY" "$HERE/dt_run.py" bench "$BENCH" 1 > "$WORK/dt_bench.json"
"${PIN[@]}" "$CU" bench "$BENCH" "$BENCH_REPEATS" > "$WORK/cu_bench.json"
python3 "$HERE/compare.py" bench "$WORK/dt_bench.json" "$WORK/cu_bench.json"

# 6. The same chain through the engine: `curate run` of the same JSONL with the four
#    filters as pipeline steps, one worker thread, JSONL output (kept and rejects with
#    every signal column). CPU time of the whole process, so it includes JSON parsing,
#    batching and writing, which the in-process timings above leave out.
echo "== speed through the pipeline (curate run --threads 1) on $BENCH"
PIPE="$WORK/chain-pipeline.yaml"
cat >"$PIPE" <<YAML
name: quality-chain
input:
  path: $PWD/$BENCH
  id_field: id
steps:
  - op: gopher_repetition
  - op: gopher_quality
  - op: c4_quality
    filter_no_terminal_punct: false
  - op: fineweb_quality
output:
  path: $PWD/$WORK/chain-pipeline-out
  format: jsonl
YAML
for r in $(seq "${PIPELINE_REPEATS:-3}"); do
  "${PIN[@]}" /usr/bin/time -f '{"user": %U, "sys": %S, "wall": %e}' -o "$WORK/pipeline-time-$r.json" \
    target/release/curate run --no-registry "$PIPE" --threads 1 >/dev/null
done
python3 "$HERE/compare.py" pipeline "$WORK/dt_bench.json" "$WORK/chain-pipeline-out/run.json" "$WORK"/pipeline-time-*.json
exit $status

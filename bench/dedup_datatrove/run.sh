#!/usr/bin/env bash
# Speed/memory comparison of curate-dedup and datatrove 0.10.1 MinHash dedup on one generated
# corpus, same n-gram size (5), bands (14) and rows (8), one core each.
#
#   bench/dedup_datatrove/run.sh [DOCS]      # default 50000 documents (~100 MB)
#   CURATE_ONLY=1 bench/dedup_datatrove/run.sh 1000000   # curate alone (e.g. the 1M / 2 GB run)
#   DT_TOKENIZER=whitespace bench/dedup_datatrove/run.sh  # datatrove with str.split() instead of
#                                                         # its default spaCy English tokenizer
#
# Besides the library alone (`dedup-bench run`), the corpus also goes end to end through
# `curate run` with a one-step `minhash_dedup` pipeline (JSONL in, JSONL out, rejects and
# run.json included) on CURATE_THREADS threads (default 1, like datatrove's one worker).
#
# Needs python3 (venv), GNU time (/usr/bin/time, Debian package `time`) and cargo.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DOCS=${1:-50000}
WORK=$ROOT/bench/.work/dedup_datatrove
VENV=$ROOT/bench/.work/venv
BIN=$ROOT/target/release/dedup-bench
CLI=$ROOT/target/release/curate

[ -x /usr/bin/time ] || { echo "GNU time missing: apt-get install time" >&2; exit 1; }

if [ -z "${CURATE_ONLY:-}" ]; then
  if ! "$VENV/bin/python" -c 'import importlib.metadata as m, spacy, orjson, regex, tokenizers, xxhash; assert m.version("datatrove") == "0.10.1" and m.version("xxhash") == "3.5.0"' 2>/dev/null; then
    python3 -m venv "$VENV"
    # Imported by datatrove's English word tokenizer (spacy, regex), JSONL reader (orjson) and
    # dedup package (tokenizers, xxhash: the default HashConfig), not its base dependencies.
    # datatrove 0.10.1 hashes str objects, which xxhash 4 rejects ("Strings must be encoded").
    "$VENV/bin/pip" install -q "datatrove==0.10.1" spacy orjson regex tokenizers "xxhash==3.5.0"
  fi
fi

(cd "$ROOT" && cargo build --release -q -p curate-dedup --bin dedup-bench && cargo build --release -q -p curate-cli --bin curate)

mkdir -p "$WORK"
INPUT=$WORK/input-$DOCS
if [ ! -s "$INPUT/corpus.jsonl" ]; then
  mkdir -p "$INPUT"
  "$BIN" corpus --docs "$DOCS" --seed 42 --out "$INPUT/corpus.jsonl"
fi
echo "corpus: $DOCS docs, $(du -h "$INPUT/corpus.jsonl" | cut -f1)"

# "h:mm:ss" or "m:ss.ss" -> seconds
secs() { awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }'; }
field() { grep "$1" "$2" | sed 's/.*: //'; }
cpu() { echo "$(field "User time" "$1") $(field "System time" "$1")" | awk '{ print $1 + $2 }'; }
report() { # name timefile
  local wall rss user sys
  wall=$(field "Elapsed (wall clock)" "$2" | secs)
  rss=$(field "Maximum resident set size" "$2")
  user=$(field "User time" "$2"); sys=$(field "System time" "$2")
  awk -v n="$1" -v w="$wall" -v u="$user" -v s="$sys" -v r="$rss" \
    'BEGIN { printf "%-10s wall %8.2f s   user+sys %8.2f s   peak RSS %8.1f MiB\n", n, w, u + s, r / 1024 }'
}

rm -rf "$WORK/curate" && mkdir -p "$WORK/curate"
/usr/bin/time -v -o "$WORK/curate.time" "$BIN" run --input "$INPUT/corpus.jsonl" \
  --output "$WORK/curate/kept.jsonl" --removed "$WORK/curate/removed.tsv" --spill-dir "$WORK/curate"
CURATE_KEPT=$(wc -l < "$WORK/curate/kept.jsonl")

printf 'name: dedup-bench\ninput:\n  path: %s\n  id_field: id\nsteps:\n  - op: minhash_dedup\noutput:\n  path: %s\n  format: jsonl\n' \
  "$INPUT/corpus.jsonl" "$WORK/curate-run" > "$WORK/pipeline.yaml"
/usr/bin/time -v -o "$WORK/curate-run.time" "$CLI" run --no-registry "$WORK/pipeline.yaml" --threads "${CURATE_THREADS:-1}" \
  --progress-interval 60 > "$WORK/curate-run.log" 2>&1
PIPE_KEPT=$(cat "$WORK"/curate-run/data/*.jsonl | wc -l)

if [ -z "${CURATE_ONLY:-}" ]; then
  rm -rf "$WORK/datatrove"
  /usr/bin/time -v -o "$WORK/datatrove.time" "$VENV/bin/python" "$ROOT/bench/dedup_datatrove/datatrove_minhash.py" \
    --input "$INPUT" --work "$WORK/datatrove" --tokenizer "${DT_TOKENIZER:-default}" 2> "$WORK/datatrove.log"
  DT_KEPT=$(cat "$WORK"/datatrove/output/*.jsonl | wc -l)
fi

echo
echo "kept: curate $CURATE_KEPT, curate run $PIPE_KEPT${DT_KEPT:+, datatrove $DT_KEPT} of $DOCS"
report curate "$WORK/curate.time"
report "curate run" "$WORK/curate-run.time"
if [ -z "${CURATE_ONLY:-}" ]; then
  report datatrove "$WORK/datatrove.time"
  c=$(field "Elapsed (wall clock)" "$WORK/curate.time" | secs)
  d=$(field "Elapsed (wall clock)" "$WORK/datatrove.time" | secs)
  awk -v c="$c" -v d="$d" 'BEGIN { printf "speedup (datatrove wall / curate wall): %.1fx\n", d / c }'
  # The machine may be shared: CPU time is the steadier comparison of two single-core runs.
  awk -v c="$(cpu "$WORK/curate.time")" -v d="$(cpu "$WORK/datatrove.time")" \
    'BEGIN { printf "speedup (datatrove CPU / curate CPU):   %.1fx\n", d / c }'
  p=$(field "Elapsed (wall clock)" "$WORK/curate-run.time" | secs)
  awk -v c="$p" -v d="$d" 'BEGIN { printf "speedup (datatrove wall / curate run wall): %.1fx\n", d / c }'
  awk -v c="$(cpu "$WORK/curate-run.time")" -v d="$(cpu "$WORK/datatrove.time")" \
    'BEGIN { printf "speedup (datatrove CPU / curate run CPU):   %.1fx\n", d / c }'
fi

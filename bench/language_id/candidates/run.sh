#!/usr/bin/env bash
# Accuracy, speed and peak memory of candidate detectors on bench/language_id's corpus
# (the "Choice of crate" table of ../RESULTS.md). Run bench/language_id/run.sh first: it
# builds the corpus and measures curate-lang itself.
#
#   bench/language_id/candidates/run.sh                      # every candidate
#   bench/language_id/candidates/run.sh lingua-web whichlang # some
set -euo pipefail
cd "$(dirname "$0")/../../.."
HERE=bench/language_id
WORK=bench/.work/language_id
CORPUS="$WORK/corpus-${MIN_CHARS:-100}.jsonl"
CORE=${CORE:-0}
TARGET=${CARGO_TARGET_DIR:-target}/language-id-candidates
[ -s "$CORPUS" ] || { echo "no $CORPUS: run $HERE/run.sh first" >&2; exit 1; }
CARGO_TARGET_DIR="$TARGET" cargo build --release -q --manifest-path "$HERE/candidates/Cargo.toml"
DETECTORS=("$@")
[ ${#DETECTORS[@]} -gt 0 ] || DETECTORS=(whichlang lingua-all lingua-all-low lingua-whatlang lingua-web lingua-bench)
PIN=()
if command -v taskset >/dev/null; then PIN=(taskset -c "$CORE"); fi
for d in "${DETECTORS[@]}"; do
  "${PIN[@]}" /usr/bin/time -f '%M' -o "$WORK/$d.rss" \
    "$TARGET/release/language-id-candidates" "$d" "$CORPUS" "$WORK/$d.jsonl" > "$WORK/$d-time.json"
  python3 "$HERE/report.py" "$WORK/$d.jsonl" "$WORK/$d-time.json" "$d" "$CORPUS"
  echo "peak RSS: $(( $(cat "$WORK/$d.rss") / 1024 )) MB; passes (s): $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["seconds_passes"])' "$WORK/$d-time.json")"
done

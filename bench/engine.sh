#!/usr/bin/env bash
# Engine throughput and memory, measured side by side in one run:
#   1. raw floor: read + decompress + parse into Arrow, nothing else (crates/curate-io/examples/read_only.rs)
#   2. curate run of a trivial pipeline (length_filter -> Parquet) on the same data
#   3. peer: Python's json.loads over the same decompressed data (one core)
# and the peak RSS of the pipeline on the full input (target: a 2 GB input under 500 MB RSS).
# Usage: bench/engine.sh [SIZE_BYTES] (default 2e9)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE="${1:-2e9}"
WORK=bench/.work/engine
mkdir -p "$WORK"
cargo build --release --quiet -p curate-cli -p curate-io --bins --examples
BIN=target/release/curate
READ=target/release/examples/read_only
if [ ! -f "$WORK/corpus.$SIZE.jsonl.zst" ]; then
  python3 bench/gen_corpus.py "$WORK/corpus.jsonl" "$SIZE"
  zstd -q -T2 -3 --rm -f "$WORK/corpus.jsonl" -o "$WORK/corpus.$SIZE.jsonl.zst"
  # A plain copy too: uncompressed files are split into byte ranges, one task each.
  zstd -q -d -f "$WORK/corpus.$SIZE.jsonl.zst" -o "$WORK/plain.$SIZE.jsonl"
fi
cat >"$WORK/pipeline.yaml" <<YAML
name: bench
input:
  path: $WORK/plain.$SIZE.jsonl
  id_field: id
steps:
  - op: length_filter
    min_chars: 200
output:
  path: $WORK/out
  format: parquet
YAML
sed "s#plain.$SIZE.jsonl#corpus.$SIZE.jsonl.zst#; s#/out#/out-zst#" "$WORK/pipeline.yaml" >"$WORK/pipeline-zst.yaml"

secs() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['$2'])" "$1"; }
peak_mb() { awk '/Maximum resident set size/ {printf "%.0f", $6/1024}' "$1"; }

for T in 1 2; do
  $READ "$WORK/plain.$SIZE.jsonl" $T >"$WORK/read.$T.json"
  /usr/bin/time -v $BIN run --no-registry "$WORK/pipeline.yaml" --threads $T >/dev/null 2>"$WORK/time.$T.txt"
  raw=$(secs "$WORK/read.$T.json" seconds)
  run=$(secs "$WORK/out/run.json" elapsed_s)
  mb=$(python3 -c "import os; print(os.path.getsize('$WORK/plain.$SIZE.jsonl')/1e6)")
  printf 'threads=%s  raw read+parse: %.1f MB/s  pipeline: %.1f MB/s  pipeline/raw = %.2f  peak RSS %s MB\n' \
    $T "$(python3 -c "print($mb/$raw)")" "$(python3 -c "print($mb/$run)")" "$(python3 -c "print($raw/$run)")" "$(peak_mb "$WORK/time.$T.txt")"
done
/usr/bin/time -v $BIN run --no-registry "$WORK/pipeline-zst.yaml" --threads 2 >/dev/null 2>"$WORK/time.zst.txt"
printf 'zstd input (one task per file): %.1f s, peak RSS %s MB\n' "$(secs "$WORK/out-zst/run.json" elapsed_s)" "$(peak_mb "$WORK/time.zst.txt")"

# Peer on a 200 MB prefix (Python is slow; the ratio is per MB).
head -c 200000000 "$WORK/plain.$SIZE.jsonl" | head -n -1 >"$WORK/peer.jsonl"
peer=$(python3 - "$WORK/peer.jsonl" <<'PY'
import json, sys, time
t = time.time()
n = 0
with open(sys.argv[1], "rb") as f:
    for line in f:
        rec = json.loads(line)
        n += len(rec["text"]) >= 200
print(time.time() - t)
PY
)
$READ "$WORK/peer.jsonl" 1 >"$WORK/read.peer.json"
printf 'peer (python json.loads, 1 core) on 200 MB: %.1f MB/s; curate raw parse 1 core: %.1f MB/s; ratio %.1fx\n' \
  "$(python3 -c "print(200/$peer)")" "$(python3 -c "print(200/$(secs "$WORK/read.peer.json" seconds))")" \
  "$(python3 -c "print($peer/$(secs "$WORK/read.peer.json" seconds))")"

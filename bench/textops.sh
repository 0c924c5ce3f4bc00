#!/usr/bin/env bash
# Single-thread throughput of normalize, pii_redact and word_list_filter.
# Usage: bench/textops.sh [BYTES]   (default 50 MB of synthetic web text, see gen_corpus.py)
# A second run uses the hand-labelled PII sample repeated, which is dense in values to find.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE="${1:-50000000}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
python3 bench/gen_corpus.py "$WORK/corpus.jsonl" "$SIZE"
for _ in $(seq 200); do cat crates/curate-ops/tests/fixtures/pii_labelled.jsonl; done > "$WORK/pii.jsonl"
cargo build --release -q -p curate-ops --example textops_bench
for f in "$WORK/corpus.jsonl" "$WORK/pii.jsonl"; do
  target/release/examples/textops_bench "$f"
done

#!/usr/bin/env bash
# curate-fasttext against the official fastText Python package (0.9.3): agreement and speed on
# real paragraphs (bench/language_id's corpus of Debian's translated documentation, >= 100
# characters, 27 languages), one core each (taskset -c $CORE), with lid.176.ftz (quantized,
# hierarchical softmax, 176 labels) and the small softmax model of the crate's tests.
#
#   bench/fasttext/run.sh                  # 1,000 and 10,000 paragraphs, top 1
#   K=5 SIZES="1000" bench/fasttext/run.sh
#
# Per model and size it prints: texts whose top label differs (goal 0), texts whose label
# list differs, max |prob diff| over the labels both return (goal <= 1e-5), texts/s of each
# (best of PASSES passes over the texts, prediction only) and the ratio (goal >= 3).
# Everything it writes goes under bench/.work/fasttext/ (gitignored).
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=bench/fasttext
WORK=bench/.work/fasttext
CORE=${CORE:-0}
K=${K:-1}
SIZES=${SIZES:-"1000 10000"}
export PASSES=${PASSES:-3}
mkdir -p "$WORK"

bash "$HERE/env.sh"
bash scripts/models.sh
bash "$HERE/corpus.sh"
for n in $SIZES; do
  python3 - "$WORK/corpus-bench.jsonl" "$WORK/texts-$n.jsonl" "$n" <<'PY'
import hashlib, json, sys
rows = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
rows.sort(key=lambda r: hashlib.sha1(r["text"].encode()).hexdigest())
n = int(sys.argv[3])
assert len(rows) >= n, f"corpus has {len(rows)} paragraphs, fewer than {n}"
with open(sys.argv[2], "w", encoding="utf-8") as fh:
    for r in rows[:n]:
        fh.write(json.dumps({"text": r["text"]}, ensure_ascii=False) + "\n")
PY
done

cargo build --release -q -p curate-fasttext --features bench-bin --bin curate-fasttext-bench
BIN="${CARGO_TARGET_DIR:-target}/release/curate-fasttext-bench"
PIN=()
if command -v taskset >/dev/null; then PIN=(taskset -c "$CORE"); fi

RESULTS="$WORK/results.jsonl"
: >"$RESULTS"
for spec in "lid176=.models/lid.176.ftz" "softmax=crates/curate-fasttext/tests/data/softmax.bin"; do
  name=${spec%%=*}
  model=${spec#*=}
  for n in $SIZES; do
    in="$WORK/texts-$n.jsonl"
    "${PIN[@]}" "$BIN" "$model" "$in" "$WORK/rust-$name-$n.jsonl" "$K" >"$WORK/rust-$name-$n.time.json"
    "${PIN[@]}" .venv-bench-fasttext/bin/python "$HERE/py_bench.py" "$model" "$in" "$WORK/py-$name-$n.jsonl" "$K" \
      >"$WORK/py-$name-$n.time.json"
    python3 "$HERE/compare.py" "$name" "$WORK/rust-$name-$n.jsonl" "$WORK/rust-$name-$n.time.json" \
      "$WORK/py-$name-$n.jsonl" "$WORK/py-$name-$n.time.json" | tee -a "$RESULTS"
  done
done
python3 - "$RESULTS" "$K" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"\nk={sys.argv[2]}, one core each, prediction time only (best of passes)")
print(f"{'model':8} {'texts':>6} {'MB':>5} {'top diff':>8} {'list diff':>9} {'max |dp|':>9} "
      f"{'rust t/s':>9} {'python t/s':>10} {'ratio':>6} {'rust s':>7} {'python s':>8}")
for r in rows:
    print(f"{r['model']:8} {r['texts']:>6} {r['mb']:>5} {r['top_label_diffs']:>8} {r['label_list_diffs']:>9} "
          f"{r['max_prob_diff']:>9.2e} {r['rust_texts_per_s']:>9} {r['python_texts_per_s']:>10} "
          f"{r['speedup']:>6} {r['rust_seconds']:>7} {r['python_seconds']:>8}")
PY

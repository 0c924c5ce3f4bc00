#!/usr/bin/env bash
# `embed` against its reference libraries, side by side in one run, at two sizes:
#   - all-MiniLM-L6-v2: sentence-transformers (CPU torch, batch 32, $THREADS threads) vs curate's
#     `embed` step in a pipeline (`curate run --threads $THREADS`) and the encoder alone
#     (curate-embed-bench), and candle's BERT (bench/embed/candle, the runtime the issue
#     suggested, built outside the workspace): docs/s, peak RSS, cosine of every row to
#     sentence-transformers';
#   - static embeddings (wordllama l2_supercat 256): the wordllama package vs curate-embed-bench,
#     one core each (taskset -c 0): docs/s, cosine.
#
#   bench/embed/run.sh                 # 1,000 and 10,000 paragraphs, 2 threads
#   SIZES="1000" THREADS=1 bench/embed/run.sh
#
# Paragraphs: real English documentation paragraphs (bench/embed/paragraphs.py). Everything
# it writes goes under bench/.work/embed/ (gitignored). Models come from .models/
# (scripts/models.sh); nothing is downloaded at run time.
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZES=${SIZES:-"1000 10000"}
THREADS=${THREADS:-2}
ROOT=$(pwd)
WORK=$ROOT/bench/.work/embed
PY=$ROOT/.venv-bench-embed/bin/python
mkdir -p "$WORK"
bash bench/embed/env.sh
bash scripts/models.sh
cargo build --release -q -p curate-cli
cargo build --release -q -p curate-embed --features bench-bin --bin curate-embed-bench
# candle's BERT (bench/embed/candle, outside the workspace), the runtime weighed against ours.
(cd bench/embed/candle && CARGO_TARGET_DIR="$ROOT/bench/.work/candle-target" cargo build --release -q)
CANDLE=$ROOT/bench/.work/candle-target/release/candle-embed-bench
CURATE=$ROOT/target/release/curate
BENCH=$ROOT/target/release/curate-embed-bench
MODELS=$ROOT/.models

# Cosine of each row of a float32 file (curate-embed-bench, candle-embed-bench) to the same row
# of a .npy: "min M over N rows; zero rows equal: B".
cosine() {
  "$PY" - "$1" "$2" <<'EOF'
import sys
import numpy as np
a = np.load(sys.argv[1]).astype(np.float64)
b = np.fromfile(sys.argv[2], dtype="<f4").reshape(a.shape).astype(np.float64)
na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
ok = (na > 0) & (nb > 0)
cos = (a[ok] * b[ok]).sum(1) / (na[ok] * nb[ok])
print(f"min {cos.min():.7f} over {ok.sum()} rows; zero rows equal: {bool(((na == 0) == (nb == 0)).all())}")
EOF
}

# Peak RSS (KiB) and wall seconds of a command: "<kib> <seconds>".
measure() {
  /usr/bin/time -f "%M %e" -o "$WORK/.time" "$@" >/dev/null
  cat "$WORK/.time"
}

for N in $SIZES; do
  PARAS="$WORK/paragraphs-$N.jsonl"
  [ -s "$PARAS" ] || "$PY" bench/embed/paragraphs.py "$PARAS" --n "$N"
  echo "== $N paragraphs ($(wc -c <"$PARAS") bytes of JSONL)"

  # sentence-transformers, then curate's pipeline and encoder on the same paragraphs.
  "$PY" bench/embed/st_bench.py "$PARAS" "$WORK/st-$N" "$THREADS" >/dev/null
  st=$("$PY" -c "import json,sys;d=json.load(open(sys.argv[1]));print(d['docs_per_s'], d['max_rss_mib'])" "$WORK/st-$N.json")
  RUN="$WORK/curate-$N"
  rm -rf "$RUN"
  mkdir -p "$RUN"
  cat >"$RUN/embed.yaml" <<EOF
name: embed-bench
input: {path: $PARAS, id_field: id}
steps:
  - op: embed
    model: $MODELS/all-MiniLM-L6-v2
output: {path: out}
EOF
  read -r kib secs < <(cd "$RUN" && measure "$CURATE" run embed.yaml --no-registry --no-cache --threads "$THREADS")
  pipe=$(python3 -c "print(round($N / $secs, 1), round($kib / 1024, 1))")
  RAYON_NUM_THREADS=$THREADS "$BENCH" "$MODELS/all-MiniLM-L6-v2" "$PARAS" "$WORK/ce-$N" >/dev/null
  enc=$(python3 -c "import json;print(round(json.load(open('$WORK/ce-$N.json'))['docs_per_s'], 1))")
  echo "all-MiniLM-L6-v2, $THREADS threads: docs/s and peak RSS MiB"
  echo "  sentence-transformers      ${st% *} docs/s  ${st#* } MiB"
  echo "  curate run (embed step)    ${pipe% *} docs/s  ${pipe#* } MiB   ratio $(python3 -c "print(round(${pipe% *} / ${st% *}, 2))")x"
  echo "  curate-embed (encoder)     $enc docs/s          ratio $(python3 -c "print(round($enc / ${st% *}, 2))")x"
  RAYON_NUM_THREADS=$THREADS "$CANDLE" "$MODELS/all-MiniLM-L6-v2" "$PARAS" "$WORK/candle-$N" >/dev/null
  cdl=$(python3 -c "import json;print(round(json.load(open('$WORK/candle-$N.json'))['docs_per_s'], 1))")
  echo "  candle 0.9 BERT            $cdl docs/s          ratio $(python3 -c "print(round($cdl / ${st% *}, 2))")x  cosine $(cosine "$WORK/st-$N.npy" "$WORK/candle-$N.f32")"
  "$PY" bench/embed/compare.py "$WORK/st-$N.npy" "$RUN/out/data" | sed 's/^/  cosine to sentence-transformers: /' | head -4

  # Static embeddings, one core each.
  taskset -c 0 "$PY" bench/embed/wordllama_bench.py "$PARAS" "$WORK/wordllama-$N" 1 >/dev/null
  wl=$("$PY" -c "import json,sys;print(round(json.load(open(sys.argv[1]))['docs_per_s'], 1))" "$WORK/wordllama-$N.json")
  RAYON_NUM_THREADS=1 taskset -c 0 "$BENCH" "$MODELS/wordllama-l2-256" "$PARAS" "$WORK/cw-$N" >/dev/null
  cw=$(python3 -c "import json;print(round(json.load(open('$WORK/cw-$N.json'))['docs_per_s'], 1))")
  echo "wordllama static embeddings, one core:"
  echo "  wordllama package          $wl docs/s"
  echo "  curate-embed               $cw docs/s   ratio $(python3 -c "print(round($cw / $wl, 2))")x"
  echo "  cosine to wordllama: $(cosine "$WORK/wordllama-$N.npy" "$WORK/cw-$N.f32")"
done

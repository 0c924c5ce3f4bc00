#!/usr/bin/env bash
# What the integrity guarantees cost (issue 11): fsync of every published file and directory,
# the input bytes hashed as they are read and checked against the hash that names them, the
# output lock and the repeated-id check. The peer is the engine without them: BASE, a commit
# before them, built into its own target directory, run on the same inputs in the same run.
#
# Usage: bench/integrity.sh [BYTES...] (default: 200e6 1e9). BASE=<commit> (default 1248e36).
# Each size runs a split plain JSONL (byte-range tasks), a zstd file (one task) and the same
# pipeline with the step cache, 3 rounds interleaved; the median wall time of each is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=("$@")
[ $# -eq 0 ] && SIZES=(200e6 1e9)
BASE=${BASE:-1248e36}
W=bench/.work/integrity
mkdir -p "$W"
cargo build --release --quiet -p curate-cli
cp target/release/curate "$W/curate-new"
NEW=$(realpath "$W/curate-new")
if [ ! -x "$W/curate-base" ] || [ "$(cat "$W/base.commit" 2>/dev/null)" != "$BASE" ]; then
  rm -rf "$W/base"
  git worktree prune
  git worktree add --detach "$W/base" "$BASE" >/dev/null
  # The same target directory: compiled dependencies are shared, only the workspace crates differ.
  ROOT=$PWD
  (cd "$W/base" && CARGO_TARGET_DIR="$ROOT/target" cargo build --release --quiet -p curate-cli)
  cp target/release/curate "$W/curate-base"
  git worktree remove --force "$W/base"
  echo "$BASE" >"$W/base.commit"
fi
OLD=$(realpath "$W/curate-base")

median() { python3 -c "import sys,statistics; print('%.2f' % statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }
wall() { # wall seconds of one run: BIN SPEC [ARGS...]
  local bin=$1 spec=$2; shift 2
  local t0 t1
  t0=$(date +%s.%N)
  (cd "$W/run" && CURATE_HOME="$W_ABS/run/home-$(basename "$bin")" "$bin" run "$spec" "$@" >/dev/null 2>&1)
  t1=$(date +%s.%N)
  python3 -c "print($t1-$t0)"
}
W_ABS=$(realpath "$W")

for SIZE in "${SIZES[@]}"; do
  if [ ! -f "$W/plain.$SIZE.jsonl" ]; then
    python3 bench/gen_corpus.py "$W/plain.$SIZE.jsonl" "$SIZE"
    zstd -q -T2 -3 -f "$W/plain.$SIZE.jsonl" -o "$W/corpus.$SIZE.jsonl.zst"
  fi
  rm -rf "$W/run" && mkdir -p "$W/run"
  for kind in plain zst; do
    f=$([ $kind = plain ] && echo "plain.$SIZE.jsonl" || echo "corpus.$SIZE.jsonl.zst")
    cat >"$W/run/$kind.yaml" <<YAML
name: bench-$kind
input:
  path: $W_ABS/$f
  id_field: id
steps:
  - op: length_filter
    min_chars: 200
output:
  path: out-$kind
YAML
  done
  for case in "plain --no-registry" "zst --no-registry" "plain"; do
    set -- $case
    kind=$1; shift
    old=(); new=()
    for round in 1 2 3; do
      # The cached case measures a first run each round: a fresh state directory.
      rm -rf "$W/run"/home-* "$W/run"/out-*
      old+=("$(wall "$OLD" "$kind.yaml" --threads 2 "$@")")
      rm -rf "$W/run"/home-* "$W/run"/out-*
      new+=("$(wall "$NEW" "$kind.yaml" --threads 2 "$@")")
    done
    o=$(median "${old[@]}"); n=$(median "${new[@]}")
    printf 'size=%-6s %-22s base %6.2f s   with integrity %6.2f s   ratio %.3f\n' "$SIZE" "$kind ${*:-(registry+cache)}" "$o" "$n" "$(python3 -c "print($n/$o)")"
  done
done

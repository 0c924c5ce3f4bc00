#!/usr/bin/env bash
# The step cache (ARCHITECTURE.md §4) on generated records, at each size given:
#  1. size: the pipeline of bench/registry/run.sh (length_filter + normalize over 16 JSONL
#     files) run once; bytes of the step cache (`curate cache stats`) against the input's.
#  2. re-run: two annotate + select pipelines (gopher_repetition and gopher_quality with
#     annotate_only, then select; and language_id, gopher_repetition, gopher_quality and
#     fineweb_quality, then select) each run once, then again with one select threshold
#     changed: the annotations are replayed from the cache and only the select is computed.
#     The peer is the first run.
# Times: "pipeline" is the run's elapsed_s in run.json (read, steps, write), "command" the
# whole `curate run` (adds the registry commit with the lineage of every record).
#
# Usage: bench/cache/run.sh [N_RECORDS...] (default: 200000 2000000). PROFILE=debug uses the
# dev build.
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZES=("$@")
[ $# -eq 0 ] && SIZES=(200000 2000000)
PROFILE=${PROFILE:-release}
TARGET=${CARGO_TARGET_DIR:-target}
if [ "$PROFILE" = release ]; then cargo build --release -q -p curate-cli; else cargo build -q -p curate-cli; fi
CURATE=$(realpath "$TARGET/$PROFILE/curate")
unset CURATE_CACHE_MAX CURATE_REGISTRY

# One `curate run` in the current directory: prints "pipeline_s command_s".
timed_run() {
  local t0 t1
  t0=$(date +%s.%N)
  "$CURATE" run "$@" --progress-interval 600 >/dev/null 2>run.log || { cat run.log; exit 1; }
  t1=$(date +%s.%N)
  python3 -c "import json,sys; print('%.2f %.2f' % (json.load(open('out/run.json'))['elapsed_s'], $t1 - $t0))"
}
stats_bytes() { "$CURATE" cache stats --json | python3 -c "import json,sys; print(json.load(sys.stdin)['bytes'])"; }
ratio() { python3 -c "import sys; print('%.3f' % (float(sys.argv[1]) / float(sys.argv[2])))" "$1" "$2"; }

for N in "${SIZES[@]}"; do
  W=bench/.work/cache-$N
  rm -rf "$W" && mkdir -p "$W/in"
  # The generator of bench/registry/run.sh: ids doc-NNNNNNNNN, 3-60 words of a small vocabulary.
  python3 - "$N" "$W/in" <<'PY'
import random, sys
n, out = int(sys.argv[1]), sys.argv[2]
rng = random.Random(7)
words = "data model the of web text quality a curate token set page source record train".split()
files = 16
for f in range(files):
    with open(f"{out}/part-{f:02}.jsonl", "w") as fh:
        for i in range(f, n, files):
            t = " ".join(rng.choice(words) for _ in range(rng.randint(3, 60)))
            fh.write('{"id":"doc-%09d","text":"%s"}\n' % (i, t))
PY
  cat > "$W/web.yaml" <<'Y'
name: web
input: {path: in/*.jsonl, id_field: id}
steps:
  - {op: length_filter, min_chars: 40}
  - {op: normalize}
output: {path: out}
Y
  # Two annotate + select pipelines: two Gopher annotators, and a FineWeb-style chain that
  # identifies the language first (the most expensive annotator here).
  cat > "$W/light.yaml" <<'Y'
name: light
input: {path: in/*.jsonl, id_field: id}
steps:
  - {op: gopher_repetition, annotate_only: true}
  - {op: gopher_quality, annotate_only: true}
  - {op: select, expr: "gopher_quality_n_words >= 20 and gopher_repetition_top_2_gram_char_frac < 0.5"}
output: {path: out}
Y
  cat > "$W/fineweb.yaml" <<'Y'
name: fineweb
input: {path: in/*.jsonl, id_field: id}
steps:
  - {op: language_id}
  - {op: gopher_repetition, annotate_only: true}
  - {op: gopher_quality, annotate_only: true}
  - {op: fineweb_quality, annotate_only: true}
  - {op: select, expr: "lang == 'en' and gopher_quality_n_words >= 20 and fineweb_quality_line_punct_ratio <= 1"}
output: {path: out}
Y
  cd "$W"
  input_bytes=$(cat in/*.jsonl | wc -c)
  echo "== N=$N: $input_bytes input bytes in 16 files ($PROFILE build; load average $(cut -d' ' -f1-3 /proc/loadavg))"

  export CURATE_HOME=$PWD/home-web
  read -r p c < <(timed_run web.yaml)
  cache_bytes=$(stats_bytes)
  echo "size: web (length_filter + normalize) run ${p}s pipeline / ${c}s command; step cache $cache_bytes bytes = $(ratio "$cache_bytes" "$input_bytes") x input"

  for q in light fineweb; do
    export CURATE_HOME=$PWD/home-$q
    if [ $q = light ]; then
      # What storing the entries costs: the same spec without the cache, into its own home.
      read -r p0 c0 < <(CURATE_HOME=$PWD/home-nocache timed_run $q.yaml --no-cache)
    fi
    read -r p1 c1 < <(timed_run $q.yaml)
    sed -i 's/gopher_quality_n_words >= 20/gopher_quality_n_words >= 25/' $q.yaml
    read -r p2 c2 < <(timed_run $q.yaml)
    reused=$("$CURATE" runs show 2 --json | python3 -c "import json,sys; t=json.load(sys.stdin)['tasks']; print('%d of %d task steps reused' % (sum(x['decision']=='reused' for x in t), len(t)))")
    q_cache=$(stats_bytes)
    echo "re-run: $q, first run ${p1}s pipeline / ${c1}s command; its step cache $q_cache bytes = $(ratio "$q_cache" "$input_bytes") x input"
    if [ $q = light ]; then echo "        (the same first run with --no-cache: ${p0}s / ${c0}s)"; fi
    echo "        threshold changed: ${p2}s / ${c2}s ($reused) = $(ratio "$p2" "$p1") / $(ratio "$c2" "$c1") x first run"
  done
  cd - >/dev/null
done

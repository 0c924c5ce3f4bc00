#!/usr/bin/env bash
# End-to-end cost of the registry through the CLI: a pipeline run over N generated records
# (lineage of every record, version commit), `curate explain` latency on random ids (whole
# process, start-up included), and `curate forget` of 1,000 sources (audit, rewrite of every
# file holding one, new versions of the global and a specialised dataset).
#
# Usage: bench/registry/run.sh [N_RECORDS] (default 1000000). PROFILE=debug uses the dev build.
# The registry-only figures at 10M records are in crates/curate-registry/BENCH.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000000}
PROFILE=${PROFILE:-release}
TARGET=${CARGO_TARGET_DIR:-target}
if [ "$PROFILE" = release ]; then cargo build --release -q -p curate-cli; else cargo build -q -p curate-cli; fi
CURATE=$(realpath "$TARGET/$PROFILE/curate")
W=bench/.work/registry-$N
rm -rf "$W" && mkdir -p "$W/in"
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
cat > "$W/code.yaml" <<'Y'
name: web-long
input: {dataset: web@latest}
steps:
  - {op: length_filter, min_chars: 200}
output: {path: out-long}
Y
cd "$W"
t() { /usr/bin/time -f "%e s wall, %M KB peak RSS" "$@"; }
echo "== run web (N=$N): pipeline + lineage + version commit"
t "$CURATE" run web.yaml --progress-interval 60 2>&1 | grep -E "records in|committed|wall"
echo "== run web-long (specialised, input: dataset web@latest)"
t "$CURATE" run code.yaml --progress-interval 60 2>&1 | grep -E "records in|committed|wall"
echo "== explain: 20 random ids, whole process each"
python3 - "$CURATE" "$N" <<'PY'
import random, subprocess, sys, time
curate, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(1)
lat = []
for _ in range(20):
    rid = "doc-%09d" % rng.randrange(n)
    t0 = time.perf_counter()
    subprocess.run([curate, "explain", rid], check=True, capture_output=True)
    lat.append(time.perf_counter() - t0)
lat.sort()
print(f"explain latency: p50 {lat[10]*1000:.1f} ms, max {lat[-1]*1000:.1f} ms")
PY
echo "== forget 1,000 random sources"
python3 -c "
import random; rng = random.Random(2); print(' '.join('doc-%09d' % i for i in rng.sample(range($N), 1000)))" > sources.txt
t "$CURATE" forget $(cat sources.txt) --reason bench 2>&1 | grep -E "forget|committed|wall"

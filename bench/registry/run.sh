#!/usr/bin/env bash
# What the registry costs on top of the pipeline, through the CLI, at N generated records:
#   - `curate run` of a global dataset (`web`) and of a specialised one reading it
#     (`web-long`, input: web@latest), each against the same run with --no-registry
#     (web-long's baseline reads the same stored files by path);
#   - the registry database, store, step cache and lineage sizes after the script;
#   - `curate explain` of 20 random ids (whole process each, start-up included);
#   - `curate forget` of 1,000 random sources (new versions of both datasets);
#   - peak RSS of every command.
# Ratios are measured in one run of this script, on one machine.
#
# Usage: bench/registry/run.sh [N_RECORDS] (default 1000000). PROFILE=debug uses the dev
# build; KEEP=1 keeps bench/.work/registry-N afterwards (it is removed by default: at 100M
# records it holds about 60 GB).
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000000}
PROFILE=${PROFILE:-release}
TARGET=${CARGO_TARGET_DIR:-target}
if [ "$PROFILE" = release ]; then cargo build --release -q -p curate-cli; else cargo build -q -p curate-cli; fi
CURATE=$(realpath "$TARGET/$PROFILE/curate")
W=$(realpath -m bench/.work/registry-$N)
rm -rf "$W" && mkdir -p "$W/in"
echo "== generating $N records"
# Texts are drawn from a pool of 200,000 random word sequences (3-60 words) so that 100M
# records generate in minutes; the 16 files are written by parallel processes.
python3 - "$N" "$W/in" <<'PY'
import random, sys
from multiprocessing import Pool
n, out = int(sys.argv[1]), sys.argv[2]
files = 16
rng = random.Random(7)
words = "data model the of web text quality a curate token set page source record train".split()
pool = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 60))) for _ in range(200000)]
def write(f):
    r = random.Random(1000 + f)
    ids = range(f, n, files)
    with open(f"{out}/part-{f:02}.jsonl", "w") as fh:
        for start in range(0, len(ids), 200000):
            chunk = ids[start:start + 200000]
            texts = r.choices(pool, k=len(chunk))
            fh.write("".join(['{"id":"doc-%09d","text":"%s"}\n' % (i, t) for i, t in zip(chunk, texts)]))
with Pool(2) as p:
    p.map(write, range(files))
PY
cat > "$W/web.yaml" <<'Y'
name: web
input: {path: in/*.jsonl, id_field: id}
steps:
  - {op: length_filter, min_chars: 40}
  - {op: normalize}
output: {path: out, compression: zstd}
Y
cat > "$W/code.yaml" <<'Y'
name: web-long
input: {dataset: web@latest}
steps:
  - {op: length_filter, min_chars: 200}
output: {path: out-long, compression: zstd}
Y
cd "$W"
export CURATE_HOME="$W/.curate"
REPORT="$W/report.txt"
: > "$REPORT"
# Runs a command under /usr/bin/time; prints its summary lines and records "label wall rss".
t() {
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$W/.time" "$@" > "$W/.out" 2>&1 || { cat "$W/.out"; exit 1; }
  grep -E "records in|committed|forget #|wall" "$W/.out" || true
  read -r wall rss < "$W/.time"
  echo "$label $wall $rss" >> "$REPORT"
  echo "  $label: ${wall} s wall, $((rss / 1024)) MB peak RSS"
}
echo "== web: --no-registry, then with the registry (lineage, store, version commit, step cache)"
t web-noreg "$CURATE" run web.yaml --progress-interval 600 --no-registry
rm -rf out
t web "$CURATE" run web.yaml --progress-interval 600
echo "== web-long: the same files by path with --no-registry, then input: dataset web@latest"
"$CURATE" datasets show web@latest --json | python3 -c "
import json, sys
v = json.load(sys.stdin)[0]
paths = [('$W/.curate/store/' + f['path']) for f in v['files']]
print('name: web-long-path\ninput:\n  format: parquet\n  id_field: id\n  path:')
for p in paths: print('    - ' + p)
print('steps:\n  - {op: length_filter, min_chars: 200}\noutput: {path: out-long, compression: zstd}')" > code-path.yaml
t long-noreg "$CURATE" run code-path.yaml --progress-interval 600 --no-registry
rm -rf out-long
t long "$CURATE" run code.yaml --progress-interval 600
echo "== explain: 20 random ids, whole process each"
python3 - "$CURATE" "$N" "$REPORT" <<'PY'
import random, subprocess, sys, time
curate, n, report = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rng = random.Random(1)
lat = []
for _ in range(20):
    rid = "doc-%09d" % rng.randrange(n)
    t0 = time.perf_counter()
    subprocess.run([curate, "explain", rid], check=True, capture_output=True)
    lat.append(time.perf_counter() - t0)
lat.sort()
print(f"  explain latency: p50 {lat[10]*1000:.1f} ms, max {lat[-1]*1000:.1f} ms")
open(report, "a").write(f"explain-p50-ms {lat[10]*1000:.1f}\nexplain-max-ms {lat[-1]*1000:.1f}\n")
PY
echo "== forget 1,000 random sources"
python3 -c "
import random; rng = random.Random(2); print(' '.join('doc-%09d' % i for i in rng.sample(range($N), 1000)))" > sources.txt
# shellcheck disable=SC2046
t forget "$CURATE" forget $(cat sources.txt) --reason bench
size() { du -sb "$1" 2>/dev/null | cut -f1; }
{
  echo "input-bytes $(size in)"
  echo "registry-bytes $(( $(size .curate/registry.db) + $(size .curate/registry.db-wal 2>/dev/null || echo 0) ))"
  echo "store-bytes $(size .curate/store)"
  echo "cache-bytes $(size .curate/cache)"
  echo "lineage-bytes $(( $(size out/_lineage) + $(size out-long/_lineage) ))"
  echo "output-bytes $(( $(size out/data) + $(size out-long/data) ))"
} >> "$REPORT"
echo "== summary (N=$N)"
python3 - "$REPORT" <<'PY'
import sys
r = {}
for line in open(sys.argv[1]):
    k, *v = line.split()
    r[k] = [float(x) for x in v]
mb = lambda k: r[k][0] / 1e6
print(f"web run / --no-registry:       {r['web'][0]:.1f} s / {r['web-noreg'][0]:.1f} s = {r['web'][0] / r['web-noreg'][0]:.2f}")
print(f"web-long run / --no-registry:  {r['long'][0]:.1f} s / {r['long-noreg'][0]:.1f} s = {r['long'][0] / r['long-noreg'][0]:.2f}")
print(f"registry database:             {mb('registry-bytes'):.2f} MB")
print(f"step cache / input:            {mb('cache-bytes'):.0f} MB / {mb('input-bytes'):.0f} MB = {r['cache-bytes'][0] / r['input-bytes'][0]:.2f}")
print(f"store: {mb('store-bytes'):.0f} MB; lineage beside the outputs: {mb('lineage-bytes'):.0f} MB; outputs: {mb('output-bytes'):.0f} MB")
print(f"explain: p50 {r['explain-p50-ms'][0]:.1f} ms, max {r['explain-max-ms'][0]:.1f} ms")
print(f"forget 1,000 sources: {r['forget'][0]:.1f} s")
peak = max((v[1], k) for k, v in r.items() if len(v) == 2)
print(f"peak RSS: {peak[0] / 1024:.0f} MB ({peak[1]})")
PY
cd - > /dev/null
[ "${KEEP:-0}" = 1 ] || rm -rf "$W"

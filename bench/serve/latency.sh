#!/usr/bin/env bash
# Latency of the run-listing API of `curate serve` on PostgreSQL as the run queue grows.
#
# A fresh schema is migrated by the server's own code (`curate tokens create`), then filled
# with runs by direct INSERTs (bench/serve/fill_jobs.sql: 90% succeeded with a report and
# 3 done tasks, 6% failed, 2% cancelled, 2% queued, 20 pipelines). At each size (SIZES,
# default 10,000 then 100,000 runs; each adds runs to the last) a server with no workers
# is started on it and wrk, a second process on loopback, drives each endpoint in turn
# with CONNECTIONS (8) connections for DURATION (20 s):
#   list        GET /v1/runs                                   (first page, 50 runs)
#   filtered    GET /v1/runs?state=failed&pipeline=web-07      (first page)
#   cursor      GET /v1/runs?cursor=<size/2>                   (a page from the middle)
#   get         GET /v1/runs/<random id from 1 to size>
#   metrics     GET /metrics                                   (counts by state)
#   queue       GET /v1/queue                                  (queued runs, what they wait for)
# It prints, per size and endpoint, requests/s, p50/p90/p99/max latency, non-2xx answers,
# the runs and bytes of one such answer, and the CPU time per request of the server and of
# every process named postgres, and writes them as a Markdown table to
# bench/.work/serve-latency/results.md.
#
# Usage: bench/serve/latency.sh
#   CURATE_BIN=path       the curate binary (default: target/debug/curate, built if missing)
#   PGURL=postgres://...  the server (default: $CURATE_TEST_POSTGRES or
#                         postgres://root@127.0.0.1:5432/test); schema bench_serve_latency
#                         is dropped and created
#   ENDPOINTS="list filtered cursor get metrics queue"  (a subset measures only those)
#   SIZES="10000 100000"  DURATION=20s  CONNECTIONS=8  THREADS=2 (wrk's; requests time out
#                         after 10 s and count as socket errors)
#   KEEP=1                keep the schema afterwards
# Installs wrk (Debian's package) if it is missing. The machine should be otherwise idle:
# the server, PostgreSQL and wrk share its cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
SIZES=${SIZES:-10000 100000}
DURATION=${DURATION:-20s}
ENDPOINTS=${ENDPOINTS:-list filtered cursor get metrics queue}
CONNECTIONS=${CONNECTIONS:-8}
THREADS=${THREADS:-2}
PGURL=${PGURL:-${CURATE_TEST_POSTGRES:-postgres://root@127.0.0.1:5432/test}}
SCHEMA=bench_serve_latency
case $PGURL in *\?*) SEP='&' ;; *) SEP='?' ;; esac
export CURATE_REGISTRY="$PGURL${SEP}options=-csearch_path%3D$SCHEMA"
unset CURATE_SERVER CURATE_TOKEN

# --- tools -------------------------------------------------------------------------
BIN=${CURATE_BIN:-target/debug/curate}
if [ ! -x "$BIN" ]; then
  echo "== building curate (debug)"
  cargo build -q -p curate-cli
fi
BIN=$(realpath "$BIN")
if ! command -v wrk >/dev/null; then
  echo "== installing wrk"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
command -v psql >/dev/null || { echo "psql is needed (Debian: postgresql-client)" >&2; exit 1; }
[ -x scripts/postgres.sh ] && scripts/postgres.sh

W=$ROOT/bench/.work/serve-latency
rm -rf "$W" && mkdir -p "$W"
SERVER_PID=
stop_server() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  SERVER_PID=
}
cleanup() {
  stop_server
  if [ "${KEEP:-}" != 1 ]; then psql -q "$PGURL" -c "SET client_min_messages = warning" -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" || true; fi
}
trap cleanup EXIT

psql -q "$PGURL" -c "SET client_min_messages = warning" -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" -c "CREATE SCHEMA $SCHEMA"
cd "$W"
export CURATE_HOME=$W/.curate
# Creating the token migrates the fresh schema.
TOKEN=$("$BIN" tokens create --scope read --name latency | awk 'END {print $NF}')
export CURATE_TOKEN=$TOKEN

start_server() {
  "$BIN" serve --listen 127.0.0.1:0 --workers 0 >"$W/server.out" 2>>"$W/server.log" &
  SERVER_PID=$!
  ADDR=
  for _ in $(seq 1 100); do
    ADDR=$(sed -n '1s#^listening on http://##p' "$W/server.out")
    [ -n "$ADDR" ] && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$W/server.log" >&2
  echo "the server did not start" >&2
  exit 1
}

# utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# ... of every process named postgres (the server's backends and PostgreSQL's own work;
# anything else using this PostgreSQL meanwhile counts too).
pg_ticks() {
  local t=0 f
  for f in /proc/[0-9]*/stat; do
    { read -r line <"$f"; } 2>/dev/null || continue
    case $line in *" (postgres) "*) set -- ${line#*) }; t=$((t + ${12} + ${13})) ;; esac
  done
  echo "$t"
}
TICK=$(getconf CLK_TCK)

# Percent of all CPUs busy over 2 s.
busy_percent() {
  local a b
  a=$(awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6}' /proc/stat)
  sleep 2
  b=$(awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6}' /proc/stat)
  echo "$a $b" | awk '{busy = $3 - $1; idle = $4 - $2; print int(100 * busy / (busy + idle + 0.001))}'
}

RESULTS=$W/results.tsv
printf 'size\tendpoint\tpath\trequests\tduration_us\tnon2xx\tsocket_errors\tmean_us\tp50_us\tp90_us\tp99_us\tmax_us\tserver_cpu_s\tpostgres_cpu_s\tpage_runs\tpage_bytes\n' >"$RESULTS"

# measure SIZE NAME PATH [MAX_ID]
measure() {
  local size=$1 name=$2 path=$3 max_id=${4:-0} before after pg_before pg_after line sample
  # One request of the kind measured (the median id for /v1/runs/ID): runs in it, size.
  sample=${path//%d/$(( (max_id + 1) / 2 ))}
  curl -sf -H "Authorization: Bearer $TOKEN" "http://$ADDR$sample" >"$W/sample.json"
  before=$(cpu_ticks "$SERVER_PID"); pg_before=$(pg_ticks)
  line=$(WRK_PATH=$path WRK_MAX_ID=$max_id wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout 10s -s "$ROOT/bench/serve/wrk.lua" "http://$ADDR" | sed -n 's/^RESULT //p')
  after=$(cpu_ticks "$SERVER_PID"); pg_after=$(pg_ticks)
  python3 - "$size" "$name" "$path" "$line" "$((after - before))" "$((pg_after - pg_before))" "$TICK" "$W/sample.json" >>"$RESULTS" <<'PY'
import json, os, sys
size, name, path, line, ticks, pg_ticks, tick, sample = sys.argv[1:]
r = json.loads(line)
try:
    body = json.load(open(sample))
    runs = len(body["runs"]) if isinstance(body, dict) and "runs" in body else ""
except ValueError:
    runs = ""
print("\t".join(map(str, [size, name, path, r["requests"], r["duration_us"], r["non2xx"], r["socket_errors"],
                          r["mean_us"], r["p50_us"], r["p90_us"], r["p99_us"], r["max_us"], int(ticks) / int(tick),
                          int(pg_ticks) / int(tick), runs, os.path.getsize(sample)])))
PY
  tail -n1 "$RESULTS" | awk -F'\t' '{n = ($4 > 0 ? $4 : 1); printf "  %-9s %8.0f req/s  p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms  non-2xx %d  socket errors %d  CPU/req: server %.2f ms, postgres %.2f ms\n",
    $2, $4 / ($5 / 1e6), $9 / 1000, $11 / 1000, $12 / 1000, $6, $7, 1000 * $13 / n, 1000 * $14 / n}'
}

FILLED=0
for SIZE in $SIZES; do
  if [ "$SIZE" -gt "$FILLED" ]; then
    echo "== filling runs $((FILLED + 1))..$SIZE"
    start=$(date +%s.%N)
    psql -q "$CURATE_REGISTRY" -v lo=$((FILLED + 1)) -v hi="$SIZE" -f "$ROOT/bench/serve/fill_jobs.sql" >/dev/null
    psql -q "$CURATE_REGISTRY" -c "VACUUM ANALYZE jobs" -c "VACUUM ANALYZE job_tasks"
    echo "   $(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$start" "$(date +%s.%N)") s; jobs $(psql -tA "$CURATE_REGISTRY" -c "SELECT pg_size_pretty(pg_total_relation_size('jobs'))"), job_tasks $(psql -tA "$CURATE_REGISTRY" -c "SELECT pg_size_pretty(pg_total_relation_size('job_tasks'))")"
    FILLED=$SIZE
  fi
  # What the machine does while this script is idle (2 s of /proc/stat): others' load skews
  # every figure.
  busy=$(busy_percent)
  if [ "$busy" -gt 15 ]; then
    echo "warning: the CPUs were ${busy}% busy before measuring (this script idle): the figures below are skewed" >&2
  fi
  start_server
  echo "== $SIZE runs: server on http://$ADDR (pid $SERVER_PID), wrk -t$THREADS -c$CONNECTIONS -d$DURATION; CPUs ${busy}% busy before"
  # Warm-up (connections, plans, caches); not recorded.
  WRK_PATH=/v1/runs WRK_MAX_ID=0 wrk -t1 -c2 -d2s -s "$ROOT/bench/serve/wrk.lua" "http://$ADDR" >/dev/null
  for e in $ENDPOINTS; do
    case $e in
      list) measure "$SIZE" list /v1/runs ;;
      filtered) measure "$SIZE" filtered "/v1/runs?state=failed&pipeline=web-07" ;;
      cursor) measure "$SIZE" cursor "/v1/runs?cursor=$((SIZE / 2))" ;;
      get) measure "$SIZE" get "/v1/runs/%d" "$SIZE" ;;
      metrics) measure "$SIZE" metrics /metrics ;;
      queue) measure "$SIZE" queue /v1/queue ;;
      *) echo "unknown endpoint $e (list filtered cursor get metrics queue)" >&2; exit 1 ;;
    esac
  done
  stop_server
done

python3 - "$RESULTS" >"$W/results.md" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
print("| runs | endpoint | request | runs in page / bytes | req/s | p50 ms | p90 ms | p99 ms | max ms | non-2xx / socket errors | CPU ms/req: server | postgres |")
print("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for r in rows:
    n, us = int(r["requests"]), int(r["duration_us"])
    path = r["path"].replace("%d", "{random id}")
    page = f"{r['page_runs']} / {int(r['page_bytes']):,}" if r["page_runs"] else f"{int(r['page_bytes']):,} bytes"
    print(f"| {int(r['size']):,} | {r['endpoint']} | `GET {path}` | {page} | {n / (us / 1e6):,.0f} | {int(r['p50_us']) / 1000:.2f} | "
          f"{int(r['p90_us']) / 1000:.2f} | {int(r['p99_us']) / 1000:.2f} | {int(r['max_us']) / 1000:.2f} | {r['non2xx']} / {r['socket_errors']} | "
          f"{1000 * float(r['server_cpu_s']) / max(n, 1):.2f} | {1000 * float(r['postgres_cpu_s']) / max(n, 1):.2f} |")
PY
echo "== results ($W/results.md)"
cat "$W/results.md"
if awk -F'\t' 'NR > 1 && ($6 > 0 || $7 > 0) {bad = 1} END {exit !bad}' "$RESULTS"; then
  echo "some requests failed (non-2xx or socket errors): see the table" >&2
  exit 1
fi

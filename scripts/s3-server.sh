#!/usr/bin/env bash
# Installs (once, cached) and starts a real S3-protocol server on loopback for the S3 tests.
# Usage: scripts/s3-server.sh start|stop|env
set -euo pipefail
CACHE="${CURATE_TOOL_CACHE:-$HOME/.cache/curate-tools}"
BIN="$CACHE/bin/s3s-fs"
STATE="${CURATE_S3_STATE:-/tmp/curate-s3}"
PORT="${CURATE_S3_PORT:-9321}"
# 0.14.1 is the newest s3s-fs that builds with this machine's Rust (1.95).
VERSION=0.14.1

install() {
  if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q "$VERSION"; then return; fi
  echo "installing s3s-fs $VERSION into $CACHE (first time only)" >&2
  cargo install --locked --quiet s3s-fs --version "$VERSION" --features binary --root "$CACHE" >&2
}

case "${1:-start}" in
  start)
    install
    if curl -s -o /dev/null "http://127.0.0.1:$PORT/" 2>/dev/null; then exit 0; fi
    mkdir -p "$STATE/root/curate-test"
    nohup "$BIN" --host 127.0.0.1 --port "$PORT" --access-key curate --secret-key curate-secret \
      "$STATE/root" >"$STATE/server.log" 2>&1 &
    echo $! >"$STATE/pid"
    for _ in $(seq 1 100); do
      if curl -s -o /dev/null "http://127.0.0.1:$PORT/"; then exit 0; fi
      sleep 0.1
    done
    echo "s3s-fs did not start; see $STATE/server.log" >&2
    exit 1
    ;;
  stop)
    [ -f "$STATE/pid" ] && kill "$(cat "$STATE/pid")" 2>/dev/null || true
    ;;
  env)
    echo "export CURATE_TEST_S3_ENDPOINT=http://127.0.0.1:$PORT CURATE_TEST_S3_BUCKET=curate-test"
    ;;
esac

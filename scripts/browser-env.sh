#!/usr/bin/env bash
# Makes (once) what the web UI's browser test needs: Debian's chromium and playwright-core
# (pinned in tests/browser/package-lock.json). Idempotent; safe to run before every test.
#   node tests/browser/ui.mjs --url URL --token TOKEN --run ID --dataset NAME --record ID
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ]; then
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq chromium >/dev/null
fi
cd tests/browser
LOCK=package-lock.json
STAMP=node_modules/.curate-lock
if [ -f "$LOCK" ]; then
  if [ -f "$STAMP" ] && cmp -s "$LOCK" "$STAMP"; then exit 0; fi
  npm ci --no-audit --no-fund --loglevel=error
  cp "$LOCK" "$STAMP"
else
  npm install --no-audit --no-fund --loglevel=error
fi

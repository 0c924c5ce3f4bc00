#!/usr/bin/env bash
# Creates (once) the Python environment the cross-tool tests use: pyarrow and HF datasets
# read curate's outputs exactly as users' training code will.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-test
STAMP="$VENV/.curate-requirements"
REQ="pyarrow==22.* datasets==4.* pytest==8.*"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$REQ" ]; then exit 0; fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check $REQ
echo "$REQ" >"$STAMP"

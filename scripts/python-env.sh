#!/usr/bin/env bash
# Creates (once) the Python environment the Python tests use: pyarrow, pandas, polars and HF
# datasets read curate's outputs exactly as users' training code will; ray runs pipelines
# on a local Ray cluster started by the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-test
STAMP="$VENV/.curate-requirements"
REQ="pyarrow==22.* datasets==4.* pandas==2.* polars==1.* ray==2.* pytest==8.*"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$REQ" ]; then exit 0; fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check $REQ
echo "$REQ" >"$STAMP"

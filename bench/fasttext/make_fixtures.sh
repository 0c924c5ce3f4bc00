#!/usr/bin/env bash
# Regenerates crates/curate-fasttext/tests/data: small models trained by the official fastText
# Python package and its predictions (see reference.py). Needs the Debian documentation
# packages that bench/language_id uses (installed when missing) and .models/lid.176.ftz.
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=bench/.work/fasttext
mkdir -p "$WORK"
bash bench/fasttext/env.sh
bash scripts/models.sh
bash bench/fasttext/corpus.sh
MALLOC_MMAP_THRESHOLD_=4096 .venv-bench-fasttext/bin/python bench/fasttext/reference.py "$WORK/corpus-100.jsonl"

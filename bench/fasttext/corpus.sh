#!/usr/bin/env bash
# Real paragraphs for bench/fasttext: bench/language_id's corpus of Debian's translated
# documentation, in two cuts (installs the Debian packages when missing):
#   bench/.work/fasttext/corpus-100.jsonl  >= 100 characters, <= 300 per language and source
#   bench/.work/fasttext/corpus-bench.jsonl  >= 100 characters, <= 1000 per language and source
#                                            (18,553 paragraphs of 27 languages)
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=bench/.work/fasttext
mkdir -p "$WORK"
bash bench/language_id/install_docs.sh
[ -s "$WORK/corpus-100.jsonl" ] || python3 bench/language_id/build_corpus.py "$WORK/corpus-100.jsonl" --min-chars 100 --per-source 300
[ -s "$WORK/corpus-bench.jsonl" ] || python3 bench/language_id/build_corpus.py "$WORK/corpus-bench.jsonl" --min-chars 100 --per-source 1000

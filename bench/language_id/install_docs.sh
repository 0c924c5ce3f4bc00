#!/usr/bin/env bash
# Installs the Debian packages of translated documentation that bench/language_id/build_corpus.py
# reads (Debian Reference and manual pages in 27 languages), only those missing.
set -euo pipefail
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

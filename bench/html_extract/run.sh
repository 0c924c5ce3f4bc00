#!/usr/bin/env bash
# curate's html_extract vs trafilatura (default settings, txt output) on real HTML pages
# from Debian's Python and Rust documentation: word-level F1 and speed.
#
#   bench/html_extract/run.sh            # 150 pages per documentation set
#   PAGES=50 bench/html_extract/run.sh   # smaller sample
#
# Everything it writes goes under bench/.work/ (gitignored).
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=bench/html_extract
WORK=bench/.work/html_extract
PAGES=${PAGES:-150}
CORE=${CORE:-0}
mkdir -p "$WORK"

# 1. The pages: Debian's HTML documentation packages.
missing=()
[ -d /usr/share/doc/python3/html ] || [ -d /usr/share/doc/python3-doc/html ] || missing+=(python3-doc)
[ -d /usr/share/doc/rust-doc/html ] || missing+=(rust-doc)
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null; then
    apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null
  else
    echo "need Debian packages: ${missing[*]}" >&2
    exit 1
  fi
fi

# 2. The reference: trafilatura from PyPI in its own venv.
if [ ! -x "$WORK/venv/bin/python" ]; then
  python3 -m venv "$WORK/venv"
fi
"$WORK/venv/bin/pip" install -q "trafilatura==2.3.1" lxml_html_clean

# 3. curate's extractor, release build of the bench binary only.
cargo build --release -q -p curate-html --features bench-bin --bin curate-html-extract

python3 "$HERE/sample.py" "$WORK/pages.txt" "$PAGES"

PIN=()
if command -v taskset >/dev/null; then PIN=(taskset -c "$CORE"); fi
"${PIN[@]}" "$WORK/venv/bin/python" "$HERE/trafilatura_run.py" "$WORK/pages.txt" "$WORK/trafilatura.jsonl" > "$WORK/trafilatura_time.json"
"${PIN[@]}" "${CARGO_TARGET_DIR:-target}"/release/curate-html-extract "$WORK/pages.txt" "$WORK/curate.jsonl" > "$WORK/curate_time.json"
python3 "$HERE/compare.py" "$WORK/trafilatura.jsonl" "$WORK/curate.jsonl" "$WORK/trafilatura_time.json" "$WORK/curate_time.json"

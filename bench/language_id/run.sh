#!/usr/bin/env bash
# Accuracy of curate's language_id (curate-lang) on real multilingual text: paragraphs of
# Debian's translated Debian Reference and manual pages, labelled by package language; side
# by side with fastText's lid.176.ftz run by curate-fasttext (top label, "__label__xx" -> xx,
# lid.176's "no" counted as "nb"; .models/lid.176.ftz comes from scripts/models.sh).
#
#   bench/language_id/run.sh                  # paragraphs of >= 100 characters
#   MIN_CHARS=50 bench/language_id/run.sh     # shorter paragraphs too
#
# Everything it writes goes under bench/.work/ (gitignored).
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=bench/language_id
WORK=bench/.work/language_id
MIN_CHARS=${MIN_CHARS:-100}
PER_SOURCE=${PER_SOURCE:-300}
CORE=${CORE:-0}
mkdir -p "$WORK"

# 1. Translated documentation from Debian (installs only what is missing).
bash "$HERE/install_docs.sh"

# 2. The labelled paragraphs.
CORPUS="$WORK/corpus-$MIN_CHARS.jsonl"
[ -s "$CORPUS" ] || python3 "$HERE/build_corpus.py" "$CORPUS" --min-chars "$MIN_CHARS" --per-source "$PER_SOURCE"

# 3. curate's detector, release build of the bench binary only.
cargo build --release -q -p curate-lang --features bench-bin --bin curate-lang-eval
PIN=()
if command -v taskset >/dev/null; then PIN=(taskset -c "$CORE"); fi
"${PIN[@]}" "${CARGO_TARGET_DIR:-target}"/release/curate-lang-eval "$CORPUS" "$WORK/curate.jsonl" > "$WORK/curate_time.json"
python3 "$HERE/report.py" "$WORK/curate.jsonl" "$WORK/curate_time.json" "curate-lang (whatlang)" "$CORPUS"

# 4. fastText's lid.176.ftz through curate-fasttext (one pass, like the above).
scripts/models.sh
cargo build --release -q -p curate-fasttext --features bench-bin --bin curate-fasttext-bench
PASSES=1 "${PIN[@]}" "${CARGO_TARGET_DIR:-target}"/release/curate-fasttext-bench .models/lid.176.ftz "$CORPUS" \
  "$WORK/lid176-raw.jsonl" 1 > "$WORK/lid176_time.json"
python3 "$HERE/fasttext_preds.py" "$CORPUS" "$WORK/lid176-raw.jsonl" "$WORK/lid176.jsonl"
python3 "$HERE/report.py" "$WORK/lid176.jsonl" "$WORK/lid176_time.json" "lid.176.ftz (curate-fasttext)" "$CORPUS"
echo
python3 "$HERE/side_by_side.py" "$CORPUS" "whatlang=$WORK/curate.jsonl" "lid.176=$WORK/lid176.jsonl"

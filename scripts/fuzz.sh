#!/usr/bin/env bash
# Runs the fuzz targets of fuzz/ for a bounded number of inputs each (FUZZ_RUNS, default 4000,
# from FUZZ_SEED) and at most FUZZ_SECONDS (default 180) in all,
# installing cargo-fuzz if it is missing. Fails if a target finds an input that breaks an
# invariant; the input is left in fuzz/artifacts/ (reproduce: see the printed command).
#
# cargo fuzz needs nightly compiler flags (-Zsanitizer options, coverage instrumentation);
# RUSTC_BOOTSTRAP=1 enables them on a stable toolchain. The build instruments every crate
# with its own flags, so the first build compiles all dependencies again (about 13 CPU
# minutes on this project); later runs reuse fuzz/target.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
targets=$(cargo fuzz list)
total=${FUZZ_SECONDS:-180}
per=$(( total / $(echo "$targets" | wc -l) ))
# Sanitizer none: the readers are safe Rust; the invariants are asserted by the targets.
cargo fuzz build -O -s none
for t in $targets; do
  corpus=$(mktemp -d)
  log=$(mktemp)
  status=0
  # New inputs go to a scratch corpus; the committed seeds are only read.
  # A fixed seed and run count make the suite's run repeatable (FUZZ_SEED and FUZZ_RUNS vary
  # it for longer hunts); the time limit only caps a slow machine.
  cargo fuzz run -O -s none "$t" "$corpus" seeds -- -seed="${FUZZ_SEED:-1}" -runs="${FUZZ_RUNS:-4000}" \
    -max_total_time="$per" -max_len=4096 -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E '^(Done|stat::number_of_executed_units)' "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$log" >&2
  fi
  rm -rf "$corpus" "$log"
  if [ "$status" -ne 0 ]; then
    echo "fuzz target $t failed; the input is in fuzz/artifacts/$t" >&2
    exit 1
  fi
done

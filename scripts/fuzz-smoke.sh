#!/usr/bin/env bash
# scripts/fuzz-smoke.sh [SECONDS] — a short libFuzzer run of every target in fuzz/ on the
# stable toolchain (coverage instrumentation through rustc flags, as cargo-fuzz does).
# Exits non-zero on the first crash; the crashing input is left in fuzz/artifacts/.
# Longer runs: `scripts/fuzz-smoke.sh 600`, or `cargo +nightly fuzz run TARGET` with cargo-fuzz.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"
SECONDS_PER_TARGET="${1:-20}"
TARGETS=(sip_parse sdp_parse rtp_parse opus_packet srtp_unprotect webrtc_datagram)
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/target}"
cargo build --release --target x86_64-unknown-linux-gnu $(printf -- '--bin %s ' "${TARGETS[@]}")
for target in "${TARGETS[@]}"; do
  mkdir -p "corpus/$target" "artifacts/$target"
  echo "== fuzz $target for ${SECONDS_PER_TARGET}s"
  log="artifacts/$target/last-run.log"
  status=0
  "$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/$target" "corpus/$target" \
    -max_total_time="$SECONDS_PER_TARGET" -artifact_prefix="artifacts/$target/" \
    -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E "^(Done|stat::number_of_executed_units)" "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 30 "$log"
    echo "fuzz $target: crash (exit $status), input in fuzz/artifacts/$target/"
    exit 1
  fi
done
echo "fuzz smoke: no crash"

#!/usr/bin/env bash
# scripts/test-all.sh — build everything once, then run every test. Exits non-zero if
# anything fails. Developers run this; CI runs it through .ci/run (which also installs
# the peers: kamailio, baresip, linphonec, sipp, PESQ).
#
# Env: CARGO_TARGET_DIR as usual; HOMEAGENT_KEEP_LOGS=1 keeps peers' temp dirs and logs;
#      HOMEAGENT_REQUIRE_PEERS=1 makes tests fail (not skip) when a peer is not installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n== %s (%ss)\n' "$*" "$SECONDS"; }

step "UI: install, unit tests, build (ui/dist is embedded in the desktop app)"
(cd ui && npm ci --no-audit --no-fund && npm test && npm run build)

step "build (workspace, all targets)"
cargo build --workspace --all-targets

step "TypeScript bindings generated from Rust are up to date"
target_dir="${CARGO_TARGET_DIR:-target}"
"$target_dir/debug/homeagent-desktop" --export-bindings "$target_dir/bindings.ts"
diff -u ui/src/generated/bindings.ts "$target_dir/bindings.ts" \
  || { echo "ui/src/generated/bindings.ts is stale: run scripts/export-bindings.sh"; exit 1; }

step "lints (clippy, warnings are errors)"
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo fmt --all --check

step "tests (workspace)"
# --no-fail-fast: report every failing test binary, still exit non-zero.
cargo test --workspace --no-fail-fast

step "real-time audio tests, alone (devices: PESQ through the virtual mic/speaker, echo; the browser WebRTC peer)"
cargo test -p homeagent-e2e -- --ignored --test-threads=1

step "desktop package (.deb)"
bash scripts/build-deb.sh

step "fuzz smoke (every parser, ${FUZZ_SECONDS:-20} s each)"
bash scripts/fuzz-smoke.sh "${FUZZ_SECONDS:-20}"

step "all tests passed"

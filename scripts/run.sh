#!/usr/bin/env bash
# scripts/run.sh [homeagent ARGS...] — sets up the build dependencies (Debian/Ubuntu, asks
# for sudo when not root), builds Homeagent and runs it. With no arguments it opens the
# demo / training line: a simulated customer calls you over loopback, nothing leaves the
# computer. Any arguments are passed to `homeagent` (e.g. `scripts/run.sh listen --help`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

NEEDED=(build-essential cmake pkg-config libasound2-dev)
missing=()
for p in "${NEEDED[@]}"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing build dependencies: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if ! command -v cargo >/dev/null; then
  echo "Rust is needed: install it from your distribution or rustup, then run this again." >&2
  exit 1
fi
cargo build --release -p homeagent-cli
BIN="${CARGO_TARGET_DIR:-target}/release/homeagent"
if [ "$#" -eq 0 ]; then
  exec "$BIN" demo
fi
exec "$BIN" "$@"

#!/usr/bin/env bash
# scripts/run.sh [homeagent ARGS...] — sets up the build dependencies (Debian/Ubuntu, asks
# for sudo when not root), builds Homeagent and opens the desktop app. With no configuration
# (/etc/homeagent/homeagent.toml, ~/.config/homeagent/homeagent.toml) the app runs its
# training line: a simulated customer calls you over loopback, nothing leaves the computer.
# Without a display it runs the same training line in the terminal (`homeagent demo`).
# With arguments it runs the `homeagent` CLI instead (e.g. `scripts/run.sh listen --help`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

NEEDED=(build-essential cmake pkg-config libasound2-dev)
DESKTOP=(libwebkit2gtk-4.1-dev libgtk-3-dev librsvg2-dev libayatana-appindicator3-dev
  libssl-dev libxdo-dev nodejs npm)
gui=0
if [ "$#" -eq 0 ] && [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  gui=1
  NEEDED+=("${DESKTOP[@]}")
fi
missing=()
for p in "${NEEDED[@]}"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
# A Node.js from elsewhere (nvm, NodeSource) is fine too.
if command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
  read -r -a missing <<<"${missing[*]}"
fi
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
TARGET="${CARGO_TARGET_DIR:-target}"
if [ "$gui" = 1 ] && [ "$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)" -lt 20 ]; then
  echo "The UI build needs Node.js 20 or later (Debian 12's own nodejs is 18): install it" >&2
  echo "(e.g. from NodeSource or nvm), then run this again." >&2
  exit 1
fi
if [ "$gui" = 1 ]; then
  (cd ui && npm ci --no-audit --no-fund && npm run build)
  cargo build --release -p homeagent-desktop
  exec "$TARGET/release/homeagent-desktop"
fi
cargo build --release -p homeagent-cli
if [ "$#" -eq 0 ]; then
  echo "no display: running the training line in the terminal (homeagent demo)"
  exec "$TARGET/release/homeagent" demo
fi
exec "$TARGET/release/homeagent" "$@"

#!/usr/bin/env bash
# scripts/build-deb.sh — builds the desktop app's Debian package (release) with the Tauri CLI
# from npm (@tauri-apps/cli ^2, a prebuilt binary). Prints the .deb's path and size.
# AppImage is not built: its bundler downloads tools, which fails offline.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -d ui/node_modules ] || (cd ui && npm ci --no-audit --no-fund)
(cd ui && npm run build)
# The package ships a stripped binary without debug info (the release profile keeps line
# tables for benches and profiling).
CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=true \
  ui/node_modules/.bin/tauri build --bundles deb --ci
deb="$(ls -t "${CARGO_TARGET_DIR:-target}"/release/bundle/deb/*.deb | head -1)"
dpkg-deb --info "$deb" | sed -n '1,20p'
echo "deb: $deb ($(du -h "$deb" | cut -f1))"

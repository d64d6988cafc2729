#!/usr/bin/env bash
# scripts/export-bindings.sh — regenerates ui/src/generated/bindings.ts (the TypeScript types
# of the desktop shell's commands and events) from the Rust types, with tauri-specta.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -d ui/dist ] || (cd ui && npm ci --no-audit --no-fund && npm run build)
cargo build -p homeagent-desktop
"${CARGO_TARGET_DIR:-target}/debug/homeagent-desktop" --export-bindings ui/src/generated/bindings.ts
echo "wrote ui/src/generated/bindings.ts"

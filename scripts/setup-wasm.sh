#!/usr/bin/env bash
# Installs what the browser client's build needs, skipping what is already there:
# the wasm32 target and the wasm-bindgen CLI at exactly the version Cargo.lock pins.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$cargo_bin:$PATH"

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi

want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ -z "$want" ]; then
  echo "setup-wasm: no wasm-bindgen in Cargo.lock" >&2
  exit 1
fi
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
  echo "setup-wasm: installing wasm-bindgen-cli $want (have: ${have:-none})..." >&2
  # Not --locked: the CLI's own lock file names a crate release the registry mirror lacks.
  cargo install wasm-bindgen-cli --version "$want"
fi

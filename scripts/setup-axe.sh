#!/usr/bin/env bash
# Installs axe-core (pinned in tests/axe/package-lock.json) for the accessibility tests, unless
# it is there already. Needs Node.js and npm; installs Debian's when they are missing.
set -euo pipefail
cd "$(dirname "$0")/../tests/axe"
if [ -f node_modules/axe-core/axe.min.js ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "setup-axe: installing nodejs and npm..." >&2
  ../../scripts/apt-install.sh nodejs npm
fi
echo "setup-axe: installing axe-core..." >&2
npm ci --no-audit --no-fund --silent

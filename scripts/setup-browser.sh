#!/usr/bin/env bash
# Installs Debian's Chromium and ChromeDriver for the browser tests, unless both are present.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
echo "setup-browser: installing chromium and chromium-driver..." >&2
"$(dirname "$0")/apt-install.sh" chromium chromium-driver

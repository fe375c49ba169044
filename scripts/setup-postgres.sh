#!/usr/bin/env bash
# Installs Debian's PostgreSQL server for the storage tests (they start their own servers on free
# loopback ports in temporary directories), unless a server is present.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then
  exit 0
fi
echo "setup-postgres: installing postgresql..." >&2
"$(dirname "$0")/apt-install.sh" postgresql

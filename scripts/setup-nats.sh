#!/usr/bin/env bash
# Installs Debian's NATS server for the cluster tests (they start their own servers on loopback
# ports in temporary directories), unless one is present.
set -euo pipefail
if command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ]; then
  exit 0
fi
echo "setup-nats: installing nats-server..." >&2
"$(dirname "$0")/apt-install.sh" nats-server

#!/usr/bin/env bash
# Installs Debian's HAProxy for the cluster test that puts the example load balancer
# (deploy/haproxy.cfg) in front of three nodes, unless it is present.
set -euo pipefail
if command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]; then
  exit 0
fi
echo "setup-haproxy: installing haproxy..." >&2
"$(dirname "$0")/apt-install.sh" haproxy

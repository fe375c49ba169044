#!/usr/bin/env bash
# Installs Debian packages quietly, through sudo unless already root: `scripts/apt-install.sh PKG...`.
set -euo pipefail
sudo=""
if [ "$(id -u)" != 0 ]; then
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "$@" >/dev/null

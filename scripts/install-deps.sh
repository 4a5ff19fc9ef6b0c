#!/usr/bin/env bash
# Installs what Nubo needs on a fresh Debian machine and is missing: Debian packages (as root,
# with apt-get, only when absent) and the pinned OpenStack clients in venvs.
#   scripts/install-deps.sh [--no-clients]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
packages=(qemu-utils qemu-system-x86 python3-venv sqlite3 curl ca-certificates openssh-client iproute2 nftables
          dnsmasq-base dnsmasq-utils radvd busybox iputils-ping)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "[install-deps] missing Debian packages: ${missing[*]}" >&2
    echo "[install-deps] run as root, or: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "[install-deps] apt-get install ${missing[*]}"
  apt-get update -qq
  # Keep packaged services from starting, and never ask questions.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/nubo-apt.log 2>&1 \
    || { tail -30 /tmp/nubo-apt.log; exit 1; }
fi
command -v cargo >/dev/null || { echo "[install-deps] cargo is missing: install Rust (https://rustup.rs)" >&2; exit 1; }
if [ "${1:-}" != "--no-clients" ]; then
  "$repo/scripts/conformance/setup-venvs.sh"
fi

#!/usr/bin/env bash
# Creates the virtualenvs holding the pinned real OpenStack clients Nubo is judged by:
#   $NUBO_VENV_DIR/osc      python-openstackclient 10.5.0 (the `openstack` CLI)
#   $NUBO_VENV_DIR/tempest  tempest 47.0.0
# Idempotent: a venv that already has the pinned version is left alone.
# Default NUBO_VENV_DIR is <repo>/.venvs (git-ignored).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
venvs=${NUBO_VENV_DIR:-$repo/.venvs}
OSC_VERSION=10.5.0
TEMPEST_VERSION=47.0.0

ensure_python_venv() {
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "[setup-venvs] installing python3-venv"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null
  fi
}

make_venv() { # name package version probe-module
  local name=$1 pkg=$2 version=$3
  local dir=$venvs/$name
  if [ -x "$dir/bin/pip" ] && "$dir/bin/pip" show "$pkg" 2>/dev/null | grep -qx "Version: $version"; then
    echo "[setup-venvs] $name: $pkg $version already installed in $dir"
    return
  fi
  echo "[setup-venvs] $name: installing $pkg==$version into $dir"
  rm -rf "$dir"
  python3 -m venv "$dir"
  "$dir/bin/pip" install -q --disable-pip-version-check "$pkg==$version"
}

mkdir -p "$venvs"
ensure_python_venv
make_venv osc python-openstackclient "$OSC_VERSION"
make_venv tempest tempest "$TEMPEST_VERSION"
echo "[setup-venvs] done: $venvs/osc/bin/openstack, $venvs/tempest/bin/tempest"

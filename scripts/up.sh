#!/usr/bin/env bash
# Starts the whole Nubo cloud on this machine: installs what is missing, builds the `nubo`
# binary and the tiny guest image (first time only), then runs `nubo up` in the foreground.
#   scripts/up.sh [nubo up options: --data-dir DIR --listen ADDR --config FILE]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
scripts/install-deps.sh
cargo build --release -p nubo
[ -f tools/guest-image/out/tiny.raw ] || tools/guest-image/build.sh
exec target/release/nubo up "$@"

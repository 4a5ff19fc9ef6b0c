#!/usr/bin/env bash
# Runs Nubo's tests, fast ones first:
#   1. fast     cargo test --workspace (unit, router and in-process integration tests)
#   2. identity a real `nubo up` on loopback: the identity CLI acceptance script, then Tempest
#               ^tempest.api.identity.
# Installs what is missing first (scripts/install-deps.sh). NUBO_TEST_STAGES selects stages
# (default "fast identity"). Ends with one line: "total: N passed, N failed, N skipped".
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
stages=${NUBO_TEST_STAGES:-fast identity}
passed=0 failed=0 skipped=0
log_dir=${NUBO_TEST_LOGS:-$(mktemp -d /tmp/nubo-test.XXXXXX)}
mkdir -p "$log_dir"
echo "[test] logs in $log_dir"

add_counts() { passed=$((passed + $1)); failed=$((failed + $2)); skipped=$((skipped + $3)); }

scripts/install-deps.sh || { echo "total: 0 passed, 1 failed, 0 skipped"; exit 1; }

# Stage 1: cargo test. Its counts come from the "test result:" lines.
if [[ " $stages " == *" fast "* ]]; then
  echo "[test] stage fast: cargo test --workspace"
  cargo test --workspace 2>&1 | tee "$log_dir/cargo-test.txt" | grep -E "^test result:|FAILED|panicked" || true
  status=${PIPESTATUS[0]}
  read -r p f i < <(awk '/^test result:/ {for (n = 1; n <= NF; n++) {if ($n ~ /^passed;?/) p += $(n-1); if ($n ~ /^failed;?/) f += $(n-1); if ($n ~ /^ignored;?/) i += $(n-1)}} END {print p+0, f+0, i+0}' "$log_dir/cargo-test.txt")
  p=${p:-0} f=${f:-0} i=${i:-0}
  [ "$status" -ne 0 ] && [ "$f" -eq 0 ] && f=1   # a build failure counts as a failure
  add_counts "$p" "$f" "$i"
fi

# Stages against a running cloud.
cloud_pid=""
stop_cloud() {
  if [ -n "$cloud_pid" ]; then kill "$cloud_pid" 2>/dev/null; wait "$cloud_pid" 2>/dev/null; cloud_pid=""; fi
}
trap stop_cloud EXIT
start_cloud() {
  cargo build -p nubo 2>&1 | tail -1
  data=$log_dir/cloud
  rm -rf "$data"
  port=${NUBO_TEST_PORT:-18080}
  # Security compliance on, as Tempest's defaults expect it (tempest-conf.sh reads these too).
  export NUBO_LOCKOUT_FAILURE_ATTEMPTS=2 NUBO_LOCKOUT_DURATION=5 NUBO_UNIQUE_LAST_PASSWORD_COUNT=2
  NUBO_IDENTITY__LOCKOUT_FAILURE_ATTEMPTS=$NUBO_LOCKOUT_FAILURE_ATTEMPTS \
  NUBO_IDENTITY__LOCKOUT_DURATION=$NUBO_LOCKOUT_DURATION \
  NUBO_IDENTITY__UNIQUE_LAST_PASSWORD_COUNT=$NUBO_UNIQUE_LAST_PASSWORD_COUNT \
  target/debug/nubo up --data-dir "$data" --listen "127.0.0.1:$port" > "$log_dir/nubo-up.log" 2>&1 &
  cloud_pid=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.2
  done
  export OS_CLIENT_CONFIG_FILE=$data/clouds.yaml OS_CLOUD=nubo
}

if [[ " $stages " == *" identity "* ]]; then
  echo "[test] stage identity: nubo up + identity CLI acceptance + Tempest identity"
  start_cloud
  scripts/acceptance/identity-cli.sh 2>&1 | tee "$log_dir/identity-cli.txt"
  read -r p f < <(sed -n 's/^identity-cli: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$log_dir/identity-cli.txt" | tail -1)
  add_counts "${p:-0}" "${f:-1}" 0
  scripts/conformance/tempest-conf.sh "$log_dir/tempest" > "$log_dir/tempest-conf.txt" 2>&1 \
    || { tail -20 "$log_dir/tempest-conf.txt"; add_counts 0 1 0; }
  scripts/conformance/run-tempest.sh "$log_dir/tempest" '^tempest\.api\.identity\.' | tee "$log_dir/tempest-identity.txt"
  tp=$(sed -n 's/^ - Passed: //p' "$log_dir/tempest-identity.txt"); tf=$(sed -n 's/^ - Failed: //p' "$log_dir/tempest-identity.txt")
  ts=$(sed -n 's/^ - Skipped: //p' "$log_dir/tempest-identity.txt")
  add_counts "${tp:-0}" "${tf:-1}" "${ts:-0}"
  stop_cloud
fi

echo "total: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# Runs Nubo's tests, fast ones first. Stages (NUBO_TEST_STAGES selects, default all):
#   fast      cargo test --workspace (unit, router and in-process integration tests)
#   identity  on a real `nubo up` on loopback: the identity CLI journey, Tempest ^tempest.api.identity.
#   image     the image CLI journey (incl. a 2 GiB round trip), Tempest ^tempest.api.image.
#   network   the networking CLI journey, Tempest ^tempest.api.network.
#   dataplane (root) a VM you can SSH into: scripts/acceptance/dataplane.sh on real QEMU (TCG)
#             with the tiny image (DHCP, SLAAC, metadata, floating IP, security groups, SNAT,
#             tenant isolation, healing, two hosts over VXLAN)
#   scenario  (root) Tempest's scenarios with run_validation = true on the same cloud (real QEMU,
#             the tiny image, SSH through floating IPs): test_server_basic_ops,
#             test_network_basic_ops, test_security_groups_basic_ops, test_network_v6,
#             test_minimum_basic; concurrency 1 (TCG boots); ~16 min
#   compute   Tempest ^tempest.api.compute. on a cloud with the fake hypervisor, then the compute
#             CLI journey on real QEMU (TCG): create, console, power actions, snapshot, delete
#   volume    Tempest ^tempest.api.volume. on a cloud with the fake hypervisor, then (root) the
#             volume CLI journey on real QEMU (attach to a running VM, a filesystem written in one
#             guest and read in another, snapshots, boot from volume, extend, upload to an image)
#             and Tempest's volume-backed rebuild with SSH validation
#   qemu      the guest image built and booted under QEMU (TCG) from a copy-on-write overlay, and
#             the hypervisor crate's real-QEMU tier
# Installs what is missing first (scripts/install-deps.sh). Ends with one line:
# "total: N passed, N failed, N skipped".
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
stages=${NUBO_TEST_STAGES:-fast identity image network dataplane scenario compute volume qemu}
passed=0 failed=0 skipped=0
log_dir=${NUBO_TEST_LOGS:-$(mktemp -d /tmp/nubo-test.XXXXXX)}
mkdir -p "$log_dir"
echo "[test] logs in $log_dir"

want() { [[ " $stages " == *" $1 "* ]]; }
add_counts() { passed=$((passed + ${1:-0})); failed=$((failed + ${2:-0})); skipped=$((skipped + ${3:-0})); }

scripts/install-deps.sh || { echo "total: 0 passed, 1 failed, 0 skipped"; exit 1; }

# cargo test output -> counts, from its "test result:" lines.
cargo_counts() { # log file, exit status
  local p f i
  read -r p f i < <(awk '/^test result:/ {for (n = 1; n <= NF; n++) {if ($n ~ /^passed;?/) p += $(n-1); if ($n ~ /^failed;?/) f += $(n-1); if ($n ~ /^ignored;?/) i += $(n-1)}} END {print p+0, f+0, i+0}' "$1")
  [ "$2" -ne 0 ] && [ "${f:-0}" -eq 0 ] && f=1   # a build failure counts as a failure
  add_counts "$p" "$f" "$i"
}

if want fast; then
  echo "[test] stage fast: cargo test --workspace"
  cargo test --workspace 2>&1 | tee "$log_dir/cargo-test.txt" | grep -E "^test result:|FAILED|panicked|SKIP" || true
  cargo_counts "$log_dir/cargo-test.txt" "${PIPESTATUS[0]}"
fi

# ---------------------------------------------------------------- a real cloud on loopback
cloud_pid=""
stop_cloud() {
  if [ -n "$cloud_pid" ]; then kill "$cloud_pid" 2>/dev/null; wait "$cloud_pid" 2>/dev/null; cloud_pid=""
    # What the cloud's data plane made on this host (namespaces, bridges, dnsmasq, radvd).
    [ "$(id -u)" -eq 0 ] && "${CARGO_TARGET_DIR:-target}/debug/nubo" admin netplane-teardown --data-dir "$data" >/dev/null 2>&1
  fi
}
trap stop_cloud EXIT
start_cloud() {
  [ -n "$cloud_pid" ] && return
  cargo build -p nubo 2>&1 | tail -1
  data=$log_dir/cloud
  rm -rf "$data"
  port=${NUBO_TEST_PORT:-18080}
  # Security compliance on, as Tempest's defaults expect it (tempest-conf.sh reads these too).
  export NUBO_LOCKOUT_FAILURE_ATTEMPTS=2 NUBO_LOCKOUT_DURATION=5 NUBO_UNIQUE_LAST_PASSWORD_COUNT=2
  NUBO_IDENTITY__LOCKOUT_FAILURE_ATTEMPTS=$NUBO_LOCKOUT_FAILURE_ATTEMPTS \
  NUBO_IDENTITY__LOCKOUT_DURATION=$NUBO_LOCKOUT_DURATION \
  NUBO_IDENTITY__UNIQUE_LAST_PASSWORD_COUNT=$NUBO_UNIQUE_LAST_PASSWORD_COUNT \
  "${CARGO_TARGET_DIR:-target}/debug/nubo" up --data-dir "$data" --listen "127.0.0.1:$port" > "$log_dir/nubo-up.log" 2>&1 &
  cloud_pid=$!
  for _ in $(seq 1 150); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.2
  done
  export OS_CLIENT_CONFIG_FILE=$data/clouds.yaml OS_CLOUD=nubo
  scripts/conformance/tempest-conf.sh "$log_dir/tempest" > "$log_dir/tempest-conf.txt" 2>&1 \
    || { tail -20 "$log_dir/tempest-conf.txt"; add_counts 0 1 0; }
}

# A cloud for the real-QEMU stages: the guest image built when missing, and the public image
# `tiny` uploaded (a cloud started before the image existed has none).
start_cloud_with_tiny() {
  [ -f tools/guest-image/out/tiny.raw ] || tools/guest-image/build.sh > "$log_dir/guest-image-build.txt" 2>&1 \
    || { tail -20 "$log_dir/guest-image-build.txt"; add_counts 0 1 0; }
  start_cloud
  local osc=${NUBO_VENV_DIR:-$repo/.venvs}/osc/bin/openstack
  "$osc" image show tiny >/dev/null 2>&1 || "$osc" image create --file tools/guest-image/out/tiny.raw \
    --disk-format raw --container-format bare --public tiny >/dev/null
}

acceptance() { # name of scripts/acceptance/<name>.sh, extra env assignments...
  local name=$1; shift
  env "$@" "scripts/acceptance/$name.sh" 2>&1 | tee "$log_dir/$name.txt"
  local p f
  read -r p f < <(sed -n "s/^$name: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p" "$log_dir/$name.txt" | tail -1)
  add_counts "${p:-0}" "${f:-1}" 0
}

tempest() { # label, regex
  scripts/conformance/run-tempest.sh "$log_dir/tempest" "$2" | tee "$log_dir/tempest-$1.txt"
  local tp tf ts
  tp=$(sed -n 's/^ - Passed: //p' "$log_dir/tempest-$1.txt"); tf=$(sed -n 's/^ - Failed: //p' "$log_dir/tempest-$1.txt")
  ts=$(sed -n 's/^ - Skipped: //p' "$log_dir/tempest-$1.txt")
  add_counts "${tp:-0}" "${tf:-1}" "${ts:-0}"
}

if want identity; then
  echo "[test] stage identity: identity CLI journey + Tempest identity"
  start_cloud
  acceptance identity-cli
  tempest identity '^tempest\.api\.identity\.'
fi

if want image; then
  echo "[test] stage image: image CLI journey (2 GiB round trip) + Tempest image"
  start_cloud
  acceptance image-cli NUBO_BIG_IMAGE_GIB=2 "NUBO_API_PID=$cloud_pid"
  tempest image '^tempest\.api\.image\.'
fi

if want network; then
  echo "[test] stage network: networking CLI journey + Tempest network"
  start_cloud
  acceptance network-cli
  tempest network '^tempest\.api\.network\.'
fi

if want dataplane; then
  echo "[test] stage dataplane: a VM you can SSH into (real QEMU, TCG, tiny image)"
  if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: the dataplane stage needs root"; add_counts 0 0 1
  else
    start_cloud_with_tiny
    acceptance dataplane
  fi
fi

if want scenario; then
  echo "[test] stage scenario: Tempest scenarios with SSH into guests (real QEMU, TCG, tiny image)"
  scenario_started=$SECONDS
  if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: the scenario stage needs root (the data plane)"; add_counts 0 0 1
  else
    start_cloud_with_tiny
    # Its own Tempest config: validation on (SSH into every guest through its floating IP).
    NUBO_TEMPEST_VALIDATION=true scripts/conformance/tempest-conf.sh "$log_dir/tempest-scenario" \
      > "$log_dir/tempest-conf-scenario.txt" 2>&1 || { tail -20 "$log_dir/tempest-conf-scenario.txt"; add_counts 0 1 0; }
    TEMPEST_CONCURRENCY=1 scripts/conformance/run-tempest.sh "$log_dir/tempest-scenario" \
      '^tempest\.scenario\.(test_server_basic_ops|test_network_basic_ops|test_security_groups_basic_ops|test_network_v6|test_minimum_basic)\.' \
      | tee "$log_dir/tempest-scenario.txt"
    tp=$(sed -n 's/^ - Passed: //p' "$log_dir/tempest-scenario.txt"); tf=$(sed -n 's/^ - Failed: //p' "$log_dir/tempest-scenario.txt")
    ts=$(sed -n 's/^ - Skipped: //p' "$log_dir/tempest-scenario.txt")
    add_counts "${tp:-0}" "${tf:-1}" "${ts:-0}"
  fi
  echo "[test] stage scenario: $((SECONDS - scenario_started)) s"
fi
stop_cloud

if want compute; then
  echo "[test] stage compute: Tempest compute (fake hypervisor) + compute CLI journey (QEMU)"
  compute_started=$SECONDS
  # Tempest's compute API tests boot several hundred servers: under QEMU TCG on 2 cores that would
  # take hours, so they run on a cloud whose agent drives the fake hypervisor (the same API,
  # scheduler, agent and reconcile loop; only the VMs are simulated). Concurrency 2 (run-tempest.sh).
  NUBO_AGENT__DRIVER=fake start_cloud
  # Less the one test that logs into its guest with no run_validation guard (rebuilding a
  # volume-backed server, 2.93): the volume stage runs it on QEMU with validation on.
  tempest compute '^tempest\.api\.compute\.(?!servers\.test_server_actions\.ServerActionsV293TestJSON\.test_rebuild_volume_backed_server)'
  stop_cloud
  # The CLI journey on real QEMU: tap devices need root.
  if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: the compute CLI journey needs root (tap devices)"; add_counts 0 0 1
  else
    start_cloud_with_tiny
    acceptance compute-cli "NUBO_DATA_DIR=$data"
    stop_cloud
  fi
  echo "[test] stage compute: $((SECONDS - compute_started)) s"
fi

if want volume; then
  echo "[test] stage volume: Tempest volume (fake hypervisor) + volume CLI journey (QEMU)"
  volume_started=$SECONDS
  # Tempest's compute.volumes tests already ran in the compute stage (^tempest.api.compute.).
  NUBO_AGENT__DRIVER=fake start_cloud
  tempest volume '^tempest\.api\.volume\.'
  stop_cloud
  if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: the volume CLI journey needs root (QEMU taps, SSH into guests from the DHCP namespace)"
    add_counts 0 0 1
  else
    start_cloud_with_tiny
    acceptance volume-cli
    # The volume test that must log into its guest (no run_validation guard in Tempest), on QEMU
    # with validation on: rebuild of a volume-backed server (2.93).
    NUBO_TEMPEST_VALIDATION=true scripts/conformance/tempest-conf.sh "$log_dir/tempest" > "$log_dir/tempest-conf.txt" 2>&1 \
      || { tail -20 "$log_dir/tempest-conf.txt"; add_counts 0 1 0; }
    tempest volume-ssh 'ServerActionsV293TestJSON\.test_rebuild_volume_backed_server'
    stop_cloud
  fi
  echo "[test] stage volume: $((SECONDS - volume_started)) s"
fi

if want qemu; then
  echo "[test] stage qemu: the guest image under QEMU (TCG)"
  tools/guest-image/build.sh > "$log_dir/guest-image-build.txt" 2>&1 || { tail -20 "$log_dir/guest-image-build.txt"; add_counts 0 1 0; }
  tools/guest-image/boot-test.sh 2>&1 | tee "$log_dir/guest-boot.txt"
  status=${PIPESTATUS[0]}
  read -r p f < <(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed.*$/\1 \2/p' "$log_dir/guest-boot.txt" | tail -1)
  if grep -q "^SKIP" "$log_dir/guest-boot.txt"; then add_counts 0 0 1
  elif [ "$status" -ne 0 ]; then add_counts "${p:-0}" "${f:-1}" 0
  else add_counts "${p:-0}" "${f:-0}" 0; fi
  cargo test -p nubo-hypervisor --test qemu 2>&1 | tee "$log_dir/hypervisor-qemu.txt" | grep -E "^test result:|FAILED|panicked|SKIP" || true
  cargo_counts "$log_dir/hypervisor-qemu.txt" "${PIPESTATUS[0]}"
fi

echo "total: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# Compute acceptance through the real `openstack` CLI on a `nubo up` with the QEMU driver
# (issue 5): a keypair, `server create --wait` to ACTIVE, the guest's ready marker in
# `console log show`, stop/start/reboot/pause/unpause, `server image create`, and
# `server delete --wait` leaving no QEMU process, tap device, disk clone or database row.
# DHCP and the metadata service come from the data plane and are not relied on: the guest
# prints its ready marker with or without an address.
#
# Needs OS_CLIENT_CONFIG_FILE/OS_CLOUD for the cloud's admin, the `tiny` image and the
# `private` network `nubo up` makes, and NUBO_DATA_DIR (the cloud's data directory) for the
# leftover checks. Prints one line per check and ends with "compute-cli: N passed, N failed".
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
osc=${NUBO_VENV_DIR:-$repo/.venvs}/osc/bin/openstack
py=${NUBO_VENV_DIR:-$repo/.venvs}/osc/bin/python
: "${OS_CLIENT_CONFIG_FILE:?}" "${OS_CLOUD:=nubo}" "${NUBO_DATA_DIR:?set NUBO_DATA_DIR to the data dir of the cloud}"
export OS_CLOUD
passed=0 failed=0
suffix=$$
# Under TCG on a busy 2-core machine a boot can take a while.
boot_timeout=${NUBO_BOOT_TIMEOUT:-300}

check() {
  local name=$1; shift
  if out=$("$@" 2>&1); then
    passed=$((passed + 1)); echo "ok     $name"
  else
    failed=$((failed + 1)); echo "FAILED $name"; echo "$out" | tail -5 | sed 's/^/       /'
  fi
}
contains() {
  local needle=$1 out; shift
  out=$("$@" 2>&1) || { echo "$out"; return 1; }
  grep -q -- "$needle" <<<"$out" || { echo "no '$needle' in: $out"; return 1; }
}
# status SERVER WANTED: polls `server show` until the status is WANTED (up to boot_timeout).
status() {
  local s=""
  for _ in $(seq 1 "$boot_timeout"); do
    s=$("$osc" server show -f value -c status "$1" 2>/dev/null)
    [ "$s" = "$2" ] && return 0
    [ "$s" = ERROR ] && break
    sleep 1
  done
  echo "status $s, wanted $2"; "$osc" server show -f value -c fault "$1" 2>/dev/null; return 1
}
# console SERVER TEXT: polls the console log until it holds TEXT (boot_timeout).
console() {
  for _ in $(seq 1 "$boot_timeout"); do
    "$osc" console log show "$1" 2>/dev/null | grep -q -- "$2" && return 0
    sleep 1
  done
  echo "no '$2' on the console:"; "$osc" console log show "$1" 2>&1 | tail -5; return 1
}
# gone COMMAND...: the command fails (what it looks for is not there).
gone() { if "$@" >/dev/null 2>&1; then echo "still there: $*"; return 1; fi; }
# boots SERVER: the console shows one more ready marker than before (a new boot).
ready_count() { "$osc" console log show "$1" 2>/dev/null | grep -c "nubo-guest: ready"; }
boots() {
  local before=$2
  for _ in $(seq 1 "$boot_timeout"); do
    [ "$(ready_count "$1")" -gt "$before" ] && return 0
    sleep 1
  done
  echo "no new ready marker after $before"; return 1
}

key=accept-key-$suffix vm=accept-vm-$suffix snap=accept-snap-$suffix
check "keypair create" "$osc" keypair create --private-key "/tmp/$key.pem" "$key"
check "server create --wait (ACTIVE)" "$osc" server create --image tiny --flavor m1.tiny \
  --network private --key-name "$key" --wait "$vm"
id=$("$osc" server show -f value -c id "$vm" 2>/dev/null)
port=$("$osc" port list --server "$vm" -f value -c ID 2>/dev/null | head -1)
check "console log show: the guest's ready marker" console "$vm" "nubo-guest: ready"
check "the console names the server" contains "hostname=$vm" "$osc" console log show "$vm"

check "server stop" "$osc" server stop "$vm"
check "... SHUTOFF" status "$vm" SHUTOFF
before=$(ready_count "$vm")
check "server start" "$osc" server start "$vm"
check "... ACTIVE" status "$vm" ACTIVE
check "... and the guest boots again" boots "$vm" "$before"
check "server reboot --wait (soft)" "$osc" server reboot --wait "$vm"
check "server reboot --hard --wait" "$osc" server reboot --hard --wait "$vm"
check "server pause" "$osc" server pause "$vm"
check "... PAUSED" status "$vm" PAUSED
check "server unpause" "$osc" server unpause "$vm"
check "... ACTIVE" status "$vm" ACTIVE

check "server image create --wait" "$osc" server image create --name "$snap" --wait "$vm"
check "the snapshot is active" contains active "$osc" image show -f value -c status "$snap"
check "the snapshot is active and says whose it is" contains "$id" "$osc" image show -f value -c properties "$snap"
check "the server is ACTIVE again after the snapshot" status "$vm" ACTIVE

check "server delete --wait" "$osc" server delete --wait "$vm"
check "server show is a 404" gone "$osc" server show "$vm"
check "no QEMU process for the server" gone pgrep -f "qemu-system.*$id"
if [ -n "$port" ]; then
  tap=tap${port:0:11}
  check "no tap device ($tap)" gone ip link show "$tap"
  check "no port" gone "$osc" port show "$port"
else
  failed=$((failed + 1)); echo "FAILED the server had a port"
fi
check "no disk clone in the block store" gone grep -rl -- "$id" --include="*$id*" "$NUBO_DATA_DIR/blockstore"
check "no row in compute_servers" "$py" - "$NUBO_DATA_DIR/nubo.db" "$id" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
n = db.execute("SELECT count(*) FROM compute_servers WHERE id = ?", (sys.argv[2],)).fetchone()[0]
sys.exit(f"{n} rows left" if n else 0)
EOF

"$osc" image delete "$snap" >/dev/null 2>&1
"$osc" keypair delete "$key" >/dev/null 2>&1
rm -f "/tmp/$key.pem"

echo "compute-cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

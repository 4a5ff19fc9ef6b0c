#!/usr/bin/env bash
# Nubo tiny guest image boot test (QEMU, TCG only).
#
# Boots the built image from a qcow2 copy-on-write overlay with user-mode
# networking (restrict=on: the guest cannot reach anything beyond slirp) and,
# by default, a vfat config drive (label config-2) carrying a fresh SSH key,
# hostname and a user-data script. Waits for "nubo-guest: ready" on the serial
# log, SSHes in through a hostfwd port (uname -a, then scp over sftp), checks
# the marker lines, then presses the ACPI power button and waits for a clean
# power-off. Prints timings.
#
# Usage: tools/guest-image/boot-test.sh [--datasource MODE] [IMAGE]
#   IMAGE  default tools/guest-image/out/tiny.raw, built with build.sh when missing
#   MODE   configdrive (default): vfat config drive on virtio-blk
#          openstack: no config drive; OpenStack JSON from a metadata service
#                     at 169.254.169.254 (slirp guestfwd to mdserve.py)
#          ec2: the same with only the EC2 plain-text tree
#          all: the three, one after the other
# Environment: READY_TIMEOUT (s, default 120), QEMU_MEM (MiB, default 256),
#              KEEP_WORK=1 keeps the scratch directory (serial log, overlay).
# Exit: 0 pass; 0 with a "SKIP:" line when qemu-system-x86_64 cannot be
# installed; non-zero on any failure.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MODE=configdrive
if [[ ${1:-} == --datasource ]]; then
	MODE=${2:?--datasource needs a value}
	shift 2
fi
case $MODE in
configdrive | openstack | ec2 | all) ;;
*) echo "boot-test: unknown datasource mode $MODE" >&2; exit 2 ;;
esac
IMAGE=${1:-$HERE/out/tiny.raw}
READY_TIMEOUT=${READY_TIMEOUT:-120}
QEMU_MEM=${QEMU_MEM:-256}

log() { printf 'boot-test: %s\n' "$*" >&2; }
fail() { printf 'boot-test: FAIL: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

pkg_installed() {
	dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed$'
}

apt_install() { # apt_install PKG...; returns non-zero when it cannot
	[[ $(id -u) == 0 ]] || return 1
	local opts=(-y -q --no-install-recommends -o DPkg::Lock::Timeout=600)
	DEBIAN_FRONTEND=noninteractive apt-get "${opts[@]}" install "$@" && return 0
	apt-get -q update -o DPkg::Lock::Timeout=300 || return 1
	DEBIAN_FRONTEND=noninteractive apt-get "${opts[@]}" install "$@"
}

# ---------------------------------------------------------------- tools
if ! command -v qemu-system-x86_64 > /dev/null; then
	log "installing qemu-system-x86"
	if ! apt_install qemu-system-x86 || ! command -v qemu-system-x86_64 > /dev/null; then
		echo "SKIP: qemu-system-x86_64 is not available and could not be installed"
		exit 0
	fi
fi
need=()
command -v qemu-img > /dev/null || need+=(qemu-utils)
command -v ssh > /dev/null || need+=(openssh-client)
command -v ssh-keygen > /dev/null || need+=(openssh-client)
command -v mcopy > /dev/null || need+=(mtools)
command -v mkfs.vfat > /dev/null || need+=(dosfstools)
[[ $MODE == configdrive ]] || command -v python3 > /dev/null || need+=(python3)
if ((${#need[@]})); then
	log "installing ${need[*]}"
	apt_install "${need[@]}" || fail "cannot install ${need[*]}"
fi

if [[ ! -f $IMAGE ]]; then
	[[ $# -eq 0 ]] || fail "image $IMAGE not found"
	log "no image yet: building it"
	"$HERE/build.sh" "$IMAGE"
fi
IMAGE=$(cd "$(dirname "$IMAGE")" && pwd)/$(basename "$IMAGE")

if [[ $MODE == all ]]; then
	rc=0
	for m in configdrive openstack ec2; do
		"$0" --datasource "$m" "$IMAGE" | grep -v '^[0-9]* passed, [0-9]* failed' || rc=1
	done
	if ((rc == 0)); then echo "3 passed, 0 failed"; else echo "boot-test: FAIL (see above)"; fi
	exit "$rc"
fi

# ---------------------------------------------------------------- scratch + cleanup
WORK=$(mktemp -d "${TMPDIR:-/tmp}/nubo-boot-test.XXXXXX")
QEMU_PID=
CAT_PID=
cleanup() {
	local rc=$?
	if [[ -n $QEMU_PID ]] && kill -0 "$QEMU_PID" 2> /dev/null; then
		kill "$QEMU_PID" 2> /dev/null || true
		wait "$QEMU_PID" 2> /dev/null || true
	fi
	if [[ -n $CAT_PID ]]; then
		kill "$CAT_PID" 2> /dev/null || true
		wait "$CAT_PID" 2> /dev/null || true
	fi
	if [[ $rc != 0 && -f $WORK/serial.log ]]; then
		log "serial log (last 60 lines):"
		tail -n 60 "$WORK/serial.log" | tr -d '\r' | sed 's/^/  | /' >&2
	fi
	if [[ ${KEEP_WORK:-0} == 1 ]]; then
		log "scratch kept in $WORK"
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- inputs
ssh-keygen -q -t ed25519 -N '' -C nubo-boot-test -f "$WORK/key"
UUID=$(cat /proc/sys/kernel/random/uuid)
HOSTNAME_FQDN=boot-test.nubo.internal
mkdir -p "$WORK/cd/openstack/latest"
PUBKEY=$(cat "$WORK/key.pub")
# the same data as OpenStack JSON (config drive, metadata service) and as the
# EC2 tree (metadata service)
cat > "$WORK/cd/openstack/latest/meta_data.json" <<EOF
{"uuid": "$UUID", "name": "boot-test", "hostname": "$HOSTNAME_FQDN",
 "availability_zone": "nova", "launch_index": 0, "project_id": "boot-test",
 "public_keys": {"boot-test": "$PUBKEY\n"},
 "keys": [{"name": "boot-test", "type": "ssh", "data": "$PUBKEY\n"}],
 "meta": {}, "devices": []}
EOF
cat > "$WORK/cd/openstack/latest/user_data" <<'EOF'
#!/bin/sh
echo "hello from user-data on $(hostname)"
echo user-data-was-here > /root/user-data.marker
EOF
mkdir -p "$WORK/ec2/latest/meta-data/public-keys/0"
echo "$PUBKEY" > "$WORK/ec2/latest/meta-data/public-keys/0/openssh-key"
echo "$HOSTNAME_FQDN" > "$WORK/ec2/latest/meta-data/hostname"
echo "i-$(echo "$UUID" | tr -d - | cut -c1-17)" > "$WORK/ec2/latest/meta-data/instance-id"
cp "$WORK/cd/openstack/latest/user_data" "$WORK/ec2/latest/user-data"

case $MODE in
configdrive)
	# vfat config drive, built without mounting anything
	mkfs.vfat -n config-2 -C "$WORK/config.vfat" 1024 > /dev/null 2>&1
	mcopy -s -i "$WORK/config.vfat" "$WORK/cd/openstack" ::/
	DS_ARGS=(-drive "if=none,id=cfg,file=$WORK/config.vfat,format=raw,readonly=on"
		-device virtio-blk-pci,drive=cfg)
	NET_OPTS=
	DS_RE='configdrive:/dev/vd[a-z]+'
	ID_RE=$UUID
	;;
openstack | ec2)
	# slirp accepts guestfwd only inside its own network: move it to 169.254/16.
	# mdserve.py answers each guest connection to 169.254.169.254:80.
	if [[ $MODE == openstack ]]; then MDROOT=$WORK/cd; else MDROOT=$WORK/ec2; fi
	[[ "$HERE$MDROOT" != *,* ]] || fail "paths with commas cannot go into a guestfwd cmd"
	DS_ARGS=()
	NET_OPTS=",net=169.254.0.0/16,host=169.254.0.2,dns=169.254.0.3,dhcpstart=169.254.0.15"
	NET_OPTS+=",guestfwd=tcp:169.254.169.254:80-cmd:python3 $HERE/mdserve.py $MDROOT"
	if [[ $MODE == openstack ]]; then
		DS_RE=openstack-metadata
		ID_RE=$UUID
	else
		DS_RE=ec2-metadata
		ID_RE=$(cat "$WORK/ec2/latest/meta-data/instance-id")
	fi
	;;
esac

# copy-on-write overlay over the raw image: the image itself stays untouched
qemu-img create -q -f qcow2 -b "$IMAGE" -F raw "$WORK/overlay.qcow2"

pick_port() { # a free TCP port on 127.0.0.1 (nothing answers on it)
	local p i
	for i in $(seq 1 50); do
		p=$((20000 + RANDOM % 20000))
		if ! (exec 3<> "/dev/tcp/127.0.0.1/$p") 2> /dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}
PORT=$(pick_port) || fail "no free port"

# monitor on a pipe pair (QEMU opens both ends read-write: no blocking)
mkfifo "$WORK/mon.in" "$WORK/mon.out"

# ---------------------------------------------------------------- boot
SERIAL=$WORK/serial.log
: > "$SERIAL"
QEMU=(qemu-system-x86_64 -accel tcg -m "$QEMU_MEM" -smp 1
	-nodefaults -no-user-config -display none
	-serial "file:$SERIAL"
	-chardev "pipe,id=mon,path=$WORK/mon" -mon chardev=mon,mode=readline
	-drive "if=none,id=root,file=$WORK/overlay.qcow2,format=qcow2"
	-device virtio-blk-pci,drive=root,bootindex=0
	"${DS_ARGS[@]}"
	-netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$PORT-:22$NET_OPTS"
	-device virtio-net-pci,netdev=n0)
log "datasource mode: $MODE"
log "qemu: ${QEMU[*]}"
T0=$(now)
"${QEMU[@]}" > "$WORK/qemu.out" 2>&1 < /dev/null &
QEMU_PID=$!
# drain the monitor's output so QEMU never blocks on it
cat "$WORK/mon.out" > "$WORK/monitor.log" 2>/dev/null &
CAT_PID=$!

ready=
while :; do
	if grep -q 'nubo-guest: ready' "$SERIAL"; then
		ready=$(since "$T0")
		break
	fi
	kill -0 "$QEMU_PID" 2> /dev/null || fail "qemu exited early: $(cat "$WORK/qemu.out")"
	awk -v s="$(since "$T0")" -v t="$READY_TIMEOUT" 'BEGIN { exit !(s > t) }' &&
		fail "no ready marker within $READY_TIMEOUT s"
	sleep 0.2
done
log "ready marker after $ready s"

SSH=(ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes
	-o ConnectTimeout=10 -o LogLevel=ERROR -i "$WORK/key" -p "$PORT" root@127.0.0.1)
ssh_out=
for i in $(seq 1 30); do
	if ssh_out=$("${SSH[@]}" uname -a 2> "$WORK/ssh.err"); then
		break
	fi
	ssh_out=
	sleep 1
done
[[ -n $ssh_out ]] || fail "ssh failed: $(cat "$WORK/ssh.err")"
ssh_t=$(since "$T0")
log "ssh: $ssh_out"
log "ssh done after $ssh_t s"

# ---------------------------------------------------------------- checks
markers=$(tr -d '\r' < "$SERIAL" | grep '^nubo-guest: ' || true)
echo "$markers" | sed 's/^/  serial| /' >&2
check() { # check REGEX DESCRIPTION
	echo "$markers" | grep -Eq "$1" || fail "missing marker: $2"
}
check '^nubo-guest: ip=[0-9.]+/[0-9]+ ' "IPv4 address (DHCP)"
check "^nubo-guest: datasource=$DS_RE " "datasource $MODE"
check "^nubo-guest: ssh-keys=1 uuid=$ID_RE\$" "1 SSH key and the instance id"
check '^nubo-guest: hostname='"$HOSTNAME_FQDN"'$' "hostname"
check '^nubo-guest: sshd up port=22' "sshd"
check '^nubo-guest: user-data rc=0' "user-data ran"
check "^nubo-guest: ready hostname=boot-test ip=[0-9.]+/[0-9]+ datasource=$DS_RE " "ready line"
tr -d '\r' < "$SERIAL" | grep -q '^user-data: hello from user-data on boot-test' || fail "user-data output"
# IPv6 comes by SLAAC (slirp sends router advertisements for fec0::/64) and
# is reported asynchronously, usually a few seconds after ready
ip6=
for i in $(seq 1 100); do
	ip6=$(tr -d '\r' < "$SERIAL" | sed -n 's/^nubo-guest: ip6=\([^ ]*\) .*/\1/p' | head -n1)
	[[ -n $ip6 ]] && break
	sleep 0.2
done
[[ -n $ip6 && $ip6 != none ]] || fail "no IPv6 address by SLAAC (marker: ${ip6:-missing})"
log "ip6 marker: $ip6 (after $(since "$T0") s at the latest)"
remote=$("${SSH[@]}" 'hostname; cat /root/user-data.marker')
[[ $remote == $'boot-test\nuser-data-was-here' ]] || fail "unexpected guest state: $remote"
# OpenSSH scp speaks SFTP: this exercises the sftp-server in the image
echo "scp-check-$UUID" > "$WORK/scp.txt"
scp -q -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes \
	-o LogLevel=ERROR -i "$WORK/key" -P "$PORT" "$WORK/scp.txt" root@127.0.0.1:/tmp/scp.txt ||
	fail "scp to the guest failed"
[[ $("${SSH[@]}" cat /tmp/scp.txt) == "scp-check-$UUID" ]] || fail "scp content mismatch"
if [[ $MODE != configdrive ]]; then
	log "metadata requests: $(tr '\n' ';' < "$WORK/requests.log")"
fi

# ---------------------------------------------------------------- ACPI power-off
T1=$(now)
echo system_powerdown > "$WORK/mon.in"
off=
for i in $(seq 1 300); do
	if ! kill -0 "$QEMU_PID" 2> /dev/null; then
		off=$(since "$T1")
		break
	fi
	sleep 0.1
done
if [[ -z $off ]]; then
	kill "$QEMU_PID" 2> /dev/null || true
	wait "$QEMU_PID" 2> /dev/null || true
	QEMU_PID=
	fail "guest did not power off within 30 s of the ACPI power button"
fi
wait "$QEMU_PID" || fail "qemu exit status $?"
QEMU_PID=
kill "$CAT_PID" 2> /dev/null || true
wait "$CAT_PID" 2> /dev/null || true
CAT_PID=
grep -q 'nubo-guest: shutdown' "$SERIAL" || fail "no clean shutdown marker"
log "power-off after $off s"

echo "boot-test: PASS datasource=$MODE image=$(basename "$IMAGE") size=$(stat -c %s "$IMAGE") ready=${ready}s ssh=${ssh_t}s poweroff=${off}s (TCG, -m $QEMU_MEM)"
echo "1 passed, 0 failed"

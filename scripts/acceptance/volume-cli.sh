#!/usr/bin/env bash
# Block Storage acceptance (issue 7) through the real `openstack` CLI on a root `nubo up` with the
# QEMU driver and the Linux data plane (guests reachable over SSH from the DHCP namespace of the
# `private` network), the `tiny` image and the m1.nano flavor:
#
#   sudo OS_CLIENT_CONFIG_FILE=nubo-data/clouds.yaml OS_CLOUD=nubo scripts/acceptance/volume-cli.sh
#
#   - `volume create --image tiny --size 1` (bootable, its image metadata) and
#     `volume create --size 1 data`;
#   - `server add volume` on a running VM: the guest sees a new virtio disk (the time from the
#     call until the guest sees it is printed), makes a filesystem on it and writes a file;
#   - `server remove volume`, attach to a second VM, the file reads back there;
#   - `volume snapshot create`, `volume create --snapshot` (OSC 10.5 drops --force when the cloud
#     offers 3.66, yet sends the create at 3.65, so the snapshot is taken detached);
#   - `server create --volume` (boot from volume): ACTIVE and the guest boots (console marker);
#   - `server image create` of that volume-backed server (a snapshot of its volume and an image
#     that maps it), then `server create --image` of that image: a new volume from the
#     snapshot, and the file the first server wrote is on it;
#   - `volume set --size 2` (offline extend), `image create --volume` (upload to an image);
#   - deleting it all leaves no volume, snapshot or server.
# Prints one line per check and ends with "volume-cli: N passed, N failed".
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
osc=${NUBO_VENV_DIR:-$repo/.venvs}/osc/bin/openstack
: "${OS_CLIENT_CONFIG_FILE:?set OS_CLIENT_CONFIG_FILE (nubo up prints it)}" "${OS_CLOUD:=nubo}"
export OS_CLOUD
passed=0 failed=0
s=$$
flavor=${NUBO_VOL_FLAVOR:-m1.nano} image=${NUBO_VOL_IMAGE:-tiny}
boot_timeout=${NUBO_BOOT_TIMEOUT:-300}
work=$(mktemp -d /tmp/nubo-volume-cli.XXXXXX)
t0=$(date +%s)

say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
ok() { passed=$((passed + 1)); echo "ok     $1"; }
bad() { failed=$((failed + 1)); echo "FAILED $1"; [ -n "${2:-}" ] && echo "$2" | tail -5 | sed 's/^/       /'; }
check() {
  local name=$1 out; shift
  if out=$("$@" 2>&1); then ok "$name"; else bad "$name" "$out"; fi
}
within() { # seconds, command...: retries until it succeeds
  local secs=$1 end out; shift
  end=$(( $(date +%s) + secs ))
  while :; do
    out=$("$@" 2>&1) && { [ -n "$out" ] && echo "$out"; return 0; }
    [ "$(date +%s)" -ge "$end" ] && { echo "$out"; return 1; }
    sleep 1
  done
}
vol_status() { # volume, wanted status
  [ "$("$osc" volume show -f value -c status "$1" 2>/dev/null)" = "$2" ] \
    || { echo "status $("$osc" volume show -f value -c status "$1" 2>&1), wanted $2"; return 1; }
}
field() { "$osc" "$@" 2>/dev/null; }

if [ "$(id -u)" -ne 0 ]; then
  echo "FAILED needs root (SSH into guests from the DHCP namespace, QEMU taps)"
  echo "volume-cli: 0 passed, 1 failed"; exit 1
fi
for tool in ssh ssh-keygen ip; do
  command -v "$tool" >/dev/null || { echo "FAILED $tool is missing"; echo "volume-cli: 0 passed, 1 failed"; exit 1; }
done

key=$work/id_ed25519
ssh-keygen -q -t ed25519 -N '' -f "$key"
sshopts=(-i "$key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes
         -o ConnectTimeout=5 -o LogLevel=ERROR)
net_id=$(field network show -f value -c id private)
ns=nubo-dhcp-$net_id
gssh() { local ip=$1; shift; timeout 60 ip netns exec "$ns" ssh "${sshopts[@]}" "root@$ip" "$@"; }
addr_of() { field server show -f value -c addresses "$1" | grep -oE '[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+' | head -1; }
disks_of() { gssh "$1" 'ls /sys/block | grep "^vd" | tr "\n" " "'; }

kp=vol-key-$s sg=vol-sg-$s vm1=vol-vm1-$s vm2=vol-vm2-$s vm3=vol-bfv-$s vm4=vol-fromimg-$s
boot=vol-boot-$s data=vol-data-$s snap=vol-snap-$s fromsnap=vol-fromsnap-$s img=vol-img-$s
bfvimg=vol-bfvimg-$s vm4vol=
cleanup() {
  set +e
  say "cleanup"
  for vm in "$vm1" "$vm2" "$vm3" "$vm4"; do "$osc" server delete --wait "$vm" >/dev/null 2>&1; done
  [ -n "$vm4vol" ] && "$osc" volume delete "$vm4vol" >/dev/null 2>&1 && sleep 2
  "$osc" volume snapshot delete "$snap" "snapshot for $bfvimg" >/dev/null 2>&1
  "$osc" image delete "$bfvimg" >/dev/null 2>&1
  for v in "$fromsnap" "$data" "$boot"; do
    for _ in $(seq 1 30); do
      "$osc" volume show "$v" >/dev/null 2>&1 || break
      "$osc" volume delete "$v" >/dev/null 2>&1 && break; sleep 1
    done
  done
  "$osc" image delete "$img" >/dev/null 2>&1
  "$osc" security group delete "$sg" >/dev/null 2>&1
  "$osc" keypair delete "$kp" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

say "volumes"
check "volume create --image $image --size 1 $boot" "$osc" volume create --image "$image" --size 1 "$boot"
check "... available" within 60 vol_status "$boot" available
check "... bootable, with the image's metadata" bash -c "
  out=\$('$osc' volume show -f json $boot); grep -q '\"bootable\": true' <<<\"\$out\" &&
  grep -q '\"image_name\": \"$image\"' <<<\"\$out\""
check "volume create --size 1 $data" "$osc" volume create --size 1 "$data"
check "... available" within 60 vol_status "$data" available

say "two VMs"
check "keypair create" "$osc" keypair create --public-key "$key.pub" "$kp"
check "security group create (tcp/22)" bash -c "'$osc' security group create $sg >/dev/null &&
  '$osc' security group rule create --protocol tcp --dst-port 22 $sg >/dev/null"
for vm in "$vm1" "$vm2"; do
  "$osc" server create --image "$image" --flavor "$flavor" --network private --key-name "$kp" \
    --security-group "$sg" --wait "$vm" > "$work/$vm.create" 2>&1 &
  eval "pid_${vm//-/_}=$!"
done
for vm in "$vm1" "$vm2"; do
  p=pid_${vm//-/_}
  if wait "${!p}"; then ok "server create --wait $vm"; else bad "server create --wait $vm" "$(cat "$work/$vm.create")"; fi
done
ip1=$(addr_of "$vm1") ip2=$(addr_of "$vm2")
echo "       $vm1 $ip1, $vm2 $ip2 (ssh from $ns)"
before1=$(within "$boot_timeout" disks_of "$ip1") && ok "ssh into $vm1 (disks: $before1)" || bad "ssh into $vm1" "$before1"
before2=$(within "$boot_timeout" disks_of "$ip2") && ok "ssh into $vm2 (disks: $before2)" || bad "ssh into $vm2" "$before2"

say "attach to $vm1, filesystem, file"
n1=$(wc -w <<<"$before1")
# Waits inside the guest for one more disk, so the time measured is until the guest sees it.
gssh "$ip1" "i=0; while [ \$(ls /sys/block | grep -c '^vd') -le $n1 ] && [ \$i -lt 1200 ]; do usleep 50000; i=\$((i+1)); done; ls /sys/block | grep '^vd' | tr '\n' ' '" \
  > "$work/seen1" 2>&1 &
watcher=$!
sleep 1
a0=$(date +%s%N)
check "server add volume $vm1 $data" "$osc" server add volume "$vm1" "$data"
wait "$watcher"
a1=$(date +%s%N)
after1=$(cat "$work/seen1")
dev1=""
for d in $after1; do [[ " $before1 " == *" $d "* ]] || dev1=/dev/$d; done
if [ -n "$dev1" ]; then
  ok "the guest sees a new disk $dev1"
  echo "       attach until the guest sees the disk: $(( (a1 - a0) / 1000000 )) ms"
else
  bad "the guest sees a new disk" "before: $before1, after: $after1"
fi
check "... volume in-use" within 60 vol_status "$data" in-use
check "server volume list: $data on $vm1" bash -c "'$osc' server volume list $vm1 -f value | grep -q \$('$osc' volume show -f value -c id $data)"
check "guest: mkfs on $dev1, mount, write a file" \
  gssh "$ip1" "mkfs -t ext4 $dev1 >/dev/null 2>&1 && mkdir -p /mnt/data && mount $dev1 /mnt/data && echo nubo-volume-$s > /mnt/data/hello && sync && umount /mnt/data"
check "server remove volume $vm1 $data" "$osc" server remove volume "$vm1" "$data"
check "... available" within 60 vol_status "$data" available
check "guest: the disk left $vm1" within 60 bash -c "[ \"\$(ip netns exec $ns ssh ${sshopts[*]} root@$ip1 'ls /sys/block | grep -c ^vd')\" -eq $n1 ]"

# More attach -> the guest sees it -> detach cycles, for a median (printed, never asserted).
attach_ms=()
[ -n "$dev1" ] && attach_ms+=($(( (a1 - a0) / 1000000 )))
for _ in $(seq 1 "${NUBO_VOL_ATTACH_SAMPLES:-4}"); do
  gssh "$ip1" "i=0; while [ \$(ls /sys/block | grep -c '^vd') -le $n1 ] && [ \$i -lt 1200 ]; do usleep 50000; i=\$((i+1)); done" >/dev/null 2>&1 &
  watcher=$!
  sleep 1
  a0=$(date +%s%N)
  "$osc" server add volume "$vm1" "$data" >/dev/null 2>&1 || break
  wait "$watcher" || break
  a1=$(date +%s%N)
  attach_ms+=($(( (a1 - a0) / 1000000 )))
  within 60 vol_status "$data" in-use >/dev/null || break
  "$osc" server remove volume "$vm1" "$data" >/dev/null 2>&1 || break
  within 60 vol_status "$data" available >/dev/null || break
done
if [ ${#attach_ms[@]} -gt 0 ]; then
  sorted=($(printf '%s\n' "${attach_ms[@]}" | sort -n))
  echo "       attach until the guest sees the disk: median ${sorted[$(( ${#sorted[@]} / 2 ))]} ms of ${#sorted[@]} (${attach_ms[*]} ms; QEMU TCG, noisy shared host)"
fi
check "... and after the cycles the volume is available" vol_status "$data" available

say "attach to $vm2, read the file"
check "server add volume $vm2 $data" "$osc" server add volume "$vm2" "$data"
check "... volume in-use" within 60 vol_status "$data" in-use
dev2=""
n2=$(wc -w <<<"$before2")
if after2=$(within 60 bash -c "out=\$(ip netns exec $ns ssh ${sshopts[*]} root@$ip2 'ls /sys/block | grep ^vd | tr \"\n\" \" \"'); [ \$(wc -w <<<\"\$out\") -gt $n2 ] && echo \"\$out\""); then
  for d in $after2; do [[ " $before2 " == *" $d "* ]] || dev2=/dev/$d; done
fi
check "guest: $vm2 reads the file back from $dev2" bash -c "
  out=\$(ip netns exec $ns timeout 60 ssh ${sshopts[*]} root@$ip2 'mkdir -p /mnt/data && mount $dev2 /mnt/data && cat /mnt/data/hello; umount /mnt/data'); echo \"\$out\"
  [ \"\$out\" = nubo-volume-$s ]"

check "server remove volume $vm2 $data" "$osc" server remove volume "$vm2" "$data"
check "... available" within 60 vol_status "$data" available

say "snapshots"
check "volume snapshot create" "$osc" volume snapshot create --volume "$data" "$snap"
check "... available" within 60 bash -c "[ \"\$('$osc' volume snapshot show -f value -c status $snap)\" = available ]"
check "volume create --snapshot" "$osc" volume create --snapshot "$snap" "$fromsnap"
check "... available, 1 GiB" within 60 bash -c "[ \"\$('$osc' volume show -f value -c status $fromsnap)\" = available ] && [ \"\$('$osc' volume show -f value -c size $fromsnap)\" = 1 ]"

say "boot from volume"
check "server create --volume $boot --wait" "$osc" server create --volume "$boot" --flavor "$flavor" \
  --network private --key-name "$kp" --security-group "$sg" --wait "$vm3"
check "... ACTIVE, no image of its own" bash -c "[ \"\$('$osc' server show -f value -c status $vm3)\" = ACTIVE ] &&
  '$osc' server show -f value -c image $vm3 | grep -qi 'booted from volume\|^\$'"
check "... the boot volume is in-use" vol_status "$boot" in-use
check "... the guest boots (console ready marker)" within "$boot_timeout" bash -c "'$osc' console log show $vm3 | grep -q 'nubo-guest: ready'"
ip3=$(addr_of "$vm3")
check "... and answers SSH" within "$boot_timeout" gssh "$ip3" true

say "snapshot of the volume-backed server, and a server booted from it"
# /disk is the boot disk's partition in the guest (the OS runs from its initramfs). A snapshot
# of an in-use volume holds what the guest has flushed to its disk: `sync FILE` fsyncs it (vfat's
# fsync flushes the disk's write cache; a bare `sync` on vfat does not).
check "guest: $vm3 writes a file on its boot volume and flushes it" gssh "$ip3" "echo bfv-$s > /disk/bfv-marker && sync /disk/bfv-marker"
check "server image create --wait $vm3 (volume-backed)" "$osc" server image create --name "$bfvimg" --wait "$vm3"
check "... the image is active, size 0, and maps a snapshot" bash -c "
  out=\$('$osc' image show -f json $bfvimg); grep -q '\"status\": \"active\"' <<<\"\$out\" &&
  grep -q '\"size\": 0' <<<\"\$out\" && grep -q 'block_device_mapping' <<<\"\$out\""
check "... Block Storage has 'snapshot for $bfvimg', available" within 120 bash -c "[ \"\$('$osc' volume snapshot show -f value -c status 'snapshot for $bfvimg')\" = available ]"
check "... $vm3 still ACTIVE" bash -c "[ \"\$('$osc' server show -f value -c status $vm3)\" = ACTIVE ]"
check "server create --image $bfvimg --wait $vm4" "$osc" server create --image "$bfvimg" --flavor "$flavor" \
  --network private --key-name "$kp" --security-group "$sg" --wait "$vm4"
vm4vol=$(field server show -f json -c volumes_attached "$vm4" | grep -oE '[0-9a-f]{8}-[0-9a-f-]{27}' | head -1)
check "... it boots from a new volume ($vm4vol)" bash -c "[ -n '$vm4vol' ] && [ '$vm4vol' != \"\$('$osc' volume show -f value -c id $boot)\" ]"
ip4=$(addr_of "$vm4")
marker_on() { [ "$(gssh "$1" cat /disk/bfv-marker 2>&1)" = "bfv-$s" ]; }
check "... and the file $vm3 wrote is on it" within "$boot_timeout" marker_on "$ip4"

say "extend, upload"
check "volume set --size 2 $fromsnap" "$osc" volume set --size 2 "$fromsnap"
check "... 2 GiB, available" within 60 bash -c "[ \"\$('$osc' volume show -f value -c size $fromsnap)\" = 2 ] && [ \"\$('$osc' volume show -f value -c status $fromsnap)\" = available ]"
check "image create --volume $fromsnap $img" "$osc" image create --volume "$fromsnap" "$img"
check "... image active" within 120 bash -c "[ \"\$('$osc' image show -f value -c status $img)\" = active ]"
check "... volume available again" within 60 vol_status "$fromsnap" available

say "delete"
check "a volume in use cannot be deleted ($boot)" bash -c "! '$osc' volume delete $boot 2>/dev/null"
check "server delete --wait (4 servers)" "$osc" server delete --wait "$vm1" "$vm2" "$vm3" "$vm4"
check "$boot is available again (its server is gone)" within 60 vol_status "$boot" available
check "$vm4's volume is available again; delete it" bash -c "
  for i in \$(seq 60); do [ \"\$('$osc' volume show -f value -c status $vm4vol)\" = available ] && break; sleep 1; done
  '$osc' volume delete $vm4vol"
check "volume snapshot delete 'snapshot for $bfvimg', image delete $bfvimg" bash -c "
  for i in \$(seq 60); do '$osc' volume show $vm4vol >/dev/null 2>&1 || break; sleep 1; done
  '$osc' volume snapshot delete 'snapshot for $bfvimg' && '$osc' image delete $bfvimg"
check "a volume with a snapshot cannot be deleted" bash -c "! '$osc' volume delete $data 2>/dev/null"
check "volume snapshot delete" "$osc" volume snapshot delete "$snap"
check "volume delete (3 volumes)" "$osc" volume delete "$fromsnap" "$data" "$boot"
check "... gone" within 60 bash -c "! '$osc' volume list -f value -c Name | grep -q 'vol-.*-$s'"

echo "volume-cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# Data-plane acceptance (issue 6): a VM you can SSH into. Runs against a running `nubo up`, as
# root, with the real `openstack` CLI, real QEMU (TCG) and the `tiny` image:
#
#   sudo OS_CLIENT_CONFIG_FILE=nubo-data/clouds.yaml OS_CLOUD=nubo scripts/acceptance/dataplane.sh
#
# The flow of shared/reference/conformance/flow.sh up to `server add floating ip` (keypair,
# network + IPv4 + IPv6 SLAAC subnets, router with gateway on `public`, a security group with
# tcp/22, `server create --wait`, floating IP), then:
#   - the VM has its IPv4 (DHCP) and IPv6 (SLAAC) in `server show` and inside the guest (serial
#     console markers), MTU 1450, its SSH key from the metadata service, and
#     `ssh root@<floating ip> uname -a` from the host works;
#   - two VMs on the network ping each other over IPv4 and IPv6;
#   - a VM reaches an "outside" namespace (behind the host) through the router's SNAT, and the
#     floating-IP VM through its floating IP;
#   - without the port-22 rule SSH is refused (ping still answers), with it back SSH works;
#   - a VM of another project on the same CIDR reaches neither VM (but its own DHCP port);
#   - the agent heals a router namespace, a dnsmasq and an nft table deleted by hand;
#   - VMs on two hosts of one network talk over VXLAN: the root-only integration tests
#     `cargo test -p nubo-agent --test dataplane_hosts` (two agents in their own network
#     namespaces with their own underlay addresses; once with veth stand-ins for VMs, once with
#     a real QEMU guest per host, whose vm1 pings vm2 over SSH; ~16 s when idle; set
#     NUBO_DP_MULTIHOST=0 to skip);
#   - deleting it all removes the router and DHCP namespaces, bridges and taps it made.
# Differences from flow.sh: the IPv6 subnet is also added to the router (router advertisements
# come from the router: without it there is no SLAAC), its prefix is fdd6:6::/64 (flow.sh's
# fd00::/64 is often a real on-link prefix of the host), the security group is a new one
# instead of `default`, and the image is `tiny`.
# Prints one line per check and ends with "dataplane: N passed, N failed".
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
osc=${NUBO_VENV_DIR:-$repo/.venvs}/osc/bin/openstack
py=${NUBO_VENV_DIR:-$repo/.venvs}/osc/bin/python
: "${OS_CLIENT_CONFIG_FILE:?set OS_CLIENT_CONFIG_FILE (nubo up prints it)}" "${OS_CLOUD:=nubo}"
export OS_CLOUD
passed=0 failed=0
s=$$
v4=${NUBO_DP_V4:-10.0.0.0/24} v6=${NUBO_DP_V6:-fdd6:6::/64} v6p=${v6%%::*}::
flavor=${NUBO_DP_FLAVOR:-m1.nano} image=${NUBO_DP_IMAGE:-tiny}
boot_timeout=${NUBO_DP_BOOT_TIMEOUT:-150}
work=$(mktemp -d /tmp/nubo-dataplane.XXXXXX)
t0=$(date +%s)

say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
ok() { passed=$((passed + 1)); echo "ok     $1"; }
bad() { failed=$((failed + 1)); echo "FAILED $1"; [ -n "${2:-}" ] && echo "$2" | tail -5 | sed 's/^/       /'; }
check() {
  local name=$1 out; shift
  if out=$("$@" 2>&1); then ok "$name"; else bad "$name" "$out"; fi
}
# Retries a command until it succeeds or SECONDS pass.
within() {
  local secs=$1 end out; shift
  end=$(( $(date +%s) + secs ))
  while :; do
    out=$("$@" 2>&1) && { [ -n "$out" ] && echo "$out"; return 0; }
    [ "$(date +%s)" -ge "$end" ] && { echo "$out"; return 1; }
    sleep 1
  done
}
# Succeeds when the command fails.
never() { if "$@" >/dev/null 2>&1; then echo "unexpectedly succeeded: $*"; return 1; fi; return 0; }

if [ "$(id -u)" -ne 0 ]; then
  echo "FAILED needs root (ip netns exec into tenant networks, an outside namespace)"
  echo "dataplane: 0 passed, 1 failed"; exit 1
fi
for tool in ssh ssh-keygen ip python3 busybox; do
  command -v "$tool" >/dev/null || { echo "FAILED $tool is missing"; echo "dataplane: 0 passed, 1 failed"; exit 1; }
done

key=$work/id_ed25519
ssh-keygen -q -t ed25519 -N '' -f "$key"
sshopts=(-i "$key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes
         -o ConnectTimeout=5 -o LogLevel=ERROR)
# ssh into a guest: from the host (floating IP), or from a namespace on its network.
gssh() { local ip=$1; shift; timeout 20 ssh "${sshopts[@]}" "root@$ip" "$@"; }
nssh() { local ns=$1 ip=$2; shift 2; timeout 20 ip netns exec "$ns" ssh "${sshopts[@]}" "root@$ip" "$@"; }
console() { "$osc" console log show "$1" 2>/dev/null | tr -d '\r'; }
marker() { # server, regex: succeeds when the console has a matching nubo-guest marker
  console "$1" | grep -aE "nubo-guest: ($2)"
}
addr_of() { # server, 4|6
  "$osc" server show -f json -c addresses "$1" 2>/dev/null | "$py" -c '
import json, sys, ipaddress
v = int(sys.argv[1])
for addrs in json.load(sys.stdin)["addresses"].values():
    for a in addrs:
        if ipaddress.ip_address(a).version == v:
            print(a); sys.exit(0)
sys.exit(1)' "$2"
}

# --------------------------------------------------------------------------- cleanup
outside_ns=dp-out-$s
fwd_before=$(sysctl -n net.ipv4.ip_forward)
cleanup() {
  set +e
  say "cleanup"
  [ -n "${http_pid:-}" ] && { kill "$http_pid" 2>/dev/null; wait "$http_pid" 2>/dev/null; }
  ip netns del "$outside_ns" 2>/dev/null
  ip link del "dpo$s" 2>/dev/null
  sysctl -qw net.ipv4.ip_forward="$fwd_before"
  rm -rf "$work"
}
trap cleanup EXIT

# --------------------------------------------------------------------------- the flow
net=dp-net-$s router=dp-router-$s sg=dp-sg-$s kp=dp-key-$s
say "flow.sh: keypair, network, subnets, router, security group"
check "keypair create" "$osc" keypair create --public-key "$key.pub" "$kp"
check "network create" "$osc" network create "$net"
net_id=$("$osc" network show -f value -c id "$net" 2>/dev/null)
check "subnet create (IPv4 $v4)" "$osc" subnet create --network "$net" --subnet-range "$v4" "$net-v4"
check "subnet create (IPv6 SLAAC $v6)" "$osc" subnet create --network "$net" --ip-version 6 \
  --ipv6-ra-mode slaac --ipv6-address-mode slaac --subnet-range "$v6" "$net-v6"
check "router create" "$osc" router create "$router"
check "router add subnet (IPv4)" "$osc" router add subnet "$router" "$net-v4"
check "router add subnet (IPv6)" "$osc" router add subnet "$router" "$net-v6"
check "router set --external-gateway public" "$osc" router set --external-gateway public "$router"
router_id=$("$osc" router show -f value -c id "$router" 2>/dev/null)
check "security group create" "$osc" security group create "$sg"
rule22=$("$osc" security group rule create --protocol tcp --dst-port 22 -f value -c id "$sg" 2>&1) \
  && ok "security group rule create --protocol tcp --dst-port 22" || bad "rule tcp/22" "$rule22"
check "security group rule create --protocol icmp" "$osc" security group rule create --protocol icmp "$sg"
check "security group rule create --ethertype IPv6 --protocol ipv6-icmp" \
  "$osc" security group rule create --ethertype IPv6 --protocol ipv6-icmp "$sg"

say "server create --wait vm1, vm2 ($image, $flavor)"
for vm in vm1 vm2; do
  "$osc" server create --image "$image" --flavor "$flavor" --network "$net" --key-name "$kp" \
    --security-group "$sg" --wait "dp-$vm-$s" > "$work/$vm.create" 2>&1 &
  eval "${vm}_create=$!"
done
wait "$vm1_create"; rc1=$?; wait "$vm2_create"; rc2=$?
[ $rc1 -eq 0 ] && ok "server create --wait vm1" || bad "server create --wait vm1" "$(cat "$work/vm1.create")"
[ $rc2 -eq 0 ] && ok "server create --wait vm2" || bad "server create --wait vm2" "$(cat "$work/vm2.create")"
vm1=dp-vm1-$s vm2=dp-vm2-$s
check "vm1 is ACTIVE" within 10 bash -c "[ \"\$('$osc' server show -f value -c status $vm1)\" = ACTIVE ]"
fip=$("$osc" floating ip create -f value -c floating_ip_address public 2>&1) \
  && ok "floating ip create public ($fip)" || { bad "floating ip create public" "$fip"; fip=""; }
check "server add floating ip" "$osc" server add floating ip "$vm1" "$fip"
say "flow done"

# --------------------------------------------------------------------------- addresses
vm1_v4=$(addr_of "$vm1" 4) vm1_v6=$(addr_of "$vm1" 6) vm2_v4=$(addr_of "$vm2" 4) vm2_v6=$(addr_of "$vm2" 6)
echo "       vm1 $vm1_v4 $vm1_v6, vm2 $vm2_v4 $vm2_v6, floating $fip"
check "server show: vm1 has an IPv4 in $v4" test -n "$vm1_v4"
check "server show: vm1 has an IPv6 in $v6" bash -c "[[ '$vm1_v6' == ${v6p%::}:* ]]"
check "guest: vm1's DHCP lease is $vm1_v4 with MTU 1450 (console)" \
  within "$boot_timeout" marker "$vm1" "ip=$vm1_v4/24 .*mtu=1450"
check "guest: vm1's SLAAC address is $vm1_v6 (console)" within 90 marker "$vm1" "ip6=$vm1_v6/64"
check "guest: vm1 read the metadata service (console datasource=openstack-metadata)" \
  within "$boot_timeout" marker "$vm1" "datasource=openstack-metadata"
check "guest: vm1 installed its SSH key (console ssh-keys=1)" within 30 marker "$vm1" "ssh-keys=1 uuid="
ssh_out=$(within "$boot_timeout" gssh "$fip" uname -a) && ok "ssh root@$fip uname -a: $ssh_out" \
  || bad "ssh root@$fip uname -a" "$ssh_out"
check "guest: vm1's hostname came from the metadata service" \
  bash -c "[ \"\$(timeout 20 ssh ${sshopts[*]} root@$fip hostname)\" = '$vm1' ]"
check "guest: vm1 has $vm1_v4 and $vm1_v6 on eth0" \
  bash -c "out=\$(timeout 20 ssh ${sshopts[*]} root@$fip ip addr show eth0); grep -q '$vm1_v4/' <<<\"\$out\" && grep -q '$vm1_v6/' <<<\"\$out\""
check "guest: vm2's DHCP lease and SLAAC address (console)" \
  within "$boot_timeout" bash -c "'$osc' console log show $vm2 | grep -q 'ip=$vm2_v4/' && '$osc' console log show $vm2 | grep -q 'ip6=$vm2_v6/'"
check "vm1 -> vm2 ping over IPv4" within 30 gssh "$fip" ping -c 2 -W 2 "$vm2_v4"
check "vm1 -> vm2 ping over IPv6" within 30 gssh "$fip" ping -c 2 -W 2 "$vm2_v6"
dhcp_ns=nubo-dhcp-$net_id
check "vm2 -> vm1 ping over IPv4 and IPv6 (ssh into vm2 from the network's DHCP namespace)" \
  within 30 nssh "$dhcp_ns" "$vm2_v4" "ping -c 2 -W 2 $vm1_v4 && ping -c 2 -W 2 $vm1_v6"

# --------------------------------------------------------------------------- SNAT to an outside
say "outside namespace behind the host (198.51.100.0/24)"
ip netns add "$outside_ns"
ip link add "dpo$s" type veth peer name eth0 netns "$outside_ns"
ip addr add 198.51.100.1/24 dev "dpo$s"; ip link set "dpo$s" up
ip -n "$outside_ns" addr add 198.51.100.2/24 dev eth0
ip -n "$outside_ns" link set eth0 up; ip -n "$outside_ns" link set lo up
ip -n "$outside_ns" route add default via 198.51.100.1
sysctl -qw net.ipv4.ip_forward=1
ip netns exec "$outside_ns" python3 -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        print(self.client_address[0], flush=True)
        self.send_response(200); self.end_headers(); self.wfile.write(b"outside\n")
    def log_message(self, *a): pass
http.server.HTTPServer(("198.51.100.2", 8000), H).serve_forever()' > "$work/outside.log" 2>&1 &
http_pid=$!
router_gw=$("$osc" router show -f json -c external_gateway_info "$router" | "$py" -c '
import json, sys, ipaddress
for f in json.load(sys.stdin)["external_gateway_info"]["external_fixed_ips"]:
    if ipaddress.ip_address(f["ip_address"]).version == 4: print(f["ip_address"])')
check "vm2 (no floating IP) reaches the outside namespace" \
  within 30 nssh "$dhcp_ns" "$vm2_v4" "wget -q -O - http://198.51.100.2:8000/ | grep -q outside"
check "... seen from outside as the router's gateway address $router_gw (SNAT)" grep -qx "$router_gw" "$work/outside.log"
check "vm1 reaches the outside namespace" within 30 gssh "$fip" "wget -q -O - http://198.51.100.2:8000/ | grep -q outside"
check "... seen from outside as its floating IP $fip" grep -qx "$fip" "$work/outside.log"
check "the outside never saw a tenant address" bash -c "! grep -q '^${v4%.*}' '$work/outside.log'"

# --------------------------------------------------------------------------- security groups
say "security group without tcp/22"
check "security group rule delete (tcp/22)" "$osc" security group rule delete "$rule22"
sleep 3
check "without the port-22 rule ssh to $fip is refused" never gssh "$fip" true
check "... while the floating IP still answers ping (ICMP allowed)" within 10 busybox ping -c 1 -W 2 "$fip"
check "security group rule create (tcp/22 again)" "$osc" security group rule create --protocol tcp --dst-port 22 "$sg"
check "with the rule back ssh works again" within 30 gssh "$fip" true

# --------------------------------------------------------------------------- another project
say "another project, same CIDR"
other=dp-other-$s
other_pw=$("$py" -c 'import secrets; print(secrets.token_urlsafe(12))')
"$osc" project create "$other" >/dev/null 2>&1
"$osc" user create --project "$other" --password "$other_pw" "$other" >/dev/null 2>&1
"$osc" role add --project "$other" --user "$other" member >/dev/null 2>&1
"$py" - "$OS_CLIENT_CONFIG_FILE" "$OS_CLOUD" "$other" "$other_pw" > "$work/clouds.yaml" <<'EOF'
import sys, yaml
path, cloud, name, pw = sys.argv[1:]
c = yaml.safe_load(open(path))["clouds"][cloud]
c["auth"].update(username=name, password=pw, project_name=name)
print(yaml.safe_dump({"clouds": {"other": c}}))
EOF
oosc() { OS_CLIENT_CONFIG_FILE=$work/clouds.yaml OS_CLOUD=other "$osc" "$@"; }
onet=dp-onet-$s
other_network() { oosc network create "$onet" >/dev/null && oosc subnet create --network "$onet" --subnet-range "$v4" "$onet-v4" >/dev/null; }
check "other project: network + subnet with the same CIDR $v4" other_network
onet_id=$(oosc network show -f value -c id "$onet" 2>/dev/null)
oosc security group create "dp-osg-$s" >/dev/null 2>&1
oosc security group rule create --protocol tcp --dst-port 22 "dp-osg-$s" >/dev/null 2>&1
oosc security group rule create --protocol icmp "dp-osg-$s" >/dev/null 2>&1
oosc keypair create --public-key "$key.pub" "dp-okey-$s" >/dev/null 2>&1
ovm_ip=${v4%.*}.200
check "other project: port with $ovm_ip" oosc port create --network "$onet" --fixed-ip "ip-address=$ovm_ip" --security-group "dp-osg-$s" "dp-oport-$s"
check "other project: server create --wait on that port" oosc server create --image "$image" --flavor "$flavor" \
  --port "dp-oport-$s" --key-name "dp-okey-$s" --wait "dp-ovm-$s"
ons=nubo-dhcp-$onet_id
odhcp=$(oosc port list --network "$onet" --device-owner network:dhcp -f value -c "Fixed IP Addresses" 2>/dev/null | grep -oE "${v4%.*}\.[0-9]+" | head -1)
check "other project's VM is up (ssh from its DHCP namespace) and reaches its DHCP port $odhcp" \
  within "$boot_timeout" nssh "$ons" "$ovm_ip" "ping -c 1 -W 2 $odhcp"
for target in "$vm1_v4" "$vm2_v4"; do
  check "other project's VM cannot reach $target (project A's VM, same CIDR)" \
    nssh "$ons" "$ovm_ip" "! ping -c 2 -W 2 $target"
done
check "vm1 cannot reach the other project's VM $ovm_ip" gssh "$fip" "! ping -c 2 -W 2 $ovm_ip"

# --------------------------------------------------------------------------- healing
say "heal: delete the router namespace, kill dnsmasq, delete an nft table (by hand)"
dns_pids=$(ip netns pids "$dhcp_ns" 2>/dev/null | tr '\n' ' ')
ip netns del "nubo-router-$router_id"
for p in $dns_pids; do kill "$p" 2>/dev/null; done
nft delete table bridge nubo-sg 2>/dev/null
check "the router namespace is made again" within 30 test -e "/run/netns/nubo-router-$router_id"
check "dnsmasq runs again in $dhcp_ns" within 30 bash -c "ip netns pids $dhcp_ns | xargs -r ps -o comm= -p | grep -q dnsmasq"
check "the bridge nft table is back" within 30 nft list table bridge nubo-sg
check "ssh root@$fip works again" within 60 gssh "$fip" true

# --------------------------------------------------------------------------- two hosts
if [ "${NUBO_DP_MULTIHOST:-1}" != 0 ]; then
  say "two hosts over VXLAN: cargo test -p nubo-agent --test dataplane_hosts"
  # One test at a time: the QEMU guests boot faster without the other test beside them.
  if (cd "$repo" && cargo test -q -p nubo-agent --test dataplane_hosts -- --nocapture --test-threads=1) \
       > "$work/multihost.txt" 2>&1 \
     && grep -q "test result: ok. 2 passed" "$work/multihost.txt" && ! grep -q "SKIP" "$work/multihost.txt"; then
    ok "VMs on two agent hosts of one network talk over VXLAN: veth stand-ins, and QEMU guests (vm1 pings vm2 over SSH) (integration tests)"
  else
    bad "two hosts over VXLAN (integration test)" "$(grep -E 'SKIP|panicked|FAILED|error' "$work/multihost.txt" | head -5)"
  fi
fi

# --------------------------------------------------------------------------- deletion
say "delete everything"
ports=$("$osc" port list --network "$net" -f value -c ID 2>/dev/null; oosc port list --network "$onet" -f value -c ID 2>/dev/null)
oosc server delete --wait "dp-ovm-$s" >/dev/null 2>&1
"$osc" server delete --wait "$vm1" "$vm2" >/dev/null 2>&1
"$osc" floating ip delete "$fip" >/dev/null 2>&1
"$osc" router remove subnet "$router" "$net-v4" >/dev/null 2>&1
"$osc" router remove subnet "$router" "$net-v6" >/dev/null 2>&1
"$osc" router unset --external-gateway "$router" >/dev/null 2>&1
check "router delete" "$osc" router delete "$router"
check "network delete" "$osc" network delete "$net"
oosc port delete "dp-oport-$s" >/dev/null 2>&1
check "other project: network delete" oosc network delete "$onet"
"$osc" security group delete "$sg" >/dev/null 2>&1
"$osc" keypair delete "$kp" >/dev/null 2>&1
oosc security group delete "dp-osg-$s" >/dev/null 2>&1
oosc keypair delete "dp-okey-$s" >/dev/null 2>&1
"$osc" user delete "$other" >/dev/null 2>&1
"$osc" project delete "$other" >/dev/null 2>&1
check "the router and DHCP namespaces are gone" \
  within 30 bash -c "! ip netns list | grep -qE 'nubo-router-$router_id|nubo-dhcp-$net_id|nubo-dhcp-$onet_id'"
check "the networks' bridges are gone" \
  within 30 bash -c "! ip -br link | grep -qE 'nbr-${net_id:0:11}|nbr-${onet_id:0:11}'"
leftover=""
for p in $ports; do [ -e "/sys/class/net/tap${p:0:11}" ] && leftover+=" tap${p:0:11}"; done
check "the VMs' taps are gone" test -z "$leftover"

say "done"
echo "dataplane: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

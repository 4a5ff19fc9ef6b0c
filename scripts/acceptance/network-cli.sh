#!/usr/bin/env bash
# Networking acceptance through the real `openstack` CLI (issue 4): networks, IPv4 and IPv6
# (SLAAC) subnets, subnet pools, ports with fixed IPs, routers with interfaces and an external
# gateway, security groups and rules, floating IPs, network RBAC, quotas. Needs
# OS_CLIENT_CONFIG_FILE/OS_CLOUD for the cloud's admin and the `public` network `nubo up` makes.
# Prints one line per check and ends with "network-cli: N passed, N failed".
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
osc=${NUBO_VENV_DIR:-$repo/.venvs}/osc/bin/openstack
: "${OS_CLIENT_CONFIG_FILE:?}" "${OS_CLOUD:=nubo}"
export OS_CLOUD
passed=0 failed=0
suffix=$$

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

net=accept-net-$suffix router=accept-router-$suffix sg=accept-sg-$suffix pool=accept-pool-$suffix
check "network create" "$osc" network create "$net"
net_id=$("$osc" network show -f value -c id "$net" 2>/dev/null)
check "subnet create (IPv4)" "$osc" subnet create --network "$net" --subnet-range 10.77.0.0/24 "$net-v4"
check "subnet create (IPv6 SLAAC)" "$osc" subnet create --network "$net" --ip-version 6 \
  --ipv6-ra-mode slaac --ipv6-address-mode slaac --subnet-range fd77::/64 "$net-v6"
check "subnet pool create" "$osc" subnet pool create --pool-prefix 10.200.0.0/16 --default-prefix-length 26 "$pool"
check "subnet create --subnet-pool" "$osc" subnet create --network "$net" --subnet-pool "$pool" "$net-pooled"
check "the pooled subnet is carved from the pool" contains "10.200." "$osc" subnet show -f value -c cidr "$net-pooled"
check "port create --fixed-ip" "$osc" port create --network "$net" --fixed-ip subnet="$net-v4",ip-address=10.77.0.50 "$net-port"
check "the port has the requested IPv4" contains "10.77.0.50" "$osc" port show -f value -c fixed_ips "$net-port"
check "the port has a SLAAC IPv6" contains "fd77::" "$osc" port show -f value -c fixed_ips "$net-port"
check "router create" "$osc" router create "$router"
check "router add subnet" "$osc" router add subnet "$router" "$net-v4"
check "router set --external-gateway public" "$osc" router set --external-gateway public "$router"
check "the router has a gateway on public" contains "external_fixed_ips" "$osc" router show -f json -c external_gateway_info "$router"
check "security group create" "$osc" security group create "$sg"
check "security group rule create --protocol tcp --dst-port 22" \
  "$osc" security group rule create --protocol tcp --dst-port 22 "$sg"
check "the rule is listed" contains "22:22" "$osc" security group rule list "$sg"
fip=$("$osc" floating ip create -f value -c floating_ip_address public 2>/dev/null) || fip=""
if [ -n "$fip" ]; then passed=$((passed + 1)); echo "ok     floating ip create public ($fip)"
else failed=$((failed + 1)); echo "FAILED floating ip create public"; fi
check "floating ip set --port" "$osc" floating ip set --port "$net-port" "$fip"
check "the floating ip maps to the port" contains "10.77.0.50" "$osc" floating ip show -f value -c fixed_ip_address "$fip"
project_id=$("$osc" project create -f value -c id "accept-rbac-$suffix")
check "network rbac create" "$osc" network rbac create --target-project "$project_id" --action access_as_shared --type network "$net"
check "network rbac list" contains "$net_id" "$osc" network rbac list -c "Object ID" -f value
# Plain `quota show` also asks Compute and Block Storage; with Block Storage served it is checked
# as is, until then for Networking alone.
volume_url=$("$osc" catalog show block-storage -f json 2>/dev/null | grep -o 'http[^" ]*/volume/' | head -1)
if [ -n "$volume_url" ] && curl -fsS -o /dev/null -m 5 "${volume_url}v3/" 2>/dev/null; then
  check "quota show" contains "networks" "$osc" quota show
else
  check "quota show --network (Block Storage not served yet)" contains "networks" "$osc" quota show --network
fi

"$osc" floating ip delete "$fip" >/dev/null 2>&1
check "router remove subnet, unset gateway, delete" bash -c "\"$osc\" router remove subnet \"$router\" \"$net-v4\" && \"$osc\" router unset --external-gateway \"$router\" && \"$osc\" router delete \"$router\""
check "port delete" "$osc" port delete "$net-port"
for rbac in $("$osc" network rbac list -f value -c ID -c "Object ID" | awk -v n="$net_id" '$2 == n {print $1}'); do
  "$osc" network rbac delete "$rbac" >/dev/null
done
check "network delete (with its subnets)" "$osc" network delete "$net"
check "subnet pool delete" "$osc" subnet pool delete "$pool"
check "security group delete" "$osc" security group delete "$sg"
"$osc" project delete "$project_id" >/dev/null 2>&1

echo "network-cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# Image acceptance through the real `openstack` CLI (issue 3): create from a file, list, show,
# properties and tags, sharing with another project (who accepts), download bit-identical,
# delete. Needs OS_CLIENT_CONFIG_FILE/OS_CLOUD for the cloud's admin. Set NUBO_BIG_IMAGE_GIB=2 to
# also round-trip an image of that size (and report the API's peak RSS when NUBO_API_PID is set).
# Prints one line per check and ends with "image-cli: N passed, N failed".
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
osc=${NUBO_VENV_DIR:-$repo/.venvs}/osc/bin/openstack
: "${OS_CLIENT_CONFIG_FILE:?}" "${OS_CLOUD:=nubo}"
export OS_CLOUD
passed=0 failed=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
suffix=$$

check() {
  local name=$1; shift
  if out=$("$@" 2>&1); then
    passed=$((passed + 1)); echo "ok     $name"
  else
    failed=$((failed + 1)); echo "FAILED $name"; echo "$out" | tail -5 | sed 's/^/       /'
  fi
}
expect_fail() {
  local name=$1; shift
  if "$@" >/dev/null 2>&1; then
    failed=$((failed + 1)); echo "FAILED $name (the command succeeded)"
  else
    passed=$((passed + 1)); echo "ok     $name"
  fi
}
contains() {
  local needle=$1 out; shift
  out=$("$@" 2>&1) || { echo "$out"; return 1; }
  grep -q -- "$needle" <<<"$out" || { echo "no '$needle' in: $out"; return 1; }
}
same_file() { [ "$(sha256sum < "$1")" = "$(sha256sum < "$2")" ] || { echo "$1 and $2 differ"; return 1; }; }

auth_url=$("$osc" configuration show -f value -c auth.auth_url)
image=accept-image-$suffix
src=$work/src.raw
if [ -f "$repo/tools/guest-image/out/tiny.raw" ]; then cp "$repo/tools/guest-image/out/tiny.raw" "$src"
else head -c 3145728 /dev/urandom > "$src"; fi

check "image create --file --public" "$osc" image create --file "$src" --disk-format raw --container-format bare --public "$image"
check "image list" contains "$image" "$osc" image list
check "image show is active" contains active "$osc" image show -f value -c status "$image"
check "image set --property --tag" "$osc" image set --property nubo_test=yes --tag accept "$image"
check "image show reflects set" contains nubo_test "$osc" image show -f value -c properties "$image"
check "image show has the tag" contains accept "$osc" image show -f value -c tags "$image"
check "image save" "$osc" image save --file "$work/out.raw" "$image"
check "downloaded image is bit-identical" same_file "$src" "$work/out.raw"

# Sharing: a private image shared with another project, who accepts it.
shared=accept-shared-$suffix
project=accept-member-$suffix user=accept-member-user-$suffix
check "private image create" "$osc" image create --file "$src" --disk-format raw --container-format bare --private "$shared"
"$osc" project create "$project" >/dev/null && "$osc" user create --password pw "$user" >/dev/null \
  && "$osc" role add --project "$project" --user "$user" member
cat > "$work/clouds.yaml" <<YAML
clouds:
  member:
    auth: {auth_url: "$auth_url", username: "$user", password: pw, project_name: "$project", user_domain_name: Default, project_domain_name: Default}
    identity_api_version: 3
YAML
as_member() { OS_CLIENT_CONFIG_FILE=$work/clouds.yaml OS_CLOUD=member "$osc" "$@"; }
expect_fail "the other project cannot see the private image" as_member image show "$shared"
check "image set --shared" "$osc" image set --shared "$shared"
check "image add project" "$osc" image add project "$shared" "$project"
shared_id=$("$osc" image show -f value -c id "$shared")
check "image set --accept (as the member)" as_member image set --accept "$shared_id"
check "the member lists the accepted image" contains "$shared" as_member image list
check "the member downloads it" as_member image save --file "$work/shared.raw" "$shared_id"
check "the member's copy is bit-identical" same_file "$src" "$work/shared.raw"
expect_fail "the member cannot delete it" as_member image delete "$shared_id"

if [ -n "${NUBO_BIG_IMAGE_GIB:-}" ]; then
  big=$work/big.raw
  head -c $((NUBO_BIG_IMAGE_GIB * 1024 * 1024 * 1024)) /dev/urandom > "$big"
  check "image create of ${NUBO_BIG_IMAGE_GIB} GiB" "$osc" image create --file "$big" --disk-format raw --container-format bare "big-$suffix"
  check "image save of ${NUBO_BIG_IMAGE_GIB} GiB" "$osc" image save --file "$work/big-out.raw" "big-$suffix"
  check "the ${NUBO_BIG_IMAGE_GIB} GiB image is bit-identical" same_file "$big" "$work/big-out.raw"
  rm -f "$big" "$work/big-out.raw"
  "$osc" image delete "big-$suffix" >/dev/null 2>&1
  if [ -n "${NUBO_API_PID:-}" ]; then
    echo "       API peak RSS (VmHWM): $(awk '/VmHWM/ {print $2, $3}' "/proc/$NUBO_API_PID/status")"
  fi
fi

check "image delete" "$osc" image delete "$image" "$shared"
expect_fail "deleted image is gone" "$osc" image show "$image"
"$osc" user delete "$user" >/dev/null 2>&1; "$osc" project delete "$project" >/dev/null 2>&1

echo "image-cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# Identity acceptance through the real `openstack` CLI (issue 2): every command a user would run,
# each checked for the effect a user would look for. Needs OS_CLIENT_CONFIG_FILE/OS_CLOUD for the
# cloud's admin. Prints one line per check and ends with "N passed, N failed".
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
osc=${NUBO_VENV_DIR:-$repo/.venvs}/osc/bin/openstack
: "${OS_CLIENT_CONFIG_FILE:?}" "${OS_CLOUD:=nubo}"
export OS_CLOUD
passed=0 failed=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
suffix=$$

check() { # name, command...
  local name=$1; shift
  if out=$("$@" 2>&1); then
    passed=$((passed + 1)); echo "ok     $name"
  else
    failed=$((failed + 1)); echo "FAILED $name"; echo "$out" | tail -5 | sed 's/^/       /'
  fi
}
expect_fail() { # name, command... (passes when the command fails)
  local name=$1; shift
  if "$@" >/dev/null 2>&1; then
    failed=$((failed + 1)); echo "FAILED $name (the command succeeded)"
  else
    passed=$((passed + 1)); echo "ok     $name"
  fi
}
contains() { # needle, command... (passes when the command succeeds and its output contains needle)
  local needle=$1 out; shift
  out=$("$@" 2>&1) || { echo "$out"; return 1; }
  grep -q -- "$needle" <<<"$out" || { echo "no '$needle' in: $out"; return 1; }
}

auth_url=$("$osc" configuration show -f value -c auth.auth_url)
project=accept-proj-$suffix user=accept-user-$suffix group=accept-group-$suffix domain=accept-dom-$suffix

check "token issue" "$osc" token issue
check "catalog list shows identity" contains identity "$osc" catalog list
check "project create" "$osc" project create --description first "$project"
check "project list" contains "$project" "$osc" project list
check "project set" "$osc" project set --description second "$project"
check "project show reflects set" contains second "$osc" project show -f value -c description "$project"
check "user create --password" "$osc" user create --password pw-one "$user"
check "user list" contains "$user" "$osc" user list
check "user set" "$osc" user set --email "$user@example.org" "$user"
check "user show reflects set" contains "$user@example.org" "$osc" user show -f value -c email "$user"
check "group create" "$osc" group create "$group"
check "group add user" "$osc" group add user "$group" "$user"
check "role add --project --user member" "$osc" role add --project "$project" --user "$user" member
check "role add --project --group reader" "$osc" role add --project "$project" --group "$group" reader
check "role assignment list --names --effective" \
  contains "$user@Default" "$osc" role assignment list --names --effective --project "$project"

# The user's own cloud entry.
cat > "$work/clouds.yaml" <<YAML
clouds:
  user:
    auth: {auth_url: "$auth_url", username: "$user", password: pw-one, project_name: "$project", user_domain_name: Default, project_domain_name: Default}
    identity_api_version: 3
YAML
as_user() { OS_CLIENT_CONFIG_FILE=$work/clouds.yaml OS_CLOUD=user "$osc" "$@"; }
check "user token issue" as_user token issue
check "user password set" as_user user password set --original-password pw-one --password pw-two
expect_fail "old password refused" as_user token issue
sed -i 's/password: pw-one/password: pw-two/' "$work/clouds.yaml"
check "new password accepted" as_user token issue

# Application credential, then authentication with it.
secret=$(as_user application credential create -f value -c secret "accept-ac-$suffix") || secret=""
ac_id=$(as_user application credential show -f value -c id "accept-ac-$suffix" 2>/dev/null || true)
if [ -n "$secret" ] && [ -n "$ac_id" ]; then
  passed=$((passed + 1)); echo "ok     application credential create"
else
  failed=$((failed + 1)); echo "FAILED application credential create"
fi
check "auth with the application credential" env -u OS_CLOUD -u OS_CLIENT_CONFIG_FILE "$osc" \
  --os-auth-type v3applicationcredential --os-auth-url "$auth_url" --os-identity-api-version 3 \
  --os-application-credential-id "$ac_id" --os-application-credential-secret "$secret" token issue

# Token revoke, then a failing use of that token.
token=$(as_user token issue -f value -c id)
check "token revoke" "$osc" token revoke "$token"
expect_fail "revoked token refused" env -u OS_CLOUD -u OS_CLIENT_CONFIG_FILE "$osc" \
  --os-auth-type token --os-auth-url "$auth_url" --os-identity-api-version 3 --os-token "$token" \
  --os-project-name "$project" --os-project-domain-name Default project show "$project"

check "domain create" "$osc" domain create "$domain"
check "domain list" contains "$domain" "$osc" domain list
check "domain set --disable" "$osc" domain set --disable "$domain"
check "domain shows disabled" contains False "$osc" domain show -f value -c enabled "$domain"
check "domain delete" "$osc" domain delete "$domain"
expect_fail "deleted domain is gone" "$osc" domain show "$domain"

check "user delete" "$osc" user delete "$user"
check "group delete" "$osc" group delete "$group"
check "project delete" "$osc" project delete "$project"
expect_fail "deleted project is gone" "$osc" project show "$project"

echo "identity-cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

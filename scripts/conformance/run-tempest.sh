#!/usr/bin/env bash
# Runs Tempest against a running Nubo cloud and prints its counts.
#
#   scripts/conformance/run-tempest.sh CONF_DIR REGEX [extra tempest run args...]
#
# CONF_DIR holds the tempest.conf written by tempest-conf.sh. Tempest runs from a scratch
# directory inside CONF_DIR; the subunit stream and a failure list are kept there.
set -euo pipefail
conf_dir=$(cd "${1:?usage: run-tempest.sh CONF_DIR REGEX}" && pwd)
regex=${2:?usage: run-tempest.sh CONF_DIR REGEX}
shift 2
repo=$(cd "$(dirname "$0")/../.." && pwd)
venvs=${NUBO_VENV_DIR:-$repo/.venvs}
work=$conf_dir/run
rm -rf "$work" && mkdir -p "$work"
cd "$work"
set +e
"$venvs/tempest/bin/tempest" run --config-file "$conf_dir/tempest.conf" --regex "$regex" \
  --concurrency "${TEMPEST_CONCURRENCY:-2}" "$@" > "$work/output.txt" 2>&1
rc=$?
set -e
grep -E "^ - (Passed|Failed|Skipped|Expected Fail|Unexpected Success):" "$work/output.txt" || tail -20 "$work/output.txt"
grep -E "^\{[0-9]+\} .* \.\.\. FAILED" "$work/output.txt" | sed 's/^/  /' || true
exit $rc

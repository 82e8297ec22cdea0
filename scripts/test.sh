#!/usr/bin/env bash
# The test command: installs what is missing, builds, type-checks, lints and
# runs the whole suite (unit, kernel, end-to-end), then checks that nothing
# the tests created is left behind, and that setup, this command and up.sh work
# on a minimal Debian 12 root (scripts/check-minimal-root.sh).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."

if [[ $EUID -ne 0 ]]; then
  echo "scripts/test.sh: run as root (the tests load BPF programs and create network namespaces)" >&2
  exit 1
fi

bash scripts/setup.sh
bash scripts/build.sh

echo "== typecheck"
bun x tsc --noEmit -p tsconfig.json
echo "== lint"
bun x biome check .

echo "== tests"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
bun test --timeout 120000 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

echo "== leftovers"
bun run scripts/check-leftovers.ts || status=1

echo "== minimal root"
if [[ "${PERISCOPE_TEST_IN_MINIMAL_ROOT:-}" == 1 ]]; then
  echo "minimal-root check skipped: this run is the one inside the minimal root"
else
  bash scripts/check-minimal-root.sh || status=1
fi

pass=$(grep -Eo '^ *[0-9]+ pass$' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
fail=$(grep -Eo '^ *[0-9]+ fail$' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
if [[ "$fail" != 0 ]]; then
  # Repeat each failure with the lines bun printed before it (its error), so
  # the end of the output names what failed and why.
  echo "== failures"
  # bun lists the failures again at its end; the first mention has the error.
  summary=$(grep -nE '^ *[0-9]+ tests? failed:' "$log" | head -1 | cut -d: -f1 || true)
  grep -n '^(fail)' "$log" | cut -d: -f1 | while read -r line; do
    [[ -n "$summary" && "$line" -ge "$summary" ]] && break
    echo "$line"
  done | head -10 | while read -r line; do
    from=$(( line > 40 ? line - 40 : 1 ))
    sed -n "${from},${line}p" "$log" | cut -c1-300
    echo "--"
  done || true
fi
echo "tests: ${pass} passed, ${fail} failed"
exit "$status"

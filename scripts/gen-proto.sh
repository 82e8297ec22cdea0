#!/usr/bin/env bash
# Lints proto/ and regenerates packages/proto/src/gen from it (buf.gen.yaml).
# Works from any directory; extra arguments are passed to `buf generate`
# (e.g. `-o <dir>` to generate somewhere else).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

buf="$root/node_modules/.bin/buf"
if [[ ! -x "$buf" ]]; then
  echo "gen-proto: $buf not found; run 'bun install' first" >&2
  exit 1
fi

"$buf" lint
"$buf" generate "$@"
echo "gen-proto: generated packages/proto/src/gen"

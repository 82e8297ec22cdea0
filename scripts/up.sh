#!/usr/bin/env bash
# Periscope's main job on one machine: install what is missing, build, start
# nats-server and every service, then stream live flows (like `hubble observe -f`).
#   ./scripts/up.sh                         demo topology of netns "pods"
#   ./scripts/up.sh --interfaces eth0,eth1  real host interfaces ([netns/]ifname)
# Ctrl-C stops everything and removes what it created.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."

if [[ $EUID -ne 0 ]]; then
  echo "scripts/up.sh: run as root (Periscope loads BPF programs and creates network namespaces)" >&2
  exit 1
fi

bash scripts/setup.sh
bash scripts/build.sh >&2
exec bun run scripts/up.ts "$@"

#!/usr/bin/env bash
# Build what the services need at run time: the BPF objects and the web UI (ui/dist,
# served by the observer).
# Generated protobuf code is committed; `bun run gen` regenerates it.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
bash scripts/build-bpf.sh
bun run ui/build.ts

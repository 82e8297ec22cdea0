#!/usr/bin/env bash
# Installs everything Periscope needs on a fresh Debian 12 machine (run as root).
# Idempotent: only missing pieces are installed. Quiet unless something fails;
# prints one line per thing it installed or changed.
set -euo pipefail

BUN_VERSION="1.4.5"
APT_PACKAGES=(
  clang llvm libbpf-dev libbpf1 bpftool nats-server iproute2 iputils-ping iperf3
  tshark tcpdump netcat-openbsd curl prometheus dnsutils ca-certificates dnsmasq-base jq
  docker.io docker-compose
  debootstrap git # scripts/check-minimal-root.sh: builds a Debian root, clones this repository
  nftables # tests/drops.test.ts: a firewall rule that drops packets
  openssl # tests/access.test.ts: certificates for TLS and mutual TLS
  nfdump # tests/netflow-ipfix.test.ts: nfcapd collects the IPFIX export, nfdump reads it back
  softflowd pmacct # bench/netflow.ts: the flow exporters Periscope's flow export is measured against
  ethtool # bench/mix-capture.ts: segmentation offloads off while recording the enricher bench's capture
  chromium # tests/ui.test.ts, bench/ui.ts: headless browser for the web UI (driven by playwright-core)
)
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG="$(mktemp -t periscope-setup.XXXXXX)"
trap 'rm -f "$LOG"' EXIT

# Runs a command with its output captured; on failure shows it and stops.
quiet() {
  if ! "$@" >"$LOG" 2>&1; then
    echo "setup: failed: $*" >&2
    cat "$LOG" >&2
    exit 1
  fi
}

if [[ "$(id -u)" -ne 0 ]]; then
  echo "setup: must run as root (installs packages, mounts bpffs)" >&2
  exit 1
fi

# 1. Debian packages: update the index and install only when something is missing.
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
# npm only when absent: a Node.js from elsewhere (e.g. NodeSource) bundles its own npm
# and conflicts with Debian's npm package.
command -v npm >/dev/null 2>&1 || missing+=(npm)
if ((${#missing[@]} > 0)); then
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer it up front so nothing blocks.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  quiet apt-get update
  quiet apt-get install -y --no-install-recommends "${missing[@]}"
  echo "setup: installed ${missing[*]}"
fi

# 2. Bun from the npm registry (the `bun` package carries the binary).
if [[ "$(bun --version 2>/dev/null || true)" != "$BUN_VERSION" ]]; then
  quiet npm install -g "bun@${BUN_VERSION}"
  hash -r
  if [[ "$(bun --version 2>/dev/null || true)" != "$BUN_VERSION" ]]; then
    echo "setup: bun ${BUN_VERSION} was installed but \`bun --version\` disagrees (check PATH)" >&2
    exit 1
  fi
  echo "setup: installed bun ${BUN_VERSION}"
fi

# 3. bpffs, where pinned maps and programs live.
if ! mountpoint -q /sys/fs/bpf; then
  quiet mount -t bpf bpf /sys/fs/bpf
  echo "setup: mounted bpffs at /sys/fs/bpf"
fi

# 4. The workspace's dependencies, exactly as locked.
cd "$REPO_DIR"
quiet bun install --frozen-lockfile

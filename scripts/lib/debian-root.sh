#!/usr/bin/env bash
# Prints the path of a tarball holding a minimal Debian 12 root (debootstrap
# --variant=minbase, from the apt mirror this machine uses), building it once
# and caching it between runs. Used by the minimal-root check and by the
# container tests' locally built base images.
#
#   scripts/lib/debian-root.sh            → /var/cache/periscope/debian12-minbase.tar
#   PERISCOPE_CACHE_DIR=/x scripts/lib/debian-root.sh
#
# The root carries this machine's apt sources and settings, npm registry
# settings and CA bundle, so package installs inside it reach the same
# registries this machine reaches.
set -euo pipefail

CACHE_DIR="${PERISCOPE_CACHE_DIR:-/var/cache/periscope}"
TARBALL="$CACHE_DIR/debian12-minbase.tar"
SUITE="bookworm"

# The tarball is rebuilt when this script changes (what goes into the root is decided here).
KEY="$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)"
if [[ -s "$TARBALL" && "$(cat "$TARBALL.key" 2>/dev/null || true)" == "$KEY" ]]; then
  echo "$TARBALL"
  exit 0
fi
command -v debootstrap >/dev/null || {
  echo "debian-root: debootstrap is missing (scripts/setup.sh installs it)" >&2
  exit 1
}

# The mirror this machine's apt uses (deb822 or one-line sources).
mirror="$(
  { grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'
    grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '{print $2}'
  } | grep -v security | head -1 || true
)"
mirror="${mirror:-http://deb.debian.org/debian}"

mkdir -p "$CACHE_DIR"
work="$(mktemp -d "$CACHE_DIR/build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
root="$work/root"
if ! debootstrap --variant=minbase "$SUITE" "$root" "$mirror" >"$work/log" 2>&1; then
  echo "debian-root: debootstrap $SUITE from $mirror failed:" >&2
  tail -30 "$work/log" >&2
  exit 1
fi

# Registry settings and trust of this machine, so apt and npm inside reach what it reaches.
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list \
  /etc/apt/apt.conf.d/* /etc/npmrc /usr/etc/npmrc /root/.npmrc \
  /etc/ssl/certs/ca-certificates.crt; do
  [[ -f "$f" ]] || continue
  mkdir -p "$root$(dirname "$f")"
  cp -f "$f" "$root$f"
done
if [[ -d /usr/local/share/ca-certificates ]]; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp -a /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
fi
# One list of sources: the machine's. debootstrap writes its own sources.list, which
# would name the same suite twice when the machine uses deb822 .sources files.
[[ -f /etc/apt/sources.list ]] || rm -f "$root/etc/apt/sources.list"
rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/archives/"*.deb

tar -C "$root" -cf "$work/root.tar" .
mv "$work/root.tar" "$TARBALL"
echo "$KEY" >"$TARBALL.key"
echo "$TARBALL"

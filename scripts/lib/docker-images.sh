#!/usr/bin/env bash
# Makes the images compose.yaml builds on exist in the local Docker engine without a
# registry, for machines that cannot reach Docker Hub (the compose test):
#   debian:12, debian:12-slim  imported from the cached minimal Debian root
#                              (scripts/lib/debian-root.sh: this machine's apt sources,
#                              npm settings and CA bundle)
#   <nats image>               Debian's nats-server package (tests/docker/nats.Dockerfile),
#                              tagged with the tag compose.yaml uses
# Only missing images are made; prints one line per image it made.
#
#   scripts/lib/docker-images.sh nats:2.10-alpine
#   DOCKER=/usr/bin/docker scripts/lib/docker-images.sh nats:2.10-alpine
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
docker_cli="${DOCKER:-docker}"
nats_image="${1:?usage: docker-images.sh <nats image tag>}"

has_image() { "$docker_cli" image inspect "$1" >/dev/null 2>&1; }

if ! has_image debian:12; then
  tarball="$(bash "$root/scripts/lib/debian-root.sh")"
  "$docker_cli" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["bash"]' \
    "$tarball" debian:12 >/dev/null
  echo "docker-images: imported debian:12 from $tarball"
fi
if ! has_image debian:12-slim; then
  "$docker_cli" tag debian:12 debian:12-slim
  echo "docker-images: tagged debian:12 as debian:12-slim"
fi
if ! has_image "$nats_image"; then
  # Host network: the build reaches the apt mirror the way this machine does.
  "$docker_cli" build --quiet --network host -t "$nats_image" \
    -f "$root/tests/docker/nats.Dockerfile" "$root/tests/docker" >/dev/null
  echo "docker-images: built $nats_image from Debian's nats-server"
fi

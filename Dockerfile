# One image for every Periscope service; pick the service with SERVICE (or a compose `command`).
#
# Stages, so that editing TypeScript rebuilds only the last layer: `bun` (the pinned Bun
# binary), `bpf` (the CO-RE objects), `manifests` + `deps` (node_modules, reinstalled only
# when a package.json or bun.lock changes), then the slim runtime. No `# syntax=` line:
# it would make BuildKit fetch a frontend image from a registry; the classic builder and
# BuildKit both read this file as it is.

# --- bun: Bun from the npm registry ---------------------------------------------------------
# The `bun` npm package only selects a platform package (@oven/bun-linux-<arch>) that carries
# the binary; fetching that package's tarball directly skips installing npm itself (hundreds
# of Debian packages, most of a cold build).
FROM debian:12-slim AS bun
ARG BUN_VERSION=1.4.5
ARG NPM_REGISTRY=https://registry.npmjs.org
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && case "$(dpkg --print-architecture)" in \
      amd64) arch=x64 ;; arm64) arch=aarch64 ;; \
      *) echo "no Bun build for $(dpkg --print-architecture)" >&2; exit 1 ;; \
    esac \
 && curl -fsSL "${NPM_REGISTRY}/@oven/bun-linux-${arch}/-/bun-linux-${arch}-${BUN_VERSION}.tgz" \
    | tar -xz -C /tmp \
 && install -D /tmp/package/bin/bun /opt/bun/bun \
 && rm -rf /tmp/package \
 && test "$(/opt/bun/bun --version)" = "${BUN_VERSION}"

# --- bpf: CO-RE objects; vmlinux.h comes from the build host's /sys/kernel/btf/vmlinux -------
FROM debian:12 AS bpf
RUN apt-get update \
 && apt-get install -y --no-install-recommends clang libbpf-dev bpftool \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY scripts/build-bpf.sh scripts/
COPY bpf/ bpf/
RUN bash scripts/build-bpf.sh

# --- manifests: only what `bun install` reads, so source edits keep the deps layer cached -----
FROM debian:12-slim AS manifests
COPY . /src
RUN mkdir /manifests \
 && cd /src \
 && find . -name node_modules -prune -o \
      \( -name package.json -o -name bun.lock -o -name bunfig.toml \) -print \
    | xargs cp --parents -t /manifests

# --- deps: production node_modules, exactly as locked ----------------------------------------
FROM debian:12-slim AS deps
COPY --from=bun /opt/bun/bun /usr/local/bin/bun
WORKDIR /app
COPY --from=manifests /manifests/ ./
RUN bun install --frozen-lockfile --production

# --- runtime: libbpf (loaded through bun:ffi), iproute2 (`ip -n` for netns discovery) ---------
FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libbpf1 iproute2 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=bun /opt/bun/bun /usr/local/bin/bun
WORKDIR /app
COPY --from=deps /app/node_modules/ node_modules/
COPY --from=bpf /src/bpf/build/*.bpf.o bpf/build/
COPY . .
# The web UI the observer serves (ui/dist), bundled from the sources just copied.
RUN bun run ui/build.ts
ENV SERVICE=collector
# exec so the service is PID 1's direct replacement and receives SIGTERM itself.
CMD ["sh", "-c", "exec bun run services/${SERVICE}/src/main.ts"]

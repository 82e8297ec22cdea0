# syntax=docker/dockerfile:1
# One image for every Periscope service; pick the service with SERVICE (or a compose `command`).

# --- build: toolchain, Bun, dependencies, BPF objects ------------------------------------
FROM debian:12 AS build
ARG BUN_VERSION=1.4.5
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      clang llvm libbpf-dev bpftool npm ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && npm install -g "bun@${BUN_VERSION}" \
 && cp "$(readlink -f "$(command -v bun)")" /usr/local/bin/bun.real
WORKDIR /app
# Dependencies first so the layer is reused while only sources change.
COPY package.json bun.lock bunfig.toml ./
COPY packages/ packages/
COPY services/ services/
COPY cli/ cli/
RUN bun install --frozen-lockfile --production
COPY . .
# CO-RE objects; vmlinux.h comes from the build host's /sys/kernel/btf/vmlinux.
RUN bash scripts/build.sh

# --- runtime: libbpf, Bun, the built tree -------------------------------------------------
FROM debian:12-slim
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends libbpf1 iproute2 curl ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/bun.real /usr/local/bin/bun
COPY --from=build /app /app
WORKDIR /app
ENV SERVICE=collector
# exec so the service is PID 1's direct replacement and receives SIGTERM itself.
CMD ["sh", "-c", "exec bun run services/${SERVICE}/src/main.ts"]

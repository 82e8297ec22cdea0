# Stand-in for the official NATS image when Docker Hub is out of reach: Debian's
# nats-server with the same entrypoint behaviour (arguments starting with "-" go to
# nats-server) and wget for compose.yaml's healthcheck.
FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends nats-server wget \
 && rm -rf /var/lib/apt/lists/*
EXPOSE 4222 8222
ENTRYPOINT ["nats-server"]

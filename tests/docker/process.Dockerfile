# Image of the process-in-container test (tests/process-docker.test.ts): curl as the
# client, busybox httpd as the server, on the locally imported Debian root.
FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl busybox \
 && rm -rf /var/lib/apt/lists/*

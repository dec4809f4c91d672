# syntax=docker/dockerfile:1
#
# rtcv_scraper_client as a container image: `deno task compile` builds one self-contained binary, which runs as
# the unprivileged user `deno` with the reference cache (and the outbox) on a volume.
#
#   docker build -t rtcv_scraper_client .
#   docker run -i --rm -v rtcv-cache:/data rtcv_scraper_client < session.jsonl
#
# The scraper talks to it over stdin/stdout, so run it with -i. The health check server listens on
# 127.0.0.1 inside the container; to probe it from outside set RTCV_SCRAPER_CLIENT_HEALTH_CHECK_PORT and
# RTCV_SCRAPER_CLIENT_HEALTH_CHECK_HOST=0.0.0.0 and publish the port.

# The Deno release the project is tested with (.ci/run pins the same one; tests/compile_test.ts checks it).
ARG DENO_VERSION=2.9.6

# ---------------------------------------------------------------------------------------------------------
# Build stage: the Debian (glibc) image. `deno compile` puts the program into denort, which is built for
# x86_64/aarch64-unknown-linux-gnu, so the binary is a glibc program whichever image builds it.
FROM denoland/deno:debian-${DENO_VERSION} AS build
WORKDIR /app
# Dependencies first (npm packages pinned by deno.lock), so a source change does not fetch them again.
COPY deno.json deno.lock ./
RUN deno install --frozen
COPY main.ts ./
COPY src/ ./src/
COPY scripts/ ./scripts/
# Writes /app/rtcv_scraper_client with the permission set of the compile task (see deno.json); the task's
# check step (scripts/check_binary.ts) fails the build unless the binary answers a ping with pong.
RUN deno task compile \
  && printf '{"type":"ping"}\n' | RTCV_SCRAPER_CLIENT_KV=:memory: ./rtcv_scraper_client | grep -q '"pong"'

# ---------------------------------------------------------------------------------------------------------
# Runtime stage: Deno's Alpine image. Alpine is musl-based, but this image carries glibc (copied from
# distroless/cc), the glibc loader under /lib64 (/lib on arm64), tini, and the user `deno` (uid 1000).
#
# Its glibc lives apart, in /usr/local/lib/glibc, and only the image's own /bin/deno and /tini find it: they
# are patched with an RPATH to it (older images put the libraries in /usr/local/lib and set LD_LIBRARY_PATH
# instead). Our binary has no such RPATH, so on its own it would fail with "libdl.so.2: cannot open shared
# object file". Setting LD_LIBRARY_PATH for the whole image would also make musl programs (apk and friends)
# load glibc builds of libraries like libcrypto. Instead we link the directory where Debian's glibc loader
# looks by default, /usr/lib/<arch>-linux-gnu (its "system search path"), to the glibc libraries: musl's
# loader never searches there, so only glibc programs see them. The RUN below proves it by running the
# binary; the build fails if it cannot start.
FROM denoland/deno:alpine-${DENO_VERSION}
COPY --from=build /app/rtcv_scraper_client /bin/rtcv_scraper_client
RUN set -eu; \
  for dir in /usr/local/lib/glibc /usr/local/lib; do \
    if [ -e "$dir/libc.so.6" ]; then ln -s "$dir" "/usr/lib/$(uname -m)-linux-gnu"; break; fi; \
  done; \
  printf '{"type":"ping"}\n' | RTCV_SCRAPER_CLIENT_KV=:memory: /bin/rtcv_scraper_client | grep -q '"pong"'; \
  mkdir -p /data; \
  chown deno:deno /data

# The store (reference cache and outbox) and, when enabled, the logs go to /data, kept on a volume so they
# survive a new container. The ownership is set before VOLUME: changes after it would be discarded.
ENV RTCV_SCRAPER_CLIENT_KV=/data/rtcv_scraper_client.kv
WORKDIR /data
VOLUME /data
USER deno

# tini passes SIGTERM on to the client, which then answers what is in flight, closes the store and exits 0.
ENTRYPOINT ["/tini", "--", "/bin/rtcv_scraper_client"]

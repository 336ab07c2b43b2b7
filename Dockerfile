# syntax=docker/dockerfile:1
# Build: docker build -t wxpush .            (podman: podman build --format docker -t wxpush .)
# Run:   docker run -p 8080:8080 -v wxpush-data:/data \
#          -e WXPUSH_TOKEN=... -e WXPUSH_ENCODING_AES_KEY=... -e WXPUSH_APPID=... wxpush
#
# The build stage copies the whole source tree (see .dockerignore) and keeps cargo's
# registry and target directory in build caches: dependencies are compiled once and reused
# by later builds, and no hand-written copy of the manifest's targets can drift from it.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=symbols \
    cargo build --release --locked --bin wxpush \
 && cp target/release/wxpush /usr/local/bin/wxpush

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin wxpush \
 && mkdir -p /data && chown wxpush /data
COPY --from=build /usr/local/bin/wxpush /usr/local/bin/wxpush
USER wxpush
WORKDIR /data
# Health, readiness and metrics on their own port, off the public one.
ENV WXPUSH_LISTEN=0.0.0.0:8080 \
    WXPUSH_ADMIN_LISTEN=0.0.0.0:9090 \
    WXPUSH_DATA_DIR=/data \
    WXPUSH_LOG_FORMAT=json
EXPOSE 8080 9090
VOLUME ["/data"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
  CMD ["wxpush", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["wxpush"]
CMD ["serve"]

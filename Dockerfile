# syntax=docker/dockerfile:1
# Build: docker build -t wxpush .
# Run:   docker run -p 8080:8080 -v wxpush-data:/data \
#          -e WXPUSH_TOKEN=... -e WXPUSH_ENCODING_AES_KEY=... -e WXPUSH_APPID=... wxpush

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first, in their own layer: rebuilt only when Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src examples tests/api benches \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && echo 'fn main() {}' > examples/custom_handler.rs && touch tests/api/main.rs \
 && cargo build --release --locked --bin wxpush \
 && rm -rf src examples tests
COPY config ./config
COPY src ./src
COPY examples ./examples
COPY tests ./tests
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin wxpush

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin wxpush \
 && mkdir -p /data && chown wxpush /data
COPY --from=build /src/target/release/wxpush /usr/local/bin/wxpush
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

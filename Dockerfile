# driftwatch as a container: a build stage with the Rust toolchain, then a slim runtime
# image that runs the binary as an unprivileged user.
#
#   docker build -t driftwatch .
#   docker run --rm -v $PWD/examples/quickstart:/etc/driftwatch:ro driftwatch \
#       scan --config /etc/driftwatch/driftwatch.toml

FROM rust:1.91-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p driftwatch --bin driftwatch \
 && strip target/release/driftwatch

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin driftwatch \
 && install -d -o 10001 -g 10001 /var/lib/driftwatch
COPY --from=build /src/target/release/driftwatch /usr/local/bin/driftwatch
COPY policies /usr/share/driftwatch/policies
USER 10001:10001
WORKDIR /var/lib/driftwatch
# /healthz, /readyz, /metrics, /findings (set [agent] listen = "0.0.0.0:9464" to expose it).
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/driftwatch"]
CMD ["agent", "--config", "/etc/driftwatch/driftwatch.toml"]

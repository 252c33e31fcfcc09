# vigil: build with the Rust toolchain, run on a small Debian base as a non-root user.
#   docker build -t vigil .
#   docker run -p 8080:8080 -p 9901:9901 -v $PWD/config:/etc/vigil:ro vigil
# The control plane listens on 127.0.0.1 by default; the image's config below opens it on
# 0.0.0.0 only because a container's loopback is private. Set VIGIL_ADMIN_TOKEN in production.

FROM rust:1-bookworm AS build
WORKDIR /src
# Build dependencies first so source edits don't rebuild them.
COPY Cargo.toml Cargo.lock ./
COPY loadtest/Cargo.toml loadtest/Cargo.toml
RUN mkdir -p src benches loadtest/src \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && echo 'fn main() {}' > benches/hot_path.rs \
 && echo 'fn main() {}' > loadtest/src/main.rs && touch loadtest/src/lib.rs \
 && cargo build --release --bin vigil \
 && rm -rf src benches loadtest/src
COPY src src
COPY benches benches
COPY loadtest/src loadtest/src
COPY config config
RUN touch src/main.rs src/lib.rs loadtest/src/lib.rs && cargo build --release --bin vigil

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/vigil --create-home vigil
COPY --from=build /src/target/release/vigil /usr/local/bin/vigil
COPY config/vigil.toml /etc/vigil/vigil.toml
USER 10001
WORKDIR /var/lib/vigil
ENV VIGIL_CONFIG=/etc/vigil/vigil.toml
EXPOSE 8080 9901
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/vigil", "healthcheck", "--admin", "127.0.0.1:9901"]
ENTRYPOINT ["/usr/local/bin/vigil"]
CMD ["run", "--config", "/etc/vigil/vigil.toml", "--admin-listen", "0.0.0.0:9901", "--state-dir", "/var/lib/vigil"]

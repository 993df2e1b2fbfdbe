# heal8s: a static binary on distroless, non-root.
#   docker build -t heal8s:dev .
#   docker run --rm -p 8080:8080 -e HEAL8S_WEBHOOK_TOKEN=dev-token heal8s:dev serve --no-cluster
# (Not built in this repository's CI: no Docker engine runs there.)
FROM rust:1.95.0-bookworm AS build
RUN rustup target add x86_64-unknown-linux-musl \
 && apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --target x86_64-unknown-linux-musl -p receiver --bin heal8s

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/heal8s /usr/local/bin/heal8s
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/heal8s"]
CMD ["serve"]

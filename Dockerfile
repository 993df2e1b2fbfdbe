# heal8s: one static binary FROM scratch, run as UID 65532 on a read-only root.
#
# The binary is built outside (no base image is pulled, no toolchain in the
# image): `make image` builds it for x86_64-unknown-linux-musl, stages the
# build context in target/image/context and builds this file with podman (vfs
# storage, no daemon); the release workflow does the same per architecture.
# Context layout:
#   dist/<TARGETARCH>/heal8s     the static binary (amd64, arm64)
#   dist/ca-certificates.crt     Debian's CA bundle, for GitHub's TLS (the
#                                Kubernetes API's CA comes from the
#                                ServiceAccount mount)
# By hand: podman build --platform linux/amd64 -f Dockerfile target/image/context
# (`docker buildx build` reads it the same way).
FROM scratch
ARG TARGETARCH
COPY --chmod=0555 dist/${TARGETARCH}/heal8s /usr/local/bin/heal8s
COPY --chmod=0444 dist/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/heal8s"]
CMD ["serve"]
LABEL org.opencontainers.image.source="https://github.com/heal8s/heal8s" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.description="heal8s: self-healing for Kubernetes clusters"

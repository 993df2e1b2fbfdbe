#!/usr/bin/env bash
# The heal8s container image, built without a daemon (run by `make image`).
#
#   scripts/image.sh            build the static binary, run it (--version),
#                               build the image FROM scratch with podman (vfs
#                               storage), run --version in it as UID 65532 on a
#                               read-only root filesystem, check its config
#   scripts/image.sh archive    the same, then save it as a docker-archive
#                               (target/image/heal8s-image.tar) for
#                               `kind load image-archive`
#
# Settings (environment):
#   IMAGE          the reference to tag (default: the chart's default,
#                  ghcr.io/heal8s/heal8s:<Chart.yaml appVersion>)
#   IMAGE_PROFILE  cargo profile (default release; CI uses `image`, see Cargo.toml)
#   IMAGE_TARGET   x86_64-unknown-linux-musl (default) or x86_64-unknown-linux-gnu
#                  (fully static glibc, -C target-feature=+crt-static). Without
#                  IMAGE_TARGET set, a musl target that rustup cannot install
#                  falls back to static glibc, and says so.
#   IMAGE_RUN      1 (default): run --version inside the image; 0: config checks only
#   IMAGE_PODMAN_ROOT  keep podman's image storage in this directory (default:
#                  podman's own); CI sets it to target/podman
# Needs: rustup's target for IMAGE_TARGET, musl-tools (musl-gcc, for ring's C
# code), podman and runc (Debian), ca-certificates (the bundle the image carries).
set -euo pipefail
cd "$(dirname "$0")/.."

MODE="${1:-build}"
VERSION="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' charts/heal8s/Chart.yaml)"
IMAGE="${IMAGE:-ghcr.io/heal8s/heal8s:${VERSION}}"
PROFILE="${IMAGE_PROFILE:-release}"
TARGET_DIR="${IMAGE_TARGET_DIR:-target/image}"
CONTEXT="$TARGET_DIR/context"
UID_GID="65532:65532"
CA_BUNDLE="/etc/ssl/certs/ca-certificates.crt"
# vfs: no overlay mounts or fuse needed; works as root in a VM or container
PODMAN=(podman --storage-driver vfs)
# IMAGE_PODMAN_ROOT: podman's storage in this directory instead of its
# default (CI keeps it beside the build, on the disk it just freed)
if [ -n "${IMAGE_PODMAN_ROOT:-}" ]; then
  mkdir -p "$IMAGE_PODMAN_ROOT/storage" "$IMAGE_PODMAN_ROOT/run"
  PODMAN+=(--root "$IMAGE_PODMAN_ROOT/storage" --runroot "$IMAGE_PODMAN_ROOT/run")
fi
# the runtime's default rlimits (nofile 1048576, nproc) may exceed what this
# machine lets a process raise, and crun refuses hybrid cgroups: runc with
# explicit limits runs everywhere we tried
RUN_OPTS=(--runtime runc --rm --read-only --network none --user "$UID_GID"
          --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

say() { printf 'image: %s\n' "$*"; }

TARGET="${IMAGE_TARGET:-x86_64-unknown-linux-musl}"
if ! rustup target list --installed | grep -qx "$TARGET"; then
  say "installing the Rust target $TARGET (rustup target add)"
  if ! rustup target add "$TARGET"; then
    if [ -z "${IMAGE_TARGET:-}" ] && [ "$TARGET" = x86_64-unknown-linux-musl ]; then
      TARGET=x86_64-unknown-linux-gnu
      say "WARNING: the musl target cannot be installed here; building a fully static glibc binary instead"
    else
      say "cannot install the Rust target $TARGET"; exit 1
    fi
  fi
fi

case "$TARGET" in
  x86_64-unknown-linux-musl)
    export CC_x86_64_unknown_linux_musl="${CC_x86_64_unknown_linux_musl:-musl-gcc}"
    command -v musl-gcc >/dev/null || { say "musl-gcc is missing: apt-get install musl-tools"; exit 1; }
    ;;
  x86_64-unknown-linux-gnu)
    # with --target given, these flags reach only the target's crates, not
    # build scripts or proc macros
    export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static"
    ;;
  *) say "unsupported IMAGE_TARGET $TARGET"; exit 1 ;;
esac

say "cargo build --profile $PROFILE --target $TARGET -p receiver --bin heal8s"
start=$(date +%s)
cargo build --locked --profile "$PROFILE" --target "$TARGET" --target-dir "$TARGET_DIR" -p receiver --bin heal8s
say "binary built in $(( $(date +%s) - start ))s"
BIN="$TARGET_DIR/$TARGET/$PROFILE/heal8s"

# statically linked: no program interpreter, no shared libraries
if readelf -lW "$BIN" | grep -q 'Requesting program interpreter' || readelf -dW "$BIN" | grep -q '(NEEDED)'; then
  say "$BIN is not statically linked"; readelf -dW "$BIN" | grep NEEDED || true; exit 1
fi
say "static binary: $(stat -c %s "$BIN") bytes; it says: $("$BIN" --version)"

[ -r "$CA_BUNDLE" ] || { say "$CA_BUNDLE is missing: apt-get install ca-certificates"; exit 1; }
rm -rf "$CONTEXT" && mkdir -p "$CONTEXT/dist/amd64"
cp "$BIN" "$CONTEXT/dist/amd64/heal8s"
cp "$CA_BUNDLE" "$CONTEXT/dist/ca-certificates.crt"

say "podman build -t $IMAGE (FROM scratch, vfs storage)"
"${PODMAN[@]}" build --quiet --no-cache --platform linux/amd64 -f Dockerfile -t "$IMAGE" "$CONTEXT" >/dev/null

# the built image's config: non-root numeric user, entrypoint, size
read -r user entrypoint size <<<"$("${PODMAN[@]}" image inspect "$IMAGE" \
  --format '{{.Config.User}} {{join .Config.Entrypoint ","}} {{.Size}}')"
[ "$user" = "$UID_GID" ] || { say "image user is '$user', want $UID_GID"; exit 1; }
[ "$entrypoint" = /usr/local/bin/heal8s ] || { say "image entrypoint is '$entrypoint'"; exit 1; }
say "$IMAGE: user $user, entrypoint $entrypoint, $size bytes ($(( size / 1024 / 1024 )) MiB)"

if [ "${IMAGE_RUN:-1}" = 1 ]; then
  out="$("${PODMAN[@]}" run "${RUN_OPTS[@]}" "$IMAGE" --version)"
  say "podman run (UID ${UID_GID%%:*}, read-only root): $out"
  [ "$out" = "$("$BIN" --version)" ] || { say "the image's --version differs from the binary's"; exit 1; }
fi

if [ "$MODE" = archive ]; then
  rm -f "$TARGET_DIR/heal8s-image.tar"
  "${PODMAN[@]}" save --format docker-archive -o "$TARGET_DIR/heal8s-image.tar" "$IMAGE"
  say "saved $TARGET_DIR/heal8s-image.tar: kind load image-archive $TARGET_DIR/heal8s-image.tar"
fi

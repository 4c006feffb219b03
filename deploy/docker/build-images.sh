#!/usr/bin/env bash
# Builds the container images baton-controller:$TAG and baton-agent:$TAG
# (TAG defaults to "dev") on a machine with NO image registry.
#
# No base image can be pulled here, so the images are assembled from the
# project's own release binaries: each image's root filesystem holds the
# binaries, exactly the shared libraries `ldd` lists for them (glibc, libm,
# libgcc_s), the dynamic loader, /etc/passwd and /etc/group naming a non-root
# user (uid/gid 65532, "nonroot", as in distroless), and an empty
# /var/lib/baton owned by that user. deploy/docker/Dockerfile.scratch then
# builds `FROM scratch` (which needs no pull) by copying that folder.
#
# A statically linked musl build would make the libraries unnecessary, but
# this machine's toolchain has only the x86_64-unknown-linux-gnu target and
# rustup cannot download another, so the glibc the binaries were linked
# against is copied instead. The images therefore carry the build host's
# glibc (Debian bookworm's here), which is what the binaries need.
#
# Users WITH a registry can use deploy/docker/Dockerfile instead (a
# conventional multi-stage build on rust:1.95 and distroless/cc); it is not
# used on this machine.
#
# Environment:
#   TAG=dev               image tag
#   BATON_SKIP_CARGO=1    use target/release as it is (no cargo build)
#   CARGO_TARGET_DIR      honoured, like cargo does
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/deploy/docker"
TAG=${TAG:-dev}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN_DIR="$TARGET_DIR/release"

log() { printf '[build-images] %s\n' "$*" >&2; }
die() { printf '[build-images] ERROR: %s\n' "$*" >&2; exit 1; }

command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "the Docker engine is not reachable (docker info failed)"

# 1. Release binaries. cargo only rebuilds what changed; building just the
#    three packages keeps the test crates (and their build time) out of it.
if [[ "${BATON_SKIP_CARGO:-0}" != 1 ]]; then
  log "cargo build --release (baton-controller, baton-agent, batonctl)"
  (cd "$ROOT" && cargo build --release --locked -p baton-controller -p baton-agent -p batonctl --bins)
fi
for b in baton-controller baton-agent batonctl; do
  [[ -x "$BIN_DIR/$b" ]] || die "$BIN_DIR/$b is missing (run without BATON_SKIP_CARGO=1)"
done

# 2. One root filesystem per image, in a temporary build context.
CTX=$(mktemp -d "${TMPDIR:-/tmp}/baton-images.XXXXXX")
trap 'rm -rf "$CTX"' EXIT

# copy_with_libs ROOTFS BINARY...: the binaries (debug info stripped: the
# release profile keeps line tables, which triple the size; the symbol table
# stays so panics still name functions), then every library ldd resolves and
# the ELF interpreter, each at the path the loader will look for it.
copy_with_libs() {
  local rootfs=$1; shift
  mkdir -p "$rootfs/usr/local/bin"
  local b lib
  for b in "$@"; do
    objcopy --strip-debug "$BIN_DIR/$b" "$rootfs/usr/local/bin/$b"
    # ldd lines: "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and
    # "/lib64/ld-linux-x86-64.so.2 (0x...)"; linux-vdso has no file.
    while read -r lib; do
      [[ -n "$lib" ]] || continue
      mkdir -p "$rootfs$(dirname "$lib")"
      cp -L "$lib" "$rootfs$lib"
    done < <(ldd "$BIN_DIR/$b" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
  done
}

# base_files ROOTFS: users, name resolution, a writable /tmp and the state dir.
base_files() {
  local rootfs=$1
  mkdir -p "$rootfs/etc" "$rootfs/tmp" "$rootfs/var/lib"
  chmod 1777 "$rootfs/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$rootfs/etc/group"
  # glibc >= 2.34 has the files and dns NSS modules built in; this only
  # states the order. Docker and Kubernetes mount /etc/hosts and resolv.conf.
  printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
}

log "assembling root filesystems in $CTX"
# state/baton becomes /var/lib/baton, owned by 65532 (Dockerfile.scratch).
mkdir -p "$CTX/controller" "$CTX/agent" "$CTX/state/baton"
base_files "$CTX/controller"
base_files "$CTX/agent"
# batonctl rides in the controller image: `docker exec <controller> batonctl`
# and the compose health check use it.
copy_with_libs "$CTX/controller" baton-controller batonctl
copy_with_libs "$CTX/agent" baton-agent
cp "$HERE/Dockerfile.scratch" "$CTX/Dockerfile"

# 3. The images. The legacy builder is all this engine has; FROM scratch
#    needs no registry.
REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
for component in controller agent; do
  log "docker build baton-$component:$TAG"
  # (stderr kept aside: the legacy builder prints a deprecation banner)
  if ! docker build --quiet --target "$component" --build-arg "REVISION=$REV" \
      -t "baton-$component:$TAG" "$CTX" >"$CTX/build.log" 2>&1; then
    cat "$CTX/build.log" >&2
    die "docker build of baton-$component:$TAG failed"
  fi
done
# Rebuilding leaves the previous images untagged: drop those of ours only.
for component in controller agent; do
  docker image prune -f --filter "label=org.opencontainers.image.title=baton-$component" >/dev/null || true
done
docker image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep -E "^baton-(controller|agent):$TAG " >&2

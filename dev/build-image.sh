#!/usr/bin/env bash
# Builds a container image with podman (no Docker engine needed) around a binary built here.
#
#   dev/build-image.sh ferry|operator [BINARY] [TAG]
#
# BINARY defaults to target/release/<name> (built with `cargo build --release` if missing);
# TAG defaults to localhost/ferry[-operator]:dev. The image is FROM scratch: the binary, the
# glibc libraries `ldd` lists, and /etc/passwd with the non-root user 65532. It runs with a
# read-only root filesystem. Prints the image size.
set -euo pipefail
cd "$(dirname "$0")/.."

kind="${1:?usage: dev/build-image.sh ferry|operator [BINARY] [TAG]}"
case "$kind" in
  ferry) bin_name=ferry; image=ferry ;;
  operator) bin_name=ferry-operator; image=ferry-operator ;;
  *) echo "build-image: unknown image $kind (ferry or operator)" >&2; exit 2 ;;
esac
binary="${2:-target/release/$bin_name}"
tag="${3:-localhost/$image:dev}"
if [ ! -x "$binary" ]; then
  cargo build --release --bin "$bin_name"
fi

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
rootfs="$stage/rootfs"
mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc" "$rootfs/tmp"
cp "$binary" "$rootfs/usr/local/bin/$bin_name"
strip "$rootfs/usr/local/bin/$bin_name" 2>/dev/null || true
for lib in $(ldd "$binary" | grep -o '/[^ ]*'); do
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
done
printf 'root:x:0:0::/:/nonexistent\nnonroot:x:65532:65532::/tmp:/nonexistent\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$rootfs/etc/group"
chmod 1777 "$rootfs/tmp"
cp "images/$kind.Containerfile" "$stage/Containerfile"

# IMAGE_ENGINE=docker builds with Docker (the kind suite); podman, the default, needs no daemon,
# and these settings let it run inside an unprivileged sandbox too.
engine="${IMAGE_ENGINE:-podman}"
case "$engine" in
  docker)
    docker build --quiet --tag "$tag" "$stage" >/dev/null
    size=$(docker image inspect --format '{{.Size}}' "$tag") ;;
  podman)
    conf="$stage/containers.conf"
    printf '[containers]\ndefault_ulimits = []\n' > "$conf"
    CONTAINERS_CONF="$conf" podman --runtime runc --cgroup-manager=cgroupfs \
      build --quiet --tag "$tag" "$stage" >/dev/null
    size=$(podman image inspect --format '{{.Size}}' "$tag") ;;
  *) echo "build-image: IMAGE_ENGINE must be podman or docker, not $engine" >&2; exit 2 ;;
esac
echo "built $tag: $((size / 1024 / 1024)) MiB ($size bytes)"

#!/usr/bin/env bash
# Builds the Dockerfile for real without a Docker engine, with buildah (vfs storage, chroot
# isolation, no registry), then smoke-tests the image. Opt-in and slow (a full C++ build under
# vfs); not part of scripts/test-packaging.sh. Run as root on Debian 12:
#
#   bash scripts/build-image.sh            # -> localhost/retryd:dev
#   bash scripts/build-image.sh --clean    # ... then remove every buildah container and image
#
# The base image is made locally: debootstrap --variant=minbase bookworm (the same package set
# as debian:bookworm-slim), committed as localhost/debian:bookworm-slim and passed as
# --build-arg BASE=..., so nothing is pulled from a registry. It is made once and reused.
# IMAGE=name:tag overrides the tag; BASE_ROOTFS=dir uses an existing debootstrap tree instead
# of running debootstrap.
set -euo pipefail
cd "$(dirname "$0")/.."

image="${IMAGE:-localhost/retryd:dev}"
base="localhost/debian:bookworm-slim"
clean=0
[ "${1:-}" = "--clean" ] && clean=1
# A storage of its own, with the vfs driver (no overlay mounts needed): no clash with other
# buildah/podman users of the machine. STORAGE_ROOT overrides it.
root="${STORAGE_ROOT:-/var/lib/containers/retryd-vfs}"
buildah() { command buildah --root "$root" --runroot "/run/retryd-vfs" --storage-driver vfs "$@"; }
export BUILDAH_ISOLATION=chroot

need=()
command -v buildah >/dev/null || need+=(buildah)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ "${#need[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

t0=$(date +%s)
step() { echo "== build-image: $* ($(($(date +%s) - t0)) s)"; }

if ! buildah images --quiet "$base" >/dev/null 2>&1; then
  step "making $base with debootstrap --variant=minbase bookworm"
  rootfs="$(mktemp -d /var/tmp/retryd-rootfs.XXXXXX)"
  trap 'rm -rf "$rootfs"' EXIT
  if [ -n "${BASE_ROOTFS:-}" ]; then
    cp -a "$BASE_ROOTFS"/. "$rootfs"/
  else
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
  fi
  # The same apt sources as the official image (point releases and security updates), no caches.
  rm -f "$rootfs/etc/apt/sources.list"
  cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<'SOURCES'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  ctr="$(buildah from scratch)"
  mnt="$(buildah mount "$ctr")"
  cp -a "$rootfs"/. "$mnt"/
  buildah umount "$ctr" >/dev/null
  buildah config --cmd /bin/bash "$ctr"
  buildah commit --quiet "$ctr" "$base" >/dev/null
  buildah rm "$ctr" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
fi

step "buildah bud -> $image"
buildah bud --pull-never --isolation chroot --layers --format docker \
  --build-arg BASE="$base" -t "$image" -f Dockerfile .

step "smoke test"
ctr="$(buildah from --pull-never "$image")"
trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
run() { buildah run --isolation chroot --user 10001:10001 "$ctr" -- "$@"; }
run /usr/local/bin/retryd --help
run /usr/local/bin/retryctl --version
# Every library both binaries need resolves inside the image.
if run sh -c 'ldd /usr/local/bin/retryd /usr/local/bin/retryctl' | grep 'not found'; then
  echo "build-image: the runtime image lacks libraries (above)" >&2
  exit 1
fi
# The image's default arguments pass validation, and the HEALTHCHECK command sees SERVING from a
# real server started with them (the chroot shares the host's network; use a free port).
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
run /usr/local/bin/retryd --check-config --grpc-addr=0.0.0.0:50051 --metrics-addr=0.0.0.0:9464 --data-dir=/data \
  --insecure-allow-remote >/dev/null
run sh -c "/usr/local/bin/retryd --grpc-addr=127.0.0.1:$port --metrics-addr=127.0.0.1:0 --data-dir=/data & pid=\$!;
  ok=1; for i in \$(seq 50); do
    if /usr/local/bin/retryctl --server 127.0.0.1:$port --timeout 2s health; then ok=0; break; fi
    sleep 0.2; done
  kill -TERM \$pid; wait \$pid; rc=\$?; echo \"retryd exited \$rc after SIGTERM\"; [ \$ok = 0 ] && [ \$rc = 0 ]"
buildah inspect --format '{{.Docker.Config.Healthcheck}} {{.OCIv1.Config.User}} {{.OCIv1.Config.Entrypoint}} {{.OCIv1.Config.Cmd}} {{.OCIv1.Config.StopSignal}}' "$image"
buildah rm "$ctr" >/dev/null
trap - EXIT
buildah images "$image"

if [ "$clean" = 1 ]; then
  step "cleaning up"
  buildah rm --all >/dev/null
  buildah rmi --all --force >/dev/null
fi
step "done"

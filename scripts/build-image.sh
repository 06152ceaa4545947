#!/usr/bin/env bash
# Builds the Dockerfile for real without a Docker engine, with buildah (vfs storage, chroot
# isolation, no registry), then smoke-tests the image. CI runs it from scripts/test-packaging.sh
# (with --clean, under a timeout); RETRYD_SKIP_IMAGE=1 skips it there. Run as root on Debian 12:
#
#   bash scripts/build-image.sh              # -> localhost/retryd:dev
#   bash scripts/build-image.sh --clean      # ... then remove every container and image it made
#   bash scripts/build-image.sh --clean-only # only that (after an interrupted build)
#
# The base image is made locally: debootstrap --variant=minbase bookworm (the same package set
# as debian:bookworm-slim), committed as localhost/debian:bookworm-slim and passed as
# --build-arg BASE=..., so nothing is pulled from a registry. It is the one thing cached between
# runs: made once per machine (about 5 minutes; a fresh machine makes it from scratch) in this
# script's own storage, kept by --clean; remove the storage directory to remake it. Everything
# else (the builder's packages, the C++ build, the unit tests) is built anew on every run.
# IMAGE=name:tag overrides the tag; BASE_ROOTFS=dir uses an existing debootstrap tree instead
# of running debootstrap; LAYERS=1 keeps buildah's per-instruction layer cache (faster re-runs
# while editing, but under vfs every layer is a full copy of the file system, so a cold build is
# slower and the storage grows by gigabytes).
set -euo pipefail
cd "$(dirname "$0")/.."

image="${IMAGE:-localhost/retryd:dev}"
base="localhost/debian:bookworm-slim"
clean=0
case "${1:-}" in
  --clean) clean=1 ;;
  --clean-only) clean=2 ;;
  "") ;;
  *) echo "usage: $0 [--clean|--clean-only]" >&2; exit 2 ;;
esac
# A storage of its own, with the vfs driver (no overlay mounts needed): no clash with other
# buildah/podman users of the machine. STORAGE_ROOT overrides it.
root="${STORAGE_ROOT:-/var/lib/containers/retryd-vfs}"
# Named bah, not buildah: a function named after the program would hide a missing program from
# `command -v` (that once kept buildah from being installed on a new machine).
bah() { buildah --root "$root" --runroot "/run/retryd-vfs" --storage-driver vfs "$@"; }
export BUILDAH_ISOLATION=chroot

t0=$(date +%s)
step() { echo "== build-image: $* ($(($(date +%s) - t0)) s)"; }

# Removes every working container and every image of this storage except the base image.
clean_up() {
  bah rm --all >/dev/null 2>&1 || true
  local keep id
  keep="$(bah images --quiet --no-trunc "$base" 2>/dev/null || true)"
  for id in $(bah images --all --quiet --no-trunc 2>/dev/null | sort -u); do
    [ "$id" = "$keep" ] || bah rmi --force "$id" >/dev/null 2>&1 || true
  done
}
if [ "$clean" = 2 ]; then
  clean_up
  bah images
  exit 0
fi
rootfs=""
ctr=""
work="$(mktemp -d)"
on_exit() {
  local rc=$?
  [ -z "$rootfs" ] || rm -rf "$rootfs"
  [ -z "$ctr" ] || bah rm "$ctr" >/dev/null 2>&1 || true
  if [ "$clean" = 1 ]; then
    step "cleaning up"
    clean_up
  fi
  rm -rf "$work"
  exit "$rc"
}
trap on_exit EXIT

bash scripts/install-deps.sh image
# type -P finds programs only (never a function or an alias of this shell).
for tool in buildah debootstrap python3 curl; do
  type -P "$tool" >/dev/null || { echo "build-image: $tool is missing after install-deps.sh image" >&2; exit 1; }
done

if ! bah images --quiet "$base" >/dev/null 2>&1; then
  step "making $base with debootstrap --variant=minbase bookworm"
  rootfs="$(mktemp -d /var/tmp/retryd-rootfs.XXXXXX)"
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
  ctr="$(bah from scratch)"
  mnt="$(bah mount "$ctr")"
  cp -a "$rootfs"/. "$mnt"/
  bah umount "$ctr" >/dev/null
  bah config --cmd /bin/bash "$ctr"
  bah commit --quiet "$ctr" "$base" >/dev/null
  bah rm "$ctr" >/dev/null
  ctr=""
  rm -rf "$rootfs"
  rootfs=""
fi

# Without --layers buildah commits once per image instead of once per instruction: under vfs a
# commit copies the whole file system (the builder's is about 1.5 GB), so that is most of the
# saving over a layered build.
layers=()
[ "${LAYERS:-0}" = 1 ] && layers=(--layers)
step "buildah bud -> $image"
bah bud --pull-never --isolation chroot "${layers[@]}" --format docker \
  --build-arg BASE="$base" -t "$image" -f Dockerfile .

step "smoke test"
ctr="$(bah from --pull-never "$image")"
mnt="$(bah mount "$ctr")"
run() { bah run --isolation chroot --user 10001:10001 "$ctr" -- "$@"; }
run /usr/local/bin/retryd --help >/dev/null
run /usr/local/bin/retryctl --version
# Every library both binaries need resolves inside the image.
if run sh -c 'ldd /usr/local/bin/retryd /usr/local/bin/retryctl' | grep 'not found'; then
  echo "build-image: the runtime image lacks libraries (above)" >&2
  exit 1
fi
# The image's default arguments pass validation.
run /usr/local/bin/retryd --check-config --grpc-addr=0.0.0.0:50051 --metrics-addr=0.0.0.0:9464 --data-dir=/data \
  --insecure-allow-remote >/dev/null
# A real server from the image (the chroot shares the host's network; free loopback ports): the
# HEALTHCHECK command sees SERVING, the host scrapes its /metrics, and SIGTERM drains it to exit 0.
# The host tells the server's shell that it has scraped by a file it creates in the container's
# root file system (/smoke-scraped), so the server stays up until then (at most 20 s).
read -r gport mport < <(python3 -c 'import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in ss))')
rm -f "$mnt/smoke-scraped"
(
  rc=1
  for _ in $(seq 100); do
    if curl -fsS --max-time 2 -o "$work/metrics.txt" "http://127.0.0.1:$mport/metrics" 2>/dev/null; then rc=0; break; fi
    sleep 0.2
  done
  touch "$mnt/smoke-scraped"
  exit $rc
) &
scraper=$!
run sh -c "/usr/local/bin/retryd --grpc-addr=127.0.0.1:$gport --metrics-addr=127.0.0.1:$mport --data-dir=/data & pid=\$!
  ok=1; for i in \$(seq 50); do
    if /usr/local/bin/retryctl --server 127.0.0.1:$gport --timeout 2s health 2>/dev/null; then ok=0; break; fi
    sleep 0.2; done
  [ \$ok = 0 ] || /usr/local/bin/retryctl --server 127.0.0.1:$gport --timeout 2s health
  for i in \$(seq 100); do [ -e /smoke-scraped ] && break; sleep 0.2; done
  kill -TERM \$pid; wait \$pid; rc=\$?; echo \"retryd exited \$rc after SIGTERM\"; [ \$ok = 0 ] && [ \$rc = 0 ]"
if ! wait "$scraper"; then
  echo "build-image: no answer from the image's /metrics on 127.0.0.1:$mport" >&2
  exit 1
fi
if ! grep -Eq '^retryd_build_info\{version="[^"]+"\} 1$' "$work/metrics.txt"; then
  head -20 "$work/metrics.txt" >&2
  echo "build-image: the image's /metrics has no retryd_build_info sample" >&2
  exit 1
fi
echo "/metrics: $(grep -c '^# TYPE retryd_' "$work/metrics.txt") retryd metric families, $(grep -m1 '^retryd_build_info' "$work/metrics.txt")"
bah inspect --format '{{.Docker.Config.Healthcheck}} {{.OCIv1.Config.User}} {{.OCIv1.Config.Entrypoint}} {{.OCIv1.Config.Cmd}} {{.OCIv1.Config.StopSignal}}{{"\n"}}' "$image"
bah umount "$ctr" >/dev/null
bah rm "$ctr" >/dev/null
ctr=""
bah images "$image"
step "built and smoke-tested $image"

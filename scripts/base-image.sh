#!/usr/bin/env bash
# Build the offline base image the builder Dockerfile starts FROM.
# No registry is reachable, so the image is made with debootstrap from the
# Debian mirror apt already uses, then `docker import`ed. Built only when missing.
set -euo pipefail
TAG=${HOTDEPLOY_BASE_IMAGE:-hotdeploy/debian:bookworm}
DOCKER=/usr/bin/docker
if "$DOCKER" image inspect "$TAG" >/dev/null 2>&1; then
  echo "base image $TAG present"; exit 0
fi
# The Debian archive apt already uses (deb822 "URIs:" or one-line "deb" form).
mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
         | grep -oE '^(URIs:|deb) *https?://[^ ]+/debian/?( |$)' | awk '{print $2}' | head -n1 || true)
mirror=${mirror:-http://deb.debian.org/debian}
dir=$(mktemp -d /var/tmp/hotdeploy-rootfs.XXXXXX)
trap 'rm -rf "$dir"' EXIT
echo "debootstrap bookworm from $mirror"
debootstrap --variant=minbase bookworm "$dir" "$mirror" >/var/tmp/hotdeploy-debootstrap.log 2>&1 \
  || { tail -20 /var/tmp/hotdeploy-debootstrap.log >&2; exit 1; }
# The image's apt must reach the same mirror as the host.
echo "deb $mirror bookworm main" >"$dir/etc/apt/sources.list"
tar -C "$dir" -c . | "$DOCKER" import - "$TAG" >/dev/null
echo "base image $TAG built"

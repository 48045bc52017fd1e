#!/bin/sh
# Build a minimal Debian base image with debootstrap and `docker import`,
# for machines that reach no image registry (air-gapped sites, CI here).
# Usage: docker/base-image.sh [TAG] [SUITE]
set -eu
tag=${1:-dais-base:bookworm}
suite=${2:-bookworm}

if docker image inspect "$tag" >/dev/null 2>&1 && [ -z "${FORCE:-}" ]; then
	echo "base image $tag exists (FORCE=1 rebuilds it)"
	exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "installing debootstrap"
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
	else
		echo "debootstrap not found: apt-get install debootstrap (or build with BASE_IMAGE=debian:bookworm-slim where a registry is reachable)" >&2
		exit 1
	fi
fi
root=$(mktemp -d /var/tmp/dais-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
# minbase: apt, dpkg and essentials only; the mirror is debootstrap's default
# unless DEBOOTSTRAP_MIRROR is set.
debootstrap --variant=minbase "$suite" "$root" ${DEBOOTSTRAP_MIRROR:-}
# Keep the image small: package lists and caches are rebuilt by apt-get update.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$root/etc/apt/apt.conf.d/90dais-norecommends"
tar -C "$root" -c . | docker import \
	-c 'ENV LANG=C.UTF-8' \
	-c 'CMD ["/bin/bash"]' \
	- "$tag"
echo "built $tag"

#!/usr/bin/env bash
# Builds the local images the tests use. No registry is reachable on the
# machines of this project, so images are made from local files with
# `docker import`:
#   runnel-test/busybox:latest  a busybox rootfs (Debian's busybox-static)
#   runnel-test/go:latest       busybox plus the machine's Go toolchain
# Re-running is cheap: an image that exists is left alone unless FORCE=1.
set -euo pipefail

have() { [ "${FORCE:-0}" != 1 ] && docker image inspect "$1" >/dev/null 2>&1; }

busybox_bin=${BUSYBOX:-/bin/busybox}
[ -x "$busybox_bin" ] || { echo "test-images: $busybox_bin missing (apt-get install -y busybox-static)" >&2; exit 1; }

make_rootfs() {
	local root=$1
	mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/workspace" "$root/root"
	chmod 1777 "$root/tmp"
	cp "$busybox_bin" "$root/bin/busybox"
	for a in $("$busybox_bin" --list); do
		[ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"
	done
	echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
	echo 'root:x:0:' >"$root/etc/group"
	echo 'hosts: files dns' >"$root/etc/nsswitch.conf"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if ! have runnel-test/busybox:latest; then
	make_rootfs "$tmp/bb"
	tar -C "$tmp/bb" -c . | docker import \
		-c 'ENV PATH=/bin' -c 'WORKDIR /workspace' -c 'CMD ["/bin/sh"]' \
		- runnel-test/busybox:latest >/dev/null
	echo "built runnel-test/busybox:latest"
fi

if ! have runnel-test/go:latest; then
	goroot=$(go env GOROOT)
	make_rootfs "$tmp/go"
	mkdir -p "$tmp/go/usr/local" "$tmp/go/etc/ssl/certs"
	cp -a "$goroot" "$tmp/go/usr/local/go"
	rm -rf "$tmp/go/usr/local/go/pkg/tool/"*/{cgo,vet}.a 2>/dev/null || true
	[ -f /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$tmp/go/etc/ssl/certs/"
	tar -C "$tmp/go" -c . | docker import \
		-c 'ENV PATH=/usr/local/go/bin:/bin' -c 'ENV CGO_ENABLED=0' -c 'ENV HOME=/root' \
		-c 'ENV GOPATH=/root/go' -c 'ENV GOFLAGS=-buildvcs=false' -c 'WORKDIR /workspace' \
		- runnel-test/go:latest >/dev/null
	echo "built runnel-test/go:latest"
fi

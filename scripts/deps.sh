#!/bin/sh
# Install the Debian packages a step needs, only those that are missing.
# Usage: scripts/deps.sh build|test|bench|guest
# Works on a fresh Debian 12 as root; as another user it only reports.
set -eu

build="gcc make libc6-dev linux-libc-dev pkg-config binutils
	zlib1g-dev liblzma-dev liblz4-dev libzstd-dev libbz2-dev liburing-dev
	libcmocka-dev libjansson-dev libevent-dev libssl-dev"
# The guest image is built from Debian's packages (apt-get download, dpkg -x).
guest="cpio gzip xz-utils dpkg apt kmod"
# ipxe-qemu and dnsmasq-base: tests/integration/test_ipxe.sh (the iPXE ROM
# for virtio-net, and a DHCP server; -base: the binary without a system
# service that would start on the host).
# openssl: the command-line tool that makes the TLS tests' certificates
# (tests/integration/lib/mkcerts.sh).
test="$build $guest iproute2 procps util-linux python3 acpica-tools
	clang libclang-rt-14-dev seabios e2fsprogs ipxe-qemu dnsmasq-base
	openssl"
# iperf3: the host side of the in-guest iperf3 run (bench/run.sh, section
# 6); the guest's fio and iperf3 come from Debian's packages through
# scripts/mkguest-bench.sh, not from the host.
bench="$test qemu-system-x86 time iperf3"

case "${1:-build}" in
build) want=$build ;;
guest) want=$guest ;;
test) want=$test ;;
bench) want=$bench ;;
*) echo "usage: $0 build|test|bench|guest" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing Debian packages:$missing (run as root to install them)" >&2
	exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists once if they are empty or a day old.
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -1)" ]; then
	apt-get update -qq
fi
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null

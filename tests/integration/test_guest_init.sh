#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The reference guest's /init (tests/guest/init), tried on the host without
# booting: sourcing it only defines its functions. Which modules it loads
# for which virtio devices, and in what order; what it prints. Runs under
# the guest's own busybox sh (taken from build/guest/initrd.img when that
# is built) and under the host's /bin/sh. Prints TAP.
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
INIT=${GUEST_INIT:-$PWD/tests/guest/init}
tmp=$(mktemp -d /tmp/test_guest_init.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# shellcheck source=lib/tap.sh
. tests/integration/lib/tap.sh
check() { # NAME GOT WANT
	if [ "$2" = "$3" ]; then
		ok "$1"
	else
		not_ok "$1" "got:  $2" "want: $3"
	fi
}

# The shells: the guest's busybox when the image is there, and the host's.
shells=()
if [ -f "$BUILD/guest/initrd.img" ] &&
	(cd "$tmp" && cpio -id --quiet bin/busybox <"$OLDPWD/$BUILD/guest/initrd.img") 2>/dev/null &&
	[ -x "$tmp/bin/busybox" ]; then
	# Named sh, so /init sees itself sourced rather than run.
	ln -s busybox "$tmp/bin/sh"
	shells+=("$tmp/bin/sh")
else
	echo "# $BUILD/guest/initrd.img not built: the guest's busybox sh is not tried (make guest builds it)"
fi
shells+=(/bin/sh)

# The cloud kernel's list (dependencies first), then the generic kernel's
# extra modules, as scripts/mkguest.sh writes /etc/modules.order.
K=/lib/modules/6.1.0-test/kernel
cat >"$tmp/modules.order" <<EOF
$K/drivers/virtio/virtio_ring.ko
$K/drivers/virtio/virtio.ko
$K/drivers/virtio/virtio_pci_modern_dev.ko
$K/drivers/virtio/virtio_pci_legacy_dev.ko
$K/drivers/virtio/virtio_pci.ko
$K/drivers/block/virtio_blk.ko
$K/net/core/failover.ko
$K/drivers/net/net_failover.ko
$K/drivers/net/virtio_net.ko
$K/drivers/char/virtio_console.ko
$K/drivers/char/hw_random/rng-core.ko
$K/drivers/char/hw_random/virtio-rng.ko
$K/drivers/virtio/virtio_balloon.ko
$K/net/vmw_vsock/vsock.ko
$K/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko
$K/net/vmw_vsock/vmw_vsock_virtio_transport.ko

# the generic kernel's file system
$K/lib/crc16.ko
$K/fs/ext4/ext4.ko
EOF

# devices DIR ID...: a fake /sys/bus/virtio/devices with virtio0, 1, ...
devices() {
	local dir=$1 i=0 id
	shift
	rm -rf "$dir"
	mkdir -p "$dir"
	for id in "$@"; do
		mkdir "$dir/virtio$i"
		echo "$id" >"$dir/virtio$i/device"
		i=$((i + 1))
	done
}

# run_init SHELL DEVDIR [FAILING_MODULE]: load_modules with insmod
# replaced by a function that logs the module and fails for the one named.
# Prints the insmod log, a line "--", then what /init printed.
run_init() {
	"$1" -c '
		. "$1"
		insmod() {
			local m=${1##*/}
			echo "${m%.ko}" >>"$TMPLOG"
			if [ "${m%.ko}" = "$FAILMOD" ]; then
				echo "insmod: cannot insert '\''$1'\'': Unknown symbol in module" >&2
				return 1
			fi
		}
		load_modules "$2" "$3"
	' sh "$INIT" "$tmp/modules.order" "$2" >"$tmp/out" 2>&1
	tr '\n' ' ' <"$tmp/log" 2>/dev/null
	echo "--"
	cat "$tmp/out"
	rm -f "$tmp/log"
}

export TMPLOG=$tmp/log FAILMOD=
base="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci crc16 ext4"
for sh in "${shells[@]}"; do
	s=$(basename "$(readlink -f "$sh")")
	[ "$s" = busybox ] && s="busybox sh" || s="host $s"

	# The devices of the boot test: disk, rng, console (in PCI order).
	devices "$tmp/dev" 0x0002 0x0004 0x0003
	out=$(run_init "$sh" "$tmp/dev")
	check "$s: disk, rng, console: core and file systems first, then their drivers in list order" \
		"${out%%--*}" "$base virtio_blk virtio_console rng-core virtio-rng "
	check "$s: disk, rng, console: the modules line counts the drivers left out" \
		"$(echo "$out" | grep VMMD-GUEST-MODULES)" \
		"VMMD-GUEST-MODULES loaded=11 failed=0 skipped=7"

	# Net and vsock: each driver after what it needs.
	devices "$tmp/dev" 0x0013 0x0001
	out=$(run_init "$sh" "$tmp/dev")
	check "$s: net and vsock load failover, net_failover, virtio_net and the vsock transport" \
		"${out%%--*}" "$base failover net_failover virtio_net vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport "

	# Every device our VMM offers: every module, once.
	devices "$tmp/dev" 0x0001 0x0002 0x0003 0x0004 0x0005 0x0013 0x0002
	out=$(run_init "$sh" "$tmp/dev")
	check "$s: all device kinds (a second disk too): every module once" \
		"$(echo "$out" | grep VMMD-GUEST-MODULES)" \
		"VMMD-GUEST-MODULES loaded=18 failed=0 skipped=0"

	# A device ID no driver in the image knows, and no virtio bus at all.
	devices "$tmp/dev" 0x0010
	out=$(run_init "$sh" "$tmp/dev")
	check "$s: an unknown device ID loads no driver" "${out%%--*}" "$base "
	out=$(run_init "$sh" "$tmp/nonexistent")
	check "$s: no virtio bus: the core loads, no driver" \
		"$(echo "$out" | grep VMMD-GUEST-MODULES)" \
		"VMMD-GUEST-MODULES loaded=7 failed=0 skipped=11"

	# A module that fails: named with insmod's message; the rest load.
	devices "$tmp/dev" 0x0002 0x0004
	FAILMOD=virtio_pci_legacy_dev
	out=$(run_init "$sh" "$tmp/dev")
	FAILMOD=
	check "$s: a failing module is reported and the rest still load" \
		"$(echo "$out" | grep -E 'INSMOD-FAIL|MODULES')" \
		"VMMD-GUEST-INSMOD-FAIL virtio_pci_legacy_dev insmod: cannot insert '$K/drivers/virtio/virtio_pci_legacy_dev.ko': Unknown symbol in module
VMMD-GUEST-MODULES loaded=9 failed=1 skipped=8"

	# A missing list: a warning, nothing loaded.
	out=$("$sh" -c '. "$1"; load_modules /nonexistent/modules.order "$2"' \
		sh "$INIT" "$tmp/dev" 2>&1)
	check "$s: a missing module list is a warning" "$out" \
		"VMMD-GUEST-WARN no /nonexistent/modules.order
VMMD-GUEST-MODULES loaded=0 failed=0 skipped=0"

	# The pure helpers the report uses.
	out=$("$sh" -c '. "$1"; count_cpu_list "0-3,5,7-8"; echo $cpu_count' sh "$INIT")
	check "$s: count_cpu_list 0-3,5,7-8" "$out" 7
	# printf %b with \xHH is busybox's (the guest's), not dash's.
	if [ "$s" = "busybox sh" ]; then
		out=$("$sh" -c '. "$1"; url_decode_to "echo+a%2Bb%25c" "$2"; cat "$2"' \
			sh "$INIT" "$tmp/decoded")
		check "$s: url_decode_to: + is a space, %XX a byte" "$out" "echo a+b%c"
	fi
done

echo "$((n - nfail)) passed, $nfail failed"
finish

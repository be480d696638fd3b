#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The benchmark guest image (scripts/mkguest-bench.sh) without booting it:
# a full Linux boot takes half an hour on a PVM host, so bench/run.sh boots
# it only on hosts with hardware virtualization. Here the image is built
# (or reused), both of its cpio archives are unpacked into a directory, and
# what the guest would run runs in a chroot of that tree on this host:
#   - fio and iperf3 load with the tree's dynamic loader and libraries
#     only, and the tree holds no library they do not load;
#   - /bin/vmmd-bench fio, the exact job the guest runs, on a loop device
#     (a file when there is none), io_uring and libaio;
#   - /bin/vmmd-bench iperf3 with its network set-up, in a network and
#     mount namespace of its own (a veth, sysfs), against the tree's iperf3
#     server;
#   - and bench/guest_bench.sh's host-side parser, the one bench/run.sh
#     uses, reads a number above zero from each marker, refuses a failed
#     or missing one, and the command run.sh puts on the kernel command
#     line decodes back (tests/guest/init's decoder) to itself.
# Needs root (chroot, mknod, namespaces). Prints TAP; exits 1 on a failure.
#
# Environment: BUILD (default build).
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
GUEST=$BUILD/guest
# shellcheck source=../../bench/guest_bench.sh
. bench/guest_bench.sh

# shellcheck source=lib/tap.sh
. tests/integration/lib/tap.sh
# show FILE...: their last lines as TAP comments.
show() { sed 's/^/#     /' "$@" | cut -c 1-200 | tail -n 15; }

if [ "$(id -u)" -ne 0 ]; then
	skip "needs root (chroot, mknod, network namespaces)"
	finish
fi

mkdir -p "$BUILD"
# Not tmpfs: the fio job opens its target O_DIRECT.
TMP=$(mktemp -d "$(cd "$BUILD" && pwd)/test_bench_guest.XXXXXX") || exit 1
T=$TMP/root
loopdev=""
cleanup() {
	[ -n "$loopdev" ] && losetup -d "$loopdev" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the image ----------------------------------------------------------------

if nice -n 10 scripts/mkguest-bench.sh "$GUEST" >"$TMP/build.log" 2>&1 &&
	[ -s "$GUEST/initrd-bench.img" ] && [ -s "$GUEST/manifest-bench" ]; then
	ok "scripts/mkguest-bench.sh builds or reuses $GUEST/initrd-bench.img"
	sed 's/^/# /' "$TMP/build.log" | tail -n 2
else
	not_ok "scripts/mkguest-bench.sh builds $GUEST/initrd-bench.img" \
		"it failed; its output:"
	show "$TMP/build.log"
	finish
fi

img=$GUEST/initrd-bench.img
off=$(awk '$1 == "bench" && $2 == "overlay_offset" { print $3 }' \
	"$GUEST/manifest-bench")
why=()
[[ $off =~ ^[0-9]+$ ]] || why+=("no overlay_offset in manifest-bench")
if [ ${#why[@]} -eq 0 ]; then
	[ "$off" -eq "$(wc -c <"$GUEST/initrd.img")" ] ||
		why+=("overlay_offset $off is not the size of initrd.img")
	cmp -s -n "$off" "$img" "$GUEST/initrd.img" ||
		why+=("the image does not start with initrd.img byte for byte")
	[ "$(tail -c +$((off + 1)) "$img" | head -c 6)" = 070701 ] ||
		why+=("no newc archive at offset $off")
fi
if [ ${#why[@]} -eq 0 ]; then
	ok "initrd-bench.img is initrd.img followed by a second newc archive"
else
	not_ok "initrd-bench.img is initrd.img followed by a second newc archive" \
		"${why[@]}"
	finish
fi

mkdir -p "$T"
head -c "$off" "$img" | (cd "$T" && cpio -idm --quiet 2>"$TMP/cpio1.err")
rc1=$?
tail -c +$((off + 1)) "$img" | (cd "$T" && cpio -idm --quiet 2>"$TMP/cpio2.err")
rc2=$?
head -c "$off" "$img" | cpio -it --quiet 2>/dev/null | sort >"$TMP/base.list"
tail -c +$((off + 1)) "$img" | cpio -it --quiet 2>/dev/null | sort >"$TMP/over.list"
why=()
[ $rc1 -eq 0 ] || why+=("cpio -i of the first archive: $(head -c 200 "$TMP/cpio1.err")")
[ $rc2 -eq 0 ] || why+=("cpio -i of the second archive: $(head -c 200 "$TMP/cpio2.err")")
for f in init bin/busybox etc/modules.order bin/vmmd-bench usr/bin/fio \
	usr/bin/iperf3 lib64/ld-linux-x86-64.so.2; do
	[ -e "$T/$f" ] || [ -L "$T/$f" ] || why+=("the tree lacks /$f")
done
# Files of the base (not directories) the overlay would replace.
while read -r f; do
	[ -d "$T/$f" ] || why+=("the overlay replaces /$f of initrd.img")
done < <(comm -12 "$TMP/base.list" "$TMP/over.list")
if [ ${#why[@]} -eq 0 ]; then
	ok "both archives unpack: the base ($(wc -l <"$TMP/base.list") entries) and fio, iperf3, vmmd-bench ($(wc -l <"$TMP/over.list") entries), nothing replaced"
else
	not_ok "both archives unpack, nothing replaced" "${why[@]}"
	finish
fi

# What the guest's devtmpfs would give.
for d in "null c 1 3" "zero c 1 5" "urandom c 1 9" "random c 1 8"; do
	set -- $d
	[ -e "$T/dev/$1" ] || mknod -m 666 "$T/dev/$1" "$2" "$3" "$4"
done

# --- libraries ---------------------------------------------------------------

# The loader, in the chroot, lists what it maps; it can only find it in
# the tree. Every regular .so file in the overlay must be one of them.
why=()
: >"$TMP/mapped"
for b in /usr/bin/fio /usr/bin/iperf3; do
	if ! chroot "$T" /lib64/ld-linux-x86-64.so.2 --list "$b" \
		>"$TMP/list.out" 2>&1; then
		why+=("ld.so --list $b failed: $(head -c 200 "$TMP/list.out")")
		continue
	fi
	grep -q 'not found' "$TMP/list.out" &&
		why+=("$b: $(grep 'not found' "$TMP/list.out" | tr -d '\t' | tr '\n' ' ')")
	awk '$2 == "=>" { print $3 } $1 ~ /^\// { print $1 }' "$TMP/list.out" |
		while read -r p; do
			chroot "$T" /bin/busybox readlink -f "$p"
		done >>"$TMP/mapped"
done
sort -u -o "$TMP/mapped" "$TMP/mapped"
(cd "$T" && grep '\.so' "$TMP/over.list" | while read -r f; do
	[ -f "$f" ] && [ ! -L "$f" ] && echo "/$f"
done) | sort -u >"$TMP/shipped"
extra=$(comm -13 "$TMP/mapped" "$TMP/shipped" | tr '\n' ' ')
[ -z "$extra" ] || why+=("shipped but never loaded: $extra")
nlib=$(wc -l <"$TMP/mapped")
[ "$nlib" -gt 3 ] || why+=("only $nlib objects mapped: ld.so --list output not understood")
if [ ${#why[@]} -eq 0 ]; then
	ok "fio and iperf3 load from the tree alone; its $(wc -l <"$TMP/shipped") libraries are exactly the ones they load"
else
	not_ok "fio and iperf3 load from the tree alone, with exactly its libraries" \
		"${why[@]}"
fi
for b in fio iperf3; do
	if chroot "$T" "/usr/bin/$b" --version >"$TMP/$b.version" 2>&1; then
		ok "$b runs in the chroot: $(head -n 1 "$TMP/$b.version")"
	else
		not_ok "$b runs in the chroot"
		show "$TMP/$b.version"
	fi
done

# --- fio --------------------------------------------------------------------

# The guest's disk is a block device: a loop device on a file here (a
# plain file when loop devices are not available), 64 MiB of data.
dd if=/dev/urandom of="$TMP/disk.img" bs=1M count=64 status=none
target=/tmp/disk.img
if loopdev=$(losetup --find --show --direct-io=on "$TMP/disk.img" 2>/dev/null) &&
	[ -b "$loopdev" ]; then
	mknod -m 600 "$T/dev/vdb" b "$((0x$(stat -c %t "$loopdev")))" \
		"$((0x$(stat -c %T "$loopdev")))"
	target=/dev/vdb
	echo "# fio target: $loopdev as /dev/vdb in the chroot"
else
	loopdev=""
	mv "$TMP/disk.img" "$T/tmp/disk.img"
	echo "# fio target: a file (no loop device here)"
fi

for engine in auto libaio; do
	# What the guest runs, with 1 s per job and no warm-up.
	timeout 60 chroot "$T" /bin/vmmd-bench fio "$target" 1 0 "$engine" \
		>"$TMP/fio-$engine.console" 2>&1
	rc=$?
	for job in randread seqread; do
		if r=$(gbh_fio "$TMP/fio-$engine.console" "$job"); then
			ok "fio $job ($engine) in the chroot: $r"
		else
			not_ok "fio $job ($engine) in the chroot gives a marker the bench parses" \
				"exit code $rc; $r"
			show "$TMP/fio-$engine.console"
		fi
	done
done
if [ -n "$loopdev" ]; then
	losetup -d "$loopdev"
	loopdev=""
fi

# --- iperf3 -----------------------------------------------------------------

# A network namespace (and mount namespace: sysfs for the interface
# lookup) of its own: the client sets up the first interface that is not
# lo (a veth here, virtio_net's eth0 in the guest) with 10.213.0.2/24 and
# reaches the server on 10.213.0.1, as in the guest.
cat >"$TMP/net.sh" <<'EOF'
T=$1
ip link set lo up
ip link add vbg0 type veth peer name vbg1 || exit 90
ip link set vbg1 up
ip addr add 10.213.0.1/32 dev lo
mount -t sysfs sysfs "$T/sys" || exit 91
mount -t proc proc "$T/proc" || exit 92
chroot "$T" /usr/bin/iperf3 -s -1 -B 10.213.0.1 -p 5201 >"$T/tmp/server.log" 2>&1 &
spid=$!
i=0
while [ $i -lt 50 ] && ! grep -q 'listening' "$T/tmp/server.log"; do
	sleep 0.1
	i=$((i + 1))
done
chroot "$T" /bin/vmmd-bench iperf3 10.213.0.1 2 10.213.0.2/24
rc=$?
sleep 1
kill "$spid" 2>/dev/null
exit $rc
EOF
timeout 90 unshare --net --mount bash "$TMP/net.sh" "$T" >"$TMP/iperf3.console" 2>&1
rc=$?
if [ $rc -eq 90 ] || [ $rc -eq 91 ]; then
	skip "iperf3: no veth or sysfs in a new namespace here (exit $rc)"
elif g=$(gbh_iperf3 "$TMP/iperf3.console"); then
	ok "iperf3 guest -> server in the chroot: $g Gbit/s ($(gbh_marker "$TMP/iperf3.console" net))"
else
	not_ok "iperf3 in the chroot gives a marker the bench parses" \
		"exit code $rc; $g"
	show "$TMP/iperf3.console" "$T/tmp/server.log"
fi

# --- the parser and the command line -----------------------------------------

why=()
printf 'junk\r\nVMMD-BENCH fio randread FAILED engine=io_uring rc=1\r\n' >"$TMP/p1"
gbh_fio "$TMP/p1" randread >/dev/null && why+=("a FAILED fio marker was taken")
gbh_fio "$TMP/p1" seqread >/dev/null && why+=("a missing fio marker was taken")
printf 'VMMD-BENCH fio seqread engine=libaio err=0 iops=0 bw_kib=0 runtime_ms=1 io_kib=0\n' >"$TMP/p2"
gbh_fio "$TMP/p2" seqread >/dev/null && why+=("a zero fio result was taken")
printf '[   12.5] x: yVMMD-BENCH fio seqread engine=libaio err=0 iops=10 bw_kib=1000000 runtime_ms=1 io_kib=1\r\n' >"$TMP/p3"
r=$(gbh_fio "$TMP/p3" seqread)
[ "$r" = "iops=10 mbps=1024.0 engine=libaio" ] ||
	why+=("marker after console noise: got '$r'")
printf 'VMMD-BENCH iperf3 FAILED rc=1\n' >"$TMP/p4"
gbh_iperf3 "$TMP/p4" >/dev/null && why+=("a FAILED iperf3 marker was taken")
printf 'VMMD-BENCH net FAILED why=no-interface\n' >"$TMP/p5"
r=$(gbh_iperf3 "$TMP/p5")
[[ $r == *"network set-up failed"* ]] || why+=("net failure not named: '$r'")
if [ ${#why[@]} -eq 0 ]; then
	ok "the parser refuses failed, missing and zero results and skips console noise"
else
	not_ok "the parser refuses failed, missing and zero results" "${why[@]}"
fi

why=()
for cmd in "$(gbh_fio_cmd 10 2)" "$(gbh_iperf3_cmd 10.213.0.1 10 10.213.0.2/24 5201)" \
	"a+b %25 c;d"; do
	enc=$(gbh_encode "$cmd")
	case $enc in
	*' '*) why+=("encoded '$cmd' has a space: $enc") ;;
	esac
	dec=$(chroot "$T" /bin/busybox sh -c '. /init; url_decode_to "$1" /tmp/dec; cat /tmp/dec' sh "$enc")
	[ "$dec" = "$cmd" ] || why+=("'$cmd' -> '$enc' -> '$dec'")
done
if [ ${#why[@]} -eq 0 ]; then
	ok "the guest commands survive vmmd.run= encoding: $(gbh_fio_cmd 10 2) | $(gbh_iperf3_cmd 10.213.0.1 10 10.213.0.2/24 5201)"
else
	not_ok "the guest commands survive vmmd.run= encoding" "${why[@]}"
fi

finish

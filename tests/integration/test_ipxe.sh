#!/bin/bash
# SPDX-License-Identifier: MIT
#
# A real network driver on our virtio-net: SeaBIOS (package seabios) finds
# Debian's iPXE ROM for virtio-net (package ipxe-qemu) in the NIC's PCI
# expansion ROM BAR (vmm-run --net ...,rom=PATH), copies and runs it; iPXE
# drives the NIC and gets a DHCP lease from dnsmasq (package dnsmasq-base).
#
# The network: a namespace of its own with one TAP in it. dnsmasq serves
# DHCP on the TAP's host side (10.0.2.1/24) and vmm-run, started in the
# same namespace, attaches the NIC to the TAP. iPXE's output reaches the
# console through SeaBIOS (int 10h on COM1, etc/sercon-port), SeaBIOS's own
# log the debug port (--firmware-log). Once iPXE is done (it has nothing to
# boot) vmm-run is stopped with SIGTERM; the namespace, the TAP and dnsmasq
# go away with it, also when the test fails or is interrupted.
#
# Also: the bad --net rom= inputs, each an exit 2 before the guest runs.
#
# On a PVM host all of the firmware's code is emulated: two to four
# minutes from the reset vector to the lease, depending on what else the
# host runs. Prints TAP; exits 1 on a failure.
#
# Environment: BUILD (default build), VMMRUN (default $BUILD/bin/vmm-run),
# SEABIOS_DIR (default /usr/share/seabios), IPXE_ROM (default
# /usr/lib/ipxe/qemu/pxe-virtio.rom), IPXE_TMO (seconds for the whole
# boot, default 420).
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
VMMRUN=${VMMRUN:-$BUILD/bin/vmm-run}
SEABIOS_DIR=${SEABIOS_DIR:-/usr/share/seabios}
IPXE_ROM=${IPXE_ROM:-/usr/lib/ipxe/qemu/pxe-virtio.rom}
TMO=${IPXE_TMO:-420}
MAC=52:54:00:12:34:56
NS=vmmd-ipxe-$$
TAP=vmmdipxe0
HOST_IP=10.0.2.1

TMP=$(mktemp -d "${TMPDIR:-/tmp}/test_ipxe.XXXXXX") || exit 1
vmm_pid="" dns_pid=""

# Everything this test started goes, whatever way it ends.
teardown() {
	if [ -n "$vmm_pid" ] && kill -0 "$vmm_pid" 2>/dev/null; then
		kill -TERM "$vmm_pid" 2>/dev/null
		sleep 1
		kill -KILL "$vmm_pid" 2>/dev/null
	fi
	if [ -n "$dns_pid" ] && kill -0 "$dns_pid" 2>/dev/null; then
		kill -TERM "$dns_pid" 2>/dev/null
		wait "$dns_pid" 2>/dev/null
	fi
	vmm_pid="" dns_pid=""
	# Deleting the namespace deletes the TAP in it.
	ip netns del "$NS" 2>/dev/null
}
trap 'teardown; rm -rf "$TMP"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# shellcheck source=lib/tap.sh
. tests/integration/lib/tap.sh

# Show what a run left behind, as TAP comments.
show_run() {
	local name=$1 f
	echo "#   exit code: $(cat "$TMP/$name.rc" 2>/dev/null)"
	echo "#   command: $(cat "$TMP/$name.cmd" 2>/dev/null)"
	for f in err console debug dnsmasq; do
		[ -f "$TMP/$name.$f" ] || continue
		echo "#   $f (last 15 lines):"
		tail -n 15 "$TMP/$name.$f" 2>/dev/null | tr -d '\r' |
			cut -c1-200 | sed 's/^/#     /'
	done
}

# check DESC NAME COND...: all must hold:
#   rc=N  exit code;  debug~RE / console~RE / dnsmasq~RE / err~RE  that
#   output matches (grep -E; err case-insensitive); err!RE: it does not.
check() {
	local desc=$1 name=$2; shift 2
	local c why=() file
	for c in "$@"; do
		case "$c" in
		rc=*)
			[[ "$(cat "$TMP/$name.rc")" =~ ^(${c#rc=})$ ]] ||
				why+=("expected exit code ${c#rc=}, saw $(cat "$TMP/$name.rc")") ;;
		debug~* | console~* | dnsmasq~*)
			file=${c%%~*}
			tr -d '\r' <"$TMP/$name.$file" 2>/dev/null |
				grep -qE -- "${c#*~}" ||
				why+=("expected the $file output to match /${c#*~}/") ;;
		err~*)
			grep -qEi -- "${c#err~}" "$TMP/$name.err" ||
				why+=("expected stderr to match /${c#err~}/") ;;
		err!*)
			! grep -qEi -- "${c#err!}" "$TMP/$name.err" ||
				why+=("expected stderr not to match /${c#err!}/") ;;
		*) why+=("test bug: unknown check '$c'") ;;
		esac
	done
	if [ ${#why[@]} -eq 0 ]; then
		ok "$desc"
		return 0
	fi
	not_ok "$desc" "${why[@]}"
	show_run "$name"
	return 1
}

# run_bad NAME ARGS...: a vmm-run that must stop before the guest runs.
run_bad() {
	local name=$1; shift
	printf '%q ' "$VMMRUN" "$@" >"$TMP/$name.cmd"
	timeout --kill-after=5 60 "$VMMRUN" --console "file:$TMP/$name.console" \
		"$@" </dev/null >"$TMP/$name.out" 2>"$TMP/$name.err"
	echo $? >"$TMP/$name.rc"
}

# --- preconditions -----------------------------------------------------------

if [ ! -x "$VMMRUN" ]; then
	not_ok "vmm-run is built" "missing $VMMRUN (make test-build, same BUILD=)"
	finish
fi
# scripts/deps.sh test installs the packages; this is the fallback for a
# checkout whose test dependencies predate them.
if [ "$(id -u)" -eq 0 ] && { [ ! -f "$IPXE_ROM" ] || ! command -v dnsmasq >/dev/null ||
	[ ! -f "$SEABIOS_DIR/bios.bin" ]; } &&
	[ "$IPXE_ROM" = /usr/lib/ipxe/qemu/pxe-virtio.rom ]; then
	echo "# installing seabios ipxe-qemu dnsmasq-base" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends seabios ipxe-qemu dnsmasq-base >/dev/null 2>&1
fi
PATH=$PATH:/usr/sbin:/sbin
kvm_why=""
if [ ! -e /dev/kvm ]; then
	kvm_why="no /dev/kvm on this host"
elif ! { exec 9<>/dev/kvm; } 2>/dev/null; then
	kvm_why="cannot open /dev/kvm read-write (not root, not in the kvm group?)"
else
	exec 9>&-
fi
if [ -n "$kvm_why" ]; then
	skip "--net rom= bad input: $kvm_why"
	skip "iPXE from the ROM BAR gets a DHCP lease: $kvm_why"
	finish
fi

# --- bad --net rom= input: exit 2 before the guest starts ---------------------
# The ROM is read before the TAP is opened: no TAP needed for these.

BIOS=$SEABIOS_DIR/bios.bin
[ -f "$BIOS" ] || BIOS=$IPXE_ROM	# any file will do for these runs
run_bad rom_missing --firmware "$BIOS" --net "tap=$TAP,rom=$TMP/nonexistent.rom"
check "--net rom= a missing file: exit 2, naming it" rom_missing rc=2 \
	"err~rom '$TMP/nonexistent\.rom': no such file"
run_bad rom_dir --firmware "$BIOS" --net "tap=$TAP,rom=$TMP"
check "--net rom= a directory: exit 2" rom_dir rc=2 "err~rom '$TMP': is a directory"
: >"$TMP/empty.rom"
run_bad rom_empty --firmware "$BIOS" --net "tap=$TAP,rom=$TMP/empty.rom"
check "--net rom= an empty file: exit 2" rom_empty rc=2 \
	"err~rom '$TMP/empty\.rom': file is empty"
truncate -s 17M "$TMP/big.rom"
run_bad rom_big --firmware "$BIOS" --net "tap=$TAP,rom=$TMP/big.rom"
check "--net rom= over 16 MiB: exit 2" rom_big rc=2 \
	"err~rom '$TMP/big\.rom': too large \(17825792 bytes; a ROM BAR holds at most 16 MiB\)"
run_bad rom_opt --firmware "$BIOS" --net "tap=$TAP,rom="
check "--net rom= without a path: exit 2, listing the options" rom_opt rc=2 \
	"err~option 'rom='.*rom=PATH"
# A ROM for another NIC (e1000): a warning naming its ids; the TAP that is
# not there then ends the run.
E1000_ROM=$(dirname "$IPXE_ROM")/pxe-e1000.rom
if [ -f "$E1000_ROM" ]; then
	run_bad rom_other --firmware "$BIOS" --net "tap=vmmdnotap0,rom=$E1000_ROM"
	check "--net rom= another device's ROM: warned (its ids named), then the missing TAP: exit 2" \
		rom_other rc=2 "err~warning: .*will not run rom.*no x86 image for PCI device 1af4:1041.*8086:100e x86" \
		"err~TAP 'vmmdnotap0': no such interface"
else
	skip "--net rom= another device's ROM: no $E1000_ROM"
fi

# --- the network boot ---------------------------------------------------------

why_skip=""
if [ "$(id -u)" -ne 0 ]; then
	why_skip="not root (a network namespace and a TAP are needed)"
elif [ ! -f "$SEABIOS_DIR/bios.bin" ]; then
	why_skip="no $SEABIOS_DIR/bios.bin (apt-get install seabios)"
elif [ ! -f "$IPXE_ROM" ]; then
	why_skip="no $IPXE_ROM (apt-get install ipxe-qemu)"
elif ! command -v dnsmasq >/dev/null; then
	why_skip="no dnsmasq (apt-get install dnsmasq-base)"
elif ! command -v ip >/dev/null; then
	why_skip="no ip (apt-get install iproute2)"
elif [ ! -c /dev/net/tun ]; then
	why_skip="no /dev/net/tun"
elif ! ip netns add "$NS" 2>"$TMP/netns.err"; then
	why_skip="cannot create a network namespace: $(head -1 "$TMP/netns.err")"
elif ! ip -n "$NS" tuntap add dev "$TAP" mode tap 2>"$TMP/tap.err"; then
	why_skip="cannot create a TAP: $(head -1 "$TMP/tap.err")"
fi
if [ -n "$why_skip" ]; then
	skip "iPXE from the ROM BAR gets a DHCP lease: $why_skip"
	finish
fi

# The ids firmware matches: Debian's ROM is built for the modern
# virtio-net, 1af4:1041, which is what our NIC is.
pcir=$(od -An -tu2 -j24 -N2 "$IPXE_ROM" | tr -d ' ')
ids=$(od -An -tx2 -j$((pcir + 4)) -N4 "$IPXE_ROM" | awk '{ print $1 ":" $2 }')
if [ "$(od -An -c -j"$pcir" -N4 "$IPXE_ROM" | tr -d ' ')" = PCIR ] &&
	[ "$ids" = 1af4:1041 ]; then
	ok "$IPXE_ROM's PCI data structure names 1af4:1041, our virtio-net"
else
	not_ok "$IPXE_ROM's PCI data structure names 1af4:1041, our virtio-net" \
		"PCIR at 0x$(printf %x "${pcir:-0}"), ids '$ids'"
fi

ip -n "$NS" link set lo up
# No IPv6: nothing but DHCP and ARP on the wire.
ip netns exec "$NS" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
	net.ipv6.conf.default.disable_ipv6=1 2>/dev/null
ip -n "$NS" addr add "$HOST_IP/24" dev "$TAP"
ip -n "$NS" link set "$TAP" up

# dnsmasq in the foreground of its own process (ip netns exec execs it, so
# $! is dnsmasq): DHCP only (--port=0: no DNS), on the TAP alone. With
# --no-ping it offers at once instead of first pinging the address for 3 s:
# iPXE's four DISCOVERs (1, 2, 4 s apart on its clock, which ran fast in
# one run here) did not always wait that long.
: >"$TMP/boot.dnsmasq"
ip netns exec "$NS" dnsmasq --keep-in-foreground --conf-file=/dev/null \
	--port=0 --interface="$TAP" --bind-interfaces --except-interface=lo \
	--dhcp-range=10.0.2.100,10.0.2.150,255.255.255.0,10m \
	--dhcp-authoritative --no-ping --dhcp-leasefile="$TMP/leases" \
	--pid-file="$TMP/dnsmasq.pid" --user=root --log-dhcp \
	--log-facility="$TMP/boot.dnsmasq" 2>"$TMP/dnsmasq.err" &
dns_pid=$!
for _ in $(seq 50); do
	grep -q "DHCP, sockets bound exclusively to interface $TAP" \
		"$TMP/boot.dnsmasq" 2>/dev/null && break
	kill -0 "$dns_pid" 2>/dev/null || break
	sleep 0.1
done
if ! grep -q "DHCP, IP range 10.0.2.100" "$TMP/boot.dnsmasq"; then
	not_ok "dnsmasq serves DHCP on $TAP" "$(cat "$TMP/dnsmasq.err" "$TMP/boot.dnsmasq" | head -5)"
	finish
fi

# Boot, and stop vmm-run once iPXE has had its say: the lease and "Nothing
# to boot", or a failure of its own. SeaBIOS would go on to the other boot
# devices and reboot, which tells nothing more.
printf '%q ' ip netns exec "$NS" "$VMMRUN" --firmware "$SEABIOS_DIR/bios.bin" \
	--memory 128M --console "file:$TMP/boot.console" \
	--firmware-log "$TMP/boot.debug" --net "tap=$TAP,mac=$MAC,rom=$IPXE_ROM" \
	>"$TMP/boot.cmd"
: >"$TMP/boot.console"
start=$(date +%s)
ip netns exec "$NS" "$VMMRUN" --firmware "$SEABIOS_DIR/bios.bin" \
	--memory 128M --console "file:$TMP/boot.console" \
	--firmware-log "$TMP/boot.debug" --net "tap=$TAP,mac=$MAC,rom=$IPXE_ROM" \
	</dev/null >"$TMP/boot.out" 2>"$TMP/boot.err" &
vmm_pid=$!
done_re='Nothing to boot|No more network devices|No configuration methods succeeded|Boot failed'
# When each stage first showed on the console (seconds from the start).
stages=("iPXE \(http://ipxe\.org\)" "Configuring \(net0" "net0: 10\.0\.2\.")
names=("iPXE's banner" "DHCP started" "lease")
seen=()
while kill -0 "$vmm_pid" 2>/dev/null; do
	for i in "${!stages[@]}"; do
		[ -z "${seen[$i]:-}" ] &&
			tr -d '\r' <"$TMP/boot.console" | grep -qE "${stages[$i]}" &&
			seen[$i]=$(($(date +%s) - start))
	done
	if tr -d '\r' <"$TMP/boot.console" | grep -qE "$done_re"; then
		sleep 1		# the rest of iPXE's line
		kill -TERM "$vmm_pid" 2>/dev/null
		break
	fi
	if [ $(($(date +%s) - start)) -ge "$TMO" ]; then
		echo "# iPXE not done after $TMO s: stopping vmm-run" >&2
		kill -TERM "$vmm_pid" 2>/dev/null
		break
	fi
	sleep 1
done
wait "$vmm_pid"
echo $? >"$TMP/boot.rc"
vmm_pid=""
secs=$(($(date +%s) - start))
timing=""
for i in "${!stages[@]}"; do
	timing+="${names[$i]} ${seen[$i]:--} s, "
done
echo "# vmm-run ran $secs s (exit $(cat "$TMP/boot.rc")): ${timing%, }"

# SeaBIOS reboots a moment after iPXE gave up (exit 3) when the test's
# SIGTERM comes later than that: either end is a VMM behaving.
check "vmm-run ran until stopped (SIGTERM: 143, or SeaBIOS's reboot after iPXE: 3), no crash" boot 'rc=143|3' \
	'err!guest crashed|stopped on an error'
check "SeaBIOS finds our virtio-net 1af4:1041 and runs the ROM from its ROM BAR" boot \
	'debug~^PCI: init bdf=00:[0-9a-f]{2}\.0 id=1af4:1041' \
	'debug~^Scan for option roms' 'debug~^Running option rom at c[0-9a-f]{3}:0003'
check "iPXE starts: banner on the console (SeaBIOS's sercon)" boot \
	'console~iPXE \(http://ipxe\.org\) 00:[0-9a-f]{2}\.0 C[0-9A-F]00 PCI2\.10 PnP PMM' \
	'console~iPXE initialising devices\.\.\.ok' 'console~iPXE [0-9]+\.[0-9]+\.[0-9]+'
check "iPXE drives our NIC with its virtio-net driver" boot \
	"console~net0: $MAC using virtio-net on 0000:00:[0-9a-f]{2}\.0" \
	'console~Link:up'
check "dnsmasq: DHCPDISCOVER, OFFER, REQUEST and ACK for our MAC" boot \
	"dnsmasq~DHCPDISCOVER\($TAP\) $MAC" \
	"dnsmasq~DHCPOFFER\($TAP\) 10\.0\.2\.[0-9]+ $MAC" \
	"dnsmasq~DHCPREQUEST\($TAP\) 10\.0\.2\.[0-9]+ $MAC" \
	"dnsmasq~DHCPACK\($TAP\) 10\.0\.2\.[0-9]+ $MAC"
lease=$(tr -d '\r' <"$TMP/boot.dnsmasq" | sed -nE "s/.*DHCPACK\($TAP\) (10\.0\.2\.[0-9]+) $MAC.*/\1/p" | tail -1)
if [ -n "$lease" ]; then
	check "iPXE reports the lease dnsmasq gave ($lease)" boot \
		"console~Configuring \(net0 $MAC\)\.* ok" \
		"console~net0: ${lease//./\\.}/255\.255\.255\.0 gw ${HOST_IP//./\\.}"
else
	not_ok "iPXE reports the lease dnsmasq gave" "no DHCPACK for $MAC in dnsmasq's log"
	show_run boot
fi

# Tear down now (the trap is the safety net) and make sure of it.
teardown
if ip netns list 2>/dev/null | grep -qw "$NS"; then
	not_ok "teardown: the namespace (and its TAP) is gone" "$(ip netns list)"
elif [ -n "$(cat "$TMP/dnsmasq.pid" 2>/dev/null)" ] &&
	kill -0 "$(cat "$TMP/dnsmasq.pid")" 2>/dev/null; then
	not_ok "teardown: dnsmasq is gone" "pid $(cat "$TMP/dnsmasq.pid") still runs"
else
	ok "teardown: namespace, TAP and dnsmasq gone"
fi
finish

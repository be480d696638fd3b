#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Firmware boot with Debian's SeaBIOS (package seabios): vmm-run --firmware
# runs it from the reset vector to "No bootable device" (no disk attached),
# and SeaBIOS's own messages show what it found: our i440FX host bridge and
# fw_cfg, the RAM from fw_cfg's etc/e820, the PCI bus, the CPUs. Its debug
# log comes through the debug port (--firmware-log), its screen output
# through COM1 (the console). After the 5 s boot-fail wait it reboots,
# which ends vmm-run with exit code 3. Prints TAP; exits 1 on a failure.
#
# Environment: BUILD (default build), VMMRUN (default $BUILD/bin/vmm-run),
# SEABIOS_DIR (default /usr/share/seabios).
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
VMMRUN=${VMMRUN:-$BUILD/bin/vmm-run}
VMMRUN_ASAN=$BUILD/asan/bin/vmm-run
SEABIOS_DIR=${SEABIOS_DIR:-/usr/share/seabios}
# SeaBIOS takes about 20 s to get there on a PVM host (QEMU, the same).
TMO=240

TMP=$(mktemp -d "${TMPDIR:-/tmp}/test_seabios.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT

# shellcheck source=lib/tap.sh
. tests/integration/lib/tap.sh

# Show what a run left behind, as TAP comments.
show_run() {
	local name=$1 f
	echo "#   exit code: $(cat "$TMP/$name.rc" 2>/dev/null)"
	echo "#   command: $(cat "$TMP/$name.cmd" 2>/dev/null)"
	for f in err console debug; do
		echo "#   $f (last 15 lines):"
		tail -n 15 "$TMP/$name.$f" 2>/dev/null | tr -d '\r' |
			cut -c1-200 | sed 's/^/#     /'
	done
}

# run_vmm NAME [--bin PATH] ARGS...: vmm-run with the console in NAME.console
# and, for --firmware runs, the debug port in NAME.debug.
run_vmm() {
	local name=$1 bin=$VMMRUN; shift
	if [ "${1:-}" = --bin ]; then
		bin=$2; shift 2
	fi
	printf '%q ' "$bin" "$@" >"$TMP/$name.cmd"
	timeout --kill-after=5 "$TMO" "$bin" --console "file:$TMP/$name.console" \
		"$@" </dev/null >"$TMP/$name.out" 2>"$TMP/$name.err"
	echo $? >"$TMP/$name.rc"
}

# check DESC NAME COND...: all must hold:
#   rc=N  exit code;  debug~RE / console~RE / err~RE  that output matches
#   (grep -E; err case-insensitive); nodebug~RE  the debug output does not.
check() {
	local desc=$1 name=$2; shift 2
	local c why=() file
	for c in "$@"; do
		case "$c" in
		rc=*)
			[ "$(cat "$TMP/$name.rc")" = "${c#rc=}" ] ||
				why+=("expected exit code ${c#rc=}, saw $(cat "$TMP/$name.rc")") ;;
		debug~* | console~*)
			file=${c%%~*}
			tr -d '\r' <"$TMP/$name.$file" 2>/dev/null |
				grep -qE -- "${c#*~}" ||
				why+=("expected the $file output to match /${c#*~}/") ;;
		nodebug~*)
			! tr -d '\r' <"$TMP/$name.debug" 2>/dev/null |
				grep -qE -- "${c#nodebug~}" ||
				why+=("expected the debug output not to match /${c#nodebug~}/") ;;
		err~*)
			grep -qEi -- "${c#err~}" "$TMP/$name.err" ||
				why+=("expected stderr to match /${c#err~}/") ;;
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

# --- preconditions -----------------------------------------------------------

if [ ! -x "$VMMRUN" ]; then
	not_ok "vmm-run is built" "missing $VMMRUN (make test-build, same BUILD=)"
	finish
fi
# scripts/deps.sh test installs seabios; this is the fallback for a
# checkout whose test dependencies predate it.
if [ ! -f "$SEABIOS_DIR/bios.bin" ] && [ "$(id -u)" -eq 0 ] &&
	[ "$SEABIOS_DIR" = /usr/share/seabios ]; then
	echo "# installing seabios" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends seabios >/dev/null 2>&1
fi
why_skip=""
if [ ! -f "$SEABIOS_DIR/bios.bin" ]; then
	why_skip="no $SEABIOS_DIR/bios.bin (apt-get install seabios)"
elif [ ! -e /dev/kvm ]; then
	why_skip="no /dev/kvm on this host"
elif ! { exec 9<>/dev/kvm; } 2>/dev/null; then
	why_skip="cannot open /dev/kvm read-write (not root, not in the kvm group?)"
else
	exec 9>&-
fi
if [ -n "$why_skip" ]; then
	skip "SeaBIOS boot: $why_skip"
	finish
fi
BIOS=$SEABIOS_DIR/bios.bin

# --- SeaBIOS to "No bootable device" -----------------------------------------

# One virtio device of each kind vmm-run has, for SeaBIOS to find on the bus.
run_vmm basic --firmware "$BIOS" --memory 64M --firmware-log "$TMP/basic.debug" \
	--virtio-console "file:$TMP/basic.hvc"
check "bios.bin runs to 'No bootable device' and reboots (exit 3)" basic rc=3 \
	'debug~^SeaBIOS \(version ' 'debug~No bootable device' \
	'debug~^Rebooting\.' 'err~guest asked to reboot'
check "SeaBIOS finds our i440FX host bridge and fw_cfg" basic \
	'debug~^Running on QEMU \(i440fx\)' 'debug~^Found QEMU fw_cfg'
check "SeaBIOS takes 64 MiB of RAM from etc/e820, the ACPI tables reserved at its top" basic \
	'debug~^qemu/e820: addr 0x0000000000000000 len 0x0000000004000000 \[RAM\]' \
	'debug~^  [0-9]: 0000000000100000 - 0000000003f[0-9a-f]{5} = 1 RAM' \
	'debug~^  [0-9]: 0000000003f[0-9a-f]{5} - 0000000004000000 = 2 RESERVED'
# SeaBIOS carries out etc/table-loader (it then moves its PM base) and
# looks for the RSDP in the F segment: not finding it is an "internal
# error" in its log.
check "SeaBIOS places our ACPI tables from etc/table-loader and finds the RSDP" basic \
	'debug~^Moving pm_base to 0x600' 'nodebug~internal error'
check "SeaBIOS enumerates the PCI bus: host bridge, virtio-console, virtio-rng" basic \
	'debug~^=== PCI device probing ===' 'debug~^Found 3 PCI devices' \
	'debug~^PCI: init bdf=00:00\.0 id=8086:1237' \
	'debug~^PCI: init bdf=00:[0-9a-f]{2}\.0 id=1af4:1043' \
	'debug~^PCI: init bdf=00:[0-9a-f]{2}\.0 id=1af4:1044'
bar_re='^PCI: map device bdf=00:[0-9a-f]{2}\.0  bar [0-5], '
bar_re+='addr [89a-f][0-9a-f]{7}, size [0-9a-f]+ \[(mem|prefmem)\]'
check "SeaBIOS places the virtio BARs in the 32-bit PCI window" basic \
	"debug~$bar_re"
check "SeaBIOS prints on the UART (COM1): banner and 'No bootable device'" basic \
	'console~SeaBIOS \(version ' 'console~No bootable device\.  Retrying in 5 seconds'
check "SeaBIOS uses COM1 for its console (etc/sercon-port)" basic \
	'debug~^sercon: using ioport 0x3f8' 'debug~^Found 1 serial ports'

# --- two CPUs, RAM above 4 GiB, the 256 KiB image ----------------------------

host_mib=$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo)
if [ ! -f "$SEABIOS_DIR/bios-256k.bin" ]; then
	skip "bios-256k.bin with 2 CPUs and 3.5 GiB: no $SEABIOS_DIR/bios-256k.bin"
elif [ "${host_mib:-0}" -lt 4096 ]; then
	skip "bios-256k.bin with 2 CPUs and 3.5 GiB: the host has ${host_mib} MiB"
else
	run_vmm big --firmware "$SEABIOS_DIR/bios-256k.bin" --cpus 2 \
		--memory 3584M --firmware-log "$TMP/big.debug"
	check "bios-256k.bin, 2 CPUs, 3.5 GiB: both CPUs, RAM below and above 4 GiB" big \
		rc=3 'debug~^Found 2 cpu\(s\) max supported 2 cpu\(s\)' \
		'debug~^qemu/e820: addr 0x0000000000000000 len 0x00000000c0000000 \[RAM\]' \
		'debug~^qemu/e820: addr 0x0000000100000000 len 0x0000000020000000 \[RAM\]' \
		'debug~^  [0-9]: 0000000100000000 - 0000000120000000 = 1 RAM' \
		'debug~No bootable device'
fi

# --- no debug listener: SeaBIOS keeps its log to itself ------------------------

if [ -x "$VMMRUN_ASAN" ]; then
	run_vmm quiet --bin "$VMMRUN_ASAN" --firmware "$BIOS" --memory 32M
	check "without --firmware-log (ASan build): console only, still to 'No bootable device'" \
		quiet rc=3 'console~SeaBIOS \(version ' 'console~No bootable device'
	if grep -qE 'AddressSanitizer|runtime error' "$TMP/quiet.err"; then
		not_ok "the ASan build reports no error" \
			"$(grep -m3 -E 'AddressSanitizer|runtime error' "$TMP/quiet.err")"
	else
		ok "the ASan build reports no error"
	fi
else
	run_vmm quiet --firmware "$BIOS" --memory 32M
	check "without --firmware-log: console only, still to 'No bootable device'" \
		quiet rc=3 'console~SeaBIOS \(version ' 'console~No bootable device'
fi

# --- a real driver: SeaBIOS boots from our virtio-blk -------------------------
# A boot sector built here: prints a marker on COM1, then powers off through
# the ACPI PM1a control register (SLP_TYP 5 | SLP_EN).
cat >"$TMP/bootsect.S" <<'EOS'
	.code16
	.globl _start
_start:
	cli
	xor %ax, %ax
	mov %ax, %ds
	mov $msg, %si
1:	lodsb
	test %al, %al
	jz 2f
	mov $0x3f8, %dx
	out %al, %dx
	jmp 1b
2:	mov $0x604, %dx
	mov $0x3400, %ax
	out %ax, %dx
3:	hlt
	jmp 3b
msg:	.asciz "VMMD-BOOTSECTOR-OK\r\n"
	.org 510
	.byte 0x55, 0xaa
EOS
if gcc -c "$TMP/bootsect.S" -o "$TMP/bootsect.o" &&
   ld -Ttext=0x7c00 --oformat binary -o "$TMP/bootsect.bin" "$TMP/bootsect.o"; then
	cp "$TMP/bootsect.bin" "$TMP/disk.img"
	truncate -s 1M "$TMP/disk.img"
	run_vmm diskboot --firmware "$BIOS" --memory 64M --disk "$TMP/disk.img,serial=bootdisk" \
		--firmware-log "$TMP/diskboot.debug"
	check "SeaBIOS boots from our virtio-blk: its boot sector runs and powers off (exit 0)" \
		diskboot rc=0 'console~Booting from Hard Disk' 'console~VMMD-BOOTSECTOR-OK'
	if grep -aqE "found virtio-blk|virtio-blk|Searching bootorder" "$TMP/diskboot.debug" &&
	   grep -aq "1af4:1042" "$TMP/diskboot.debug"; then
		ok "SeaBIOS's own log shows our virtio-blk (1af4:1042) and its driver"
	else
		not_ok "SeaBIOS's own log shows our virtio-blk (1af4:1042) and its driver" \
			"$(grep -a -iE 'virtio|1af4' "$TMP/diskboot.debug" | head -5)"
	fi
else
	not_ok "assembling the boot sector" "gcc/ld failed"
fi

# --- bad input: exit 2 before the guest starts --------------------------------

run_vmm missing --firmware "$TMP/nonexistent.bin"
check "a missing image: exit 2 naming it" missing rc=2 \
	'err~firmware .*nonexistent\.bin.*No such file'
head -c 1000 "$BIOS" >"$TMP/short.bin"
run_vmm short --firmware "$TMP/short.bin"
check "an image that is not a multiple of 4 KiB: exit 2" short rc=2 \
	'err~multiple of 4 KiB'
run_vmm both --firmware "$BIOS" --kernel "$BIOS"
check "--firmware with --kernel: exit 2" both rc=2 'err~--firmware'
run_vmm nolog --kernel "$BIOS" --firmware-log "$TMP/x.log"
check "--firmware-log without --firmware: exit 2" nolog rc=2 'err~needs --firmware'

finish

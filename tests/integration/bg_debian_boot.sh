#!/bin/bash
# The unmodified Debian kernel, checked by its own boot log. One boot per
# test run (it takes many minutes on a host without hardware
# virtualization): `start` boots it in the background as the suite begins,
# `check` waits for it and reports, in TAP.
#
# Booted with 2 vCPUs and 4 GiB; the kernel's log must show our e820 map,
# our ACPI tables, the vCPU count, the memory size and the command line.
# Where the kernel reaches its init, the guest's marker, the vCPUs and
# memory it reports, and poweroff ending vmm-run with 0.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
dir=$BUILD/test-logs/debian-boot
kernel=$BUILD/guest/vmlinuz
initrd=$BUILD/guest/initrd.img
# How long to let the guest run. A host with hardware virtualization boots
# in seconds; a PVM host needs many minutes for the whole road to init.
if [ -d /sys/module/kvm_pvm ]; then
	deadline=${VMMD_BOOT_TIMEOUT:-1500}
else
	deadline=${VMMD_BOOT_TIMEOUT:-300}
fi
cmdline="console=ttyS0 earlyprintk=serial panic=-1 vmmd.poweroff vmmdtest=cmdline-seen"

start() {
	rm -rf "$dir"
	mkdir -p "$dir"
	if [ ! -e /dev/kvm ] || [ ! -f "$kernel" ]; then
		echo "skip" >"$dir/status"
		return
	fi
	date +%s >"$dir/t0"
	timeout --signal=TERM --kill-after=10 "$deadline" \
		"$BUILD/bin/vmm-run" --kernel "$kernel" --initrd "$initrd" \
		--cpus 2 --memory 4G --cmdline "$cmdline" \
		--console "file:$dir/console.log" --stats \
		>"$dir/stdout.log" 2>"$dir/stderr.log"
	echo $? >"$dir/rc.tmp"
	date +%s >"$dir/t1"
	mv "$dir/rc.tmp" "$dir/rc"
}

n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
notok() { n=$((n + 1)); echo "not ok $n - $*"; }
skip() { n=$((n + 1)); echo "ok $n # SKIP $*"; }
# expect DESC REGEX: one TAP line for a pattern in the console log.
expect() {
	if grep -aEq "$2" "$dir/console.log"; then
		ok "$1: $(grep -aEm1 "$2" "$dir/console.log" | tr -d '\r' | cut -c1-120)"
	else
		notok "$1 (no line matching /$2/ in $dir/console.log)"
	fi
}
# When did a log line first show, in seconds since the start (by polling)?
stage_times() {
	[ -f "$dir/stages" ] && sed 's/^/# stage: /' "$dir/stages"
}

check() {
	local waited=0
	if [ ! -e /dev/kvm ]; then
		skip "no /dev/kvm on this host: the Debian kernel cannot boot"
		return 0
	fi
	if [ ! -f "$kernel" ]; then
		notok "the reference guest is missing ($kernel): run make guest"
		return 1
	fi
	if [ ! -d "$dir" ]; then
		# Run on its own (not from tests/run.sh): boot now.
		start &
		sleep 1
	fi
	# Note when each stage first shows, while waiting for the end.
	: >"$dir/stages.tmp"
	local t0
	t0=$(cat "$dir/t0" 2>/dev/null || date +%s)
	while [ ! -f "$dir/rc" ]; do
		for s in "Linux version" "BIOS-e820" "ACPI: RSDP" "Allowing" \
			"Memory:" "Freeing SMP alternatives" "smp: Brought up" \
			"Trying to unpack rootfs" "Freeing unused kernel" \
			"VMMD-GUEST-READY" "VMMD-GUEST-INFO"; do
			if ! grep -q "^$s	" "$dir/stages.tmp" 2>/dev/null &&
			   grep -aq "$s" "$dir/console.log" 2>/dev/null; then
				printf '%s\t%s s\n' "$s" $(( $(date +%s) - t0 )) >>"$dir/stages.tmp"
			fi
		done
		sleep 2
		waited=$((waited + 2))
		if [ $waited -gt $((deadline + 120)) ]; then
			break
		fi
	done
	mv "$dir/stages.tmp" "$dir/stages"
	local rc
	rc=$(cat "$dir/rc" 2>/dev/null || echo none)
	local t1
	t1=$(cat "$dir/t1" 2>/dev/null || date +%s)
	echo "# vmm-run exit code: $rc after $((t1 - t0)) s (deadline $deadline s)"
	stage_times
	sed 's/^/# stderr: /' "$dir/stderr.log" | tail -n 25

	expect "kernel booted" "Linux version [0-9]"
	expect "command line reached the kernel" "Command line: .*vmmdtest=cmdline-seen"
	expect "e820: low RAM" "BIOS-e820: \[mem 0x0000000000000000-0x000000000009fbff\] usable"
	expect "e820: reserved below 1 MiB" "BIOS-e820: \[mem 0x000000000009fc00-0x00000000000fffff\] reserved"
	expect "e820: RAM up to the PCI hole" "BIOS-e820: \[mem 0x0000000000100000-0x00000000bfffffff\] usable"
	expect "e820: RAM above 4 GiB" "BIOS-e820: \[mem 0x0000000100000000-0x000000013fffffff\] usable"
	expect "ACPI: our RSDP" "ACPI: RSDP 0x00000000000E0000"
	expect "ACPI: our XSDT" "ACPI: XSDT 0x"
	expect "ACPI: our FADT" "ACPI: FACP 0x"
	expect "ACPI: our MADT" "ACPI: APIC 0x"
	expect "ACPI: our DSDT" "ACPI: DSDT 0x"
	expect "2 vCPUs found" "Allowing 2 CPUs"
	# 4 GiB less the holes below 1 MiB and the kernel's own reservations.
	if grep -aEq "Memory: [0-9]+K/(41[0-9]{5})K available" "$dir/console.log"; then
		ok "memory size: $(grep -aEom1 'Memory: [0-9]+K/[0-9]+K' "$dir/console.log")"
	elif grep -aq "Memory:" "$dir/console.log"; then
		notok "memory size: expected about 4194300K in total, saw $(grep -aEom1 'Memory: [0-9]+K/[0-9]+K' "$dir/console.log")"
	elif [ -d /sys/module/kvm_pvm ] && [ "$rc" != 0 ]; then
		skip "memory size: the kernel did not get as far as its Memory: line on this PVM host"
	else
		notok "memory size: no Memory: line"
	fi

	if grep -aq "VMMD-GUEST-READY" "$dir/console.log"; then
		ok "the kernel reached its init (VMMD-GUEST-READY)"
		expect "the guest sees 2 vCPUs" "VMMD-GUEST-INFO vcpus=2 "
		if grep -aEq "VMMD-GUEST-INFO .*mem_kib=(3[89][0-9]{5}|40[0-9]{5}|41[0-9]{5}) " "$dir/console.log"; then
			ok "the guest sees about 4 GiB"
		else
			notok "the guest's memory: $(grep -a VMMD-GUEST-INFO "$dir/console.log")"
		fi
		if [ "$rc" = 0 ]; then
			ok "guest poweroff ended vmm-run with 0"
		else
			notok "guest poweroff: vmm-run exit code $rc, expected 0"
		fi
	else
		local last
		last=$(tr -d '\r' <"$dir/console.log" | grep -av '^\s*$' | tail -n 1 | cut -c1-100)
		local why
		why=$(grep -aE "guest crashed|stopped" "$dir/stderr.log" | tail -n 1 | cut -c1-200)
		if [ -d /sys/module/kvm_pvm ]; then
			skip "full boot to init: not reached on this PVM host in $((t1 - t0)) s (exit $rc; last line: '$last'; $why)"
		else
			notok "full boot to init: not reached in $((t1 - t0)) s (exit $rc; last line: '$last'; $why)"
		fi
	fi
	# Nothing that would mean a VMM bug.
	if grep -aEq "vmm-run: error: (stopped on an error|.*internal error)" "$dir/stderr.log"; then
		notok "vmm-run reported an internal error: $(grep -aE 'stopped on an error|internal error' "$dir/stderr.log" | head -1)"
	else
		ok "no VMM internal error"
	fi
}

case "${1:-check}" in
start) start ;;
check) check ;;
*) echo "usage: $0 start|check" >&2; exit 2 ;;
esac

#!/bin/bash
# The unmodified Debian kernel, checked by its own boot log. One boot per
# test run (it takes many minutes on a host without hardware
# virtualization): `start` boots it in the background as the suite begins,
# `check` waits for it and reports, in TAP.
#
# Two boots, started together. "large": 2 vCPUs and 4 GiB, until the
# kernel printed its memory size (initializing 4 GiB of struct pages is
# minutes of emulated kernel code on a PVM host, so this one stops there);
# its log must show our e820 map split around the PCI hole, our ACPI
# tables, the vCPU count, the memory size and the command line. "full":
# 512 MiB (2 vCPUs; 1 on a PVM host, see below), on the whole road: where
# the kernel reaches its init,
# the guest's marker, the vCPUs and memory it reports, and poweroff ending
# vmm-run with 0.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
dir=$BUILD/test-logs/debian-boot
kernel=$BUILD/guest/vmlinuz
initrd=$BUILD/guest/initrd.img
# How long to let the guest run. A host with hardware virtualization boots
# in seconds; a PVM host needs many minutes for the whole road to init.
if [ -d /sys/module/kvm_pvm ]; then
	# About 1850-2400 s to init, 550 more to poweroff (2026-11-28).
	deadline=${VMMD_BOOT_TIMEOUT:-3400}
	# Work the kernel does at boot that changes nothing the test checks,
	# and that costs minutes where kernel code is emulated: the crypto
	# self-tests, zeroing every allocation, auditing, and rewriting the
	# trace events' formats (trace_eval_init: about four minutes alone,
	# and with two vCPUs it holds up stop_machine()). One vCPU for the
	# full boot: its init is serial, and a second vCPU thread would take
	# the host CPU the rest of the suite runs on. The "large" boot still
	# shows "Allowing 2 CPUs".
	pvm_fast="cryptomgr.notests init_on_alloc=0 audit=0 initcall_blacklist=trace_eval_init"
	full_cpus=1
else
	deadline=${VMMD_BOOT_TIMEOUT:-300}
	pvm_fast=""
	full_cpus=2
fi
cmdline="console=ttyS0 earlyprintk=serial panic=-1 vmmd.poweroff vmmdtest=cmdline-seen"
# What the full boot's init runs (URL-encoded for vmmd.run=, see
# tests/guest/README.md): write a file on /dev/vda, read /dev/hwrng, write
# to hvc0; and what the second boot runs: read the file back.
#   mount -t ext4 /dev/vda /mnt && echo vmmd-disk-$(cat /sys/block/vda/serial 2>/dev/null)-ok > /mnt/f && sync && umount /mnt && echo DISK-WRITTEN; echo RNG-BYTES $(head -c 64 /dev/hwrng | wc -c); echo hello-from-hvc0 > /dev/hvc0 && echo HVC0-WRITTEN
#   mount -t ext4 /dev/vda /mnt && echo DISK-READ $(cat /mnt/f) && umount /mnt
write_q="mount+-t+ext4+%2Fdev%2Fvda+%2Fmnt+%26%26+echo+vmmd-disk-%24%28cat+%2Fsys%2Fblock%2Fvda%2Fserial+2%3E%2Fdev%2Fnull%29-ok+%3E+%2Fmnt%2Ff+%26%26+sync+%26%26+umount+%2Fmnt+%26%26+echo+DISK-WRITTEN%3B+echo+RNG-BYTES+%24%28head+-c+64+%2Fdev%2Fhwrng+%7C+wc+-c%29%3B+echo+hello-from-hvc0+%3E+%2Fdev%2Fhvc0+%26%26+echo+HVC0-WRITTEN"
read_q="mount+-t+ext4+%2Fdev%2Fvda+%2Fmnt+%26%26+echo+DISK-READ+%24%28cat+%2Fmnt%2Ff%29+%26%26+umount+%2Fmnt"

# boot NAME MEMORY STOP_AT [KERNEL INITRD]: one vmm-run in $dir/NAME;
# STOP_AT, when not empty, is a console line after which the VM is stopped
# (SIGTERM).
boot() {
	local name=$1 mem=$2 stop_at=$3 d=$dir/$1
	local k=${4:-$kernel} i=${5:-$initrd}
	local cl=${BOOT_CMDLINE:-$cmdline}
	local -a extra=(${BOOT_EXTRA:-})
	mkdir -p "$d"
	date +%s >"$d/t0"
	: >"$d/console.log"
	timeout --signal=TERM --kill-after=10 "$deadline" \
		"$BUILD/bin/vmm-run" --kernel "$k" --initrd "$i" \
		--cpus "${BOOT_CPUS:-2}" --memory "$mem" --cmdline "$cl" "${extra[@]}" \
		--console "file:$d/console.log" --stats \
		>"$d/stdout.log" 2>"$d/stderr.log" &
	local pid=$!
	if [ -n "$stop_at" ]; then
		while kill -0 $pid 2>/dev/null; do
			if grep -aq "$stop_at" "$d/console.log"; then
				sleep 1
				pkill -TERM -P $pid 2>/dev/null
				break
			fi
			sleep 1
		done
	fi
	wait $pid
	echo $? >"$d/rc.tmp"
	date +%s >"$d/t1"
	mv "$d/rc.tmp" "$d/rc"
}

start() {
	rm -rf "$dir"
	mkdir -p "$dir"
	if [ ! -e /dev/kvm ] || [ ! -f "$kernel" ]; then
		echo "skip" >"$dir/status"
		return
	fi
	boot large 4G "Memory: " &
	# The full boot carries a disk (ext4, made here), hvc0 and the rng;
	# its init writes a file on the disk, reads /dev/hwrng and writes to
	# hvc0. A second boot reads the file back (after the first powered off).
	if mkfs.ext4 -q -F -L vmmdtest "$dir/disk.img" 32M >/dev/null 2>&1; then
		full_extra="--disk $dir/disk.img,serial=vmmdtestdisk --virtio-console file:$dir/hvc0.log"
	else
		full_extra=""
	fi
	( BOOT_EXTRA=$full_extra BOOT_CPUS=$full_cpus \
	  BOOT_CMDLINE="$cmdline $pvm_fast vmmd.run=$write_q" boot full 512M ""
	  # A second full boot doubles the time on a PVM host (tens of
	  # minutes): there the read-back is skipped.
	  if grep -aq "VMMD-GUEST-RUN-EXIT" "$dir/full/console.log" && [ -n "$full_extra" ] &&
	     [ ! -d /sys/module/kvm_pvm ]; then
		BOOT_EXTRA="--disk $dir/disk.img,serial=vmmdtestdisk" \
		BOOT_CMDLINE="$cmdline vmmd.run=$read_q" boot again 512M ""
	  fi ) &
	# Debian's other kernel (linux-image-amd64, xz payload): the same
	# platform, as far as its ACPI tables.
	if [ -f "$BUILD/guest/vmlinuz-generic" ]; then
		boot generic 512M "ACPI: APIC" "$BUILD/guest/vmlinuz-generic" \
			"$BUILD/guest/initrd-generic.img" &
	fi
	wait
}

n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
notok() { n=$((n + 1)); echo "not ok $n - $*"; }
skip() { n=$((n + 1)); echo "ok $n # SKIP $*"; }
# Why a full boot's later line is missing when the deadline stopped it.
late_reason() {
	echo "not printed before the ${deadline} s deadline stopped the guest on this PVM host, where its kernel code runs emulated (last line: '$(tr -d '\r' <"$dir/full/console.log" | grep -av '^\s*$' | tail -n 1 | cut -c1-80)')"
}
# expect_late BOOT DESC REGEX: as expect, but a skip when the deadline
# stopped a PVM boot first ($late, set in check).
expect_late() {
	if [ "$late" = 1 ] && ! grep -aEq "$3" "$dir/$1/console.log"; then
		skip "$1 boot: $2: $(late_reason)"
	else
		expect "$@"
	fi
}
# expect BOOT DESC REGEX: one TAP line for a pattern in a boot's console.
expect() {
	local log=$dir/$1/console.log
	if grep -aEq "$3" "$log"; then
		ok "$1 boot: $2: $(grep -aEm1 "$3" "$log" | tr -d '\r' | cut -c1-110)"
	else
		notok "$1 boot: $2 (no line matching /$3/ in $log)"
	fi
}

stages="Linux version|BIOS-e820|ACPI: RSDP|Allowing|Memory:|Freeing SMP alternatives|smp: Brought up|Trying to unpack rootfs|Freeing unused kernel|Run /init|VMMD-GUEST-READY|VMMD-GUEST-INFO|VMMD-GUEST-POWEROFF"

# Wait for a boot to end, noting when each stage first shows.
wait_boot() {
	local d=$dir/$1 t0 waited=0 s
	t0=$(cat "$d/t0" 2>/dev/null || date +%s)
	touch "$d/stages"
	while [ ! -f "$d/rc" ] && [ $waited -le $((deadline + 120)) ]; do
		IFS='|'
		for s in $stages; do
			if ! grep -q "^$s	" "$d/stages" &&
			   grep -aq "$s" "$d/console.log" 2>/dev/null; then
				printf '%s\t%s s\n' "$s" $(( $(date +%s) - t0 )) >>"$d/stages"
			fi
		done
		unset IFS
		sleep 2
		waited=$((waited + 2))
	done
	echo "# $1 boot: vmm-run exit code $(cat "$d/rc" 2>/dev/null || echo none)" \
		"after $(( $(cat "$d/t1" 2>/dev/null || date +%s) - t0 )) s (deadline $deadline s)"
	sed "s/^/# $1 boot: stage at /" "$d/stages"
	sed "s/^/# $1 boot: stderr: /" "$d/stderr.log" | tail -n 12
}

check() {
	if [ ! -e /dev/kvm ]; then
		skip "no /dev/kvm on this host: the Debian kernel cannot boot"
		return 0
	fi
	if [ ! -f "$kernel" ]; then
		notok "the reference guest is missing ($kernel): run make guest"
		return 1
	fi
	if [ ! -d "$dir/large" ]; then
		# Run on its own (not from tests/run.sh): boot now.
		start &
		sleep 2
	fi
	wait_boot large
	wait_boot full
	[ -d "$dir/generic" ] && wait_boot generic

	expect large "kernel booted" "Linux version [0-9]"
	expect large "command line reached the kernel" "Command line: .*vmmdtest=cmdline-seen"
	expect large "e820: low RAM" "BIOS-e820: \[mem 0x0000000000000000-0x000000000009fbff\] usable"
	expect large "e820: reserved below 1 MiB" "BIOS-e820: \[mem 0x000000000009fc00-0x00000000000fffff\] reserved"
	expect large "e820: RAM up to the PCI hole" "BIOS-e820: \[mem 0x0000000000100000-0x00000000bfffffff\] usable"
	expect large "e820: RAM above 4 GiB" "BIOS-e820: \[mem 0x0000000100000000-0x000000013fffffff\] usable"
	expect large "ACPI: our RSDP" "ACPI: RSDP 0x00000000000E0000"
	expect large "ACPI: our XSDT" "ACPI: XSDT 0x"
	expect large "ACPI: our FADT" "ACPI: FACP 0x"
	expect large "ACPI: our MADT" "ACPI: APIC 0x"
	expect large "ACPI: our DSDT" "ACPI: DSDT 0x"
	expect large "2 vCPUs found through the MADT" "Allowing 2 CPUs"
	# 4 GiB, less what the kernel keeps for itself below 1 MiB and in the
	# first page: it counts about 4193900K.
	expect large "memory size" "Memory: [0-9]+K/419[0-9]{4}K available"
	expect full "$full_cpus vCPU(s) found" "Allowing $full_cpus CPUs"
	expect full "memory size" "Memory: [0-9]+K/52[0-9]{4}K available"

	if [ -d "$dir/generic" ] && [ -d /sys/module/kvm_pvm ] &&
	   ! grep -aq "ACPI: APIC" "$dir/generic/console.log"; then
		# Before its first line the generic kernel clears a 17 MiB
		# .bss with one rep stosb, which PVM emulates byte by byte.
		skip "generic boot: the generic kernel did not reach its ACPI tables within $deadline s on this PVM host (last line: '$(tr -d '\r' <"$dir/generic/console.log" | tail -n 1 | cut -c1-80)')"
	elif [ -d "$dir/generic" ]; then
		expect generic "the generic kernel booted" "Linux version [0-9.-]+amd64 "
		expect generic "command line" "Command line: .*vmmdtest=cmdline-seen"
		expect generic "e820" "BIOS-e820: \[mem 0x0000000000100000-0x000000001fffffff\] usable"
		expect generic "ACPI: our MADT" "ACPI: APIC 0x"
	else
		notok "generic boot: $BUILD/guest/vmlinuz-generic is missing (make guest builds it)"
	fi

	local log=$dir/full/console.log rc late=0
	rc=$(cat "$dir/full/rc" 2>/dev/null || echo none)
	# On a PVM host the deadline may end the boot while the guest is
	# still on its way (vmm-run stopped: 124 or 143); what it had not
	# printed by then is a skip with the reason, not a failure.
	if [ -d /sys/module/kvm_pvm ] && { [ "$rc" = 124 ] || [ "$rc" = 143 ]; }; then
		late=1
	fi
	if grep -aq "VMMD-GUEST-READY" "$log"; then
		ok "full boot: the kernel ran its init, which printed VMMD-GUEST-READY"
		if [ -d /sys/module/kvm_pvm ]; then
			ok "full boot: init's system calls reached the kernel through vmm-run's syscall bridge ($(grep -aoE 'pvm_syscalls=[0-9]+' "$dir/full/stderr.log" | head -n 1))"
		fi
		expect_late full "the guest sees $full_cpus vCPU(s)" "VMMD-GUEST-INFO vcpus=$full_cpus "
		expect_late full "the guest sees its memory" "VMMD-GUEST-INFO .* mem_kib=(4[6-9][0-9]{4}|5[0-2][0-9]{4}) "
		expect_late full "the initramfs loaded the virtio modules" "VMMD-GUEST-VIRTIO .*virtio_blk"
		# Enabling each virtio function looks its INTA# up in the
		# DSDT's _PRT; without one Linux says it cannot route it.
		if grep -aq "virtio-pci .*enabling device" "$log"; then
			if grep -aqE "can't derive routing for PCI INT|PCI INT [A-D]: no GSI" "$log"; then
				notok "full boot: the virtio functions' INTx routed by our _PRT ('$(grep -aEm1 "can't derive routing|no GSI" "$log" | tr -d '\r' | cut -c1-100)')"
			else
				ok "full boot: the virtio functions' INTx routed by our _PRT (no 'can't derive routing')"
			fi
		fi
		expect_late full "a file written on /dev/vda and synced" "^DISK-WRITTEN"
		expect_late full "the guest reads /dev/hwrng" "^RNG-BYTES 64"
		if grep -aq "hello-from-hvc0" "$dir/hvc0.log" 2>/dev/null; then
			ok "full boot: the guest wrote to hvc0 (virtio-console)"
		elif [ $late = 1 ]; then
			skip "full boot: hvc0: $(late_reason)"
		else
			notok "full boot: nothing from hvc0 in $dir/hvc0.log"
		fi
		if [ "$rc" = 0 ]; then
			ok "full boot: guest poweroff ended vmm-run with 0"
		elif [ $late = 1 ]; then
			skip "full boot: guest poweroff: $(late_reason)"
		else
			notok "full boot: guest poweroff: vmm-run exit code $rc, expected 0"
		fi
		if [ -d /sys/module/kvm_pvm ]; then
			skip "again boot: reading the file back needs a second full boot, tens of minutes more on this PVM host"
		else
			# The second boot starts once the first has ended.
			local w=0
			while [ ! -d "$dir/again" ] && [ $w -lt 30 ] && [ -s "$dir/disk.img" ]; do
				sleep 1
				w=$((w + 1))
			done
			[ -d "$dir/again" ] && wait_boot again
			expect again "the file reads back on the next boot" "^DISK-READ vmmd-disk-vmmdtestdisk-ok"
		fi
	elif grep -aq "Run /init as init process" "$log"; then
		ok "full boot: the kernel reached its init ($(grep -aEm1 'Run /init as init process' "$log" | tr -d '\r' | cut -c1-60))"
		if grep -aq "Attempted to kill init" "$log"; then
			# Before the syscall bridge, init died here on PVM: its
			# first SYSCALL faulted at entry_SYSCALL_64 in user mode.
			notok "full boot: /init died before its first line ('$(grep -aEm1 'segfault at|Attempted to kill init' "$log" | tr -d '\r' | cut -c1-100)')"
		elif [ $late = 1 ]; then
			skip "full boot: the guest's marker: $(late_reason)"
		else
			notok "full boot: the kernel ran /init but the guest's marker never came (exit $rc; last line: '$(tr -d '\r' <"$log" | grep -av '^\s*$' | tail -n 1 | cut -c1-100)')"
		fi
	else
		local last why
		last=$(tr -d '\r' <"$log" | grep -av '^\s*$' | tail -n 1 | cut -c1-100)
		why=$(grep -aE "guest crashed|stopped" "$dir/full/stderr.log" | tail -n 1 | cut -c1-240)
		if [ -d /sys/module/kvm_pvm ]; then
			skip "full boot to init needs more than $deadline s or an instruction we do not emulate yet on this PVM host (exit $rc; last line: '$last'; $why)"
		else
			notok "full boot to init: not reached (exit $rc; last line: '$last'; $why)"
		fi
	fi
	for b in large full again generic; do
		[ -d "$dir/$b" ] || continue
		rc=$(cat "$dir/$b/rc" 2>/dev/null || echo none)
		case $rc in
		0|3|4|124|143) ok "$b boot: vmm-run ended as a VMM should (exit $rc)" ;;
		*) notok "$b boot: vmm-run exit code $rc (expected 0 poweroff, 3 reboot (panic=-1 after a panic), 4 guest crash, 124 or 143 stopped)" ;;
		esac
		if grep -aEq "stopped on an error|internal error" "$dir/$b/stderr.log"; then
			notok "$b boot: vmm-run reported an error of its own: $(grep -aE 'stopped on an error|internal error' "$dir/$b/stderr.log" | head -1)"
		else
			ok "$b boot: no error of vmm-run's own"
		fi
	done
}

case "${1:-check}" in
start) start ;;
check) check ;;
*) echo "usage: $0 start|check" >&2; exit 2 ;;
esac

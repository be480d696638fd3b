#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The benchmarks (bench/README.md): vmm-run beside QEMU, our exit path
# beside a bare KVM_RUN loop, our virtio-blk, virtio-net and vsock
# devices beside bare loops on the same file, TAP and sockets, vmmd's
# RPC latency and VM start rate, and noisy neighbours (CPU weight and
# quota through vmmd's cgroups, disk and NIC limits). Prints what
# each run measured, then a table of medians, ratios and targets (MET /
# MISSED), and writes the same as key=value lines to
# $BUILD/bench/results.txt.
#
# A missed target does not fail: the machine is shared and noisy. The exit
# status is 1 only when a measurement could not be taken at all.
#
# Environment (defaults in brackets):
#   BUILD [build], VMMRUN [$BUILD/bin/vmm-run], QEMU [qemu-system-x86_64]
#   BENCH_KERNEL [$BUILD/guest/vmlinuz]
#   BENCH_ONLY            comma list of startup,linux,exits,blk,net,vsock,rpc,
#                         noisy [all eight]
#   BENCH_STARTUP_RUNS    exec -> first UART byte runs, tiny kernel [7]
#   BENCH_VMM_RUNS        vmm-run Debian kernel runs [3]
#   BENCH_VMM_TIMEOUT     seconds for vmm-run's first kernel line [600]
#   BENCH_QEMU_RUNS       QEMU Debian kernel runs, 0 to skip QEMU [1]
#   BENCH_QEMU_TIMEOUT    seconds for QEMU's first kernel line [900]
#   BENCH_QEMU_CPU        QEMU -cpu model [host,-arch-capabilities]
#   BENCH_MEM_SECONDS     memory sampled this long after the line [2]
#   BENCH_EXIT_RUNS       runs of each exit-cost program [7]
#   BENCH_EXIT_ITERS      port writes per run [100000]
#   BENCH_NET_RUNS        runs of each virtio-net measurement [7]
#   BENCH_NET_SECONDS     seconds per virtio-net run [1]
#   BENCH_VSOCK_RUNS      runs of each vsock stream [7]
#   BENCH_VSOCK_MIB       MiB per vsock stream [256]
#   VMMD                  the vmmd to measure [$BUILD/bin/vmmd]
#   BENCH_RPC_SECONDS     seconds per vm.list run [2]
#   BENCH_RPC_VMS         VMs created and started at once [20]
#   BENCH_RPC_THREADS     client threads creating them [4]
#   BENCH_NOISY_SECONDS   seconds per CPU-share measurement [10]
#   BENCH_NOISY_BLK_SECONDS  seconds per disk- and NIC-limit measurement [5]
#   BENCH_NOISY_DIR       where the two disk images go (not tmpfs) [/var/tmp]
#   BENCH_GUEST           fio (blk) and iperf3 (net) inside a Linux guest on
#                         vmm-run and on QEMU: 1 runs them, 0 skips them
#                         [auto: on hardware virtualization only; a PVM host
#                         cannot boot the guest to userspace in useful time]
#   BENCH_GUEST_INITRD    the bench image [$BUILD/guest/initrd-bench.img]
#   BENCH_GUEST_RUNS      boots of each VMM for each tool, ABBA, medians [3]
#   BENCH_GUEST_SECONDS   seconds per fio job and of iperf3 [10]
#   BENCH_GUEST_RAMP      fio warm-up seconds before each job [2]
#   BENCH_GUEST_TIMEOUT   seconds for each guest boot, exec to poweroff [300]
#   BENCH_GUEST_CPUS      vCPUs of both VMMs' guests [2]
#   BENCH_GUEST_MEM_MIB   memory of both VMMs' guests [1024]
#   BENCH_GUEST_DISK_MIB  size of the guest's disk image (in $BUILD/bench) [1024]
set -u
cd "$(dirname "$0")/.." || exit 1

BUILD=${BUILD:-build}
VMMRUN=${VMMRUN:-$BUILD/bin/vmm-run}
VMMD=${VMMD:-$BUILD/bin/vmmd}
QEMU=${QEMU:-qemu-system-x86_64}
KERNEL=${BENCH_KERNEL:-$BUILD/guest/vmlinuz}
TESTGUEST=$BUILD/guest-tests/testguest.elf
BB=$BUILD/bench
FIRSTLINE=$BB/firstline
OUTLOOP=$BB/outloop.bin
RESULTS=$BB/results.txt
LOGS=$BB/logs

ONLY=${BENCH_ONLY:-startup,linux,exits,blk,net,vsock,rpc,noisy}
STARTUP_RUNS=${BENCH_STARTUP_RUNS:-7}
VMM_RUNS=${BENCH_VMM_RUNS:-3}
VMM_TIMEOUT=${BENCH_VMM_TIMEOUT:-600}
QEMU_RUNS=${BENCH_QEMU_RUNS:-1}
QEMU_TIMEOUT=${BENCH_QEMU_TIMEOUT:-900}
QEMU_CPU=${BENCH_QEMU_CPU:-host,-arch-capabilities}
MEM_SECONDS=${BENCH_MEM_SECONDS:-2}
EXIT_RUNS=${BENCH_EXIT_RUNS:-7}
EXIT_ITERS=${BENCH_EXIT_ITERS:-100000}
NET_RUNS=${BENCH_NET_RUNS:-7}
NET_SECONDS=${BENCH_NET_SECONDS:-1}
VSOCK_RUNS=${BENCH_VSOCK_RUNS:-7}
VSOCK_MIB=${BENCH_VSOCK_MIB:-256}
RPC_SECONDS=${BENCH_RPC_SECONDS:-2}
RPC_VMS=${BENCH_RPC_VMS:-20}
RPC_THREADS=${BENCH_RPC_THREADS:-4}
NOISY_SECONDS=${BENCH_NOISY_SECONDS:-10}
NOISY_BLK_SECONDS=${BENCH_NOISY_BLK_SECONDS:-5}
NOISY_DIR=${BENCH_NOISY_DIR:-/var/tmp}
GUEST_MODE=${BENCH_GUEST:-auto}
GUEST_INITRD=${BENCH_GUEST_INITRD:-$BUILD/guest/initrd-bench.img}
GUEST_SECONDS=${BENCH_GUEST_SECONDS:-10}
GUEST_RAMP=${BENCH_GUEST_RAMP:-2}
GUEST_TIMEOUT=${BENCH_GUEST_TIMEOUT:-300}
GUEST_CPUS=${BENCH_GUEST_CPUS:-2}
GUEST_MEM_MIB=${BENCH_GUEST_MEM_MIB:-1024}
GUEST_DISK_MIB=${BENCH_GUEST_DISK_MIB:-1024}
GUEST_RUNS=${BENCH_GUEST_RUNS:-3}

# What the brief fixes for the Linux comparison.
LINUX_CMDLINE="console=ttyS0 earlyprintk=serial"
LINUX_MEM_MIB=512
LINUX_PATTERN="Linux version"
# Targets.
LINUX_RATIO_TARGET=0.10		# vmm-run time / QEMU time, at most
MEM_TARGET_KIB=5120		# Rss beyond guest RAM, at most
EXIT_RATIO_TARGET=0.90		# our exits/s / bare exits/s, at least
DEV_RATIO_TARGET=0.80		# virtio-net, vsock: ours / the bare loop's
RPC_P99_TARGET_MS=5		# vm.list p99 with 16 TLS clients, at most
RPC_START_TARGET=5		# VMs reaching running per host CPU per s, at least
NOISY_SHARE_TARGET=25		# % of the CPU for weight 100 beside 300 ...
NOISY_SHARE_TOL=5		# ... within this many points
NOISY_QUOTA=0.3			# CPUs of quota, and what it should give ...
NOISY_QUOTA_TOL=0.03		# ... within this
NOISY_BLK_TOL=0.05		# disk: ratios within 1 +- this

errors=()
bg_pid=
rpc_tmp=
rpc_vmmd_pid=
noisy_tmp=
noisy_vmmd_pid=
noisy_subtree=vmmd-bench-noisy-$$
guest_ns=
guest_srv_pid=
guest_disk=

# shellcheck disable=SC2317  # called from the trap
cleanup() {
	if [ -n "$bg_pid" ]; then
		# firstline kills its VM on SIGTERM; its VM also dies with it.
		kill -TERM "$bg_pid" 2>/dev/null
		wait "$bg_pid" 2>/dev/null
	fi
	[ -n "$rpc_tmp" ] && rpc_cleanup
	[ -n "$noisy_tmp" ] && noisy_cleanup
	guest_cleanup
}

# The in-guest benchmarks' iperf3 server, network namespace (its TAP goes
# with it) and disk image.
# shellcheck disable=SC2317  # called from the trap
guest_cleanup() {
	if [ -n "$guest_srv_pid" ]; then
		kill -TERM "$guest_srv_pid" 2>/dev/null
		wait "$guest_srv_pid" 2>/dev/null
		guest_srv_pid=
	fi
	if [ -n "$guest_ns" ]; then
		ip netns del "$guest_ns" 2>/dev/null
		guest_ns=
	fi
	if [ -n "$guest_disk" ]; then
		rm -f "$guest_disk"
		guest_disk=
	fi
}

# The rpc benchmark's daemon and its VMs (VMs outlive their daemon): the
# processes named in its runtime directory's pid files, checked to be ours
# by their command line, then the directory.
# shellcheck disable=SC2317  # called from the trap
rpc_cleanup() {
	local f p
	if [ -n "$rpc_vmmd_pid" ]; then
		kill -TERM "$rpc_vmmd_pid" 2>/dev/null
		wait "$rpc_vmmd_pid" 2>/dev/null
		rpc_vmmd_pid=
	fi
	for f in "$rpc_tmp"/run/vms/*/pid; do
		[ -r "$f" ] || continue
		p=$(cat "$f")
		[ -n "$p" ] && [ -r "/proc/$p/cmdline" ] &&
			tr '\0' ' ' <"/proc/$p/cmdline" | grep -qF "$rpc_tmp" &&
			kill -KILL "$p" 2>/dev/null
	done
	rm -rf "$rpc_tmp"
	rpc_tmp=
}

# The noisy benchmark's daemon, its VMs (as rpc_cleanup), the cgroups it
# made for them (deepest first) and its directory.
# shellcheck disable=SC2317  # called from the trap
noisy_cleanup() {
	local f p
	if [ -n "$noisy_vmmd_pid" ]; then
		kill -TERM "$noisy_vmmd_pid" 2>/dev/null
		wait "$noisy_vmmd_pid" 2>/dev/null
		noisy_vmmd_pid=
	fi
	for f in "$noisy_tmp"/run/vms/*/pid; do
		[ -r "$f" ] || continue
		p=$(cat "$f")
		[ -n "$p" ] && [ -r "/proc/$p/cmdline" ] &&
			tr '\0' ' ' <"/proc/$p/cmdline" | grep -qF "$noisy_tmp" &&
			kill -KILL "$p" 2>/dev/null
	done
	sleep 0.2
	find /sys/fs/cgroup -maxdepth 6 -depth -type d \
		-path "*/$noisy_subtree*" -exec rmdir {} \; 2>/dev/null
	rm -rf "$noisy_tmp"
	noisy_tmp=
}
trap cleanup EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT TERM

say() { echo "bench: $*"; }
fail_measure() { errors+=("$1"); say "ERROR: $1"; }
want() { [[ ",$ONLY," == *",$1,"* ]]; }

# run_waited OUT CMD...: run CMD in the background with its stdout in OUT
# and wait, so that a signal to this script reaches the trap (which stops
# CMD, and CMD its VM) at once rather than after CMD is done.
run_waited() {
	local out=$1; shift
	"$@" >"$out" &
	bg_pid=$!
	wait "$bg_pid"
	local rc=$?
	bg_pid=
	return $rc
}

# field KEY LINE: the value of KEY=... in a firstline result line.
field() {
	local k=$1 w
	for w in $2; do
		case "$w" in "$k="*) echo "${w#*=}"; return ;; esac
	done
}

# median NUMBERS...: the median (mean of the middle two for an even count).
median() {
	printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 }
		END { if (NR == 0) exit
		      if (NR % 2) print a[(NR + 1) / 2]
		      else printf "%.6g\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# calc EXPR: floating-point arithmetic and comparisons (1 or 0).
calc() { awk "BEGIN { printf \"%.6g\\n\", ($1) }"; }
fmt() { awk -v v="$1" -v f="$2" 'BEGIN { printf f, v }'; }

# --- checks ----------------------------------------------------------------

# What each benchmark needs: net and vsock run without KVM.
need=()
if want startup || want linux; then need+=("$VMMRUN" "$FIRSTLINE"); fi
if want linux; then need+=("$BB/emu_floor"); fi
if want exits; then need+=("$BB/exits_bare" "$BB/exits_vmm" "$OUTLOOP"); fi
if want blk; then need+=("$BB/blk_bench"); fi
if want net; then need+=("$BB/net_bench"); fi
if want vsock; then need+=("$BB/vsock_bench"); fi
if want rpc; then need+=("$BB/rpc_bench" "$VMMD" "$VMMRUN" "$TESTGUEST"); fi
if want noisy; then need+=("$BB/noisy_bench" "$VMMD" "$VMMRUN" "$TESTGUEST"); fi
for f in "${need[@]}"; do
	if [ ! -x "$f" ] && [ ! -f "$f" ]; then
		echo "bench: $f is missing (make bench builds it)" >&2
		exit 1
	fi
done
if { want startup || want linux || want exits || want blk || want rpc ||
     want noisy; } &&
   { [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; }; then
	echo "bench: cannot open /dev/kvm read-write: no measurement possible" >&2
	exit 1
fi
mkdir -p "$LOGS"
rm -f "$LOGS"/*

if [ -d /sys/module/kvm_pvm ]; then
	HOST_KVM="PVM (kvm_pvm: no VT-x/AMD-V, guest kernel mode emulated)"
	HOST_KIND=pvm
else
	HOST_KVM="hardware (VT-x/AMD-V)"
	HOST_KIND=hw
fi
say "host KVM: $HOST_KVM; $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
say "logs in $LOGS, results in $RESULTS"
START_TS=$(date +%s)

declare -A R	# results, written to results.txt in the end

# --- 1. exec -> first guest UART byte, tiny kernel -------------------------

startup_vmm=()
if want startup; then
	if [ ! -f "$TESTGUEST" ]; then
		fail_measure "startup: $TESTGUEST missing (make bench builds it)"
	else
		say "1. exec -> first guest UART byte: vmm-run with $TESTGUEST," \
			"$STARTUP_RUNS runs"
		for i in $(seq 1 "$STARTUP_RUNS"); do
			run_waited "$LOGS/startup-vmm-$i.result" "$FIRSTLINE" -t 30 \
				-o "$LOGS/startup-vmm-$i.console" \
				-e "$LOGS/startup-vmm-$i.err" -- \
				"$VMMRUN" --kernel "$TESTGUEST" --console stdio
			line=$(cat "$LOGS/startup-vmm-$i.result")
			if [ "$(field status "$line")" = ok ]; then
				startup_vmm+=("$(field first_ms "$line")")
				say "   run $i: $(field first_ms "$line") ms"
			else
				say "   run $i: failed: $line (see $LOGS/startup-vmm-$i.err)"
			fi
		done
		if [ ${#startup_vmm[@]} -eq 0 ]; then
			fail_measure "startup: no vmm-run run reached the guest's first byte"
		fi
	fi
	say "   QEMU: no equivalent. testguest.elf is a 64-bit ELF entered like a" \
		"vmlinux; QEMU's -kernel takes a bzImage, multiboot or PVH ELF only," \
		"and its firmware runs before any guest kernel: not reported."
fi

# --- 2 + 3. exec -> "Linux version", memory beyond guest RAM ---------------

# Where the time to the first line goes on a host that emulates guest
# kernel code (PVM): one more vmm-run boot to the line, ended with SIGTERM
# so that --stats prints KVM's insn_emulation for it, gives vmm-run's cost
# per emulated instruction; emu_floor gives the host's own for a loop run
# with raw ioctls (no VMM work at all). Equal costs mean vmm-run's time is
# the kernel's own instructions at the host's price: nothing of the VMM's.
# On a host with hardware virtualization the kernel runs natively and the
# count is about zero: reported as such.
linux_emulation() {
	local line t n f kind ns emu
	say "   emulated instructions (KVM's insn_emulation) and their cost:"
	run_waited "$LOGS/linux-emul.result" "$FIRSTLINE" -k \
		-p "$LINUX_PATTERN" -t "$VMM_TIMEOUT" \
		-o "$LOGS/linux-emul.console" -e "$LOGS/linux-emul.err" -- \
		"$VMMRUN" --kernel "$KERNEL" --cmdline "$LINUX_CMDLINE" \
		--cpus 1 --memory "${LINUX_MEM_MIB}M" --console stdio --stats
	line=$(cat "$LOGS/linux-emul.result")
	n=$(grep -o 'insn_emulation=[0-9]*' "$LOGS/linux-emul.err" |
		head -n 1 | cut -d= -f2)
	if [ "$(field status "$line")" != ok ] || [ -z "$n" ]; then
		say "   vmm-run: no count (${line:-no result}; KVM binary stats" \
			"missing?) - see $LOGS/linux-emul.err"
	else
		t=$(field first_ms "$line")
		R[linux.vmm.emulated]=$n
		R[linux.vmm.emul_run_ms]=$t
		if [ "$n" -gt 0 ]; then
			R[linux.vmm.ns_per_emulated]=$(calc "$t * 1000000 / $n")
			say "   vmm-run: $n instructions emulated to the line in" \
				"$(fmt "$t" '%.0f') ms: $(fmt \
				"${R[linux.vmm.ns_per_emulated]}" '%.0f') ns each" \
				"(all of vmm-run's time counted)"
		else
			say "   vmm-run: no instruction emulated (hardware" \
				"virtualization: the kernel runs natively)"
		fi
	fi
	run_waited "$LOGS/emu-floor.result" "$BB/emu_floor" -r 3 \
		2>"$LOGS/emu-floor.err"
	if ! grep -q '^kind=' "$LOGS/emu-floor.result"; then
		say "   emu_floor failed: $(head -c 300 "$LOGS/emu-floor.err")"
		return
	fi
	while read -r f; do
		kind=$(field kind "$f")
		ns=$(field ns_per_insn "$f")
		emu=$(field emulated "$f")
		R[floor.$kind.ns_per_insn]=$ns
		R[floor.$kind.emulated]=$emu
		say "   bare KVM loop ($kind, $(field insns "$f") instructions," \
			"$emu emulated): $(fmt "$ns" '%.1f') ns each"
	done <"$LOGS/emu-floor.result"
	if [ -n "${R[linux.vmm.ns_per_emulated]:-}" ] &&
	   [ -n "${R[floor.call.ns_per_insn]:-}" ]; then
		R[linux.vmm.vs_floor]=$(calc "${R[linux.vmm.ns_per_emulated]} / ${R[floor.call.ns_per_insn]}")
		say "   vmm-run per emulated instruction / bare loop (call):" \
			"$(fmt "${R[linux.vmm.vs_floor]}" '%.2f')"
	fi
}

linux_vmm=() mem_vmm_rss=() mem_vmm_pss=() mem_vmm_ram=()
linux_qemu=() mem_qemu_rss=() mem_qemu_pss=() mem_qemu_ram=()
qemu_timeouts=0 qemu_note="" full_cmdline=""
if want linux; then
	if [ ! -f "$KERNEL" ]; then
		fail_measure "linux: $KERNEL missing (make guest builds it)"
	else
		# The command line the kernel gets from vmm-run, PVM switches
		# included: the test kernel prints what it was given.
		if [ -f "$TESTGUEST" ]; then
			probe=$("$VMMRUN" --kernel "$TESTGUEST" --cmdline \
				"$LINUX_CMDLINE" --console stdio </dev/null \
				2>/dev/null | sed -n 's/^TESTGUEST-INFO .* cmdline=//p' |
				tr -d '\r')
			full_cmdline=$probe
		fi
		say "2. exec -> \"$LINUX_PATTERN\": $KERNEL, 1 vCPU," \
			"${LINUX_MEM_MIB}M, vmm-run $VMM_RUNS runs (timeout" \
			"${VMM_TIMEOUT} s), memory sampled for ${MEM_SECONDS} s after the line"
		for i in $(seq 1 "$VMM_RUNS"); do
			run_waited "$LOGS/linux-vmm-$i.result" \
				"$FIRSTLINE" -p "$LINUX_PATTERN" \
				-t "$VMM_TIMEOUT" -m "$MEM_SECONDS" \
				-x /memfd:guest-ram -s "$LOGS/linux-vmm-$i.smaps" \
				-o "$LOGS/linux-vmm-$i.console" \
				-e "$LOGS/linux-vmm-$i.err" -- \
				"$VMMRUN" --kernel "$KERNEL" \
				--cmdline "$LINUX_CMDLINE" --cpus 1 \
				--memory "${LINUX_MEM_MIB}M" --console stdio
			line=$(cat "$LOGS/linux-vmm-$i.result")
			if [ "$(field status "$line")" = ok ]; then
				t=$(field first_ms "$line")
				linux_vmm+=("$(calc "$t / 1000")")
				say "   vmm-run run $i: $(fmt "$t" '%.2f') ms to the line"
			else
				say "   vmm-run run $i: failed: $line (see $LOGS/linux-vmm-$i.err)"
			fi
			if [ "$(field mem "$line")" = ok ]; then
				mem_vmm_rss+=("$(field rss_kib "$line")")
				mem_vmm_pss+=("$(field pss_kib "$line")")
				mem_vmm_ram+=("$(field ram_rss_kib "$line")")
				say "   vmm-run run $i: beyond guest RAM: Rss" \
					"$(field rss_kib "$line") KiB, Pss" \
					"$(field pss_kib "$line") KiB (guest RAM Rss" \
					"$(field ram_rss_kib "$line") KiB)"
			fi
		done
		[ ${#linux_vmm[@]} -eq 0 ] &&
			fail_measure "linux: no vmm-run run printed \"$LINUX_PATTERN\""
		[ ${#mem_vmm_rss[@]} -eq 0 ] &&
			fail_measure "memory: vmm-run's memory could not be read"

		# What the kernel itself printed as its command line wins.
		seen=$(cat "$LOGS"/linux-vmm-*.console 2>/dev/null |
			sed -n 's/^\[ *[0-9.]*\] Command line: //p' | tr -d '\r' |
			head -n 1)
		if [ -n "$seen" ]; then
			if [ -n "$full_cmdline" ] && [ "$seen" != "$full_cmdline" ]; then
				say "   note: the Debian kernel saw a different command" \
					"line than the test kernel; QEMU gets the Debian one"
			fi
			full_cmdline=$seen
		fi
		if [ -z "$full_cmdline" ]; then
			full_cmdline=$LINUX_CMDLINE
			say "   note: vmm-run's full command line unknown; QEMU gets" \
				"the plain one"
		fi

		if [ "$QEMU_RUNS" -gt 0 ] && ! command -v "$QEMU" >/dev/null; then
			fail_measure "linux: $QEMU not found (make bench installs qemu-system-x86)"
		elif [ "$QEMU_RUNS" -gt 0 ]; then
			qemu_cmd=("$QEMU" -enable-kvm -cpu "$QEMU_CPU"
				-m "$LINUX_MEM_MIB" -nographic -kernel "$KERNEL"
				-append "$full_cmdline" -no-reboot)
			say "   QEMU: $QEMU_RUNS run(s), timeout $QEMU_TIMEOUT s:"
			say "   $QEMU -enable-kvm -cpu $QEMU_CPU -m $LINUX_MEM_MIB" \
				"-nographic -kernel $KERNEL -append \"$full_cmdline\"" \
				"-no-reboot"
			for i in $(seq 1 "$QEMU_RUNS"); do
				run_waited "$LOGS/linux-qemu-$i.result" \
					"$FIRSTLINE" -p "$LINUX_PATTERN" \
					-t "$QEMU_TIMEOUT" -m "$MEM_SECONDS" \
					-X $((LINUX_MEM_MIB << 20)) \
					-s "$LOGS/linux-qemu-$i.smaps" \
					-o "$LOGS/linux-qemu-$i.console" \
					-e "$LOGS/linux-qemu-$i.err" -- "${qemu_cmd[@]}"
				line=$(cat "$LOGS/linux-qemu-$i.result")
				st=$(field status "$line")
				if [ "$st" = ok ]; then
					t=$(field first_ms "$line")
					linux_qemu+=("$(calc "$t / 1000")")
					say "   QEMU run $i: $(fmt "$t" '%.2f') ms to the line"
				elif [ "$st" = timeout ]; then
					qemu_timeouts=$((qemu_timeouts + 1))
					say "   QEMU run $i: no first line within $QEMU_TIMEOUT s"
				else
					say "   QEMU run $i: failed: $line (see $LOGS/linux-qemu-$i.err)"
					sed 's/^/     /' "$LOGS/linux-qemu-$i.err" | tail -n 5
				fi
				if [ "$(field mem "$line")" = ok ]; then
					mem_qemu_rss+=("$(field rss_kib "$line")")
					mem_qemu_pss+=("$(field pss_kib "$line")")
					mem_qemu_ram+=("$(field ram_rss_kib "$line")")
					[ "$(field mem_at "$line")" = timeout ] &&
						qemu_note=" (at the timeout)"
					say "   QEMU run $i: beyond guest RAM: Rss" \
						"$(field rss_kib "$line") KiB, Pss" \
						"$(field pss_kib "$line") KiB$qemu_note"
				fi
			done
			if [ ${#linux_qemu[@]} -eq 0 ] && [ $qemu_timeouts -eq 0 ]; then
				fail_measure "linux: QEMU did not run (see $LOGS/linux-qemu-*.err)"
			fi
		fi
		linux_emulation
	fi
fi

# --- 4. exit cost -----------------------------------------------------------

exits_vmm=() exits_bare=()
if want exits; then
	say "4. port-write exits/s: $OUTLOOP, $EXIT_ITERS x 'out %al,\$0x80'," \
		"$EXIT_RUNS runs each, alternating (bare vmm, vmm bare, ...)"
	for i in $(seq 1 "$EXIT_RUNS"); do
		# ABBA order: a load that grows or fades during the runs
		# weighs on both programs alike.
		order="bare vmm"
		[ $((i % 2)) -eq 0 ] && order="vmm bare"
		for prog in $order; do
			run_waited "$LOGS/exits-$prog-$i.result" \
				"$BB/exits_$prog" "$OUTLOOP" "$EXIT_ITERS" \
				2>"$LOGS/exits-$prog-$i.err"
			out=$(cat "$LOGS/exits-$prog-$i.result")
			v=$(field exits_per_s "$out")
			if [ -n "$v" ]; then
				if [ "$prog" = bare ]; then
					exits_bare+=("$v")
				else
					exits_vmm+=("$v")
				fi
				say "   run $i $prog: $v exits/s"
			else
				say "   run $i $prog: failed: $(head -c 300 "$LOGS/exits-$prog-$i.err")"
			fi
		done
	done
	[ ${#exits_bare[@]} -eq 0 ] && fail_measure "exits: the bare loop never ran"
	[ ${#exits_vmm[@]} -eq 0 ] && fail_measure "exits: exits_vmm never ran"
fi

# --- table and results.txt --------------------------------------------------

R[host.kvm]=$HOST_KIND
R[host.cpus]=$(nproc)
R[host.loadavg]=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,)
R[date]=$(date -u +%Y-%m-%dT%H:%M:%SZ)
R[vmm.version]=$("$VMMRUN" --version 2>/dev/null | head -n 1)
if want linux && [ "$QEMU_RUNS" -gt 0 ] && command -v "$QEMU" >/dev/null; then
	R[qemu.version]=$("$QEMU" --version 2>/dev/null | head -n 1)
	R[qemu.cpu]=$QEMU_CPU
fi

rows=()
# row METRIC VMM OTHER RATIO TARGET RESULT
row() { rows+=("$(printf '%-40s %-14s %-22s %-9s %-12s %s' "$@")"); }

if want startup; then
	R[startup.vmm.runs_ms]=$(IFS=,; echo "${startup_vmm[*]}")
	R[startup.qemu]=n/a
	if [ ${#startup_vmm[@]} -gt 0 ]; then
		m=$(median "${startup_vmm[@]}")
		R[startup.vmm.median_ms]=$m
		row "exec -> 1st UART byte (testguest.elf)" "$(fmt "$m" '%.1f ms')" \
			"n/a (no equivalent)" "-" "-" "-"
	else
		row "exec -> 1st UART byte (testguest.elf)" "FAILED" "n/a" "-" "-" "-"
	fi
fi

if want linux; then
	R[linux.cmdline]=$full_cmdline
	R[linux.vmm.runs_s]=$(IFS=,; echo "${linux_vmm[*]}")
	R[linux.qemu.runs_s]=$(IFS=,; echo "${linux_qemu[*]}")
	R[linux.qemu.timeouts]=$qemu_timeouts
	R[linux.qemu.timeout_s]=$QEMU_TIMEOUT
	R[linux.target_ratio_max]=$LINUX_RATIO_TARGET
	vm="FAILED" qm="-" ratio="-" result="-"
	if [ ${#linux_vmm[@]} -gt 0 ]; then
		mv=$(median "${linux_vmm[@]}")
		R[linux.vmm.median_s]=$mv
		vm=$(fmt "$mv" '%.2f s')
		if [ ${#linux_qemu[@]} -gt 0 ]; then
			mq=$(median "${linux_qemu[@]}")
			R[linux.qemu.median_s]=$mq
			qm=$(fmt "$mq" '%.2f s')
			r=$(calc "$mv / $mq")
			R[linux.ratio]=$r
			ratio=$(fmt "$r" '%.4f')
			if [ "$(calc "$r <= $LINUX_RATIO_TARGET")" = 1 ]; then
				result=MET
			else
				result=MISSED
			fi
		elif [ $qemu_timeouts -gt 0 ]; then
			# QEMU took longer than the timeout: the true ratio is
			# below vmm-run's time over the timeout.
			qm=">$QEMU_TIMEOUT s (timeout)"
			r=$(calc "$mv / $QEMU_TIMEOUT")
			R[linux.ratio_bound]="<$r"
			ratio="<$(fmt "$r" '%.4f')"
			if [ "$(calc "$r <= $LINUX_RATIO_TARGET")" = 1 ]; then
				result=MET
			else
				result="UNKNOWN (bound > target)"
			fi
		elif [ "$QEMU_RUNS" -eq 0 ]; then
			qm="skipped"
		else
			qm="FAILED"
		fi
	fi
	R[linux.result]=$result
	row "exec -> \"Linux version\" (bzImage)" "$vm" "$qm" "$ratio" \
		"<= $LINUX_RATIO_TARGET x" "$result"
	# Informational: vmm-run's cost per emulated instruction beside the
	# host's own (the bare loop), see linux_emulation().
	if [ -n "${R[linux.vmm.vs_floor]:-}" ]; then
		row "  ns per emulated insn (vs bare loop)" \
			"$(fmt "${R[linux.vmm.ns_per_emulated]}" '%.0f ns')" \
			"$(fmt "${R[floor.call.ns_per_insn]}" '%.0f ns (bare)')" \
			"$(fmt "${R[linux.vmm.vs_floor]}" '%.2f')" "-" "-"
	fi

	R[mem.target_kib_max]=$MEM_TARGET_KIB
	vr="FAILED" vp="FAILED" qr="-" qp="-" rr="" rp="" result="-"
	if [ ${#mem_vmm_rss[@]} -gt 0 ]; then
		a=$(median "${mem_vmm_rss[@]}") b=$(median "${mem_vmm_pss[@]}")
		R[mem.vmm.rss_kib]=$a R[mem.vmm.pss_kib]=$b
		R[mem.vmm.guest_ram_rss_kib]=$(median "${mem_vmm_ram[@]}")
		R[mem.vmm.runs_rss_kib]=$(IFS=,; echo "${mem_vmm_rss[*]}")
		vr=$(fmt "$(calc "$a / 1024")" '%.2f MiB')
		vp=$(fmt "$(calc "$b / 1024")" '%.2f MiB')
		if [ "$(calc "$a <= $MEM_TARGET_KIB")" = 1 ]; then
			result=MET
		else
			result=MISSED
		fi
	fi
	R[mem.result]=$result
	if [ ${#mem_qemu_rss[@]} -gt 0 ]; then
		c=$(median "${mem_qemu_rss[@]}") d=$(median "${mem_qemu_pss[@]}")
		R[mem.qemu.rss_kib]=$c R[mem.qemu.pss_kib]=$d
		R[mem.qemu.guest_ram_rss_kib]=$(median "${mem_qemu_ram[@]}")
		[ -n "$qemu_note" ] && R[mem.qemu.sampled_at]=timeout
		qr=$(fmt "$(calc "$c / 1024")" '%.2f MiB')
		qp=$(fmt "$(calc "$d / 1024")" '%.2f MiB')
		[ -n "$qemu_note" ] && qr="$qr (*)" qp="$qp (*)"
		if [ ${#mem_vmm_rss[@]} -gt 0 ]; then
			R[mem.ratio_rss]=$(calc "$a / $c")
			R[mem.ratio_pss]=$(calc "$b / $d")
			rr=$(fmt "${R[mem.ratio_rss]}" '%.3f')
			rp=$(fmt "${R[mem.ratio_pss]}" '%.3f')
		fi
	fi
	row "memory beyond guest RAM, Rss" "$vr" "$qr" "${rr:--}" \
		"<= $((MEM_TARGET_KIB / 1024)) MiB" "$result"
	row "memory beyond guest RAM, Pss" "$vp" "$qp" "${rp:--}" "-" "-"
fi

if want exits; then
	R[exits.iterations]=$EXIT_ITERS
	R[exits.vmm.runs_per_s]=$(IFS=,; echo "${exits_vmm[*]}")
	R[exits.bare.runs_per_s]=$(IFS=,; echo "${exits_bare[*]}")
	R[exits.target_ratio_min]=$EXIT_RATIO_TARGET
	vm="FAILED" bm="FAILED" ratio="-" result="-"
	[ ${#exits_vmm[@]} -gt 0 ] && { mv=$(median "${exits_vmm[@]}");
		R[exits.vmm.median_per_s]=$mv; vm="$(fmt "$mv" '%.0f')/s"; }
	[ ${#exits_bare[@]} -gt 0 ] && { mb=$(median "${exits_bare[@]}");
		R[exits.bare.median_per_s]=$mb; bm="bare $(fmt "$mb" '%.0f')/s"; }
	if [ ${#exits_vmm[@]} -gt 0 ] && [ ${#exits_bare[@]} -gt 0 ]; then
		r=$(calc "$mv / $mb")
		R[exits.ratio]=$r
		# Noise only ever slows a run down: the best runs, beside.
		bv=$(printf '%s\n' "${exits_vmm[@]}" | sort -g | tail -n 1)
		bb=$(printf '%s\n' "${exits_bare[@]}" | sort -g | tail -n 1)
		R[exits.vmm.best_per_s]=$bv
		R[exits.bare.best_per_s]=$bb
		R[exits.ratio_best]=$(calc "$bv / $bb")
		ratio=$(fmt "$r" '%.3f')
		if [ "$(calc "$r >= $EXIT_RATIO_TARGET")" = 1 ]; then
			result=MET
		else
			result=MISSED
		fi
	fi
	R[exits.result]=$result
	row "port-write exits/s (vcpu_run_once+bus)" "$vm" "$bm" "$ratio" \
		">= $EXIT_RATIO_TARGET x" "$result"
fi

# 5. virtio-blk through the host-side driver harness, beside a bare io_uring
# loop on the same O_DIRECT file (in the build directory: not tmpfs).
# --- the in-guest comparisons of 5 and 6 -------------------------------------
#
# The same kernel ($KERNEL) and bench image ($GUEST_INITRD: the reference
# initramfs plus fio, iperf3 and /bin/vmmd-bench, scripts/mkguest-bench.sh)
# booted on vmm-run and on QEMU with the same vCPUs, memory and command
# line; tests/guest/init runs vmmd-bench (bench/guest_bench.sh) through
# vmmd.run= and powers off. bench/guest_bench.sh also holds the parser of
# the marker lines it prints.
# shellcheck source=guest_bench.sh
. bench/guest_bench.sh

# Whether they run: on hardware virtualization, or when BENCH_GUEST=1.
case $GUEST_MODE in
1) GUEST_RUN=1 ;;
0) GUEST_RUN=0 ;;
*) if [ "$HOST_KIND" = hw ]; then GUEST_RUN=1; else GUEST_RUN=0; fi ;;
esac

# in_guest_note TOOL: why the comparison with TOOL inside a guest (on
# vmm-run and on QEMU) is not in this run.
in_guest_note() {
	if [ "$GUEST_MODE" = 0 ]; then
		echo "not measured: BENCH_GUEST=0"
	else
		echo "not measured: on this PVM host a Linux guest takes 40-50 minutes to reach userspace and its I/O path is kernel code emulated ~4000x slower, so the comparison would time PVM's emulator (../shared/HOST.md); BENCH_GUEST=1 forces it"
	fi
}

# guest_ready TOOL: whether what the in-guest runs need is there; else
# why on stdout.
guest_ready() {
	local f
	for f in "$VMMRUN" "$KERNEL" "$GUEST_INITRD"; do
		if [ ! -f "$f" ]; then
			echo "$f missing (make bench builds it where the in-guest runs are on)"
			return 1
		fi
	done
	if ! command -v "$QEMU" >/dev/null; then
		echo "$QEMU not found (make bench installs qemu-system-x86)"
		return 1
	fi
	if [ "$1" = iperf3 ] && ! command -v iperf3 >/dev/null; then
		echo "iperf3 not found on the host (make bench installs it)"
		return 1
	fi
	if [ "$1" = iperf3 ] && { [ "$(id -u)" -ne 0 ] || [ ! -w /dev/net/tun ]; }; then
		echo "needs root and /dev/net/tun (a network namespace and a TAP)"
		return 1
	fi
}

# guest_vmm_name VMM: how errors and the table name vmm or qemu.
guest_vmm_name() {
	case $1 in vmm) echo vmm-run ;; *) echo QEMU ;; esac
}

# guest_boot BASE VMM CMDLINE NETNS DEVICE-ARGS...: boots the bench
# guest on VMM (vmm or qemu; in network namespace NETNS unless ""),
# console in logs/BASE.console, stderr in .err, the exact command in
# .cmd; at most GUEST_TIMEOUT seconds. The
# device arguments are given for both VMMs, vmm-run's first, then
# "--qemu", then QEMU's. Returns the exit code (124: timed out).
guest_boot() {
	local base=$LOGS/$1 vmm=$2 cmdline=$3 ns=$4 rc
	shift 4
	local vargs=() qargs=() cmd=()
	while [ $# -gt 0 ] && [ "$1" != --qemu ]; do vargs+=("$1"); shift; done
	[ $# -gt 0 ] && shift
	qargs=("$@")
	if [ "$vmm" = vmm ]; then
		cmd=("$VMMRUN" --kernel "$KERNEL" --initrd "$GUEST_INITRD"
			--cmdline "$cmdline" --cpus "$GUEST_CPUS"
			--memory "${GUEST_MEM_MIB}M" --console stdio "${vargs[@]}")
	else
		cmd=("$QEMU" -enable-kvm -cpu "$QEMU_CPU" -smp "$GUEST_CPUS"
			-m "$GUEST_MEM_MIB" -nographic -no-reboot
			-kernel "$KERNEL" -initrd "$GUEST_INITRD"
			-append "$cmdline" "${qargs[@]}")
	fi
	[ -n "$ns" ] && cmd=(ip netns exec "$ns" "${cmd[@]}")
	printf '%q ' "${cmd[@]}" >"$base.cmd"
	echo >>"$base.cmd"
	run_waited "$base.console" timeout --kill-after=10 "$GUEST_TIMEOUT" \
		"${cmd[@]}" </dev/null 2>"$base.err"
	rc=$?
	return $rc
}

# guest_failed WHAT VMM LOGBASE RC WHY: an error naming the VMM, how the
# boot ended and what was last on its console.
guest_failed() {
	local how="exit code $4" err=""
	if [ "$4" -eq 124 ] || [ "$4" -eq 137 ]; then
		how="timed out after $GUEST_TIMEOUT s"
	elif [ -s "$3.err" ]; then
		err="; its stderr: $(gbh_tail "$3.err" 1)"
	fi
	fail_measure "$1 in a guest on $(guest_vmm_name "$2"): $5 ($how); last on its console: $(gbh_tail "$3.console" 3)$err (see $3.console, $3.err)"
}

# guest_order RUN: the VMMs in the order of run RUN, ABBA (vmm qemu, qemu
# vmm, ...): a load that comes or goes weighs on both alike.
guest_order() {
	if [ $(($1 % 2)) -eq 1 ]; then echo "vmm qemu"; else echo "qemu vmm"; fi
}

# guest_median KEY VALUES...: the median of VALUES in R[KEY], and the runs
# in R[KEY_runs]; nothing when there are none.
guest_median() {
	local k=$1
	shift
	[ $# -gt 0 ] || return 0
	R[$k]=$(median "$@")
	R[${k}_runs]=$(IFS=,; echo "$*")
}

# guest_fio: the fio jobs on both VMMs, GUEST_RUNS boots each; medians in
# R[blk.guest.VMM.JOB_iops|JOB_mbps].
guest_fio() {
	local vmm rc r job cmdline i base img=$BB/guest-disk.img
	local -A got=()
	say "   fio in a guest: $(gbh_fio_cmd "$GUEST_SECONDS" "$GUEST_RAMP")" \
		"(4 KiB randread QD32, 1 MiB read QD4, O_DIRECT, io_uring or" \
		"libaio) on a ${GUEST_DISK_MIB} MiB image; $GUEST_CPUS vCPUs," \
		"${GUEST_MEM_MIB}M; $GUEST_RUNS boot(s) of each VMM, ABBA"
	guest_disk=$img
	# Written, not sparse: reads must reach the disk.
	if ! dd if=/dev/zero of="$img" bs=1M count="$GUEST_DISK_MIB" \
		conv=fsync status=none 2>"$LOGS/guest-fio-dd.err"; then
		fail_measure "blk: cannot write $img: $(head -c 200 "$LOGS/guest-fio-dd.err")"
		guest_cleanup
		return
	fi
	cmdline="console=ttyS0 vmmd.run=$(gbh_encode "$(gbh_fio_cmd "$GUEST_SECONDS" "$GUEST_RAMP")")"
	R[blk.guest.cmdline]=$cmdline
	for i in $(seq 1 "$GUEST_RUNS"); do
		for vmm in $(guest_order "$i"); do
			base=guest-fio-$vmm-$i
			guest_boot "$base" "$vmm" "$cmdline" "" \
				--disk "$img,direct" \
				--qemu -nic none \
				-drive "file=$img,if=none,id=d0,format=raw,cache=none,aio=io_uring" \
				-device virtio-blk-pci,drive=d0
			rc=$?
			# A guest that never got to fio is one error, not
			# one a job.
			if ! grep -q 'VMMD-BENCH fio ' "$LOGS/$base.console"; then
				guest_failed "blk: fio (run $i)" "$vmm" \
					"$LOGS/$base" "$rc" "no \"VMMD-BENCH fio\" line"
				continue
			fi
			for job in randread seqread; do
				if r=$(gbh_fio "$LOGS/$base.console" "$job"); then
					got[$vmm.${job}_iops]+=" $(gbh_field iops "$r")"
					got[$vmm.${job}_mbps]+=" $(gbh_field mbps "$r")"
					R[blk.guest.$vmm.engine]=$(gbh_field engine "$r")
					say "   run $i $(guest_vmm_name "$vmm"): fio $job $r"
				else
					guest_failed "blk: fio $job (run $i)" "$vmm" \
						"$LOGS/$base" "$rc" "$r"
				fi
			done
		done
	done
	for vmm in vmm qemu; do
		for job in randread_iops randread_mbps seqread_iops seqread_mbps; do
			# shellcheck disable=SC2086 # a list of numbers
			guest_median "blk.guest.$vmm.$job" ${got[$vmm.$job]:-}
		done
	done
	guest_cleanup
}

# guest_iperf3: iperf3 guest -> host on both VMMs through a TAP in a
# network namespace of its own, the host's server bound to the TAP's
# address, GUEST_RUNS boots each; medians in R[net.guest.VMM.gbps].
guest_iperf3() {
	local vmm rc g cmdline i base tap=vbgtap0 host=10.213.0.1 port=5201
	local guest=10.213.0.2/24
	local -A got=()
	say "   iperf3 in a guest: $(gbh_iperf3_cmd $host "$GUEST_SECONDS" $guest $port)," \
		"guest -> iperf3 -s on the TAP's host side; $GUEST_CPUS vCPUs," \
		"${GUEST_MEM_MIB}M; $GUEST_RUNS boot(s) of each VMM, ABBA (TAP," \
		"vhost=off)"
	cmdline="console=ttyS0 vmmd.run=$(gbh_encode "$(gbh_iperf3_cmd $host "$GUEST_SECONDS" $guest $port)")"
	R[net.guest.cmdline]=$cmdline
	for i in $(seq 1 "$GUEST_RUNS"); do
		for vmm in $(guest_order "$i"); do
			base=guest-iperf3-$vmm-$i
			# A fresh namespace, TAP and server for each boot.
			guest_ns=vmmd-bench-guest-$$
			if ! { ip netns add "$guest_ns" &&
				ip -n "$guest_ns" link set lo up &&
				ip netns exec "$guest_ns" sysctl -qw \
					net.ipv6.conf.all.disable_ipv6=1 &&
				ip -n "$guest_ns" tuntap add dev $tap mode tap &&
				ip -n "$guest_ns" addr add $host/24 dev $tap &&
				ip -n "$guest_ns" link set $tap up; } \
				>"$LOGS/$base.setup" 2>&1; then
				fail_measure "net: cannot set up the namespace and TAP for iperf3 on $(guest_vmm_name "$vmm"): $(tail -n 2 "$LOGS/$base.setup" | tr '\n' ' ')"
				guest_cleanup
				continue
			fi
			# Ends by itself after one client, or after the boot's
			# timeout.
			ip netns exec "$guest_ns" timeout $((GUEST_TIMEOUT + 10)) \
				iperf3 -s -1 -B $host -p $port \
				>"$LOGS/$base.server" 2>&1 &
			guest_srv_pid=$!
			guest_boot "$base" "$vmm" "$cmdline" "$guest_ns" \
				--net tap=$tap \
				--qemu -netdev "tap,id=n0,ifname=$tap,script=no,downscript=no,vhost=off" \
				-device virtio-net-pci,netdev=n0
			rc=$?
			if g=$(gbh_iperf3 "$LOGS/$base.console"); then
				got[$vmm]+=" $g"
				say "   run $i $(guest_vmm_name "$vmm"): iperf3 guest -> host $g Gbit/s"
			else
				guest_failed "net: iperf3 (run $i)" "$vmm" \
					"$LOGS/$base" "$rc" "$g"
			fi
			guest_cleanup
		done
	done
	for vmm in vmm qemu; do
		# shellcheck disable=SC2086 # a list of numbers
		guest_median "net.guest.$vmm.gbps" ${got[$vmm]:-}
	done
}

# guest_row METRIC KEY FIELD UNIT FORMAT OP TARGET: a table row of the
# in-guest result R[KEY.vmm.FIELD] beside R[KEY.qemu.FIELD]; the ratio
# must be OP (> or >=) TARGET, or TARGET is "-". Ratio and result go to
# R[KEY.FIELD_ratio] and R[KEY.FIELD_result].
guest_row() {
	local m=$1 k=$2 fl=$3 u=$4 f=$5 op=$6 t=$7
	local a=${R[$2.vmm.$3]:-} b=${R[$2.qemu.$3]:-}
	local r va=FAILED vb="QEMU FAILED" result=- tcol=-
	[ "$t" != - ] && tcol="$op $t x"
	[ -n "$a" ] && va="$(fmt "$a" "$f") $u"
	[ -n "$b" ] && vb="QEMU $(fmt "$b" "$f") $u"
	if [ -z "$a" ] || [ -z "$b" ]; then
		R[$k.${fl}_result]=FAILED
		row "$m" "$va" "$vb" - "$tcol" -
		return
	fi
	r=$(calc "$a / $b")
	R[$k.${fl}_ratio]=$r
	if [ "$t" != - ]; then
		if [ "$(calc "$r $op $t")" = 1 ]; then result=MET; else result=MISSED; fi
	fi
	R[$k.${fl}_result]=$result
	row "$m" "$va" "$vb" "$(fmt "$r" '%.3f')" "$tcol" "$result"
}

blk_table=""
FIO_NOTE=""
if want blk; then
	say "5. virtio-blk: 4 KiB random reads QD32, 1 MiB sequential, O_DIRECT"
	if blk_table=$("$BB/blk_bench" -f "$BUILD/bench/blk.img" -s 512 -t 3 -r 3 \
			2>"$LOGS/blk.err"); then
		say "$blk_table"
	else
		errors+=("virtio-blk bench: $(head -c 300 "$LOGS/blk.err")")
		blk_table=""
	fi
	rm -f "$BUILD/bench/blk.img"
	# The issue's in-guest comparison: the same fio job in the bench
	# guest on vmm-run and on QEMU's virtio-blk-pci (cache=none,
	# aio=io_uring). It needs a guest that boots to userspace.
	if [ "$GUEST_RUN" != 1 ]; then
		FIO_NOTE=$(in_guest_note fio)
		say "   fio in a guest: $FIO_NOTE"
	else
		if why=$(guest_ready fio); then
			guest_fio
		else
			fail_measure "blk: fio in a guest: $why"
		fi
		if [ -n "${R[blk.guest.vmm.randread_iops]:-}" ] &&
			[ -n "${R[blk.guest.qemu.randread_iops]:-}" ] &&
			[ -n "${R[blk.guest.vmm.seqread_mbps]:-}" ] &&
			[ -n "${R[blk.guest.qemu.seqread_mbps]:-}" ]; then
			FIO_NOTE="measured: the \"fio in a guest\" rows above"
		else
			FIO_NOTE="FAILED: see the errors below"
		fi
		guest_row "fio in a guest, 4 KiB randread QD32" blk.guest \
			randread_iops IOPS '%.0f' '>' 1.0
		guest_row "fio in a guest, 1 MiB seq read QD4" blk.guest \
			seqread_mbps MB/s '%.0f' - -
	fi
	R[blk.guest_fio]=$FIO_NOTE
fi

# load_results FILE: its key=value lines into R.
load_results() {
	local k v
	while IFS='=' read -r k v; do
		[ -n "$k" ] && R[$k]=$v
	done <"$1"
}

# run_dev_bench NAME CMD...: run a device benchmark, its lines shown as
# they come (and kept in logs/NAME.out), key=value results in
# logs/NAME.results loaded into R. Fails when it did.
run_dev_bench() {
	local name=$1 rc; shift
	"$@" -o "$LOGS/$name.results" 2>"$LOGS/$name.err" |
		tee "$LOGS/$name.out" | sed -u 's/^/bench:    /'
	rc=${PIPESTATUS[0]}
	if [ "$rc" -ne 0 ] || [ ! -s "$LOGS/$name.results" ]; then
		sed 's/^/     /' "$LOGS/$name.err" | tail -n 5
		return 1
	fi
	load_results "$LOGS/$name.results"
}

# dev_row METRIC KEY UNIT SCALE FORMAT: a table row from R[KEY.*].
dev_row() {
	local m=$1 key=$2 unit=$3 scale=$4 f=$5 v b
	if [ -z "${R[$key.ratio]:-}" ]; then
		row "$m" "FAILED" "-" "-" ">= $DEV_RATIO_TARGET x" "-"
		return
	fi
	v=$(fmt "$(calc "${R[$key.vmm.median_$unit]} / $scale")" "$f")
	b=$(fmt "$(calc "${R[$key.bare.median_$unit]} / $scale")" "$f")
	row "$m" "$v" "bare $b" "$(fmt "${R[$key.ratio]}" '%.3f')" \
		">= $DEV_RATIO_TARGET x" "${R[$key.result]}"
}

# 6. virtio-net through the harness beside a bare loop on the same TAP.
IPERF_NOTE=""
if want net; then
	say "6. virtio-net: 64 B, 1514 B and 64 KiB TSO frames each way between" \
		"the device and a TAP, beside a bare loop on the TAP;" \
		"$NET_RUNS runs of ${NET_SECONDS} s each"
	if [ "$(id -u)" -ne 0 ] || [ ! -w /dev/net/tun ]; then
		fail_measure "net: needs root and /dev/net/tun (a network namespace and a TAP)"
	elif ! run_dev_bench net "$BB/net_bench" -t "$NET_SECONDS" \
			-r "$NET_RUNS"; then
		fail_measure "net: net_bench failed (see $LOGS/net.err)"
	fi
	# The issue's iperf3 guest -> host on vmm-run and on QEMU (TAP
	# netdev, vhost=off), in the bench guest.
	if [ "$GUEST_RUN" != 1 ]; then
		IPERF_NOTE=$(in_guest_note iperf3)
		say "   iperf3 in a guest: $IPERF_NOTE"
	else
		if why=$(guest_ready iperf3); then
			guest_iperf3
		else
			fail_measure "net: iperf3 in a guest: $why"
		fi
		if [ -n "${R[net.guest.vmm.gbps]:-}" ] &&
			[ -n "${R[net.guest.qemu.gbps]:-}" ]; then
			IPERF_NOTE="measured: the \"iperf3 in a guest\" row above"
		else
			IPERF_NOTE="FAILED: see the errors below"
		fi
		guest_row "iperf3 in a guest, guest -> host" net.guest gbps \
			Gbit/s '%.2f' '>=' 1.0
	fi
	R[net.guest_iperf3]=$IPERF_NOTE
	for d in tx rx; do
		for sz in 64 1514 64k; do
			case $d in tx) dn="TX (guest -> TAP)" ;; *) dn="RX (TAP -> guest)" ;; esac
			case $sz in 64) zn="64 B" ;; 1514) zn="1514 B" ;; *) zn="64 KiB TSO" ;; esac
			dev_row "virtio-net $dn $zn" "net.$d.$sz" pps 1e6 \
				'%.3f Mpps'
		done
	done
fi

# 7. vsock through the harness beside a bare UNIX socket pair.
if want vsock; then
	say "7. vsock: ${VSOCK_MIB} MiB streams each way in 64 KiB chunks," \
		"beside a UNIX socket pair; $VSOCK_RUNS runs each"
	if ! run_dev_bench vsock "$BB/vsock_bench" -m "$VSOCK_MIB" \
			-r "$VSOCK_RUNS"; then
		fail_measure "vsock: vsock_bench failed (see $LOGS/vsock.err)"
	fi
	dev_row "vsock guest -> host (64 KiB chunks)" vsock.g2h mbps 1 '%.0f MB/s'
	dev_row "vsock host -> guest (64 KiB chunks)" vsock.h2g mbps 1 '%.0f MB/s'
fi

# 8. vmmd: vm.list round trips over the UNIX socket and TLS, and the rate
# at which VMs get created, started and booted through it.
if want rpc; then
	say "8. vmmd RPC: vm.list round trips, 1 and 16 clients, UNIX socket" \
		"and TLS, ${RPC_SECONDS} s each; $RPC_VMS VMs of $TESTGUEST" \
		"(64M, 1 vCPU) created with start from $RPC_THREADS threads"
	if ! rpc_tmp=$(mktemp -d /tmp/bench-rpc.XXXXXX); then
		fail_measure "rpc: cannot make a temporary directory"
	elif ! tests/integration/lib/mkcerts.sh "$rpc_tmp/certs" \
			>"$LOGS/rpc-mkcerts.log" 2>&1; then
		fail_measure "rpc: cannot make certificates (see $LOGS/rpc-mkcerts.log)"
	else
		rpc_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
		C=$rpc_tmp/certs
		echo '{"identities": {"admin1": {"role": "admin"}}}' \
			>"$rpc_tmp/policy.json"
		cat >"$rpc_tmp/vmmd.json" <<EOF
{"state_dir": "$rpc_tmp/state", "runtime_dir": "$rpc_tmp/run",
 "socket": "$rpc_tmp/run/vmmd.sock", "vmm_run": "$PWD/$VMMRUN",
 "log_level": "info", "limits": {"start_timeout_sec": 60},
 "tls": {"address": "127.0.0.1", "port": $rpc_port,
         "cert": "$C/server.crt", "key": "$C/server.key",
         "ca": "$C/ca.crt", "policy": "$rpc_tmp/policy.json"}}
EOF
		rpc_unix=unix://$rpc_tmp/run/vmmd.sock
		rpc_tls=(-c "$C/admin1.crt" -k "$C/admin1.key" -a "$C/ca.crt"
			-u "tls://127.0.0.1:$rpc_port")
		"$VMMD" --config "$rpc_tmp/vmmd.json" --foreground \
			>"$LOGS/rpc-vmmd.log" 2>&1 &
		rpc_vmmd_pid=$!
		up=no
		for _ in $(seq 200); do
			kill -0 "$rpc_vmmd_pid" 2>/dev/null || break
			if [ -S "$rpc_tmp/run/vmmd.sock" ] &&
			    "$BB/rpc_bench" list -u "$rpc_unix" -t 0.01 -T 5 \
				>/dev/null 2>&1; then
				up=yes
				break
			fi
			sleep 0.05
		done
		rpc_out=$LOGS/rpc.out
		: >"$LOGS/rpc.results"
		# rpc_step DESC ARGS...: one rpc_bench run, its line shown.
		rpc_step() {
			local d=$1; shift
			if "$BB/rpc_bench" "$@" -o "$LOGS/rpc.results" \
				>>"$rpc_out" 2>>"$LOGS/rpc.err"; then
				say "   $(tail -n 1 "$rpc_out")"
			else
				fail_measure "rpc: $d failed: $(tail -n 3 "$LOGS/rpc.err" | tr '\n' ' ' | head -c 300)"
				return 1
			fi
		}
		if [ $up != yes ]; then
			fail_measure "rpc: vmmd did not start (see $LOGS/rpc-vmmd.log)"
		elif rpc_step "defining VMs to list" define -u "$rpc_unix" \
				-g "$PWD/$TESTGUEST" -N 5 -x list; then
			for n in 1 16; do
				rpc_step "vm.list, $n UNIX clients" list \
					-u "$rpc_unix" -n $n -t "$RPC_SECONDS" \
					-K "rpc.unix.c$n"
				rpc_step "vm.list, $n TLS clients" list \
					"${rpc_tls[@]}" -n $n -t "$RPC_SECONDS" \
					-K "rpc.tls.c$n"
			done
			rpc_step "starting $RPC_VMS VMs" start -u "$rpc_unix" \
				-g "$PWD/$TESTGUEST" -N "$RPC_VMS" \
				-j "$RPC_THREADS" -x start -K rpc.start
			rpc_step "deleting the VMs" delete -u "$rpc_unix" -x ''
		fi
		load_results "$LOGS/rpc.results"
		rpc_cleanup
	fi
	R[rpc.target_p99_ms_max]=$RPC_P99_TARGET_MS
	R[rpc.target_running_per_core_s_min]=$RPC_START_TARGET
	# rpc_row METRIC KEY TARGET: a vm.list row from R[KEY.*].
	rpc_row() {
		local p99=${R[$2.p99_us]:-} t=$3 result=- ms
		if [ -z "$p99" ]; then
			row "$1" "FAILED" "-" "-" "$t" "-"
			return
		fi
		ms=$(calc "$p99 / 1000")
		if [ "$t" != - ]; then
			if [ "$(calc "$ms <= $RPC_P99_TARGET_MS")" = 1 ]; then
				result=MET
			else
				result=MISSED
			fi
			R[$2.result]=$result
		fi
		row "$1" "$(fmt "$ms" '%.2f ms')" \
			"p50 $(fmt "$(calc "${R[$2.p50_us]} / 1000")" '%.3f') ms, $(fmt "${R[$2.rps]}" '%.0f')/s" \
			"-" "$t" "$result"
	}
	rpc_row "vm.list p99, 1 UNIX client" rpc.unix.c1 -
	rpc_row "vm.list p99, 16 UNIX clients" rpc.unix.c16 -
	rpc_row "vm.list p99, 1 TLS client" rpc.tls.c1 -
	rpc_row "vm.list p99, 16 TLS clients" rpc.tls.c16 \
		"<= $RPC_P99_TARGET_MS ms"
	if [ -n "${R[rpc.start.running_per_core_s]:-}" ]; then
		v=${R[rpc.start.running_per_core_s]}
		if [ "$(calc "$v >= $RPC_START_TARGET")" = 1 ]; then
			result=MET
		else
			result=MISSED
		fi
		R[rpc.start.result]=$result
		row "VMs reaching running per core per s" \
			"$(fmt "$v" '%.2f')/s" \
			"$RPC_VMS in $(fmt "${R[rpc.start.running_s]}" '%.2f') s, $(nproc) CPUs" \
			"-" ">= $RPC_START_TARGET" "$result"
		row "VMs printing READY per core per s" \
			"$(fmt "${R[rpc.start.ready_per_core_s]}" '%.2f')/s" \
			"$RPC_VMS in $(fmt "${R[rpc.start.ready_s]}" '%.2f') s" \
			"-" "-" "-"
	else
		row "VMs reaching running per core per s" "FAILED" "-" "-" \
			">= $RPC_START_TARGET" "-"
	fi
fi

# 9. Noisy neighbours: CPU weight and quota through vmmd's cgroups, with
# VMs of the test kernel spinning; disk limits through the driver harness.
if want noisy; then
	say "9. noisy neighbours: two spinning VMs on host CPU 0, weights 100" \
		"and 300, ${NOISY_SECONDS} s; one VM with cpu_quota" \
		"$NOISY_QUOTA alone, ${NOISY_SECONDS} s"
	NPY=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null)
	[ -x "$NPY" ] || NPY=python3
	# nrpc METHOD [PARAMS]: one request to the noisy daemon.
	nrpc() { "$NPY" tests/integration/lib/rpc.py "$noisy_tmp/run/vmmd.sock" "$@" 2>&1; }
	# njson EXPR JSON: a Python expression over the response r.
	njson() { "$NPY" -c "import json,sys; r=json.loads(sys.argv[1]); print($1)" "$2" 2>/dev/null; }
	# nusage NAME: the VM's CPU time in microseconds, from vm.stats.
	nusage() { njson "r['result']['cpu']['usage_usec']" "$(nrpc vm.stats "{\"name\":\"$1\"}")"; }
	# nstart NAME RESOURCES: create and start a spinning VM.
	nstart() {
		local out
		out=$(nrpc vm.create "{\"definition\":{\"name\":\"$1\",\"kernel\":\"$PWD/$TESTGUEST\",\"cmdline\":\"testguest.action=spin\",\"memory\":\"64M\",\"vcpus\":1,\"resources\":$2},\"start\":true}")
		if [ "$(njson "r['result']['state']" "$out")" != running ]; then
			fail_measure "noisy: VM $1 did not start: $(echo "$out" | head -c 300)"
			return 1
		fi
	}
	ndelete() { nrpc vm.delete "{\"name\":\"$1\",\"force\":true}" >/dev/null; }
	if [ "$(id -u)" -ne 0 ]; then
		fail_measure "noisy: needs root (vmmd's cgroups)"
	elif ! noisy_tmp=$(mktemp -d /tmp/bench-noisy.XXXXXX); then
		fail_measure "noisy: cannot make a temporary directory"
	else
		cat >"$noisy_tmp/vmmd.json" <<EOF
{"state_dir": "$noisy_tmp/state", "runtime_dir": "$noisy_tmp/run",
 "socket": "$noisy_tmp/run/vmmd.sock", "vmm_run": "$PWD/$VMMRUN",
 "log_level": "info", "cgroup_subtree": "$noisy_subtree",
 "limits": {"start_timeout_sec": 60}}
EOF
		"$VMMD" --config "$noisy_tmp/vmmd.json" --foreground \
			>"$LOGS/noisy-vmmd.log" 2>&1 &
		noisy_vmmd_pid=$!
		up=no
		for _ in $(seq 200); do
			kill -0 "$noisy_vmmd_pid" 2>/dev/null || break
			if [ -S "$noisy_tmp/run/vmmd.sock" ] &&
			    nrpc daemon.info >/dev/null; then
				up=yes
				break
			fi
			sleep 0.05
		done
		if [ $up != yes ]; then
			fail_measure "noisy: vmmd did not start (see $LOGS/noisy-vmmd.log)"
		else
			grep -m1 "cgroup" "$LOGS/noisy-vmmd.log" | sed 's/^/bench:    vmmd: /'
			# Weights 1:3 on one host CPU.
			if nstart w100 '{"cpu_weight":100,"cpu_pin":["0"]}' &&
			    nstart w300 '{"cpu_weight":300,"cpu_pin":["0"]}'; then
				sleep 1	# past the boot, spinning
				a1=$(nusage w100) b1=$(nusage w300)
				t1=$(date +%s.%N)
				sleep "$NOISY_SECONDS"
				a2=$(nusage w100) b2=$(nusage w300)
				t2=$(date +%s.%N)
				if [ -n "$a1" ] && [ -n "$a2" ] && [ -n "$b1" ] &&
				    [ -n "$b2" ] && [ "$(calc "($a2 - $a1) + ($b2 - $b1) > 0")" = 1 ]; then
					da=$(calc "($a2 - $a1) / 1e6")
					db=$(calc "($b2 - $b1) / 1e6")
					dt=$(calc "$t2 - $t1")
					R[noisy.cpu.w100_cpu_s]=$da
					R[noisy.cpu.w300_cpu_s]=$db
					R[noisy.cpu.wall_s]=$dt
					R[noisy.cpu.w100_share_pct]=$(calc "100 * $da / ($da + $db)")
					say "   weight 100: $(fmt "$da" '%.2f') s of CPU," \
						"weight 300: $(fmt "$db" '%.2f') s, in" \
						"$(fmt "$dt" '%.2f') s: split" \
						"$(fmt "${R[noisy.cpu.w100_share_pct]}" '%.1f')/$(fmt "$(calc "100 - ${R[noisy.cpu.w100_share_pct]}")" '%.1f')"
				else
					fail_measure "noisy: no CPU usage from vm.stats ($a1 $a2 $b1 $b2)"
				fi
			fi
			ndelete w100
			ndelete w300
			# A quota of 0.3 CPU, alone.
			if nstart quota '{"cpu_quota":'"$NOISY_QUOTA"'}'; then
				sleep 1
				a1=$(nusage quota) t1=$(date +%s.%N)
				sleep "$NOISY_SECONDS"
				a2=$(nusage quota) t2=$(date +%s.%N)
				if [ -n "$a1" ] && [ -n "$a2" ]; then
					R[noisy.cpu.quota_cpus]=$(calc "($a2 - $a1) / 1e6 / ($t2 - $t1)")
					say "   quota $NOISY_QUOTA: $(fmt "${R[noisy.cpu.quota_cpus]}" '%.3f') CPUs"
				else
					fail_measure "noisy: no CPU usage from vm.stats for the quota VM"
				fi
			fi
			ndelete quota
		fi
		noisy_cleanup
	fi

	say "   disks: a disk limited to 2000 ops/s alone and beside an" \
		"unlimited one hammering the same disk; limited disks for 10 ms" \
		"and 1 s refill times; ${NOISY_BLK_SECONDS} s each"
	if ! noisy_blk_dir=$(mktemp -d "$NOISY_DIR/bench-noisy.XXXXXX"); then
		fail_measure "noisy: cannot make a directory in $NOISY_DIR"
	else
		run_dev_bench noisy-blk "$BB/noisy_bench" -p blk \
			-d "$noisy_blk_dir" -t "$NOISY_BLK_SECONDS" ||
			fail_measure "noisy: noisy_bench failed (see $LOGS/noisy-blk.err)"
		rm -rf "$noisy_blk_dir"
	fi
	say "   NIC: virtio-net on a TAP limited to 50 Mbit/s (1514-byte" \
		"frames) and to 5000 packets/s (60-byte frames), TX and RX, for" \
		"10 ms and 1 s refill times; ${NOISY_BLK_SECONDS} s each"
	run_dev_bench noisy-net "$BB/noisy_bench" -p net \
		-t "$NOISY_BLK_SECONDS" ||
		fail_measure "noisy: noisy_bench NIC rows failed (see $LOGS/noisy-net.err)"

	# The rows.
	if [ -n "${R[noisy.cpu.w100_share_pct]:-}" ]; then
		v=${R[noisy.cpu.w100_share_pct]}
		if [ "$(calc "$v >= $NOISY_SHARE_TARGET - $NOISY_SHARE_TOL && $v <= $NOISY_SHARE_TARGET + $NOISY_SHARE_TOL")" = 1 ]; then
			result=MET
		else
			result=MISSED
		fi
		R[noisy.cpu.share_result]=$result
		row "CPU split, weights 100:300 on 1 CPU" \
			"$(fmt "$v" '%.1f')/$(fmt "$(calc "100 - $v")" '%.1f') %" \
			"$(fmt "$(calc "${R[noisy.cpu.w100_cpu_s]} + ${R[noisy.cpu.w300_cpu_s]}")" '%.2f') CPU-s in $(fmt "${R[noisy.cpu.wall_s]}" '%.1f') s" \
			"-" "25/75 +- $NOISY_SHARE_TOL" "$result"
	else
		row "CPU split, weights 100:300 on 1 CPU" "FAILED" "-" "-" \
			"25/75 +- $NOISY_SHARE_TOL" "-"
	fi
	if [ -n "${R[noisy.cpu.quota_cpus]:-}" ]; then
		v=${R[noisy.cpu.quota_cpus]}
		if [ "$(calc "$v >= $NOISY_QUOTA - $NOISY_QUOTA_TOL && $v <= $NOISY_QUOTA + $NOISY_QUOTA_TOL")" = 1 ]; then
			result=MET
		else
			result=MISSED
		fi
		R[noisy.cpu.quota_result]=$result
		row "CPU of a VM with cpu_quota $NOISY_QUOTA" \
			"$(fmt "$v" '%.3f') CPUs" "configured $NOISY_QUOTA" \
			"$(fmt "$(calc "$v / $NOISY_QUOTA")" '%.3f')" \
			"$NOISY_QUOTA +- $NOISY_QUOTA_TOL" "$result"
	else
		row "CPU of a VM with cpu_quota $NOISY_QUOTA" "FAILED" "-" "-" \
			"$NOISY_QUOTA +- $NOISY_QUOTA_TOL" "-"
	fi
	# blk_ratio_row KEY METRIC VALUE OTHER RATIO: a row with target
	# 1 +- tolerance, its result in R[KEY].
	blk_ratio_row() {
		local result=MET
		[ "$(calc "$5 >= 1 - $NOISY_BLK_TOL && $5 <= 1 + $NOISY_BLK_TOL")" = 1 ] ||
			result=MISSED
		R[$1]=$result
		row "$2" "$3" "$4" "$(fmt "$5" '%.3f')" "1 +- $NOISY_BLK_TOL x" "$result"
	}
	if [ -n "${R[noisy.blk.ratio]:-}" ]; then
		blk_ratio_row noisy.blk.result "disk at 2000 ops/s beside a hammer" \
			"$(fmt "${R[noisy.blk.beside_ops]}" '%.0f') ops/s" \
			"alone $(fmt "${R[noisy.blk.alone_ops]}" '%.0f') ops/s" \
			"${R[noisy.blk.ratio]}"
		for rf in 10ms 1s; do
			k=noisy.blk.refill_$rf
			blk_ratio_row "$k.ops.result" "disk ops/s limit, refill $rf" \
				"$(fmt "${R[$k.ops.achieved]}" '%.1f')/s" \
				"configured $(fmt "${R[$k.ops.limit]}" '%.0f')/s" \
				"${R[$k.ops.ratio]}"
			blk_ratio_row "$k.bytes.result" "disk bytes/s limit, refill $rf" \
				"$(fmt "$(calc "${R[$k.bytes.achieved]} / 1e6")" '%.3f') MB/s" \
				"configured $(fmt "$(calc "${R[$k.bytes.limit]} / 1e6")" '%.0f') MB/s" \
				"${R[$k.bytes.ratio]}"
		done
	else
		row "disk at 2000 ops/s beside a hammer" "FAILED" "-" "-" \
			"1 +- $NOISY_BLK_TOL x" "-"
	fi
	for d in tx rx; do
		for rf in 10ms 1s; do
			k=noisy.net.$d.refill_$rf
			if [ -z "${R[$k.bytes.ratio]:-}" ] ||
			   [ -z "${R[$k.pkts.ratio]:-}" ]; then
				row "NIC $d limits, refill $rf" "FAILED" "-" "-" \
					"1 +- $NOISY_BLK_TOL x" "-"
				continue
			fi
			blk_ratio_row "$k.bytes.result" "NIC $d bytes/s limit, refill $rf" \
				"$(fmt "$(calc "${R[$k.bytes.achieved]} * 8 / 1e6")" '%.3f') Mbit/s" \
				"configured $(fmt "$(calc "${R[$k.bytes.limit]} * 8 / 1e6")" '%.0f') Mbit/s" \
				"${R[$k.bytes.ratio]}"
			blk_ratio_row "$k.pkts.result" "NIC $d packets/s limit, refill $rf" \
				"$(fmt "${R[$k.pkts.achieved]}" '%.1f')/s" \
				"configured $(fmt "${R[$k.pkts.limit]}" '%.0f')/s" \
				"${R[$k.pkts.ratio]}"
		done
	done
fi

R[errors]=${#errors[@]}
{
	echo "# make bench, $(date -u +%Y-%m-%dT%H:%M:%SZ): key=value; times in"
	echo "# the unit the key names; medians of the runs listed beside them."
	for k in $(printf '%s\n' "${!R[@]}" | sort); do
		echo "$k=${R[$k]}"
	done
} >"$RESULTS"

echo
echo "== vmm-run benchmarks: host KVM $HOST_KIND, $(nproc) CPUs, load" \
	"$(cut -d' ' -f1-3 /proc/loadavg), $(( $(date +%s) - START_TS )) s =="
printf '%-40s %-14s %-22s %-9s %-12s %s\n' "metric (median)" "vmm-run" \
	"QEMU / bare loop" "ratio" "target" "result"
printf '%s\n' "${rows[@]}"
if want linux && [ -n "$full_cmdline" ]; then
	echo "command line (both VMMs): $full_cmdline"
fi
if want exits && [ -n "${R[exits.ratio_best]:-}" ]; then
	echo "exits, best runs: vmm-run ${R[exits.vmm.best_per_s]}/s, bare" \
		"${R[exits.bare.best_per_s]}/s, ratio" \
		"$(fmt "${R[exits.ratio_best]}" '%.3f') (noise only slows runs down)"
fi
if [ -n "$blk_table" ]; then
	echo
	echo "virtio-blk (target: >= 0.90 x the bare io_uring loop):"
	echo "$blk_table"
	echo "fio in a guest: $FIO_NOTE"
fi
if want net && [ -s "$LOGS/net.out" ]; then
	echo
	echo "virtio-net, medians (Gbit/s count frame bytes; CPU per frame of"
	echo "every run in $LOGS/net.out):"
	sed -n '/^direction/,$p' "$LOGS/net.out"
	echo "iperf3 in a guest: $IPERF_NOTE"
fi
if want vsock && [ -s "$LOGS/vsock.out" ]; then
	echo
	echo "vsock, medians (every run in $LOGS/vsock.out):"
	sed -n '/^stream/,$p' "$LOGS/vsock.out"
fi
if want net || want vsock; then
	echo "note: net and vsock run the device, the guest driver (the harness)"
	echo "      and the peer as threads of one process; the bare loops have"
	echo "      one or two. On a loaded machine each gets a share of the CPUs"
	echo "      and the ratios move with the load: compare medians, and the"
	echo "      CPU per frame / MiB in the logs."
fi
if want linux && [ -n "$qemu_note" ]; then
	echo "(*) QEMU printed no first line: its memory was read at the timeout"
fi
if [ "$HOST_KIND" = pvm ]; then
	echo "note: on this PVM host guest kernel code is emulated (~4000x slower)"
	echo "      and each userspace exit costs microseconds; absolute times mean"
	echo "      little, the ratios are what to compare."
fi
echo "results: $RESULTS"
if [ ${#errors[@]} -gt 0 ]; then
	echo "bench: ${#errors[@]} measurement(s) could not be taken:"
	printf '  %s\n' "${errors[@]}"
	exit 1
fi
exit 0

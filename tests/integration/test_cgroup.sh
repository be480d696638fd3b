#!/bin/bash
# SPDX-License-Identifier: MIT
#
# vmmd/cgroup.c on this host's real cgroups (v1 on our machines: cpu,
# cpuacct, cpuset, memory, with an empty cgroup2 at /sys/fs/cgroup/unified;
# v2 hosts run it in a delegated systemd scope). A vmm-run with the test
# guest (or a sleep without /dev/kvm) stands in for a VM: it is in its
# group, threads and KVM's kvm-pit kernel thread included, with the values
# written; changing its quota while it runs changes the file; a busy loop
# with a 0.2 CPU quota is really throttled; limits the host cannot apply
# are refused with a message (memory below what is in use, CPUs vmmd does
# not have, a controller missing under the root given, no cgroups at all);
# destroying removes the group, and is refused while a process is in it.
# Files are read back here, not through the module. Every group made is
# removed, also on failure. Prints TAP.
#
# The module is driven through the unit test's command-line mode
# (tests/unit/test_vmmd_cgroup.c, "cli").
#
# Environment: BUILD (default build), CGROUP_CLI (default
# $BUILD/tests/unit/test_vmmd_cgroup), VMMRUN (default $BUILD/bin/vmm-run).
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
CLI=${CGROUP_CLI:-$BUILD/tests/unit/test_vmmd_cgroup}
VMMRUN=${VMMRUN:-$BUILD/bin/vmm-run}
GUEST=$BUILD/guest-tests/testguest.elf
# Names of our own: a real vmmd on this host keeps its "vmmd" subtree.
SUB=vmmd-test-$$
NAME=vm$$

# shellcheck source=lib/tap.sh
. tests/integration/lib/tap.sh
# refused DESC PATTERN RC OUT: the command failed with output matching the
# glob PATTERN.
refused() {
	if [ "$3" -ne 0 ] && [[ $4 == *$2 ]]; then
		ok "$1"
	else
		not_ok "$1" "expected failure matching: $2" "rc $3, output: $4"
	fi
}
# expect DESC WANT GOT
expect() {
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "expected: '$2'" "got:      '$3'"; fi
}

if [ "$(id -u)" != 0 ]; then
	skip "not root: making cgroups needs root"
	finish
fi
if [ ! -x "$CLI" ]; then
	not_ok "$CLI is missing (make test-build)"
	finish
fi
# On a cgroup v2 host, vmmd's detection moves every process of its own
# cgroup into a leaf: run in a scope of our own so that is only us.
if [ -f /sys/fs/cgroup/cgroup.controllers ] &&
   grep -qwE 'cpu|memory|cpuset' /sys/fs/cgroup/cgroup.controllers &&
   [ -z "${CGROUP_TEST_SCOPED:-}" ]; then
	if command -v systemd-run >/dev/null &&
	   systemd-run --scope --quiet -p Delegate=yes true 2>/dev/null; then
		exec systemd-run --scope --quiet -p Delegate=yes \
			env CGROUP_TEST_SCOPED=1 "$0" "$@"
	fi
	skip "cgroup v2 host without systemd-run --scope -p Delegate=yes"
	finish
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/test_cgroup.XXXXXX") || exit 1
pids=()
dirs=()		# every group and base made, removed deepest first
cleanup() {
	local p d i t
	for p in "${pids[@]}"; do
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	for ((i = ${#dirs[@]} - 1; i >= 0; i--)); do
		d=${dirs[i]}
		[ -d "$d" ] || continue
		for t in 1 2 3 4 5 6 7 8 9 10; do
			rmdir "$d" 2>/dev/null && break
			sleep 0.1
		done
		[ -d "$d" ] && echo "# cleanup: could not remove $d"
	done
	rm -rf "$TMP"
}
trap cleanup EXIT

cg() { "$CLI" cli -s "$SUB" "$@"; }
# kv KEY TEXT: the value of KEY=... in TEXT
kv() { printf '%s\n' "$2" | sed -n "s/^$1=//p" | head -1; }
# The group of task TASKDIR (/proc/PID or /proc/PID/task/TID) for
# controller C (v1), or its v2 group.
cg_of() {
	if [ "$VER" = v2 ]; then
		sed -n 's/^0:://p' "$1/cgroup"
	else
		sed -nE "s/^[0-9]+:([^:]*,)?$2(,[^:]*)?://p" "$1/cgroup"
	fi
}

# --- detection ------------------------------------------------------------
out=$(cg detect 2>&1)
VER=$(kv version "$out")
echo "# $(kv desc "$out")"
CTRLS="cpu cpuacct cpuset memory"
for c in $CTRLS; do
	b=$(kv "base.$c" "$out")
	eval "BASE_$c=\$b"
	# Bases are made by detection: ours to remove (deepest first: v2's
	# vms/ is made below the scope, which systemd removes).
	[ "$b" != - ] && [ -n "$b" ] && dirs+=("$b")
done
if [ -f /sys/fs/cgroup/cgroup.controllers ] &&
   grep -qwE 'cpu|memory|cpuset' /sys/fs/cgroup/cgroup.controllers; then
	expect "detection picks cgroup v2 on this v2 host" v2 "$VER"
else
	expect "detection picks cgroup v1 here (the cgroup2 mount has no controllers)" v1 "$VER"
fi
if [ "$VER" != v1 ] && [ "$VER" != v2 ]; then
	not_ok "cgroups usable" "$out"
	finish
fi
have() { eval "[ \"\$BASE_$1\" != - ]"; }
missing=""
for c in cpu cpuset memory; do have $c || missing="$missing $c"; done
if [ -n "$missing" ]; then
	not_ok "cpu, cpuset and memory available" "missing:$missing" "$out"
else
	ok "cpu, cpuset and memory available"
fi

# --- a VM's group -----------------------------------------------------------
# mkgroup NAME: create; dirs of it in D_<ctrl>.
mkgroup() {
	local o c d
	o=$(cg create "$1" 2>&1) || { not_ok "create $1" "$o"; return 1; }
	for c in $CTRLS; do
		d=$(kv "dir.$c" "$o")
		eval "D_$c=\$d"
		[ "$d" != - ] && dirs+=("$d")
	done
	return 0
}
mkgroup "$NAME" || finish
alldirs=1
for c in $CTRLS; do
	eval "d=\$D_$c"
	[ "$d" = - ] || [ -d "$d" ] || alldirs=0
done
[ $alldirs = 1 ] && ok "create made the group in every hierarchy" ||
	not_ok "create made the group in every hierarchy" "$D_cpu $D_cpuset $D_memory"
if [ "$VER" = v1 ]; then
	pcpus=$(cat "$BASE_cpuset/cpuset.cpus")
	expect "v1: the VM's cpuset.cpus is copied from its parent" "$pcpus" "$(cat "$D_cpuset/cpuset.cpus")"
	expect "v1: the VM's cpuset.mems is copied from its parent" "$(cat "$BASE_cpuset/cpuset.mems")" "$(cat "$D_cpuset/cpuset.mems")"
else
	pcpus=$(cat "$BASE_cpuset/cpuset.cpus.effective")
fi
VMDIR_cpu=$D_cpu VMDIR_cpuset=$D_cpuset VMDIR_memory=$D_memory

# --- the VM process -------------------------------------------------------
kvm=0
if [ -w /dev/kvm ] && [ -x "$VMMRUN" ] && [ -f "$GUEST" ]; then
	"$VMMRUN" --kernel "$GUEST" --cmdline testguest.action=hang \
		--name "$NAME" --memory 64M --console none \
		>"$TMP/vm.out" 2>&1 &
	vm=$!
	kvm=1
else
	sleep 600 &
	vm=$!
fi
pids+=($vm)
pit=""
if [ $kvm = 1 ]; then
	for _ in $(seq 100); do
		pit=$(grep -lx "kvm-pit/$vm" /proc/[0-9]*/comm 2>/dev/null | head -1)
		[ -n "$pit" ] && break
		sleep 0.05
	done
	pit=${pit%/comm}
	pit=${pit#/proc/}
fi

out=$(cg attach "$NAME" "$vm" 2>&1)
if [ $? -eq 0 ]; then ok "attach"; else not_ok "attach" "$out"; fi
inall=1 bad=""
for t in /proc/$vm/task/*; do
	for c in cpu cpuacct cpuset memory; do
		g=$(cg_of "$t" $c)
		case "$g" in
		*/$NAME) ;;
		*) inall=0; bad="$bad ${t##*/}:$c:$g" ;;
		esac
		[ "$VER" = v2 ] && break
	done
done
[ $inall = 1 ] && ok "the process and all $(ls /proc/$vm/task | wc -l) threads are in the VM's group" ||
	not_ok "the process and all its threads are in the VM's group" "outside:$bad"
if [ $kvm = 0 ]; then
	skip "no usable /dev/kvm (or vmm-run, test guest): no kvm-pit thread"
elif [ -z "$pit" ]; then
	not_ok "vmm-run's kvm-pit/$vm kernel thread exists"
else
	found=$(kv kthreads_found "$out") moved=$(kv kthreads_moved "$out")
	expect "attach found kvm-pit/$vm" 1 "$found"
	g=$(cg_of "/proc/$pit" cpu)
	case "$g" in
	*/$NAME) ok "kvm-pit/$vm (tid $pit) joined the VM's group (moved $moved)" ;;
	*) if [ "$moved" = 0 ]; then
		skip "the kernel keeps kernel threads out of v2 groups (kvm-pit/$vm in $g)"
	   else
		not_ok "kvm-pit/$vm joined the VM's group" "its group: $g"
	   fi ;;
	esac
fi

# --- limits ---------------------------------------------------------------
lastcpu=$(nproc --all); lastcpu=$((lastcpu - 1))
out=$(cg apply "$NAME" weight=300 quota=500 cpus=$lastcpu memory=536870912 2>&1)
if [ $? -eq 0 ]; then ok "apply weight 300, quota 0.5, cpu $lastcpu, memory 512M"; else not_ok "apply" "$out"; fi
if [ "$VER" = v1 ]; then
	expect "cpu.shares = 300 * 1024 / 100" 3072 "$(cat "$D_cpu/cpu.shares")"
	expect "cpu.cfs_period_us" 100000 "$(cat "$D_cpu/cpu.cfs_period_us")"
	expect "cpu.cfs_quota_us = 0.5 CPU" 50000 "$(cat "$D_cpu/cpu.cfs_quota_us")"
	expect "memory.limit_in_bytes" 536870912 "$(cat "$D_memory/memory.limit_in_bytes")"
else
	expect "cpu.weight" 300 "$(cat "$D_cpu/cpu.weight")"
	expect "cpu.max = 0.5 CPU" "50000 100000" "$(cat "$D_cpu/cpu.max")"
	expect "memory.max" 536870912 "$(cat "$D_memory/memory.max")"
	expect "memory.high = 95%" 510027366 "$(cat "$D_memory/memory.high")"
fi
expect "cpuset.cpus" "$lastcpu" "$(cat "$D_cpuset/cpuset.cpus")"
expect "the kernel applied the cpuset to the running process" "$lastcpu" \
	"$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/$vm/status)"

out=$(cg apply "$NAME" weight=300 quota=250 cpus=$lastcpu memory=536870912 2>&1)
if [ $? -eq 0 ]; then ok "change the quota to 0.25 while it runs"; else not_ok "change the quota" "$out"; fi
if [ "$VER" = v1 ]; then
	expect "cpu.cfs_quota_us changed" 25000 "$(cat "$D_cpu/cpu.cfs_quota_us")"
else
	expect "cpu.max changed" "25000 100000" "$(cat "$D_cpu/cpu.max")"
fi
kill -0 $vm 2>/dev/null && ok "the VM still runs" || not_ok "the VM still runs" "$(tail -3 "$TMP/vm.out" 2>/dev/null)"

out=$(cg stats "$NAME" 2>&1)
if [ "$(kv has_cpu "$out")" = 1 ] && [ "$(kv has_memory "$out")" = 1 ]; then
	ok "stats: CPU and memory accounting"
else
	not_ok "stats: CPU and memory accounting" "$out"
fi

# Unset: back to the defaults.
out=$(cg apply "$NAME" 2>&1)
if [ $? -eq 0 ]; then ok "apply with nothing set"; else not_ok "apply with nothing set" "$out"; fi
if [ "$VER" = v1 ]; then
	expect "unset: cpu.shares" 1024 "$(cat "$D_cpu/cpu.shares")"
	expect "unset: cpu.cfs_quota_us" -1 "$(cat "$D_cpu/cpu.cfs_quota_us")"
	expect "unset: cpuset.cpus is the parent's" "$pcpus" "$(cat "$D_cpuset/cpuset.cpus")"
	lim=$(cat "$D_memory/memory.limit_in_bytes")
	[ "$lim" -gt 1000000000000 ] && ok "unset: memory.limit_in_bytes unlimited ($lim)" ||
		not_ok "unset: memory.limit_in_bytes unlimited" "got $lim"
else
	expect "unset: cpu.weight" 100 "$(cat "$D_cpu/cpu.weight")"
	expect "unset: cpu.max" "max 100000" "$(cat "$D_cpu/cpu.max")"
	expect "unset: cpuset.cpus" "" "$(cat "$D_cpuset/cpuset.cpus")"
	expect "unset: memory.max" max "$(cat "$D_memory/memory.max")"
fi
expect "unset: the process may run on every CPU again" "$pcpus" \
	"$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/$vm/status)"

# --- a quota really limits ------------------------------------------------
BUSY=$NAME-busy
if mkgroup "$BUSY"; then
	bash -c 'while :; do :; done' &
	busy=$!
	pids+=($busy)
	cg attach "$BUSY" $busy >/dev/null 2>&1
	cg apply "$BUSY" quota=200 >/dev/null 2>&1
	s0=$(kv cpu_usage_ns "$(cg stats "$BUSY")"); t0=$(date +%s%N)
	sleep 2
	st=$(cg stats "$BUSY")
	s1=$(kv cpu_usage_ns "$st"); t1=$(date +%s%N)
	thr=$(kv cpu_nr_throttled "$st")
	share=$(( (s1 - s0) * 1000 / (t1 - t0) ))
	if [ "$share" -ge 120 ] && [ "$share" -le 260 ] && [ "${thr:-0}" -gt 0 ]; then
		ok "a busy loop under a 0.2 CPU quota got $share/1000 of a CPU, throttled $thr times"
	else
		not_ok "a busy loop under a 0.2 CPU quota gets about 0.2 CPU" \
			"share $share/1000, throttled $thr times" "$st"
	fi
	kill -KILL $busy; wait $busy 2>/dev/null
	out=$(cg destroy "$BUSY" 2>&1)
	[ $? -eq 0 ] && [ ! -d "$D_cpu" ] && ok "destroy the busy group" ||
		not_ok "destroy the busy group" "$out"
fi

# --- what the host cannot apply is refused ----------------------------------
out=$(cg apply "$NAME" cpus=1000 2>&1)
rc=$?
refused "CPUs outside vmmd's cpuset are refused" \
	"error=22 cpu_pin: CPUs 1000 are not in vmmd's cpuset ($pcpus)*" $rc "$out"

MEM=$NAME-mem
if ! command -v python3 >/dev/null; then
	skip "no python3 to hold memory"
elif mkgroup "$MEM"; then
	mkfifo "$TMP/go"
	# Allocates 64 MiB once it is in its group, so the group is charged.
	python3 -c '
import sys, time
open(sys.argv[1]).read()
b = b"\x01" * (64 << 20)
print("allocated", flush=True)
time.sleep(600)' "$TMP/go" >"$TMP/mem.out" &
	mem=$!
	pids+=($mem)
	cg attach "$MEM" $mem >/dev/null 2>&1
	echo go >"$TMP/go"
	for _ in $(seq 100); do grep -q allocated "$TMP/mem.out" && break; sleep 0.05; done
	if [ "$VER" = v1 ]; then before=$(cat "$D_memory/memory.limit_in_bytes"); else before=$(cat "$D_memory/memory.max"); fi
	out=$(cg apply "$MEM" memory=16777216 2>&1)
	rc=$?
	refused "a memory limit below what the process uses is refused (EBUSY)" \
		"error=16 memory_limit: *" $rc "$out"
	echo "# $(echo "$out" | head -1)"
	if [ "$VER" = v1 ]; then after=$(cat "$D_memory/memory.limit_in_bytes"); else after=$(cat "$D_memory/memory.max"); fi
	expect "the memory limit is unchanged" "$before" "$after"
	kill -0 $mem 2>/dev/null && ok "the process was not killed" || not_ok "the process was not killed"
	kill -KILL $mem; wait $mem 2>/dev/null
	cg destroy "$MEM" >/dev/null 2>&1
fi

if [ "$VER" = v1 ]; then
	# A host whose v1 has memory only: the root given holds just that.
	mkdir "$TMP/root"
	memmount=$(awk '{ for (i = 7; i < NF; i++) if ($i == "-") {
		if ($(i + 1) == "cgroup" && $(i + 3) ~ /(^|,)memory(,|$)/) print $5
		break } }' /proc/self/mountinfo | head -1)
	ln -s "$memmount" "$TMP/root/memory"
	out=$("$CLI" cli -r "$TMP/root" -s "$SUB" detect 2>&1)
	expect "a root with only the memory hierarchy: v1" v1 "$(kv version "$out")"
	expect "... without cpu" - "$(kv base.cpu "$out")"
	o=$("$CLI" cli -r "$TMP/root" -s "$SUB" create "$NAME-x" 2>&1)
	d=$(kv dir.memory "$o"); [ -n "$d" ] && [ "$d" != - ] && dirs+=("$d")
	out=$("$CLI" cli -r "$TMP/root" -s "$SUB" apply "$NAME-x" quota=500 2>&1)
	rc=$?
	refused "a CPU quota without the cpu controller is refused, named" \
		"error=95 cpu_quota: the cpu controller is not available on this host (cgroup v1 without cpu: *" \
		$rc "$out"
	out=$("$CLI" cli -r "$TMP/root" -s "$SUB" apply "$NAME-x" memory=268435456 2>&1)
	[ $? -eq 0 ] && expect "... while a memory limit works there" 268435456 "$(cat "$d/memory.limit_in_bytes")" ||
		not_ok "a memory limit with the memory controller only" "$out"
	"$CLI" cli -r "$TMP/root" -s "$SUB" destroy "$NAME-x" >/dev/null 2>&1
fi

# Neither v1 nor v2 under the root given.
mkdir "$TMP/empty"
out=$("$CLI" cli -r "$TMP/empty" -s "$SUB" detect 2>&1)
expect "an empty root: no cgroups" none "$(kv version "$out")"
out=$("$CLI" cli -r "$TMP/empty" -s "$SUB" create "$NAME" 2>&1) &&
	out=$("$CLI" cli -r "$TMP/empty" -s "$SUB" apply "$NAME" memory=268435456 2>&1)
rc=$?
refused "without cgroups a memory limit is refused, not skipped" \
	"error=95 memory_limit: the memory controller is not available on this host (no cgroup controllers: *" \
	$rc "$out"

# --- removal --------------------------------------------------------------
out=$(cg destroy "$NAME" 2>&1)
rc=$?
refused "destroy with the VM still running is refused (EBUSY)" \
	"error=16 cgroup: VM \"$NAME\": removing *: Device or resource busy (processes are still in it)*" \
	$rc "$out"
[ -d "$VMDIR_cpu" ] && [ -d "$VMDIR_memory" ] && ok "... and the group stays" ||
	not_ok "... and the group stays"
kill -KILL $vm; wait $vm 2>/dev/null
out=$(cg destroy "$NAME" 2>&1)
rc=$?
gone=1
for d in "$VMDIR_cpu" "$VMDIR_cpuset" "$VMDIR_memory"; do [ -e "$d" ] && gone=0; done
[ $rc -eq 0 ] && [ $gone = 1 ] && ok "destroy after the VM ended removes its group everywhere" ||
	not_ok "destroy removes the group" "rc $rc" "$out"
out=$(cg destroy "$NAME" 2>&1)
refused "a group that is gone cannot be opened again (ENOENT)" \
	"error=2 cgroup: VM \"$NAME\" has no group *" $? "$out"

finish

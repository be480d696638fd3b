#!/bin/bash
# SPDX-License-Identifier: MIT
#
# vmmd's CPU and memory limits on this host's real cgroups (issue #6): a
# real daemon on a temporary state directory, runtime directory, socket and
# cgroup subtree of its own, driving the project's test guest through
# vmm-run. A VM started with cpu_weight, cpu_quota and memory_limit runs
# in its group with the values written; vm.set changes the quota while it
# runs; cpu_pin sets the vCPU thread's affinity and device_cpus the
# others'; vm.stats reads the group; stopping and deleting remove the
# group; limits the host cannot apply are refused, naming them. Prints TAP.
#
# Environment: BUILD (default build), VMMD, VMMRUN (default $BUILD/bin/...).
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
VMMD=${VMMD:-$BUILD/bin/vmmd}
VMMRUN=${VMMRUN:-$BUILD/bin/vmm-run}
GUEST=$PWD/$BUILD/guest-tests/testguest.elf
RPC=tests/integration/lib/rpc.py
CG=/sys/fs/cgroup

PY=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null)
[ -x "$PY" ] || PY=python3

TMP=$(mktemp -d /tmp/test_vmmd_limits.XXXXXX) || exit 1
SOCK=$TMP/run/vmmd.sock
# vmmd's part of each hierarchy: this test's own, removed at the end.
SUBTREE=vmmd-test-$$
vmmd_pid=
seen_vm_pids=()

kill_ours() {
	local p
	for p in "$@"; do
		[ -n "$p" ] && [ -r /proc/$p/cmdline ] &&
			tr '\0' ' ' </proc/$p/cmdline | grep -q "$TMP" &&
			kill -KILL "$p" 2>/dev/null
	done
}
cleanup() {
	local p f d
	# TERM: vmmd ends on its own (no "Killed" from the shell).
	[ -n "$vmmd_pid" ] && kill -TERM "$vmmd_pid" 2>/dev/null &&
		wait "$vmmd_pid" 2>/dev/null
	for f in "$TMP"/run/vms/*/pid; do
		[ -r "$f" ] && kill_ours "$(cat "$f")"
	done
	kill_ours "${seen_vm_pids[@]}"
	wait 2>/dev/null
	sleep 0.2
	# Deepest first: the VMs' groups, then the subtree.
	for d in $(find "$CG" -maxdepth 4 -type d -name "$SUBTREE" 2>/dev/null); do
		find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
	done
	if [ "${KEEP_TMP:-}" ]; then echo "# kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

# shellcheck source=lib/tap.sh
. tests/integration/lib/tap.sh
not_ok_extra() {
	echo "#   vmmd log: $(tail -3 "$TMP/vmmd.log" 2>/dev/null | tr '\n' '|' | cut -c1-600)"
}
check() {	# DESC COMMAND...: ok when the command succeeds
	local d=$1; shift
	if "$@"; then ok "$d"; else not_ok "$d" "failed: $*"; fi
}
pyexpr() {
	$PY -c "import json,sys; r=json.loads(sys.argv[1]); sys.exit(0 if ($1) else 1)" "$2" 2>/dev/null
}
rpc() { $PY $RPC "$SOCK" "$@" 2>&1; }
rpc_expect() {	# DESC METHOD PARAMS PYEXPR
	local d=$1 method=$2 params=$3 expr=$4 out
	out=$($PY $RPC "$SOCK" "$method" ${params:+"$params"} 2>&1)
	if pyexpr "$expr" "$out"; then
		ok "$d"
	else
		not_ok "$d" "request: $method $params" "expected: $expr" "response: $(echo "$out" | cut -c1-500)"
	fi
}
field() {
	$PY -c "import json,sys; r=json.loads(sys.argv[1]); print($3)" "$(rpc "$1" "$2")" 2>/dev/null
}
vm_pid() { field vm.info "{\"name\":\"$1\"}" "r['result'].get('pid','')"; }
remember_pid() { [ -n "$1" ] && seen_vm_pids+=("$1"); }
guest_def() {	# NAME [EXTRA JSON MEMBERS]
	echo "{\"name\":\"$1\",\"kernel\":\"$GUEST\",\"cmdline\":\"testguest.action=echo\",\"memory\":\"64M\"${2:+,$2}}"
}
# The directory of vmmd's VM groups in a v1 hierarchy: vmmd's own cgroup
# there (the test's shell's, which vmmd inherits) plus the subtree.
own_cg() {	# CONTROLLER
	awk -F: -v c="$1" '{ n = split($2, a, ","); for (i = 1; i <= n; i++)
		if (a[i] == c) { print $3; exit } }' /proc/self/cgroup
}
hier() {	# CONTROLLER: the mount point of its v1 hierarchy
	awk -v c="$1" '$3 == "cgroup" { n = split($4, o, ","); for (i = 1; i <= n; i++)
		if (o[i] == c) { print $2; exit } }' /proc/mounts
}
vm_dir() {	# CONTROLLER NAME
	local own
	own=$(own_cg "$1")
	[ "$own" = / ] && own=
	echo "$(hier "$1")$own/$SUBTREE/$2"
}
# in_group PID CONTROLLER NAME: /proc/PID/cgroup puts it in the VM's group.
in_group() {
	local own want
	own=$(own_cg "$2")
	[ "$own" = / ] && own=
	want="$own/$SUBTREE/$3"
	awk -F: -v c="$2" -v w="$want" '{ n = split($2, a, ","); for (i = 1; i <= n; i++)
		if (a[i] == c && $3 == w) f = 1 } END { exit !f }' /proc/$1/cgroup
}
# wait_for SECONDS COMMAND...: until the command succeeds.
wait_for() {
	local s=$1 i; shift
	for i in $(seq $((s * 10))); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}
cpus_allowed() {	# PID TID
	awk '/^Cpus_allowed_list:/ { print $2 }' /proc/$1/task/$2/status 2>/dev/null
}

if [ ! -w /dev/kvm ]; then
	skip "no usable /dev/kvm: vmmd's VMs need it"
	echo "1..$n"; exit 0
fi
if [ "$(id -u)" != 0 ]; then
	skip "not root: cgroups and other threads' affinity need it"
	echo "1..$n"; exit 0
fi
for c in cpu cpuacct cpuset memory; do
	if [ -z "$(hier $c)" ]; then
		skip "no cgroup v1 $c hierarchy: this test checks v1 files"
		echo "1..$n"; exit 0
	fi
done
for f in "$VMMD" "$VMMRUN" "$GUEST"; do
	if [ ! -x "$f" ] && [ ! -r "$f" ]; then
		not_ok "$f exists (make first)"
		echo "1..$n"; exit 1
	fi
done
NCPU=$(nproc)

cat >"$TMP/vmmd.json" <<EOF
{"state_dir": "$TMP/state", "runtime_dir": "$TMP/run", "socket": "$SOCK",
 "vmm_run": "$PWD/$VMMRUN", "log_level": "debug",
 "cgroup_subtree": "$SUBTREE", "limits": {"start_timeout_sec": 15}}
EOF
"$VMMD" --config "$TMP/vmmd.json" --foreground >>"$TMP/vmmd.log" 2>&1 &
vmmd_pid=$!
if ! wait_for 5 eval "[ -S '$SOCK' ] && $PY $RPC '$SOCK' daemon.info >/dev/null 2>&1"; then
	not_ok "vmmd starts" "$(tail -5 "$TMP/vmmd.log")"
	echo "1..$n"; exit 1
fi
grep -q "cgroup: cgroup v1" "$TMP/vmmd.log" &&
	ok "vmmd logs the cgroup version it found (v1)" ||
	not_ok "vmmd logs the cgroup version it found (v1)" "$(grep cgroup "$TMP/vmmd.log" | head -3)"

# --- a limited VM: placement and the values written ------------------------
rpc_expect "a VM with cpu_weight 200, cpu_quota 0.5, memory_limit 512M starts" vm.create \
	"{\"definition\":$(guest_def lim '"resources":{"cpu_weight":200,"cpu_quota":0.5,"memory_limit":"512M"}'),\"start\":true}" \
	"r['result']['state']=='running' and r['result']['pid']>0"
pid=$(vm_pid lim); remember_pid "$pid"
for c in cpu cpuacct cpuset memory; do
	in_group "$pid" $c lim && ok "vmm-run (pid $pid) is in the VM's $c group" ||
		not_ok "vmm-run (pid $pid) is in the VM's $c group" \
			"/proc/$pid/cgroup: $(tr '\n' ' ' </proc/$pid/cgroup 2>&1)" \
			"want $(vm_dir $c lim)"
done
# Every thread, the vCPUs made after the move too.
bad=
for t in /proc/$pid/task/*; do
	grep -q "$(vm_dir cpu lim | sed "s|^$(hier cpu)||")\$" $t/cgroup 2>/dev/null ||
		bad="$bad $(basename $t)"
done
[ -z "$bad" ] && ok "every thread of vmm-run is in the group" ||
	not_ok "every thread of vmm-run is in the group" "outside:$bad"
CPU_DIR=$(vm_dir cpu lim) MEM_DIR=$(vm_dir memory lim)
v=$(cat "$CPU_DIR/cpu.shares" 2>&1)
[ "$v" = 2048 ] && ok "cpu.shares is 2048 (weight 200)" ||
	not_ok "cpu.shares is 2048 (weight 200)" "got $v"
v="$(cat "$CPU_DIR/cpu.cfs_quota_us" 2>&1) $(cat "$CPU_DIR/cpu.cfs_period_us" 2>&1)"
[ "$v" = "50000 100000" ] && ok "cfs quota 50000 of period 100000 (0.5 CPU)" ||
	not_ok "cfs quota 50000 of period 100000 (0.5 CPU)" "got $v"
v=$(cat "$MEM_DIR/memory.limit_in_bytes" 2>&1)
[ "$v" = $((512 << 20)) ] && ok "memory.limit_in_bytes is 512M" ||
	not_ok "memory.limit_in_bytes is 512M" "got $v"
if grep -q "kvm-pit/$pid" /proc/*/comm 2>/dev/null; then
	kp=$(grep -l "^kvm-pit/$pid\$" /proc/[0-9]*/comm 2>/dev/null | head -1 | cut -d/ -f3)
	wait_for 3 in_group "$kp" cpu lim && ok "KVM's kvm-pit/$pid thread joined the group" ||
		not_ok "KVM's kvm-pit/$pid thread joined the group" "$(cat /proc/$kp/cgroup 2>&1 | tr '\n' ' ')"
else
	skip "no kvm-pit/$pid kernel thread on this host's KVM"
fi

# --- vm.stats from the group --------------------------------------------------
sleep 0.5
out=$(rpc vm.stats '{"name":"lim"}')
usage=$(cat "$(vm_dir cpuacct lim)/cpuacct.usage" 2>/dev/null)
musage=$(cat "$MEM_DIR/memory.usage_in_bytes" 2>/dev/null)
if pyexpr "r['result']['cgroup'] is True and r['result']['cpu']['usage_usec']>0 and r['result']['cpu']['usage_usec']<=$usage//1000+2000000 and r['result']['memory']['current']>0 and r['result']['memory']['limit']==512<<20 and 'peak' in r['result']['memory'] and 'throttled_usec' in r['result']['cpu']" "$out"; then
	ok "vm.stats: CPU usage and memory current from the group (cpuacct.usage $usage ns, usage $musage)"
else
	not_ok "vm.stats: CPU usage and memory current from the group" "$(echo "$out" | cut -c1-400)" "cpuacct.usage $usage"
fi
# The group's memory, not the process's RSS: the same order as the file.
cur=$(field vm.stats '{"name":"lim"}' "r['result']['memory']['current']")
musage=$(cat "$MEM_DIR/memory.usage_in_bytes" 2>/dev/null)
if [ -n "$cur" ] && [ -n "$musage" ] &&
	[ $((cur > musage ? cur - musage : musage - cur)) -le $((4 << 20)) ]; then
	ok "memory.current ($cur) is the group's memory.usage_in_bytes ($musage)"
else
	not_ok "memory.current is the group's memory.usage_in_bytes" "stats $cur, file $musage"
fi

# --- vm.set while it runs -----------------------------------------------------
rpc_expect "vm.set cpu_quota 0.25 on the running VM: applied" vm.set \
	'{"name":"lim","changes":{"resources":{"cpu_quota":0.25}}}' \
	"r['result']['applied'] is True and r['result']['definition']['resources']['cpu_quota']==0.25"
v=$(cat "$CPU_DIR/cpu.cfs_quota_us" 2>&1)
[ "$v" = 25000 ] && ok "cpu.cfs_quota_us is now 25000" || not_ok "cpu.cfs_quota_us is now 25000" "got $v"
rpc_expect "vm.set removes the quota (null): applied" vm.set \
	'{"name":"lim","changes":{"resources":{"cpu_quota":null}}}' \
	"r['result']['applied'] is True and 'cpu_quota' not in r['result']['definition']['resources']"
v=$(cat "$CPU_DIR/cpu.cfs_quota_us" 2>&1)
[ "$v" = -1 ] && ok "cpu.cfs_quota_us is back to -1 (no quota)" || not_ok "cpu.cfs_quota_us is back to -1" "got $v"

# A memory limit below what the group uses: the kernel would have to kill
# the VM; refused, naming the setting, and neither stored nor applied. The
# test guest touches little of its memory, so a helper joins the VM's
# memory group and holds 100M there (this host has no swap to push it to).
$PY -c '
import sys, time
open(sys.argv[1] + "/tasks", "w").write("0")
b = bytearray(100 << 20)
for i in range(0, len(b), 4096):
	b[i] = 1
print("ready", flush=True)
time.sleep(60)' "$MEM_DIR" >"$TMP/hog.out" 2>&1 &
hog=$!
wait_for 10 grep -q ready "$TMP/hog.out"
musage=$(cat "$MEM_DIR/memory.usage_in_bytes" 2>/dev/null)
if [ -n "$musage" ] && [ "$musage" -gt $((96 << 20)) ]; then
	rpc_expect "vm.set memory_limit 64M below what the group uses: refused, naming memory_limit" vm.set \
		'{"name":"lim","changes":{"resources":{"memory_limit":"64M"}}}' \
		"r['error']['code'] in (-32003, -32602) and 'memory_limit' in r['error']['message']"
	v=$(cat "$MEM_DIR/memory.limit_in_bytes" 2>&1)
	[ "$v" = $((512 << 20)) ] && ok "memory.limit_in_bytes stays 512M" ||
		not_ok "memory.limit_in_bytes stays 512M" "got $v"
	rpc_expect "... and the stored definition keeps 512M" vm.info '{"name":"lim"}' \
		"r['result']['definition']['resources']['memory_limit']=='512M'"
else
	not_ok "a helper fills the VM's memory group" "usage $musage" "$(cat "$TMP/hog.out")"
fi
kill -KILL $hog 2>/dev/null; wait $hog 2>/dev/null
rpc_expect "vm.set memory_limit 256M: applied" vm.set \
	'{"name":"lim","changes":{"resources":{"memory_limit":"256M"}}}' "r['result']['applied'] is True"
v=$(cat "$MEM_DIR/memory.limit_in_bytes" 2>&1)
[ "$v" = $((256 << 20)) ] && ok "memory.limit_in_bytes is 256M" ||
	not_ok "memory.limit_in_bytes is 256M" "got $v"

# --- stop: the group goes ------------------------------------------------------
rpc_expect "vm.kill stops it" vm.kill '{"name":"lim"}' "r['result']['state']=='stopped'"
wait_for 5 eval "[ ! -d '$CPU_DIR' ] && [ ! -d '$MEM_DIR' ] && [ ! -d '$(vm_dir cpuset lim)' ]" &&
	ok "its groups are removed once the process is gone" ||
	not_ok "its groups are removed once the process is gone" "$(ls -d "$CPU_DIR" "$MEM_DIR" 2>&1)"

# --- pinning ---------------------------------------------------------------------
last=$((NCPU - 1))
if [ "$NCPU" -ge 2 ]; then
	rpc_expect "a VM with cpu_pin [\"$last\"] and device_cpus \"0\" starts" vm.create \
		"{\"definition\":$(guest_def pin "\"vcpus\":1,\"resources\":{\"cpu_pin\":[\"$last\"],\"device_cpus\":\"0\"}"),\"start\":true}" \
		"r['result']['state']=='running'"
	pid=$(vm_pid pin); remember_pid "$pid"
	# vm.stats shows tid 0 until the vCPU thread has started.
	vcpu_tid() {
		tid=$(field vm.stats '{"name":"pin"}' "r['result']['vcpus'][0]['tid']")
		[ "${tid:-0}" != 0 ]
	}
	wait_for 10 vcpu_tid
	wait_for 5 eval "[ \"\$(cpus_allowed $pid $tid)\" = $last ]" &&
		ok "the vCPU thread ($tid) may run on CPU $last only" ||
		not_ok "the vCPU thread ($tid) may run on CPU $last only" "Cpus_allowed_list $(cpus_allowed $pid $tid)"
	v=$(cpus_allowed $pid $pid)
	[ "$v" = 0 ] && ok "the main (device) thread may run on CPU 0 only" ||
		not_ok "the main (device) thread may run on CPU 0 only" "Cpus_allowed_list $v"
	v=$(cat "$(vm_dir cpuset pin)/cpuset.cpus" 2>&1)
	[ "$v" = "0-$last" ] || [ "$v" = "0,$last" ] && ok "the group's cpuset.cpus is the union ($v)" ||
		not_ok "the group's cpuset.cpus is the union" "got $v"
	rpc_expect "vm.set cpu_pin [\"0\"]: applied" vm.set \
		'{"name":"pin","changes":{"resources":{"cpu_pin":["0"]}}}' "r['result']['applied'] is True"
	v=$(cpus_allowed $pid $tid)
	[ "$v" = 0 ] && ok "the vCPU thread moved to CPU 0" ||
		not_ok "the vCPU thread moved to CPU 0" "Cpus_allowed_list $v"
	rpc_expect "vm.set removes the pins: applied" vm.set \
		'{"name":"pin","changes":{"resources":null}}' "r['result']['applied'] is True"
	v=$(cpus_allowed $pid $tid)
	[ "$v" = "0-$last" ] && ok "the vCPU thread may run anywhere again ($v)" ||
		not_ok "the vCPU thread may run anywhere again" "Cpus_allowed_list $v"
	rpc_expect "vm.delete with force removes it" vm.delete '{"name":"pin","force":true}' \
		"r['result']=={'name':'pin'}"
	wait_for 5 eval "[ ! -d '$(vm_dir cpuset pin)' ]" &&
		ok "deleting the VM removed its group" ||
		not_ok "deleting the VM removed its group" "$(ls -d "$(vm_dir cpuset pin)" 2>&1)"
else
	skip "one CPU: no pinning to tell apart"
fi

# --- disk I/O limits: from the definition to vmm-run, and vm.set ---------------
truncate -s 16M "$TMP/io.img"
rpc_expect "a VM with a rate-limited disk starts" vm.create \
	"{\"definition\":$(guest_def io "\"disks\":[{\"path\":\"$TMP/io.img\",\"limits\":{\"ops_per_sec\":300,\"bytes_per_sec\":\"8M\"}}]"),\"start\":true}" \
	"r['result']['state']=='running'"
pid=$(vm_pid io); remember_pid "$pid"
tr '\0' ' ' </proc/$pid/cmdline 2>/dev/null | grep -q "io.img,bps=8388608,bps_burst=0,iops=300,iops_burst=0" &&
	ok "vmm-run got the disk's limits on its command line" ||
	not_ok "vmm-run got the disk's limits on its command line" "$(tr '\0' ' ' </proc/$pid/cmdline 2>&1)"
rpc_expect "vm.set changes the disk's limits on the running VM" vm.set \
	'{"name":"io","changes":{"disks":[{"limits":{"ops_per_sec":600}}]}}' \
	"r['result']['applied'] is True and r['result']['definition']['disks'][0]['limits']['ops_per_sec']==600"
out=$($PY $RPC "$TMP/run/vms/io/control.sock" vm.set '{"disks":[{}]}' 2>&1)
echo "$out" | grep -q '"ops_per_sec": 600' && echo "$out" | grep -q '"bytes_per_sec": 8388608' &&
	ok "... and vmm-run's disk now has them" ||
	not_ok "... and vmm-run's disk now has them" "$out"
rpc_expect "vm.stats reports the disk's throttling from vmm-run" vm.stats '{"name":"io"}' \
	"r['result']['disks'][0]['throttled_usec']>=0 and r['result']['disks'][0]['path'].endswith('io.img')"
rpc_expect "the VM with the limited disk is deleted" vm.delete '{"name":"io","force":true}' "'result' in r"

# --- what the host cannot do ------------------------------------------------------
rpc_expect "cpu_pin to CPU 1000, which this host lacks: the start fails, naming it" vm.create \
	"{\"definition\":$(guest_def nocpu '"vcpus":1,"resources":{"cpu_pin":["1000"]}'),\"start\":true}" \
	"r['error']['code']==-32602 and 'cpu_pin[0]' in r['error']['message'] and 'CPU 1000' in r['error']['message']"
rpc_expect "... it never ran: stopped, no process" vm.info '{"name":"nocpu"}' \
	"r['result']['state'] in ('defined','stopped','crashed') and 'pid' not in r['result']"
[ ! -d "$(vm_dir cpu nocpu)" ] && ok "... and no group was left behind" ||
	not_ok "... and no group was left behind" "$(ls -d "$(vm_dir cpu nocpu)")"
rpc_expect "... and vm.start says the same" vm.start '{"name":"nocpu"}' \
	"r['error']['code']==-32602 and 'cpu_pin[0]' in r['error']['message']"

# A restart of the daemon keeps the group and takes it back.
rpc_expect "another limited VM starts" vm.create \
	"{\"definition\":$(guest_def keep '"resources":{"cpu_quota":0.5}'),\"start\":true}" \
	"r['result']['state']=='running'"
pid=$(vm_pid keep); remember_pid "$pid"
kill -TERM $vmmd_pid; wait $vmmd_pid 2>/dev/null
[ -d "$(vm_dir cpu keep)" ] && in_group "$pid" cpu keep &&
	ok "vmmd stopped: the VM and its group stay" ||
	not_ok "vmmd stopped: the VM and its group stay" "$(cat /proc/$pid/cgroup 2>&1 | tr '\n' ' ')"
"$VMMD" --config "$TMP/vmmd.json" --foreground >>"$TMP/vmmd.log" 2>&1 &
vmmd_pid=$!
wait_for 10 eval "[ \"\$(field vm.info '{\"name\":\"keep\"}' \"r['result']['state']\")\" = running ]"
rpc_expect "after the restart vm.set still reaches its group" vm.set \
	'{"name":"keep","changes":{"resources":{"cpu_quota":0.2}}}' "r['result']['applied'] is True"
v=$(cat "$(vm_dir cpu keep)/cpu.cfs_quota_us" 2>&1)
[ "$v" = 20000 ] && ok "cpu.cfs_quota_us is 20000" || not_ok "cpu.cfs_quota_us is 20000" "got $v"
rpc_expect "vm.delete with force" vm.delete '{"name":"keep","force":true}' "r['result']=={'name':'keep'}"
wait_for 5 eval "[ ! -d '$(vm_dir cpu keep)' ]" && ok "its group is removed" ||
	not_ok "its group is removed" "$(ls -d "$(vm_dir cpu keep)" 2>&1)"

echo "1..$n"
[ $nfail -eq 0 ]

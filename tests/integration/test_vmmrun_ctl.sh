#!/bin/bash
# SPDX-License-Identifier: MIT
#
# vmm-run's control socket and console socket (proto/PROTOCOL.md, "vmm-run
# control socket"), end to end with the freestanding test kernel in its
# echo mode: info, stats, pause and resume (the guest stops echoing while
# paused), console history and live streaming, the ACPI power button, the
# balloon target, vm.quit, and malformed requests answered with the right
# error code while another client keeps working. Prints TAP.
#
# Environment: BUILD (default build), VMMRUN (default $BUILD/bin/vmm-run).
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
VMMRUN=${VMMRUN:-$BUILD/bin/vmm-run}
GUEST=$BUILD/guest-tests/testguest.elf
RPC=tests/integration/lib/rpc.py

TMP=$(mktemp -d "${TMPDIR:-/tmp}/test_ctl.XXXXXX") || exit 1
pids=()
TAP=""		# a TAP this test made, deleted on exit
cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	[ -n "$TAP" ] && ip link del "$TAP" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

# shellcheck source=lib/tap.sh
. tests/integration/lib/tap.sh
# check DESC COMMAND...: ok when the command succeeds.
check() {
	local d=$1; shift
	local out
	if out=$("$@" 2>&1); then
		ok "$d"
	else
		not_ok "$d" "command: $*" "output: $(echo "$out" | tail -5 | cut -c1-300)"
	fi
}
# rpc_expect DESC SOCKET METHOD PARAMS PYEXPR: the response, as `r`,
# satisfies the Python expression.
rpc_expect() {
	local d=$1 sock=$2 method=$3 params=$4 expr=$5 out
	out=$(python3 $RPC "$sock" "$method" ${params:+"$params"} 2>&1)
	if python3 -c "import json,sys; r=json.loads(sys.argv[1]); sys.exit(0 if ($expr) else 1)" "$out" 2>/dev/null; then
		ok "$d"
	else
		not_ok "$d" "request: $method $params" "expected: $expr" "response: $(echo "$out" | cut -c1-400)"
	fi
}

if [ ! -w /dev/kvm ]; then
	skip "no usable /dev/kvm: the control socket needs a running VM"
	echo "1..$n"; exit 0
fi
for f in "$VMMRUN" "$GUEST"; do
	[ -e "$f" ] || { not_ok "$f is missing (make test-build)"; echo "1..$n"; exit 1; }
done

# --- one VM in echo mode, console on a socket, control socket ------------
CTL=$TMP/ctl.sock CON=$TMP/con.sock
"$VMMRUN" --kernel "$GUEST" --cmdline "testguest.action=echo" --name web1 \
	--memory 64M --console none --console-socket "$CON,history=16K" \
	--control "$CTL" --balloon --vsock "cid=3,uds=$TMP/vsock.sock,timeout=200" \
	>"$TMP/vm.out" 2>"$TMP/vm.err" &
vm=$!
pids+=($vm)
for _ in $(seq 100); do [ -S "$CTL" ] && [ -S "$CON" ] && break; sleep 0.1; done
if [ ! -S "$CTL" ]; then
	not_ok "vmm-run serves its control socket" "$(tail -5 "$TMP/vm.err")"
	echo "1..$n"; exit 1
fi
ok "vmm-run serves --control and --console-socket"
[ "$(stat -c %a "$CTL")" = 600 ] && ok "control socket is mode 0600" ||
	not_ok "control socket is mode 0600" "mode $(stat -c %a "$CTL")"

# The history holds the boot output; a client gets it, then live echo.
check "console client gets the history (TESTGUEST-ECHO)" \
	python3 $RPC --console "$CON" "" "TESTGUEST-ECHO" 30
check "console input reaches the guest and its echo comes back" \
	python3 $RPC --console "$CON" "ping-1\\n" "ping-1" 30

rpc_expect "vm.info names the VM and its state" "$CTL" vm.info "" \
	"r['result']['name']=='web1' and r['result']['state']=='running' and r['result']['vcpus']==1 and r['result']['memory']==64<<20 and r['result']['pid']==$vm"
rpc_expect "vm.stats counts exits by reason per vCPU" "$CTL" vm.stats "" \
	"r['result']['vcpus'][0]['exits']['io_in']>0 and r['result']['vcpus'][0]['cpu_ns']>0 and r['result']['memory']['rss_bytes']>0 and r['result']['console']['bytes']>0"
if python3 -c 'import fcntl, os, sys
sys.exit(0 if fcntl.ioctl(os.open("/dev/kvm", os.O_RDWR), 0xae03, 203) > 0 else 1)' 2>/dev/null; then
	rpc_expect "vm.stats has KVM's own counters per vCPU (kvm.exits)" "$CTL" vm.stats "" \
		"r['result']['vcpus'][0]['kvm']['exits']>0 and 'io_exits' in r['result']['vcpus'][0]['kvm']"
else
	skip "vm.stats kvm counters: this host's KVM lacks KVM_CAP_BINARY_STATS_FD (Linux < 5.14)"
fi

# A host client that never sends its CONNECT line is closed after the
# vsock timeout (200 ms here); vm.stats counts it.
if python3 -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(5)
t = time.monotonic(); d = s.recv(64); t = time.monotonic() - t
sys.exit(0 if d == b"" and 0.1 < t < 3 else 1)' "$TMP/vsock.sock"; then
	ok "a silent vsock host client is closed after timeout=200"
else
	not_ok "a silent vsock host client is closed after timeout=200"
fi
rpc_expect "vm.stats counts it (vsock.cmd_timeouts)" "$CTL" vm.stats "" \
	"r['result']['vsock']['cmd_timeouts']==1 and r['result']['vsock']['conns']==0 and r['result']['vsock']['connect_timeouts']==0"

# Pause: the guest stops echoing; resume: what was typed comes back.
rpc_expect "vm.pause pauses" "$CTL" vm.pause "" "r['result']['state']=='paused'"
rpc_expect "vm.info says paused" "$CTL" vm.info "" "r['result']['state']=='paused'"
rpc_expect "vm.pause again is an invalid-state error" "$CTL" vm.pause "" \
	"r['error']['code']==-32003"
if python3 $RPC --console "$CON" "while-paused\\n" "while-paused" 2 >/dev/null; then
	not_ok "a paused guest does not echo"
else
	ok "a paused guest does not echo"
fi
rpc_expect "vm.resume resumes" "$CTL" vm.resume "" "r['result']['state']=='running'"
check "after resume, input typed while paused is echoed" \
	python3 $RPC --console "$CON" "" "while-paused" 30

rpc_expect "console.history returns the history, base64" "$CTL" console.history "" \
	"b'TESTGUEST-ECHO' in __import__('base64').b64decode(r['result']['data']) and r['result']['bytes']>0"

# Balloon target at run time.
rpc_expect "balloon.set takes a size and reports the target" "$CTL" balloon.set \
	'{"target":"48M"}' "r['result']['target_bytes']==48<<20"
rpc_expect "balloon.info reports the target" "$CTL" balloon.info "" \
	"r['result']['target_bytes']==48<<20"
rpc_expect "balloon.set above the VM's memory: invalid params, named" "$CTL" \
	balloon.set '{"target":"1G"}' "r['error']['code']==-32602 and 'params.target' in r['error']['message']"
rpc_expect "balloon.set with a bad size names the field" "$CTL" balloon.set \
	'{"target":"lots"}' "r['error']['code']==-32602 and 'params.target' in r['error']['message']"

# Malformed requests.
rpc_expect "unknown method: method not found" "$CTL" vm.frobnicate "" \
	"r['error']['code']==-32601 and 'vm.frobnicate' in r['error']['message']"
rpc_expect "unknown parameter: invalid params naming it" "$CTL" vm.info \
	'{"verbose":true}' "r['error']['code']==-32602 and 'verbose' in r['error']['message']"
out=$(python3 $RPC --raw "$CTL" "000000057b7b7b7b7b")
if echo "$out" | grep -q -- '-32700' && echo "$out" | grep -q OPEN; then
	ok "invalid JSON: parse error, connection stays open"
else
	not_ok "invalid JSON: parse error, connection stays open" "$out"
fi
out=$(python3 $RPC --raw "$CTL" "ffffffff00")
if echo "$out" | grep -q -- '-32600' && echo "$out" | grep -q CLOSED; then
	ok "oversized frame header: invalid request, then closed"
else
	not_ok "oversized frame header: invalid request, then closed" "$out"
fi
out=$(python3 $RPC --raw "$CTL" "00000000")
if echo "$out" | grep -q CLOSED; then
	ok "zero-length frame: closed"
else
	not_ok "zero-length frame: closed" "$out"
fi
rpc_expect "after all that, another client is served" "$CTL" vm.info "" \
	"r['result']['state']=='running'"
kill -0 $vm 2>/dev/null && ok "vmm-run still runs after malformed requests" ||
	not_ok "vmm-run still runs after malformed requests"

# The power button: the guest powers off by itself, exit 0.
rpc_expect "vm.powerdown presses the power button" "$CTL" vm.powerdown "" "'result' in r"
rc=
for _ in $(seq 300); do
	kill -0 $vm 2>/dev/null || { wait $vm; rc=$?; break; }
	sleep 0.1
done
[ "$rc" = 0 ] && ok "the guest saw the power button and powered off: exit 0" ||
	not_ok "the guest saw the power button and powered off: exit 0" "rc=$rc" "$(tail -3 "$TMP/vm.err")"
[ ! -e "$CTL" ] && [ ! -e "$CON" ] && ok "sockets removed when vmm-run ends" ||
	not_ok "sockets removed when vmm-run ends" "$(ls -la "$TMP")"

# vm.quit stops at once, as SIGTERM does (143); a subscriber hears of it.
"$VMMRUN" --kernel "$GUEST" --cmdline "testguest.action=hang" --name q1 \
	--memory 64M --console none --control "$CTL" >"$TMP/q.out" 2>"$TMP/q.err" &
vm=$!
pids+=($vm)
for _ in $(seq 100); do [ -S "$CTL" ] && break; sleep 0.1; done
rpc_expect "balloon.info on a VM without a balloon: not found, naming it" \
	"$CTL" balloon.info "" "r['error']['code']==-32001 and 'balloon' in r['error']['message']"
rpc_expect "vm.quit stops the VM" "$CTL" vm.quit "" "r['result']['state']=='stopping'"
rc=
for _ in $(seq 100); do
	kill -0 $vm 2>/dev/null || { wait $vm; rc=$?; break; }
	sleep 0.1
done
[ "$rc" = 143 ] && ok "vm.quit: exit status 143" || not_ok "vm.quit: exit status 143" "rc=$rc"

# Disk I/O limits: from the command line, changed at run time.
truncate -s 16M "$TMP/d.img"
"$VMMRUN" --kernel "$GUEST" --cmdline "testguest.action=hang" --name d1 \
	--memory 64M --console none --control "$CTL" \
	--disk "$TMP/d.img,iops=100,bps=10M" >"$TMP/d.out" 2>"$TMP/d.err" &
vm=$!
pids+=($vm)
for _ in $(seq 100); do [ -S "$CTL" ] && break; sleep 0.1; done
rpc_expect "vm.set: disk limits from --disk are there, and change" "$CTL" vm.set \
	'{"disks":[{"limits":{"ops_per_sec":500}}]}' \
	"r['result']['disks'][0]['limits']=={'ops_per_sec':500,'ops_burst':0,'bytes_per_sec':10<<20,'bytes_burst':0}"
rpc_expect "vm.set: limits null lifts them all" "$CTL" vm.set \
	'{"disks":[{"limits":null}]}' \
	"r['result']['disks'][0]['limits']['ops_per_sec']==0 and r['result']['disks'][0]['limits']['bytes_per_sec']==0"
rpc_expect "vm.set: a burst without its rate is refused, named" "$CTL" vm.set \
	'{"disks":[{"limits":{"ops_burst":5}}]}' \
	"r['error']['code']==-32602 and 'ops_burst' in r['error']['message']"
rpc_expect "vm.set: more entries than disks is refused" "$CTL" vm.set \
	'{"disks":[{},{}]}' "r['error']['code']==-32602 and 'params.disks' in r['error']['message']"
rpc_expect "vm.set: an unknown limit is named" "$CTL" vm.set \
	'{"disks":[{"limits":{"iops":5}}]}' "r['error']['code']==-32602 and 'limits.iops' in r['error']['message']"
rpc_expect "vm.stats: disks report throttling" "$CTL" vm.stats "" \
	"'throttled_ns' in r['result']['disks'][0]"
kill -TERM $vm 2>/dev/null; wait $vm 2>/dev/null
"$VMMRUN" --kernel "$GUEST" --disk "$TMP/d.img,iops=lots" >/dev/null 2>"$TMP/bad.err"
rc=$?
[ $rc = 2 ] && grep -q "iops=lots" "$TMP/bad.err" && ok "--disk iops=lots: exit 2 naming it" ||
	not_ok "--disk iops=lots: exit 2 naming it" "rc=$rc" "$(cat "$TMP/bad.err")"
"$VMMRUN" --kernel "$GUEST" --disk "$TMP/d.img,bps_burst=1M" >/dev/null 2>"$TMP/bad.err"
rc=$?
[ $rc = 2 ] && grep -q "bytes_burst" "$TMP/bad.err" && ok "--disk bps_burst without bps: exit 2 naming it" ||
	not_ok "--disk bps_burst without bps: exit 2 naming it" "rc=$rc" "$(cat "$TMP/bad.err")"

# NIC limits: from --net, changed with vm.set, throttling in vm.stats; bad
# --net limits. A NIC needs a TAP: one of our own, or the checks skip.
if ip tuntap add mode tap name "vct$$" 2>/dev/null; then
	TAP=vct$$
	"$VMMRUN" --kernel "$GUEST" --cmdline "testguest.action=hang" --name n1 \
		--memory 64M --console none --control "$CTL" \
		--net "tap=$TAP,tx_bps=50M,tx_pps=2000,rx_pps=1000,rx_pps_burst=10" \
		>"$TMP/n.out" 2>"$TMP/n.err" &
	vm=$!
	pids+=($vm)
	for _ in $(seq 100); do [ -S "$CTL" ] && break; sleep 0.1; done
	rpc_expect "vm.set: NIC limits from --net are there, and change" "$CTL" vm.set \
		'{"nics":[{"limits":{"rx_bytes_per_sec":1000000,"tx_packets_per_sec":null}}]}' \
		"r['result']['nics'][0]['limits']=={'rx_bytes_per_sec':1000000,'rx_bytes_burst':0,'rx_packets_per_sec':1000,'rx_packets_burst':10,'tx_bytes_per_sec':50<<20,'tx_bytes_burst':0,'tx_packets_per_sec':0,'tx_packets_burst':0} and 'disks' not in r['result']"
	rpc_expect "vm.set: NIC limits null lifts them all" "$CTL" vm.set \
		'{"nics":[{"limits":null}]}' \
		"all(v==0 for v in r['result']['nics'][0]['limits'].values())"
	rpc_expect "vm.set: a NIC burst without its rate is refused, named" "$CTL" vm.set \
		'{"nics":[{"limits":{"tx_packets_burst":5}}]}' \
		"r['error']['code']==-32602 and 'params.nics[0].limits.tx_packets_burst' in r['error']['message']"
	rpc_expect "vm.set: more entries than NICs is refused" "$CTL" vm.set \
		'{"nics":[{},{}]}' "r['error']['code']==-32602 and 'params.nics' in r['error']['message']"
	rpc_expect "vm.set: an unknown NIC limit is named" "$CTL" vm.set \
		'{"nics":[{"limits":{"rx_pps":5}}]}' "r['error']['code']==-32602 and 'limits.rx_pps' in r['error']['message']"
	rpc_expect "vm.set: neither disks nor nics is refused" "$CTL" vm.set \
		'{}' "r['error']['code']==-32602 and 'params.nics' in r['error']['message']"
	rpc_expect "vm.stats: NICs report throttling" "$CTL" vm.stats "" \
		"all(k in r['result']['nics'][0] for k in ('rx_throttled','rx_throttled_ns','tx_throttled','tx_throttled_ns'))"
	kill -TERM $vm 2>/dev/null; wait $vm 2>/dev/null
	for bad in "rx_bps=fast:rx_bps=fast" "tx_pps=-3:tx_pps=-3" \
		   "rx_iops=5:rx_iops=5" "tx_pps_burst=7:ops_burst" \
		   "rx_bps_burst=1M:bytes_burst"; do
		arg=${bad%%:*} want=${bad#*:}
		"$VMMRUN" --kernel "$GUEST" --net "tap=$TAP,$arg" >/dev/null 2>"$TMP/bad.err"
		rc=$?
		[ $rc = 2 ] && grep -q -- "$want" "$TMP/bad.err" && ok "--net $arg: exit 2 naming it" ||
			not_ok "--net $arg: exit 2 naming it" "rc=$rc" "$(cat "$TMP/bad.err")"
	done
else
	skip "ip tuntap add failed (root and /dev/net/tun needed): no NIC checks"
fi

# Bad options.
"$VMMRUN" --kernel "$GUEST" --control "$TMP/nodir/x.sock" >/dev/null 2>"$TMP/bad.err"
rc=$?
[ $rc = 2 ] && grep -q -- "--control" "$TMP/bad.err" && ok "--control in a missing directory: exit 2 naming it" ||
	not_ok "--control in a missing directory: exit 2 naming it" "rc=$rc" "$(cat "$TMP/bad.err")"
"$VMMRUN" --kernel "$GUEST" --console-socket "$TMP/c.sock,history=1K" >/dev/null 2>"$TMP/bad.err"
rc=$?
[ $rc = 2 ] && grep -q "history" "$TMP/bad.err" && ok "--console-socket history=1K (under 4K): exit 2 naming it" ||
	not_ok "--console-socket history=1K (under 4K): exit 2 naming it" "rc=$rc" "$(cat "$TMP/bad.err")"

# --definition: the daemon's definition format, parsed by the same code.
cat >"$TMP/def.json" <<DEF
{"name": "fromdef", "vcpus": 2, "memory": "96M", "kernel": "$(realpath "$GUEST")",
 "cmdline": "testguest.action=hang", "disks": [{"path": "$TMP/d.img", "serial": "DEF1",
 "limits": {"ops_per_sec": 250}}], "balloon": true}
DEF
"$VMMRUN" --definition "$TMP/def.json" --console none --control "$CTL" >"$TMP/def.out" 2>"$TMP/def.err" &
vm=$!
pids+=($vm)
for _ in $(seq 100); do [ -S "$CTL" ] && break; sleep 0.1; done
rpc_expect "--definition: name, vCPUs and memory come from the file" "$CTL" vm.info "" \
	"r['result']['name']=='fromdef' and r['result']['vcpus']==2 and r['result']['memory']==96<<20"
rpc_expect "--definition: the disk and its limits, the balloon" "$CTL" vm.set '{"disks":[{}]}' \
	"r['result']['disks'][0]['limits']['ops_per_sec']==250"
rpc_expect "--definition: ... and the balloon is there" "$CTL" balloon.info "" "'target_bytes' in r['result']"
kill -TERM $vm 2>/dev/null; wait $vm 2>/dev/null
echo '{"name": "bad", "memory": "1M", "kernel": "/nonexistent"}' >"$TMP/bad.json"
"$VMMRUN" --definition "$TMP/bad.json" >/dev/null 2>"$TMP/bad.err"
rc=$?
[ $rc = 2 ] && grep -q "memory: must be at least 64M" "$TMP/bad.err" &&
	ok "--definition with a bad field: exit 2 naming the field" ||
	not_ok "--definition with a bad field: exit 2 naming the field" "rc=$rc" "$(cat "$TMP/bad.err")"
"$VMMRUN" --definition "$TMP/def.json" --kernel "$GUEST" >/dev/null 2>"$TMP/bad.err"
rc=$?
[ $rc = 2 ] && grep -q -- "--definition gives the machine" "$TMP/bad.err" &&
	ok "--definition with --kernel: exit 2" ||
	not_ok "--definition with --kernel: exit 2" "rc=$rc" "$(cat "$TMP/bad.err")"

echo "1..$n"
[ $nfail -eq 0 ]

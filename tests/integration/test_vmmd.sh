#!/bin/bash
# SPDX-License-Identifier: MIT
#
# vmmd end to end: a real daemon on a temporary state directory, runtime
# directory and socket, driving the project's test guest in its echo mode
# through vmm-run. Creates, starts, attaches to the console (vm.console
# upgrade: history, echo, one writer), stops with the ACPI power button,
# pauses, restarts, deletes; two VMs at once; vmmd killed with SIGKILL and
# restarted (the VMs keep running, same pids, consoles answer); vmm-run
# killed (crashed, or restarted by the restart policy, within its bound);
# malformed frames; refused and limited local users; definitions that
# survive a restart; autostart; and the TLS listener with client
# certificates (refusals, roles, tenants). Prints TAP.
#
# Environment: BUILD (default build), VMMD, VMMRUN (default $BUILD/bin/...).
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
VMMD=${VMMD:-$BUILD/bin/vmmd}
VMMRUN=${VMMRUN:-$BUILD/bin/vmm-run}
GUEST=$PWD/$BUILD/guest-tests/testguest.elf
RPC=tests/integration/lib/rpc.py

# The interpreter itself, not a version manager's wrapper script: the test
# makes a few hundred calls.
PY=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null)
[ -x "$PY" ] || PY=python3

TMP=$(mktemp -d /tmp/test_vmmd.XXXXXX) || exit 1
# Other users reach the socket inside (the refusals below).
chmod 0711 "$TMP"
SOCK=$TMP/run/vmmd.sock
vmmd_pid=
bg_pids=()
seen_vm_pids=()

# Every process this test started dies with it: the daemon, the helpers,
# and the VMs (children of the daemon, or of init once a daemon died),
# found through their pid files and what the test saw, checked to be ours.
kill_ours() {
	local p
	for p in "$@"; do
		[ -n "$p" ] && [ -r /proc/$p/cmdline ] &&
			tr '\0' ' ' </proc/$p/cmdline | grep -q "$TMP" &&
			kill -KILL "$p" 2>/dev/null
	done
}
cleanup() {
	local p f
	[ -n "$vmmd_pid" ] && kill -KILL "$vmmd_pid" 2>/dev/null
	for p in "${bg_pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
	for f in "$TMP"/run/vms/*/pid; do
		[ -r "$f" ] && kill_ours "$(cat "$f")"
	done
	kill_ours "${seen_vm_pids[@]}"
	wait 2>/dev/null
	if [ "${KEEP_TMP:-}" ]; then echo "# kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

# shellcheck source=lib/tap.sh
. tests/integration/lib/tap.sh
not_ok_extra() {
	echo "#   vmmd log: $(tail -3 "$TMP/vmmd.log" 2>/dev/null | tr '\n' '|' | cut -c1-600)"
}
# pyexpr EXPR JSON: whether the JSON (as r) satisfies the Python expression.
pyexpr() {
	$PY -c "import json,sys; r=json.loads(sys.argv[1]); sys.exit(0 if ($1) else 1)" "$2" 2>/dev/null
}
# rpc METHOD [PARAMS]: the response on the daemon's socket.
rpc() { $PY $RPC "$SOCK" "$@" 2>&1; }
# rpc_expect DESC METHOD PARAMS PYEXPR [RPC OPTIONS/SOCKET...]
rpc_expect() {
	local d=$1 method=$2 params=$3 expr=$4 out; shift 4
	local target=("$SOCK")
	[ $# -gt 0 ] && target=("$@")
	out=$($PY $RPC "${target[@]}" "$method" ${params:+"$params"} 2>&1)
	if pyexpr "$expr" "$out"; then
		ok "$d"
	else
		not_ok "$d" "request: $method $params" "expected: $expr" "response: $(echo "$out" | cut -c1-500)"
	fi
}
# field METHOD PARAMS PYEXPR: print a value of the response.
field() {
	$PY -c "import json,sys; r=json.loads(sys.argv[1]); print($3)" "$(rpc "$1" "$2")" 2>/dev/null
}
vm_pid() { field vm.info "{\"name\":\"$1\"}" "r['result'].get('pid','')"; }
vm_state() { field vm.info "{\"name\":\"$1\"}" "r['result']['state']"; }
# wait_state NAME STATE SECONDS
wait_state() {
	local i
	for i in $(seq $(($3 * 10))); do
		[ "$(vm_state "$1")" = "$2" ] && return 0
		sleep 0.1
	done
	return 1
}
remember_pid() { [ -n "$1" ] && seen_vm_pids+=("$1"); }

start_vmmd() {
	"$VMMD" --config "$TMP/vmmd.json" --foreground >>"$TMP/vmmd.log" 2>&1 &
	vmmd_pid=$!
	local i
	for i in $(seq 100); do
		[ -S "$SOCK" ] && $PY $RPC "$SOCK" daemon.info >/dev/null 2>&1 && return 0
		kill -0 $vmmd_pid 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}
stop_vmmd() {	# SIGNAL
	kill -"$1" "$vmmd_pid" 2>/dev/null
	wait "$vmmd_pid" 2>/dev/null
	vmmd_pid=
}
guest_def() {	# NAME [EXTRA JSON MEMBERS]
	echo "{\"name\":\"$1\",\"kernel\":\"$GUEST\",\"cmdline\":\"testguest.action=echo\",\"memory\":\"64M\"${2:+,$2}}"
}

if [ ! -w /dev/kvm ]; then
	skip "no usable /dev/kvm: vmmd's VMs need it"
	echo "1..$n"; exit 0
fi
if [ "$(id -u)" != 0 ]; then
	skip "not root: vmmd's socket, peer credentials and uid switches need it"
	echo "1..$n"; exit 0
fi
for f in "$VMMD" "$VMMRUN" "$GUEST"; do
	[ -e "$f" ] || { not_ok "$f is missing (make test-build)"; echo "1..$n"; exit 1; }
done

tls_certs() {
	local d=$TMP/tls
	mkdir -p "$d"
	cat >"$d/ext.cnf" <<EOF
[ca]
basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
[server]
basicConstraints=CA:FALSE
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost
[client]
basicConstraints=CA:FALSE
extendedKeyUsage=clientAuth
EOF
	for ca in ca other-ca; do
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-keyout "$d/$ca.key" -out "$d/$ca.pem" -subj "/CN=$ca" -days 2 \
			-addext "basicConstraints=critical,CA:TRUE" \
			-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null || return 1
	done
	issue() {	# NAME CN CA EXT
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-keyout "$d/$1.key" -out "$d/$1.csr" -subj "/CN=$2" 2>/dev/null &&
		openssl x509 -req -in "$d/$1.csr" -CA "$d/$3.pem" -CAkey "$d/$3.key" \
			-CAcreateserial -days 2 -extfile "$d/ext.cnf" -extensions "$4" \
			-out "$d/$1.pem" 2>/dev/null
	}
	issue server localhost ca server && issue ops ops-a ca client &&
	issue monitor monitor ca client && issue stranger stranger ca client &&
	issue foreign ops-a other-ca client && issue srvonly ops-a ca server ||
		return 1
	# One that expired long ago: "openssl ca" takes explicit dates.
	cat >"$d/ca.cnf" <<EOF
[ca]
default_ca = tca
[tca]
database = $d/index.txt
new_certs_dir = $d
serial = $d/serial
default_md = sha256
policy = anything
[anything]
commonName = supplied
EOF
	: >"$d/index.txt"
	echo 1000 >"$d/serial"
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$d/expired.key" -out "$d/expired.csr" -subj "/CN=ops-a" 2>/dev/null &&
	openssl ca -batch -config "$d/ca.cnf" -cert "$d/ca.pem" -keyfile "$d/ca.key" \
		-in "$d/expired.csr" -out "$d/expired.pem" -notext \
		-startdate 20200101000000Z -enddate 20200102000000Z \
		-extfile "$d/ext.cnf" -extensions client 2>/dev/null ||
		rm -f "$d/expired.pem"
	return 0
}
# Certificates take a moment to make: in the background, meanwhile.
tls_ok=no
if [ -e proto/tls.h ] && command -v openssl >/dev/null; then
	tls_certs >"$TMP/tls.log" 2>&1 &
	tls_job=$!
	bg_pids+=($tls_job)
fi

cat >"$TMP/policy.json" <<EOF
{"identities": {
  "uid:65534": {"role": "viewer"},
  "uid:65532": {"role": "operator", "tenant": "team-a"},
  "ops-a": {"role": "operator", "tenant": "team-a"},
  "monitor": {"role": "viewer"}
}}
EOF
write_config() {	# EXTRA JSON MEMBERS
	cat >"$TMP/vmmd.json" <<EOF
{"state_dir": "$TMP/state", "runtime_dir": "$TMP/run", "socket": "$SOCK",
 "vmm_run": "$PWD/$VMMRUN", "log_level": "debug",
 "limits": {"start_timeout_sec": 15, "max_vms": 5}${1:+, $1}}
EOF
}
write_config "\"policy\": \"$TMP/policy.json\""

# --- start, configuration errors -------------------------------------------
echo '{"state_dir": "/x", "sockett": "/y"}' >"$TMP/bad.json"
out=$("$VMMD" --config "$TMP/bad.json" --foreground 2>&1)
rc=$?
[ $rc -ne 0 ] && echo "$out" | grep -q "sockett: unknown key" &&
	ok "a config with an unknown key is refused, naming it" ||
	not_ok "a config with an unknown key is refused, naming it" "rc=$rc" "$out"

if ! start_vmmd; then
	not_ok "vmmd starts and serves its socket" "$(tail -5 "$TMP/vmmd.log")"
	echo "1..$n"; exit 1
fi
ok "vmmd starts and serves its socket"
[ "$(stat -c %a "$SOCK")" = 660 ] && ok "the socket is mode 0660" ||
	not_ok "the socket is mode 0660" "mode $(stat -c %a "$SOCK")"
rpc_expect "daemon.info: versions, frame_max, identity uid:0 admin" daemon.info "" \
	"r['result']['protocol']==1 and r['result']['version']=='0.1.0' and r['result']['frame_max']==1048576 and r['result']['identity']=={'name':'uid:0','role':'admin'} and r['result']['host']['cpus']>=1"
"$VMMD" --config "$TMP/vmmd.json" --foreground >"$TMP/second.log" 2>&1
rc=$?
[ $rc -ne 0 ] && grep -q "another vmmd" "$TMP/second.log" &&
	ok "a second daemon on the same runtime_dir refuses to start" ||
	not_ok "a second daemon on the same runtime_dir refuses to start" "rc=$rc" "$(cat "$TMP/second.log")"

$PY $RPC --events "$SOCK" '{}' 1000 100 >"$TMP/events.out" 2>&1 &
bg_pids+=($!)
sleep 0.2

# --- definitions ---------------------------------------------------------
rpc_expect "a definition with a bad field is refused, naming it" vm.create \
	"{\"definition\":$(guest_def bad '"memory":"1M"')}" \
	"r['error']['code']==-32602 and r['error']['message']=='memory: must be at least 64M'"
rpc_expect "an unknown field in a disk is named with its place" vm.create \
	"{\"definition\":$(guest_def bad '"disks":[{"path":"/dev/null","sise":1}]')}" \
	"r['error']['code']==-32602 and r['error']['message']=='disks[0].sise: unknown field'"
rpc_expect "a missing disk image is refused (file checks)" vm.create \
	"{\"definition\":$(guest_def bad "\"disks\":[{\"path\":\"$TMP/nodisk.raw\"}]")}" \
	"r['error']['code']==-32602 and r['error']['message']=='disks[0].path: no such file'"
rpc_expect "vm.create stores web1, defined, canonical definition" vm.create \
	"{\"definition\":$(guest_def web1)}" \
	"r['result']['state']=='defined' and r['result']['definition']['console']=={'history':'64K'} and r['result']['definition']['restart']['policy']=='never'"
[ -s "$TMP/state/vms/web1.json" ] && ok "the definition is on disk before the answer" ||
	not_ok "the definition is on disk before the answer" "$(ls -la "$TMP/state/vms")"
rpc_expect "vm.create of an existing name: already exists" vm.create \
	"{\"definition\":$(guest_def web1)}" "r['error']['code']==-32002"
rpc_expect "vm.create with replace on a stopped VM replaces it" vm.create \
	"{\"definition\":$(guest_def web1 '"vcpus":1,"console":{"history":"16K"}'),\"replace\":true}" \
	"r['result']['definition']['console']=={'history':'16K'}"

# A kernel file that is there (the file checks pass) but is no kernel:
# vmm-run gives up at once, and the error says what its log says.
head -c 4096 /dev/urandom >"$TMP/notakernel"
rpc_expect "a VM that cannot start: crashed, the error quotes vmm-run's log" vm.create \
	"{\"definition\":{\"name\":\"nok\",\"kernel\":\"$TMP/notakernel\"},\"start\":true}" \
	"r['error']['code']==-32603 and 'could not start: vmm-run exited with status 2; log: ' in r['error']['message']"
rpc_expect "... its state is crashed, with the reason" vm.info '{"name":"nok"}' \
	"r['result']['state']=='crashed' and r['result']['last_exit']['status']==2 and r['result']['state_reason'].startswith('could not start')"
rpc_expect "... and vm.delete removes it" vm.delete '{"name":"nok"}' \
	"r['result']=={'name':'nok'}"

# --- start, console ---------------------------------------------------------
rpc_expect "vm.start answers once the VM runs, with its pid" vm.start '{"name":"web1"}' \
	"r['result']['state']=='running' and r['result']['pid']>0"
pid1=$(vm_pid web1); remember_pid "$pid1"
tr '\0' ' ' </proc/$pid1/cmdline 2>/dev/null | grep -q -- "--name web1 " &&
	ok "ps shows which VM a vmm-run is (--name web1)" ||
	not_ok "ps shows which VM a vmm-run is (--name web1)" "$(tr '\0' ' ' </proc/$pid1/cmdline 2>&1)"
[ "$(cat "$TMP/run/vms/web1/pid" 2>/dev/null)" = "$pid1" ] && ok "the pid file names the process" ||
	not_ok "the pid file names the process" "$(cat "$TMP/run/vms/web1/pid" 2>&1)"
rpc_expect "vm.start on a running VM: invalid state" vm.start '{"name":"web1"}' \
	"r['error']['code']==-32003"
out=$($PY $RPC --vm-console "$SOCK" '{"name":"web1"}' 'ping-1\n' 'ping-1' 20 2>&1)
if echo "$out" | head -1 | grep -q '"writer": true' && echo "$out" | grep -q TESTGUEST-ECHO &&
	[ "$(echo "$out" | grep -c ping-1)" -ge 1 ]; then
	ok "vm.console: result, then the history (TESTGUEST-ECHO), then the guest echoes input"
else
	not_ok "vm.console: result, then the history (TESTGUEST-ECHO), then the guest echoes input" "$(echo "$out" | head -c 600)"
fi
hb=$(echo "$out" | head -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"]["history_bytes"])' 2>/dev/null)
[ -n "$hb" ] && [ "$hb" -gt 0 ] && ok "history_bytes counts the replayed history ($hb)" ||
	not_ok "history_bytes counts the replayed history" "$out"
out=$($PY $RPC --vm-console "$SOCK" '{"name":"web1","history":false}' 'ping-2\n' 'ping-2' 20 2>&1)
if echo "$out" | grep -q ping-2 && ! echo "$out" | grep -q TESTGUEST && echo "$out" | head -1 | grep -q '"history_bytes": 0'; then
	ok "vm.console with history false: live output only"
else
	not_ok "vm.console with history false: live output only" "$(echo "$out" | head -c 600)"
fi
# One writer at a time; readers besides it; a reader's input goes nowhere.
$PY $RPC --vm-console "$SOCK" '{"name":"web1","history":false}' '' 'never-printed' 3 >"$TMP/writer.out" 2>&1 &
wpid=$!; bg_pids+=($wpid)
sleep 0.5
rpc_expect "a second console writer: invalid state" vm.console '{"name":"web1"}' \
	"r['error']['code']==-32003 and 'writer' in r['error']['message']"
out=$($PY $RPC --vm-console "$SOCK" '{"name":"web1","write":false,"history":false}' 'reader-typed\n' 'reader-typed' 1.5 2>&1)
if echo "$out" | head -1 | grep -q '"writer": false' && ! echo "$out" | tail -n +2 | grep -q reader-typed; then
	ok "a reader attaches next to the writer; what it types never reaches the guest"
else
	not_ok "a reader attaches next to the writer; what it types never reaches the guest" "$(echo "$out" | head -c 400)"
fi
wait $wpid 2>/dev/null
out=$($PY $RPC --vm-console "$SOCK" '{"name":"web1","history":false}' 'after-writer\n' 'after-writer' 20 2>&1)
echo "$out" | grep -q after-writer && ok "once the writer left, another may write" ||
	not_ok "once the writer left, another may write" "$(echo "$out" | head -c 400)"

# --- pause, stats, set ---------------------------------------------------------
rpc_expect "vm.pause pauses" vm.pause '{"name":"web1"}' "r['result']['state']=='paused'"
rpc_expect "vm.pause again: invalid state" vm.pause '{"name":"web1"}' "r['error']['code']==-32003"
rpc_expect "vm.resume resumes" vm.resume '{"name":"web1"}' "r['result']['state']=='running'"
rpc_expect "vm.stats: CPU time, memory, exits by reason" vm.stats '{"name":"web1"}' \
	"r['result']['cpu']['usage_usec']>0 and r['result']['memory']['current']>0 and r['result']['vcpus'][0]['exits']['io_out']>0 and r['result']['disks']==[] and r['result']['uptime_sec']>=0"
rpc_expect "vm.set applies resources to the running VM" vm.set \
	'{"name":"web1","changes":{"resources":{"cpu_weight":300}}}' \
	"r['result']['definition']['resources']=={'cpu_weight':300} and r['result']['applied']==True"
rpc_expect "vm.set refuses what cannot change on a running VM, naming it" vm.set \
	'{"name":"web1","changes":{"memory":"128M"}}' \
	"r['error']['code']==-32602 and r['error']['message'].startswith('memory:')"

# --- stop: the power button, answered out of order --------------------------------
out=$($PY $RPC --pipeline "$SOCK" vm.stop '{"name":"web1","timeout":20}' vm.list '' 2>&1)
first=$(echo "$out" | head -1) second=$(echo "$out" | sed -n 2p)
if pyexpr "r['id']==2 and r['result']['vms'][0]['state']=='stopping'" "$first" &&
	pyexpr "r['id']==1 and r['result']=={'name':'web1','state':'stopped','forced':False}" "$second"; then
	ok "vm.stop waits for the guest while vm.list on the same connection is answered"
else
	not_ok "vm.stop waits for the guest while vm.list on the same connection is answered" "$out"
fi
kill -0 "$pid1" 2>/dev/null && not_ok "the guest powered off: its process is gone" ||
	ok "the guest powered off: its process is gone"
rpc_expect "vm.info after the power-off: last_exit status 0" vm.info '{"name":"web1"}' \
	"r['result']['state']=='stopped' and r['result']['last_exit']['status']==0 and r['result']['last_exit']['reason']=='guest powered off' and 'pid' not in r['result']"
rpc_expect "vm.stop on a stopped VM: invalid state" vm.stop '{"name":"web1"}' "r['error']['code']==-32003"
rpc_expect "vm.stats on a stopped VM: invalid state" vm.stats '{"name":"web1"}' "r['error']['code']==-32003"
rpc_expect "vm.console on a stopped VM: invalid state" vm.console '{"name":"web1"}' "r['error']['code']==-32003"

# --- two VMs, the daemon killed and restarted -------------------------------------
rpc_expect "vm.start web1 again" vm.start '{"name":"web1"}' "r['result']['state']=='running'"
rpc_expect "vm.create web2 (on-failure, 2 restarts) with start: running" vm.create \
	"{\"definition\":$(guest_def web2 '"restart":{"policy":"on-failure","max_restarts":2,"window_sec":300}'),\"start\":true}" \
	"r['result']['state']=='running' and r['result']['pid']>0 and r['result']['definition']['name']=='web2'"
pid1=$(vm_pid web1) pid2=$(vm_pid web2); remember_pid "$pid1"; remember_pid "$pid2"
rpc_expect "vm.list: two VMs running, sorted" vm.list '' \
	"[v['name'] for v in r['result']['vms']]==['web1','web2'] and all(v['state']=='running' and v['pid']>0 for v in r['result']['vms'])"
rpc_expect "vm.list filters by state" vm.list '{"state":"stopped"}' "r['result']['vms']==[]"
out=$($PY $RPC --vm-console "$SOCK" '{"name":"web2","history":false}' 'two-vms\n' 'two-vms' 20 2>&1)
echo "$out" | grep -q two-vms && ok "web2's console echoes while web1 runs" || not_ok "web2's console echoes while web1 runs" "$out"

stop_vmmd KILL
sleep 0.3
kill -0 "$pid1" 2>/dev/null && kill -0 "$pid2" 2>/dev/null &&
	ok "vmmd killed with SIGKILL: both VMs keep running" ||
	not_ok "vmmd killed with SIGKILL: both VMs keep running"
if start_vmmd; then ok "vmmd restarts"; else not_ok "vmmd restarts" "$(tail -5 "$TMP/vmmd.log")"; fi
for i in $(seq 50); do [ "$(vm_state web2)" = running ] && break; sleep 0.1; done
rpc_expect "after the restart: reattached, same pids, running" vm.list '' \
	"[(v['name'],v['state'],v['pid']) for v in r['result']['vms']]==[('web1','running',$pid1),('web2','running',$pid2)]"
out=$($PY $RPC --vm-console "$SOCK" '{"name":"web1"}' 'after-restart\n' 'after-restart' 20 2>&1)
if echo "$out" | grep -q TESTGUEST-ECHO && echo "$out" | grep -q after-restart; then
	ok "the reattached VM's console answers, its history survived"
else
	not_ok "the reattached VM's console answers, its history survived" "$(echo "$out" | head -c 500)"
fi
rpc_expect "vm.stats through the reattached control socket" vm.stats '{"name":"web1"}' \
	"r['result']['cpu']['usage_usec']>0"

# --- vmm-run killed: crashed, or restarted by the policy ------------------------------
kill -KILL "$pid1"
if wait_state web1 crashed 10; then ok "web1 (policy never) killed: crashed"; else
	not_ok "web1 (policy never) killed: crashed" "state $(vm_state web1)"; fi
rpc_expect "its last_exit: not our child any more, status unknown" vm.info '{"name":"web1"}' \
	"r['result']['last_exit']['status'] is None and 'unknown status' in r['result']['last_exit']['reason']"
kill -KILL "$pid2"
new2=
for i in $(seq 100); do
	new2=$(vm_pid web2)
	[ -n "$new2" ] && [ "$new2" != "$pid2" ] && [ "$(vm_state web2)" = running ] && break
	sleep 0.1
done
remember_pid "$new2"
[ -n "$new2" ] && [ "$new2" != "$pid2" ] && ok "web2 (on-failure) killed: restarted, new pid" ||
	not_ok "web2 (on-failure) killed: restarted, new pid" "pid $new2 state $(vm_state web2)"
out=$($PY $RPC --vm-console "$SOCK" '{"name":"web2","history":false}' 'reborn\n' 'reborn' 20 2>&1)
echo "$out" | grep -q reborn && ok "the restarted VM's console echoes" || not_ok "the restarted VM's console echoes" "$out"
kill -KILL "$new2"
for i in $(seq 100); do
	p=$(vm_pid web2)
	[ -n "$p" ] && [ "$p" != "$new2" ] && [ "$(vm_state web2)" = running ] && break
	sleep 0.1
done
p3=$(vm_pid web2); remember_pid "$p3"
rpc_expect "killed again (our child now: signal known): restart 2 of 2" vm.info '{"name":"web2"}' \
	"r['result']['state']=='running' and r['result']['restarts']==2 and r['result']['last_exit']['signal']==9"
kill -KILL "$p3"
if wait_state web2 crashed 10; then ok "a third kill within the window: crashed, not restarted"; else
	not_ok "a third kill within the window: crashed, not restarted" "state $(vm_state web2)"; fi
rpc_expect "the reason says why it was not restarted" vm.info '{"name":"web2"}' \
	"'not restarted' in r['result']['state_reason']"

# --- kill, restart, delete --------------------------------------------------------------
$PY $RPC --events "$SOCK" '{}' 1000 60 >"$TMP/events2.out" 2>&1 &
bg_pids+=($!)
sleep 0.2
rpc_expect "vm.start a crashed VM" vm.start '{"name":"web2"}' "r['result']['state']=='running'"
p=$(vm_pid web2); remember_pid "$p"
rpc_expect "vm.restart: a new process" vm.restart '{"name":"web2","timeout":20}' \
	"r['result']['state']=='running' and r['result']['pid']!=$p"
remember_pid "$(vm_pid web2)"
rpc_expect "vm.delete of a running VM without force: invalid state" vm.delete '{"name":"web2"}' \
	"r['error']['code']==-32003"
rpc_expect "vm.kill: stopped at once" vm.kill '{"name":"web2"}' "r['result']['state']=='stopped'"
rpc_expect "vm.delete removes it" vm.delete '{"name":"web2"}' "r['result']=={'name':'web2'}"
[ ! -e "$TMP/state/vms/web2.json" ] && [ ! -e "$TMP/run/vms/web2" ] &&
	ok "its stored definition and runtime directory are gone" ||
	not_ok "its stored definition and runtime directory are gone" "$(ls "$TMP/state/vms" "$TMP/run/vms")"
rpc_expect "vm.info of a deleted VM: not found" vm.info '{"name":"web2"}' \
	"r['error']['code']==-32001 and r['error']['message']=='vm \"web2\" not found'"
rpc_expect "vm.delete with force kills a running VM first" vm.create \
	"{\"definition\":$(guest_def web3),\"start\":true}" "r['result']['state']=='running'"
remember_pid "$(vm_pid web3)"
rpc_expect "... and removes it" vm.delete '{"name":"web3","force":true}' "r['result']=={'name':'web3'}"

# --- malformed frames -------------------------------------------------------------------
out=$($PY $RPC --raw-wait 1 --raw "$SOCK" "ffffffff00")
echo "$out" | grep -q -- '-32005' && echo "$out" | grep -q CLOSED &&
	ok "oversized frame header: limit exceeded, then closed" ||
	not_ok "oversized frame header: limit exceeded, then closed" "$out"
out=$($PY $RPC --raw-wait 1 --raw "$SOCK" "00000000")
echo "$out" | grep -q -- '-32600' && echo "$out" | grep -q CLOSED &&
	ok "zero-length frame: invalid request, then closed" ||
	not_ok "zero-length frame: invalid request, then closed" "$out"
out=$($PY $RPC --raw-wait 1 --raw "$SOCK" "000000057b7b7b7b7b")
echo "$out" | grep -q -- '-32700' && echo "$out" | grep -q OPEN &&
	ok "invalid JSON: parse error, the connection stays" ||
	not_ok "invalid JSON: parse error, the connection stays" "$out"
out=$($PY $RPC --raw-wait 1 --raw "$SOCK" "000000105b312c322c335d202020202020202020")
echo "$out" | grep -q -- '-32600' && ok "JSON that is not a request: invalid request" ||
	not_ok "JSON that is not a request: invalid request" "$out"
# 100 bytes announced, 3 sent, then the client hangs up.
python3 -c "
import socket,sys
s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(bytes.fromhex('000000647b2261')); s.close()" "$SOCK"
rpc_expect "wrong types: invalid params naming the parameter" vm.info '{"name":["web1"]}' \
	"r['error']['code']==-32602 and r['error']['message']=='name: must be a string'"
rpc_expect "unknown method: method not found" vm.frobnicate '' \
	"r['error']['code']==-32601 and 'vm.frobnicate' in r['error']['message']"
rpc_expect "unknown parameter: named" vm.stop '{"name":"web1","forse":true}' \
	"r['error']['code']==-32602 and r['error']['message']=='forse: unknown parameter'"
kill -0 "$vmmd_pid" 2>/dev/null && ok "vmmd still runs after malformed frames" ||
	not_ok "vmmd still runs after malformed frames"
rpc_expect "another client is served meanwhile" vm.start '{"name":"web1"}' "r['result']['state']=='running'"
remember_pid "$(vm_pid web1)"
sleep 0.3
grep -q '"state": "running"' "$TMP/events2.out" &&
	ok "a subscriber connected through all that still gets its events" ||
	not_ok "a subscriber connected through all that still gets its events" "$(cat "$TMP/events2.out")"

# --- local users: refused, roles, tenants -------------------------------------------------
out=$($PY $RPC --as-uid 65534 "$SOCK" vm.list 2>&1); rc=$?
[ $rc = 3 ] && ok "uid 65534 cannot even connect to the 0660 socket" ||
	not_ok "uid 65534 cannot even connect to the 0660 socket" "rc=$rc $out"
chmod 0666 "$SOCK"	# past the file mode: the daemon's own checks
rpc_expect "an uid not in the policy: permission denied" vm.list '' \
	"r['error']['code']==-32004 and 'uid:65533' in r['error']['message']" --as-uid 65533 "$SOCK"
rpc_expect "a viewer (uid:65534 in the policy) lists VMs" vm.list '' \
	"[v['name'] for v in r['result']['vms']]==['web1']" --as-uid 65534 "$SOCK"
rpc_expect "a viewer cannot stop a VM" vm.stop '{"name":"web1"}' \
	"r['error']['code']==-32004" --as-uid 65534 "$SOCK"
rpc_expect "a viewer asking to write to a console: permission denied" vm.console '{"name":"web1","write":true}' \
	"r['error']['code']==-32004" --as-uid 65534 "$SOCK"
rpc_expect "a tenant's operator does not see a VM outside its tenant" vm.info '{"name":"web1"}' \
	"r['error']['code']==-32001" --as-uid 65532 "$SOCK"
rpc_expect "... nor can it stop it" vm.stop '{"name":"web1"}' \
	"r['error']['code']==-32001" --as-uid 65532 "$SOCK"
rpc_expect "a tenant's operator creates a VM in its tenant" vm.create \
	"{\"definition\":$(guest_def ta1)}" "r['result']['state']=='defined'" --as-uid 65532 "$SOCK"
rpc_expect "its vm.list holds its tenant's VMs only" vm.list '' \
	"[v['name'] for v in r['result']['vms']]==['ta1']" --as-uid 65532 "$SOCK"
rpc_expect "its daemon.info names its tenant" daemon.info '' \
	"r['result']['identity']=={'name':'uid:65532','role':'operator','tenant':'team-a'} and r['result']['vms']['defined']==1" --as-uid 65532 "$SOCK"
chmod 0660 "$SOCK"

# --- definitions survive a restart; autostart -------------------------------------------------
rpc_expect "vm.create web4 with autostart (not started now)" vm.create \
	"{\"definition\":$(guest_def web4 '"autostart":true')}" "r['result']['state']=='defined'"
before=$(rpc vm.info '{"name":"web1"}' | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["result"]["definition"], sort_keys=True))')
stop_vmmd TERM
grep -q "TERM: stopping (VMs keep running)" "$TMP/vmmd.log" && ok "SIGTERM stops the daemon, not the VMs" ||
	not_ok "SIGTERM stops the daemon, not the VMs"
if start_vmmd; then ok "vmmd restarts on the same state"; else not_ok "vmmd restarts on the same state" "$(tail -5 "$TMP/vmmd.log")"; fi
wait_state web4 running 15
remember_pid "$(vm_pid web4)"
rpc_expect "stored definitions survived; autostart started web4; web1 still runs" vm.list '' \
	"[(v['name'],v['state']) for v in r['result']['vms']]==[('ta1','defined'),('web1','running'),('web4','running')]"
after=$(rpc vm.info '{"name":"web1"}' | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["result"]["definition"], sort_keys=True))')
[ -n "$before" ] && [ "$before" = "$after" ] && ok "a definition reads back the same after a restart (vm.set included)" ||
	not_ok "a definition reads back the same after a restart (vm.set included)" "$before" "$after"
rpc_expect "the tenant survived too" vm.info '{"name":"ta1"}' "r['result']['tenant']=='team-a'"
# Nothing a client sent is lost when the daemon is SIGKILLed right after.
rpc_expect "vm.create web5" vm.create "{\"definition\":$(guest_def web5)}" "r['result']['state']=='defined'"
stop_vmmd KILL
start_vmmd || not_ok "vmmd restarts after SIGKILL" "$(tail -5 "$TMP/vmmd.log")"
rpc_expect "what was acknowledged before a SIGKILL is there" vm.info '{"name":"web5"}' "r['result']['state']=='defined'"
# A corrupt file is reported and skipped; the others load.
echo '{"definition": {' >"$TMP/state/vms/broken.json"
stop_vmmd TERM
start_vmmd || not_ok "vmmd starts with a corrupt definition file" "$(tail -5 "$TMP/vmmd.log")"
grep -q "broken.json: skipped" "$TMP/vmmd.log" && ok "a corrupt definition is reported and skipped" ||
	not_ok "a corrupt definition is reported and skipped"
rpc_expect "... and the others are there" vm.list '' \
	"[v['name'] for v in r['result']['vms']]==['ta1','web1','web4','web5']"

# --- events ------------------------------------------------------------------------------------
if python3 - "$TMP/events.out" <<'EOF'
import json, sys
evs = [json.loads(l)["params"] for l in open(sys.argv[1]) if '"event"' in l]
seqs = [e["seq"] for e in evs]
assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
types = {e["type"] for e in evs}
assert {"vm.created", "vm.updated", "vm.state"} <= types, types
st = [(e["name"], e["previous"], e["state"]) for e in evs if e["type"] == "vm.state"]
assert ("web1", "defined", "starting") in st or ("web1", "stopped", "starting") in st, st
for want in [("web1", "starting", "running"),
             ("web1", "running", "paused"), ("web1", "running", "stopping"),
             ("web1", "stopping", "stopped")]:
    assert want in st, (want, st)
stopped = [e for e in evs if e["type"] == "vm.state" and e["state"] == "stopped" and e["name"] == "web1"][0]
assert stopped["reason"] == "guest powered off", stopped
EOF
then ok "events: created, updated, state (previous, reason), in seq order"; else
	not_ok "events: created, updated, state (previous, reason), in seq order" "$(head -c 800 "$TMP/events.out")"
fi
if python3 - "$TMP/events2.out" <<'EOF'
import json, sys
evs = [json.loads(l)["params"] for l in open(sys.argv[1]) if '"event"' in l]
dels = [e["name"] for e in evs if e["type"] == "vm.deleted"]
assert dels == ["web2", "web3"], dels
assert "web3" in [e["name"] for e in evs if e["type"] == "vm.created"], evs
EOF
then ok "events: vm.deleted and vm.created of the VMs deleted and created"; else
	not_ok "events: vm.deleted and vm.created of the VMs deleted and created" "$(head -c 800 "$TMP/events2.out")"
fi

# --- TLS ---------------------------------------------------------------------------------------
[ -n "${tls_job:-}" ] && wait "$tls_job" && tls_ok=yes
if [ ! -e proto/tls.h ]; then
	skip "proto/tls.h is not there: no TLS listener to test"
elif [ $tls_ok != yes ]; then
	skip "cannot make test certificates with the openssl command: $(tail -1 "$TMP/tls.log")"
else
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	stop_vmmd TERM
	write_config "\"tls\": {\"address\": \"127.0.0.1\", \"port\": $port, \"cert\": \"$TMP/tls/server.pem\", \"key\": \"$TMP/tls/server.key\", \"ca\": \"$TMP/tls/ca.pem\", \"policy\": \"$TMP/policy.json\"}"
	if start_vmmd; then ok "vmmd starts with its TLS listener"; else not_ok "vmmd starts with its TLS listener" "$(tail -5 "$TMP/vmmd.log")"; fi
	T=tls://127.0.0.1:$port
	tls() {	# CERT-NAME: rpc.py options for it
		echo --tls-ca "$TMP/tls/ca.pem" --tls-cert "$TMP/tls/$1.pem" --tls-key "$TMP/tls/$1.key"
	}
	out=$($PY $RPC --tls-ca "$TMP/tls/ca.pem" "$T" daemon.info 2>&1); rc=$?
	[ $rc -ne 0 ] && ! echo "$out" | grep -q '"result"' &&
		ok "TLS: a client without a certificate is refused" ||
		not_ok "TLS: a client without a certificate is refused" "rc=$rc $out"
	out=$($PY $RPC $(tls foreign) "$T" daemon.info 2>&1); rc=$?
	[ $rc -ne 0 ] && ! echo "$out" | grep -q '"result"' &&
		ok "TLS: a certificate from another CA is refused" ||
		not_ok "TLS: a certificate from another CA is refused" "rc=$rc $out"
	out=$($PY $RPC $(tls srvonly) "$T" daemon.info 2>&1); rc=$?
	[ $rc -ne 0 ] && ! echo "$out" | grep -q '"result"' &&
		ok "TLS: a certificate not meant for client authentication is refused" ||
		not_ok "TLS: a certificate not meant for client authentication is refused" "rc=$rc $out"
	if [ -s "$TMP/tls/expired.pem" ]; then
		out=$($PY $RPC $(tls expired) "$T" daemon.info 2>&1); rc=$?
		[ $rc -ne 0 ] && ! echo "$out" | grep -q '"result"' &&
			ok "TLS: an expired certificate is refused" ||
			not_ok "TLS: an expired certificate is refused" "rc=$rc $out"
	else
		skip "openssl ca could not make an expired certificate"
	fi
	reasons=$(grep -c -e "handshake failed: peer did not return a certificate" \
		-e "handshake failed: unable to get local issuer certificate" \
		-e "handshake failed: unsuitable certificate purpose" "$TMP/vmmd.log")
	[ "$reasons" = 3 ] && ok "TLS: the log says why each handshake failed" ||
		not_ok "TLS: the log says why each handshake failed" "$(grep "handshake failed" "$TMP/vmmd.log")"
	rpc_expect "TLS: an identity not in the policy: permission denied" daemon.info '' \
		"r['error']['code']==-32004 and 'stranger' in r['error']['message']" $(tls stranger) "$T"
	rpc_expect "TLS: ops-a is operator of team-a" daemon.info '' \
		"r['result']['identity']=={'name':'ops-a','role':'operator','tenant':'team-a'}" $(tls ops) "$T"
	rpc_expect "TLS: tenant team-a sees only its VM" vm.list '' \
		"[v['name'] for v in r['result']['vms']]==['ta1']" $(tls ops) "$T"
	rpc_expect "TLS: tenant team-a cannot touch another's VM (not found)" vm.kill '{"name":"web1"}' \
		"r['error']['code']==-32001" $(tls ops) "$T"
	rpc_expect "TLS: a viewer cannot start a VM" vm.start '{"name":"web5"}' \
		"r['error']['code']==-32004" $(tls monitor) "$T"
	rpc_expect "TLS: a viewer sees every VM" vm.list '' \
		"len(r['result']['vms'])==4" $(tls monitor) "$T"
	rpc_expect "TLS: the operator starts its VM" vm.start '{"name":"ta1"}' \
		"r['result']['state']=='running'" $(tls ops) "$T"
	remember_pid "$(vm_pid ta1)"
	out=$($PY $RPC $(tls ops) --vm-console "$T" '{"name":"ta1","history":false}' 'over-tls\n' 'over-tls' 20 2>&1)
	echo "$out" | grep -q over-tls && ok "TLS: the console upgrade works over TLS" ||
		not_ok "TLS: the console upgrade works over TLS" "$(echo "$out" | head -c 400)"
	rpc_expect "TLS: the operator stops its VM" vm.stop '{"name":"ta1","timeout":20}' \
		"r['result']['state']=='stopped'" $(tls ops) "$T"
fi

# --- the VM limit ------------------------------------------------------------------------------
rpc_expect "a fifth VM fits (max_vms 5)" vm.create "{\"definition\":$(guest_def web6)}" \
	"r['result']['state']=='defined'"
rpc_expect "a sixth: limit exceeded" vm.create "{\"definition\":$(guest_def web7)}" \
	"r['error']['code']==-32005 and r['error']['message']=='too many VMs (limit 5)'"
rpc_expect "vm.delete web6" vm.delete '{"name":"web6"}' "r['result']=={'name':'web6'}"

# --- the end: stop what runs ---------------------------------------------------------------------
for v in web1 web4; do
	rpc_expect "vm.stop $v" vm.stop "{\"name\":\"$v\",\"timeout\":20,\"force\":true}" "r['result']['state']=='stopped'"
done
left=$(for f in "$TMP"/run/vms/*/pid; do [ -r "$f" ] && cat "$f"; done)
[ -z "$left" ] && ok "no VM process left" || not_ok "no VM process left" "$left"
grep -q "testguest.action" "$TMP/vmmd.log" && not_ok "the log carries no request bodies" "$(grep testguest.action "$TMP/vmmd.log" | head -2)" ||
	ok "the log carries no request bodies"
stop_vmmd TERM

echo "1..$n"
[ $nfail -eq 0 ]

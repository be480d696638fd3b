#!/bin/bash
# SPDX-License-Identifier: MIT
#
# vmctl end to end against a real vmmd on a temporary state directory,
# runtime directory and socket, with the freestanding test kernel in its
# echo mode: create, list, start, console (piped: a line typed is echoed,
# the history holds TESTGUEST-ECHO), logs, info --json, stats, pause and
# resume, events, stop (the guest powers off on the ACPI power button),
# delete; the console on a pty (raw mode, Ctrl-], the terminal restored
# after signals); TLS with a context of the config file; and the exit
# statuses: 1 for a daemon error (unknown VM), 2 for usage (bad option or
# value, bad definition), 3 with no daemon at the socket or a refused TLS
# handshake. Takes about 15 s; a watchdog ends it after 100. Prints TAP.
#
# Environment: BUILD (default build), VMMD, VMCTL (default $BUILD/bin/...).
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
VMMD=${VMMD:-$BUILD/bin/vmmd}
VMCTL=${VMCTL:-$BUILD/bin/vmctl}
GUEST=$BUILD/guest-tests/testguest.elf

TMP=$(mktemp -d "${TMPDIR:-/tmp}/test_vmctl.XXXXXX") || exit 1
pids=() vm_pids=()
cleanup() {
	local p
	# vmmd leaves VMs running by design (they outlive it): kill the VM
	# processes it started, by the pid files in our runtime directory.
	for p in $(cat "$TMP"/run/vms/*/pid 2>/dev/null) "${vm_pids[@]}" \
		"${pids[@]}"; do
		kill -KILL "$p" 2>/dev/null
	done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	# The sleep dies first, so the && never fires.
	pkill -P "$watchdog" 2>/dev/null
	kill "$watchdog" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo "not ok - interrupted or timed out"; exit 1' INT TERM
# Every vmctl call is bounded; the watchdog bounds them all together.
{ sleep 100 && kill -TERM $$ 2>/dev/null; } &
watchdog=$!

# shellcheck source=lib/tap.sh
. tests/integration/lib/tap.sh
# vc ARGS...: run vmctl (bounded), output in $out, status in $rc.
vc() {
	out=$(timeout 30 "$VMCTL" "$@" 2>&1)
	rc=$?
}
# expect_rc DESC RC ARGS...: vmctl ARGS exits with RC.
expect_rc() {
	local d=$1 want=$2; shift 2
	vc "$@"
	if [ "$rc" = "$want" ]; then
		ok "$d"
	else
		not_ok "$d" "command: vmctl $*" "expected exit $want, got $rc" \
			"output: $(echo "$out" | tail -5 | cut -c1-300)"
	fi
}
# expect_out DESC REGEX ARGS...: vmctl ARGS exits 0 and prints REGEX.
expect_out() {
	local d=$1 re=$2; shift 2
	vc "$@"
	if [ "$rc" = 0 ] && echo "$out" | grep -Eq -- "$re"; then
		ok "$d"
	else
		not_ok "$d" "command: vmctl $*" "expected exit 0 and /$re/" \
			"got exit $rc: $(echo "$out" | tail -8 | cut -c1-300)"
	fi
}
# wait_state NAME STATE: until vmctl list says so (up to 15 s).
wait_state() {
	local i
	for i in $(seq 150); do
		"$VMCTL" list 2>/dev/null | grep -Eq "^$1 +$2 " && return 0
		sleep 0.1
	done
	return 1
}

for f in "$VMCTL" "$GUEST"; do
	[ -e "$f" ] || { not_ok "$f is missing (make test-build)"; echo "1..$n"; exit 1; }
done

# Exit 2 and 3 need no daemon and no KVM.
export VMCTL_CONNECT="unix://$TMP/vmmd.sock"
export VMCTL_CONFIG="$TMP/no-such-config.json"
expect_rc "no daemon at the socket: exit 3" 3 list
echo "$out" | grep -q "cannot connect to unix://$TMP/vmmd.sock" &&
	ok "the connection error names the URI" ||
	not_ok "the connection error names the URI" "$out"
expect_rc "an unknown option: exit 2" 2 list --bogus
echo "$out" | grep -q -- "--bogus" && ok "the usage error names the option" ||
	not_ok "the usage error names the option" "$out"
expect_rc "a bad value: exit 2" 2 stop t1 --timeout soon
expect_rc "a bad definition is refused before sending: exit 2" 2 \
	create --name t1 --kernel "$GUEST" --memory 32M
echo "$out" | grep -q "memory: must be at least 64M" &&
	ok "the definition error names the field" ||
	not_ok "the definition error names the field" "$out"
expect_out "--help is generated from the table" "usage: vmctl stop NAME" stop --help

if [ ! -x "$VMMD" ]; then
	# Loud on purpose: this is the part that needs the daemon.
	echo "# vmmd is not built ($VMMD): the daemon half of this test cannot run" >&2
	skip "vmmd is not built ($VMMD missing): cannot test vmctl against a daemon"
	echo "1..$n"; exit 0
fi
if [ ! -w /dev/kvm ]; then
	skip "no usable /dev/kvm: vmctl's daemon tests need a running VM"
	echo "1..$n"; exit 0
fi
if [ "$(id -u)" != 0 ]; then
	skip "not root: vmmd's UNIX socket makes only root and its group admins"
	echo "1..$n"; exit 0
fi

# --- a daemon of our own, with a TLS listener when we can make certificates --
# tls_certs: a CA, a server certificate for 127.0.0.1/localhost, a client
# certificate "ops-a", and one from another CA.
tls_certs() {
	local d=$TMP/tls
	mkdir -p "$d"
	cat >"$d/ext.cnf" <<EOF
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
		issue foreign ops-a other-ca client
}
mkdir -p "$TMP/state" "$TMP/run"
tls_json= port=
if command -v openssl >/dev/null && tls_certs; then
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	echo '{"identities": {"ops-a": {"role": "operator", "tenant": "team-a"}}}' >"$TMP/policy.json"
	tls_json=", \"tls\": {\"address\": \"127.0.0.1\", \"port\": $port,
 \"cert\": \"$TMP/tls/server.pem\", \"key\": \"$TMP/tls/server.key\",
 \"ca\": \"$TMP/tls/ca.pem\", \"policy\": \"$TMP/policy.json\"}"
fi
cat >"$TMP/vmmd.json" <<EOF
{"state_dir": "$TMP/state", "runtime_dir": "$TMP/run",
 "socket": "$TMP/vmmd.sock", "log_level": "debug"$tls_json}
EOF
"$VMMD" --config "$TMP/vmmd.json" --foreground >"$TMP/vmmd.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -S "$TMP/vmmd.sock" ] && break; sleep 0.1; done
if [ ! -S "$TMP/vmmd.sock" ]; then
	not_ok "vmmd serves its socket" "$(tail -5 "$TMP/vmmd.log")"
	echo "1..$n"; exit 1
fi
ok "vmmd serves its socket"

expect_out "version shows the client and the daemon" \
	"^daemon: +vmmd .*protocol 1" version
expect_out "create from options (a relative kernel path)" "^t1: created, defined" \
	create --name t1 --kernel "$GUEST" --cmdline testguest.action=echo --memory 64M
expect_out "list shows it defined" "^t1 +defined +1 +64M +- +-" list
expect_rc "create again: exit 1 (already exists)" 1 \
	create --name t1 --kernel "$GUEST" --memory 64M
echo "$out" | grep -q "(already_exists)" && ok "the daemon's error is printed with its code name" ||
	not_ok "the daemon's error is printed with its code name" "$out"
expect_out "start" "^t1: running \(pid [0-9]+\)" start t1
vm_pids+=($(echo "$out" | sed -n 's/.*(pid \([0-9]*\)).*/\1/p'))
expect_out "list shows it running with a pid" "^t1 +running +1 +64M +[0-9]+ " list

# The console, piped: the history has the marker, a typed line is echoed.
out=$(printf 'vmctl-ping-1\n' | timeout 20 "$VMCTL" console t1 --wait 2 2>&1)
rc=$?
if [ $rc = 0 ] && echo "$out" | grep -q TESTGUEST-ECHO; then
	ok "console replays the history (TESTGUEST-ECHO)"
else
	not_ok "console replays the history (TESTGUEST-ECHO)" "exit $rc" "$(echo "$out" | tail -5)"
fi
# The guest echoes the line; the input itself is not printed locally.
if [ "$(echo "$out" | grep -c 'vmctl-ping-1')" -ge 1 ]; then
	ok "console sends input and prints the guest's echo"
else
	not_ok "console sends input and prints the guest's echo" "$(echo "$out" | tail -5)"
fi
expect_out "logs prints the history up to the live point" "vmctl-ping-1" logs t1
echo "$out" | grep -q TESTGUEST-ECHO && ok "logs has the marker" ||
	not_ok "logs has the marker" "$(echo "$out" | tail -3)"

# On a terminal (a pty): raw mode during the session, Ctrl-] detaches, and
# the terminal comes back cooked after Ctrl-], SIGTERM, SIGHUP and across
# SIGTSTP/SIGCONT.
cat >"$TMP/ptytest.py" <<'PYEOF2'
# Drives "vmctl console NAME" on a pty; prints "ok WHAT" per check passed.
import os, pty, sys, termios, time, select, signal
vmctl, name = sys.argv[1], sys.argv[2]
spawned = []
def reap():
    # A failed check must not leave a vmctl behind (a stopped one least).
    for p in spawned:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
import atexit
atexit.register(reap)
def spawn():
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(vmctl, [vmctl, "console", name])
    spawned.append(pid)
    return pid, fd
def read_until(fd, want, t=10):
    buf = b""; end = time.time() + t
    while want not in buf and time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try: buf += os.read(fd, 4096)
            except OSError: break
    return buf
def cooked(fd):
    l = termios.tcgetattr(fd)[3]
    return bool(l & termios.ICANON) and bool(l & termios.ECHO)
pid, fd = spawn()
b = read_until(fd, b"Ctrl-]")
assert b"Connected to " + name.encode() in b, b
time.sleep(0.2)
assert not cooked(fd), "raw mode during the session"
os.write(fd, b"tty-ping\r")
b = read_until(fd, b"tty-ping")
assert b"tty-ping" in b, b
os.write(fd, b"\x1d")
_, st = os.waitpid(pid, 0)
assert os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0, st
assert cooked(fd), "terminal restored after Ctrl-]"
print("ok ctrl-]")
for sig in (signal.SIGTERM, signal.SIGHUP):
    pid, fd = spawn()
    read_until(fd, b"Ctrl-]"); time.sleep(0.2)
    assert not cooked(fd)
    os.kill(pid, sig)
    _, st = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(st) and os.WTERMSIG(st) == sig, st
    assert cooked(fd), "terminal restored after signal %d" % sig
    print("ok signal", sig)
pid, fd = spawn()
read_until(fd, b"Ctrl-]"); time.sleep(0.2)
os.kill(pid, signal.SIGTSTP)
_, st = os.waitpid(pid, os.WUNTRACED)
assert os.WIFSTOPPED(st), st
assert cooked(fd), "terminal restored while stopped"
os.kill(pid, signal.SIGCONT)
time.sleep(0.3)
assert not cooked(fd), "raw again after SIGCONT"
os.write(fd, b"\x1d")
_, st = os.waitpid(pid, 0)
assert os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0, st
assert cooked(fd)
print("ok tstp/cont")
PYEOF2
out=$(timeout 40 python3 "$TMP/ptytest.py" "$VMCTL" t1 2>&1)
rc=$?
for what in "ctrl-]" "signal 15" "signal 1" "tstp/cont"; do
	echo "$out" | grep -qx "ok $what" &&
		ok "console on a terminal: raw, then restored ($what)" ||
		not_ok "console on a terminal: raw, then restored ($what)" "exit $rc" \
			"$(echo "$out" | tail -4)"
done

vc info t1 --json
pid=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])' 2>/dev/null)
if [ "$rc" = 0 ] && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
	ok "info --json has the pid of a live process ($pid)"
else
	not_ok "info --json has the pid of a live process" "exit $rc" "$(echo "$out" | head -5)"
fi
expect_out "info shows key: value lines" "^state: +running" info t1
expect_out "stats shows the cpu section" "^  usage: +[0-9]+\.[0-9]{6}s" stats t1
expect_out "stats --json is the raw result" '"uptime_sec":' stats t1 --json

expect_out "set: a CPU quota and weight, applied to the running VM" \
	"^t1: updated, applied to the running VM" set t1 --cpu-quota 0.5 --cpu-weight 200
expect_out "info shows the stored resources" '"cpu_quota": 0.5' info t1 --json
expect_rc "set: a memory limit below the VM's memory: exit 1" 1 set t1 --memory-limit 16M
expect_rc "set: a disk limit on a VM without disks: exit 1" 1 set t1 --disk-limit 0:ops=100
expect_out "set: none unsets the quota" "^t1: updated, applied" set t1 --cpu-quota none
expect_out "pause" "^t1: paused" pause t1
expect_out "list shows it paused" "^t1 +paused " list
expect_rc "pause again: exit 1 (invalid state)" 1 pause t1
echo "$out" | grep -q "(invalid_state)" && ok "invalid_state is named" || not_ok "invalid_state is named" "$out"
expect_out "resume" "^t1: running" resume t1

# events: start a subscriber, then stop the VM; the subscriber sees it.
timeout 20 "$VMCTL" events --name t1 >"$TMP/events.out" 2>&1 &
ev=$!
pids+=($ev)
# Subscribed once the daemon logged the request (log_level debug).
for _ in $(seq 50); do
	grep -q "events.subscribe" "$TMP/vmmd.log" && break
	sleep 0.1
done
expect_out "stop: the guest powers off on the power button" "^t1: stopped" \
	stop t1 --timeout 15
# The event may trail the answer to vm.stop: give it a moment.
for _ in $(seq 50); do
	grep -Eq "vm.state t1 .*-> stopped" "$TMP/events.out" && break
	sleep 0.1
done
kill -INT $ev 2>/dev/null
wait $ev
evrc=$?
if grep -Eq "vm.state t1 .*-> stopped" "$TMP/events.out" && [ $evrc = 0 ]; then
	ok "events shows the state change; Ctrl-C ends it with exit 0"
else
	not_ok "events shows the state change; Ctrl-C ends it with exit 0" \
		"exit $evrc" "$(tail -5 "$TMP/events.out")"
fi
expect_out "list shows it stopped again" "^t1 +stopped " list
expect_rc "stats of a stopped VM: exit 1" 1 stats t1
expect_out "delete" "^t1: deleted" delete t1
expect_rc "info of an unknown VM: exit 1" 1 info t1
echo "$out" | grep -q '(not_found)' && ok "not_found is named" || not_ok "not_found is named" "$out"
expect_out "list is empty" "^NAME +STATE +VCPUS +MEMORY +PID +UPTIME$" list

# From a definition file on stdin, started at once, then killed.
printf '{"name": "t2", "kernel": "%s", "memory": "64M", "cmdline": "testguest.action=echo"}' \
	"$PWD/$GUEST" >"$TMP/t2.json"
out=$(timeout 30 "$VMCTL" create --file - --start <"$TMP/t2.json" 2>&1); rc=$?
if [ $rc = 0 ] && echo "$out" | grep -Eq "^t2: created, running \(pid [0-9]+\)"; then
	ok "create --file - --start"
	vm_pids+=($(echo "$out" | sed -n 's/.*(pid \([0-9]*\)).*/\1/p'))
else
	not_ok "create --file - --start" "exit $rc: $out"
fi
expect_out "the file's VM runs" "^t2 +running " list
expect_out "kill" "^t2: stopped" kill t2
expect_out "delete --force of a stopped VM" "^t2: deleted" delete t2 --force

# --- the same over TLS, with a context of the config file -------------------
if [ -z "$port" ]; then
	skip "no openssl command to make certificates: vmctl over TLS not tested"
else
	for _ in $(seq 50); do
		python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 1)" \
			2>/dev/null && break
		sleep 0.1
	done
	# Relative file names in a context are relative to the config file.
	cat >"$TMP/config.json" <<EOF
{"contexts": {"lab": {"connect": "tls://localhost:$port", "cert": "tls/ops.pem",
                      "key": "tls/ops.key", "ca": "tls/ca.pem"}},
 "current": "lab"}
EOF
	export VMCTL_CONFIG=$TMP/config.json
	unset VMCTL_CONNECT
	expect_out "TLS: the current context connects with its certificate" \
		"^identity: +ops-a, role operator, tenant team-a" version
	expect_out "TLS: create --start as a tenant's operator" "^t3: created, running" \
		create --name t3 --kernel "$GUEST" --cmdline testguest.action=echo \
		--memory 64M --start
	vm_pids+=($(echo "$out" | sed -n 's/.*(pid \([0-9]*\)).*/\1/p'))
	out=$(printf 'over-tls-1\n' | timeout 20 "$VMCTL" console t3 --no-history --wait 2 2>&1)
	rc=$?
	[ $rc = 0 ] && echo "$out" | grep -q over-tls-1 &&
		ok "TLS: the console relays both ways" ||
		not_ok "TLS: the console relays both ways" "exit $rc" "$(echo "$out" | tail -3)"
	expect_out "TLS: stop" "^t3: stopped" stop t3 --timeout 15
	expect_out "TLS: delete" "^t3: deleted" delete t3
	expect_rc "TLS: without a client certificate: exit 3" 3 \
		--connect "tls://127.0.0.1:$port" --ca "$TMP/tls/ca.pem" list
	expect_rc "TLS: a daemon certificate from another CA: exit 3" 3 \
		--cert "$TMP/tls/ops.pem" --key "$TMP/tls/ops.key" --ca "$TMP/tls/other-ca.pem" list
	echo "$out" | grep -q "cannot connect to tls://localhost:$port: TLS handshake" &&
		ok "TLS: the handshake failure is named" ||
		not_ok "TLS: the handshake failure is named" "$out"
	expect_rc "TLS: a client certificate from another CA: exit 3" 3 \
		--cert "$TMP/tls/foreign.pem" --key "$TMP/tls/foreign.key" list
	expect_rc "an unknown context: exit 2" 2 --context nope list
fi

kill -0 "${pids[0]}" 2>/dev/null && ok "vmmd is still running" ||
	not_ok "vmmd is still running" "$(tail -5 "$TMP/vmmd.log")"

echo "1..$n"
[ $nfail -eq 0 ]

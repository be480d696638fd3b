#!/bin/bash
# SPDX-License-Identifier: MIT
#
# vmm-run end to end, with the freestanding test kernel
# ($BUILD/guest-tests/testguest.elf, tests/guest/testguest/): each guest
# action (poweroff, reboot, crash, hang, echo, ...) must end in its exit
# code and console markers, and bad input must end in exit 2 with a message
# naming the problem. Prints TAP; exits 1 when anything failed.
#
# Environment: BUILD (default build), VMMRUN (default $BUILD/bin/vmm-run).
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
VMMRUN=${VMMRUN:-$BUILD/bin/vmm-run}
VMMRUN_ASAN=$BUILD/asan/bin/vmm-run
GUEST=$BUILD/guest-tests/testguest.elf
TMO=60

TMP=$(mktemp -d "${TMPDIR:-/tmp}/test_vmmrun.XXXXXX") || exit 1
bg_pids=()
cleanup() {
	local p
	for p in "${bg_pids[@]}"; do
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	rm -rf "$TMP"
}
trap cleanup EXIT

# --- TAP helpers -----------------------------------------------------------

# shellcheck source=lib/tap.sh
. tests/integration/lib/tap.sh
# Show what a run left behind, as TAP comments (for failures).
show_run() {
	local name=$1
	echo "#   exit code: $(cat "$TMP/$name.rc" 2>/dev/null)"
	echo "#   command: $(cat "$TMP/$name.cmd" 2>/dev/null)"
	echo "#   stdout (last 15 lines):"
	tail -n 15 "$TMP/$name.out" 2>/dev/null | cut -c1-300 | sed 's/^/#     /'
	echo "#   stderr (last 15 lines):"
	tail -n 15 "$TMP/$name.err" 2>/dev/null | cut -c1-300 | sed 's/^/#     /'
}

# run_vmm NAME [--bin PATH] [--stdin FILE] ARGS...: run vmm-run under a
# timeout, stdout/stderr/exit code into $TMP/NAME.{out,err,rc}.
run_vmm() {
	local name=$1; shift
	local bin=$VMMRUN in=/dev/null
	while :; do
		case "${1:-}" in
		--bin) bin=$2; shift 2 ;;
		--stdin) in=$2; shift 2 ;;
		*) break ;;
		esac
	done
	printf '%q ' "$bin" "$@" >"$TMP/$name.cmd"
	timeout --kill-after=5 "$TMO" "$bin" "$@" \
		<"$in" >"$TMP/$name.out" 2>"$TMP/$name.err"
	echo $? >"$TMP/$name.rc"
}

rc_of() { cat "$TMP/$1.rc"; }

# check DESC NAME COND...: COND is a list of checks, all must hold:
#   rc=N            exit code N
#   out~REGEX       stdout matches (grep -E)
#   out!~REGEX      stdout does not match
#   err~REGEX       stderr matches (grep -Ei, case-insensitive)
#   err!~REGEX      stderr does not match
check() {
	local desc=$1 name=$2; shift 2
	local c why=()
	for c in "$@"; do
		case "$c" in
		rc=*)
			[ "$(rc_of "$name")" = "${c#rc=}" ] ||
				why+=("expected exit code ${c#rc=}, saw $(rc_of "$name")") ;;
		'out!~'*)
			! grep -qE -- "${c#out!~}" "$TMP/$name.out" ||
				why+=("stdout must not match /${c#out!~}/: $(grep -m1 -E -- "${c#out!~}" "$TMP/$name.out" | cut -c1-200)") ;;
		'out~'*)
			grep -qE -- "${c#out~}" "$TMP/$name.out" ||
				why+=("expected stdout to match /${c#out~}/") ;;
		'err!~'*)
			! grep -qEi -- "${c#err!~}" "$TMP/$name.err" ||
				why+=("stderr must not match /${c#err!~}/: $(grep -m1 -Ei -- "${c#err!~}" "$TMP/$name.err" | cut -c1-200)") ;;
		'err~'*)
			grep -qEi -- "${c#err~}" "$TMP/$name.err" ||
				why+=("expected stderr to match /${c#err~}/ (case-insensitive)") ;;
		*)
			why+=("test bug: unknown check '$c'") ;;
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

# The value of KEY= in the TESTGUEST-INFO line of a run's stdout.
info_field() {
	grep -m1 '^TESTGUEST-INFO ' "$TMP/$1.out" | tr ' ' '\n' |
		sed -n "s/^$2=//p" | head -n1 | tr -d '\r'
}

# check_range DESC NAME KEY LO HI: the INFO field is a number in [LO, HI].
check_range() {
	local desc=$1 name=$2 key=$3 lo=$4 hi=$5 v
	v=$(info_field "$name" "$key")
	if [[ $v =~ ^[0-9]+$ ]] && [ "$v" -ge "$lo" ] && [ "$v" -le "$hi" ]; then
		ok "$desc"
	else
		not_ok "$desc" "expected $key in [$lo, $hi], saw '${v}'" \
			"INFO line: $(grep -m1 '^TESTGUEST-INFO' "$TMP/$name.out" | cut -c1-300)"
		show_run "$name"
	fi
}

# wait_for FILE REGEX SECONDS PID: until FILE matches, PID exits, or time
# runs out. 0 when it matched.
wait_for() {
	local file=$1 re=$2 secs=$3 pid=$4 i
	for ((i = 0; i < secs * 10; i++)); do
		grep -qE -- "$re" "$file" 2>/dev/null && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	grep -qE -- "$re" "$file" 2>/dev/null
}

# --- preconditions -----------------------------------------------------------

missing=()
[ -x "$VMMRUN" ] || missing+=("$VMMRUN")
[ -f "$GUEST" ] || missing+=("$GUEST")
if [ ${#missing[@]} -gt 0 ]; then
	not_ok "vmm-run and the test guest are built" \
		"missing: ${missing[*]} (run make test-build with the same BUILD=)"
	echo "1..$n"
	exit 1
fi

have_kvm=1 kvm_why=""
if [ ! -e /dev/kvm ]; then
	have_kvm=0 kvm_why="no /dev/kvm on this host"
elif ! { exec 9<>/dev/kvm; } 2>/dev/null; then
	have_kvm=0 kvm_why="cannot open /dev/kvm read-write (not root, not in the kvm group?)"
else
	exec 9>&-
fi
if [ $have_kvm -eq 0 ]; then
	echo "# /dev/kvm unusable: $kvm_why; the tests that boot a guest are skipped" >&2
fi

# needs_kvm DESC: true when the test can run; otherwise prints its skip.
needs_kvm() {
	[ $have_kvm -eq 1 ] && return 0
	skip "$1: $kvm_why"
	return 1
}

# --- guests that run -----------------------------------------------------

desc="poweroff: exit 0, READY and INFO (cpus=1, mem, cmdline) on stdout"
if needs_kvm "$desc"; then
	run_vmm poweroff --kernel "$GUEST" --memory 128M \
		--cmdline "testguest.action=poweroff marker=p0w3r"
	check "$desc" poweroff rc=0 'out~^TESTGUEST-READY' \
		'out~^TESTGUEST-INFO cpus=1 ' 'out~cmdline=testguest\.action=poweroff marker=p0w3r' \
		'out~^TESTGUEST-POWEROFF' 'out!~POWEROFF-FAILED' 'out!~TESTGUEST-WARN'
	check_range "poweroff: mem_mib of --memory 128M is 122..128" poweroff mem_mib 122 128
fi

desc="default action (no testguest.action=) is poweroff"
if needs_kvm "$desc"; then
	run_vmm default --kernel "$GUEST"
	check "$desc" default rc=0 'out~^TESTGUEST-INFO cpus=1 ' \
		'out~^TESTGUEST-POWEROFF' 'out!~POWEROFF-FAILED' 'out!~TESTGUEST-WARN' \
		'out!~TESTGUEST-INITRD'
	check_range "default --memory (512M): mem_mib 506..512" default mem_mib 506 512
fi

desc="--cpus 4 --memory 256M: the guest sees 4 CPUs in the MADT"
if needs_kvm "$desc"; then
	run_vmm smp --kernel "$GUEST" --cpus 4 --memory 256M
	check "$desc" smp rc=0 'out~^TESTGUEST-INFO cpus=4 ' 'out~^TESTGUEST-POWEROFF' \
		'out!~POWEROFF-FAILED' 'out!~TESTGUEST-WARN'
	check_range "--memory 256M: mem_mib 250..256" smp mem_mib 250 256
fi

desc="--initrd: the guest finds it in RAM, with the right size and bytes"
if needs_kvm "$desc"; then
	head -c 12345 /dev/urandom >"$TMP/initrd.img"
	want_sum=$(od -An -tu1 -v "$TMP/initrd.img" |
		awk '{ for (i = 1; i <= NF; i++) s += $i } END { print s % 4294967296 }')
	run_vmm initrd --kernel "$GUEST" --initrd "$TMP/initrd.img" --memory 64M
	check "$desc" initrd rc=0 \
		"out~^TESTGUEST-INITRD addr=0x[0-9a-f]+ size=12345 sum=$want_sum\$" \
		'out!~TESTGUEST-WARN' 'out~^TESTGUEST-POWEROFF'
fi

desc="--memory 4G: RAM split around the PCI hole, e820 sane"
if needs_kvm "$desc"; then
	run_vmm mem4g --kernel "$GUEST" --memory 4G
	check "$desc" mem4g rc=0 'out~^TESTGUEST-INFO cpus=1 ' 'out!~TESTGUEST-WARN' \
		'out~^TESTGUEST-POWEROFF'
	check_range "--memory 4G: mem_mib 4088..4096" mem4g mem_mib 4088 4096
fi

desc="reboot: i8042 reset ends in exit 3"
if needs_kvm "$desc"; then
	run_vmm reboot --kernel "$GUEST" --cmdline testguest.action=reboot
	check "$desc" reboot rc=3 'out~^TESTGUEST-REBOOT' 'out!~REBOOT-FAILED'
fi

desc="crash: a triple fault ends in exit 4, named on stderr"
if needs_kvm "$desc"; then
	run_vmm crash --kernel "$GUEST" --cmdline testguest.action=crash
	check "$desc" crash rc=4 'out~^TESTGUEST-CRASH' 'out!~TESTGUEST-HANG' \
		'err~crash.*triple fault' 'err!~error:.*(cannot emulate|internal error)'
fi

# signal_test SIG CODE: a hanging guest, then SIG to vmm-run once the guest
# said so (not after a blind sleep): vmm-run must exit with CODE.
signal_test() {
	local sig=$1 code=$2 name=hang$1 tpid vpid
	local desc="hang, then SIG$sig: exit $code"
	needs_kvm "$desc" || return
	printf '%q ' "$VMMRUN" --kernel "$GUEST" --cmdline testguest.action=hang >"$TMP/$name.cmd"
	timeout --kill-after=5 "$TMO" "$VMMRUN" --kernel "$GUEST" \
		--cmdline testguest.action=hang \
		</dev/null >"$TMP/$name.out" 2>"$TMP/$name.err" &
	tpid=$!
	bg_pids+=("$tpid")
	if wait_for "$TMP/$name.out" '^TESTGUEST-HANG' 50 "$tpid"; then
		# Signal vmm-run itself (the child of timeout), as an operator would.
		vpid=$(pgrep -P "$tpid" | head -n1)
		kill "-$sig" "${vpid:-$tpid}"
		wait "$tpid"
		echo $? >"$TMP/$name.rc"
		check "$desc" "$name" "rc=$code" 'out!~HANG-FAILED' \
			"err~$sig|signal"
	else
		kill -KILL "$tpid" 2>/dev/null
		wait "$tpid" 2>/dev/null
		echo "none (killed)" >"$TMP/$name.rc"
		not_ok "$desc" "TESTGUEST-HANG did not show within 50 s"
		show_run "$name"
	fi
}
signal_test TERM 143
signal_test INT 130

desc="echo: console input reaches the guest and comes back"
if needs_kvm "$desc"; then
	printf 'hello\nq' >"$TMP/echo.in"
	run_vmm echo --stdin "$TMP/echo.in" --kernel "$GUEST" \
		--cmdline testguest.action=echo
	check "$desc" echo rc=0 'out~^TESTGUEST-ECHO$' 'out~^hello' \
		'out~^TESTGUEST-ECHO-DONE' 'out~^TESTGUEST-POWEROFF' 'out!~POWEROFF-FAILED'
fi

desc="--stats: exit counters on stderr, with port writes counted"
if needs_kvm "$desc"; then
	run_vmm stats --kernel "$GUEST" --stats
	check "$desc" stats rc=0 'err~exits per vcpu' \
		'err~^ +vcpu0: runs=[1-9][0-9]* .*io_out=[1-9]' \
		'err~^ +vcpu0: .*io_in=[1-9]' 'err~unowned: pio=[0-9]+ mmio=[0-9]+' \
		'out!~io_out'
fi

# kvm_has_stats_fd: this host's KVM has KVM_CAP_BINARY_STATS_FD (203, Linux
# 5.14), asked with KVM_CHECK_EXTENSION (_IO(0xae, 0x03)).
kvm_has_stats_fd() {
	python3 -c 'import fcntl, os, sys
sys.exit(0 if fcntl.ioctl(os.open("/dev/kvm", os.O_RDWR), 0xae03, 203) > 0 else 1)' \
		2>/dev/null
}

desc="--stats: KVM's own counters of each vCPU on a kvm: line"
if needs_kvm "$desc"; then
	if ! kvm_has_stats_fd; then
		skip "$desc: this host's KVM lacks KVM_CAP_BINARY_STATS_FD (Linux < 5.14)"
	else
		check "$desc" stats 'err~^    kvm: exits=[0-9]+ io_exits=[0-9]+ ' \
			'err~^    kvm: .* insn_emulation_fail=[0-9]+'
	fi
fi

desc="exit-port: an OUT to a port nobody owns is counted, the guest goes on"
if needs_kvm "$desc"; then
	run_vmm exitport --kernel "$GUEST" --cmdline testguest.action=exit-port --stats
	check "$desc" exitport rc=0 'out~^TESTGUEST-POWEROFF' 'err~unowned: pio=[1-9]'
fi

desc="unknown action: reported, then poweroff"
if needs_kvm "$desc"; then
	run_vmm unknown --kernel "$GUEST" --cmdline testguest.action=dance
	check "$desc" unknown rc=0 'out~^TESTGUEST-UNKNOWN-ACTION' 'out~^TESTGUEST-POWEROFF'
fi

desc="--console file:PATH: the console goes to the file, not stdout"
if needs_kvm "$desc"; then
	run_vmm confile --kernel "$GUEST" --console "file:$TMP/console.log"
	cp "$TMP/confile.out" "$TMP/confile.stdout"
	cp "$TMP/console.log" "$TMP/confile.out" 2>/dev/null || : >"$TMP/confile.out"
	if check "$desc" confile rc=0 'out~^TESTGUEST-READY' 'out~^TESTGUEST-POWEROFF'; then
		if grep -q TESTGUEST "$TMP/confile.stdout"; then
			not_ok "--console file: stdout stays free of guest output" \
				"stdout has: $(grep -m1 TESTGUEST "$TMP/confile.stdout")"
		else
			ok "--console file: stdout stays free of guest output"
		fi
	fi
fi

desc="sanitizer build: poweroff, exit 0, no ASan/UBSan report"
if [ ! -x "$VMMRUN_ASAN" ]; then
	skip "$desc: $VMMRUN_ASAN not built"
elif needs_kvm "$desc"; then
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
		run_vmm asan --bin "$VMMRUN_ASAN" --kernel "$GUEST" --cpus 2 \
		--stats --cmdline testguest.action=poweroff
	check "$desc" asan rc=0 'out~^TESTGUEST-INFO cpus=2 ' 'out~^TESTGUEST-POWEROFF' \
		'err!~AddressSanitizer|LeakSanitizer|runtime error' \
		'err~^ +vcpu1: runs='
fi

# --- bad input: exit 2 and a message naming the problem ---------------------

# bad DESC NEEDS_KVM ERR_REGEX ARGS...
bad() {
	local desc=$1 kvm=$2 re=$3; shift 3
	if [ "$kvm" = kvm ] && ! needs_kvm "bad input: $desc"; then
		return
	fi
	local name="bad$n"
	run_vmm "$name" "$@"
	check "bad input: $desc -> exit 2, stderr names it" "$name" rc=2 "err~$re" \
		'out!~TESTGUEST-READY'
}

cp /etc/hostname "$TMP/not-a-kernel" 2>/dev/null || echo "not a kernel" >"$TMP/not-a-kernel"
long=$(head -c 5000 /dev/zero | tr '\0' 'x')

bad "missing kernel file" nokvm "kernel '$TMP/nope': no such file" \
	--kernel "$TMP/nope"
bad "kernel path is a directory" kvm "kernel '$TMP'.*directory" --kernel "$TMP"
bad "kernel is not a kernel (a text file)" kvm \
	"kernel '$TMP/not-a-kernel'.*not a .*kernel" --kernel "$TMP/not-a-kernel"
bad "initrd path does not exist" nokvm "initrd '$TMP/no-initrd': no such file" \
	--kernel "$GUEST" --initrd "$TMP/no-initrd"
bad "--memory 12Q" nokvm "memory '12Q'.*not a size" --kernel "$GUEST" --memory 12Q
bad "--memory 100T (more than the host has)" nokvm "memory .*more than this host has" \
	--kernel "$GUEST" --memory 100T
bad "--memory 1M (too small to boot)" nokvm "memory .*at least" \
	--kernel "$GUEST" --memory 1M
bad "--cpus 0" nokvm "cpus 0.*between" --kernel "$GUEST" --cpus 0
bad "--cpus 1000" nokvm "cpus 1000.*between" --kernel "$GUEST" --cpus 1000
bad "--cpus two" nokvm "cpus 'two'.*not a number" --kernel "$GUEST" --cpus two
bad "--cmdline of 5000 bytes (limit 2047)" kvm "cmdline.*5000.*limit" \
	--kernel "$GUEST" --cmdline "$long"
bad "no --kernel" nokvm "no kernel|--kernel.*required" --memory 64M
bad "unknown option" nokvm "unknown option.*--frobnicate" \
	--kernel "$GUEST" --frobnicate
bad "option without its value" nokvm "memory.*needs a value|needs a value" \
	--kernel "$GUEST" --memory
bad "--console with an unknown kind" nokvm "console 'bogus'" \
	--kernel "$GUEST" --console bogus
bad "--console file: in a missing directory" nokvm "console.*$TMP/no-dir/c.log.*no such" \
	--kernel "$GUEST" --console "file:$TMP/no-dir/c.log"
truncate -s 4M "$TMP/disk.img"
bad "--disk: missing image" kvm "disk image '$TMP/no-disk.img': no such file" \
	--kernel "$GUEST" --disk "$TMP/no-disk.img"
bad "--disk: a directory" kvm "disk image '$TMP': is a directory" \
	--kernel "$GUEST" --disk "$TMP"
bad "--disk: an unknown option" kvm "disk '$TMP/disk.img': unknown or bad option 'bogus'" \
	--kernel "$GUEST" --disk "$TMP/disk.img,bogus"
bad "--disk: the same image twice, read-write" kvm "disk image '$TMP/disk.img' is in use" \
	--kernel "$GUEST" --disk "$TMP/disk.img" --disk "$TMP/disk.img"

bad "--net: a TAP that does not exist" kvm "TAP 'vmmdnotap0': no such interface" \
	--kernel "$GUEST" --net tap=vmmdnotap0
bad "--net: an unknown option" kvm "net 'bogus': unknown or bad option" \
	--kernel "$GUEST" --net bogus
bad "--net: a multicast MAC" kvm "not a unicast MAC" \
	--kernel "$GUEST" --net "tap=x,mac=ff:ff:ff:ff:ff:ff"

bad "--vsock: no uds" kvm "vsock 'cid=3': needs both" \
	--kernel "$GUEST" --vsock cid=3
bad "--vsock: the host CID" kvm "vsock" \
	--kernel "$GUEST" --vsock "cid=2,uds=$TMP/v.sock"
bad "--vsock: a timeout that is not a number" kvm "vsock: timeout 'soon' is not a number" \
	--kernel "$GUEST" --vsock "cid=3,uds=$TMP/v.sock,timeout=soon"
bad "--vsock: a timeout of 0" kvm "vsock: timeout 0 ms: must be between 1" \
	--kernel "$GUEST" --vsock "cid=3,uds=$TMP/v.sock,timeout=0"
bad "--vsock: a timeout over an hour" kvm "vsock: timeout 3600001 ms: must be between" \
	--kernel "$GUEST" --vsock "cid=3,uds=$TMP/v.sock,timeout=3600001"

# Without a usable /dev/kvm, inside a private mount namespace (the host's
# /dev/kvm stays untouched): exit 2, naming /dev/kvm.
if [ "$(id -u)" -ne 0 ] || ! command -v unshare >/dev/null; then
	skip "bad input: no /dev/kvm: needs root and unshare(1) for a private mount namespace"
	skip "bad input: /dev/kvm not a KVM device: needs root and unshare(1) for a private mount namespace"
elif ! unshare -m --propagation private true 2>/dev/null; then
	skip "bad input: no /dev/kvm: unshare -m is not permitted here"
	skip "bad input: /dev/kvm not a KVM device: unshare -m is not permitted here"
else
	cat >"$TMP/nokvm.sh" <<'EOS'
#!/bin/sh
exec unshare -m --propagation private sh -c 'mount -t tmpfs none /dev &&
	mknod -m 666 /dev/null c 1 3 && exec "$0" "$@"' "$@"
EOS
	cat >"$TMP/nullkvm.sh" <<'EOS'
#!/bin/sh
exec unshare -m --propagation private sh -c \
	'mount --bind /dev/null /dev/kvm && exec "$0" "$@"' "$@"
EOS
	chmod +x "$TMP/nokvm.sh" "$TMP/nullkvm.sh"
	bad "no /dev/kvm (private mount namespace)" nokvm "no /dev/kvm" \
		--bin "$TMP/nokvm.sh" "$VMMRUN" --kernel "$GUEST"
	bad "/dev/kvm is /dev/null (private mount namespace)" nokvm "/dev/kvm" \
		--bin "$TMP/nullkvm.sh" "$VMMRUN" --kernel "$GUEST"
fi

echo "1..$n"
[ "$nfail" -eq 0 ]

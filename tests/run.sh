#!/bin/bash
# The test runner: runs every test program and script, each of which speaks
# TAP ("ok N - name", "not ok N - name", "... # SKIP reason"), and ends with
# one line "N passed, N failed, N skipped". Exit status 1 when anything failed.
#
# Environment: BUILD (default build), TESTS_ONLY_UNIT=1 for unit tests only,
# TESTS_FILTER=regex to run only matching test programs.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export BUILD
LOGDIR=$BUILD/test-logs
mkdir -p "$LOGDIR"
export CMOCKA_MESSAGE_OUTPUT=TAP
# Unit tests that load the real Debian kernel find it here (they skip
# without it).
if [ -z "${VMM_TEST_KERNEL:-}" ] && [ -f "$BUILD/guest/vmlinuz" ]; then
	export VMM_TEST_KERNEL=$PWD/$BUILD/guest/vmlinuz
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

passed=0 failed=0 skipped=0
failures=()

# run_one NAME TIMEOUT CMD...: run a test program, echo its TAP results,
# count them. A program that dies without reporting a failure counts as one.
run_one() {
	local name=$1 tmo=$2; shift 2
	local log="$LOGDIR/$(echo "$name" | tr '/ ' '__').log"
	if [ -n "${TESTS_FILTER:-}" ] && ! [[ $name =~ $TESTS_FILTER ]]; then
		return
	fi
	echo "# --- $name"
	timeout --kill-after=10 "$tmo" "$@" >"$log" 2>&1
	local rc=$?
	local p=0 f=0 s=0 line
	while IFS= read -r line; do
		case "$line" in
		"ok "*"# SKIP"*|"not ok "*"# SKIP"*|"ok "*"# skip"*)
			s=$((s + 1)); echo "  $line" ;;
		"ok "*) p=$((p + 1)); echo "  $line" ;;
		"not ok "*) f=$((f + 1)); echo "  $line"; failures+=("$name: ${line#not ok }") ;;
		esac
	done <"$log"
	if [ $rc -ne 0 ] && [ $f -eq 0 ]; then
		f=1
		if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
			failures+=("$name: timed out after $tmo s")
			echo "  not ok - $name timed out after $tmo s"
		else
			failures+=("$name: exited $rc without reporting a failure")
			echo "  not ok - $name exited $rc"
		fi
	fi
	if [ $f -gt 0 ]; then
		echo "  (log: $log)"
		tail -n 30 "$log" | sed 's/^/  | /'
	fi
	passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
}

# A full Debian boot takes many minutes on a host without hardware
# virtualization: it starts first, in the background, and is checked last.
bg_pids=()
if [ -z "${TESTS_ONLY_UNIT:-}" ]; then
	for t in tests/integration/bg_*.sh; do
		[ -x "$t" ] || continue
		name=$(basename "$t" .sh)
		if [ -n "${TESTS_FILTER:-}" ] && ! [[ integration/$name =~ $TESTS_FILTER ]]; then
			continue
		fi
		"$t" start >"$LOGDIR/$name.start.log" 2>&1 &
		bg_pids+=($!)
	done
fi

for t in "$BUILD"/tests/unit/test_*; do
	[ -x "$t" ] && run_one "unit/$(basename "$t")" 300 "$t"
done
for t in "$BUILD"/asan/tests/unit/test_*; do
	[ -x "$t" ] && run_one "unit-asan/$(basename "$t")" 600 "$t"
done

if [ -z "${TESTS_ONLY_UNIT:-}" ]; then
	for t in "$BUILD"/tests/integration/*; do
		[ -x "$t" ] && [ -f "$t" ] && run_one "integration/$(basename "$t")" 600 "$t"
	done
	for t in "$BUILD"/asan/tests/integration/*; do
		[ -x "$t" ] && [ -f "$t" ] && run_one "integration-asan/$(basename "$t")" 600 "$t"
	done
	for t in tests/integration/test_*.sh; do
		[ -x "$t" ] && run_one "integration/$(basename "$t" .sh)" 900 "$t"
	done
	for t in tests/integration/bg_*.sh; do
		[ -x "$t" ] || continue
		run_one "integration/$(basename "$t" .sh)" 3600 "$t" check
	done
	for pid in "${bg_pids[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
fi

if [ ${#failures[@]} -gt 0 ]; then
	echo "# failures:"
	for f in "${failures[@]}"; do echo "#   $f"; done
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]

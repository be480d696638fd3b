# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# TAP for the integration tests written in shell: source this file, report
# with ok / skip / not_ok, and end with finish (the plan, then the exit
# status). A test that wants more lines under each failure (a daemon's
# log, say) defines not_ok_extra.
n=0 nfail=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
skip() { n=$((n + 1)); echo "ok $n # SKIP $1"; }
# not_ok DESC [DETAIL...]: a failure, with details as TAP comments.
not_ok() {
	local d=$1 l
	shift
	n=$((n + 1)); nfail=$((nfail + 1))
	echo "not ok $n - $d"
	for l in "$@"; do echo "#   $l"; done
	if declare -F not_ok_extra >/dev/null; then
		not_ok_extra
	fi
}
finish() {
	echo "1..$n"
	[ "$nfail" -eq 0 ]
	exit $?
}

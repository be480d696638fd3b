#!/bin/bash
# SPDX-License-Identifier: MIT
#
# A short, bounded libFuzzer pass over every harness in tests/fuzz/ (under
# ASan and UBSan), as part of make test. Builds with clang; skips, saying
# why, when clang or its libFuzzer runtime is missing (apt-get install
# clang; on some releases also libclang-rt-<version>-dev). Prints TAP.
#
# Environment: BUILD (default build), FUZZ_RUNS (default 20000 per harness),
# FUZZ_CC (default clang).
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
FUZZ_RUNS=${FUZZ_RUNS:-20000}
FUZZ_CC=${FUZZ_CC:-clang}
OUT=$BUILD/fuzz
FLAGS="-std=gnu17 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
	-I. -Ivmm-core"

# What each harness links besides itself (keep in step with fuzz.mk).
srcs_for() {
	case "$1" in
	virtq) echo "vmm-core/virtio/virtq.c vmm-core/mem.c" ;;
	blk) echo "vmm-core/virtio/blk.c vmm-core/virtio/virtio.c" \
		"vmm-core/virtio/virtq.c vmm-core/mem.c vmm-core/log.c" \
		"vmm-core/ratelimit.c" \
		"$(pkg-config --variable=libdir liburing 2>/dev/null ||
			echo /usr/lib/x86_64-linux-gnu)/liburing.a" ;;
	proto_frame) echo "proto/frame.c proto/jsonrpc.c proto/errors.c" \
		"proto/util.c" ;;
	proto_vmdef) echo "proto/vmdef.c proto/size.c proto/cpulist.c" \
		"proto/util.c" ;;
	emulate) echo "vmm-core/x86/emulate.c" ;;
	*) echo "" ;;
	esac
}

# Libraries, after the sources on the link line.
libs_for() {
	case "$1" in
	proto_frame) echo "-ljansson -levent" ;;
	proto_vmdef) echo "-ljansson" ;;
	*) echo "" ;;
	esac
}

# Seed corpora, read but never written (the golden inputs).
seeds_for() {
	case "$1" in
	proto_frame) echo "tests/unit/golden/jsonrpc" ;;
	proto_vmdef) echo "tests/unit/golden/vmdef" ;;
	emulate) echo "tests/fuzz/seeds/emulate" ;;
	*) echo "" ;;
	esac
}

harnesses=()
for f in tests/fuzz/fuzz_*.c; do
	[ -f "$f" ] && harnesses+=("$(basename "$f" .c)")
done
n=0 nfail=0
echo "1..${#harnesses[@]}"
skip_all() {
	local h
	for h in "${harnesses[@]}"; do
		n=$((n + 1))
		echo "ok $n # SKIP $h: $1"
	done
	exit 0
}

command -v "$FUZZ_CC" >/dev/null 2>&1 ||
	skip_all "no $FUZZ_CC (apt-get install clang)"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/test_fuzz.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
printf '#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' >"$TMP/probe.c"
# shellcheck disable=SC2086
$FUZZ_CC -fsanitize=fuzzer,address,undefined "$TMP/probe.c" -o "$TMP/probe" \
	>"$TMP/probe.log" 2>&1 ||
	skip_all "$FUZZ_CC cannot link libFuzzer ($(head -n1 "$TMP/probe.log")); install libclang-rt-dev for your clang"

mkdir -p "$OUT"
for h in "${harnesses[@]}"; do
	n=$((n + 1))
	name=${h#fuzz_}
	bin=$OUT/$h
	# shellcheck disable=SC2086,SC2046
	if ! $FUZZ_CC $FLAGS "tests/fuzz/$h.c" $(srcs_for "$name") -o "$bin" \
		$(libs_for "$name") >"$TMP/$h.build.log" 2>&1; then
		nfail=$((nfail + 1))
		echo "not ok $n - $h builds"
		sed 's/^/# /' "$TMP/$h.build.log" | tail -n 20
		continue
	fi
	mkdir -p "$TMP/$h.corpus"
	# shellcheck disable=SC2046
	if "$bin" -runs="$FUZZ_RUNS" -seed=1 -artifact_prefix="$TMP/" \
		"$TMP/$h.corpus" $(seeds_for "$name") >"$TMP/$h.log" 2>&1; then
		echo "ok $n - $h: $FUZZ_RUNS runs, no crash"
	else
		nfail=$((nfail + 1))
		echo "not ok $n - $h crashed within $FUZZ_RUNS runs"
		grep -m1 -A15 -E 'ERROR|runtime error|deadly signal' "$TMP/$h.log" |
			sed 's/^/# /'
		for a in "$TMP"/crash-* "$TMP"/leak-* "$TMP"/timeout-*; do
			[ -f "$a" ] || continue
			mkdir -p "$OUT/artifacts"
			cp "$a" "$OUT/artifacts/$h-$(basename "$a")"
			echo "# reproducer: $OUT/artifacts/$h-$(basename "$a")"
		done
	fi
done
[ "$nfail" -eq 0 ]

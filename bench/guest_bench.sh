#!/bin/busybox sh
# shellcheck shell=dash disable=SC3043 # busybox ash has local
# SPDX-License-Identifier: MIT
#
# The in-guest benchmarks of bench/README.md (sections 5 and 6), in one
# place: what the guest runs, and how the host reads what it printed.
#
# In the bench image (scripts/mkguest-bench.sh) this file is /bin/vmmd-bench
# and runs under busybox sh, started through the kernel command line
# (tests/guest/init's vmmd.run=):
#
#   vmmd-bench fio DEV SECONDS [RAMP [ENGINE]]
#	the two fio jobs of blk_bench's read patterns on DEV, O_DIRECT, one
#	after the other, each time-based for SECONDS after RAMP seconds
#	[2] of warm-up: 4 KiB random reads at QD32 ("randread") and 1 MiB
#	sequential reads at QD4 ("seqread"). ENGINE [auto] is io_uring,
#	libaio, or auto: io_uring when a 4 KiB probe read with it works,
#	else libaio.
#   vmmd-bench iperf3 SERVER SECONDS [ADDR/PREFIX [IFACE [PORT]]]
#	with ADDR, first sets up IFACE [auto: the first interface in
#	/sys/class/net with a device (a NIC), else the first that is not
#	lo] with that static address; then
#	iperf3 -c SERVER -p PORT [5201] -t SECONDS, guest -> host.
#
# Each job prints one marker line on the console (on a line of its own;
# fio's and iperf3's own output only when they fail):
#
#   VMMD-BENCH fio JOB engine=E err=N iops=X bw_kib=X runtime_ms=N io_kib=N
#   VMMD-BENCH fio JOB FAILED engine=E rc=N
#   VMMD-BENCH net iface=NAME addr=ADDR/PREFIX
#   VMMD-BENCH net FAILED why=WORD
#   VMMD-BENCH iperf3 gbps=X mbps=X sender_mbps=X retr=N seconds=N
#   VMMD-BENCH iperf3 FAILED rc=N
#
# iops and bw_kib (KiB/s) are fio's terse (version 3) read fields; mbps is
# Mbit/s (10^6 bits) of iperf3's receiver summary, gbps the same / 1000.
#
# Sourced (by bench/run.sh, and by tests/integration/test_bench_guest.sh,
# from bash) it only defines the functions: gb_* run in the guest,
# gbh_* read a console log on the host. Both halves are POSIX sh, so they
# run under busybox sh and bash alike.

# --- guest side -------------------------------------------------------------

gb_say() {
	echo "VMMD-BENCH $*"
}

# gb_fio_args JOB DEV SECONDS RAMP ENGINE: the fio arguments of one job,
# one a line (the job is defined here and nowhere else).
gb_fio_args() {
	local job=$1 dev=$2 secs=$3 ramp=$4 engine=$5
	echo "--name=$job"
	echo "--filename=$dev"
	echo "--direct=1"
	echo "--ioengine=$engine"
	echo "--time_based=1"
	echo "--runtime=$secs"
	echo "--ramp_time=$ramp"
	echo "--numjobs=1"
	echo "--group_reporting=1"
	echo "--norandommap=1"
	echo "--randrepeat=0"
	echo "--output-format=terse"
	echo "--terse-version=3"
	case $job in
	randread)
		echo "--rw=randread"
		echo "--bs=4k"
		echo "--iodepth=32"
		;;
	seqread)
		echo "--rw=read"
		echo "--bs=1M"
		echo "--iodepth=4"
		;;
	esac
}

# gb_fio_run JOB DEV SECONDS RAMP ENGINE OUT: runs the job, fio's terse
# output in OUT, its messages in OUT.err.
gb_fio_run() {
	local job=$1 dev=$2 secs=$3 ramp=$4 engine=$5 out=$6 a
	set --
	# One argument a line: no word of the job has a space in it.
	for a in $(gb_fio_args "$job" "$dev" "$secs" "$ramp" "$engine"); do
		set -- "$@" "$a"
	done
	fio "$@" --output="$out" 2>"$out.err" </dev/null
}

# gb_fio_engine DEV: io_uring if a one-block O_DIRECT read with it works
# (the guest kernel has io_uring), else libaio.
gb_fio_engine() {
	if fio --name=probe --filename="$1" --direct=1 --ioengine=io_uring \
		--rw=read --bs=4k --size=4k --output=/dev/null \
		>/dev/null 2>&1 </dev/null; then
		echo io_uring
	else
		echo libaio
	fi
}

# gb_fio_marker JOB ENGINE TERSEFILE: the marker line from fio's terse v3
# output (fields: version;fio;name;group;error;read KiB;read KiB/s;read
# IOPS;read ms;...), or 1 when there is no such line.
gb_fio_marker() {
	local job=$1 engine=$2 line err kib bw iops ms _v _f _n _g _rest
	while IFS= read -r line; do
		case $line in
		"3;fio-"*";$job;"*) ;;
		*) continue ;;
		esac
		IFS=';' read -r _v _f _n _g err kib bw iops ms _rest <<EOF
$line
EOF
		gb_say "fio $job engine=$engine err=$err iops=$iops bw_kib=$bw" \
			"runtime_ms=$ms io_kib=$kib"
		return 0
	done <"$3"
	return 1
}

# gb_fio DEV SECONDS [RAMP [ENGINE]]: both jobs, a marker each; 1 when
# one failed.
gb_fio() {
	local dev=$1 secs=$2 ramp=${3:-2} engine=${4:-auto} job rc st=0
	local out=${TMPDIR:-/tmp}/vmmd-bench-fio
	[ "$engine" = auto ] && engine=$(gb_fio_engine "$dev")
	for job in randread seqread; do
		gb_fio_run "$job" "$dev" "$secs" "$ramp" "$engine" "$out.$job"
		rc=$?
		if [ "$rc" -ne 0 ] ||
			! gb_fio_marker "$job" "$engine" "$out.$job"; then
			[ "$rc" -ne 0 ] || rc=no-terse-line
			cat "$out.$job.err" "$out.$job" 2>/dev/null
			gb_say "fio $job FAILED engine=$engine rc=$rc"
			st=1
		fi
		rm -f "$out.$job" "$out.$job.err"
	done
	return $st
}

# gb_net_up ADDR/PREFIX [IFACE]: a static address on IFACE (auto: a NIC,
# else the first interface that is not lo), up, its link waited for (5 s
# at most).
gb_net_up() {
	local addr=$1 dev=${2:-auto} d state='' i=0
	if [ "$dev" = auto ]; then
		dev=
		# A NIC (it has a device: virtio_net's eth0) before any
		# virtual interface.
		for d in /sys/class/net/*/device /sys/class/net/*; do
			d=${d#/sys/class/net/}
			d=${d%/device}
			[ "$d" = lo ] || [ "$d" = '*' ] && continue
			dev=$d
			break
		done
		if [ -z "$dev" ]; then
			gb_say "net FAILED why=no-interface"
			return 1
		fi
	fi
	ip link set lo up 2>/dev/null
	if ! ip addr add "$addr" dev "$dev" || ! ip link set "$dev" up; then
		gb_say "net FAILED why=ip-$dev"
		return 1
	fi
	# "up" with a carrier; a TAP's peer, or a dummy, can say "unknown".
	while [ $i -lt 50 ]; do
		read -r state <"/sys/class/net/$dev/operstate" 2>/dev/null
		case $state in up|unknown) break ;; esac
		sleep 0.1
		i=$((i + 1))
	done
	gb_say "net iface=$dev addr=$addr state=${state:-?}"
}

# gb_iperf3_marker SECONDS OUTFILE: the marker from iperf3 -f m's summary
# ("... 1.10 GBytes  9412 Mbits/sec  0  sender", "... receiver"), or 1.
gb_iperf3_marker() {
	local secs=$1 line w prev rx='' tx='' retr=0 next rate=''
	while IFS= read -r line; do
		case $line in
		*" sender"|*" receiver") ;;
		*) continue ;;
		esac
		prev='' next=''
		for w in $line; do
			if [ "$w" = Mbits/sec ]; then
				next=rate
				rate=$prev
			elif [ "$next" = rate ] && [ "$w" != sender ] &&
				[ "$w" != receiver ]; then
				retr=$w
				next=
			fi
			prev=$w
		done
		case $line in
		*" sender") tx=$rate ;;
		*) rx=$rate ;;
		esac
	done <"$2"
	[ -n "$rx" ] || return 1
	gb_say "iperf3 gbps=$(awk -v m="$rx" 'BEGIN { printf "%.3f", m / 1000 }')" \
		"mbps=$rx sender_mbps=${tx:-0} retr=$retr seconds=$secs"
}

# gb_iperf3 SERVER SECONDS [ADDR/PREFIX [IFACE [PORT]]]
gb_iperf3() {
	local server=$1 secs=$2 addr=${3:-} dev=${4:-auto} port=${5:-5201}
	local out=${TMPDIR:-/tmp}/vmmd-bench-iperf3 rc try=0
	if [ -n "$addr" ]; then
		gb_net_up "$addr" "$dev" || return 1
	fi
	# The server listens before the VM starts; a refused connection
	# means the link was not ready yet: try again, a few times.
	while :; do
		iperf3 -c "$server" -p "$port" -t "$secs" -f m \
			--connect-timeout 5000 >"$out" 2>&1 </dev/null
		rc=$?
		[ "$rc" -eq 0 ] && break
		try=$((try + 1))
		[ $try -lt 5 ] || break
		sleep 1
	done
	if [ "$rc" -ne 0 ] || ! gb_iperf3_marker "$secs" "$out"; then
		cat "$out"
		gb_say "iperf3 FAILED rc=$rc"
		rm -f "$out"
		return 1
	fi
	rm -f "$out"
}

gb_main() {
	local what=${1:-}
	[ $# -gt 0 ] && shift
	case $what in
	fio)
		[ $# -ge 2 ] || { echo "usage: vmmd-bench fio DEV SECONDS [RAMP [ENGINE]]" >&2; return 2; }
		gb_fio "$@"
		;;
	iperf3)
		[ $# -ge 2 ] || { echo "usage: vmmd-bench iperf3 SERVER SECONDS [ADDR/PREFIX [IFACE [PORT]]]" >&2; return 2; }
		gb_iperf3 "$@"
		;;
	*)
		echo "usage: vmmd-bench fio|iperf3 ..." >&2
		return 2
		;;
	esac
}

# --- host side --------------------------------------------------------------

# gbh_encode TEXT: TEXT for tests/guest/init's vmmd.run= ("+" a space,
# %XX a byte).
gbh_encode() {
	printf '%s' "$1" | sed 's/%/%25/g; s/+/%2B/g; s/;/%3B/g; s/ /+/g'
}

# gbh_fio_cmd SECONDS RAMP: the guest command for the fio jobs on the
# first virtio disk.
gbh_fio_cmd() {
	echo "vmmd-bench fio /dev/vda $1 $2"
}

# gbh_iperf3_cmd SERVER SECONDS ADDR/PREFIX PORT: the guest command for
# iperf3 through the first NIC.
gbh_iperf3_cmd() {
	echo "vmmd-bench iperf3 $1 $2 $3 auto $4"
}

# gbh_marker LOG WHAT...: the fields after "VMMD-BENCH WHAT..." of the last
# such line in the console log LOG (carriage returns dropped; anything
# before the marker on its line ignored); 1 when there is none.
gbh_marker() {
	local log=$1 pat
	shift
	pat="VMMD-BENCH $* "
	tr -d '\r' <"$log" 2>/dev/null | awk -v p="$pat" '
		{ i = index($0, p); if (i) last = substr($0, i + length(p)) }
		END { if (last == "") exit 1; print last }'
}

# gbh_field KEY FIELDS: the value of KEY=... in FIELDS.
gbh_field() {
	local w
	for w in $2; do
		case $w in "$1="*) echo "${w#*=}"; return 0 ;; esac
	done
	return 1
}

# gbh_positive VALUE: whether VALUE is a number above zero.
gbh_positive() {
	awk -v v="$1" 'BEGIN { exit !(v ~ /^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/ && v + 0 > 0) }'
}

# gbh_fio LOG JOB: "iops=X mbps=X engine=E" (mbps: MB/s, 10^6 bytes) from
# the job's marker in LOG; else 1, with why on stdout.
gbh_fio() {
	local m iops bw err
	if ! m=$(gbh_marker "$1" fio "$2"); then
		echo "no \"VMMD-BENCH fio $2\" line"
		return 1
	fi
	case $m in
	FAILED*) echo "fio $2 failed in the guest: $m"; return 1 ;;
	esac
	iops=$(gbh_field iops "$m") bw=$(gbh_field bw_kib "$m")
	err=$(gbh_field err "$m")
	if [ "$err" != 0 ] || ! gbh_positive "$iops" ||
		! gbh_positive "$bw"; then
		echo "fio $2: bad result: $m"
		return 1
	fi
	echo "iops=$iops mbps=$(awk -v b="$bw" 'BEGIN { printf "%.1f", b * 1024 / 1e6 }')" \
		"engine=$(gbh_field engine "$m")"
}

# gbh_iperf3 LOG: the Gbit/s of the iperf3 marker in LOG; else 1, with
# why on stdout.
gbh_iperf3() {
	local m g
	if ! m=$(gbh_marker "$1" iperf3); then
		if m=$(gbh_marker "$1" net) && [ "${m#FAILED}" != "$m" ]; then
			echo "guest network set-up failed: $m"
		else
			echo "no \"VMMD-BENCH iperf3\" line"
		fi
		return 1
	fi
	case $m in
	FAILED*) echo "iperf3 failed in the guest: $m"; return 1 ;;
	esac
	g=$(gbh_field gbps "$m")
	if ! gbh_positive "$g"; then
		echo "iperf3: bad result: $m"
		return 1
	fi
	echo "$g"
}

# gbh_tail LOG [N]: the last N [3] non-empty lines of a console log on one
# line, terminal escapes dropped, for an error message; "(nothing)" when
# there are none.
gbh_tail() {
	local t
	t=$(tr -d '\r' <"$1" 2>/dev/null |
		LC_ALL=C sed 's/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1b.//g' |
		LC_ALL=C tr -cd '[:print:]\t\n' | grep -v '^[[:space:]]*$' |
		tail -n "${2:-3}" | tr '\n' '|' | sed 's/|$//; s/|/ | /g' |
		cut -c 1-400)
	echo "${t:-(nothing)}"
}

case ${0##*/} in
vmmd-bench|guest_bench.sh) gb_main "$@" ;;
esac

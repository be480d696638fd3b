#!/bin/sh
# Builds the benchmark guest image: OUTDIR/initrd-bench.img is the reference
# guest's OUTDIR/initrd.img (scripts/mkguest.sh, brought up to date first
# and left as it is) followed by a second uncompressed newc archive with
# fio and iperf3 from Debian's packages, exactly the shared libraries they
# load (their DT_NEEDED, recursively, as the dynamic loader finds them),
# the dynamic loader itself, and bench/guest_bench.sh as /bin/vmmd-bench.
# The kernel unpacks both archives. See tests/guest/README.md.
#
# Usage: scripts/mkguest-bench.sh OUTDIR
# Writes OUTDIR/initrd-bench.img and OUTDIR/manifest-bench.
#
# The packages come like the rest of the guest: apt-get download into
# downloads/ (VMMD_DOWNLOADS), dpkg -x. fio, iperf3 and libiperf0 are
# named; a library is looked for in the packages these depend on (their
# Depends), and in the Depends of each package that gave a library, round
# after round until every DT_NEEDED is found. So only the dependencies of
# packages that give something are fetched, never the whole closure (fio's
# is over 100 packages). The host's own installed packages play no part:
# the image is the same whatever the host has installed.
#
# Rebuilt only when its inputs change: initrd.img, this script,
# bench/guest_bench.sh and the versions apt offers of the packages the
# last build took files from (their hash is in OUTDIR/.stamp-bench).
# Runs as root on a fresh Debian 12 (missing host packages are installed);
# as another user it can only check and reuse.
set -eu

prog=mkguest-bench
EPOCH=${SOURCE_DATE_EPOCH:-0}
# Host packages used here: cpio, dpkg-deb, apt-get/apt-cache, readelf.
HOST_PKGS="cpio dpkg apt binutils"
ROOTS="fio iperf3 libiperf0"
BINARIES="/usr/bin/fio /usr/bin/iperf3"
# Where Debian's dynamic loader looks when the object names no RUNPATH
# there and there is no ld.so.cache (the initramfs has none).
SYSTEM_DIRS="/lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu /lib /usr/lib"
# Busybox applets /bin/vmmd-bench uses beyond the links of initrd.img.
APPLETS="awk ip sed tr cut tail sort"

# die, note, is_root, ensure_host_packages, refresh_lists, apt_cache,
# candidate, cached_deb, apt_download, debpkg_cache (shared with mkguest.sh).
# shellcheck source=lib/debpkg.sh
. "$(dirname "$0")/lib/debpkg.sh"

# fetch PKG: the candidate version's .deb into the cache (unless there),
# other cached versions of it dropped; its path in $deb.
fetch() {
	local pkg=$1 ver f
	ver=$(candidate "$pkg")
	if [ -z "$ver" ]; then
		refresh_lists
		ver=$(candidate "$pkg")
		[ -n "$ver" ] || die "package $pkg not found (no candidate in the apt lists)"
	fi
	if ! deb=$(cached_deb "$pkg" "$ver"); then
		if ! apt_download "$pkg" "$ver"; then
			# Lists naming a version the archive no longer has.
			refresh_lists
			ver=$(candidate "$pkg")
			apt_download "$pkg" "$ver" || {
				apt_log_tail
				die "apt-get download $pkg=$ver failed"
			}
		fi
		deb=$(cached_deb "$pkg" "$ver") ||
			die "apt-get download left no ${pkg}_*.deb of $ver in $dl"
	fi
	for f in "$dl/${pkg}"_*.deb; do
		[ -f "$f" ] && [ "$f" != "$deb" ] && rm -f "$f"
	done
	echo "$pkg $ver" >>"$work/versions"
}

# unpack PKG: fetched, unpacked into the merged tree $sys, its paths noted
# as "PATH PKG" in $work/owners, its Depends in $work/deps/PKG.
unpack() {
	local pkg=$1 deb
	fetch "$pkg"
	dpkg -x "$deb" "$sys" || die "dpkg -x $deb failed"
	dpkg-deb -c "$deb" | awk -v p="$pkg" '{
		f = $6
		sub(/^\./, "", f)
		if (f != "/" && f != "") print f, p
	}' >>"$work/owners" || die "dpkg-deb -c $deb failed"
	# Depends and Pre-Depends; of alternatives the first apt knows; no
	# versions or architecture qualifiers.
	dpkg-deb -f "$deb" Pre-Depends Depends | sed 's/^[A-Za-z-]*: //' |
		tr ',' '\n' | sed 's/([^)]*)//g; s/:[a-z0-9]*//g' |
		while IFS= read -r alts; do
			for a in $(echo "$alts" | tr '|' ' '); do
				if [ -n "$(candidate "$a")" ]; then
					echo "$a"
					break
				fi
			done
		done >"$work/deps/$pkg"
	echo "$pkg" >>"$work/unpacked"
}

has_line() {
	grep -qxF "$2" "$1" 2>/dev/null
}

# chain PATH: PATH and each symlink after it in $sys, to the regular file
# it ends at, one a line (paths inside the image); 1 when it ends nowhere.
chain() {
	local p=$1 t n=0
	while [ $n -lt 40 ]; do
		if [ -L "$sys$p" ]; then
			echo "$p"
			t=$(readlink "$sys$p")
			case $t in
			/*) ;;
			*) t=${p%/*}/$t ;;
			esac
			p=$(realpath -ms "$t")
			n=$((n + 1))
		elif [ -f "$sys$p" ]; then
			echo "$p"
			return 0
		else
			return 1
		fi
	done
	return 1
}

# elf_* FILE: what readelf says of FILE (a path on the host).
elf_needed() {
	readelf -dW "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'
}
elf_runpath() {
	readelf -dW "$1" | sed -n 's/.*(R[UN]*PATH).*\[\(.*\)\]$/\1/p' | tr ':' ' '
}
elf_interp() {
	readelf -lW "$1" | sed -n 's/.*Requesting program interpreter: \(.*\)\]$/\1/p'
}

# resolve: from $BINARIES, every object the dynamic loader maps: their
# interpreter and DT_NEEDED, recursively. Writes the paths to copy (each
# symlink and file) to $work/files, one object per line to $work/objects,
# and "SONAME NEEDER" for each library not found to $work/missing.
resolve() {
	local queue obj o so dirs d found i
	: >"$work/files"
	: >"$work/objects"
	: >"$work/missing"
	queue=$BINARIES
	for o in $BINARIES; do
		chain "$o" >>"$work/files" || die "no $o in $ROOTS"
	done
	while [ -n "$queue" ]; do
		set -- $queue
		obj=$1
		shift
		queue=$*
		has_line "$work/objects" "$obj" && continue
		echo "$obj" >>"$work/objects"
		i=$(elf_interp "$sys$obj")
		if [ -n "$i" ]; then
			if chain "$i" >/dev/null; then
				chain "$i" >>"$work/files"
				queue="$queue $(chain "$i" | tail -n 1)"
			else
				echo "$i $obj" >>"$work/missing"
			fi
		fi
		dirs=""
		for d in $(elf_runpath "$sys$obj"); do
			dirs="$dirs $(echo "$d" | sed "s|\\\$ORIGIN|${obj%/*}|; s|\\\${ORIGIN}|${obj%/*}|")"
		done
		for so in $(elf_needed "$sys$obj"); do
			found=""
			for d in $dirs $SYSTEM_DIRS; do
				if chain "$d/$so" >/dev/null; then
					chain "$d/$so" >>"$work/files"
					found=$(chain "$d/$so" | tail -n 1)
					break
				fi
			done
			if [ -n "$found" ]; then
				queue="$queue $found"
			else
				echo "$so $obj" >>"$work/missing"
			fi
		done
	done
	sort -u -o "$work/files" "$work/files"
}

# The packages the files to copy come from, one a line.
owners_of_files() {
	awk 'NR == FNR { want[$1] = 1; next } ($1 in want) { print $2 }' \
		"$work/files" "$work/owners" | sort -u
}

# Builds the overlay from the fetched packages, and the image.
build_image() {
	local round=0 queue p d new missing
	sys=$work/sys
	mkdir -p "$sys" "$work/deps"
	: >"$work/owners"
	: >"$work/unpacked"
	: >"$work/expanded"
	: >"$work/versions"
	queue=$ROOTS
	while :; do
		round=$((round + 1))
		[ $round -le 10 ] || die "libraries still missing after 10 rounds"
		for p in $queue; do
			has_line "$work/unpacked" "$p" || unpack "$p"
		done
		resolve
		[ -s "$work/missing" ] || break
		# The Depends of each package that gave a file, once each.
		new=""
		for p in $(owners_of_files) $ROOTS; do
			has_line "$work/expanded" "$p" && continue
			echo "$p" >>"$work/expanded"
			for d in $(cat "$work/deps/$p"); do
				has_line "$work/unpacked" "$d" || new="$new $d"
			done
		done
		if [ -z "$new" ]; then
			missing=$(awk '{ printf "%s%s (needed by %s)", s, $1, $2; s = ", " }' \
				"$work/missing")
			die "not in any package fio or iperf3 depend on: $missing"
		fi
		queue=$(echo "$new" | tr ' ' '\n' | sort -u | tr '\n' ' ')
		note "round $round: $(cut -d' ' -f1 "$work/missing" | sort -u | wc -l)" \
			"libraries to find; fetching$(echo " $queue" | sed 's/ *$//')"
	done

	stage=$work/stage
	rm -rf "$stage"
	mkdir -p "$stage/bin" "$stage/tmp"
	chmod 1777 "$stage/tmp"
	while read -r p; do
		mkdir -p "$stage${p%/*}"
		if [ -L "$sys$p" ]; then
			ln -s "$(readlink "$sys$p")" "$stage$p"
		else
			cp "$sys$p" "$stage$p"
			chmod "$(stat -c %a "$sys$p")" "$stage$p"
		fi
	done <"$work/files"
	cp "$bench_src" "$stage/bin/vmmd-bench"
	chmod 755 "$stage/bin/vmmd-bench"
	# Links for the applets vmmd-bench runs, unless initrd.img has them.
	cpio -it --quiet <"$out/initrd.img" >"$work/base.list" ||
		die "cannot read $out/initrd.img"
	for p in $APPLETS; do
		has_line "$work/base.list" "bin/$p" || ln -s busybox "$stage/bin/$p"
	done

	# The binaries and their libraries must run from the overlay alone.
	if is_root; then
		chroot "$stage" /usr/bin/fio --version >"$work/fio.version" 2>&1 ||
			die "fio does not run in the image's tree: $(head -c 300 "$work/fio.version")"
		chroot "$stage" /usr/bin/iperf3 --version >"$work/iperf3.version" 2>&1 ||
			die "iperf3 does not run in the image's tree: $(head -c 300 "$work/iperf3.version")"
	fi

	find "$stage" -exec touch -h -d "@$EPOCH" {} +
	(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort |
		cpio --quiet -o -H newc -R 0:0 --reproducible) >"$work/overlay.cpio" ||
		die "cpio failed building the overlay"
	cpio -it --quiet <"$work/overlay.cpio" >"$work/overlay.list" ||
		die "cpio cannot read back the overlay it wrote"
	for p in bin/vmmd-bench usr/bin/fio usr/bin/iperf3; do
		has_line "$work/overlay.list" "$p" || die "the overlay lacks $p"
	done
	base_size=$(wc -c <"$out/initrd.img")
	cat "$out/initrd.img" "$work/overlay.cpio" >"$work/initrd-bench.img"
	mv -f "$work/initrd-bench.img" "$out/initrd-bench.img"

	owners_of_files >"$work/used"
	{
		echo "# vmmd benchmark guest, written by scripts/mkguest-bench.sh"
		echo "bench initrd initrd-bench.img"
		echo "bench base initrd.img $base_size"
		echo "bench overlay_offset $base_size"
		echo "bench overlay_bytes $(wc -c <"$work/overlay.cpio")"
		awk 'NR == FNR { used[$1] = 1; next } ($1 in used) {
			print "bench package", $1, $2 }' "$work/used" "$work/versions" |
			sort -u
		sed 's/^/bench file /' "$work/files"
		echo "bench file /bin/vmmd-bench"
		echo "bench fio $(head -n 1 "$work/fio.version" 2>/dev/null)"
		echo "bench iperf3 $(head -n 1 "$work/iperf3.version" 2>/dev/null)"
	} >"$out/manifest-bench"
	note "wrote $out/initrd-bench.img ($(wc -c <"$out/initrd-bench.img") bytes:" \
		"initrd.img + $(wc -c <"$work/overlay.cpio") bytes of fio, iperf3" \
		"and $(grep -c '\.so' "$work/objects") libraries from" \
		"$(wc -l <"$work/used") packages)"
}

# The hash of the inputs: the base image, the scripts, and the versions
# apt offers now of the packages the last build used (the roots before a
# first build).
input_hash() {
	local p pkgs
	pkgs=""
	if [ -f "$out/manifest-bench" ]; then
		pkgs=$(awk '$1 == "bench" && $2 == "package" { print $3 }' \
			"$out/manifest-bench")
	fi
	{
		echo "$EPOCH $APPLETS $ROOTS $BINARIES $SYSTEM_DIRS"
		for p in $ROOTS $pkgs; do
			echo "$p $(candidate "$p")"
		done
		sha256sum <"$out/initrd.img"
		cat "$self" "$bench_src"
	} | sha256sum | cut -d' ' -f1
}

cleanup() {
	if [ -n "${work:-}" ]; then
		rm -rf "$work"
	fi
}

[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }

top=$(cd "$(dirname "$0")/.." && pwd)
self=$top/scripts/mkguest-bench.sh
bench_src=$top/bench/guest_bench.sh
[ -f "$bench_src" ] || die "no $bench_src"
mkdir -p "$1" || die "cannot create $1"
out=$(cd "$1" && pwd)
debpkg_cache "$top"

ensure_host_packages
# The base image, as make guest builds it (a no-op when up to date).
"$top/scripts/mkguest.sh" "$out" cloud || die "scripts/mkguest.sh failed"
[ -f "$out/initrd.img" ] || die "no $out/initrd.img after scripts/mkguest.sh"

exec 9>"$out/.lock-bench"
flock 9 || die "cannot lock $out/.lock-bench"
hash=$(input_hash)
# The image must also still be the base and the overlay, by size.
want_size=$(awk '$1 == "bench" && $2 == "overlay_bytes" { print $3 }' \
	"$out/manifest-bench" 2>/dev/null || true)
want_size=$(( $(wc -c <"$out/initrd.img") + ${want_size:-0} ))
if [ -f "$out/initrd-bench.img" ] && [ -f "$out/manifest-bench" ] &&
	[ "$(cat "$out/.stamp-bench" 2>/dev/null)" = "$hash" ] &&
	[ "$(wc -c <"$out/initrd-bench.img")" -eq "$want_size" ]; then
	note "bench guest is up to date ($out/initrd-bench.img)"
	exit 0
fi
rm -f "$out/.stamp-bench"
work=$out/.work-bench
rm -rf "$work"
mkdir -p "$work"
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

build_image
# The hash again: the packages used may differ from the last build's.
echo "$(input_hash)" >"$out/.stamp-bench"

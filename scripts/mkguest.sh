#!/bin/sh
# Builds the reference guest from Debian's own packages: the kernel's bzImage
# and an uncompressed initramfs holding busybox, tests/guest/init and the
# virtio (and ext4) modules. See tests/guest/README.md.
#
# Usage: scripts/mkguest.sh OUTDIR [cloud|generic|all]
#   cloud (default)  OUTDIR/vmlinuz, OUTDIR/initrd.img from linux-image-cloud-amd64
#   generic          OUTDIR/vmlinuz-generic, OUTDIR/initrd-generic.img from
#                    linux-image-amd64
#   all              both pairs
# OUTDIR/manifest lists the packages and versions each pair was built from.
#
# Environment: VMMD_DOWNLOADS, the .deb cache (default downloads/ at the top
# of the repository).
#
# A pair is rebuilt only when its inputs change: the versions apt offers now,
# tests/guest/init and this script (a hash of them is kept in
# OUTDIR/.stamp-FLAVOUR). Runs as root on a fresh Debian 12: missing host
# packages are installed; as another user it can only check and reuse.
set -eu

prog=mkguest
# Fixed in the image so that two builds from the same inputs are identical.
EPOCH=${SOURCE_DATE_EPOCH:-0}
# Host packages used here: cpio, dpkg-deb, apt-get/apt-cache, depmod.
HOST_PKGS="cpio dpkg apt kmod"
# Modules wanted in the image, by name ('-' and '_' are the same); their
# dependencies come from modules.dep. A module built into the kernel is
# fine; one that is neither built in nor a module is an error.
# crc32c_generic is a soft dependency of jbd2 and ext4 ("pre:
# crypto-crc32c": they ask the crypto API for crc32c, and there is no
# modprobe to load it then), so it is named, before them: the modules load in
# this order, each after its modules.dep dependencies.
MODULES="virtio virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev
	virtio_pci virtio_blk failover net_failover virtio_net virtio_console
	rng-core virtio-rng virtio_balloon vsock vmw_vsock_virtio_transport_common
	vmw_vsock_virtio_transport
	crc16 crc32c_generic mbcache jbd2 ext4"
# Busybox applets linked in /bin: what /init runs, plus a few for the shell.
# (Debian's busybox-static also runs applets without the links.)
APPLETS="sh mount umount mknod mdev insmod lsmod rmmod modprobe poweroff
	reboot sync sleep setsid cttyhack cat echo ls mkdir rm dmesg uname
	grep ps free df"

# die, note, is_root, ensure_host_packages, refresh_lists, apt_cache,
# candidate, cached_deb, apt_download, debpkg_cache (shared with mkguest-bench.sh).
# shellcheck source=lib/debpkg.sh
. "$(dirname "$0")/lib/debpkg.sh"

usage() {
	echo "usage: $0 OUTDIR [cloud|generic|all]" >&2
	exit 2
}

# Sets meta, meta_ver, kpkg, kpkg_ver, bb_ver for the flavour, or returns 1
# (with why) when apt does not know a package.
resolve() {
	case $flavour in
	cloud) meta=linux-image-cloud-amd64 ;;
	generic) meta=linux-image-amd64 ;;
	esac
	meta_ver=$(candidate "$meta")
	if [ -z "$meta_ver" ]; then
		why="package $meta not found (no candidate in the apt lists)"
		return 1
	fi
	# The metapackage depends on exactly one linux-image-<abi>-<flavour>
	# (= same version); showpkg reads only apt's binary cache, unlike
	# show or depends.
	kpkg=$(apt_cache showpkg "$meta" |
		sed -n '/^Dependencies:/,/^Provides:/p' |
		awk -v v="$meta_ver" '$1 == v && $2 == "-" {
			for (i = 3; i <= NF; i++)
				if ($i ~ /^linux-image-/) {
					print $i
					exit
				}
		}')
	if [ -z "$kpkg" ]; then
		why="cannot resolve $meta $meta_ver to a linux-image package"
		return 1
	fi
	kpkg_ver=$(candidate "$kpkg")
	if [ -z "$kpkg_ver" ]; then
		why="package $kpkg (from $meta $meta_ver) not found"
		return 1
	fi
	bb_ver=$(candidate busybox-static)
	if [ -z "$bb_ver" ]; then
		why="package busybox-static not found"
		return 1
	fi
	return 0
}

# The hash of everything the flavour's files are made from.
input_hash() {
	{
		echo "$flavour $meta $meta_ver $kpkg $kpkg_ver busybox-static $bb_ver"
		echo "$MODULES $APPLETS $EPOCH"
		cat "$init_src" "$self"
	} | sha256sum | cut -d' ' -f1
}

# Downloads package $1 version $2 into the cache unless it is there; then
# drops the cached other versions of it, and the other packages matching
# the glob $3 (older kernel ABIs). Returns 1 when apt-get download fails.
fetch() {
	local pkg=$1 ver=$2 family=${3:-$1} f keep
	failed="$pkg $ver"
	if ! cached_deb "$pkg" "$ver" >/dev/null; then
		fetch_deb "$pkg" "$ver" || return 1
	fi
	keep=$(cached_deb "$pkg" "$ver")
	# shellcheck disable=SC2086,SC2231 # $family is a glob
	for f in "$dl"/${family}_*.deb; do
		if [ ! -f "$f" ] || [ "$f" = "$keep" ]; then
			continue
		fi
		# The generic family glob also matches the cloud kernels.
		case $pkg:${f##*/} in
		*-cloud-amd64:*) ;;
		*:*-cloud-amd64_*) continue ;;
		esac
		rm -f "$f"
	done
}

fetch_deb() {
	local pkg=$1 ver=$2
	apt_download "$pkg" "$ver" || {
		apt_log_tail
		return 1
	}
	cached_deb "$pkg" "$ver" >/dev/null || {
		echo "  apt-get download left no ${pkg}_*.deb of $ver in $dl" >&2
		return 1
	}
}

fetch_all() {
	local family
	case $flavour in
	cloud) family="linux-image-[0-9]*-cloud-amd64" ;;
	generic) family="linux-image-[0-9]*-amd64" ;;
	esac
	fetch "$kpkg" "$kpkg_ver" "$family" && fetch busybox-static "$bb_ver"
}

# Prints the .ko paths (relative to the modules directory) of $MODULES and
# their dependencies, dependencies first, as "load PATH"; "builtin NAME" for
# the ones built into the kernel, "missing NAME" for the ones it lacks.
module_order() {
	local mdir=$1
	awk -v want="$MODULES" -v builtin="$mdir/modules.builtin" '
	function norm(s) {
		gsub(/-/, "_", s)
		return s
	}
	function modname(p,   n) {
		n = p
		sub(/.*\//, "", n)
		sub(/\.ko(\.(xz|gz|zst))?$/, "", n)
		return norm(n)
	}
	# Depth first, dependencies before the module that needs them; the
	# order of modules.dep (last dependency loads first) is kept where
	# it is free.
	function visit(p,   d, k, i) {
		if (p in done)
			return
		done[p] = 1
		k = split(deps[p], d, " ")
		for (i = k; i >= 1; i--)
			visit(d[i])
		print "load " p
	}
	FILENAME == builtin {
		inkernel[modname($1)] = 1
		next
	}
	{
		p = $1
		sub(/:$/, "", p)
		path[modname(p)] = p
		deps[p] = ""
		for (i = 2; i <= NF; i++)
			deps[p] = deps[p] " " $i
	}
	END {
		n = split(want, w, /[ \t\n]+/)
		for (i = 1; i <= n; i++) {
			if (w[i] == "")
				continue
			m = norm(w[i])
			if (m in path)
				visit(path[m])
			else if (m in inkernel)
				print "builtin " m
			else
				print "missing " m
		}
	}' "$mdir/modules.builtin" "$mdir/modules.dep"
}

# Copies module $2 (a path relative to modules directory $1) into the stage
# as a plain .ko, uncompressing it if Debian ever compresses them: the guest
# kernel must not spend emulated time on that. Prints the path in the image.
copy_module() {
	local mdir=$1 rel=$2 base dst
	base=${rel%.xz}
	base=${base%.gz}
	base=${base%.zst}
	dst=/lib/modules/$krel/$base
	mkdir -p "$stage${dst%/*}"
	case $rel in
	*.ko) cp "$mdir/$rel" "$stage$dst" ;;
	*.ko.xz) xz -dc "$mdir/$rel" >"$stage$dst" ;;
	*.ko.gz) gzip -dc "$mdir/$rel" >"$stage$dst" ;;
	*.ko.zst) zstd -qdc "$mdir/$rel" >"$stage$dst" ;;
	*) die "$kpkg: unexpected module file $rel" ;;
	esac || die "cannot copy or uncompress module $rel of $kpkg"
	[ "$(head -c 4 "$stage$dst" | od -An -c | tr -d ' ')" = '177ELF' ] ||
		die "module $rel of $kpkg is not an ELF file after copying"
	echo "$dst"
}

# Builds the flavour's kernel and initramfs (inputs resolved and fetched).
build_flavour() {
	local kdeb bbdeb mdir d line kind what order_list builtins="" n
	local kimg initrd
	kdeb=$(cached_deb "$kpkg" "$kpkg_ver")
	bbdeb=$(cached_deb busybox-static "$bb_ver")
	rm -rf "$work/kernel" "$work/busybox" "$work/stage"
	note "$flavour: unpacking $kpkg $kpkg_ver"
	dpkg -x "$kdeb" "$work/kernel" || die "dpkg -x $kdeb failed"
	dpkg -x "$bbdeb" "$work/busybox" || die "dpkg -x $bbdeb failed"

	mdir=""
	for d in "$work/kernel/lib/modules"/* "$work/kernel/usr/lib/modules"/*; do
		[ -d "$d" ] || continue
		[ -z "$mdir" ] || die "$kpkg holds more than one modules directory"
		mdir=$d
	done
	[ -n "$mdir" ] || die "$kpkg has no lib/modules/<version> directory"
	krel=${mdir##*/}
	kimg=$work/kernel/boot/vmlinuz-$krel
	[ -f "$kimg" ] || die "$kpkg has no boot/vmlinuz-$krel"
	# The x86 boot protocol's setup header signature, at 0x202.
	[ "$(dd if="$kimg" bs=1 skip=514 count=4 2>/dev/null)" = HdrS ] ||
		die "boot/vmlinuz-$krel of $kpkg is not a bzImage (no HdrS)"

	# Debian's package ships no modules.dep (its postinst runs depmod),
	# so make one from the .ko files themselves.
	if [ ! -s "$mdir/modules.dep" ]; then
		depmod -b "${mdir%/lib/modules/*}" "$krel" 2>"$work/depmod.log" ||
			{ cat "$work/depmod.log" >&2; die "depmod failed for $krel of $kpkg"; }
	fi
	[ -s "$mdir/modules.dep" ] || die "no modules.dep for $krel of $kpkg (even after depmod)"
	[ -f "$mdir/modules.builtin" ] || die "$kpkg has no modules.builtin for $krel"

	stage=$work/stage
	mkdir -p "$stage/bin" "$stage/dev" "$stage/etc" "$stage/proc" \
		"$stage/sys" "$stage/tmp" "$stage/mnt" "$stage/root" \
		"$stage/lib/modules/$krel"
	chmod 1777 "$stage/tmp"
	chmod 700 "$stage/root"

	order_list=$work/modules.order
	: >"$order_list"
	module_order "$mdir" >"$work/order.txt" || die "reading $mdir/modules.dep failed"
	while read -r kind what; do
		case $kind in
		load) copy_module "$mdir" "$what" >>"$order_list" ;;
		builtin) builtins="$builtins $what" ;;
		missing) die "module $what is neither in modules.dep nor in modules.builtin of $krel ($kpkg)" ;;
		esac
	done <"$work/order.txt"
	cp "$order_list" "$stage/etc/modules.order"

	[ -f "$work/busybox/bin/busybox" ] ||
		die "busybox-static $bb_ver has no bin/busybox"
	cp "$work/busybox/bin/busybox" "$stage/bin/busybox"
	chmod 755 "$stage/bin/busybox"
	"$stage/bin/busybox" --list >"$work/applets" ||
		die "cannot run bin/busybox of busybox-static to list its applets"
	for line in $APPLETS; do
		grep -qx "$line" "$work/applets" ||
			die "busybox-static $bb_ver has no applet $line"
		ln -s busybox "$stage/bin/$line"
	done

	cp "$init_src" "$stage/init"
	chmod 755 "$stage/init"

	# The kernel opens /dev/console for /init before anything is mounted.
	is_root || die "creating the /dev nodes of the initramfs needs root (mknod)"
	{ mknod -m 600 "$stage/dev/console" c 5 1 &&
		mknod -m 666 "$stage/dev/null" c 1 3 &&
		mknod -m 660 "$stage/dev/ttyS0" c 4 64; } ||
		die "mknod of /dev/console, /dev/null or /dev/ttyS0 in $stage failed"

	find "$stage" -exec touch -h -d "@$EPOCH" {} +
	# Uncompressed newc: the guest kernel does not decompress anything.
	initrd=$work/initrd.img
	(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort |
		cpio --quiet -o -H newc -R 0:0 --reproducible) >"$initrd" ||
		die "cpio failed building the initramfs"
	cpio -it --quiet <"$initrd" >"$work/initrd.list" ||
		die "cpio cannot read back the initramfs it wrote"
	for line in init bin/busybox dev/console etc/modules.order; do
		grep -qx "$line" "$work/initrd.list" || die "the initramfs lacks $line"
	done

	cp "$kimg" "$out/.$kout.tmp"
	mv -f "$out/.$kout.tmp" "$out/$kout"
	mv -f "$initrd" "$out/$iout"

	n=$(wc -l <"$order_list")
	{
		echo "$flavour kernel $kout"
		echo "$flavour initrd $iout"
		echo "$flavour package $meta $meta_ver"
		echo "$flavour package $kpkg $kpkg_ver"
		echo "$flavour package busybox-static $bb_ver"
		echo "$flavour release $krel"
		echo "$flavour modules$(sed 's,.*/,,; s,\.ko$,,' "$order_list" | tr '\n' ' ' | sed 's/ $//; s/^/ /')"
		echo "$flavour builtin$builtins"
	} >"$out/.manifest-$flavour"
	note "$flavour: $n modules, in order: $(sed 's,.*/,,; s,\.ko$,,' "$order_list" | tr '\n' ' ')"
	[ -z "$builtins" ] || note "$flavour: built into the kernel:$builtins"
	note "$flavour: wrote $out/$kout ($(wc -c <"$out/$kout") bytes)," \
		"$out/$iout ($(wc -c <"$out/$iout") bytes, uncompressed cpio)"
	rm -rf "$work/kernel" "$work/busybox" "$work/stage"
}

write_manifest() {
	{
		echo "# vmmd reference guest, written by scripts/mkguest.sh"
		echo "# FLAVOUR kernel|initrd FILE; FLAVOUR package NAME VERSION;"
		echo "# FLAVOUR release UNAME-R; FLAVOUR modules|builtin NAME..."
		for f in cloud generic; do
			[ -f "$out/.manifest-$f" ] && cat "$out/.manifest-$f"
		done
	} >"$out/.manifest.tmp"
	mv -f "$out/.manifest.tmp" "$out/manifest"
}

do_flavour() {
	local hash kout iout
	case $flavour in
	cloud) kout=vmlinuz iout=initrd.img ;;
	generic) kout=vmlinuz-generic iout="initrd-generic.img" ;;
	esac
	why=""
	if ! resolve; then
		refresh_lists
		resolve || die "$why"
	fi
	hash=$(input_hash)
	if [ -f "$out/$kout" ] && [ -f "$out/$iout" ] &&
		[ -f "$out/.manifest-$flavour" ] &&
		[ "$(cat "$out/.stamp-$flavour" 2>/dev/null)" = "$hash" ]; then
		note "$flavour guest is up to date ($out/$kout, $out/$iout:" \
			"$kpkg $kpkg_ver, busybox-static $bb_ver)"
		return 0
	fi
	rm -f "$out/.stamp-$flavour"
	if ! fetch_all; then
		# A failed download most often means lists that name versions the
		# archive no longer has: refresh them and resolve again.
		refresh_lists
		resolve || die "$why"
		hash=$(input_hash)
		fetch_all || die "download of $failed failed (apt-get download, see above)"
	fi
	build_flavour
	echo "$hash" >"$out/.stamp-$flavour"
}

cleanup() {
	if [ -n "${work:-}" ]; then
		rm -rf "$work"
	fi
}

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	usage
fi
case ${2:-cloud} in
cloud|generic) flavours=${2:-cloud} ;;
all) flavours="cloud generic" ;;
*) usage ;;
esac

top=$(cd "$(dirname "$0")/.." && pwd)
self=$top/scripts/mkguest.sh
init_src=$top/tests/guest/init
[ -f "$init_src" ] || die "no $init_src"
mkdir -p "$1" || die "cannot create $1"
out=$(cd "$1" && pwd)
debpkg_cache "$top"

ensure_host_packages

# One build at a time in an output directory.
exec 9>"$out/.lock"
flock 9 || die "cannot lock $out/.lock"
work=$out/.work
rm -rf "$work"
mkdir -p "$work"
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

for flavour in $flavours; do
	do_flavour
done
write_manifest

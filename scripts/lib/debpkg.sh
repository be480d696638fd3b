# shellcheck shell=sh
# shellcheck disable=SC2154 # prog, dl, aptdir and work are the sourcing script's
# Debian packages for the guest images, shared by scripts/mkguest.sh and
# scripts/mkguest-bench.sh (sourced; POSIX sh). The sourcing script sets:
#   prog       its name, for messages
#   HOST_PKGS  the host packages it needs
#   dl         the download cache (downloads/), aptdir ($dl/.apt) in it
#   work       a scratch directory (apt's log of the last download)

die() {
	echo "$prog: error: $*" >&2
	exit 1
}

note() {
	echo "$prog: $*"
}

is_root() {
	[ "$(id -u)" -eq 0 ]
}

# Installs the host packages of $HOST_PKGS that are missing (root only).
ensure_host_packages() {
	local p installed missing="" log="$aptdir/install-$prog.log"
	# shellcheck disable=SC2086 # one word per package
	installed=$(dpkg-query -W -f='${Package} ${Status}\n' $HOST_PKGS 2>/dev/null |
		awk '$NF == "installed" && $(NF - 1) == "ok" { print $1 }')
	for p in $HOST_PKGS; do
		echo "$installed" | grep -qx "$p" || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	is_root || die "missing host packages:$missing (run as root to install them)"
	note "installing host packages:$missing"
	export DEBIAN_FRONTEND=noninteractive
	# shellcheck disable=SC2086
	if ! apt-get install -y -qq --no-install-recommends $missing \
		>"$log" 2>&1; then
		refresh_lists
		# shellcheck disable=SC2086
		apt-get install -y -qq --no-install-recommends $missing \
			>"$log" 2>&1 || {
			tail -n 5 "$log" >&2
			die "apt-get install$missing failed"
		}
	fi
}

# apt-get update, at most once a run (the lists are missing or stale).
refreshed=0
refresh_lists() {
	[ "$refreshed" = 1 ] && return 0
	refreshed=1
	is_root || die "the apt package lists are missing or stale and only root can run apt-get update"
	note "apt-get update"
	apt-get update -qq || die "apt-get update failed"
}

# apt with its binary cache kept beside the downloads: Debian's container
# images switch that cache off, and every apt-cache call then parses all the
# package lists again (over a second each).
apt_cache() {
	apt-cache -o Dir::Cache::pkgcache="$aptdir/pkgcache.bin" \
		-o Dir::Cache::srcpkgcache= "$@"
}

# The candidate version apt offers for package $1 (empty when none).
candidate() {
	apt_cache policy "$1" 2>/dev/null |
		sed -n 's/^  Candidate: //p' | sed 's/^(none)$//' | head -n 1
}

# Prints the cached .deb of package $1 version $2, if there is a good one.
cached_deb() {
	local f
	for f in "$dl/$1_$(echo "$2" | sed 's/:/%3a/g')"_*.deb; do
		[ -f "$f" ] || continue
		if [ "$(dpkg-deb -f "$f" Package Version 2>/dev/null | tr '\n' ' ')" = \
			"Package: $1 Version: $2 " ]; then
			echo "$f"
			return 0
		fi
	done
	return 1
}

# apt-get download of package $1 version $2 into $dl; apt's output in
# $work/apt.log. Returns 1 when it fails.
apt_download() {
	local sandbox=""
	note "downloading $1 $2"
	# As root apt drops to the _apt user to download, who cannot write
	# into a cache in a user's checkout.
	is_root && sandbox="-o APT::Sandbox::User=root"
	# shellcheck disable=SC2086
	(cd "$dl" && apt-get -q $sandbox \
		-o Dir::Cache::pkgcache="$aptdir/pkgcache.bin" \
		-o Dir::Cache::srcpkgcache= download "$1=$2") >"$work/apt.log" 2>&1
}

# The last lines of $work/apt.log, indented, on stderr.
apt_log_tail() {
	sed 's/^/  /' "$work/apt.log" | tail -n 5 >&2
}

# The download cache, $VMMD_DOWNLOADS or $1/downloads (made when missing):
# sets dl, and aptdir inside it.
debpkg_cache() {
	dl=${VMMD_DOWNLOADS:-$1/downloads}
	mkdir -p "$dl" || die "cannot create the download cache $dl"
	dl=$(cd "$dl" && pwd)
	aptdir=$dl/.apt
	mkdir -p "$aptdir"
}

#!/bin/bash
# The main job: vmmd running with one VM defined and started, `vmctl list`,
# then the VM's console on this terminal (Ctrl-] detaches). On exit the VM
# is stopped and deleted and the daemon ends: the demo leaves nothing
# behind but its logs in $BUILD/demo/.
#
# The VM is the reference Debian guest where it boots fully (a host with
# hardware virtualization), the project's small test kernel otherwise: on a
# PVM host (no VT-x/AMD-V) the Debian kernel runs emulated and needs far
# more than a demo's patience (README.md, "Hosts without hardware
# virtualization"). VMMD_DEMO_GUEST=debian|testguest overrides the choice.
set -eu
BUILD=${1:-build}
BUILD=$(cd "$BUILD" && pwd)
dir=$BUILD/demo
run=$dir/run
mkdir -p "$dir/state" "$run"
chmod 0755 "$run"
sock=$run/vmmd.sock
vmctl() { "$BUILD/bin/vmctl" --connect "unix://$sock" "$@"; }

guest=${VMMD_DEMO_GUEST:-}
if [ -z "$guest" ]; then
	if [ -d /sys/module/kvm_pvm ]; then
		guest=testguest
		echo "demo: this host's KVM is PVM (no hardware virtualization): the"
		echo "demo: Debian kernel would run emulated for tens of minutes, so"
		echo "demo: the VM runs the project's test kernel instead; it prints"
		echo "demo: TESTGUEST-ECHO, echoes what you type, and powers off on 'q'"
		echo "demo: or on the ACPI power button (VMMD_DEMO_GUEST=debian to insist)."
	else
		guest=debian
	fi
fi

cat >"$dir/vmmd.json" <<EOF
{
  "state_dir": "$dir/state",
  "runtime_dir": "$run",
  "socket": "$sock",
  "vmm_run": "$BUILD/bin/vmm-run",
  "log_level": "info"
}
EOF

"$BUILD/bin/vmmd" --config "$dir/vmmd.json" --foreground 2>"$dir/vmmd.log" &
vmmd_pid=$!
cleanup() {
	vmctl stop --force --timeout 5 demo >/dev/null 2>&1 || true
	vmctl delete --force demo >/dev/null 2>&1 || true
	kill "$vmmd_pid" 2>/dev/null || true
	wait "$vmmd_pid" 2>/dev/null || true
	echo "demo: stopped; logs in $dir (vmmd.log, run/vms/demo/vmm-run.log)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
for _ in $(seq 50); do
	[ -S "$sock" ] && break
	kill -0 "$vmmd_pid" 2>/dev/null || { cat "$dir/vmmd.log" >&2; exit 1; }
	sleep 0.1
done
echo "demo: vmmd runs (pid $vmmd_pid), socket $sock"

vmctl delete --force demo >/dev/null 2>&1 || true
if [ "$guest" = debian ]; then
	vmctl create --name demo --cpus "${VMMD_DEMO_CPUS:-2}" \
		--memory "${VMMD_DEMO_MEMORY:-1G}" \
		--kernel "$BUILD/guest/vmlinuz" --initrd "$BUILD/guest/initrd.img" \
		--cmdline "console=ttyS0 panic=-1 ${VMMD_DEMO_CMDLINE:-}" --start
else
	vmctl create --name demo --cpus 1 --memory 64M \
		--kernel "$BUILD/guest-tests/testguest.elf" \
		--cmdline "testguest.action=echo" --start
fi
echo
vmctl list
echo
echo "demo: the console of 'demo' follows; Ctrl-] detaches"
vmctl console demo || true

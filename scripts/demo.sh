#!/bin/sh
# The main job, until the daemon exists: boot the reference Debian guest
# with vmm-run, its console on this terminal. Ctrl-A x quits.
set -eu
BUILD=${1:-build}
cpus=${VMMD_DEMO_CPUS:-2}
mem=${VMMD_DEMO_MEMORY:-1G}
if [ -d /sys/module/kvm_pvm ]; then
	echo "demo: this host's KVM is PVM (no hardware virtualization): the"
	echo "demo: guest kernel runs emulated and takes many minutes to boot"
	echo "demo: (see README.md, 'Hosts without hardware virtualization')."
fi
echo "demo: booting $BUILD/guest/vmlinuz with $cpus vCPUs and $mem; Ctrl-A x quits"
exec "$BUILD/bin/vmm-run" --kernel "$BUILD/guest/vmlinuz" \
	--initrd "$BUILD/guest/initrd.img" --cpus "$cpus" --memory "$mem" \
	--cmdline "console=ttyS0 earlyprintk=serial panic=-1 ${VMMD_DEMO_CMDLINE:-}" \
	--stats

/* SPDX-License-Identifier: MIT */
/*
 * What vmmd hands to vmm-run: the runtime paths of a VM, the command line
 * built from a definition (every device kind; what vmm-run's option syntax
 * cannot carry is refused naming the field), the console history size,
 * and how a live vmm-run of a VM is recognized from /proc when the daemon
 * reattaches.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "proto/vmdef.h"
#include "vmmd/supervise.h"

static struct vmdef *
def_from(const char *text)
{
	struct vmdef *def;
	char err[256];

	if (vmdef_from_string(text, strlen(text), 0, &def, err,
			      sizeof(err)) < 0)
		fail_msg("definition %s: %s", text, err);
	return def;
}

/* argv as one string, arguments separated by '|'. */
static char *
joined(char **argv)
{
	static char buf[4096];
	size_t off = 0;

	buf[0] = '\0';
	for (; *argv; argv++)
		off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s",
					off ? "|" : "", *argv);
	return buf;
}

static void
test_paths(void **state)
{
	struct vm_paths p;
	char longdir[200];

	(void)state;
	assert_int_equal(supervise_paths("/run/vmmd", "web1", &p), 0);
	assert_string_equal(p.dir, "/run/vmmd/vms/web1");
	assert_string_equal(p.control, "/run/vmmd/vms/web1/control.sock");
	assert_string_equal(p.console, "/run/vmmd/vms/web1/console.sock");
	assert_string_equal(p.vsock, "/run/vmmd/vms/web1/vsock.sock");
	assert_string_equal(p.hvc0, "/run/vmmd/vms/web1/hvc0.log");
	assert_string_equal(p.log, "/run/vmmd/vms/web1/vmm-run.log");
	assert_string_equal(p.log_old, "/run/vmmd/vms/web1/vmm-run.log.1");
	assert_string_equal(p.pid, "/run/vmmd/vms/web1/pid");

	/* A socket path must fit sockaddr_un (107 bytes). */
	memset(longdir, 'r', sizeof(longdir));
	longdir[0] = '/';
	longdir[80] = '\0';
	assert_int_equal(supervise_paths(longdir, "a-name-of-twenty-chars",
					 &p), -ENAMETOOLONG);
	longdir[40] = '\0';
	assert_int_equal(supervise_paths(longdir, "short", &p), 0);
}

static void
test_console_ring(void **state)
{
	struct vmdef *def = def_from("{\"name\":\"a\",\"kernel\":\"/k\"}");

	(void)state;
	/* The default 64K. */
	assert_int_equal(supervise_console_ring(def), 65536);
	/* vmm-run keeps 4K at least, in whole KiB. */
	def->console_history = 0;
	assert_int_equal(supervise_console_ring(def), 4096);
	def->console_history = 1000;
	assert_int_equal(supervise_console_ring(def), 4096);
	def->console_history = 5000;
	assert_int_equal(supervise_console_ring(def), 5120);
	def->console_history = 16u << 20;
	assert_int_equal(supervise_console_ring(def), 16u << 20);
	vmdef_free(def);
}

static void
test_argv_kernel_every_device(void **state)
{
	struct vmdef *def = def_from(
		"{\"name\":\"web1\",\"vcpus\":2,\"memory\":\"1G\","
		"\"kernel\":\"/img/vmlinuz\",\"initrd\":\"/img/initrd\","
		"\"cmdline\":\"console=ttyS0 root=/dev/vda\","
		"\"disks\":[{\"path\":\"/d/root.raw\",\"serial\":\"ROOT1\"},"
		"{\"path\":\"/d/data.raw\",\"readonly\":true,\"direct\":true,"
		"\"limits\":{\"bytes_per_sec\":\"10M\",\"ops_per_sec\":500,"
		"\"ops_burst\":50}}],"
		"\"nics\":[{\"tap\":\"vmtap0\",\"mac\":\"52:54:00:AB:cd:01\"},"
		"{\"tap\":\"vmtap1\",\"limits\":{\"tx_bytes_per_sec\":\"6M\","
		"\"rx_packets_per_sec\":2000}}],"
		"\"vsock\":{\"cid\":7},\"balloon\":true,"
		"\"virtio_console\":true,\"console\":{\"history\":\"16K\"}}");
	struct vm_paths p;
	char **argv, err[256];

	(void)state;
	assert_int_equal(supervise_paths("/run/vmmd", "web1", &p), 0);
	assert_int_equal(supervise_argv("/usr/bin/vmm-run", def, &p, &argv,
					err, sizeof(err)), 0);
	assert_string_equal(joined(argv),
		"/usr/bin/vmm-run|--name|web1"
		"|--control|/run/vmmd/vms/web1/control.sock"
		"|--console|none"
		"|--console-socket|/run/vmmd/vms/web1/console.sock,history=16K"
		"|--kernel|/img/vmlinuz|--initrd|/img/initrd"
		"|--cmdline|console=ttyS0 root=/dev/vda"
		"|--cpus|2|--memory|1024M"
		"|--disk|/d/root.raw,serial=ROOT1"
		"|--disk|/d/data.raw,ro,direct,bps=10485760,bps_burst=0,"
		"iops=500,iops_burst=50"
		"|--net|tap=vmtap0,mac=52:54:00:ab:cd:01"
		"|--net|tap=vmtap1,rx_bps=0,rx_bps_burst=0,rx_pps=2000,"
		"rx_pps_burst=0,tx_bps=6291456,tx_bps_burst=0,tx_pps=0,"
		"tx_pps_burst=0"
		"|--vsock|cid=7,uds=/run/vmmd/vms/web1/vsock.sock"
		"|--balloon"
		"|--virtio-console|file:/run/vmmd/vms/web1/hvc0.log");
	supervise_argv_free(argv);
	supervise_argv_free(NULL);
	vmdef_free(def);
}

static void
test_argv_firmware_minimal(void **state)
{
	struct vmdef *def = def_from(
		"{\"name\":\"fw\",\"firmware\":\"/usr/share/seabios/bios.bin\"}");
	struct vm_paths p;
	char **argv, err[256];

	(void)state;
	assert_int_equal(supervise_paths("/r", "fw", &p), 0);
	assert_int_equal(supervise_argv("vmm-run", def, &p, &argv, err,
					sizeof(err)), 0);
	/* Memory always carries its unit: vmm-run reads a bare number as
	 * MiB. */
	assert_string_equal(joined(argv),
		"vmm-run|--name|fw|--control|/r/vms/fw/control.sock"
		"|--console|none"
		"|--console-socket|/r/vms/fw/console.sock,history=64K"
		"|--firmware|/usr/share/seabios/bios.bin"
		"|--cpus|1|--memory|512M");
	supervise_argv_free(argv);
	vmdef_free(def);
}

static void
test_argv_refuses_commas(void **state)
{
	struct vmdef *def;
	struct vm_paths p;
	char **argv = NULL, err[256];

	(void)state;
	assert_int_equal(supervise_paths("/run/vmmd", "c", &p), 0);
	def = def_from("{\"name\":\"c\",\"kernel\":\"/k\",\"disks\":"
		       "[{\"path\":\"/ok\"},{\"path\":\"/a,ro\"}]}");
	assert_int_equal(supervise_argv("vmm-run", def, &p, &argv, err,
					sizeof(err)), -EINVAL);
	assert_null(argv);
	assert_string_equal(err, "disks[1].path: contains a comma, which "
			    "vmm-run's option syntax cannot carry");
	vmdef_free(def);
	def = def_from("{\"name\":\"c\",\"kernel\":\"/k\",\"disks\":"
		       "[{\"path\":\"/ok\",\"serial\":\"A,B\"}]}");
	assert_int_equal(supervise_argv("vmm-run", def, &p, &argv, err,
					sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "disks[0].serial"));
	vmdef_free(def);
	def = def_from("{\"name\":\"c\",\"kernel\":\"/k\"}");
	assert_int_equal(supervise_paths("/run/a,b", "c", &p), 0);
	assert_int_equal(supervise_argv("vmm-run", def, &p, &argv, err,
					sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "runtime_dir"));
	vmdef_free(def);
}

/* A process that looks like vmm-run of "web1": this test binary, exec'd
 * again with such an argv, sleeping. */
static pid_t
spawn_fake(const char *argv0, const char *name)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		char a0[64], a1[] = "--name", a2[64], a3[] = "--console-socket",
		     a4[] = "/r/c.sock", a5[] = "history=16K";
		char *const argv[] = { a0, a1, a2, a3, a4, a5, NULL };

		snprintf(a0, sizeof(a0), "%s", argv0);
		snprintf(a2, sizeof(a2), "%s", name);

		setenv("TEST_VMMD_ARGV_SLEEP", "1", 1);
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	/* Until the exec is done, /proc shows the parent's argv. */
	for (int i = 0; i < 200; i++) {
		char path[64], buf[64] = "";
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
		f = fopen(path, "r");
		if (f) {
			if (!fgets(buf, sizeof(buf), f))
				buf[0] = '\0';
			fclose(f);
		}
		if (strcmp(buf, argv0) == 0)
			break;
		usleep(10000);
	}
	return pid;
}

static void
test_proc_is_vm(void **state)
{
	size_t ring = 1;
	pid_t pid;

	(void)state;
	pid = spawn_fake("/opt/bin/vmm-run", "web1");
	assert_int_equal(supervise_proc_is_vm(pid, "web1", &ring), 1);
	assert_int_equal(ring, 16384);
	assert_int_equal(supervise_proc_is_vm(pid, "web2", NULL), 0);
	assert_int_equal(supervise_proc_is_vm(pid, "web", NULL), 0);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	/* Gone: not a VM. */
	assert_int_equal(supervise_proc_is_vm(pid, "web1", NULL), 0);

	/* Another program with the right --name is not vmm-run. */
	pid = spawn_fake("/opt/bin/not-vmm-run", "web1");
	assert_int_equal(supervise_proc_is_vm(pid, "web1", NULL), 0);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	assert_int_equal(supervise_proc_is_vm(0, "web1", NULL), 0);
	assert_int_equal(supervise_proc_is_vm(-1, "web1", NULL), 0);
}

static void
test_log_tail(void **state)
{
	char path[] = "/tmp/test_vmmd_log.XXXXXX", buf[64], big[6000];
	FILE *f;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	assert_string_equal(supervise_log_tail(path, buf, sizeof(buf)), "");
	f = fopen(path, "w");
	fputs("vm/a: info: starting\nvm/a: error: kernel '/x': No such "
	      "file\x01\n\n", f);
	fclose(f);
	assert_string_equal(supervise_log_tail(path, buf, sizeof(buf)),
			    "vm/a: error: kernel '/x': No such file?");
	/* Long logs: only the end is read; long lines are cut. */
	memset(big, 'x', sizeof(big));
	big[sizeof(big) - 1] = '\0';
	f = fopen(path, "w");
	fputs(big, f);
	fputs("\nlast line\n", f);
	fclose(f);
	assert_string_equal(supervise_log_tail(path, buf, sizeof(buf)),
			    "last line");
	f = fopen(path, "w");
	fputs(big, f);
	fclose(f);
	assert_int_equal(strlen(supervise_log_tail(path, buf, sizeof(buf))),
			 sizeof(buf) - 1);
	unlink(path);
	assert_string_equal(supervise_log_tail(path, buf, sizeof(buf)), "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_console_ring),
		cmocka_unit_test(test_argv_kernel_every_device),
		cmocka_unit_test(test_argv_firmware_minimal),
		cmocka_unit_test(test_argv_refuses_commas),
		cmocka_unit_test(test_proc_is_vm),
		cmocka_unit_test(test_log_tail),
	};

	if (getenv("TEST_VMMD_ARGV_SLEEP")) {
		/* The stand-in for a vmm-run process (spawn_fake()). */
		pause();
		return 0;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * vmmd's cgroups against a cgroupfs the test lays out in a temporary
 * directory (plain files and directories, as the kernel would show them,
 * plus a fake /proc with self/cgroup, self/mountinfo and kernel threads):
 * detection of v2 (delegated, already moved, root cgroup, not delegated),
 * v1 (mountinfo, usual paths, own-relative groups), hybrid hosts (empty
 * cgroup2: v1 wins) and hosts with neither; the exact files and values each
 * limit writes on both versions, unset values, the cpuset copied from the
 * parent, errors naming the setting, attaching with KVM's kernel threads,
 * statistics of both formats and removal.
 *
 * With "cli" as its first argument the program is a small front end to the
 * module instead, which tests/integration/test_cgroup.sh uses on the
 * host's real cgroups:
 *   test_vmmd_cgroup cli [-r ROOT] [-p PROC] [-s SUBTREE] CMD ARGS
 *   CMD: detect | create NAME | apply NAME [weight=N] [quota=MILLI]
 *        [cpus=LIST] [memory=BYTES] | attach NAME PID | stats NAME |
 *        destroy NAME
 */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmmd/cgroup.h"

#define GIB	(UINT64_C(1) << 30)

static char tmp[64];

/* --- the fake tree ------------------------------------------------------ */

static const char *
at(const char *rel)
{
	static char bufs[8][PATH_MAX];
	static unsigned int next;
	char *b = bufs[next++ % 8];

	snprintf(b, PATH_MAX, "%s/%s", tmp, rel);
	return b;
}

static void
mkdirs(const char *path)
{
	char p[PATH_MAX], *s;

	snprintf(p, sizeof(p), "%s", path);
	for (s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		mkdir(p, 0755);
		*s = '/';
	}
	mkdir(p, 0755);
}

static void
mkd(const char *rel)
{
	mkdirs(at(rel));
}

/* Write file rel (its directories made), with exactly content. */
static void
put(const char *rel, const char *content)
{
	char dir[PATH_MAX], *slash;
	FILE *f;

	snprintf(dir, sizeof(dir), "%s", at(rel));
	slash = strrchr(dir, '/');
	*slash = '\0';
	mkdirs(dir);
	f = fopen(at(rel), "w");
	assert_non_null(f);
	assert_int_equal(fputs(content, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* The content of rel, exactly. */
static const char *
get(const char *rel)
{
	static char bufs[4][4096];
	static unsigned int next;
	char *b = bufs[next++ % 4];
	size_t n;
	FILE *f;

	f = fopen(at(rel), "r");
	if (!f) {
		snprintf(b, 4096, "<missing %s>", rel);
		return b;
	}
	n = fread(b, 1, 4095, f);
	b[n] = '\0';
	fclose(f);
	return b;
}

static bool
exists(const char *rel)
{
	struct stat st;

	return stat(at(rel), &st) == 0;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
setup(void **state)
{
	(void)state;
	snprintf(tmp, sizeof(tmp), "/tmp/test_vmmd_cgroup.XXXXXX");
	if (!mkdtemp(tmp))
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	return nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static struct cgroup_host *
detect(void)
{
	struct cgroup_host_params p = {
		.root = at("cg"), .proc = at("proc"), .subtree = NULL,
	};
	struct cgroup_host *h = NULL;
	char err[512] = "";
	int r;

	r = cgroup_host_detect_params(&p, &h, err, sizeof(err));
	if (r < 0)
		print_error("detect: %d %s\n", r, err);
	assert_int_equal(r, 0);
	assert_non_null(h);
	return h;
}

static void
assert_contains(const char *s, const char *part)
{
	if (!strstr(s, part))
		fail_msg("expected \"%s\" in \"%s\"", part, s);
}

/* A mountinfo line for a cgroup mount at rel with super options. */
static void
mountinfo(const char *lines)
{
	put("proc/self/mountinfo", lines);
}

static char *
mi_line(char *buf, size_t len, int id, const char *rel, const char *fstype,
	const char *super)
{
	snprintf(buf, len, "%d 23 0:%d / %s rw,nosuid shared:%d - %s %s %s\n",
		 id, id, at(rel), id, fstype, fstype, super);
	return buf;
}

/* --- v2 ----------------------------------------------------------------- */

#define SVC	"cg/system.slice/vmmd.service"

/* A delegated v2 subtree for vmmd.service, vmmd still in its top. */
static void
lay_v2(const char *own)
{
	char mi[1024], self[256];

	put("cg/cgroup.controllers", "cpuset cpu io memory hugetlb pids\n");
	put("cg/cgroup.subtree_control", "cpuset cpu io memory pids\n");
	put(SVC "/cgroup.controllers", "cpuset cpu io memory pids\n");
	put(SVC "/cgroup.subtree_control", "");
	put(SVC "/cgroup.procs", "4242\n");
	put(SVC "/daemon/cgroup.procs", "");
	put(SVC "/vms/cgroup.subtree_control", "");
	put(SVC "/vms/cpuset.cpus.effective", "0-3\n");
	snprintf(self, sizeof(self), "0::%s\n", own);
	put("proc/self/cgroup", self);
	mountinfo(mi_line(mi, sizeof(mi), 30, "cg", "cgroup2",
			  "rw,nsdelegate"));
}

/* What the kernel shows in a new v2 group with cpu, cpuset, memory. */
static void
lay_v2_group(const char *name)
{
	char d[256], f[300];
	static const char *const files[][2] = {
		{ "cgroup.procs", "" },
		{ "cpu.weight", "100\n" },
		{ "cpu.max", "max 100000\n" },
		{ "cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0\n"
			      "nr_periods 0\nnr_throttled 0\n"
			      "throttled_usec 0\n" },
		{ "cpuset.cpus", "\n" },
		{ "memory.max", "max\n" },
		{ "memory.high", "max\n" },
		{ "memory.current", "1048576\n" },
		{ "memory.peak", "2097152\n" },
	};
	unsigned int i;

	snprintf(d, sizeof(d), SVC "/vms/%s", name);
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(f, sizeof(f), "%s/%s", d, files[i][0]);
		put(f, files[i][1]);
	}
}

static void
test_v2_detect_delegated(void **state)
{
	struct cgroup_host *h;
	const char *desc;

	(void)state;
	lay_v2("/system.slice/vmmd.service");
	h = detect();
	assert_int_equal(cgroup_host_version(h), CGROUP_V2);
	/* vmmd moved out of the top, controllers enabled down to vms/. */
	assert_string_equal(get(SVC "/daemon/cgroup.procs"), "4242");
	assert_string_equal(get(SVC "/cgroup.subtree_control"),
			    "+cpu +cpuset +memory");
	assert_string_equal(get(SVC "/vms/cgroup.subtree_control"),
			    "+cpu +cpuset +memory");
	assert_true(cgroup_host_has(h, CGROUP_CTRL_CPU));
	assert_true(cgroup_host_has(h, CGROUP_CTRL_CPUACCT));
	assert_true(cgroup_host_has(h, CGROUP_CTRL_CPUSET));
	assert_true(cgroup_host_has(h, CGROUP_CTRL_MEMORY));
	assert_string_equal(cgroup_host_base(h, CGROUP_CTRL_MEMORY),
			    at(SVC "/vms"));
	desc = cgroup_host_describe(h);
	assert_contains(desc, "cgroup v2 at ");
	assert_contains(desc, "cpu, cpuset, memory enabled for VM groups in");
	assert_contains(desc, "vmmd runs in ");
	cgroup_host_free(h);
}

static void
test_v2_detect_already_moved(void **state)
{
	struct cgroup_host *h;

	(void)state;
	lay_v2("/system.slice/vmmd.service/daemon");
	/* What the kernel shows once enabled: no '+'. */
	put(SVC "/cgroup.subtree_control", "cpuset cpu memory\n");
	put(SVC "/vms/cgroup.subtree_control", "cpuset cpu memory\n");
	put(SVC "/daemon/cgroup.procs", "untouched");
	h = detect();
	assert_int_equal(cgroup_host_version(h), CGROUP_V2);
	assert_string_equal(get(SVC "/daemon/cgroup.procs"), "untouched");
	assert_string_equal(get(SVC "/cgroup.subtree_control"),
			    "cpuset cpu memory\n");
	assert_string_equal(get(SVC "/vms/cgroup.subtree_control"),
			    "cpuset cpu memory\n");
	assert_false(exists(SVC "/daemon/daemon"));
	assert_string_equal(cgroup_host_base(h, CGROUP_CTRL_CPU),
			    at(SVC "/vms"));
	cgroup_host_free(h);
}

static void
test_v2_detect_in_root_cgroup(void **state)
{
	struct cgroup_host *h;
	struct cgroup_limits l = { 0 };
	struct cgroup_vm *g;
	char err[512];

	(void)state;
	put("cg/cgroup.controllers", "cpu memory pids\n");
	put("cg/cgroup.subtree_control", "");
	put("cg/vmmd/cgroup.subtree_control", "");
	put("cg/vmmd/vms/cgroup.subtree_control", "");
	put("proc/self/cgroup", "0::/\n");
	put("proc/self/mountinfo", "");
	h = detect();
	assert_int_equal(cgroup_host_version(h), CGROUP_V2);
	assert_string_equal(get("cg/cgroup.subtree_control"), "+cpu +memory");
	assert_string_equal(get("cg/vmmd/cgroup.subtree_control"),
			    "+cpu +memory");
	assert_string_equal(get("cg/vmmd/vms/cgroup.subtree_control"),
			    "+cpu +memory");
	assert_false(exists("cg/vmmd/daemon"));
	assert_string_equal(cgroup_host_base(h, CGROUP_CTRL_CPU),
			    at("cg/vmmd/vms"));
	assert_false(cgroup_host_has(h, CGROUP_CTRL_CPUSET));

	assert_int_equal(cgroup_vm_create(h, "web1", &g, err, sizeof(err)), 0);
	cpulist_parse("1", &l.cpuset);
	assert_int_equal(cgroup_vm_apply(g, &l, err, sizeof(err)),
			 -EOPNOTSUPP);
	assert_contains(err, "cpu_pin: the cpuset controller is not "
			"available on this host (cgroup v2 at ");
	assert_contains(err, "does not delegate cpuset to /vmmd");
	cgroup_vm_free(g);
	cgroup_host_free(h);
}

static void
test_v2_not_delegated(void **state)
{
	struct cgroup_limits l = { .cpu_weight = 200 };
	struct cgroup_attach_result res = { 9, 9 };
	struct cgroup_stats st;
	struct cgroup_host *h;
	struct cgroup_vm *g;
	char err[512];

	(void)state;
	lay_v2("/system.slice/vmmd.service");
	put(SVC "/cgroup.controllers", "pids\n");
	put(SVC "/daemon/cgroup.procs", "untouched");
	h = detect();
	assert_int_equal(cgroup_host_version(h), CGROUP_V2);
	/* Nothing of a tree that is not ours is touched. */
	assert_string_equal(get(SVC "/daemon/cgroup.procs"), "untouched");
	assert_string_equal(get(SVC "/cgroup.subtree_control"), "");
	assert_contains(cgroup_host_describe(h), "Delegate=yes");

	assert_int_equal(cgroup_vm_create(h, "web1", &g, err, sizeof(err)), 0);
	assert_null(cgroup_vm_dir(g, CGROUP_CTRL_CPU));
	assert_int_equal(cgroup_vm_apply(g, &l, err, sizeof(err)),
			 -EOPNOTSUPP);
	assert_contains(err, "cpu_weight: the cpu controller is not "
			"available on this host (cgroup v2 at ");
	assert_contains(err, "does not delegate cpu to "
			"/system.slice/vmmd.service");
	/* No limits: fine, and there is nothing to attach to. */
	memset(&l, 0, sizeof(l));
	assert_int_equal(cgroup_vm_apply(g, &l, err, sizeof(err)), 0);
	assert_int_equal(cgroup_vm_attach(g, 4242, &res, err, sizeof(err)),
			 0);
	assert_int_equal(res.kthreads_found, 0);
	assert_int_equal(cgroup_vm_stats(g, &st), 0);
	assert_false(st.has_cpu);
	assert_false(st.has_memory);
	assert_int_equal(cgroup_vm_destroy(g, err, sizeof(err)), 0);
	cgroup_vm_free(g);
	cgroup_host_free(h);
}

static void
test_v2_apply(void **state)
{
	struct cgroup_limits l = {
		.cpu_weight = 300, .cpu_quota_milli = 1500,
		.memory_limit = GIB,
	};
	struct cgroup_host *h;
	struct cgroup_vm *g;
	char err[512];

	(void)state;
	lay_v2("/system.slice/vmmd.service");
	lay_v2_group("web1");
	h = detect();
	assert_int_equal(cgroup_vm_create(h, "web1", &g, err, sizeof(err)), 0);
	assert_string_equal(cgroup_vm_dir(g, CGROUP_CTRL_CPU),
			    at(SVC "/vms/web1"));
	assert_int_equal(cpulist_parse("1-2", &l.cpuset), 0);
	assert_int_equal(cgroup_vm_apply(g, &l, err, sizeof(err)), 0);
	assert_string_equal(get(SVC "/vms/web1/cpu.weight"), "300");
	assert_string_equal(get(SVC "/vms/web1/cpu.max"), "150000 100000");
	assert_string_equal(get(SVC "/vms/web1/cpuset.cpus"), "1-2");
	/* 95% of 1 GiB: 1073741824 - 53687091. */
	assert_string_equal(get(SVC "/vms/web1/memory.high"), "1020054733");
	assert_string_equal(get(SVC "/vms/web1/memory.max"), "1073741824");

	/* Unset: everything back to the kernel's defaults. */
	memset(&l, 0, sizeof(l));
	assert_int_equal(cgroup_vm_apply(g, &l, err, sizeof(err)), 0);
	assert_string_equal(get(SVC "/vms/web1/cpu.weight"), "100");
	assert_string_equal(get(SVC "/vms/web1/cpu.max"), "max 100000");
	assert_string_equal(get(SVC "/vms/web1/cpuset.cpus"), "\n");
	assert_string_equal(get(SVC "/vms/web1/memory.high"), "max");
	assert_string_equal(get(SVC "/vms/web1/memory.max"), "max");

	/* Quotas below 0.01 CPU take the long period (1 ms minimum). */
	l.cpu_quota_milli = 5;
	assert_int_equal(cgroup_vm_apply(g, &l, err, sizeof(err)), 0);
	assert_string_equal(get(SVC "/vms/web1/cpu.max"), "5000 1000000");
	l.cpu_quota_milli = 1;
	assert_int_equal(cgroup_vm_apply(g, &l, err, sizeof(err)), 0);
	assert_string_equal(get(SVC "/vms/web1/cpu.max"), "1000 1000000");
	l.cpu_quota_milli = 10;
	assert_int_equal(cgroup_vm_apply(g, &l, err, sizeof(err)), 0);
	assert_string_equal(get(SVC "/vms/web1/cpu.max"), "1000 100000");
	l.cpu_quota_milli = 64000;
	l.cpu_weight = 10000;
	assert_int_equal(cgroup_vm_apply(g, &l, err, sizeof(err)), 0);
	assert_string_equal(get(SVC "/vms/web1/cpu.max"), "6400000 100000");
	assert_string_equal(get(SVC "/vms/web1/cpu.weight"), "10000");
	cgroup_vm_free(g);
	cgroup_host_free(h);
}

static void
test_v2_refusals(void **state)
{
	struct cgroup_limits l = { .cpu_weight = 300 };
	struct cgroup_host *h;
	struct cgroup_vm *g;
	char err[512];

	(void)state;
	lay_v2("/system.slice/vmmd.service");
	lay_v2_group("web1");
	h = detect();
	assert_int_equal(cgroup_vm_create(h, "web1", &g, err, sizeof(err)), 0);

	/* Out of range, checked before anything is written. */
	l.cpu_weight = 10001;
	assert_int_equal(cgroup_vm_apply(g, &l, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "cpu_weight: 10001 is out of range 1..10000");
	assert_string_equal(get(SVC "/vms/web1/cpu.weight"), "100\n");

	/* CPUs outside vmmd's own cpuset. */
	l.cpu_weight = 300;
	assert_int_equal(cpulist_parse("2-5", &l.cpuset), 0);
	assert_int_equal(cgroup_vm_apply(g, &l, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "cpu_pin: CPUs 4-5 are not in vmmd's "
			    "cpuset (0-3)");
	assert_string_equal(get(SVC "/vms/web1/cpu.weight"), "100\n");
	cpulist_zero(&l.cpuset);

	/* Memory in use above the new limit: the old memory.high is back. */
	put(SVC "/vms/web1/memory.current", "2147483648\n");
	put(SVC "/vms/web1/memory.high", "1500000000\n");
	l.memory_limit = GIB;
	assert_int_equal(cgroup_vm_apply(g, &l, err, sizeof(err)), -EBUSY);
	assert_string_equal(err, "memory_limit: the VM uses 2147483648 bytes, "
			    "more than the limit of 1073741824 bytes, and "
			    "they could not be reclaimed (shrink the guest "
			    "first, e.g. with its balloon)");
	assert_string_equal(get(SVC "/vms/web1/memory.high"), "1500000000");
	assert_string_equal(get(SVC "/vms/web1/memory.max"), "max\n");
	/* The CPU settings before it were written. */
	assert_string_equal(get(SVC "/vms/web1/cpu.weight"), "300");
	put(SVC "/vms/web1/memory.current", "4096\n");
	assert_int_equal(cgroup_vm_apply(g, &l, err, sizeof(err)), 0);
	assert_string_equal(get(SVC "/vms/web1/memory.max"), "1073741824");

	/* A write the "kernel" refuses names the setting and the file. */
	unlink(at(SVC "/vms/web1/cpu.max"));
	mkd(SVC "/vms/web1/cpu.max");
	l.cpu_quota_milli = 500;
	assert_int_equal(cgroup_vm_apply(g, &l, err, sizeof(err)), -EISDIR);
	assert_contains(err, "cpu_quota: writing \"50000 100000\" to ");
	assert_contains(err, "/vms/web1/cpu.max: Is a directory");
	rmdir(at(SVC "/vms/web1/cpu.max"));
	put(SVC "/vms/web1/cpu.max", "max 100000\n");

	/* A file the controller should have is missing. */
	unlink(at(SVC "/vms/web1/memory.max"));
	assert_int_equal(cgroup_vm_apply(g, &l, err, sizeof(err)), -ENOENT);
	assert_contains(err, "memory_limit: writing \"1073741824\" to ");
	assert_contains(err, "memory.max: No such file or directory");
	cgroup_vm_free(g);
	cgroup_host_free(h);
}

static void
test_v2_stats(void **state)
{
	struct cgroup_stats st;
	struct cgroup_host *h;
	struct cgroup_vm *g;
	char err[512];

	(void)state;
	lay_v2("/system.slice/vmmd.service");
	lay_v2_group("web1");
	put(SVC "/vms/web1/cpu.stat", "usage_usec 1500\nuser_usec 1000\n"
	    "system_usec 500\nnice_usec 0\nnr_periods 40\nnr_throttled 7\n"
	    "throttled_usec 250\nnr_bursts 0\nburst_usec 0\n");
	put(SVC "/vms/web1/memory.current", "123456\n");
	put(SVC "/vms/web1/memory.peak", "654321\n");
	h = detect();
	assert_int_equal(cgroup_vm_open_existing(h, "web1", &g, err,
						 sizeof(err)), 0);
	assert_int_equal(cgroup_vm_stats(g, &st), 0);
	assert_true(st.has_cpu);
	assert_int_equal(st.cpu_usage_ns, 1500000);
	assert_true(st.has_cpu_split);
	assert_int_equal(st.cpu_user_ns, 1000000);
	assert_int_equal(st.cpu_system_ns, 500000);
	assert_true(st.has_throttle);
	assert_int_equal(st.cpu_nr_periods, 40);
	assert_int_equal(st.cpu_nr_throttled, 7);
	assert_int_equal(st.cpu_throttled_ns, 250000);
	assert_true(st.has_memory);
	assert_int_equal(st.memory_current, 123456);
	assert_true(st.has_memory_peak);
	assert_int_equal(st.memory_peak, 654321);

	/* Older kernels: no memory.peak; no cpu controller: no throttling. */
	unlink(at(SVC "/vms/web1/memory.peak"));
	put(SVC "/vms/web1/cpu.stat", "usage_usec 7\nuser_usec 4\n"
	    "system_usec 3\n");
	assert_int_equal(cgroup_vm_stats(g, &st), 0);
	assert_int_equal(st.cpu_usage_ns, 7000);
	assert_false(st.has_throttle);
	assert_false(st.has_memory_peak);

	/* The group is gone. */
	unlink(at(SVC "/vms/web1/cpu.stat"));
	assert_int_equal(cgroup_vm_stats(g, &st), -ENOENT);
	cgroup_vm_free(g);

	assert_int_equal(cgroup_vm_open_existing(h, "web2", &g, err,
						 sizeof(err)), -ENOENT);
	assert_contains(err, "cgroup: VM \"web2\" has no group ");
	cgroup_host_free(h);
}

/* A kernel thread (PF_KTHREAD in its flags) or a user process in proc. */
static void
lay_task(int id, const char *comm, bool kthread)
{
	char f[64], s[256];

	snprintf(f, sizeof(f), "proc/%d/comm", id);
	snprintf(s, sizeof(s), "%s\n", comm);
	put(f, s);
	snprintf(f, sizeof(f), "proc/%d/stat", id);
	snprintf(s, sizeof(s), "%d (%s) S 2 0 0 0 -1 %u 0 0 0 0 0 0 0 0 20 "
		 "0 1 0 39\n", id, comm, kthread ? 0x208040u : 0x400100u);
	put(f, s);
}

static void
test_v2_attach_destroy(void **state)
{
	struct cgroup_attach_result res;
	struct cgroup_host *h;
	struct cgroup_vm *g;
	char err[512];

	(void)state;
	lay_v2("/system.slice/vmmd.service");
	lay_task(4242, "vmm-run", false);
	lay_task(4250, "kvm-pit/4242", true);
	lay_task(4251, "kvm-pit/4242", false);	/* a user process */
	lay_task(4252, "kvm-pit/42420", true);	/* another VM's */
	h = detect();
	/* An empty directory, as mkdir on cgroupfs makes it. */
	assert_int_equal(cgroup_vm_create(h, "web1", &g, err, sizeof(err)), 0);
	assert_true(exists(SVC "/vms/web1"));
	put(SVC "/vms/web1/cgroup.procs", "");
	assert_int_equal(cgroup_vm_attach(g, 4242, &res, err, sizeof(err)),
			 0);
	assert_int_equal(res.kthreads_found, 1);
	assert_int_equal(res.kthreads_moved, 1);
	/* The kernel thread is its own process on v2: written last. */
	assert_string_equal(get(SVC "/vms/web1/cgroup.procs"), "4250");

	assert_int_equal(cgroup_vm_attach(g, 0, &res, err, sizeof(err)),
			 -EINVAL);

	/* A group with a "task" left: rmdir on cgroupfs would say EBUSY;
	 * here the file makes it ENOTEMPTY, which is reported. */
	assert_int_equal(cgroup_vm_destroy(g, err, sizeof(err)), -ENOTEMPTY);
	assert_contains(err, "cgroup: VM \"web1\": removing ");
	unlink(at(SVC "/vms/web1/cgroup.procs"));
	assert_int_equal(cgroup_vm_destroy(g, err, sizeof(err)), 0);
	assert_false(exists(SVC "/vms/web1"));
	/* Already gone is fine. */
	assert_int_equal(cgroup_vm_destroy(g, err, sizeof(err)), 0);
	cgroup_vm_free(g);
	cgroup_host_free(h);
}

/* --- v1 ----------------------------------------------------------------- */

static void
lay_v1_cpu(const char *dir)
{
	char f[300];

	snprintf(f, sizeof(f), "%s/cpu.shares", dir);
	put(f, "1024\n");
	snprintf(f, sizeof(f), "%s/cpu.cfs_quota_us", dir);
	put(f, "-1\n");
	snprintf(f, sizeof(f), "%s/cpu.cfs_period_us", dir);
	put(f, "100000\n");
	snprintf(f, sizeof(f), "%s/cpu.stat", dir);
	put(f, "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n");
	snprintf(f, sizeof(f), "%s/cpuacct.usage", dir);
	put(f, "0\n");
	snprintf(f, sizeof(f), "%s/cgroup.procs", dir);
	put(f, "");
	snprintf(f, sizeof(f), "%s/tasks", dir);
	put(f, "");
}

static void
lay_v1_cpuset(const char *dir, const char *cpus, const char *mems)
{
	char f[300];

	snprintf(f, sizeof(f), "%s/cpuset.cpus", dir);
	put(f, cpus);
	snprintf(f, sizeof(f), "%s/cpuset.mems", dir);
	put(f, mems);
	snprintf(f, sizeof(f), "%s/cgroup.procs", dir);
	put(f, "");
	snprintf(f, sizeof(f), "%s/tasks", dir);
	put(f, "");
}

static void
lay_v1_memory(const char *dir)
{
	char f[300];

	snprintf(f, sizeof(f), "%s/memory.limit_in_bytes", dir);
	put(f, "9223372036854771712\n");
	snprintf(f, sizeof(f), "%s/memory.usage_in_bytes", dir);
	put(f, "0\n");
	snprintf(f, sizeof(f), "%s/cgroup.procs", dir);
	put(f, "");
	snprintf(f, sizeof(f), "%s/tasks", dir);
	put(f, "");
}

#define V1CPU	"cg/cpu,cpuacct"
#define V1SET	"cg/cpuset"
#define V1MEM	"cg/memory/user/session"

/*
 * This host's shape: tmpfs at cg with one directory per v1 hierarchy (cpu
 * and cpuacct together here) and an empty cgroup2 at cg/unified; vmmd's
 * memory cgroup is not the root. Base and VM groups laid out as the kernel
 * would make them.
 */
static void
lay_v1(const char *vm)
{
	char mi[4096], line[1024], d[256];

	mi[0] = '\0';
	strcat(mi, "22 1 0:20 / / rw - ext4 /dev/vda rw\n");
	strcat(mi, mi_line(line, sizeof(line), 31, "cg", "tmpfs", "rw"));
	strcat(mi, mi_line(line, sizeof(line), 32, "cg/cpu,cpuacct", "cgroup",
			   "rw,cpu,cpuacct"));
	strcat(mi, mi_line(line, sizeof(line), 33, "cg/cpuset", "cgroup",
			   "rw,cpuset"));
	strcat(mi, mi_line(line, sizeof(line), 34, "cg/memory", "cgroup",
			   "rw,memory"));
	strcat(mi, mi_line(line, sizeof(line), 35, "cg/systemd", "cgroup",
			   "rw,xattr,name=systemd"));
	strcat(mi, mi_line(line, sizeof(line), 36, "cg/unified", "cgroup2",
			   "rw"));
	mountinfo(mi);
	put("proc/self/cgroup", "5:name=systemd:/init.scope\n"
	    "4:memory:/user/session\n3:cpuset:/\n2:cpu,cpuacct:/\n0::/\n");
	put("cg/unified/cgroup.controllers", "");
	lay_v1_cpu(V1CPU);
	lay_v1_cpu(V1CPU "/vmmd");
	lay_v1_cpuset(V1SET, "0-3\n", "0\n");
	lay_v1_cpuset(V1SET "/vmmd", "\n", "\n");
	lay_v1_memory("cg/memory");
	lay_v1_memory(V1MEM);
	lay_v1_memory(V1MEM "/vmmd");
	if (!vm)
		return;
	snprintf(d, sizeof(d), V1CPU "/vmmd/%s", vm);
	lay_v1_cpu(d);
	snprintf(d, sizeof(d), V1SET "/vmmd/%s", vm);
	lay_v1_cpuset(d, "\n", "\n");
	snprintf(d, sizeof(d), V1MEM "/vmmd/%s", vm);
	lay_v1_memory(d);
}

static void
test_v1_detect(void **state)
{
	struct cgroup_host *h;
	const char *desc;
	char want[1024];

	(void)state;
	lay_v1(NULL);
	h = detect();
	assert_int_equal(cgroup_host_version(h), CGROUP_V1);
	assert_string_equal(cgroup_host_base(h, CGROUP_CTRL_CPU),
			    at(V1CPU "/vmmd"));
	assert_string_equal(cgroup_host_base(h, CGROUP_CTRL_CPUACCT),
			    at(V1CPU "/vmmd"));
	assert_string_equal(cgroup_host_base(h, CGROUP_CTRL_CPUSET),
			    at(V1SET "/vmmd"));
	/* Under vmmd's own memory cgroup, not the hierarchy's root. */
	assert_string_equal(cgroup_host_base(h, CGROUP_CTRL_MEMORY),
			    at(V1MEM "/vmmd"));
	/* The cpuset parent got its parent's CPUs and memory nodes. */
	assert_string_equal(get(V1SET "/vmmd/cpuset.cpus"), "0-3");
	assert_string_equal(get(V1SET "/vmmd/cpuset.mems"), "0");
	desc = cgroup_host_describe(h);
	snprintf(want, sizeof(want), "cgroup v1: cpu,cpuacct at %s (VM "
		 "groups in %s/vmmd), cpuset at ", at(V1CPU), at(V1CPU));
	assert_contains(desc, want);
	snprintf(want, sizeof(want), "memory at %s (VM groups in %s)",
		 at("cg/memory"), at(V1MEM "/vmmd"));
	assert_contains(desc, want);
	snprintf(want, sizeof(want), "; the cgroup2 mount at %s has none of "
		 "cpu, cpuset, memory", at("cg/unified"));
	assert_contains(desc, want);
	cgroup_host_free(h);
}

static void
test_v1_apply(void **state)
{
	struct cgroup_limits l = {
		.cpu_weight = 300, .cpu_quota_milli = 1500,
		.memory_limit = GIB,
	};
	struct cgroup_host *h;
	struct cgroup_vm *g;
	char err[512];

	(void)state;
	lay_v1("web1");
	h = detect();
	assert_int_equal(cgroup_vm_create(h, "web1", &g, err, sizeof(err)), 0);
	/* No task may join a v1 cpuset group without CPUs and nodes. */
	assert_string_equal(get(V1SET "/vmmd/web1/cpuset.cpus"), "0-3");
	assert_string_equal(get(V1SET "/vmmd/web1/cpuset.mems"), "0");
	assert_string_equal(cgroup_vm_dir(g, CGROUP_CTRL_CPUACCT),
			    at(V1CPU "/vmmd/web1"));

	assert_int_equal(cpulist_parse("1-2", &l.cpuset), 0);
	assert_int_equal(cgroup_vm_apply(g, &l, err, sizeof(err)), 0);
	assert_string_equal(get(V1CPU "/vmmd/web1/cpu.shares"), "3072");
	assert_string_equal(get(V1CPU "/vmmd/web1/cpu.cfs_period_us"),
			    "100000");
	assert_string_equal(get(V1CPU "/vmmd/web1/cpu.cfs_quota_us"),
			    "150000");
	assert_string_equal(get(V1SET "/vmmd/web1/cpuset.cpus"), "1-2");
	assert_string_equal(get(V1SET "/vmmd/web1/cpuset.mems"), "0");
	assert_string_equal(get(V1MEM "/vmmd/web1/memory.limit_in_bytes"),
			    "1073741824");

	/* The weight mapping at its ends. */
	l.cpu_weight = 1;
	assert_int_equal(cgroup_vm_apply(g, &l, err, sizeof(err)), 0);
	assert_string_equal(get(V1CPU "/vmmd/web1/cpu.shares"), "10");
	l.cpu_weight = 10000;
	assert_int_equal(cgroup_vm_apply(g, &l, err, sizeof(err)), 0);
	assert_string_equal(get(V1CPU "/vmmd/web1/cpu.shares"), "102400");
	l.cpu_weight = 100;
	assert_int_equal(cgroup_vm_apply(g, &l, err, sizeof(err)), 0);
	assert_string_equal(get(V1CPU "/vmmd/web1/cpu.shares"), "1024");
	l.cpu_quota_milli = 3;
	assert_int_equal(cgroup_vm_apply(g, &l, err, sizeof(err)), 0);
	assert_string_equal(get(V1CPU "/vmmd/web1/cpu.cfs_period_us"),
			    "1000000");
	assert_string_equal(get(V1CPU "/vmmd/web1/cpu.cfs_quota_us"), "3000");

	/* Unset: defaults, and the parent's CPUs. */
	memset(&l, 0, sizeof(l));
	put(V1SET "/vmmd/web1/cpuset.mems", "\n");
	assert_int_equal(cgroup_vm_apply(g, &l, err, sizeof(err)), 0);
	assert_string_equal(get(V1CPU "/vmmd/web1/cpu.shares"), "1024");
	assert_string_equal(get(V1CPU "/vmmd/web1/cpu.cfs_quota_us"), "-1");
	assert_string_equal(get(V1SET "/vmmd/web1/cpuset.cpus"), "0-3");
	/* Emptied memory nodes are copied again. */
	assert_string_equal(get(V1SET "/vmmd/web1/cpuset.mems"), "0");
	assert_string_equal(get(V1MEM "/vmmd/web1/memory.limit_in_bytes"),
			    "-1");

	/* CPUs the parent does not have. */
	assert_int_equal(cpulist_parse("3-4,8", &l.cpuset), 0);
	assert_int_equal(cgroup_vm_apply(g, &l, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "cpu_pin: CPUs 4,8 are not in vmmd's "
			    "cpuset (0-3)");
	cgroup_vm_free(g);
	cgroup_host_free(h);
}

static void
test_v1_attach_stats(void **state)
{
	struct cgroup_attach_result res;
	struct cgroup_stats st;
	struct cgroup_host *h;
	struct cgroup_vm *g;
	const char *t;
	char err[512];

	(void)state;
	lay_v1("web1");
	lay_task(4242, "vmm-run", false);
	lay_task(4250, "kvm-pit/4242", true);
	lay_task(4251, "kvm-nx-lpage-recovery-4242", true);
	lay_task(4252, "kvm-pit/4242", false);
	lay_task(4253, "kvm-pit/424", true);
	put("proc/self/stat", "1 (vmmd) S 0\n");
	h = detect();
	assert_int_equal(cgroup_vm_create(h, "web1", &g, err, sizeof(err)), 0);
	assert_int_equal(cgroup_vm_attach(g, 4242, &res, err, sizeof(err)),
			 0);
	assert_int_equal(res.kthreads_found, 2);
	assert_int_equal(res.kthreads_moved, 2);
	assert_string_equal(get(V1CPU "/vmmd/web1/cgroup.procs"), "4242");
	assert_string_equal(get(V1SET "/vmmd/web1/cgroup.procs"), "4242");
	assert_string_equal(get(V1MEM "/vmmd/web1/cgroup.procs"), "4242");
	/* Kernel threads go by tasks, in every hierarchy. */
	t = get(V1MEM "/vmmd/web1/tasks");
	if (strcmp(t, "4250") != 0 && strcmp(t, "4251") != 0)
		fail_msg("tasks has \"%s\", expected 4250 or 4251", t);
	assert_string_equal(get(V1SET "/vmmd/web1/tasks"), t);
	assert_string_equal(get(V1CPU "/vmmd/web1/tasks"), t);

	/* Only the process when no kernel thread is its. */
	put(V1CPU "/vmmd/web1/tasks", "untouched");
	assert_int_equal(cgroup_vm_attach(g, 4252, &res, err, sizeof(err)),
			 0);
	assert_int_equal(res.kthreads_found, 0);
	assert_string_equal(get(V1CPU "/vmmd/web1/tasks"), "untouched");

	put(V1CPU "/vmmd/web1/cpuacct.usage", "123456789\n");
	put(V1CPU "/vmmd/web1/cpuacct.usage_user", "100000000\n");
	put(V1CPU "/vmmd/web1/cpuacct.usage_sys", "23456789\n");
	put(V1CPU "/vmmd/web1/cpu.stat", "nr_periods 10\nnr_throttled 3\n"
	    "throttled_time 5000\nnr_bursts 0\nburst_time 0\n");
	put(V1MEM "/vmmd/web1/memory.usage_in_bytes", "8192\n");
	put(V1MEM "/vmmd/web1/memory.max_usage_in_bytes", "16384\n");
	assert_int_equal(cgroup_vm_stats(g, &st), 0);
	assert_true(st.has_cpu);
	assert_int_equal(st.cpu_usage_ns, 123456789);
	assert_true(st.has_cpu_split);
	assert_int_equal(st.cpu_user_ns, 100000000);
	assert_int_equal(st.cpu_system_ns, 23456789);
	assert_true(st.has_throttle);
	assert_int_equal(st.cpu_nr_periods, 10);
	assert_int_equal(st.cpu_nr_throttled, 3);
	assert_int_equal(st.cpu_throttled_ns, 5000);
	assert_true(st.has_memory);
	assert_int_equal(st.memory_current, 8192);
	assert_true(st.has_memory_peak);
	assert_int_equal(st.memory_peak, 16384);

	unlink(at(V1CPU "/vmmd/web1/cpuacct.usage_sys"));
	assert_int_equal(cgroup_vm_stats(g, &st), 0);
	assert_false(st.has_cpu_split);
	unlink(at(V1CPU "/vmmd/web1/cpuacct.usage"));
	assert_int_equal(cgroup_vm_stats(g, &st), -ENOENT);
	cgroup_vm_free(g);
	cgroup_host_free(h);
}

/* An empty cgroup2 at root itself, v1 mounted elsewhere: v1 wins. */
static void
test_hybrid_empty_v2_at_root(void **state)
{
	char mi[4096], line[1024];
	struct cgroup_host *h;

	(void)state;
	put("cg/cgroup.controllers", "hugetlb\n");
	put("cg/cgroup.subtree_control", "");
	mi[0] = '\0';
	strcat(mi, mi_line(line, sizeof(line), 30, "cg", "cgroup2", "rw"));
	strcat(mi, mi_line(line, sizeof(line), 31, "v1/cpu", "cgroup",
			   "rw,cpu"));
	strcat(mi, mi_line(line, sizeof(line), 32, "v1/memory", "cgroup",
			   "rw,memory"));
	mountinfo(mi);
	put("proc/self/cgroup", "2:memory:/\n1:cpu:/\n0::/\n");
	lay_v1_cpu("v1/cpu");
	lay_v1_memory("v1/memory");
	h = detect();
	assert_int_equal(cgroup_host_version(h), CGROUP_V1);
	assert_string_equal(cgroup_host_base(h, CGROUP_CTRL_CPU),
			    at("v1/cpu/vmmd"));
	assert_string_equal(cgroup_host_base(h, CGROUP_CTRL_MEMORY),
			    at("v1/memory/vmmd"));
	assert_true(exists("v1/cpu/vmmd"));
	assert_false(cgroup_host_has(h, CGROUP_CTRL_CPUSET));
	/* Nothing was enabled or made in the cgroup2 tree. */
	assert_string_equal(get("cg/cgroup.subtree_control"), "");
	assert_false(exists("cg/vmmd"));
	assert_contains(cgroup_host_describe(h), "has none of cpu, cpuset, "
			"memory");
	cgroup_host_free(h);
}

/*
 * A container's view: only part of each hierarchy is mounted (mountinfo's
 * root field), and /proc/self/cgroup names paths from the real root.
 */
static void
test_v1_mount_root(void **state)
{
	char mi[4096], line[1024];
	struct cgroup_host *h;

	(void)state;
	snprintf(mi, sizeof(mi), "31 23 0:31 /lxc/c1 %s rw - cgroup cgroup "
		 "rw,memory\n", at("cg/memory"));
	snprintf(line, sizeof(line), "32 23 0:32 /other %s rw - cgroup cgroup "
		 "rw,cpu\n", at("cg/cpu"));
	strcat(mi, line);
	mountinfo(mi);
	put("proc/self/cgroup", "2:memory:/lxc/c1/svc\n1:cpu:/lxc/c1/svc\n");
	lay_v1_memory("cg/memory/svc/vmmd");
	lay_v1_cpu("cg/cpu");
	h = detect();
	assert_int_equal(cgroup_host_version(h), CGROUP_V1);
	assert_string_equal(cgroup_host_base(h, CGROUP_CTRL_MEMORY),
			    at("cg/memory/svc/vmmd"));
	/* vmmd's cpu cgroup is not inside what is mounted. */
	assert_false(cgroup_host_has(h, CGROUP_CTRL_CPU));
	assert_false(exists("cg/cpu/vmmd"));
	assert_contains(cgroup_host_describe(h), "cpu unavailable: vmmd's cpu "
			"cgroup /lxc/c1/svc is outside the part /other "
			"mounted at ");
	cgroup_host_free(h);
}

/* No mountinfo entries: the usual directories, cpu -> cpu,cpuacct. */
static void
test_v1_usual_paths(void **state)
{
	struct cgroup_limits l = { .memory_limit = GIB };
	struct cgroup_host *h;
	struct cgroup_vm *g;
	char err[512];

	(void)state;
	put("proc/self/mountinfo", "");
	put("proc/self/cgroup", "");
	lay_v1_cpu(V1CPU);
	assert_int_equal(symlink("cpu,cpuacct", at("cg/cpu")), 0);
	assert_int_equal(symlink("cpu,cpuacct", at("cg/cpuacct")), 0);
	lay_v1_memory("cg/memory");
	h = detect();
	assert_int_equal(cgroup_host_version(h), CGROUP_V1);
	assert_string_equal(cgroup_host_base(h, CGROUP_CTRL_CPU),
			    cgroup_host_base(h, CGROUP_CTRL_CPUACCT));
	assert_true(exists(V1CPU "/vmmd"));
	assert_true(exists("cg/memory/vmmd"));
	assert_false(cgroup_host_has(h, CGROUP_CTRL_CPUSET));

	assert_int_equal(cgroup_vm_create(h, "web1", &g, err, sizeof(err)), 0);
	assert_true(exists(V1CPU "/vmmd/web1"));
	put("cg/memory/vmmd/web1/memory.limit_in_bytes", "-1\n");
	assert_int_equal(cpulist_parse("0", &l.cpuset), 0);
	assert_int_equal(cgroup_vm_apply(g, &l, err, sizeof(err)),
			 -EOPNOTSUPP);
	assert_contains(err, "cpu_pin: the cpuset controller is not available "
			"on this host (cgroup v1 without cpuset: no cpuset "
			"hierarchy is mounted under ");
	/* Refused before anything was written. */
	assert_string_equal(get("cg/memory/vmmd/web1/memory.limit_in_bytes"),
			    "-1\n");
	cpulist_zero(&l.cpuset);
	assert_int_equal(cgroup_vm_apply(g, &l, err, sizeof(err)), -ENOENT);
	assert_contains(err, "cpu_weight: writing \"1024\" to ");
	cgroup_vm_free(g);
	cgroup_host_free(h);
}

static void
test_v1_without_cpu(void **state)
{
	struct cgroup_limits l = { .cpu_quota_milli = 500 };
	struct cgroup_host *h;
	struct cgroup_vm *g;
	char err[512];

	(void)state;
	put("proc/self/mountinfo", "");
	put("proc/self/cgroup", "");
	lay_v1_memory("cg/memory");
	h = detect();
	assert_int_equal(cgroup_host_version(h), CGROUP_V1);
	assert_int_equal(cgroup_vm_create(h, "web1", &g, err, sizeof(err)), 0);
	assert_int_equal(cgroup_vm_apply(g, &l, err, sizeof(err)),
			 -EOPNOTSUPP);
	assert_contains(err, "cpu_quota: the cpu controller is not available "
			"on this host (cgroup v1 without cpu: ");
	l.cpu_quota_milli = 0;
	l.cpu_weight = 50;
	assert_int_equal(cgroup_vm_apply(g, &l, err, sizeof(err)),
			 -EOPNOTSUPP);
	assert_contains(err, "cpu_weight: the cpu controller is not "
			"available");
	/* Memory alone works; unset CPU settings need no controller. */
	lay_v1_memory("cg/memory/vmmd/web1");
	l.cpu_weight = 0;
	l.memory_limit = 256 << 20;
	assert_int_equal(cgroup_vm_apply(g, &l, err, sizeof(err)), 0);
	assert_string_equal(get("cg/memory/vmmd/web1/memory.limit_in_bytes"),
			    "268435456");
	cgroup_vm_free(g);
	cgroup_host_free(h);
}

static void
test_neither(void **state)
{
	struct cgroup_limits l = { 0 };
	struct cgroup_attach_result res;
	struct cgroup_stats st;
	struct cgroup_host *h;
	struct cgroup_vm *g;
	char err[512];

	(void)state;
	mkd("cg");
	put("proc/self/mountinfo", "22 1 0:20 / / rw - ext4 /dev/vda rw\n");
	put("proc/self/cgroup", "0::/\n");
	h = detect();
	assert_int_equal(cgroup_host_version(h), CGROUP_NONE);
	assert_contains(cgroup_host_describe(h), "no cgroup controllers: ");
	assert_contains(cgroup_host_describe(h), "CPU and memory limits "
			"cannot be applied");
	assert_int_equal(cgroup_vm_create(h, "web1", &g, err, sizeof(err)), 0);
	assert_null(cgroup_vm_dir(g, CGROUP_CTRL_MEMORY));
	assert_int_equal(cgroup_vm_apply(g, &l, err, sizeof(err)), 0);

	l.cpu_weight = 100;
	assert_int_equal(cgroup_vm_apply(g, &l, err, sizeof(err)),
			 -EOPNOTSUPP);
	assert_contains(err, "cpu_weight: the cpu controller is not available "
			"on this host (no cgroup controllers: ");
	memset(&l, 0, sizeof(l));
	l.cpu_quota_milli = 300;
	assert_int_equal(cgroup_vm_apply(g, &l, err, sizeof(err)),
			 -EOPNOTSUPP);
	assert_contains(err, "cpu_quota: the cpu controller");
	memset(&l, 0, sizeof(l));
	cpulist_set(&l.cpuset, 0);
	assert_int_equal(cgroup_vm_apply(g, &l, err, sizeof(err)),
			 -EOPNOTSUPP);
	assert_contains(err, "cpu_pin: the cpuset controller");
	memset(&l, 0, sizeof(l));
	l.memory_limit = GIB;
	assert_int_equal(cgroup_vm_apply(g, &l, err, sizeof(err)),
			 -EOPNOTSUPP);
	assert_contains(err, "memory_limit: the memory controller");

	assert_int_equal(cgroup_vm_attach(g, 4242, &res, err, sizeof(err)),
			 0);
	assert_int_equal(res.kthreads_found, 0);
	assert_int_equal(cgroup_vm_stats(g, &st), 0);
	assert_false(st.has_cpu);
	assert_false(st.has_memory);
	assert_int_equal(cgroup_vm_destroy(g, err, sizeof(err)), 0);
	cgroup_vm_free(g);
	cgroup_host_free(h);
}

static void
test_names_and_params(void **state)
{
	static const char *const bad[] = {
		"", ".hidden", "a/b", "..", "a..b", "../x", "a b", "web\n1",
		"tab\t", "semi;colon",
	};
	struct cgroup_host_params p = { .root = "relative" };
	struct cgroup_host *h;
	struct cgroup_vm *g;
	char err[512], long_name[300];
	unsigned int i;

	(void)state;
	lay_v1("Web-1_a.b");
	h = detect();
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(cgroup_vm_create(h, bad[i], &g, err,
						  sizeof(err)), -EINVAL);
		assert_contains(err, "is not a safe group name");
	}
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	assert_int_equal(cgroup_vm_create(h, long_name, &g, err, sizeof(err)),
			 -EINVAL);
	/* A name that is one of the cgroup's own files. */
	assert_int_equal(cgroup_vm_create(h, "tasks", &g, err, sizeof(err)),
			 -EEXIST);
	assert_contains(err, "is not a group (the name is a cgroup file)");
	assert_int_equal(cgroup_vm_create(h, "cpu.shares", &g, err,
					  sizeof(err)), -EEXIST);
	/* Fine names. */
	assert_int_equal(cgroup_vm_create(h, "Web-1_a.b", &g, err,
					  sizeof(err)), 0);
	cgroup_vm_free(g);
	cgroup_host_free(h);

	assert_int_equal(cgroup_host_detect_params(&p, &h, err, sizeof(err)),
			 -EINVAL);
	assert_contains(err, "must be absolute paths");
	p.root = "/sys/fs/cgroup";
	p.subtree = "a/b";
	assert_int_equal(cgroup_host_detect_params(&p, &h, err, sizeof(err)),
			 -EINVAL);
	assert_contains(err, "subtree name \"a/b\"");
	assert_string_equal(cgroup_ctrl_name(CGROUP_CTRL_CPUSET), "cpuset");
}

/* --- the command-line front end for the integration test ---------------- */

static int
cli_fail(const char *what, int r, const char *err)
{
	printf("error=%d %s\n", -r, err);
	fprintf(stderr, "%s: %s (%s)\n", what, err, strerror(-r));
	return 1;
}

static int
cli(int argc, char **argv)
{
	struct cgroup_host_params p = { 0 };
	struct cgroup_attach_result res;
	struct cgroup_limits l;
	struct cgroup_stats st;
	struct cgroup_host *h;
	struct cgroup_vm *g;
	const char *cmd, *name = NULL;
	char err[1024] = "";
	unsigned int c;
	int i = 0, r;

	for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
		if (strcmp(argv[i], "-r") == 0)
			p.root = argv[i + 1];
		else if (strcmp(argv[i], "-p") == 0)
			p.proc = argv[i + 1];
		else if (strcmp(argv[i], "-s") == 0)
			p.subtree = argv[i + 1];
		else
			break;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: cli [-r ROOT] [-p PROC] [-s SUBTREE] "
			"CMD ...\n");
		return 2;
	}
	cmd = argv[i++];
	r = cgroup_host_detect_params(&p, &h, err, sizeof(err));
	if (r < 0)
		return cli_fail("detect", r, err);
	if (strcmp(cmd, "detect") == 0) {
		static const char *const v[] = { "none", "v1", "v2" };

		printf("version=%s\n", v[cgroup_host_version(h)]);
		printf("desc=%s\n", cgroup_host_describe(h));
		for (c = 0; c < CGROUP_CTRL_MAX; c++)
			printf("base.%s=%s\n", cgroup_ctrl_name(c),
			       cgroup_host_base(h, c) ?
			       cgroup_host_base(h, c) : "-");
		cgroup_host_free(h);
		return 0;
	}
	if (i >= argc) {
		fprintf(stderr, "%s: needs a VM name\n", cmd);
		cgroup_host_free(h);
		return 2;
	}
	name = argv[i++];
	if (strcmp(cmd, "create") == 0)
		r = cgroup_vm_create(h, name, &g, err, sizeof(err));
	else
		r = cgroup_vm_open_existing(h, name, &g, err, sizeof(err));
	if (r < 0) {
		cgroup_host_free(h);
		return cli_fail(cmd, r, err);
	}
	r = 0;
	if (strcmp(cmd, "create") == 0) {
		for (c = 0; c < CGROUP_CTRL_MAX; c++)
			printf("dir.%s=%s\n", cgroup_ctrl_name(c),
			       cgroup_vm_dir(g, c) ? cgroup_vm_dir(g, c) :
			       "-");
	} else if (strcmp(cmd, "apply") == 0) {
		memset(&l, 0, sizeof(l));
		for (; i < argc && r == 0; i++) {
			char *v = strchr(argv[i], '=');

			if (!v) {
				r = -EINVAL;
				break;
			}
			v++;
			if (strncmp(argv[i], "weight=", 7) == 0)
				l.cpu_weight = (uint32_t)strtoul(v, NULL, 10);
			else if (strncmp(argv[i], "quota=", 6) == 0)
				l.cpu_quota_milli = (uint32_t)strtoul(v, NULL,
								      10);
			else if (strncmp(argv[i], "cpus=", 5) == 0)
				r = cpulist_parse(v, &l.cpuset);
			else if (strncmp(argv[i], "memory=", 7) == 0)
				l.memory_limit = strtoull(v, NULL, 10);
			else
				r = -EINVAL;
		}
		if (r < 0)
			snprintf(err, sizeof(err), "bad argument %s",
				 argv[i]);
		else
			r = cgroup_vm_apply(g, &l, err, sizeof(err));
	} else if (strcmp(cmd, "attach") == 0 && i < argc) {
		r = cgroup_vm_attach(g, (pid_t)atoi(argv[i]), &res, err,
				     sizeof(err));
		if (r == 0)
			printf("kthreads_found=%u\nkthreads_moved=%u\n",
			       res.kthreads_found, res.kthreads_moved);
	} else if (strcmp(cmd, "stats") == 0) {
		r = cgroup_vm_stats(g, &st);
		snprintf(err, sizeof(err), "stats");
		if (r == 0)
			printf("has_cpu=%d\ncpu_usage_ns=%" PRIu64 "\n"
			       "has_throttle=%d\ncpu_nr_throttled=%" PRIu64
			       "\ncpu_throttled_ns=%" PRIu64 "\n"
			       "has_memory=%d\nmemory_current=%" PRIu64 "\n"
			       "memory_peak=%" PRIu64 "\n", st.has_cpu,
			       st.cpu_usage_ns, st.has_throttle,
			       st.cpu_nr_throttled, st.cpu_throttled_ns,
			       st.has_memory, st.memory_current,
			       st.memory_peak);
	} else if (strcmp(cmd, "destroy") == 0) {
		r = cgroup_vm_destroy(g, err, sizeof(err));
	} else {
		fprintf(stderr, "unknown command %s\n", cmd);
		r = -EINVAL;
		snprintf(err, sizeof(err), "unknown command");
	}
	cgroup_vm_free(g);
	cgroup_host_free(h);
	return r < 0 ? cli_fail(cmd, r, err) : 0;
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_v2_detect_delegated,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_v2_detect_already_moved,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_v2_detect_in_root_cgroup,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_v2_not_delegated,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_v2_apply, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_v2_refusals, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_v2_stats, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_v2_attach_destroy, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_v1_detect, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_v1_apply, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_v1_attach_stats, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_hybrid_empty_v2_at_root,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_v1_mount_root, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_v1_usual_paths, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_v1_without_cpu, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_neither, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_names_and_params, setup,
						teardown),
	};

	if (argc > 1 && strcmp(argv[1], "cli") == 0)
		return cli(argc - 2, argv + 2);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

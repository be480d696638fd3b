/* SPDX-License-Identifier: MIT */
/*
 * From a VM definition's resources to what vmmd asks of cgroups and of the
 * scheduler (vmmd/limits.c): the group's limits (the cpuset being the
 * union of the vCPU pins and device_cpus), which settings need a cgroup,
 * and CPUs the host does not offer refused naming the setting. What is
 * applied to a real process is tests/integration/test_vmmd_limits.sh.
 */
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/vmdef.h"
#include "vmmd/limits.h"

static struct vmdef *
def_from(const char *resources, unsigned int vcpus)
{
	char text[1024];
	struct vmdef *def;
	char err[256];

	snprintf(text, sizeof(text), "{\"name\":\"t\",\"kernel\":\"/k\","
		 "\"vcpus\":%u,\"resources\":%s}", vcpus, resources);
	if (vmdef_from_string(text, strlen(text), 0, &def, err,
			      sizeof(err)) < 0)
		fail_msg("definition %s: %s", text, err);
	return def;
}

static void
cpuset_text(const struct cgroup_limits *l, char *buf, size_t len)
{
	assert_int_equal(cpulist_format(&l->cpuset, buf, len), 0);
}

static void
test_from_resources(void **state)
{
	struct vmdef *def;
	struct cgroup_limits l;
	char buf[64];

	(void)state;
	def = def_from("{\"cpu_weight\":300,\"cpu_quota\":1.5,"
		       "\"memory_limit\":\"1G\",\"cpu_pin\":[\"2\",\"4-5\"],"
		       "\"device_cpus\":\"7\"}", 2);
	limits_from_resources(&def->resources, &l);
	assert_int_equal(l.cpu_weight, 300);
	assert_int_equal(l.cpu_quota_milli, 1500);
	assert_int_equal(l.memory_limit, 1ull << 30);
	cpuset_text(&l, buf, sizeof(buf));
	assert_string_equal(buf, "2,4-5,7");
	vmdef_free(def);

	/* Pins alone: their union; overlapping pins count once. */
	def = def_from("{\"cpu_pin\":[\"0-1\",\"1-3\"]}", 2);
	limits_from_resources(&def->resources, &l);
	assert_int_equal(l.cpu_weight, 0);
	assert_int_equal(l.cpu_quota_milli, 0);
	assert_int_equal(l.memory_limit, 0);
	cpuset_text(&l, buf, sizeof(buf));
	assert_string_equal(buf, "0-3");
	vmdef_free(def);

	/* Nothing set: every limit unset, the cpuset empty (inherit). */
	def = def_from("{}", 1);
	memset(&l, 0xff, sizeof(l));
	limits_from_resources(&def->resources, &l);
	assert_int_equal(l.cpu_weight, 0);
	assert_int_equal(l.cpu_quota_milli, 0);
	assert_int_equal(l.memory_limit, 0);
	assert_int_equal(cpulist_count(&l.cpuset), 0);
	vmdef_free(def);
}

static void
test_need_cgroup(void **state)
{
	struct vmdef *def;

	(void)state;
	def = def_from("{}", 1);
	assert_null(limits_need_cgroup(&def->resources));
	vmdef_free(def);
	/* Pinning works through affinity alone. */
	def = def_from("{\"cpu_pin\":[\"0\"],\"device_cpus\":\"0\"}", 1);
	assert_null(limits_need_cgroup(&def->resources));
	vmdef_free(def);
	def = def_from("{\"memory_limit\":\"1G\"}", 1);
	assert_string_equal(limits_need_cgroup(&def->resources),
			    "memory_limit");
	vmdef_free(def);
	def = def_from("{\"cpu_quota\":0.5,\"memory_limit\":\"1G\"}", 1);
	assert_string_equal(limits_need_cgroup(&def->resources), "cpu_quota");
	vmdef_free(def);
	def = def_from("{\"cpu_weight\":5}", 1);
	assert_string_equal(limits_need_cgroup(&def->resources),
			    "cpu_weight");
	vmdef_free(def);
}

static void
test_check_cpus(void **state)
{
	struct vmdef *def;
	cpu_set_t allowed;
	char err[256];

	(void)state;
	CPU_ZERO(&allowed);
	CPU_SET(0, &allowed);
	CPU_SET(1, &allowed);
	CPU_SET(3, &allowed);

	def = def_from("{\"cpu_pin\":[\"0-1\",\"3\"],\"device_cpus\":\"1\"}",
		       2);
	err[0] = '\0';
	assert_int_equal(limits_check_cpus(&def->resources, &allowed, err,
					   sizeof(err)), 0);
	assert_string_equal(err, "");
	vmdef_free(def);

	def = def_from("{\"cpu_pin\":[\"0\",\"2-3\"]}", 2);
	assert_int_equal(limits_check_cpus(&def->resources, &allowed, err,
					   sizeof(err)), -EINVAL);
	assert_string_equal(err, "resources.cpu_pin[1]: CPU 2 is not "
			    "available on this host (allowed: 0-1,3)");
	vmdef_free(def);

	def = def_from("{\"device_cpus\":\"1000\"}", 1);
	assert_int_equal(limits_check_cpus(&def->resources, &allowed, err,
					   sizeof(err)), -EINVAL);
	assert_string_equal(err, "resources.device_cpus: CPU 1000 is not "
			    "available on this host (allowed: 0-1,3)");
	vmdef_free(def);

	/* Nothing pinned: nothing to refuse, whatever the host has. */
	CPU_ZERO(&allowed);
	def = def_from("{\"cpu_weight\":100}", 1);
	assert_int_equal(limits_check_cpus(&def->resources, &allowed, err,
					   sizeof(err)), 0);
	vmdef_free(def);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_from_resources),
		cmocka_unit_test(test_need_cgroup),
		cmocka_unit_test(test_check_cpus),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

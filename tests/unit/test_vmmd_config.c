/* SPDX-License-Identifier: MIT */
/* vmmd's configuration file: defaults, every key, errors that name it. */
#include <errno.h>
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
#include <jansson.h>

#include "vmmd/config.h"

/* Parse text; on success *ret is the config. Returns the errno. */
static int
parse(const char *text, struct config **ret, char *err, size_t errlen)
{
	json_error_t je;
	json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &je);
	int r;

	if (!j)
		fail_msg("test JSON does not parse: %s: %s", text, je.text);
	err[0] = '\0';
	r = config_from_json(j, ret, err, errlen);
	json_decref(j);
	return r;
}

static void
expect_error(const char *text, const char *message)
{
	struct config *c = NULL;
	char err[512];
	int r = parse(text, &c, err, sizeof(err));

	if (r != -EINVAL || strcmp(err, message) != 0)
		fail_msg("config %s: expected -EINVAL \"%s\", got %d \"%s\"",
			 text, message, r, err);
	assert_null(c);
}

static void
test_defaults(void **state)
{
	struct config *c;
	char err[256];

	(void)state;
	assert_int_equal(parse("{}", &c, err, sizeof(err)), 0);
	assert_string_equal(c->state_dir, "/var/lib/vmmd");
	assert_string_equal(c->runtime_dir, "/run/vmmd");
	assert_string_equal(c->socket, "/run/vmmd/vmmd.sock");
	assert_null(c->socket_group);
	assert_null(c->policy);
	assert_null(c->vmm_run);
	assert_false(c->tls.enabled);
	assert_string_equal(c->tls.address, "0.0.0.0");
	assert_int_equal(c->tls.port, 7443);
	assert_int_equal(c->max_vms, 256);
	assert_int_equal(c->max_clients, 256);
	assert_int_equal(c->frame_max, 1048576);
	assert_int_equal(c->requests_in_flight, 64);
	assert_int_equal(c->idle_timeout_sec, 600);
	assert_int_equal(c->output_max, 16u << 20);
	assert_int_equal(c->start_timeout_sec, 10);
	assert_int_equal(c->log_level, LOG_LEVEL_INFO);
	config_free(c);

	/* config_new() is the same as an empty file. */
	assert_int_equal(config_new(&c), 0);
	assert_string_equal(c->socket, CONFIG_SOCKET_DEFAULT);
	assert_int_equal(c->max_vms, CONFIG_MAX_VMS_DEFAULT);
	config_free(c);
	config_free(NULL);
}

static void
test_every_key(void **state)
{
	struct config *c;
	char err[256];

	(void)state;
	assert_int_equal(parse(
		"{\"state_dir\": \"/srv/vmmd\", \"runtime_dir\": \"/run/x\","
		" \"socket\": \"/run/x/s.sock\", \"socket_group\": \"kvm\","
		" \"tls\": {\"address\": \"::1\", \"port\": 9443,"
		"  \"cert\": \"/etc/vmmd/server.pem\","
		"  \"key\": \"/etc/vmmd/server.key\","
		"  \"ca\": \"/etc/vmmd/ca.pem\","
		"  \"policy\": \"/etc/vmmd/policy.json\"},"
		" \"limits\": {\"max_vms\": 10, \"max_clients\": 3,"
		"  \"frame_max\": \"4M\", \"requests_in_flight\": 2,"
		"  \"idle_timeout_sec\": 0, \"output_max\": 65536,"
		"  \"start_timeout_sec\": 30},"
		" \"log_level\": \"debug\", \"vmm_run\": \"/usr/bin/vmm-run\"}",
		&c, err, sizeof(err)), 0);
	assert_string_equal(c->state_dir, "/srv/vmmd");
	assert_string_equal(c->runtime_dir, "/run/x");
	assert_string_equal(c->socket, "/run/x/s.sock");
	assert_string_equal(c->socket_group, "kvm");
	assert_true(c->tls.enabled);
	assert_string_equal(c->tls.address, "::1");
	assert_int_equal(c->tls.port, 9443);
	assert_string_equal(c->tls.cert, "/etc/vmmd/server.pem");
	assert_string_equal(c->tls.key, "/etc/vmmd/server.key");
	assert_string_equal(c->tls.ca, "/etc/vmmd/ca.pem");
	assert_string_equal(c->policy, "/etc/vmmd/policy.json");
	assert_int_equal(c->max_vms, 10);
	assert_int_equal(c->max_clients, 3);
	assert_int_equal(c->frame_max, 4u << 20);
	assert_int_equal(c->requests_in_flight, 2);
	assert_int_equal(c->idle_timeout_sec, 0);
	assert_int_equal(c->output_max, 65536);
	assert_int_equal(c->start_timeout_sec, 30);
	assert_int_equal(c->log_level, LOG_LEVEL_DEBUG);
	assert_string_equal(c->vmm_run, "/usr/bin/vmm-run");
	config_free(c);

	/* A policy for the UNIX socket alone; null resets to the default. */
	assert_int_equal(parse("{\"policy\": \"/p.json\", \"socket_group\": "
			       "null, \"tls\": null, \"log_level\": "
			       "\"warning\"}", &c, err, sizeof(err)), 0);
	assert_string_equal(c->policy, "/p.json");
	assert_null(c->socket_group);
	assert_false(c->tls.enabled);
	assert_int_equal(c->log_level, LOG_LEVEL_WARN);
	config_free(c);
}

static void
test_unknown_keys(void **state)
{
	(void)state;
	expect_error("{\"sockett\": \"/x\"}", "sockett: unknown key");
	expect_error("{\"limits\": {\"max_vm\": 3}}",
		     "limits.max_vm: unknown key");
	expect_error("{\"tls\": {\"prot\": 1, \"cert\": \"/c\", \"ca\": "
		     "\"/a\", \"policy\": \"/p\"}}", "tls.prot: unknown key");
}

static void
test_bad_values(void **state)
{
	(void)state;
	expect_error("[]", "the configuration must be a JSON object");
	expect_error("{\"state_dir\": \"var/lib\"}",
		     "state_dir: must be an absolute path");
	expect_error("{\"state_dir\": 5}",
		     "state_dir: must be a non-empty string");
	expect_error("{\"socket\": \"\"}",
		     "socket: must be a non-empty string");
	expect_error("{\"socket\": null}", "socket: cannot be null");
	expect_error("{\"limits\": {\"max_vms\": \"many\"}}",
		     "limits.max_vms: must be an integer 1..65536");
	expect_error("{\"limits\": {\"max_vms\": 0}}",
		     "limits.max_vms: must be an integer 1..65536");
	expect_error("{\"limits\": {\"max_clients\": -1}}",
		     "limits.max_clients: must be an integer 1..65536");
	expect_error("{\"limits\": {\"max_clients\": true}}",
		     "limits.max_clients: must be an integer 1..65536");
	expect_error("{\"limits\": {\"frame_max\": \"2K\"}}",
		     "limits.frame_max: must be a size 64K..256M");
	expect_error("{\"limits\": {\"frame_max\": \"lots\"}}",
		     "limits.frame_max: must be a size 64K..256M");
	expect_error("{\"limits\": 5}", "limits: must be an object");
	expect_error("{\"limits\": null}", "limits: cannot be null");
	expect_error("{\"tls\": {\"port\": 70000, \"cert\": \"/c\", \"ca\": "
		     "\"/a\", \"policy\": \"/p\"}}",
		     "tls.port: must be an integer 1..65535");
	expect_error("{\"log_level\": \"loud\"}", "log_level: must be one of "
		     "\"error\", \"warn\", \"info\", \"debug\"");
}

static void
test_tls_needs(void **state)
{
	(void)state;
	expect_error("{\"tls\": {\"ca\": \"/a\", \"policy\": \"/p\"}}",
		     "tls.cert: required with tls");
	expect_error("{\"tls\": {\"cert\": \"/c\", \"policy\": \"/p\"}}",
		     "tls.ca: required with tls");
	expect_error("{\"tls\": {\"cert\": \"/c\", \"ca\": \"/a\"}}",
		     "tls.policy: required with tls (certificate identities "
		     "map to roles through it)");
	expect_error("{\"policy\": \"/p\", \"tls\": {\"cert\": \"/c\", \"ca\": "
		     "\"/a\", \"policy\": \"/q\"}}",
		     "tls.policy: set either policy or tls.policy, not both");
}

static void
test_load_file(void **state)
{
	char dir[] = "/tmp/test_vmmd_config.XXXXXX", path[128], err[512];
	struct config *c = NULL;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/vmmd.json", dir);

	f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\"max_vms\": 3}\n", f);
	fclose(f);
	assert_int_equal(config_load(path, &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "max_vms: unknown key"));

	f = fopen(path, "w");
	fputs("{\"limits\": {\"max_vms\": 3},\n \"limits\": {}}\n", f);
	fclose(f);
	assert_int_equal(config_load(path, &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "line 2"));

	f = fopen(path, "w");
	fputs("{\"limits\": {\"max_vms\": 3}}\n", f);
	fclose(f);
	assert_int_equal(config_load(path, &c, err, sizeof(err)), 0);
	assert_int_equal(c->max_vms, 3);
	config_free(c);

	unlink(path);
	assert_int_equal(config_load(path, &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, path));
	rmdir(dir);
}

static void
test_find_vmm_run(void **state)
{
	char dir[] = "/tmp/test_vmmd_vmmrun.XXXXXX", exe[128], self[128];
	char buf[256];
	struct config *c;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(exe, sizeof(exe), "%s/vmm-run", dir);
	snprintf(self, sizeof(self), "%s/vmmd", dir);
	assert_int_equal(config_new(&c), 0);

	/* Next to vmmd first. */
	f = fopen(exe, "w");
	assert_non_null(f);
	fputs("#!/bin/sh\n", f);
	fclose(f);
	assert_int_equal(chmod(exe, 0755), 0);
	assert_int_equal(config_find_vmm_run(c, self, buf, sizeof(buf)), 0);
	assert_string_equal(buf, exe);
	/* Too small a buffer. */
	c->vmm_run = strdup(exe);
	assert_int_equal(config_find_vmm_run(c, self, buf, 8), -ENAMETOOLONG);
	/* The configured one wins; it must be executable. */
	assert_int_equal(config_find_vmm_run(c, "/nowhere/vmmd", buf,
					     sizeof(buf)), 0);
	assert_string_equal(buf, exe);
	assert_int_equal(chmod(exe, 0644), 0);
	/* Root may execute anything with an x bit; none is set now. */
	assert_int_equal(config_find_vmm_run(c, self, buf, sizeof(buf)),
			 -ENOENT);
	unlink(exe);
	rmdir(dir);
	config_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_unknown_keys),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_tls_needs),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_find_vmm_run),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

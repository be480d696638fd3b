/* SPDX-License-Identifier: MIT */
/*
 * Where vmctl connects: URIs, and the order in which --connect, --context,
 * $VMCTL_CONNECT, the config file's current context and the default
 * decide; the config file's errors name the key and the file.
 */
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

#include "vmctl/client.h"
#include "vmctl/config.h"
#include "vmctl/vmctl.h"

/* --- URIs ------------------------------------------------------------------ */

static void
test_uri_unix(void **state)
{
	struct client_uri u;
	char err[256] = "";

	(void)state;
	assert_int_equal(client_uri_parse("unix:///run/vmmd/vmmd.sock", &u,
					  err, sizeof(err)), 0);
	assert_int_equal(u.kind, CLIENT_URI_UNIX);
	assert_string_equal(u.path, "/run/vmmd/vmmd.sock");
	/* A bare absolute path is a UNIX socket too. */
	assert_int_equal(client_uri_parse("/tmp/x.sock", &u, err,
					  sizeof(err)), 0);
	assert_int_equal(u.kind, CLIENT_URI_UNIX);
	assert_string_equal(u.path, "/tmp/x.sock");

	assert_int_equal(client_uri_parse("unix://run/x.sock", &u, err,
					  sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "absolute path"));
	assert_int_equal(client_uri_parse("unix://", &u, err, sizeof(err)),
			 -EINVAL);
}

static void
test_uri_unix_too_long(void **state)
{
	struct client_uri u;
	char uri[200], err[256] = "";

	(void)state;
	snprintf(uri, sizeof(uri), "unix:///%0150d", 0);
	assert_int_equal(client_uri_parse(uri, &u, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "longer than 107 bytes"));
	/* 107 bytes is the most sun_path holds with its NUL. */
	snprintf(uri, sizeof(uri), "unix:///%0106d", 0);
	assert_int_equal(client_uri_parse(uri, &u, err, sizeof(err)), 0);
	assert_int_equal(strlen(u.path), 107);
}

static void
test_uri_tls(void **state)
{
	struct client_uri u;
	char err[256] = "";

	(void)state;
	assert_int_equal(client_uri_parse("tls://kvm-07.example.net:7443", &u,
					  err, sizeof(err)), 0);
	assert_int_equal(u.kind, CLIENT_URI_TLS);
	assert_string_equal(u.host, "kvm-07.example.net");
	assert_string_equal(u.port, "7443");

	assert_int_equal(client_uri_parse("tls://[::1]:9000", &u, err,
					  sizeof(err)), 0);
	assert_string_equal(u.host, "::1");
	assert_string_equal(u.port, "9000");

	assert_int_equal(client_uri_parse("tls://10.0.0.1", &u, err,
					  sizeof(err)), 0);
	assert_string_equal(u.host, "10.0.0.1");
	assert_string_equal(u.port, VMCTL_TLS_DEFAULT_PORT);

	assert_int_equal(client_uri_parse("tls://h:8443/", &u, err,
					  sizeof(err)), 0);
	assert_string_equal(u.port, "8443");
}

static void
test_uri_bad(void **state)
{
	static const struct {
		const char *uri;
		const char *why;
	} bad[] = {
		{ "http://h:80", "not a URI vmctl knows" },
		{ "tls://", "missing host" },
		{ "tls://:7443", "missing host" },
		{ "tls://h:0", "1..65535" },
		{ "tls://h:65536", "1..65535" },
		{ "tls://h:12a", "1..65535" },
		{ "tls://h:", "1..65535" },
		{ "tls://h:443/path", "1..65535" },
		{ "tls://h/path", "after the host" },
		{ "tls://[::1", "missing ']'" },
		{ "vmmd.sock", "not a URI vmctl knows" },
		{ "", "not a URI vmctl knows" },
	};
	struct client_uri u;
	char err[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (client_uri_parse(bad[i].uri, &u, err, sizeof(err)) != -EINVAL)
			fail_msg("\"%s\" was accepted", bad[i].uri);
		if (!strstr(err, bad[i].why))
			fail_msg("\"%s\": expected \"%s\" in \"%s\"", bad[i].uri,
				 bad[i].why, err);
	}
}

/* --- the config file ---------------------------------------------------------- */

struct cfg_dir {
	char dir[64];
	char path[128];
};

static void
cfg_write(struct cfg_dir *d, const char *text)
{
	FILE *f;

	if (!d->dir[0]) {
		snprintf(d->dir, sizeof(d->dir), "/tmp/vmctl-cfg.XXXXXX");
		assert_non_null(mkdtemp(d->dir));
		snprintf(d->path, sizeof(d->path), "%s/config.json", d->dir);
	}
	f = fopen(d->path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void
cfg_remove(struct cfg_dir *d)
{
	unlink(d->path);
	rmdir(d->dir);
}

static const char two_contexts[] =
	"{\"contexts\": {"
	" \"prod\": {\"connect\": \"tls://prod.example:7443\","
	"  \"cert\": \"certs/me.pem\", \"key\": \"/keys/me.key\","
	"  \"ca\": \"ca.pem\"},"
	" \"lab\": {\"connect\": \"unix:///run/lab.sock\"}},"
	" \"current\": \"prod\"}";

static void
test_resolve_default(void **state)
{
	struct config_input in = { 0 };
	struct config_target t = { 0 };
	char err[256] = "";

	(void)state;
	assert_int_equal(config_resolve(&in, &t, err, sizeof(err)), 0);
	assert_string_equal(t.uri, VMCTL_DEFAULT_URI);
	assert_null(t.cert);
	assert_null(t.context);
	config_target_clear(&t);
	config_target_clear(&t);

	/* A config path that does not exist is no config at all. */
	in.config_path = "/nonexistent/vmctl/config.json";
	in.env_connect = "unix:///env.sock";
	assert_int_equal(config_resolve(&in, &t, err, sizeof(err)), 0);
	assert_string_equal(t.uri, "unix:///env.sock");
	config_target_clear(&t);

	in.connect = "unix:///flag.sock";
	in.cert = "/c.pem";
	assert_int_equal(config_resolve(&in, &t, err, sizeof(err)), 0);
	assert_string_equal(t.uri, "unix:///flag.sock");
	assert_string_equal(t.cert, "/c.pem");
	config_target_clear(&t);
}

static void
test_resolve_contexts(void **state)
{
	struct cfg_dir d = { 0 };
	struct config_input in = { 0 };
	struct config_target t = { 0 };
	char err[256] = "", want[256];

	(void)state;
	cfg_write(&d, two_contexts);
	in.config_path = d.path;

	/* The current context, its files relative to the config's directory. */
	assert_int_equal(config_resolve(&in, &t, err, sizeof(err)), 0);
	assert_string_equal(t.uri, "tls://prod.example:7443");
	assert_string_equal(t.context, "prod");
	snprintf(want, sizeof(want), "%s/certs/me.pem", d.dir);
	assert_string_equal(t.cert, want);
	assert_string_equal(t.key, "/keys/me.key");
	snprintf(want, sizeof(want), "%s/ca.pem", d.dir);
	assert_string_equal(t.ca, want);
	config_target_clear(&t);

	/* $VMCTL_CONNECT beats the current context (and its files). */
	in.env_connect = "unix:///env.sock";
	assert_int_equal(config_resolve(&in, &t, err, sizeof(err)), 0);
	assert_string_equal(t.uri, "unix:///env.sock");
	assert_null(t.cert);
	assert_null(t.context);
	config_target_clear(&t);

	/* --context beats $VMCTL_CONNECT. */
	in.context = "lab";
	assert_int_equal(config_resolve(&in, &t, err, sizeof(err)), 0);
	assert_string_equal(t.uri, "unix:///run/lab.sock");
	assert_string_equal(t.context, "lab");
	config_target_clear(&t);

	/* --connect beats --context, whose files still apply; --ca beats them. */
	in.context = "prod";
	in.connect = "tls://other:1";
	in.ca = "/my/ca.pem";
	assert_int_equal(config_resolve(&in, &t, err, sizeof(err)), 0);
	assert_string_equal(t.uri, "tls://other:1");
	assert_string_equal(t.ca, "/my/ca.pem");
	assert_string_equal(t.key, "/keys/me.key");
	config_target_clear(&t);

	/* An unknown context is an error naming it. */
	in.context = "staging";
	assert_int_equal(config_resolve(&in, &t, err, sizeof(err)), -ENOENT);
	assert_null(t.uri);
	snprintf(want, sizeof(want), "context \"staging\": not in %s", d.path);
	assert_string_equal(err, want);
	cfg_remove(&d);

	/* So is --context without a config file. */
	in.context = "prod";
	assert_int_equal(config_resolve(&in, &t, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "no config file"));
}

static void
test_resolve_bad_files(void **state)
{
	static const struct {
		const char *text;
		const char *why;
	} bad[] = {
		{ "{\"contexts\": {}, \"curent\": \"x\"}", "curent: unknown key" },
		{ "{\"contexts\": {\"a\": {\"conect\": \"unix:///x\"}}}",
		  "contexts.a.conect: unknown key" },
		{ "{\"contexts\": {\"a\": {\"connect\": 7}}}",
		  "contexts.a.connect: must be a non-empty string" },
		{ "{\"contexts\": {\"a\": []}}", "contexts.a: must be an object" },
		{ "{\"contexts\": []}", "contexts: must be an object" },
		{ "{\"current\": 1}", "current: must be a string" },
		{ "[]", "must be a JSON object" },
		{ "{\"contexts\": {", ":1: " },
		{ "{\"current\": \"a\", \"current\": \"b\"}", "duplicate" },
		{ "{\"contexts\": {}, \"current\": \"gone\"}",
		  "context \"gone\": not in" },
	};
	struct cfg_dir d = { 0 };
	struct config_input in = { 0 };
	struct config_target t = { 0 };
	char err[512];
	size_t i;
	int r;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg_write(&d, bad[i].text);
		in.config_path = d.path;
		err[0] = '\0';
		r = config_resolve(&in, &t, err, sizeof(err));
		if (r >= 0)
			fail_msg("config %s was accepted", bad[i].text);
		assert_null(t.uri);
		if (!strstr(err, bad[i].why))
			fail_msg("config %s: expected \"%s\" in \"%s\"",
				 bad[i].text, bad[i].why, err);
	}
	cfg_remove(&d);
}

static void
test_default_path(void **state)
{
	char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
	char *sx = xdg ? strdup(xdg) : NULL, *sh = home ? strdup(home) : NULL;
	char buf[256], tiny[8];

	(void)state;
	setenv("XDG_CONFIG_HOME", "/xdg", 1);
	setenv("HOME", "/home/me", 1);
	assert_int_equal(config_default_path(buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/xdg/vmctl/config.json");
	assert_int_equal(config_default_path(tiny, sizeof(tiny)),
			 -ENAMETOOLONG);
	/* A relative XDG_CONFIG_HOME is to be ignored (XDG base dir spec). */
	setenv("XDG_CONFIG_HOME", "rel", 1);
	assert_int_equal(config_default_path(buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/home/me/.config/vmctl/config.json");
	unsetenv("XDG_CONFIG_HOME");
	unsetenv("HOME");
	assert_int_equal(config_default_path(buf, sizeof(buf)), -ENOENT);
	if (sx)
		setenv("XDG_CONFIG_HOME", sx, 1);
	if (sh)
		setenv("HOME", sh, 1);
	free(sx);
	free(sh);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uri_unix),
		cmocka_unit_test(test_uri_unix_too_long),
		cmocka_unit_test(test_uri_tls),
		cmocka_unit_test(test_uri_bad),
		cmocka_unit_test(test_resolve_default),
		cmocka_unit_test(test_resolve_contexts),
		cmocka_unit_test(test_resolve_bad_files),
		cmocka_unit_test(test_default_path),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * The store of definitions: atomic saves (temporary file, rename), what a
 * reload finds, corrupt files reported and skipped without losing the
 * others, removal, and the store's document of a VM (registry.c).
 */
#include <dirent.h>
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

#include "vmmd/registry.h"
#include "vmmd/store.h"

struct fixture {
	char dir[64];
	struct store *s;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];

	strcpy(f->dir, "/tmp/test_vmmd_store.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	/* The state dir itself is created too. */
	strcat(f->dir, "/state");
	if (store_open(f->dir, &f->s, err, sizeof(err)) < 0) {
		print_error("store_open: %s\n", err);
		return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	store_free(f->s);
	*strrchr(f->dir, '/') = '\0';
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static void
write_file(const char *dir, const char *name, const char *text)
{
	char path[256];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static unsigned int
count_entries(const char *dir)
{
	struct dirent *de;
	unsigned int n = 0;
	DIR *d = opendir(dir);

	assert_non_null(d);
	while ((de = readdir(d)))
		n += de->d_name[0] != '.' || strncmp(de->d_name, ".tmp-", 5) == 0;
	closedir(d);
	return n;
}

static void
test_save_is_atomic_and_durable(void **state)
{
	struct fixture *f = *state;
	char path[256], err[256];
	struct stat st1, st2;
	json_t *doc, *back;
	json_error_t je;

	snprintf(path, sizeof(path), "%s/web1.json", store_dir(f->s));
	assert_int_equal(stat(store_dir(f->s), &st1), 0);
	assert_int_equal(st1.st_mode & 0777, 0700);

	doc = json_pack("{s:{s:s, s:i}}", "definition", "name", "web1",
			"vcpus", 2);
	assert_int_equal(store_save(f->s, "web1", doc, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st1), 0);
	assert_int_equal(st1.st_mode & 0777, 0600);
	back = json_load_file(path, 0, &je);
	assert_non_null(back);
	assert_true(json_equal(doc, back));
	json_decref(back);

	/* A new save replaces the file by rename: a new inode, never a
	 * file written in place that a crash could leave half-written. */
	json_object_set_new(json_object_get(doc, "definition"), "vcpus",
			    json_integer(4));
	assert_int_equal(store_save(f->s, "web1", doc, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st2), 0);
	assert_int_not_equal(st1.st_ino, st2.st_ino);
	back = json_load_file(path, 0, &je);
	assert_int_equal(json_integer_value(json_object_get(
		json_object_get(back, "definition"), "vcpus")), 4);
	json_decref(back);
	/* No temporary file is left. */
	assert_int_equal(count_entries(store_dir(f->s)), 1);

	/* Bad names and documents are refused before anything is written. */
	assert_int_equal(store_save(f->s, "../etc", doc, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(store_save(f->s, "", doc, err, sizeof(err)), -EINVAL);
	assert_int_equal(store_save(f->s, "x", json_object_get(
		json_object_get(doc, "definition"), "vcpus"), err,
		sizeof(err)), -EINVAL);
	assert_int_equal(count_entries(store_dir(f->s)), 1);
	json_decref(doc);
}

struct loaded {
	char names[8][64];
	unsigned int nr;
	char bad[8][256];
	char why[8][256];
	unsigned int nr_bad;
};

static void
on_ok(void *arg, const char *name, json_t *doc)
{
	struct loaded *l = arg;

	assert_true(json_is_object(doc));
	assert_true(l->nr < 8);
	snprintf(l->names[l->nr++], 64, "%s", name);
}

static void
on_bad(void *arg, const char *path, const char *why)
{
	struct loaded *l = arg;

	assert_true(l->nr_bad < 8);
	snprintf(l->bad[l->nr_bad], 256, "%s", strrchr(path, '/') + 1);
	snprintf(l->why[l->nr_bad++], 256, "%s", why);
}

static void
test_reload_skips_corrupt_files(void **state)
{
	struct fixture *f = *state;
	const char *names[] = { "zeta", "alpha", "mid.1" };
	struct loaded l = { 0 };
	char err[256];
	unsigned int i;
	json_t *doc;

	for (i = 0; i < 3; i++) {
		doc = json_pack("{s:s}", "k", names[i]);
		assert_int_equal(store_save(f->s, names[i], doc, err,
					    sizeof(err)), 0);
		json_decref(doc);
	}
	write_file(store_dir(f->s), "broken.json", "{\"definition\": {");
	write_file(store_dir(f->s), "array.json", "[1, 2]");
	write_file(store_dir(f->s), "dup.json", "{\"a\": 1, \"a\": 2}");
	write_file(store_dir(f->s), "-bad-name.json", "{}");
	write_file(store_dir(f->s), "notes.txt", "an operator's notes");
	/* What an interrupted save leaves behind. */
	write_file(store_dir(f->s), ".tmp-alpha.Ab12Cd", "{\"half");

	assert_int_equal(store_load_all(f->s, on_ok, on_bad, &l), 3);
	assert_int_equal(l.nr, 3);
	assert_string_equal(l.names[0], "alpha");
	assert_string_equal(l.names[1], "mid.1");
	assert_string_equal(l.names[2], "zeta");
	assert_int_equal(l.nr_bad, 4);
	/* In name order: "-bad-name", "array", "broken", "dup". */
	assert_string_equal(l.bad[0], "-bad-name.json");
	assert_string_equal(l.why[0], "not a valid VM name");
	assert_string_equal(l.bad[1], "array.json");
	assert_string_equal(l.why[1], "not a JSON object");
	assert_string_equal(l.bad[2], "broken.json");
	assert_non_null(strstr(l.why[2], "line 1"));
	assert_string_equal(l.bad[3], "dup.json");
	assert_non_null(strstr(l.why[3], "duplicate"));
	/* The leftover is gone, the corrupt files stay for a human. */
	{
		char path[256];

		snprintf(path, sizeof(path), "%s/.tmp-alpha.Ab12Cd",
			 store_dir(f->s));
		assert_int_equal(access(path, F_OK), -1);
		snprintf(path, sizeof(path), "%s/broken.json", store_dir(f->s));
		assert_int_equal(access(path, F_OK), 0);
	}
}

static void
test_remove(void **state)
{
	struct fixture *f = *state;
	struct loaded l = { 0 };
	char err[256];
	json_t *doc = json_object();

	assert_int_equal(store_save(f->s, "a", doc, err, sizeof(err)), 0);
	assert_int_equal(store_save(f->s, "b", doc, err, sizeof(err)), 0);
	assert_int_equal(store_remove(f->s, "a"), 0);
	assert_int_equal(store_remove(f->s, "a"), -ENOENT);
	assert_int_equal(store_remove(f->s, "../a"), -EINVAL);
	assert_int_equal(store_load_all(f->s, on_ok, on_bad, &l), 1);
	assert_string_equal(l.names[0], "b");
	json_decref(doc);

	/* A second store on the same directory sees the same files. */
	{
		struct store *s2;
		struct loaded l2 = { 0 };
		char state_dir[128];

		snprintf(state_dir, sizeof(state_dir), "%s", f->dir);
		assert_int_equal(store_open(state_dir, &s2, err, sizeof(err)),
				 0);
		assert_int_equal(store_load_all(s2, on_ok, on_bad, &l2), 1);
		store_free(s2);
	}
	store_free(NULL);
}

static void
test_vm_document(void **state)
{
	struct vmdef *def, *back;
	char *tenant = NULL, err[256];
	json_t *doc, *bare;

	(void)state;
	bare = json_pack("{s:s, s:s, s:s}", "name", "web1", "kernel",
			 "/boot/vmlinuz", "memory", "1G");
	assert_int_equal(vmdef_from_json(bare, 0, &def, err, sizeof(err)), 0);

	doc = vm_doc_new(def, "team-a");
	assert_string_equal(json_string_value(json_object_get(doc, "tenant")),
			    "team-a");
	assert_int_equal(vm_doc_parse(doc, "web1", &back, &tenant, err,
				      sizeof(err)), 0);
	assert_string_equal(tenant, "team-a");
	assert_int_equal(back->memory, 1ull << 30);
	assert_string_equal(back->kernel, "/boot/vmlinuz");
	vmdef_free(back);
	free(tenant);

	/* The file's name must be the definition's. */
	assert_int_equal(vm_doc_parse(doc, "web2", &back, &tenant, err,
				      sizeof(err)), -EINVAL);
	assert_string_equal(err, "definition: name \"web1\" is not the file's "
			    "name");
	json_object_set_new(doc, "owner", json_string("x"));
	assert_int_equal(vm_doc_parse(doc, "web1", &back, &tenant, err,
				      sizeof(err)), -EINVAL);
	assert_string_equal(err, "owner: unknown field");
	json_decref(doc);

	/* No tenant: left out; a bare definition (put there by hand) too. */
	doc = vm_doc_new(def, NULL);
	assert_null(json_object_get(doc, "tenant"));
	json_decref(doc);
	assert_int_equal(vm_doc_parse(bare, "web1", &back, &tenant, err,
				      sizeof(err)), 0);
	assert_null(tenant);
	vmdef_free(back);

	/* A bad field inside is named with its place. */
	json_object_set_new(bare, "memory", json_string("1K"));
	assert_int_equal(vm_doc_parse(bare, "web1", &back, &tenant, err,
				      sizeof(err)), -EINVAL);
	assert_string_equal(err, "definition: memory: must be at least 64M");
	json_decref(bare);
	vmdef_free(def);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_save_is_atomic_and_durable,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_skips_corrupt_files,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
		cmocka_unit_test(test_vm_document),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the VM definition: bytes -> vmdef_from_string() ->
 * vmdef_to_json() -> parse again, which must succeed and give the same
 * canonical JSON (and so must a copy). The same bytes, when they are JSON,
 * are also tried as vm.set changes on a fixed definition: a failed update
 * must leave it untouched, a successful one must still be a definition
 * that parses back to itself.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/vmdef.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fz_base[] =
	"{\"name\":\"base\",\"kernel\":\"/k\",\"vcpus\":2,\"memory\":\"1G\","
	"\"disks\":[{\"path\":\"/d/a\",\"limits\":{\"ops_per_sec\":100,"
	"\"ops_burst\":200}},{\"path\":\"/d/b\",\"readonly\":true}],"
	"\"nics\":[{\"tap\":\"t0\",\"limits\":{\"rx_bytes_per_sec\":1000}}],"
	"\"resources\":{\"cpu_weight\":50,\"memory_limit\":\"2G\","
	"\"cpu_pin\":[\"0\",\"1\"]}}";

/* def's canonical JSON must parse back to the same canonical JSON. */
static json_t *
fz_fixed_point(const struct vmdef *def)
{
	struct vmdef *again = NULL, *copy;
	json_t *j, *j2, *j3;
	char err[256];
	char *s;

	j = vmdef_to_json(def);
	if (!j)
		abort();
	s = json_dumps(j, JSON_SORT_KEYS);
	if (!s)
		abort();
	if (vmdef_from_string(s, strlen(s), 0, &again, err, sizeof(err)) != 0)
		abort();
	j2 = vmdef_to_json(again);
	if (!j2 || !json_equal(j, j2))
		abort();
	copy = vmdef_dup(again);
	if (!copy)
		abort();
	j3 = vmdef_to_json(copy);
	if (!j3 || !json_equal(j, j3))
		abort();
	json_decref(j2);
	json_decref(j3);
	vmdef_free(copy);
	vmdef_free(again);
	free(s);
	return j;
}

/* Remove from canonical JSON what vm.set may change. */
static void
fz_strip(json_t *j)
{
	static const char *const lists[] = { "disks", "nics" };
	size_t i, k;

	json_object_del(j, "resources");
	for (i = 0; i < 2; i++)
		for (k = 0; k < json_array_size(json_object_get(j, lists[i]));
		     k++)
			json_object_del(json_array_get(json_object_get(j,
				lists[i]), k), "limits");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vmdef *def = NULL, *base = NULL;
	json_t *changes, *before, *after;
	char err[256];
	int r;

	err[0] = '\0';
	r = vmdef_from_string((const char *)data, size, 0, &def, err,
			      sizeof(err));
	if (r == 0) {
		json_decref(fz_fixed_point(def));
		vmdef_free(def);
	} else if (def || !err[0] || strlen(err) >= sizeof(err)) {
		abort();
	}

	changes = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
	if (!changes)
		return 0;
	if (vmdef_from_string(fz_base, sizeof(fz_base) - 1, 0, &base, err,
			      sizeof(err)) != 0)
		abort();
	before = vmdef_to_json(base);
	r = vmdef_update(base, changes, err, sizeof(err));
	after = fz_fixed_point(base);
	if (r != 0 && !json_equal(before, after))
		abort();
	/* An update never touches what vm.set cannot change. */
	fz_strip(before);
	fz_strip(after);
	if (!json_equal(before, after))
		abort();
	json_decref(before);
	json_decref(after);
	json_decref(changes);
	vmdef_free(base);
	return 0;
}

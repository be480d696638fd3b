/* SPDX-License-Identifier: MIT */
/*
 * The store: one JSON file per VM, STATE_DIR/vms/NAME.json, each written to
 * a temporary file in the same directory, fsynced, renamed over the old one
 * and the directory fsynced, so that a crash at any point leaves either the
 * old file or the new one, and what was acknowledged is on disk.
 *
 * The store does not know what the documents hold (registry.c does); it
 * checks that a file's name is a valid VM name and its content a JSON
 * object, and reports files that are not, without losing the others.
 */
#ifndef VMMD_STORE_H
#define VMMD_STORE_H

#include <sys/types.h>
#include <stddef.h>

#include <jansson.h>

struct store;

/*
 * Open (creating it, mode 0700, and state_dir when missing) the store under
 * state_dir. Returns 0 and a new store, or a negative errno with err.
 */
int store_open(const char *state_dir, struct store **ret, char *err,
	       size_t errlen);

void store_free(struct store *s);

/* The directory of the files (STATE_DIR/vms). Borrowed. */
const char *store_dir(const struct store *s);

/*
 * Write doc (borrowed; an object) as NAME.json, durably, replacing what
 * was there. Returns 0, -EINVAL for a bad name, or the errno of the
 * failing call with err naming it (nothing replaced then).
 */
int store_save(struct store *s, const char *name, json_t *doc, char *err,
	       size_t errlen);

/* Remove NAME.json durably. 0, -ENOENT, or another negative errno. */
int store_remove(struct store *s, const char *name);

/* A document found by store_load_all(): name and doc borrowed. */
typedef void (*store_load_fn)(void *arg, const char *name, json_t *doc);
/* A file that could not be used: path and why (one line) borrowed. */
typedef void (*store_bad_fn)(void *arg, const char *path, const char *why);

/*
 * Read every NAME.json, in name order, calling ok for each good one and
 * bad for each file that is not (not JSON, not an object, a bad name).
 * Leftover temporary files of an interrupted save are removed. Returns the
 * number of good documents, or a negative errno when the directory cannot
 * be read.
 */
int store_load_all(struct store *s, store_load_fn ok, store_bad_fn bad,
		   void *arg);

/* mkdir -p: each level it creates gets mode. 0 or a negative errno. */
int store_mkdirs(const char *path, mode_t mode);

#endif

/* SPDX-License-Identifier: MIT */
/* One durable JSON file per VM (store.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/vmdef.h"
#include "vmmd/store.h"

#define STORE_SUFFIX	".json"
#define STORE_TMP_PREFIX ".tmp-"

struct store {
	char dir[PATH_MAX];
	int dir_fd;
};

int
store_mkdirs(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t i, len = strlen(path);

	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		buf[i] = path[i];
	}
	return 0;
}

int
store_open(const char *state_dir, struct store **ret, char *err,
	   size_t errlen)
{
	struct store *s;
	struct stat st;
	int r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->dir_fd = -1;
	if (snprintf(s->dir, sizeof(s->dir), "%s/vms", state_dir) >=
	    (int)sizeof(s->dir)) {
		snprintf(err, errlen, "state_dir %s: path too long", state_dir);
		r = -ENAMETOOLONG;
		goto fail;
	}
	r = store_mkdirs(s->dir, 0700);
	if (r < 0) {
		snprintf(err, errlen, "state_dir %s: %s", s->dir,
			 strerror(-r));
		goto fail;
	}
	s->dir_fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dir_fd < 0 || fstat(s->dir_fd, &st) < 0) {
		r = -errno;
		snprintf(err, errlen, "state_dir %s: %s", s->dir,
			 strerror(-r));
		goto fail;
	}
	*ret = s;
	return 0;
fail:
	store_free(s);
	return r;
}

void
store_free(struct store *s)
{
	if (!s)
		return;
	if (s->dir_fd >= 0)
		close(s->dir_fd);
	free(s);
}

const char *
store_dir(const struct store *s)
{
	return s->dir;
}

static int
store_write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int
store_save(struct store *s, const char *name, json_t *doc, char *err,
	   size_t errlen)
{
	char tmp[NAME_MAX + 1], final[NAME_MAX + 1];
	char *text = NULL;
	int fd = -1, r;

	if (!vmdef_name_valid(name) || !json_is_object(doc)) {
		snprintf(err, errlen, "store: bad name or document");
		return -EINVAL;
	}
	snprintf(final, sizeof(final), "%s%s", name, STORE_SUFFIX);
	snprintf(tmp, sizeof(tmp), STORE_TMP_PREFIX "%s.XXXXXX", name);
	text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (!text)
		return -ENOMEM;
	/* mkostemp needs a path; the directory fd keeps renames atomic in it. */
	{
		char path[PATH_MAX + NAME_MAX + 2];

		snprintf(path, sizeof(path), "%s/%s", s->dir, tmp);
		fd = mkostemp(path, O_CLOEXEC);
		if (fd < 0) {
			r = -errno;
			snprintf(err, errlen, "store: create %s: %s", path,
				 strerror(-r));
			goto out;
		}
		memcpy(tmp, path + strlen(s->dir) + 1, strlen(tmp) + 1);
	}
	r = store_write_all(fd, text, strlen(text));
	if (r == 0)
		r = store_write_all(fd, "\n", 1);
	if (r == 0 && fchmod(fd, 0600) < 0)
		r = -errno;
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r < 0) {
		snprintf(err, errlen, "store: write %s/%s: %s", s->dir, tmp,
			 strerror(-r));
		goto unlink;
	}
	if (close(fd) < 0) {
		fd = -1;
		r = -errno;
		snprintf(err, errlen, "store: close %s/%s: %s", s->dir, tmp,
			 strerror(-r));
		goto unlink;
	}
	fd = -1;
	if (renameat(s->dir_fd, tmp, s->dir_fd, final) < 0) {
		r = -errno;
		snprintf(err, errlen, "store: rename to %s/%s: %s", s->dir,
			 final, strerror(-r));
		goto unlink;
	}
	/* The rename is durable only once the directory is. */
	if (fsync(s->dir_fd) < 0) {
		r = -errno;
		snprintf(err, errlen, "store: fsync %s: %s", s->dir,
			 strerror(-r));
		goto out;
	}
	r = 0;
	goto out;
unlink:
	unlinkat(s->dir_fd, tmp, 0);
out:
	if (fd >= 0)
		close(fd);
	free(text);
	return r;
}

int
store_remove(struct store *s, const char *name)
{
	char final[NAME_MAX + 1];

	if (!vmdef_name_valid(name))
		return -EINVAL;
	snprintf(final, sizeof(final), "%s%s", name, STORE_SUFFIX);
	if (unlinkat(s->dir_fd, final, 0) < 0)
		return -errno;
	if (fsync(s->dir_fd) < 0)
		return -errno;
	return 0;
}

static int
store_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
store_load_all(struct store *s, store_load_fn ok, store_bad_fn bad,
	       void *arg)
{
	char **names = NULL;
	size_t nr = 0, cap = 0, i;
	struct dirent *de;
	int fd, good = 0;
	DIR *d;

	fd = openat(s->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (strncmp(de->d_name, STORE_TMP_PREFIX,
			    strlen(STORE_TMP_PREFIX)) == 0) {
			/* A save that never reached its rename. */
			unlinkat(s->dir_fd, de->d_name, 0);
			continue;
		}
		if (nr == cap) {
			size_t ncap = cap ? cap * 2 : 32;
			char **n = realloc(names, ncap * sizeof(*n));

			if (!n)
				break;
			names = n;
			cap = ncap;
		}
		names[nr] = strdup(de->d_name);
		if (names[nr])
			nr++;
	}
	closedir(d);
	if (nr)
		qsort(names, nr, sizeof(*names), store_cmp);
	for (i = 0; i < nr; i++) {
		char path[PATH_MAX + NAME_MAX + 2], name[NAME_MAX + 1];
		size_t len = strlen(names[i]), sl = strlen(STORE_SUFFIX);
		json_error_t je;
		json_t *doc;
		struct stat st;

		snprintf(path, sizeof(path), "%s/%s", s->dir, names[i]);
		if (len <= sl || strcmp(names[i] + len - sl, STORE_SUFFIX)) {
			/* Not ours (an operator's backup, say): left alone,
			 * quietly unless it looks like a definition. */
			continue;
		}
		memcpy(name, names[i], len - sl);
		name[len - sl] = '\0';
		if (!vmdef_name_valid(name)) {
			if (bad)
				bad(arg, path, "not a valid VM name");
			continue;
		}
		if (fstatat(s->dir_fd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0
		    || !S_ISREG(st.st_mode)) {
			if (bad)
				bad(arg, path, "not a regular file");
			continue;
		}
		doc = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
		if (!doc) {
			char why[300];

			snprintf(why, sizeof(why), "line %d: %s", je.line,
				 je.text);
			if (bad)
				bad(arg, path, why);
			continue;
		}
		if (!json_is_object(doc)) {
			if (bad)
				bad(arg, path, "not a JSON object");
			json_decref(doc);
			continue;
		}
		if (ok)
			ok(arg, name, doc);
		json_decref(doc);
		good++;
	}
	for (i = 0; i < nr; i++)
		free(names[i]);
	free(names);
	return good;
}

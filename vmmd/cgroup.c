/* SPDX-License-Identifier: MIT */
/*
 * One cgroup per VM under vmmd's own subtree, v2 or v1 (cgroup.h has the
 * layout and the table of what each limit writes).
 *
 * Files are written the way `echo VALUE > FILE` would: opened without
 * O_CREAT (a missing file means a missing controller, not a file to make)
 * and with O_TRUNC, one write() per value, so that the kernel's answer to
 * that write is the answer. The same code runs against a tree of plain
 * files in the unit tests.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vmmd/cgroup.h"

/* include/linux/sched.h: the task is a kernel thread. */
#define CG_PF_KTHREAD		0x00200000ul
#define CG_PERIOD_US		100000u
/* The longest period the kernel takes, for quotas below 0.01 CPU. */
#define CG_PERIOD_LONG_US	1000000u
/* The kernel's shortest quota, 1 ms. */
#define CG_QUOTA_MIN_US		1000u
#define CG_SHARES_MIN		2u
#define CG_SHARES_MAX		262144u
#define CG_SHARES_DEFAULT	1024u
#define CG_WEIGHT_DEFAULT	100u
#define CG_LEAF_DAEMON		"daemon"
#define CG_LEAF_VMS		"vms"
#define CG_MOUNTS_MAX		32
#define CG_WHY_MAX		512
#define CG_DESC_MAX		4096
/* cpulist_format()'s longest output is under this. */
#define CG_CPULIST_TEXT		4096
/* destroy: an exiting task gets this many tries, CG_RMDIR_WAIT_NS apart. */
#define CG_RMDIR_TRIES		20
#define CG_RMDIR_WAIT_NS	5000000L

#define CG_BIT(c)		(1u << (c))
#define CG_V2_CTRLS		(CG_BIT(CGROUP_CTRL_CPU) | \
				 CG_BIT(CGROUP_CTRL_CPUSET) | \
				 CG_BIT(CGROUP_CTRL_MEMORY))

/* One hierarchy VM groups are made in: each v1 mount, or v2's one tree. */
struct cgroup_hier {
	char mount[PATH_MAX];	/* where the hierarchy's root is mounted */
	char mroot[PATH_MAX];	/* v1: the part of the hierarchy mounted */
	char base[PATH_MAX];	/* the directory VM groups are made in */
	unsigned int ctrls;	/* CG_BIT()s usable in it; 0: unusable */
};

struct cgroup_host {
	enum cgroup_version version;
	char root[PATH_MAX];
	char proc[PATH_MAX];
	struct cgroup_hier hier[CGROUP_CTRL_MAX];
	unsigned int nr_hier;
	int hier_of[CGROUP_CTRL_MAX];		/* index in hier, or -1 */
	char why[CGROUP_CTRL_MAX][CG_WHY_MAX];	/* when hier_of is -1 */
	char desc[CG_DESC_MAX];
};

struct cgroup_vm {
	struct cgroup_host *h;
	char name[NAME_MAX + 1];
	char dir[CGROUP_CTRL_MAX][PATH_MAX];	/* by hierarchy index */
};

/* A cgroup v1 mount seen in mountinfo. */
struct cg_mount {
	char point[PATH_MAX];
	char mroot[PATH_MAX];	/* the part of the hierarchy mounted there */
	unsigned int ctrls;
};

static const char *const cg_ctrl_names[CGROUP_CTRL_MAX] = {
	[CGROUP_CTRL_CPU] = "cpu",
	[CGROUP_CTRL_CPUACCT] = "cpuacct",
	[CGROUP_CTRL_CPUSET] = "cpuset",
	[CGROUP_CTRL_MEMORY] = "memory",
};

/* The file that shows a v1 hierarchy directory carries the controller. */
static const char *const cg_v1_marker[CGROUP_CTRL_MAX] = {
	[CGROUP_CTRL_CPU] = "cpu.shares",
	[CGROUP_CTRL_CPUACCT] = "cpuacct.usage",
	[CGROUP_CTRL_CPUSET] = "cpuset.cpus",
	[CGROUP_CTRL_MEMORY] = "memory.limit_in_bytes",
};

static void __attribute__((format(printf, 3, 4)))
cg_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

const char *
cgroup_ctrl_name(enum cgroup_ctrl c)
{
	return (unsigned int)c < CGROUP_CTRL_MAX ? cg_ctrl_names[c] : "?";
}

/* a + "/" + b without doubled slashes; b may be "" or start with '/'. */
static int
cg_join(char *buf, size_t len, const char *a, const char *b)
{
	size_t la = strlen(a);
	int n;

	while (la > 1 && a[la - 1] == '/')
		la--;
	while (*b == '/')
		b++;
	if (!*b)
		n = snprintf(buf, len, "%.*s", (int)la, a);
	else if (la == 1 && a[0] == '/')
		n = snprintf(buf, len, "/%s", b);
	else
		n = snprintf(buf, len, "%.*s/%s", (int)la, a, b);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

static int
cg_write(const char *path, const char *val)
{
	size_t len = strlen(val);
	ssize_t n;
	int fd, r = 0;

	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, val, len);
	if (n < 0)
		r = -errno;
	else if ((size_t)n != len)
		r = -EIO;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	return r;
}

static int
cg_write_at(const char *dir, const char *file, const char *val)
{
	char path[PATH_MAX];
	int r;

	r = cg_join(path, sizeof(path), dir, file);
	return r < 0 ? r : cg_write(path, val);
}

/* The whole file, trailing white space removed; -EFBIG if it is longer. */
static int
cg_read(const char *path, char *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		if (got == len - 1) {
			char c;

			n = read(fd, &c, 1);
			if (n > 0)
				r = -EFBIG;
			else if (n < 0)
				r = -errno;
			break;
		}
		n = read(fd, buf + got, len - 1 - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (r < 0)
		return r;
	while (got && isspace((unsigned char)buf[got - 1]))
		got--;
	buf[got] = '\0';
	return 0;
}

static int
cg_read_at(const char *dir, const char *file, char *buf, size_t len)
{
	char path[PATH_MAX];
	int r;

	r = cg_join(path, sizeof(path), dir, file);
	return r < 0 ? r : cg_read(path, buf, len);
}

static int
cg_parse_u64(const char *s, uint64_t *ret)
{
	unsigned long long v;
	char *end;

	if (strcmp(s, "max") == 0) {
		*ret = UINT64_MAX;
		return 0;
	}
	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int
cg_read_u64_at(const char *dir, const char *file, uint64_t *ret)
{
	char buf[64];
	int r;

	r = cg_read_at(dir, file, buf, sizeof(buf));
	return r < 0 ? r : cg_parse_u64(buf, ret);
}

/* The value of "KEY VALUE" line key in text; -ENOENT when absent. */
static int
cg_keyed(const char *text, const char *key, uint64_t *ret)
{
	size_t kl = strlen(key);
	const char *p = text;
	char val[32];
	size_t n;

	while (*p) {
		if (strncmp(p, key, kl) == 0 && p[kl] == ' ') {
			p += kl + 1;
			n = strcspn(p, "\n");
			if (n >= sizeof(val))
				return -EINVAL;
			memcpy(val, p, n);
			val[n] = '\0';
			return cg_parse_u64(val, ret);
		}
		p += strcspn(p, "\n");
		if (*p)
			p++;
	}
	return -ENOENT;
}

static bool
cg_is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* mkdir that takes an existing directory; -EEXIST for anything else. */
static int
cg_mkdir(const char *path)
{
	if (mkdir(path, 0755) == 0)
		return 1;
	if (errno != EEXIST)
		return -errno;
	return cg_is_dir(path) ? 0 : -EEXIST;
}

/* Controllers named in a space-separated list ("cpuset cpu io memory"). */
static unsigned int
cg_ctrl_mask(const char *list, const char *seps)
{
	unsigned int mask = 0, c;
	const char *p = list;
	size_t n;

	while (*p) {
		p += strspn(p, seps);
		n = strcspn(p, seps);
		for (c = 0; c < CGROUP_CTRL_MAX && n; c++)
			if (strlen(cg_ctrl_names[c]) == n &&
			    strncmp(p, cg_ctrl_names[c], n) == 0)
				mask |= CG_BIT(c);
		p += n;
	}
	return mask;
}

/* "cpu, cpuset" for a mask, into buf. */
static void
cg_mask_text(unsigned int mask, const char *sep, char *buf, size_t len)
{
	unsigned int c;
	size_t off = 0;

	buf[0] = '\0';
	for (c = 0; c < CGROUP_CTRL_MAX; c++) {
		if (!(mask & CG_BIT(c)))
			continue;
		snprintf(buf + off, len - off, "%s%s", off ? sep : "",
			 cg_ctrl_names[c]);
		off = strlen(buf);
	}
}

static void __attribute__((format(printf, 2, 3)))
cg_desc_add(struct cgroup_host *h, const char *fmt, ...)
{
	size_t off = strlen(h->desc);
	va_list ap;

	if (off >= sizeof(h->desc) - 1)
		return;
	va_start(ap, fmt);
	vsnprintf(h->desc + off, sizeof(h->desc) - off, fmt, ap);
	va_end(ap);
}

static void __attribute__((format(printf, 3, 4)))
cg_unavailable(struct cgroup_host *h, unsigned int mask, const char *fmt,
	       ...)
{
	char why[CG_WHY_MAX];
	unsigned int c;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	for (c = 0; c < CGROUP_CTRL_MAX; c++) {
		if (!(mask & CG_BIT(c)))
			continue;
		if (h->hier_of[c] >= 0)
			h->hier[h->hier_of[c]].ctrls &= ~CG_BIT(c);
		h->hier_of[c] = -1;
		snprintf(h->why[c], sizeof(h->why[c]), "%s", why);
	}
}

/*
 * vmmd's own cgroup from PROC/self/cgroup: the v1 line whose controller
 * list has ctrl, or with ctrl NULL the v2 line "0::PATH".
 */
static int
cg_self_cgroup(const char *proc, const char *ctrl, char *buf, size_t len)
{
	unsigned int want = ctrl ? cg_ctrl_mask(ctrl, ",") : 0;
	char path[PATH_MAX], *line = NULL, *list, *cg, *nl;
	size_t cap = 0;
	int r = -ENOENT;
	FILE *f;

	if (ctrl && !want)
		return -EINVAL;
	if (cg_join(path, sizeof(path), proc, "self/cgroup") < 0)
		return -ENAMETOOLONG;
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		list = strchr(line, ':');
		if (!list)
			continue;
		*list++ = '\0';
		cg = strchr(list, ':');
		if (!cg)
			continue;
		*cg++ = '\0';
		if (ctrl && !(cg_ctrl_mask(list, ",") & want))
			continue;
		if (!ctrl && (strcmp(line, "0") != 0 || *list))
			continue;
		if (*cg != '/')
			continue;
		if (snprintf(buf, len, "%s", cg) >= (int)len)
			r = -ENAMETOOLONG;
		else
			r = 0;
		break;
	}
	free(line);
	fclose(f);
	return r;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void
cg_unescape(char *s)
{
	char *d = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' &&
		    s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*d++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 |
				      (s[3] - '0'));
			s += 4;
		} else {
			*d++ = *s++;
		}
	}
	*d = '\0';
}

/* path is dir or below it. */
static bool
cg_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	while (n > 1 && dir[n - 1] == '/')
		n--;
	if (n == 1 && dir[0] == '/')
		return path[0] == '/';
	return strncmp(path, dir, n) == 0 && (path[n] == '\0' ||
					      path[n] == '/');
}

/*
 * The cgroup (v1) mounts in PROC/self/mountinfo, into m (up to
 * CG_MOUNTS_MAX); v2 notes a cgroup2 mount below root other than root.
 */
static int
cg_mounts(const char *proc, const char *root, struct cg_mount *m,
	  unsigned int *ret_n, char *v2, size_t v2len)
{
	char path[PATH_MAX], *line = NULL, *f[6], *save, *p, *fstype, *super;
	unsigned int n = 0, i;
	size_t cap = 0;
	FILE *fp;

	*ret_n = 0;
	v2[0] = '\0';
	if (cg_join(path, sizeof(path), proc, "self/mountinfo") < 0)
		return -ENAMETOOLONG;
	fp = fopen(path, "re");
	if (!fp)
		return -errno;
	while (getline(&line, &cap, fp) > 0) {
		save = NULL;
		p = strtok_r(line, " \n", &save);
		for (i = 0; i < 6 && p; i++) {
			f[i] = p;
			p = strtok_r(NULL, " \n", &save);
		}
		if (i < 6)
			continue;
		/* Optional fields up to "-", then fstype, source, options. */
		while (p && strcmp(p, "-") != 0)
			p = strtok_r(NULL, " \n", &save);
		fstype = p ? strtok_r(NULL, " \n", &save) : NULL;
		if (fstype)
			strtok_r(NULL, " \n", &save);
		super = fstype ? strtok_r(NULL, " \n", &save) : NULL;
		if (!super)
			continue;
		cg_unescape(f[3]);
		cg_unescape(f[4]);
		if (strcmp(fstype, "cgroup2") == 0) {
			if (!v2[0] && cg_under(f[4], root) &&
			    strcmp(f[4], root) != 0)
				snprintf(v2, v2len, "%s", f[4]);
			continue;
		}
		if (strcmp(fstype, "cgroup") != 0 || n == CG_MOUNTS_MAX)
			continue;
		if (!cg_ctrl_mask(super, ","))
			continue;
		if (snprintf(m[n].point, sizeof(m[n].point), "%s", f[4]) >=
		    (int)sizeof(m[n].point) ||
		    snprintf(m[n].mroot, sizeof(m[n].mroot), "%s", f[3]) >=
		    (int)sizeof(m[n].mroot))
			continue;
		m[n].ctrls = cg_ctrl_mask(super, ",");
		n++;
	}
	free(line);
	fclose(fp);
	*ret_n = n;
	return 0;
}

/* Hierarchy index for a mount point, added if new; -ENOSPC when full. */
static int
cg_hier_add(struct cgroup_host *h, const char *mount, unsigned int ctrl)
{
	unsigned int i;

	for (i = 0; i < h->nr_hier; i++)
		if (strcmp(h->hier[i].mount, mount) == 0)
			break;
	if (i == h->nr_hier) {
		if (h->nr_hier == CGROUP_CTRL_MAX)
			return -ENOSPC;
		if (snprintf(h->hier[i].mount, sizeof(h->hier[i].mount), "%s",
			     mount) >= (int)sizeof(h->hier[i].mount))
			return -ENAMETOOLONG;
		h->nr_hier++;
	}
	h->hier[i].ctrls |= CG_BIT(ctrl);
	h->hier_of[ctrl] = (int)i;
	return (int)i;
}

/*
 * A v1 hierarchy directory under root by its usual names, for trees that
 * mountinfo does not list.
 */
static int
cg_v1_probe(const char *root, unsigned int c, char *buf, size_t len)
{
	static const char *const names[CGROUP_CTRL_MAX][3] = {
		[CGROUP_CTRL_CPU] = { "cpu", "cpu,cpuacct", "cpuacct,cpu" },
		[CGROUP_CTRL_CPUACCT] = { "cpuacct", "cpu,cpuacct",
					  "cpuacct,cpu" },
		[CGROUP_CTRL_CPUSET] = { "cpuset" },
		[CGROUP_CTRL_MEMORY] = { "memory" },
	};
	char dir[PATH_MAX], marker[PATH_MAX];
	unsigned int i;

	for (i = 0; i < 3 && names[c][i]; i++) {
		if (cg_join(dir, sizeof(dir), root, names[c][i]) < 0 ||
		    cg_join(marker, sizeof(marker), dir, cg_v1_marker[c]) < 0)
			continue;
		if (access(marker, F_OK) != 0)
			continue;
		/* Symlinks (cpu -> cpu,cpuacct) resolve to one hierarchy. */
		if (!realpath(dir, buf) || strlen(buf) >= len)
			continue;
		return 0;
	}
	return -ENOENT;
}

/* Give a v1 cpuset group its parent's CPUs and memory nodes when empty. */
static int
cg_v1_cpuset_init(const char *parent, const char *dir, bool always,
		  char *what, size_t whatlen)
{
	static const char *const files[] = { "cpuset.cpus", "cpuset.mems" };
	char val[CG_CPULIST_TEXT], cur[CG_CPULIST_TEXT];
	unsigned int i;
	int r;

	for (i = 0; i < 2; i++) {
		if (!always && cg_read_at(dir, files[i], cur, sizeof(cur)) == 0
		    && cur[0])
			continue;
		r = cg_read_at(parent, files[i], val, sizeof(val));
		if (r == 0)
			r = cg_write_at(dir, files[i], val);
		if (r < 0) {
			cg_err(what, whatlen, "copying %s from %s to %s: %s",
				 files[i], parent, dir, strerror(-r));
			return r;
		}
	}
	return 0;
}

static int
cg_detect_v1(struct cgroup_host *h, const char *subtree, bool root_is_v2)
{
	char own[PATH_MAX], base[PATH_MAX], parent[PATH_MAX], v2[PATH_MAX];
	char probe[PATH_MAX], what[CG_WHY_MAX], names[64];
	const char *rel;
	struct cg_mount *m;
	unsigned int nm = 0, i, c, first;
	bool anywhere = false, any = false, listed = false;
	int r, k;

	m = calloc(CG_MOUNTS_MAX, sizeof(*m));
	if (!m)
		return -ENOMEM;
	if (cg_mounts(h->proc, h->root, m, &nm, v2, sizeof(v2)) < 0)
		nm = 0;
	for (i = 0; i < nm; i++)
		if (cg_under(m[i].point, h->root))
			any = true;
	/* An empty cgroup2 at root: the v1 hierarchies are elsewhere. */
	if (!any && root_is_v2)
		anywhere = true;

	for (c = 0; c < CGROUP_CTRL_MAX; c++) {
		const char *point = NULL, *mroot = "/";

		for (i = 0; i < nm && !point; i++) {
			if ((m[i].ctrls & CG_BIT(c)) &&
			    (anywhere || cg_under(m[i].point, h->root))) {
				point = m[i].point;
				mroot = m[i].mroot;
			}
		}
		if (!point && cg_v1_probe(h->root, c, probe,
					  sizeof(probe)) == 0)
			point = probe;
		if (!point) {
			cg_unavailable(h, CG_BIT(c), "cgroup v1 without %s: "
				       "no %s hierarchy is mounted under %s",
				       cg_ctrl_names[c], cg_ctrl_names[c],
				       h->root);
			continue;
		}
		k = cg_hier_add(h, point, c);
		if (k < 0) {
			free(m);
			return k;
		}
		if (h->hier[k].ctrls == CG_BIT(c))
			snprintf(h->hier[k].mroot, sizeof(h->hier[k].mroot),
				 "%s", mroot);
	}
	free(m);
	if (!h->nr_hier)
		return 0;

	h->version = CGROUP_V1;
	for (i = 0; i < h->nr_hier; i++) {
		struct cgroup_hier *hr = &h->hier[i];
		const char *mroot;

		first = (unsigned int)__builtin_ctz(hr->ctrls);
		if (cg_self_cgroup(h->proc, cg_ctrl_names[first], own,
				   sizeof(own)) < 0)
			strcpy(own, "/");
		mroot = hr->mroot;
		rel = own;
		if (strcmp(mroot, "/") != 0) {
			if (!cg_under(own, mroot)) {
				cg_unavailable(h, hr->ctrls, "vmmd's %s cgroup "
					       "%s is outside the part %s "
					       "mounted at %s",
					       cg_ctrl_names[first], own, mroot,
					       hr->mount);
				continue;
			}
			rel = own + strlen(mroot);
		}
		if (cg_join(parent, sizeof(parent), hr->mount, rel) < 0 ||
		    cg_join(base, sizeof(base), parent, subtree) < 0) {
			cg_unavailable(h, hr->ctrls, "path too long under %s",
				       hr->mount);
			continue;
		}
		snprintf(hr->base, sizeof(hr->base), "%s", base);
		r = cg_mkdir(base);
		if (r < 0) {
			cg_mask_text(hr->ctrls, ",", names, sizeof(names));
			cg_unavailable(h, hr->ctrls, "cgroup v1 %s: cannot make "
				       "%s: %s", names, base, strerror(-r));
			continue;
		}
		if ((hr->ctrls & CG_BIT(CGROUP_CTRL_CPUSET)) &&
		    cg_v1_cpuset_init(parent, base, false, what,
				      sizeof(what)) < 0) {
			cg_mask_text(hr->ctrls, ",", names, sizeof(names));
			cg_unavailable(h, hr->ctrls, "cgroup v1 %s: %s", names,
				       what);
		}
	}

	cg_desc_add(h, "cgroup v1:");
	for (i = 0; i < h->nr_hier; i++) {
		if (!h->hier[i].ctrls)
			continue;
		cg_mask_text(h->hier[i].ctrls, ",", names, sizeof(names));
		cg_desc_add(h, "%s %s at %s (VM groups in %s)",
			    listed ? "," : "", names, h->hier[i].mount,
			    h->hier[i].base);
		listed = true;
	}
	if (!listed)
		cg_desc_add(h, " no usable hierarchy");
	for (c = 0; c < CGROUP_CTRL_MAX; c++)
		if (h->hier_of[c] < 0)
			cg_desc_add(h, "; %s unavailable: %s", cg_ctrl_names[c],
				    h->why[c]);
	if (root_is_v2)
		cg_desc_add(h, "; the cgroup2 mount at %s has none of cpu, "
			    "cpuset, memory", h->root);
	else if (v2[0])
		cg_desc_add(h, "; the cgroup2 mount at %s has none of cpu, "
			    "cpuset, memory", v2);
	return 0;
}

/*
 * Enable ctrls for the children of dir, all in one write when they can,
 * else one by one; returns the controllers that are enabled.
 */
static unsigned int
cg_v2_enable(struct cgroup_host *h, const char *dir, unsigned int ctrls)
{
	char cur[256], buf[64], one[16];
	unsigned int have = 0, missing, c;
	size_t off = 0;
	int r;

	if (cg_read_at(dir, "cgroup.subtree_control", cur, sizeof(cur)) == 0)
		have = cg_ctrl_mask(cur, " ");
	missing = ctrls & ~have;
	if (!missing)
		return ctrls;
	buf[0] = '\0';
	for (c = 0; c < CGROUP_CTRL_MAX; c++) {
		if (!(missing & CG_BIT(c)))
			continue;
		snprintf(buf + off, sizeof(buf) - off, "%s+%s", off ? " " : "",
			 cg_ctrl_names[c]);
		off = strlen(buf);
	}
	if (cg_write_at(dir, "cgroup.subtree_control", buf) == 0)
		return ctrls;
	for (c = 0; c < CGROUP_CTRL_MAX; c++) {
		if (!(missing & CG_BIT(c)))
			continue;
		snprintf(one, sizeof(one), "+%s", cg_ctrl_names[c]);
		r = cg_write_at(dir, "cgroup.subtree_control", one);
		if (r < 0) {
			cg_unavailable(h, CG_BIT(c), "cgroup v2: enabling %s "
				       "in %s/cgroup.subtree_control: %s",
				       cg_ctrl_names[c], dir, strerror(-r));
			ctrls &= ~CG_BIT(c);
		}
	}
	return ctrls;
}

/* Move every process of from into to (v2 cgroup.procs moves all threads). */
static int
cg_v2_move_all(const char *from, const char *to, char *what, size_t len)
{
	char path[PATH_MAX], dst[PATH_MAX], pid[32];
	int r = 0;
	FILE *f;

	if (cg_join(path, sizeof(path), from, "cgroup.procs") < 0 ||
	    cg_join(dst, sizeof(dst), to, "cgroup.procs") < 0)
		return -ENAMETOOLONG;
	f = fopen(path, "re");
	if (!f) {
		r = -errno;
		cg_err(what, len, "reading %s: %s", path, strerror(-r));
		return r;
	}
	while (fscanf(f, "%31s", pid) == 1) {
		r = cg_write(dst, pid);
		/* A process that ended meanwhile has nothing to move. */
		if (r == -ESRCH) {
			r = 0;
			continue;
		}
		if (r < 0) {
			cg_err(what, len, "moving process %s to %s: %s", pid,
				 dst, strerror(-r));
			break;
		}
	}
	fclose(f);
	return r;
}

static int
cg_detect_v2(struct cgroup_host *h, const char *subtree,
	     const char *root_ctrls)
{
	char own[PATH_MAX], top[PATH_MAX], topdir[PATH_MAX], leaf[PATH_MAX];
	char vms[PATH_MAX], list[256], what[CG_WHY_MAX], names[64];
	unsigned int want = CG_V2_CTRLS, have = 0, c;
	const char *slash;
	bool in_root, moved = false;
	int r;

	h->version = CGROUP_V2;
	if (cg_self_cgroup(h->proc, NULL, own, sizeof(own)) < 0)
		strcpy(own, "/");
	in_root = strcmp(own, "/") == 0;
	slash = strrchr(own, '/');
	memcpy(top, own, sizeof(top));
	if (in_root) {
		r = cg_join(top, sizeof(top), "/", subtree);
	} else if (strcmp(slash + 1, CG_LEAF_DAEMON) == 0) {
		/* Already moved there by an earlier detection in this unit. */
		top[slash == own ? 1 : slash - own] = '\0';
		r = 0;
	} else {
		r = 0;
	}
	if (r < 0 || cg_join(topdir, sizeof(topdir), h->root, top) < 0 ||
	    cg_join(leaf, sizeof(leaf), topdir, CG_LEAF_DAEMON) < 0 ||
	    cg_join(vms, sizeof(vms), topdir, CG_LEAF_VMS) < 0)
		return -ENAMETOOLONG;

	/* What the parent hands down to the top of our subtree. */
	if (in_root) {
		snprintf(list, sizeof(list), "%s", root_ctrls);
		have = cg_ctrl_mask(list, " ");
	} else if (cg_read_at(topdir, "cgroup.controllers", list,
			      sizeof(list)) == 0) {
		have = cg_ctrl_mask(list, " ");
	} else {
		list[0] = '\0';
	}
	for (c = 0; c < CGROUP_CTRL_MAX; c++)
		if ((want & CG_BIT(c)) && !(have & CG_BIT(c)))
			cg_unavailable(h, CG_BIT(c), "cgroup v2 at %s does not "
				       "delegate %s to %s (its "
				       "cgroup.controllers: \"%s\"; run "
				       "vmmd with Delegate=yes)", h->root,
				       cg_ctrl_names[c], top, list);
	have &= want;
	if (!have) {
		/* Nothing to limit with: leave a tree that is not ours alone. */
		cg_desc_add(h, "cgroup v2 at %s: none of cpu, cpuset, memory "
			    "is delegated to %s (run vmmd with Delegate=yes)",
			    h->root, top);
		return 0;
	}

	if (in_root) {
		have = cg_v2_enable(h, h->root, have);
		r = cg_mkdir(topdir);
		if (r < 0) {
			cg_err(what, sizeof(what), "cannot make %s: %s",
				 topdir, strerror(-r));
			goto unusable;
		}
	} else if (strcmp(top, own) == 0) {
		/* No processes where controllers are enabled for children. */
		r = cg_mkdir(leaf);
		if (r < 0) {
			cg_err(what, sizeof(what), "cannot make %s: %s",
				 leaf, strerror(-r));
			goto unusable;
		}
		r = cg_v2_move_all(topdir, leaf, what, sizeof(what));
		if (r < 0)
			goto unusable;
		moved = true;
	}
	have = cg_v2_enable(h, topdir, have);
	r = cg_mkdir(vms);
	if (r < 0) {
		cg_err(what, sizeof(what), "cannot make %s: %s", vms,
			 strerror(-r));
		goto unusable;
	}
	have = cg_v2_enable(h, vms, have);

	h->nr_hier = 1;
	snprintf(h->hier[0].mount, sizeof(h->hier[0].mount), "%s", h->root);
	snprintf(h->hier[0].base, sizeof(h->hier[0].base), "%s", vms);
	/* CPU time (cpu.stat's usage) is kept in every v2 group. */
	h->hier[0].ctrls = have | CG_BIT(CGROUP_CTRL_CPUACCT);
	for (c = 0; c < CGROUP_CTRL_MAX; c++)
		if (h->hier[0].ctrls & CG_BIT(c))
			h->hier_of[c] = 0;

	cg_mask_text(have, ", ", names, sizeof(names));
	cg_desc_add(h, "cgroup v2 at %s: %s enabled for VM groups in %s",
		    h->root, have ? names : "no controller", vms);
	if (moved || !in_root)
		cg_desc_add(h, "; vmmd runs in %s", leaf);
	for (c = 0; c < CGROUP_CTRL_MAX; c++)
		if (h->hier_of[c] < 0)
			cg_desc_add(h, "; %s unavailable: %s", cg_ctrl_names[c],
				    h->why[c]);
	return 0;

unusable:
	cg_unavailable(h, CG_BIT(CGROUP_CTRL_MAX) - 1, "cgroup v2 at %s: %s",
		       h->root, what);
	cg_desc_add(h, "cgroup v2 at %s, unusable: %s", h->root, what);
	return 0;
}

int
cgroup_host_detect_params(const struct cgroup_host_params *p,
			  struct cgroup_host **ret, char *err, size_t errlen)
{
	const char *root = p && p->root ? p->root : CGROUP_ROOT_DEFAULT;
	const char *proc = p && p->proc ? p->proc : "/proc";
	const char *subtree = p && p->subtree ? p->subtree :
		CGROUP_SUBTREE_DEFAULT;
	char ctrls[256], path[PATH_MAX];
	struct cgroup_host *h;
	bool root_is_v2;
	unsigned int c;
	int r;

	if (root[0] != '/' || proc[0] != '/') {
		cg_err(err, errlen, "cgroup: root %s and proc %s must be "
		       "absolute paths", root, proc);
		return -EINVAL;
	}
	if (!subtree[0] || subtree[0] == '.' || strchr(subtree, '/')) {
		cg_err(err, errlen, "cgroup: subtree name \"%s\" must be one "
		       "path component", subtree);
		return -EINVAL;
	}
	if (strlen(root) >= sizeof(h->root) / 2 ||
	    strlen(proc) >= sizeof(h->proc) / 2) {
		cg_err(err, errlen, "cgroup: root or proc path too long");
		return -ENAMETOOLONG;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		cg_err(err, errlen, "cgroup: out of memory");
		return -ENOMEM;
	}
	snprintf(h->root, sizeof(h->root), "%s", root);
	snprintf(h->proc, sizeof(h->proc), "%s", proc);
	for (c = 0; c < CGROUP_CTRL_MAX; c++)
		h->hier_of[c] = -1;

	/* A cgroup2 mount at root has cgroup.controllers in it. */
	r = cg_join(path, sizeof(path), root, "cgroup.controllers");
	root_is_v2 = r == 0 && cg_read(path, ctrls, sizeof(ctrls)) == 0;
	if (root_is_v2 && (cg_ctrl_mask(ctrls, " ") & CG_V2_CTRLS))
		r = cg_detect_v2(h, subtree, ctrls);
	else
		r = cg_detect_v1(h, subtree, root_is_v2);
	if (r < 0) {
		cg_err(err, errlen, "cgroup: detecting under %s: %s", root,
		       strerror(-r));
		cgroup_host_free(h);
		return r;
	}
	if (h->version == CGROUP_NONE) {
		h->desc[0] = '\0';
		for (c = 0; c < CGROUP_CTRL_MAX; c++)
			snprintf(h->why[c], sizeof(h->why[c]), "no cgroup "
				 "controllers: %s has neither cgroup v2 with "
				 "cpu, cpuset or memory nor cgroup v1 "
				 "hierarchies", root);
		cg_desc_add(h, "%s; CPU and memory limits cannot be applied",
			    h->why[0]);
	}
	*ret = h;
	return 0;
}

int
cgroup_host_detect(const char *root, struct cgroup_host **ret, char *err,
		   size_t errlen)
{
	struct cgroup_host_params p = { .root = root };

	return cgroup_host_detect_params(&p, ret, err, errlen);
}

void
cgroup_host_free(struct cgroup_host *h)
{
	free(h);
}

enum cgroup_version
cgroup_host_version(const struct cgroup_host *h)
{
	return h->version;
}

const char *
cgroup_host_describe(const struct cgroup_host *h)
{
	return h->desc;
}

bool
cgroup_host_has(const struct cgroup_host *h, enum cgroup_ctrl c)
{
	return (unsigned int)c < CGROUP_CTRL_MAX && h->hier_of[c] >= 0;
}

const char *
cgroup_host_base(const struct cgroup_host *h, enum cgroup_ctrl c)
{
	return cgroup_host_has(h, c) ? h->hier[h->hier_of[c]].base : NULL;
}

/* --- a VM's group ----------------------------------------------------- */

static bool
cg_name_valid(const char *name)
{
	const char *p;

	if (!name[0] || name[0] == '.' || strlen(name) > NAME_MAX)
		return false;
	if (strstr(name, ".."))
		return false;
	for (p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' &&
		    *p != '-')
			return false;
	return true;
}

static int
cg_vm_new(struct cgroup_host *h, const char *name, struct cgroup_vm **ret,
	  char *err, size_t errlen)
{
	struct cgroup_vm *g;
	unsigned int i;

	if (!cg_name_valid(name)) {
		cg_err(err, errlen, "cgroup: VM name \"%s\" is not a safe "
		       "group name ([A-Za-z0-9._-], not starting with '.')",
		       name);
		return -EINVAL;
	}
	g = calloc(1, sizeof(*g));
	if (!g) {
		cg_err(err, errlen, "cgroup: out of memory");
		return -ENOMEM;
	}
	g->h = h;
	snprintf(g->name, sizeof(g->name), "%s", name);
	for (i = 0; i < h->nr_hier; i++) {
		if (!h->hier[i].ctrls)
			continue;
		if (cg_join(g->dir[i], sizeof(g->dir[i]), h->hier[i].base,
			    name) < 0) {
			cg_err(err, errlen, "cgroup: %s/%s: path too long",
			       h->hier[i].base, name);
			free(g);
			return -ENAMETOOLONG;
		}
	}
	*ret = g;
	return 0;
}

int
cgroup_vm_create(struct cgroup_host *h, const char *name,
		 struct cgroup_vm **ret, char *err, size_t errlen)
{
	struct cgroup_hier *hr;
	bool made[CGROUP_CTRL_MAX] = { false };
	char what[CG_WHY_MAX];
	struct cgroup_vm *g;
	unsigned int i;
	int r;

	r = cg_vm_new(h, name, &g, err, errlen);
	if (r < 0)
		return r;
	for (i = 0; i < h->nr_hier; i++) {
		hr = &h->hier[i];
		if (!hr->ctrls)
			continue;
		r = cg_mkdir(g->dir[i]);
		if (r == -EEXIST) {
			cg_err(err, errlen, "cgroup: VM \"%s\": %s exists and "
			       "is not a group (the name is a cgroup file)",
			       name, g->dir[i]);
			goto fail;
		}
		if (r < 0) {
			cg_err(err, errlen, "cgroup: VM \"%s\": cannot make "
			       "%s: %s", name, g->dir[i], strerror(-r));
			goto fail;
		}
		made[i] = r > 0;
		if (h->version == CGROUP_V1 &&
		    (hr->ctrls & CG_BIT(CGROUP_CTRL_CPUSET))) {
			r = cg_v1_cpuset_init(hr->base, g->dir[i], true, what,
					      sizeof(what));
			if (r < 0) {
				cg_err(err, errlen, "cgroup: VM \"%s\": %s",
				       name, what);
				goto fail;
			}
		}
	}
	*ret = g;
	return 0;

fail:
	for (i = 0; i < h->nr_hier; i++)
		if (made[i])
			rmdir(g->dir[i]);
	free(g);
	return r;
}

int
cgroup_vm_open_existing(struct cgroup_host *h, const char *name,
			struct cgroup_vm **ret, char *err, size_t errlen)
{
	struct cgroup_vm *g;
	unsigned int i;
	int r;

	r = cg_vm_new(h, name, &g, err, errlen);
	if (r < 0)
		return r;
	for (i = 0; i < h->nr_hier; i++) {
		if (g->dir[i][0] && !cg_is_dir(g->dir[i])) {
			cg_err(err, errlen, "cgroup: VM \"%s\" has no group "
			       "%s", name, g->dir[i]);
			free(g);
			return -ENOENT;
		}
	}
	*ret = g;
	return 0;
}

void
cgroup_vm_free(struct cgroup_vm *g)
{
	free(g);
}

const char *
cgroup_vm_dir(const struct cgroup_vm *g, enum cgroup_ctrl c)
{
	return cgroup_host_has(g->h, c) ? g->dir[g->h->hier_of[c]] : NULL;
}

/* --- limits ----------------------------------------------------------- */

static int
cg_need(const struct cgroup_vm *g, enum cgroup_ctrl c, const char *setting,
	char *err, size_t errlen)
{
	if (cgroup_host_has(g->h, c))
		return 0;
	cg_err(err, errlen, "%s: the %s controller is not available on this "
	       "host (%s)", setting, cg_ctrl_names[c], g->h->why[c]);
	return -EOPNOTSUPP;
}

static int
cg_set(const struct cgroup_vm *g, enum cgroup_ctrl c, const char *file,
       const char *val, const char *setting, char *err, size_t errlen)
{
	const char *dir = cgroup_vm_dir(g, c);
	int r;

	r = cg_write_at(dir, file, val);
	if (r < 0)
		cg_err(err, errlen, "%s: writing \"%s\" to %s/%s: %s", setting,
		       val, dir, file, strerror(-r));
	return r;
}

/*
 * The CPUs VM groups may use: those of the parent of the VM groups
 * (v2: effective ones, v1: its cpuset.cpus, which a child must stay in).
 */
static int
cg_cpuset_parent(const struct cgroup_vm *g, struct cpulist *ret, char *text,
		 size_t len)
{
	const char *base = cgroup_host_base(g->h, CGROUP_CTRL_CPUSET);
	int r;

	r = cg_read_at(base, g->h->version == CGROUP_V2 ?
		       "cpuset.cpus.effective" : "cpuset.cpus", text, len);
	if (r < 0)
		return r;
	return cpulist_parse(text, ret);
}

static int
cg_check_cpuset(const struct cgroup_vm *g, const struct cpulist *want,
		char *err, size_t errlen)
{
	char have_text[CG_CPULIST_TEXT], out_text[CG_CPULIST_TEXT];
	struct cpulist have, out;
	unsigned int cpu;

	/* Unknown: the kernel has the last word when the CPUs are written. */
	if (cg_cpuset_parent(g, &have, have_text, sizeof(have_text)) < 0)
		return 0;
	cpulist_zero(&out);
	for (cpu = 0; cpu < CPULIST_MAX; cpu++)
		if (cpulist_has(want, cpu) && !cpulist_has(&have, cpu))
			cpulist_set(&out, cpu);
	if (!cpulist_count(&out))
		return 0;
	if (cpulist_format(&out, out_text, sizeof(out_text)) < 0)
		out_text[0] = '\0';
	cg_err(err, errlen, "cpu_pin: CPUs %s are not in vmmd's cpuset (%s)",
	       out_text, have_text);
	return -EINVAL;
}

static int
cg_apply_cpu(const struct cgroup_vm *g, const struct cgroup_limits *l,
	     char *err, size_t errlen)
{
	char val[64], period_s[32];
	uint64_t period, quota, shares;
	int r;

	period = l->cpu_quota_milli * (uint64_t)CG_PERIOD_US / 1000 >=
		CG_QUOTA_MIN_US ? CG_PERIOD_US : CG_PERIOD_LONG_US;
	quota = l->cpu_quota_milli * period / 1000;
	if (g->h->version == CGROUP_V2) {
		snprintf(val, sizeof(val), "%u", l->cpu_weight ?
			 l->cpu_weight : CG_WEIGHT_DEFAULT);
		r = cg_set(g, CGROUP_CTRL_CPU, "cpu.weight", val, "cpu_weight",
			   err, errlen);
		if (r < 0)
			return r;
		if (l->cpu_quota_milli)
			snprintf(val, sizeof(val), "%" PRIu64 " %" PRIu64,
				 quota, period);
		else
			snprintf(val, sizeof(val), "max %u", CG_PERIOD_US);
		return cg_set(g, CGROUP_CTRL_CPU, "cpu.max", val, "cpu_quota",
			      err, errlen);
	}

	shares = l->cpu_weight ? (uint64_t)l->cpu_weight * 1024 / 100 :
		CG_SHARES_DEFAULT;
	if (shares < CG_SHARES_MIN)
		shares = CG_SHARES_MIN;
	if (shares > CG_SHARES_MAX)
		shares = CG_SHARES_MAX;
	snprintf(val, sizeof(val), "%" PRIu64, shares);
	r = cg_set(g, CGROUP_CTRL_CPU, "cpu.shares", val, "cpu_weight", err,
		   errlen);
	if (r < 0)
		return r;
	if (!l->cpu_quota_milli)
		return cg_set(g, CGROUP_CTRL_CPU, "cpu.cfs_quota_us", "-1",
			      "cpu_quota", err, errlen);
	snprintf(period_s, sizeof(period_s), "%" PRIu64, period);
	r = cg_set(g, CGROUP_CTRL_CPU, "cpu.cfs_period_us", period_s,
		   "cpu_quota", err, errlen);
	if (r < 0)
		return r;
	snprintf(val, sizeof(val), "%" PRIu64, quota);
	return cg_set(g, CGROUP_CTRL_CPU, "cpu.cfs_quota_us", val, "cpu_quota",
		      err, errlen);
}

static int
cg_apply_cpuset(const struct cgroup_vm *g, const struct cgroup_limits *l,
		char *err, size_t errlen)
{
	const char *dir = cgroup_vm_dir(g, CGROUP_CTRL_CPUSET);
	const char *base = cgroup_host_base(g->h, CGROUP_CTRL_CPUSET);
	char val[CG_CPULIST_TEXT], what[CG_WHY_MAX];
	struct cpulist parent;
	int r;

	if (g->h->version == CGROUP_V2) {
		if (!cpulist_count(&l->cpuset))
			/* Empty: the parent's effective CPUs. */
			return cg_set(g, CGROUP_CTRL_CPUSET, "cpuset.cpus",
				      "\n", "cpu_pin", err, errlen);
		cpulist_format(&l->cpuset, val, sizeof(val));
		return cg_set(g, CGROUP_CTRL_CPUSET, "cpuset.cpus", val,
			      "cpu_pin", err, errlen);
	}

	/* v1 groups without memory nodes take no tasks. */
	r = cg_v1_cpuset_init(base, dir, false, what, sizeof(what));
	if (r < 0) {
		cg_err(err, errlen, "cpu_pin: %s", what);
		return r;
	}
	if (cpulist_count(&l->cpuset)) {
		cpulist_format(&l->cpuset, val, sizeof(val));
	} else {
		r = cg_cpuset_parent(g, &parent, val, sizeof(val));
		if (r < 0) {
			cg_err(err, errlen, "cpu_pin: reading %s/cpuset.cpus: "
			       "%s", base, strerror(-r));
			return r;
		}
	}
	return cg_set(g, CGROUP_CTRL_CPUSET, "cpuset.cpus", val, "cpu_pin",
		      err, errlen);
}

static int
cg_apply_memory(const struct cgroup_vm *g, const struct cgroup_limits *l,
		char *err, size_t errlen)
{
	const char *dir = cgroup_vm_dir(g, CGROUP_CTRL_MEMORY);
	char val[32], old_high[32];
	uint64_t cur;
	int r;

	if (g->h->version == CGROUP_V1) {
		if (!l->memory_limit)
			return cg_set(g, CGROUP_CTRL_MEMORY,
				      "memory.limit_in_bytes", "-1",
				      "memory_limit", err, errlen);
		snprintf(val, sizeof(val), "%" PRIu64, l->memory_limit);
		r = cg_set(g, CGROUP_CTRL_MEMORY, "memory.limit_in_bytes", val,
			   "memory_limit", err, errlen);
		if (r == -EBUSY && cg_read_u64_at(dir, "memory.usage_in_bytes",
						  &cur) == 0)
			cg_err(err, errlen, "memory_limit: the kernel refused "
			       "%s bytes for %s/memory.limit_in_bytes: the VM "
			       "uses %" PRIu64 " bytes and they could not be "
			       "reclaimed below the limit", val, dir, cur);
		return r;
	}

	if (!l->memory_limit) {
		r = cg_set(g, CGROUP_CTRL_MEMORY, "memory.max", "max",
			   "memory_limit", err, errlen);
		if (r < 0)
			return r;
		return cg_set(g, CGROUP_CTRL_MEMORY, "memory.high", "max",
			      "memory_limit", err, errlen);
	}
	r = cg_read_at(dir, "memory.high", old_high, sizeof(old_high));
	if (r < 0) {
		cg_err(err, errlen, "memory_limit: reading %s/memory.high: %s",
		       dir, strerror(-r));
		return r;
	}
	/* Writing memory.high makes the kernel reclaim down to it. */
	snprintf(val, sizeof(val), "%" PRIu64,
		 l->memory_limit - l->memory_limit / 20);
	r = cg_set(g, CGROUP_CTRL_MEMORY, "memory.high", val, "memory_limit",
		   err, errlen);
	if (r < 0)
		return r;
	if (cg_read_u64_at(dir, "memory.current", &cur) == 0 &&
	    cur > l->memory_limit) {
		cg_write_at(dir, "memory.high", old_high);
		cg_err(err, errlen, "memory_limit: the VM uses %" PRIu64
		       " bytes, more than the limit of %" PRIu64 " bytes, and "
		       "they could not be reclaimed (shrink the guest first, "
		       "e.g. with its balloon)", cur, l->memory_limit);
		return -EBUSY;
	}
	snprintf(val, sizeof(val), "%" PRIu64, l->memory_limit);
	return cg_set(g, CGROUP_CTRL_MEMORY, "memory.max", val, "memory_limit",
		      err, errlen);
}

int
cgroup_vm_apply(struct cgroup_vm *g, const struct cgroup_limits *l,
		char *err, size_t errlen)
{
	const struct cgroup_host *h = g->h;
	int r;

	if (l->cpu_weight && (l->cpu_weight < CGROUP_CPU_WEIGHT_MIN ||
			      l->cpu_weight > CGROUP_CPU_WEIGHT_MAX)) {
		cg_err(err, errlen, "cpu_weight: %u is out of range %u..%u",
		       l->cpu_weight, CGROUP_CPU_WEIGHT_MIN,
		       CGROUP_CPU_WEIGHT_MAX);
		return -EINVAL;
	}
	if (l->memory_limit > (uint64_t)INT64_MAX) {
		cg_err(err, errlen, "memory_limit: %" PRIu64 " bytes is more "
		       "than the kernel takes", l->memory_limit);
		return -EINVAL;
	}
	if ((l->cpu_weight && (r = cg_need(g, CGROUP_CTRL_CPU, "cpu_weight",
					   err, errlen)) < 0) ||
	    (l->cpu_quota_milli && (r = cg_need(g, CGROUP_CTRL_CPU,
						"cpu_quota", err,
						errlen)) < 0) ||
	    (cpulist_count(&l->cpuset) &&
	     (r = cg_need(g, CGROUP_CTRL_CPUSET, "cpu_pin", err,
			  errlen)) < 0) ||
	    (l->memory_limit && (r = cg_need(g, CGROUP_CTRL_MEMORY,
					     "memory_limit", err,
					     errlen)) < 0))
		return r;
	if (cpulist_count(&l->cpuset)) {
		r = cg_check_cpuset(g, &l->cpuset, err, errlen);
		if (r < 0)
			return r;
	}

	if (cgroup_host_has(h, CGROUP_CTRL_CPU)) {
		r = cg_apply_cpu(g, l, err, errlen);
		if (r < 0)
			return r;
	}
	if (cgroup_host_has(h, CGROUP_CTRL_CPUSET)) {
		r = cg_apply_cpuset(g, l, err, errlen);
		if (r < 0)
			return r;
	}
	if (cgroup_host_has(h, CGROUP_CTRL_MEMORY)) {
		r = cg_apply_memory(g, l, err, errlen);
		if (r < 0)
			return r;
	}
	return 0;
}

/* --- processes -------------------------------------------------------- */

/* The flags field of PROC/ID/stat (after the parenthesised comm). */
static int
cg_task_flags(const char *proc, const char *id, unsigned long *ret)
{
	char path[PATH_MAX], buf[1024], *p;
	int r;

	if (snprintf(path, sizeof(path), "%s/%s/stat", proc, id) >=
	    (int)sizeof(path))
		return -ENAMETOOLONG;
	r = cg_read(path, buf, sizeof(buf));
	if (r < 0)
		return r;
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %lu", ret) != 1)
		return -EINVAL;
	return 0;
}

static bool
cg_is_kthread(const char *proc, const char *id)
{
	unsigned long flags;

	return cg_task_flags(proc, id, &flags) == 0 &&
	       (flags & CG_PF_KTHREAD);
}

/* The file a single task is moved with: v1 tasks; v2 cgroup.procs. */
static const char *
cg_task_file(const struct cgroup_host *h)
{
	return h->version == CGROUP_V1 ? "tasks" : "cgroup.procs";
}

/* Move kernel thread id into the VM's group: 1 moved, 0 refused. */
static int
cg_move_kthread(struct cgroup_vm *g, const char *id, char *err,
		size_t errlen)
{
	const struct cgroup_host *h = g->h;
	unsigned int i;
	int r;

	for (i = 0; i < h->nr_hier; i++) {
		if (!h->hier[i].ctrls)
			continue;
		r = cg_write_at(g->dir[i], cg_task_file(h), id);
		if (r == -EINVAL || r == -ESRCH)
			return 0;
		if (r < 0) {
			cg_err(err, errlen, "cgroup: moving KVM kernel thread "
			       "%s to %s/%s: %s", id, g->dir[i],
			       cg_task_file(h), strerror(-r));
			return r;
		}
	}
	return 1;
}

int
cgroup_vm_attach(struct cgroup_vm *g, pid_t pid,
		 struct cgroup_attach_result *ret, char *err, size_t errlen)
{
	const struct cgroup_host *h = g->h;
	struct cgroup_attach_result res = { 0, 0 };
	char id[32], pit[48], nx[48], comm[64], path[PATH_MAX];
	struct dirent *de;
	unsigned int i;
	bool any = false;
	DIR *d;
	int r;

	if (pid <= 0) {
		cg_err(err, errlen, "cgroup: attach: bad pid %d", (int)pid);
		return -EINVAL;
	}
	snprintf(id, sizeof(id), "%d", (int)pid);
	for (i = 0; i < h->nr_hier; i++) {
		if (!h->hier[i].ctrls)
			continue;
		any = true;
		r = cg_write_at(g->dir[i], "cgroup.procs", id);
		if (r < 0) {
			cg_err(err, errlen, "cgroup: moving process %d to "
			       "%s/cgroup.procs: %s", (int)pid, g->dir[i],
			       strerror(-r));
			return r;
		}
	}
	if (!any)
		goto out;

	snprintf(pit, sizeof(pit), "kvm-pit/%d", (int)pid);
	snprintf(nx, sizeof(nx), "kvm-nx-lpage-recovery-%d", (int)pid);
	d = opendir(h->proc);
	if (!d) {
		r = -errno;
		cg_err(err, errlen, "cgroup: reading %s: %s", h->proc,
		       strerror(-r));
		return r;
	}
	r = 0;
	while ((de = readdir(d))) {
		if (!isdigit((unsigned char)de->d_name[0]) ||
		    de->d_name[strspn(de->d_name, "0123456789")])
			continue;
		if (snprintf(path, sizeof(path), "%s/%s/comm", h->proc,
			     de->d_name) >= (int)sizeof(path) ||
		    cg_read(path, comm, sizeof(comm)) < 0)
			continue;
		if (strcmp(comm, pit) != 0 && strcmp(comm, nx) != 0)
			continue;
		/* A user process may call itself anything. */
		if (!cg_is_kthread(h->proc, de->d_name))
			continue;
		res.kthreads_found++;
		r = cg_move_kthread(g, de->d_name, err, errlen);
		if (r < 0)
			break;
		res.kthreads_moved += (unsigned int)r;
		r = 0;
	}
	closedir(d);
	if (r < 0)
		return r;
out:
	if (ret)
		*ret = res;
	return 0;
}

/* --- statistics ------------------------------------------------------- */

static int
cg_stats_v2(struct cgroup_vm *g, struct cgroup_stats *s)
{
	const char *dir = g->dir[0];
	const char *mem = cgroup_vm_dir(g, CGROUP_CTRL_MEMORY);
	char text[2048];
	uint64_t v, u, sy;
	int r;

	r = cg_read_at(dir, "cpu.stat", text, sizeof(text));
	if (r < 0)
		return r;
	if (cg_keyed(text, "usage_usec", &v) == 0) {
		s->has_cpu = true;
		s->cpu_usage_ns = v * 1000;
	}
	if (cg_keyed(text, "user_usec", &u) == 0 &&
	    cg_keyed(text, "system_usec", &sy) == 0) {
		s->has_cpu_split = true;
		s->cpu_user_ns = u * 1000;
		s->cpu_system_ns = sy * 1000;
	}
	if (cg_keyed(text, "throttled_usec", &v) == 0) {
		s->has_throttle = true;
		s->cpu_throttled_ns = v * 1000;
		cg_keyed(text, "nr_periods", &s->cpu_nr_periods);
		cg_keyed(text, "nr_throttled", &s->cpu_nr_throttled);
	}
	if (mem) {
		r = cg_read_u64_at(mem, "memory.current", &s->memory_current);
		if (r < 0)
			return r;
		s->has_memory = true;
		s->has_memory_peak = cg_read_u64_at(mem, "memory.peak",
						    &s->memory_peak) == 0;
	}
	return 0;
}

static int
cg_stats_v1(struct cgroup_vm *g, struct cgroup_stats *s)
{
	const char *acct = cgroup_vm_dir(g, CGROUP_CTRL_CPUACCT);
	const char *cpu = cgroup_vm_dir(g, CGROUP_CTRL_CPU);
	const char *mem = cgroup_vm_dir(g, CGROUP_CTRL_MEMORY);
	char text[2048];
	uint64_t u, sy;
	int r;

	if (acct) {
		r = cg_read_u64_at(acct, "cpuacct.usage", &s->cpu_usage_ns);
		if (r < 0)
			return r;
		s->has_cpu = true;
		if (cg_read_u64_at(acct, "cpuacct.usage_user", &u) == 0 &&
		    cg_read_u64_at(acct, "cpuacct.usage_sys", &sy) == 0) {
			s->has_cpu_split = true;
			s->cpu_user_ns = u;
			s->cpu_system_ns = sy;
		}
	}
	if (cpu) {
		r = cg_read_at(cpu, "cpu.stat", text, sizeof(text));
		if (r < 0)
			return r;
		if (cg_keyed(text, "throttled_time", &s->cpu_throttled_ns) ==
		    0) {
			s->has_throttle = true;
			cg_keyed(text, "nr_periods", &s->cpu_nr_periods);
			cg_keyed(text, "nr_throttled", &s->cpu_nr_throttled);
		}
	}
	if (mem) {
		r = cg_read_u64_at(mem, "memory.usage_in_bytes",
				   &s->memory_current);
		if (r < 0)
			return r;
		s->has_memory = true;
		s->has_memory_peak = cg_read_u64_at(mem,
						    "memory.max_usage_in_bytes",
						    &s->memory_peak) == 0;
	}
	return 0;
}

int
cgroup_vm_stats(struct cgroup_vm *g, struct cgroup_stats *ret)
{
	struct cgroup_stats s;
	int r = 0;

	memset(&s, 0, sizeof(s));
	if (g->h->version == CGROUP_V2 && g->h->nr_hier && g->dir[0][0])
		r = cg_stats_v2(g, &s);
	else if (g->h->version == CGROUP_V1)
		r = cg_stats_v1(g, &s);
	if (r < 0)
		return r;
	*ret = s;
	return 0;
}

/* --- removal ---------------------------------------------------------- */

/* Kernel threads left in dir go back to the hierarchy's root. */
static void
cg_evict_kthreads(const struct cgroup_host *h, const struct cgroup_hier *hr,
		  const char *dir)
{
	char path[PATH_MAX], dst[PATH_MAX], id[32];
	FILE *f;

	if (cg_join(path, sizeof(path), dir, cg_task_file(h)) < 0 ||
	    cg_join(dst, sizeof(dst), hr->mount, cg_task_file(h)) < 0)
		return;
	f = fopen(path, "re");
	if (!f)
		return;
	while (fscanf(f, "%31s", id) == 1)
		if (cg_is_kthread(h->proc, id))
			cg_write(dst, id);
	fclose(f);
}

int
cgroup_vm_destroy(struct cgroup_vm *g, char *err, size_t errlen)
{
	const struct timespec wait = { 0, CG_RMDIR_WAIT_NS };
	const struct cgroup_host *h = g->h;
	unsigned int i, tries;
	int r;

	for (i = 0; i < h->nr_hier; i++) {
		if (!g->dir[i][0])
			continue;
		for (tries = 0;; tries++) {
			if (rmdir(g->dir[i]) == 0 || errno == ENOENT)
				break;
			r = -errno;
			if (r != -EBUSY || tries == CG_RMDIR_TRIES) {
				cg_err(err, errlen, "cgroup: VM \"%s\": "
				       "removing %s: %s%s", g->name, g->dir[i],
				       strerror(-r), r == -EBUSY ?
				       " (processes are still in it)" : "");
				return r;
			}
			if (tries == 0)
				cg_evict_kthreads(h, &h->hier[i], g->dir[i]);
			nanosleep(&wait, NULL);
		}
	}
	return 0;
}

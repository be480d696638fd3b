/* SPDX-License-Identifier: MIT */
#include "dev/fw_cfg.h"

#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define FW_CFG_NR_ARCH		(FW_CFG_ARCH_LAST - FW_CFG_ARCH_LOCAL + 1)

struct fw_cfg_item {
	uint8_t *data;		/* NULL for an empty item */
	uint32_t len;
	bool present;
};

struct fw_cfg {
	pthread_mutex_t lock;	/* everything below */
	struct bus *pio;
	bool registered;
	struct fw_cfg_item plain[FW_CFG_FILE_FIRST];
	struct fw_cfg_item arch[FW_CFG_NR_ARCH];
	struct fw_cfg_item files[FW_CFG_MAX_FILES];	/* key 0x20 + i */
	char names[FW_CFG_MAX_FILES][FW_CFG_MAX_FILE_PATH];
	unsigned int nr_files;
	/*
	 * What the guest selected and how far it has read. The item is
	 * looked up on every read: adding a file replaces the directory.
	 */
	uint16_t selected;
	uint32_t offset;
};

static struct fw_cfg_item *
fw_cfg_item(struct fw_cfg *f, uint16_t key)
{
	if (key < FW_CFG_FILE_FIRST)
		return &f->plain[key];
	if (key < FW_CFG_FILE_FIRST + FW_CFG_MAX_FILES)
		return &f->files[key - FW_CFG_FILE_FIRST];
	if (key >= FW_CFG_ARCH_LOCAL && key <= FW_CFG_ARCH_LAST)
		return &f->arch[key - FW_CFG_ARCH_LOCAL];
	return NULL;
}

static void
fw_cfg_item_clear(struct fw_cfg_item *it)
{
	free(it->data);
	memset(it, 0, sizeof(*it));
}

static int
fw_cfg_item_set(struct fw_cfg_item *it, const void *data, uint32_t len)
{
	uint8_t *copy = NULL;

	if (len > FW_CFG_MAX_ITEM_SIZE)
		return -EFBIG;
	if (len) {
		copy = malloc(len);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, data, len);
	}
	free(it->data);
	it->data = copy;
	it->len = len;
	it->present = true;
	return 0;
}

static int
fw_cfg_name_cmp(const void *a, const void *b)
{
	const struct fw_cfg_file *x = a, *y = b;

	return strncmp(x->name, y->name, FW_CFG_MAX_FILE_PATH);
}

/* Rebuild the directory item from the files, sorted by name. */
static int
fw_cfg_rebuild_dir(struct fw_cfg *f, unsigned int nr_files)
{
	size_t len = sizeof(uint32_t) + nr_files * sizeof(struct fw_cfg_file);
	struct fw_cfg_file *e;
	uint8_t *buf;
	uint32_t count = htobe32(nr_files);
	unsigned int i;
	int r;

	buf = calloc(1, len);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, &count, sizeof(count));
	e = (struct fw_cfg_file *)(void *)(buf + sizeof(count));
	for (i = 0; i < nr_files; i++) {
		e[i].size = htobe32(f->files[i].len);
		e[i].select = htobe16((uint16_t)(FW_CFG_FILE_FIRST + i));
		memcpy(e[i].name, f->names[i], FW_CFG_MAX_FILE_PATH);
	}
	qsort(e, nr_files, sizeof(*e), fw_cfg_name_cmp);
	r = fw_cfg_item_set(&f->plain[FW_CFG_FILE_DIR], buf, (uint32_t)len);
	free(buf);
	return r;
}

static void
fw_cfg_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
	  bool is_write)
{
	struct fw_cfg *f = opaque;
	const struct fw_cfg_item *it;
	uint32_t i;

	pthread_mutex_lock(&f->lock);
	if (offset == FW_CFG_PORT_SEL - FW_CFG_PORT_SEL && len == 2 &&
	    is_write) {
		f->selected = (uint16_t)(data[0] | data[1] << 8);
		f->offset = 0;
		goto out;
	}
	if (is_write)
		goto out;	/* item writes are not supported */
	if (offset != FW_CFG_PORT_DATA - FW_CFG_PORT_SEL) {
		memset(data, 0, len);
		goto out;
	}
	it = (f->selected & FW_CFG_WRITE_CHANNEL) ? NULL :
	     fw_cfg_item(f, f->selected);
	for (i = 0; i < len; i++) {
		if (it && it->present && f->offset < it->len)
			data[i] = it->data[f->offset++];
		else
			data[i] = 0;
	}
out:
	pthread_mutex_unlock(&f->lock);
}

struct fw_cfg *
fw_cfg_new(struct bus *pio)
{
	static const uint8_t signature[4] = { 'Q', 'E', 'M', 'U' };
	uint32_t id = htole32(FW_CFG_ID_TRADITIONAL);
	struct fw_cfg *f;
	int r;

	f = calloc(1, sizeof(*f));
	if (!f) {
		errno = ENOMEM;
		return NULL;
	}
	f->pio = pio;
	r = pthread_mutex_init(&f->lock, NULL);
	if (r != 0) {
		free(f);
		errno = r;
		return NULL;
	}
	r = fw_cfg_item_set(&f->plain[FW_CFG_SIGNATURE], signature,
			    sizeof(signature));
	if (r == 0)
		r = fw_cfg_item_set(&f->plain[FW_CFG_ID], &id, sizeof(id));
	if (r == 0)
		r = fw_cfg_rebuild_dir(f, 0);
	if (r == 0)
		r = bus_register(pio, FW_CFG_PORT_SEL, FW_CFG_NR_PORTS,
				 fw_cfg_io, f, "fw_cfg");
	if (r < 0) {
		fw_cfg_free(f);
		errno = -r;
		return NULL;
	}
	f->registered = true;
	return f;
}

void
fw_cfg_free(struct fw_cfg *f)
{
	unsigned int i;

	if (!f)
		return;
	if (f->registered)
		bus_unregister(f->pio, FW_CFG_PORT_SEL);
	for (i = 0; i < FW_CFG_FILE_FIRST; i++)
		fw_cfg_item_clear(&f->plain[i]);
	for (i = 0; i < FW_CFG_NR_ARCH; i++)
		fw_cfg_item_clear(&f->arch[i]);
	for (i = 0; i < FW_CFG_MAX_FILES; i++)
		fw_cfg_item_clear(&f->files[i]);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

int
fw_cfg_add_bytes(struct fw_cfg *f, uint16_t key, const void *data,
		 uint32_t len)
{
	struct fw_cfg_item *it;
	int r;

	if (!data && len)
		return -EINVAL;
	if (key == FW_CFG_SIGNATURE || key == FW_CFG_ID ||
	    key == FW_CFG_FILE_DIR)
		return -EINVAL;
	if (key >= FW_CFG_FILE_FIRST &&
	    (key < FW_CFG_ARCH_LOCAL || key > FW_CFG_ARCH_LAST))
		return -EINVAL;
	pthread_mutex_lock(&f->lock);
	it = fw_cfg_item(f, key);
	r = it->present ? -EEXIST : fw_cfg_item_set(it, data, len);
	pthread_mutex_unlock(&f->lock);
	return r;
}

int
fw_cfg_add_u16(struct fw_cfg *f, uint16_t key, uint16_t value)
{
	uint16_t le = htole16(value);

	return fw_cfg_add_bytes(f, key, &le, sizeof(le));
}

int
fw_cfg_add_u32(struct fw_cfg *f, uint16_t key, uint32_t value)
{
	uint32_t le = htole32(value);

	return fw_cfg_add_bytes(f, key, &le, sizeof(le));
}

int
fw_cfg_add_file(struct fw_cfg *f, const char *name, const void *data,
		uint32_t len)
{
	size_t nlen;
	unsigned int i, n;
	int r;

	if (!name || !*name || (!data && len))
		return -EINVAL;
	nlen = strnlen(name, FW_CFG_MAX_FILE_PATH);
	if (nlen >= FW_CFG_MAX_FILE_PATH)
		return -ENAMETOOLONG;
	if (len > FW_CFG_MAX_ITEM_SIZE)
		return -EFBIG;
	pthread_mutex_lock(&f->lock);
	n = f->nr_files;
	for (i = 0; i < n; i++) {
		if (strcmp(f->names[i], name) == 0) {
			r = -EEXIST;
			goto out;
		}
	}
	if (n == FW_CFG_MAX_FILES) {
		r = -ENOSPC;
		goto out;
	}
	r = fw_cfg_item_set(&f->files[n], data, len);
	if (r < 0)
		goto out;
	memset(f->names[n], 0, FW_CFG_MAX_FILE_PATH);
	memcpy(f->names[n], name, nlen);
	r = fw_cfg_rebuild_dir(f, n + 1);
	if (r < 0) {
		fw_cfg_item_clear(&f->files[n]);
		goto out;
	}
	f->nr_files = n + 1;
	r = FW_CFG_FILE_FIRST + (int)n;
out:
	pthread_mutex_unlock(&f->lock);
	return r;
}

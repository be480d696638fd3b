/* SPDX-License-Identifier: MIT */
/*
 * fw_cfg through its two ports, read the way SeaBIOS reads it: signature,
 * ID, plain and arch-local items, the file directory (big-endian, sorted)
 * and the files it points at, reads past the end, the write channel, and
 * every refusal of fw_cfg_add_*().
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "dev/fw_cfg.h"

struct fixture {
	struct bus pio;
	struct fw_cfg *f;
};

static int
setup(void **state)
{
	struct fixture *x = calloc(1, sizeof(*x));

	assert_non_null(x);
	assert_int_equal(bus_init(&x->pio, "pio"), 0);
	x->f = fw_cfg_new(&x->pio);
	assert_non_null(x->f);
	*state = x;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *x = *state;

	fw_cfg_free(x->f);
	assert_int_equal(x->pio.nr_ranges, 0);
	bus_destroy(&x->pio);
	free(x);
	return 0;
}

static void
select_key(struct fixture *x, uint16_t key)
{
	uint8_t d[2] = { key & 0xff, key >> 8 };

	assert_true(bus_dispatch(&x->pio, FW_CFG_PORT_SEL, d, 2, true));
}

/* insb from the data port, as SeaBIOS's qemu_cfg_read does. */
static void
read_data(struct fixture *x, void *buf, size_t len)
{
	uint8_t *p = buf;
	size_t i;

	for (i = 0; i < len; i++)
		assert_true(bus_dispatch(&x->pio, FW_CFG_PORT_DATA, &p[i], 1,
					 false));
}

static void
read_item(struct fixture *x, uint16_t key, void *buf, size_t len)
{
	select_key(x, key);
	read_data(x, buf, len);
}

/* Find a file the way SeaBIOS does: walk the directory. */
static int
find_file(struct fixture *x, const char *name, uint32_t *ret_size)
{
	struct fw_cfg_file e;
	uint32_t count, i;

	read_item(x, FW_CFG_FILE_DIR, &count, sizeof(count));
	count = be32toh(count);
	for (i = 0; i < count; i++) {
		read_data(x, &e, sizeof(e));
		if (strcmp(e.name, name) == 0) {
			*ret_size = be32toh(e.size);
			return be16toh(e.select);
		}
	}
	return -1;
}

static void
test_signature_and_id(void **state)
{
	struct fixture *x = *state;
	uint8_t sig[6];
	uint32_t id, count;

	assert_int_equal(sizeof(struct fw_cfg_file), 64);
	assert_int_equal(sizeof(struct fw_cfg_e820_entry), 20);
	read_item(x, FW_CFG_SIGNATURE, sig, sizeof(sig));
	assert_memory_equal(sig, "QEMU\0\0", 6);
	/* Selecting again starts over. */
	read_item(x, FW_CFG_SIGNATURE, sig, 1);
	assert_int_equal(sig[0], 'Q');
	read_item(x, FW_CFG_ID, &id, sizeof(id));
	assert_int_equal(le32toh(id), FW_CFG_ID_TRADITIONAL);
	read_item(x, FW_CFG_FILE_DIR, &count, sizeof(count));
	assert_int_equal(count, 0);
}

static void
test_absent_and_odd_accesses(void **state)
{
	struct fixture *x = *state;
	uint8_t b[8], d[4];

	/* Keys nobody added read as zeros, like QEMU's. */
	memset(b, 0xaa, sizeof(b));
	read_item(x, FW_CFG_NB_CPUS, b, sizeof(b));
	assert_memory_equal(b, "\0\0\0\0\0\0\0\0", 8);
	memset(b, 0xaa, sizeof(b));
	read_item(x, 0x7fff, b, 4);
	assert_memory_equal(b, "\0\0\0\0", 4);
	/* The write channel of an existing key is not readable... */
	memset(b, 0xaa, sizeof(b));
	read_item(x, FW_CFG_SIGNATURE | FW_CFG_WRITE_CHANNEL, b, 4);
	assert_memory_equal(b, "\0\0\0\0", 4);
	/* ...and writes to the data port change nothing. */
	select_key(x, FW_CFG_SIGNATURE);
	d[0] = 'X';
	assert_true(bus_dispatch(&x->pio, FW_CFG_PORT_DATA, d, 1, true));
	read_item(x, FW_CFG_SIGNATURE, b, 4);
	assert_memory_equal(b, "QEMU", 4);
	/* A byte write to the selector port is not a selection. */
	select_key(x, FW_CFG_SIGNATURE);
	d[0] = FW_CFG_ID;
	assert_true(bus_dispatch(&x->pio, FW_CFG_PORT_SEL, d, 1, true));
	read_data(x, b, 1);
	assert_int_equal(b[0], 'Q');
	/* The selector port reads zeros and does not advance the data. */
	memset(d, 0xaa, sizeof(d));
	assert_true(bus_dispatch(&x->pio, FW_CFG_PORT_SEL, d, 1, false));
	assert_int_equal(d[0], 0);
	read_data(x, b, 1);
	assert_int_equal(b[0], 'E');
	/* A word at the data port runs past the device. */
	assert_false(bus_dispatch(&x->pio, FW_CFG_PORT_DATA, d, 2, false));
	/* Nothing else of ours on the bus next to the ports. */
	assert_false(bus_dispatch(&x->pio, FW_CFG_PORT_SEL - 1, d, 1, false));
	assert_false(bus_dispatch(&x->pio, FW_CFG_PORT_DATA + 1, d, 1, false));
}

static void
test_plain_items(void **state)
{
	struct fixture *x = *state;
	uint16_t v16;
	uint32_t v32;
	uint8_t big[300], back[302];
	unsigned int i;

	assert_int_equal(fw_cfg_add_u16(x->f, FW_CFG_NB_CPUS, 3), 0);
	assert_int_equal(fw_cfg_add_u32(x->f, FW_CFG_IRQ0_OVERRIDE, 1), 0);
	for (i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(fw_cfg_add_bytes(x->f, FW_CFG_ARCH_LAST, big,
					  sizeof(big)), 0);
	assert_int_equal(fw_cfg_add_bytes(x->f, FW_CFG_UUID, NULL, 0), 0);

	read_item(x, FW_CFG_NB_CPUS, &v16, sizeof(v16));
	assert_int_equal(le16toh(v16), 3);
	read_item(x, FW_CFG_IRQ0_OVERRIDE, &v32, sizeof(v32));
	assert_int_equal(le32toh(v32), 1);
	/* SeaBIOS reads irq0-override as one byte. */
	read_item(x, FW_CFG_IRQ0_OVERRIDE, &v16, 1);
	assert_int_equal(v16 & 0xff, 1);
	/* Past the end: zeros. */
	memset(back, 0xaa, sizeof(back));
	read_item(x, FW_CFG_ARCH_LAST, back, sizeof(back));
	assert_memory_equal(back, big, sizeof(big));
	assert_int_equal(back[300], 0);
	assert_int_equal(back[301], 0);
	v16 = 0xaaaa;
	read_item(x, FW_CFG_UUID, &v16, sizeof(v16));
	assert_int_equal(v16, 0);
	/* The caller's buffer was copied. */
	big[0] = 0xee;
	read_item(x, FW_CFG_ARCH_LAST, back, 1);
	assert_int_equal(back[0], 1);

	/* Refusals. */
	assert_int_equal(fw_cfg_add_u16(x->f, FW_CFG_NB_CPUS, 4), -EEXIST);
	assert_int_equal(fw_cfg_add_u16(x->f, FW_CFG_SIGNATURE, 1), -EINVAL);
	assert_int_equal(fw_cfg_add_u16(x->f, FW_CFG_ID, 1), -EINVAL);
	assert_int_equal(fw_cfg_add_u16(x->f, FW_CFG_FILE_DIR, 1), -EINVAL);
	assert_int_equal(fw_cfg_add_u16(x->f, FW_CFG_FILE_FIRST, 1), -EINVAL);
	assert_int_equal(fw_cfg_add_u16(x->f, 0x1000, 1), -EINVAL);
	assert_int_equal(fw_cfg_add_u16(x->f, FW_CFG_WRITE_CHANNEL | 5, 1),
			 -EINVAL);
	assert_int_equal(fw_cfg_add_u16(x->f, FW_CFG_ARCH_LAST + 1, 1),
			 -EINVAL);
	assert_int_equal(fw_cfg_add_bytes(x->f, FW_CFG_MAX_CPUS, NULL, 2),
			 -EINVAL);
	assert_int_equal(fw_cfg_add_bytes(x->f, FW_CFG_MAX_CPUS, big,
					  FW_CFG_MAX_ITEM_SIZE + 1), -EFBIG);
	/* The refusals left the key free. */
	assert_int_equal(fw_cfg_add_u16(x->f, FW_CFG_MAX_CPUS, 8), 0);
	read_item(x, FW_CFG_MAX_CPUS, &v16, sizeof(v16));
	assert_int_equal(le16toh(v16), 8);
}

static void
test_files(void **state)
{
	struct fixture *x = *state;
	static const char e820[] = "e820 bytes";
	uint32_t wait = htole32(5000), size, count, v;
	struct fw_cfg_file e[3];
	char buf[32];
	int key;

	assert_int_equal(fw_cfg_add_file(x->f, "etc/e820", e820,
					 sizeof(e820)), FW_CFG_FILE_FIRST);
	assert_int_equal(fw_cfg_add_file(x->f, "etc/boot-fail-wait", &wait,
					 sizeof(wait)), FW_CFG_FILE_FIRST + 1);
	assert_int_equal(fw_cfg_add_file(x->f, "bootorder", "", 0),
			 FW_CFG_FILE_FIRST + 2);

	/* The directory: big-endian, sorted by name, reserved zero. */
	read_item(x, FW_CFG_FILE_DIR, &count, sizeof(count));
	assert_int_equal(be32toh(count), 3);
	read_data(x, e, sizeof(e));
	assert_string_equal(e[0].name, "bootorder");
	assert_int_equal(be16toh(e[0].select), FW_CFG_FILE_FIRST + 2);
	assert_int_equal(be32toh(e[0].size), 0);
	assert_string_equal(e[1].name, "etc/boot-fail-wait");
	assert_int_equal(be16toh(e[1].select), FW_CFG_FILE_FIRST + 1);
	assert_int_equal(be32toh(e[1].size), 4);
	assert_string_equal(e[2].name, "etc/e820");
	assert_int_equal(be16toh(e[2].select), FW_CFG_FILE_FIRST);
	assert_int_equal(be32toh(e[2].size), sizeof(e820));
	assert_int_equal(e[2].reserved, 0);
	/* Past the last entry: zeros. */
	read_data(x, &v, sizeof(v));
	assert_int_equal(v, 0);

	key = find_file(x, "etc/e820", &size);
	assert_int_equal(key, FW_CFG_FILE_FIRST);
	assert_int_equal(size, sizeof(e820));
	read_item(x, (uint16_t)key, buf, size);
	assert_string_equal(buf, e820);
	key = find_file(x, "etc/boot-fail-wait", &size);
	assert_int_equal(size, 4);
	read_item(x, (uint16_t)key, &v, sizeof(v));
	assert_int_equal(le32toh(v), 5000);
	assert_int_equal(find_file(x, "etc/sercon-port", &size), -1);

	/* Refusals. */
	assert_int_equal(fw_cfg_add_file(x->f, "etc/e820", "x", 1), -EEXIST);
	assert_int_equal(fw_cfg_add_file(x->f, "", "x", 1), -EINVAL);
	assert_int_equal(fw_cfg_add_file(x->f, NULL, "x", 1), -EINVAL);
	assert_int_equal(fw_cfg_add_file(x->f, "etc/x", NULL, 1), -EINVAL);
	assert_int_equal(fw_cfg_add_file(x->f, "etc/x", "x",
					 FW_CFG_MAX_ITEM_SIZE + 1), -EFBIG);
	{
		char name[FW_CFG_MAX_FILE_PATH + 1];

		memset(name, 'n', sizeof(name));
		name[FW_CFG_MAX_FILE_PATH - 1] = '\0';	/* 55 characters */
		assert_int_equal(fw_cfg_add_file(x->f, name, "y", 1),
				 FW_CFG_FILE_FIRST + 3);
		assert_int_equal(find_file(x, name, &size),
				 FW_CFG_FILE_FIRST + 3);
		name[FW_CFG_MAX_FILE_PATH - 1] = 'n';
		name[FW_CFG_MAX_FILE_PATH] = '\0';	/* 56 */
		assert_int_equal(fw_cfg_add_file(x->f, name, "y", 1),
				 -ENAMETOOLONG);
	}
	read_item(x, FW_CFG_FILE_DIR, &count, sizeof(count));
	assert_int_equal(be32toh(count), 4);
}

static void
test_file_limit(void **state)
{
	struct fixture *x = *state;
	char name[16];
	uint32_t count, size;
	uint8_t b;
	int i;

	for (i = 0; i < FW_CFG_MAX_FILES; i++) {
		snprintf(name, sizeof(name), "f%03d", FW_CFG_MAX_FILES - i);
		b = (uint8_t)i;
		assert_int_equal(fw_cfg_add_file(x->f, name, &b, 1),
				 FW_CFG_FILE_FIRST + i);
	}
	assert_int_equal(fw_cfg_add_file(x->f, "one-more", "z", 1), -ENOSPC);
	read_item(x, FW_CFG_FILE_DIR, &count, sizeof(count));
	assert_int_equal(be32toh(count), FW_CFG_MAX_FILES);
	/* The last file's key, and it reads what was added. */
	assert_int_equal(find_file(x, "f001", &size),
			 FW_CFG_FILE_FIRST + FW_CFG_MAX_FILES - 1);
	read_item(x, FW_CFG_FILE_FIRST + FW_CFG_MAX_FILES - 1, &b, 1);
	assert_int_equal(b, FW_CFG_MAX_FILES - 1);
	/* Keys past the files are nobody's. */
	b = 0xaa;
	read_item(x, FW_CFG_FILE_FIRST + FW_CFG_MAX_FILES, &b, 1);
	assert_int_equal(b, 0);
}

static void
test_new_errors(void **state)
{
	struct fixture *x = *state;
	struct fw_cfg *g;

	/* The ports are taken. */
	errno = 0;
	g = fw_cfg_new(&x->pio);
	assert_null(g);
	assert_int_equal(errno, EEXIST);
	fw_cfg_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_signature_and_id, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_absent_and_odd_accesses,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_plain_items, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_limit, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_new_errors, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

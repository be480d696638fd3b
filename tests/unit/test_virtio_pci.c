/* SPDX-License-Identifier: MIT */
/*
 * The virtio-pci transport and device core, driven through the harness as
 * Linux's virtio_pci_modern would drive them, with a trivial "echo"
 * device defined here (it copies what it reads into what it may write):
 * enumeration, the capability layout, feature negotiation, queue setup,
 * round trips through the doorbell and the eventfds on the I/O thread,
 * MSI-X masking and the PBA, reset in the middle of I/O, device config,
 * the PCI-config window, the ISR, INTx on the GSI of the function's slot
 * (layout.h's mapping), and NEEDS_RESET on a hostile ring;
 * the expansion ROM BAR (sizing, enable and memory decoding, contents,
 * writes ignored, none without a ROM) and virtio_pci_rom_check() on
 * synthetic ROMs and, where installed, Debian's iPXE ROM for virtio-net.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/virtio_pci.h>

#include "helpers/virtio_harness.h"
#include "layout.h"
#include "log.h"
#include "virtio/virtio.h"
#include "virtio/virtio_pci.h"

#define ECHO_ID			42	/* not a registered virtio id */
#define ECHO_F_UPPER		0	/* device feature: upper-case echo */
#define ECHO_F_NEEDS_UPPER	1	/* refused without ECHO_F_UPPER */
#define ECHO_MAGIC		0xec40ec40u
#define ECHO_QUEUES		2
#define ECHO_QMAX		64
#define RAM			(64ULL << 20)
#define TMO			2000

#define F_V1	(1ULL << VIRTIO_F_VERSION_1)
#define F_EVT	(1ULL << VIRTIO_RING_F_EVENT_IDX)
#define F_IND	(1ULL << VIRTIO_RING_F_INDIRECT_DESC)

struct echo {
	struct virtio_device vdev;
	uint32_t scratch;
	unsigned int delay_us;		/* per request, to make I/O slow */
	pthread_t io_thread;		/* where callbacks ran */
	bool in_notify;			/* atomics: seen by the test thread */
	unsigned int resets;
	unsigned int activates;
	unsigned int served;
	bool touched_after_reset;
	bool callback_off_thread;
};

static void
echo_note_thread(struct echo *e)
{
	if (!__atomic_load_n(&e->io_thread, __ATOMIC_RELAXED))
		__atomic_store_n(&e->io_thread, pthread_self(),
				 __ATOMIC_RELAXED);
	else if (!pthread_equal(e->io_thread, pthread_self()))
		e->callback_off_thread = true;
}

static void
echo_config_read(struct virtio_device *vdev, uint32_t off, void *data,
		 uint32_t len)
{
	struct echo *e = vdev->opaque;
	uint8_t cfg[8];

	memcpy(cfg, &(uint32_t){ ECHO_MAGIC }, 4);
	memcpy(cfg + 4, &e->scratch, 4);
	memcpy(data, cfg + off, len);
}

static void
echo_config_write(struct virtio_device *vdev, uint32_t off, const void *data,
		  uint32_t len)
{
	struct echo *e = vdev->opaque;

	if (off == 4 && len == 4)
		memcpy(&e->scratch, data, 4);
}

static int
echo_features_ok(struct virtio_device *vdev, uint64_t f)
{
	(void)vdev;
	if ((f & (1ULL << ECHO_F_NEEDS_UPPER)) && !(f & (1ULL << ECHO_F_UPPER)))
		return -EINVAL;
	return 0;
}

static void
echo_queue_notify(struct virtio_device *vdev, struct virtq *vq)
{
	struct echo *e = vdev->opaque;
	struct iovec iov[ECHO_QMAX];
	struct virtq_elem el;
	uint8_t buf[4096];
	size_t n, got, put;
	unsigned int i;

	echo_note_thread(e);
	__atomic_store_n(&e->in_notify, true, __ATOMIC_SEQ_CST);
	while (virtq_pop(vq, iov, ECHO_QMAX, &el) == 1) {
		if (e->delay_us)
			usleep(e->delay_us);
		got = 0;
		for (i = 0; i < el.nr_out && got < sizeof(buf); i++) {
			n = iov[i].iov_len;
			if (n > sizeof(buf) - got)
				n = sizeof(buf) - got;
			memcpy(buf + got, iov[i].iov_base, n);
			got += n;
		}
		if (virtio_has_feature(vdev, ECHO_F_UPPER))
			for (i = 0; i < got; i++)
				if (buf[i] >= 'a' && buf[i] <= 'z')
					buf[i] = (uint8_t)(buf[i] - 32);
		put = 0;
		for (i = el.nr_out; i < el.nr_out + el.nr_in && put < got; i++) {
			n = iov[i].iov_len;
			if (n > got - put)
				n = got - put;
			memcpy(iov[i].iov_base, buf + put, n);
			put += n;
		}
		virtq_push(vq, el.head, (uint32_t)put);
		__atomic_add_fetch(&e->served, 1, __ATOMIC_SEQ_CST);
		virtio_queue_signal(vdev, vq);
	}
	__atomic_store_n(&e->in_notify, false, __ATOMIC_SEQ_CST);
}

static void
echo_activate(struct virtio_device *vdev)
{
	struct echo *e = vdev->opaque;

	echo_note_thread(e);
	__atomic_add_fetch(&e->activates, 1, __ATOMIC_SEQ_CST);
}

static void
echo_reset(struct virtio_device *vdev)
{
	struct echo *e = vdev->opaque;

	echo_note_thread(e);
	/* The core runs reset on the I/O thread, never inside a notify. */
	if (__atomic_load_n(&e->in_notify, __ATOMIC_SEQ_CST))
		e->touched_after_reset = true;
	__atomic_add_fetch(&e->resets, 1, __ATOMIC_SEQ_CST);
}

static const struct virtio_device_ops echo_ops = {
	.name = "virtio-echo",
	.device_id = ECHO_ID,
	.pci_class = 0xff0000,
	.config_read = echo_config_read,
	.config_write = echo_config_write,
	.features_ok = echo_features_ok,
	.queue_notify = echo_queue_notify,
	.activate = echo_activate,
	.reset = echo_reset,
};

struct fix {
	struct vh_machine m;
	struct echo echo;
	struct virtio_pci *vp;
	struct vh_dev d;
};

static int
setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));
	struct virtio_device *vdev = &f->echo.vdev;

	assert_non_null(f);
	assert_int_equal(vh_machine_init(&f->m, RAM), 0);
	vdev->ops = &echo_ops;
	vdev->name = "echo0";
	vdev->mem = &f->m.mem;
	vdev->features = (1ULL << ECHO_F_UPPER) | (1ULL << ECHO_F_NEEDS_UPPER);
	vdev->config_size = 8;
	vdev->nr_queues = ECHO_QUEUES;
	vdev->opaque = &f->echo;
	assert_int_equal(virtio_device_init(vdev, ECHO_QMAX), 0);
	assert_int_equal(vh_machine_add(&f->m, vdev, &f->vp), 0);
	assert_int_equal(vh_dev_probe(&f->d, &f->m, f->vp), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fix *f = *state;

	/* The device's thread stops before RAM and the bus go away. */
	virtio_device_destroy(&f->echo.vdev);
	vh_dev_release(&f->d);
	vh_machine_destroy(&f->m);
	virtio_pci_free(f->vp);
	assert_false(f->echo.callback_off_thread);
	free(f);
	return 0;
}

/* Negotiate, MSI-X on, both queues (vectors 1 and 2), config vector 0,
 * DRIVER_OK. */
static void
bring_up(struct fix *f, uint64_t features)
{
	struct vh_dev *d = &f->d;

	assert_int_equal(vh_dev_negotiate(d, features, false), 0);
	assert_int_equal(vh_dev_msix_enable(d), 0);
	vh_common_write(d, VIRTIO_PCI_COMMON_MSIX, 2, 0);
	assert_int_equal(vh_common_read(d, VIRTIO_PCI_COMMON_MSIX, 2), 0);
	assert_int_equal(vh_queue_setup(d, 0, 0, 1), 0);
	assert_int_equal(vh_queue_setup(d, 1, 16, 2), 0);
	assert_int_equal(vh_dev_driver_ok(d), 0);
}

/* One request: out text, a 64-byte in buffer. Returns the head. */
static int
submit(struct fix *f, unsigned int qi, const char *text, bool indirect,
       uint64_t *in_gpa)
{
	size_t n = strlen(text);
	uint64_t out = vh_alloc(&f->m, n, 8);
	struct vh_buf b[3];

	*in_gpa = vh_alloc(&f->m, 64, 8);
	assert_true(out && *in_gpa);
	memcpy(vh_ptr(&f->m, out, n), text, n);
	/* Split the in buffer in two to exercise several writable iovecs. */
	b[0] = (struct vh_buf){ out, (uint32_t)n };
	b[1] = (struct vh_buf){ *in_gpa, 3 };
	b[2] = (struct vh_buf){ *in_gpa + 3, 61 };
	return vh_queue_add(&f->d.q[qi], b, 1, 2, indirect);
}

static void
expect_echo(struct fix *f, unsigned int qi, int head, uint64_t in_gpa,
	    const char *want)
{
	uint16_t id;
	uint32_t len;

	if (!vh_queue_wait_used(&f->d.q[qi], &id, &len, TMO))
		fail_msg("queue %u: no used entry for head %d within %d ms", qi,
			 head, TMO);
	assert_int_equal(id, head);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(vh_ptr(&f->m, in_gpa, len), want, len);
}

static void
test_enumeration(void **state)
{
	struct fix *f = *state;
	struct vh_dev *d = &f->d;
	struct pci_device *pd = virtio_pci_device(f->vp);

	assert_int_equal(d->vendor_id, 0x1af4);
	assert_int_equal(d->device_id, 0x1040 + ECHO_ID);
	assert_int_equal(d->revision, 1);
	assert_int_equal(d->class_code, 0xff0000);
	assert_int_equal(d->subsys_vendor, 0x1af4);
	assert_int_equal(d->subsys_id, ECHO_ID);
	assert_true(pd->slot >= 1);
	/* BAR 1: 32-bit MSI-X; BAR 4: 64-bit prefetchable, placed high. */
	assert_int_equal(d->bar_size[1], 0x1000);
	assert_false(d->bar_64[1]);
	assert_int_equal(d->bar_size[4], 0x4000);
	assert_true(d->bar_64[4]);
	assert_true(d->bar_prefetch[4]);
	assert_true(d->bar_addr[4] >= LAYOUT_HIGH_RAM_START);
	assert_int_equal(d->bar_size[0] + d->bar_size[2] + d->bar_size[3], 0);
	assert_true(pd->bars[4].mapped);
	/* The virtio structures, each where the spec has the driver look. */
	assert_int_equal(d->common.bar, 4);
	assert_int_equal(d->common.offset, 0);
	assert_true(d->common.length >= 0x38);
	assert_int_equal(d->common.cap_len, 16);
	assert_int_equal(d->notify.bar, 4);
	assert_int_equal(d->notify.cap_len, 20);
	assert_int_equal(d->notify_mult, 4);
	assert_int_equal(d->notify.length, ECHO_QUEUES * 4);
	assert_int_equal(d->isr.bar, 4);
	assert_true(d->isr.length >= 1);
	assert_true(d->device.present);
	assert_int_equal(d->device.length, 8);
	assert_true(d->pcicfg.present);
	assert_int_equal(d->pcicfg.cap_len, 20);
	/* Structures do not overlap and lie inside the BAR. */
	assert_true(d->common.offset + d->common.length <= d->isr.offset);
	assert_true(d->isr.offset + d->isr.length <= d->device.offset);
	assert_true(d->device.offset + d->device.length <= d->notify.offset);
	assert_true(d->notify.offset + d->notify.length <= 0x4000);
	/* MSI-X: one vector per queue plus config; table and PBA in BAR 1. */
	assert_int_not_equal(d->msix_cap, 0);
	assert_int_equal(d->msix_size, ECHO_QUEUES + 1);
	assert_int_equal(d->msix_table_bar, 1);
	assert_int_equal(d->msix_pba_bar, 1);
	assert_int_equal(d->msix_table_off, 0);
	assert_int_equal(d->msix_pba_off, 0x800);
	assert_int_equal(d->num_queues, ECHO_QUEUES);
	/* Vectors come out of reset masked. */
	{
		uint64_t a;
		uint32_t data, ctrl;

		vh_msix_entry(d, 0, &a, &data, &ctrl);
		assert_int_equal(ctrl, 1);
	}
}

static void
test_features(void **state)
{
	struct fix *f = *state;
	struct vh_dev *d = &f->d;
	uint64_t all = F_V1 | F_EVT | F_IND | 1ULL << ECHO_F_UPPER |
		       1ULL << ECHO_F_NEEDS_UPPER;

	/* The offer: the core's three and the device's own. */
	assert_int_equal(vh_dev_negotiate(d, F_V1, false), 0);
	assert_int_equal(d->device_features, all);
	/* No VERSION_1: refused. */
	assert_int_equal(vh_dev_negotiate(d, F_EVT | F_IND, false), -ENOTSUP);
	assert_false(vh_dev_status(d) & VIRTIO_CONFIG_S_FEATURES_OK);
	/* A bit not offered: refused. */
	assert_int_equal(vh_dev_negotiate(d, F_V1 | 1ULL << 40, true),
			 -ENOTSUP);
	/* The device's own rule (NEEDS_UPPER needs UPPER): refused. */
	assert_int_equal(vh_dev_negotiate(d, F_V1 | 1ULL << ECHO_F_NEEDS_UPPER,
					  false), -ENOTSUP);
	/* DRIVER_OK without FEATURES_OK does not stick. */
	vh_dev_set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE |
			  VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_DRIVER_OK);
	assert_false(vh_dev_status(d) & VIRTIO_CONFIG_S_DRIVER_OK);
	/* Everything: accepted, and read back. */
	assert_int_equal(vh_dev_negotiate(d, all, false), 0);
	assert_true(vh_dev_status(d) & VIRTIO_CONFIG_S_FEATURES_OK);
	vh_common_write(d, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	assert_int_equal(vh_common_read(d, VIRTIO_PCI_COMMON_GF, 4), 1);
	/* Writes after FEATURES_OK change nothing. */
	vh_common_write(d, VIRTIO_PCI_COMMON_GF, 4, 0);
	assert_int_equal(vh_common_read(d, VIRTIO_PCI_COMMON_GF, 4), 1);
	assert_int_equal(f->echo.vdev.negotiated, all);
	/* Feature words beyond 64 bits read 0. */
	vh_common_write(d, VIRTIO_PCI_COMMON_DFSELECT, 4, 2);
	assert_int_equal(vh_common_read(d, VIRTIO_PCI_COMMON_DF, 4), 0);
	/* A reset forgets the negotiation. */
	assert_int_equal(vh_dev_reset(d), 0);
	assert_int_equal(f->echo.vdev.negotiated, 0);
	vh_common_write(d, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	assert_int_equal(vh_common_read(d, VIRTIO_PCI_COMMON_GF, 4), 0);
}

static void
test_queue_registers(void **state)
{
	struct fix *f = *state;
	struct vh_dev *d = &f->d;

	assert_int_equal(vh_dev_negotiate(d, F_V1, false), 0);
	vh_common_write(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	assert_int_equal(vh_common_read(d, VIRTIO_PCI_COMMON_Q_SIZE, 2),
			 ECHO_QMAX);
	/* Down to a power of two only; never above the maximum. */
	vh_common_write(d, VIRTIO_PCI_COMMON_Q_SIZE, 2, 32);
	assert_int_equal(vh_common_read(d, VIRTIO_PCI_COMMON_Q_SIZE, 2), 32);
	vh_common_write(d, VIRTIO_PCI_COMMON_Q_SIZE, 2, 33);
	assert_int_equal(vh_common_read(d, VIRTIO_PCI_COMMON_Q_SIZE, 2), 32);
	vh_common_write(d, VIRTIO_PCI_COMMON_Q_SIZE, 2, 128);
	assert_int_equal(vh_common_read(d, VIRTIO_PCI_COMMON_Q_SIZE, 2), 32);
	vh_common_write(d, VIRTIO_PCI_COMMON_Q_SIZE, 2, 0);
	assert_int_equal(vh_common_read(d, VIRTIO_PCI_COMMON_Q_SIZE, 2), 32);
	assert_int_equal(vh_common_read(d, VIRTIO_PCI_COMMON_Q_NOFF, 2), 0);
	/* 64-bit addresses as one access or two halves. */
	vh_common_write(d, VIRTIO_PCI_COMMON_Q_DESCLO, 8, 0x123456789000ULL);
	assert_int_equal(vh_common_read(d, VIRTIO_PCI_COMMON_Q_DESCLO, 8),
			 0x123456789000ULL);
	vh_common_write(d, VIRTIO_PCI_COMMON_Q_AVAILHI, 4, 0x1);
	vh_common_write(d, VIRTIO_PCI_COMMON_Q_AVAILLO, 4, 0x2000);
	assert_int_equal(vh_common_read(d, VIRTIO_PCI_COMMON_Q_AVAILLO, 4),
			 0x2000);
	assert_int_equal(vh_common_read(d, VIRTIO_PCI_COMMON_Q_AVAILHI, 4), 1);
	/* A vector beyond the table reads back NO_VECTOR. */
	vh_common_write(d, VIRTIO_PCI_COMMON_Q_MSIX, 2, ECHO_QUEUES + 1);
	assert_int_equal(vh_common_read(d, VIRTIO_PCI_COMMON_Q_MSIX, 2),
			 VIRTIO_NO_VECTOR);
	vh_common_write(d, VIRTIO_PCI_COMMON_MSIX, 2, 7);
	assert_int_equal(vh_common_read(d, VIRTIO_PCI_COMMON_MSIX, 2),
			 VIRTIO_NO_VECTOR);
	/* Queue 1's doorbell is the next one. */
	vh_common_write(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, 1);
	assert_int_equal(vh_common_read(d, VIRTIO_PCI_COMMON_Q_NOFF, 2), 1);
	/* A queue that does not exist has size 0 and ignores writes. */
	vh_common_write(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, ECHO_QUEUES);
	assert_int_equal(vh_common_read(d, VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
	vh_common_write(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
	assert_int_equal(vh_common_read(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	/* A proper setup; then the size is frozen while enabled. */
	assert_int_equal(vh_queue_setup(d, 0, 16, 1), 0);
	vh_common_write(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	vh_common_write(d, VIRTIO_PCI_COMMON_Q_SIZE, 2, 8);
	assert_int_equal(vh_common_read(d, VIRTIO_PCI_COMMON_Q_SIZE, 2), 16);
	assert_int_equal(vh_common_read(d, VIRTIO_PCI_COMMON_Q_DESCLO, 8),
			 d->q[0].desc_gpa);
	/* Unaligned or odd-sized accesses change nothing. */
	vh_common_write(d, VIRTIO_PCI_COMMON_Q_SELECT, 1, 1);
	assert_int_equal(vh_common_read(d, VIRTIO_PCI_COMMON_Q_SELECT, 2), 0);
	assert_int_equal(vh_common_read(d, VIRTIO_PCI_COMMON_NUMQ, 2),
			 ECHO_QUEUES);
}

static void
test_bad_ring_address(void **state)
{
	struct fix *f = *state;
	struct vh_dev *d = &f->d;

	log_set_level(LOG_LEVEL_ERR);	/* the expected warning */
	assert_int_equal(vh_dev_negotiate(d, F_V1, false), 0);
	assert_int_equal(vh_dev_msix_enable(d), 0);
	vh_common_write(d, VIRTIO_PCI_COMMON_MSIX, 2, 0);
	vh_common_write(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	vh_common_write(d, VIRTIO_PCI_COMMON_Q_DESCLO, 8, RAM - 16);
	vh_common_write(d, VIRTIO_PCI_COMMON_Q_AVAILLO, 8, 0x2000);
	vh_common_write(d, VIRTIO_PCI_COMMON_Q_USEDLO, 8, 0x3000);
	vh_common_write(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
	assert_int_equal(vh_common_read(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	assert_true(vh_dev_status(d) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(vh_wait_irq(d, 0, TMO), 1);
	assert_int_equal(vh_dev_reset(d), 0);
	assert_int_equal(vh_dev_status(d), 0);
	log_set_level(LOG_LEVEL_INFO);
}

static void
round_trips(struct fix *f)
{
	struct virtio_pci_stats st, before;
	uint64_t in;
	int head;

	virtio_pci_get_stats(f->vp, &before);
	head = submit(f, 0, "hello", false, &in);
	vh_queue_kick(&f->d, 0);
	assert_int_equal(vh_wait_irq(&f->d, 1, TMO), 1);
	expect_echo(f, 0, head, in, "hello");

	head = submit(f, 1, "indirect world", true, &in);
	vh_queue_kick(&f->d, 1);
	assert_int_equal(vh_wait_irq(&f->d, 2, TMO), 1);
	expect_echo(f, 1, head, in, "indirect world");
	/* No stray interrupt on the other vectors. */
	assert_int_equal(vh_wait_irq(&f->d, 1, 0), 0);
	assert_int_equal(vh_wait_irq(&f->d, 0, 0), 0);
	virtio_pci_get_stats(f->vp, &st);
	assert_int_equal(st.msi_fired - before.msi_fired, 2);
	assert_int_equal(st.msi_pended - before.msi_pended, 0);
}

static void
test_round_trip_doorbell(void **state)
{
	struct fix *f = *state;
	struct virtio_pci_stats st;

	bring_up(f, F_V1 | F_EVT | F_IND);
	round_trips(f);
	/* Activation ran (on the I/O thread) before the first request. */
	assert_int_equal(__atomic_load_n(&f->echo.activates, __ATOMIC_SEQ_CST),
			 1);
	virtio_pci_get_stats(f->vp, &st);
	assert_int_equal(st.doorbell_exits, 2);
	assert_int_equal(st.ioeventfds, 0);	/* no sink: no ioeventfds */
}

static void
test_round_trip_eventfd(void **state)
{
	struct fix *f = *state;
	struct virtio_pci_stats st;

	/* As with KVM's ioeventfd: the doorbell never reaches us. */
	f->d.kick_by_eventfd = true;
	bring_up(f, F_V1 | F_IND);
	round_trips(f);
	virtio_pci_get_stats(f->vp, &st);
	assert_int_equal(st.doorbell_exits, 0);
}

static void
test_many_in_flight(void **state)
{
	struct fix *f = *state;
	struct vh_queue *q = &f->d.q[0];
	uint64_t in[ECHO_QMAX];
	char text[ECHO_QMAX][16];
	int head[ECHO_QMAX], i, done = 0;
	uint16_t id;
	uint32_t len;

	f->d.kick_by_eventfd = true;
	bring_up(f, F_V1 | F_EVT | 1ULL << ECHO_F_UPPER);
	for (i = 0; i < ECHO_QMAX / 3; i++) {
		snprintf(text[i], sizeof(text[i]), "req-%d", i);
		head[i] = submit(f, 0, text[i], false, &in[i]);
		assert_true(head[i] >= 0);
	}
	vh_queue_kick(&f->d, 0);
	while (done < ECHO_QMAX / 3) {
		if (!vh_queue_wait_used(q, &id, &len, TMO))
			fail_msg("only %d of %d requests completed", done,
				 ECHO_QMAX / 3);
		for (i = 0; i < ECHO_QMAX / 3; i++)
			if (head[i] == id)
				break;
		assert_true(i < ECHO_QMAX / 3);
		/* ECHO_F_UPPER negotiated: upper case. */
		assert_int_equal(len, strlen(text[i]));
		assert_memory_equal(vh_ptr(&f->m, in[i], 3), "REQ", 3);
		head[i] = -1;
		done++;
	}
	assert_int_equal(__atomic_load_n(&f->echo.served, __ATOMIC_SEQ_CST),
			 ECHO_QMAX / 3);
	assert_true(vh_wait_irq(&f->d, 1, TMO) >= 1);
}

static void
test_msix_mask_pba(void **state)
{
	struct fix *f = *state;
	struct virtio_pci_stats st;
	uint64_t in;
	int head;

	bring_up(f, F_V1);
	vh_msix_mask(&f->d, 1, true);
	head = submit(f, 0, "masked", false, &in);
	vh_queue_kick(&f->d, 0);
	expect_echo(f, 0, head, in, "masked");
	/* The interrupt waits in the PBA, not on the eventfd. */
	assert_int_equal(vh_wait_irq(&f->d, 1, 50), 0);
	assert_true(vh_msix_pending(&f->d, 1));
	assert_false(vh_msix_pending(&f->d, 2));
	vh_msix_mask(&f->d, 1, false);
	assert_int_equal(vh_wait_irq(&f->d, 1, TMO), 1);
	assert_false(vh_msix_pending(&f->d, 1));

	/* The function mask holds every vector the same way. */
	vh_msix_function_mask(&f->d, true);
	head = submit(f, 1, "fmask", false, &in);
	vh_queue_kick(&f->d, 1);
	expect_echo(f, 1, head, in, "fmask");
	assert_int_equal(vh_wait_irq(&f->d, 2, 50), 0);
	assert_true(vh_msix_pending(&f->d, 2));
	vh_msix_function_mask(&f->d, false);
	assert_int_equal(vh_wait_irq(&f->d, 2, TMO), 1);
	assert_false(vh_msix_pending(&f->d, 2));
	virtio_pci_get_stats(f->vp, &st);
	assert_int_equal(st.msi_pended, 2);
	/* The PBA is read-only. */
	vh_mmio_write(&f->m, f->d.bar_addr[1] + 0x800, 8, ~0ULL);
	assert_false(vh_msix_pending(&f->d, 0));
}

static void
test_reset_during_io(void **state)
{
	struct fix *f = *state;
	struct vh_queue *q = &f->d.q[0];
	uint64_t in;
	uint16_t used;
	int i, served;
	unsigned int resets;

	bring_up(f, F_V1 | F_EVT | F_IND);
	resets = __atomic_load_n(&f->echo.resets, __ATOMIC_SEQ_CST);
	f->echo.delay_us = 2000;
	for (i = 0; i < 40; i++)
		assert_true(submit(f, 0, "slow", true, &in) >= 0);
	vh_queue_kick(&f->d, 0);
	/* Let the I/O thread get going, then pull the rug. */
	for (i = 0; i < 1000 && __atomic_load_n(&f->echo.served,
						 __ATOMIC_SEQ_CST) < 3; i++)
		usleep(1000);
	assert_true(__atomic_load_n(&f->echo.in_notify, __ATOMIC_SEQ_CST));
	vh_dev_set_status(&f->d, 0);
	/* The write returned: the I/O thread has let go of the queue. */
	assert_false(__atomic_load_n(&f->echo.in_notify, __ATOMIC_SEQ_CST));
	assert_int_equal(__atomic_load_n(&f->echo.resets, __ATOMIC_SEQ_CST),
			 resets + 1);
	assert_false(f->echo.touched_after_reset);
	assert_int_equal(vh_dev_status(&f->d), 0);
	served = (int)__atomic_load_n(&f->echo.served, __ATOMIC_SEQ_CST);
	assert_true(served > 0 && served < 40);
	used = vh_used_idx(q);
	usleep(20000);
	/* Nothing moves after the reset. */
	assert_int_equal(vh_used_idx(q), used);
	assert_int_equal(__atomic_load_n(&f->echo.served, __ATOMIC_SEQ_CST),
			 served);
	vh_common_write(&f->d, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	assert_int_equal(vh_common_read(&f->d, VIRTIO_PCI_COMMON_Q_ENABLE, 2),
			 0);
	assert_int_equal(vh_common_read(&f->d, VIRTIO_PCI_COMMON_Q_MSIX, 2),
			 VIRTIO_NO_VECTOR);
	assert_int_equal(vh_common_read(&f->d, VIRTIO_PCI_COMMON_Q_SIZE, 2),
			 ECHO_QMAX);
	/* And the device comes back for a new driver. */
	f->echo.delay_us = 0;
	vh_wait_irq(&f->d, 1, 0);
	vh_dev_release(&f->d);
	bring_up(f, F_V1 | F_EVT | F_IND);
	round_trips(f);
}

static void
test_device_config(void **state)
{
	struct fix *f = *state;
	struct vh_dev *d = &f->d;
	uint8_t gen;

	bring_up(f, F_V1);
	assert_int_equal(vh_devcfg_read(d, 0, 4), ECHO_MAGIC);
	assert_int_equal(vh_devcfg_read(d, 1, 1), 0xec);
	vh_devcfg_write(d, 4, 4, 0xdeadbeef);
	assert_int_equal(vh_devcfg_read(d, 4, 4), 0xdeadbeef);
	assert_int_equal(f->echo.scratch, 0xdeadbeef);
	/* Past the end: zeros, and no call into the device. */
	assert_int_equal(vh_devcfg_read(d, 6, 4), 0);
	assert_int_equal(vh_devcfg_read(d, 8, 1), 0);
	/* A change: new generation, ISR config bit, config vector. */
	gen = (uint8_t)vh_common_read(d, VIRTIO_PCI_COMMON_CFGGENERATION, 1);
	virtio_config_changed(&f->echo.vdev);
	assert_int_equal(vh_common_read(d, VIRTIO_PCI_COMMON_CFGGENERATION, 1),
			 (uint8_t)(gen + 1));
	assert_int_equal(vh_wait_irq(d, 0, TMO), 1);
	assert_int_equal(vh_isr_read(d), VIRTIO_PCI_ISR_CONFIG);
	assert_int_equal(vh_isr_read(d), 0);
}

static void
test_pci_cfg_window(void **state)
{
	struct fix *f = *state;
	struct vh_dev *d = &f->d;
	uint8_t c = d->pcicfg.cap_off;

	bring_up(f, F_V1);
	/* num_queues through the window, as SeaBIOS reads a high BAR. */
	vh_cfg_write(&f->m, d->slot, c + VIRTIO_PCI_CAP_BAR, 1, 4);
	vh_cfg_write(&f->m, d->slot, c + VIRTIO_PCI_CAP_OFFSET, 4,
		     VIRTIO_PCI_COMMON_NUMQ);
	vh_cfg_write(&f->m, d->slot, c + VIRTIO_PCI_CAP_LENGTH, 4, 2);
	assert_int_equal(vh_cfg_read(&f->m, d->slot, c + 16, 2), ECHO_QUEUES);
	/* Device config, 4 bytes. */
	vh_cfg_write(&f->m, d->slot, c + VIRTIO_PCI_CAP_OFFSET, 4, 0x2000);
	vh_cfg_write(&f->m, d->slot, c + VIRTIO_PCI_CAP_LENGTH, 4, 4);
	assert_int_equal(vh_cfg_read(&f->m, d->slot, c + 16, 4), ECHO_MAGIC);
	/* A write through the window. */
	vh_cfg_write(&f->m, d->slot, c + VIRTIO_PCI_CAP_OFFSET, 4, 0x2004);
	vh_cfg_write(&f->m, d->slot, c + 16, 4, 0x5a5a5a5a);
	assert_int_equal(f->echo.scratch, 0x5a5a5a5a);
	/* A bad length does nothing and reads back what is there. */
	vh_cfg_write(&f->m, d->slot, c + VIRTIO_PCI_CAP_LENGTH, 4, 3);
	vh_cfg_write(&f->m, d->slot, c + 16, 4, 0x11111111);
	assert_int_equal(f->echo.scratch, 0x5a5a5a5a);
	/* The notify doorbell works through it too. */
	{
		uint64_t in;
		int head = submit(f, 0, "window", false, &in);

		vh_cfg_write(&f->m, d->slot, c + VIRTIO_PCI_CAP_OFFSET, 4,
			     0x3000);
		vh_cfg_write(&f->m, d->slot, c + VIRTIO_PCI_CAP_LENGTH, 4, 2);
		vh_cfg_write(&f->m, d->slot, c + 16, 2, 0);
		expect_echo(f, 0, head, in, "window");
	}
}

static void
test_isr_without_msix(void **state)
{
	struct fix *f = *state;
	struct vh_dev *d = &f->d;
	uint64_t in;
	int head;

	assert_int_equal(vh_dev_negotiate(d, F_V1, false), 0);
	assert_int_equal(vh_queue_setup(d, 0, 8, VIRTIO_NO_VECTOR), 0);
	assert_int_equal(vh_dev_driver_ok(d), 0);
	head = submit(f, 0, "intx", false, &in);
	vh_queue_kick(d, 0);
	expect_echo(f, 0, head, in, "intx");
	/* The used entry is pushed before the ISR bit is set: poll. */
	for (int i = 0; i < 1000; i++) {
		uint8_t isr = vh_isr_read(d);

		if (isr) {
			assert_int_equal(isr, 1);
			assert_int_equal(vh_isr_read(d), 0);	/* cleared */
			return;
		}
		usleep(1000);
	}
	fail_msg("ISR queue bit never set");
}

/* --- INTx: the line of the function's slot ------------------------------ */

/*
 * A board of 24 interrupt lines behind mock sinks: each sink drives the
 * line its opaque names, as irq_router_sink() does for vmm-run. The
 * transport calls it on its I/O thread: atomics.
 */
#define BOARD_LINES		24
#define INTX_SLOT		6	/* deliberately not the lowest free */

struct intx_board {
	int level[BOARD_LINES];
	unsigned int raises[BOARD_LINES];
	unsigned int lowers[BOARD_LINES];
};

struct intx_line {
	struct intx_board *board;
	unsigned int gsi;
};

struct intx_fix {
	struct fix f;		/* first: teardown() frees it all */
	struct intx_board board;
	struct intx_line line;
};

static void
board_intx(void *opaque, int level)
{
	struct intx_line *l = opaque;
	struct intx_board *b = l->board;

	__atomic_store_n(&b->level[l->gsi], level, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(level ? &b->raises[l->gsi] : &b->lowers[l->gsi], 1,
			   __ATOMIC_SEQ_CST);
}

/* The echo device at INTX_SLOT, its INTx sink wired to that slot's GSI. */
static int
setup_intx(void **state)
{
	struct intx_fix *x = calloc(1, sizeof(*x));
	struct fix *f = &x->f;
	struct virtio_device *vdev = &f->echo.vdev;
	struct virtio_pci_sink sink = { .intx = board_intx };
	struct virtio_pci_config cfg = { .slot = INTX_SLOT, .sink = &sink };

	assert_non_null(x);
	x->line.board = &x->board;
	x->line.gsi = layout_pci_intx_gsi(INTX_SLOT, 0);
	sink.opaque = &x->line;
	assert_int_equal(vh_machine_init(&f->m, RAM), 0);
	vdev->ops = &echo_ops;
	vdev->name = "echo-intx";
	vdev->mem = &f->m.mem;
	vdev->config_size = 8;
	vdev->nr_queues = ECHO_QUEUES;
	vdev->opaque = &f->echo;
	assert_int_equal(virtio_device_init(vdev, ECHO_QMAX), 0);
	assert_int_equal(virtio_pci_new(f->m.host, vdev, &cfg, &f->vp), 0);
	assert_int_equal(vh_dev_probe(&f->d, &f->m, f->vp), 0);
	*state = x;
	return 0;
}

static int
teardown_intx(void **state)
{
	struct intx_fix *x = *state;
	void *f = &x->f;

	return teardown(&f);
}

/* No line but gsi ever moved; gsi is at level, after so many ups and downs. */
static void
board_expect(struct intx_board *b, unsigned int gsi, int level,
	     unsigned int raises, unsigned int lowers)
{
	unsigned int i;

	for (i = 0; i < BOARD_LINES; i++) {
		if (i == gsi)
			continue;
		if (__atomic_load_n(&b->raises[i], __ATOMIC_SEQ_CST) ||
		    __atomic_load_n(&b->lowers[i], __ATOMIC_SEQ_CST))
			fail_msg("GSI %u moved; only %u (slot %u, INTA#) "
				 "should", i, gsi, INTX_SLOT);
	}
	assert_int_equal(__atomic_load_n(&b->level[gsi], __ATOMIC_SEQ_CST),
			 level);
	assert_int_equal(__atomic_load_n(&b->raises[gsi], __ATOMIC_SEQ_CST),
			 raises);
	assert_int_equal(__atomic_load_n(&b->lowers[gsi], __ATOMIC_SEQ_CST),
			 lowers);
}

/*
 * With MSI-X off, a queue interrupt raises exactly the GSI the shared
 * mapping gives the function's slot and INTA# (the one the DSDT's _PRT
 * names), level-style: high until the driver reads the ISR, which lowers
 * it once. With MSI-X on, INTx stays quiet.
 */
static void
test_intx_gsi_of_slot(void **state)
{
	struct intx_fix *x = *state;
	struct fix *f = &x->f;
	struct vh_dev *d = &f->d;
	struct intx_board *b = &x->board;
	unsigned int gsi = layout_pci_intx_gsi(INTX_SLOT, 0);
	uint64_t in;
	int head, i;

	assert_int_equal(virtio_pci_device(f->vp)->slot, INTX_SLOT);
	assert_int_equal(d->slot, INTX_SLOT);
	assert_in_range(gsi, 16, 23);
	assert_int_equal(vh_cfg_read(&f->m, INTX_SLOT, PCI_INTERRUPT_PIN, 1),
			 1);				/* INTA# */

	assert_int_equal(vh_dev_negotiate(d, F_V1, false), 0);
	assert_int_equal(vh_queue_setup(d, 0, 8, VIRTIO_NO_VECTOR), 0);
	assert_int_equal(vh_dev_driver_ok(d), 0);
	board_expect(b, gsi, 0, 0, 0);
	head = submit(f, 0, "intx", false, &in);
	vh_queue_kick(d, 0);
	expect_echo(f, 0, head, in, "intx");
	/* The used entry is pushed before the line goes up: poll. */
	for (i = 0; i < 1000; i++) {
		if (__atomic_load_n(&b->level[gsi], __ATOMIC_SEQ_CST))
			break;
		usleep(1000);
	}
	board_expect(b, gsi, 1, 1, 0);
	/* Level-triggered: it stays up until the ISR read. */
	usleep(10000);
	board_expect(b, gsi, 1, 1, 0);
	assert_int_equal(vh_isr_read(d), 1);
	board_expect(b, gsi, 0, 1, 1);
	assert_int_equal(vh_isr_read(d), 0);
	board_expect(b, gsi, 0, 1, 1);

	/* MSI-X on: the vector fires, the line does not move. */
	assert_int_equal(vh_dev_negotiate(d, F_V1, false), 0);
	assert_int_equal(vh_dev_msix_enable(d), 0);
	assert_int_equal(vh_queue_setup(d, 0, 8, 1), 0);
	assert_int_equal(vh_dev_driver_ok(d), 0);
	head = submit(f, 0, "msix", false, &in);
	vh_queue_kick(d, 0);
	if (vh_wait_irq(d, 1, TMO) == 0)
		fail_msg("vector 1 did not fire within %d ms", TMO);
	expect_echo(f, 0, head, in, "msix");
	board_expect(b, gsi, 0, 1, 1);
}

static void
test_hostile_ring_needs_reset(void **state)
{
	struct fix *f = *state;
	struct vh_dev *d = &f->d;
	struct vh_queue *q = &d->q[0];
	uint8_t st;

	log_set_level(LOG_LEVEL_ERR);	/* the expected warning */
	bring_up(f, F_V1);
	/* A two-descriptor loop. */
	vh_desc_set(q, 0, VH_RAM_ALLOC_START, 4, VRING_DESC_F_NEXT, 1);
	vh_desc_set(q, 1, VH_RAM_ALLOC_START, 4, VRING_DESC_F_NEXT, 0);
	vh_avail_push(q, 0);
	vh_queue_kick(d, 0);
	assert_int_equal(vh_wait_irq(d, 0, TMO), 1);	/* config vector */
	st = vh_dev_status(d);
	assert_true(st & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_true(st & VIRTIO_CONFIG_S_DRIVER_OK);
	assert_int_equal(vh_isr_read(d), VIRTIO_PCI_ISR_CONFIG);
	assert_int_equal(vh_used_idx(q), 0);
	/* Sticky: the driver cannot clear it, and the queue stays dead. */
	vh_dev_set_status(d, st & ~VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_true(vh_dev_status(d) & VIRTIO_CONFIG_S_NEEDS_RESET);
	vh_desc_set(q, 1, VH_RAM_ALLOC_START, 4, 0, 0);
	vh_avail_push(q, 0);
	vh_queue_kick(d, 0);
	usleep(20000);
	assert_int_equal(vh_used_idx(q), 0);
	/* Only a reset clears it; then the device works again. */
	assert_int_equal(vh_dev_reset(d), 0);
	assert_int_equal(vh_dev_status(d), 0);
	bring_up(f, F_V1 | F_IND);
	round_trips(f);
	/* A queue that is out of range in a new way after the reset: a
	 * second NEEDS_RESET, reported again. */
	vh_avail_push(&d->q[0], 0xffff);
	vh_queue_kick(d, 0);
	assert_int_equal(vh_wait_irq(d, 0, TMO), 1);
	assert_true(vh_dev_status(d) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(f->echo.vdev.nr_logged, 2);
	log_set_level(LOG_LEVEL_INFO);
}

static void
test_bar_moves(void **state)
{
	struct fix *f = *state;
	struct vh_dev *d = &f->d;
	uint64_t old = d->bar_addr[4], nw = old + 0x100000;
	uint64_t in;
	int head;

	bring_up(f, F_V1);
	/* The guest moves BAR 4; the doorbell follows. */
	vh_cfg_write(&f->m, d->slot, PCI_COMMAND, 2, 0);
	vh_cfg_write(&f->m, d->slot, PCI_BASE_ADDRESS_4, 4, (uint32_t)nw | 0xc);
	vh_cfg_write(&f->m, d->slot, PCI_BASE_ADDRESS_5, 4,
		     (uint32_t)(nw >> 32));
	vh_cfg_write(&f->m, d->slot, PCI_COMMAND, 2,
		     PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	assert_int_equal(vh_mmio_read(&f->m, old + VIRTIO_PCI_COMMON_NUMQ, 2),
			 0xffff);
	d->q[0].notify_gpa += nw - old;
	d->common.gpa += nw - old;
	assert_int_equal(vh_common_read(d, VIRTIO_PCI_COMMON_NUMQ, 2),
			 ECHO_QUEUES);
	head = submit(f, 0, "moved", false, &in);
	vh_queue_kick(d, 0);
	expect_echo(f, 0, head, in, "moved");
}

/* --- The expansion ROM BAR ------------------------------------------- */

#define ROM_GPA		0xd0000000ULL	/* clear of the harness BARs */
#define ROM_PCIR	0x1c
#define ROM_VIRTIO_NET	1		/* virtio device id: net */
#define IPXE_VIRTIO_ROM	"/usr/lib/ipxe/qemu/pxe-virtio.rom"

/*
 * Fill one image of an expansion ROM at buf[0..len): a pattern, the 55 AA
 * header with its initialization size, the PCIR structure at 0x1c, and
 * byte 6 set so that the image sums to 0 (where iPXE keeps its checksum).
 * len is a multiple of 512.
 */
static void
rom_image(uint8_t *buf, size_t len, uint16_t vendor, uint16_t device,
	  uint8_t code_type, bool last)
{
	uint8_t sum = 0;
	size_t i;

	for (i = 0; i < len; i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	buf[0] = 0x55;
	buf[1] = 0xaa;
	buf[2] = (uint8_t)(len / 512);
	buf[0x18] = ROM_PCIR;
	buf[0x19] = 0;
	memcpy(buf + ROM_PCIR, "PCIR", 4);
	buf[ROM_PCIR + 4] = (uint8_t)vendor;
	buf[ROM_PCIR + 5] = (uint8_t)(vendor >> 8);
	buf[ROM_PCIR + 6] = (uint8_t)device;
	buf[ROM_PCIR + 7] = (uint8_t)(device >> 8);
	buf[ROM_PCIR + 0x10] = (uint8_t)(len / 512);
	buf[ROM_PCIR + 0x11] = (uint8_t)(len / 512 >> 8);
	buf[ROM_PCIR + 0x14] = code_type;
	buf[ROM_PCIR + 0x15] = last ? 0x80 : 0;
	buf[6] = 0;
	for (i = 0; i < len; i++)
		sum = (uint8_t)(sum + buf[i]);
	buf[6] = (uint8_t)-sum;
}

/* An echo device with a ROM (or none), alone on its own machine. */
struct romfix {
	struct vh_machine m;
	struct echo echo;
	struct virtio_pci *vp;
	int slot;
};

static int
romfix_init(struct romfix *rf, const void *rom, size_t rom_size)
{
	struct virtio_device *vdev = &rf->echo.vdev;
	struct virtio_pci_config cfg = {
		.slot = -1, .rom = rom, .rom_size = rom_size,
	};
	int r;

	memset(rf, 0, sizeof(*rf));
	assert_int_equal(vh_machine_init(&rf->m, RAM), 0);
	vdev->ops = &echo_ops;
	vdev->name = "echo-rom";
	vdev->mem = &rf->m.mem;
	vdev->config_size = 8;
	vdev->nr_queues = ECHO_QUEUES;
	vdev->opaque = &rf->echo;
	assert_int_equal(virtio_device_init(vdev, ECHO_QMAX), 0);
	r = virtio_pci_new(rf->m.host, vdev, &cfg, &rf->vp);
	if (r == 0)
		rf->slot = virtio_pci_device(rf->vp)->slot;
	return r;
}

static void
romfix_fini(struct romfix *rf)
{
	virtio_device_destroy(&rf->echo.vdev);
	vh_machine_destroy(&rf->m);
	virtio_pci_free(rf->vp);
}

static uint32_t
rom_reg(struct romfix *rf)
{
	return vh_cfg_read(&rf->m, rf->slot, PCI_ROM_ADDRESS, 4);
}

static void
rom_set(struct romfix *rf, uint32_t v)
{
	vh_cfg_write(&rf->m, rf->slot, PCI_ROM_ADDRESS, 4, v);
}

/* Size the ROM BAR as firmware does; returns what the register read. */
static uint32_t
rom_size_mask(struct romfix *rf, uint32_t written)
{
	uint32_t orig = rom_reg(rf), v;

	rom_set(rf, written);
	v = rom_reg(rf);
	rom_set(rf, orig);
	return v;
}

static void
test_rom_sizing(void **state)
{
	static const struct {
		size_t len;
		uint32_t mask;	/* the BAR's address bits */
	} cases[] = {
		{ 1, 0xfffff800 },		/* at least 2 KiB */
		{ 100, 0xfffff800 },
		{ 2048, 0xfffff800 },
		{ 2049, 0xfffff000 },
		{ 4096, 0xfffff000 },
		{ 5000, 0xffffe000 },
		{ 75776, 0xfffe0000 },		/* iPXE's: 128 KiB */
		{ VIRTIO_PCI_ROM_MAX, 0xff000000 },
	};
	struct romfix rf;
	uint8_t *rom = calloc(1, VIRTIO_PCI_ROM_MAX);
	unsigned int i;

	(void)state;
	assert_non_null(rom);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(romfix_init(&rf, rom, cases[i].len), 0);
		/* Out of reset: no address, disabled. */
		assert_int_equal(rom_reg(&rf), 0);
		/* All ones: the size mask, and the enable bit kept. */
		assert_int_equal(rom_size_mask(&rf, 0xffffffff),
				 cases[i].mask | PCI_ROM_ADDRESS_ENABLE);
		/* All ones but enable (SeaBIOS's way): the mask alone. */
		assert_int_equal(rom_size_mask(&rf, ~PCI_ROM_ADDRESS_ENABLE),
				 cases[i].mask);
		/* The restore put back 0; bits 1-10 never stick. */
		assert_int_equal(rom_reg(&rf), 0);
		rom_set(&rf, 0x7fe);
		assert_int_equal(rom_reg(&rf), 0);
		assert_int_equal(virtio_pci_device(rf.vp)->rom.bar_size,
				 (uint64_t)(~cases[i].mask + 1));
		romfix_fini(&rf);
	}
	free(rom);
}

static void
test_rom_enable_and_contents(void **state)
{
	uint8_t rom[5000];	/* a 8 KiB BAR, 3192 bytes past the image */
	uint8_t copy[sizeof(rom)];
	struct romfix rf;
	size_t i;
	uint32_t cmd = PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;

	(void)state;
	rom_image(rom, 4608, 0x1af4, 0x1040 + ECHO_ID, 0, true);
	memset(rom + 4608, 0x5a, sizeof(rom) - 4608);
	memcpy(copy, rom, sizeof(rom));
	assert_int_equal(romfix_init(&rf, rom, sizeof(rom)), 0);
	/* The transport keeps its own copy. */
	memset(rom, 0, sizeof(rom));

	/* An address, but not enabled, memory space off: nothing there. */
	rom_set(&rf, (uint32_t)ROM_GPA);
	assert_int_equal(rom_reg(&rf), (uint32_t)ROM_GPA);
	assert_int_equal(vh_mmio_read(&rf.m, ROM_GPA, 2), 0xffff);
	/* Enabled, memory space still off: still nothing. */
	rom_set(&rf, (uint32_t)ROM_GPA | PCI_ROM_ADDRESS_ENABLE);
	assert_int_equal(rom_reg(&rf),
			 (uint32_t)ROM_GPA | PCI_ROM_ADDRESS_ENABLE);
	assert_int_equal(vh_mmio_read(&rf.m, ROM_GPA, 2), 0xffff);
	assert_false(virtio_pci_device(rf.vp)->rom.mapped);
	/* Memory space on: the image, at every width and offset. */
	vh_cfg_write(&rf.m, rf.slot, PCI_COMMAND, 2, cmd);
	assert_true(virtio_pci_device(rf.vp)->rom.mapped);
	assert_int_equal(vh_mmio_read(&rf.m, ROM_GPA, 2), 0xaa55);
	assert_int_equal(vh_mmio_read(&rf.m, ROM_GPA + ROM_PCIR, 4),
			 0x52494350);	/* "PCIR" */
	assert_int_equal(vh_mmio_read(&rf.m, ROM_GPA + ROM_PCIR + 4, 4),
			 (0x1040u + ECHO_ID) << 16 | 0x1af4);
	for (i = 0; i < sizeof(copy); i++)
		if (vh_mmio_read(&rf.m, ROM_GPA + i, 1) != copy[i])
			fail_msg("ROM byte 0x%zx: expected 0x%02x, read 0x%02x",
				 i, copy[i],
				 (unsigned int)vh_mmio_read(&rf.m, ROM_GPA + i,
							    1));
	for (i = 0; i + 8 <= sizeof(copy); i += 8) {
		uint64_t want;

		memcpy(&want, copy + i, 8);
		assert_int_equal(vh_mmio_read(&rf.m, ROM_GPA + i, 8), want);
	}
	/* Past the image, up to the end of the 8 KiB BAR: 0xff. */
	assert_int_equal(vh_mmio_read(&rf.m, ROM_GPA + sizeof(copy), 1), 0xff);
	assert_int_equal(vh_mmio_read(&rf.m, ROM_GPA + 0x1ffc, 4), 0xffffffff);
	/* Straddling the image's end: the last 2 bytes, then 0xff. */
	assert_int_equal(vh_mmio_read(&rf.m, ROM_GPA + sizeof(copy) - 2, 4),
			 0xffff0000u | copy[sizeof(copy) - 1] << 8 |
			 copy[sizeof(copy) - 2]);
	/* Past the BAR: nobody. */
	assert_int_equal(vh_mmio_read(&rf.m, ROM_GPA + 0x2000, 1), 0xff);
	assert_int_equal(bus_unowned_count(&rf.m.mmio), 3);

	/* Memory space off again: gone; on: back. */
	vh_cfg_write(&rf.m, rf.slot, PCI_COMMAND, 2, PCI_COMMAND_MASTER);
	assert_false(virtio_pci_device(rf.vp)->rom.mapped);
	assert_int_equal(vh_mmio_read(&rf.m, ROM_GPA, 2), 0xffff);
	vh_cfg_write(&rf.m, rf.slot, PCI_COMMAND, 2, cmd);
	assert_int_equal(vh_mmio_read(&rf.m, ROM_GPA, 2), 0xaa55);
	/* The enable bit off: gone, the address kept. */
	rom_set(&rf, (uint32_t)ROM_GPA);
	assert_false(virtio_pci_device(rf.vp)->rom.mapped);
	assert_int_equal(vh_mmio_read(&rf.m, ROM_GPA, 2), 0xffff);
	/* Moved (an unaligned address is cut to the BAR's alignment). */
	rom_set(&rf, (uint32_t)(ROM_GPA + 0x10000 + 0x123) |
		     PCI_ROM_ADDRESS_ENABLE);
	assert_int_equal(rom_reg(&rf), (uint32_t)(ROM_GPA + 0x10000) |
				       PCI_ROM_ADDRESS_ENABLE);
	assert_int_equal(vh_mmio_read(&rf.m, ROM_GPA, 2), 0xffff);
	assert_int_equal(vh_mmio_read(&rf.m, ROM_GPA + 0x10000, 2), 0xaa55);
	assert_int_equal(virtio_pci_device(rf.vp)->rom.addr, ROM_GPA + 0x10000);
	/* Address 0 is "unassigned", even when enabled. */
	rom_set(&rf, PCI_ROM_ADDRESS_ENABLE);
	assert_false(virtio_pci_device(rf.vp)->rom.mapped);
	romfix_fini(&rf);
}

static void
test_rom_writes_ignored(void **state)
{
	uint8_t rom[2048];
	struct romfix rf;
	uint32_t before;

	(void)state;
	rom_image(rom, sizeof(rom), 0x1af4, 0x1040 + ECHO_ID, 0, true);
	assert_int_equal(romfix_init(&rf, rom, sizeof(rom)), 0);
	rom_set(&rf, (uint32_t)ROM_GPA | PCI_ROM_ADDRESS_ENABLE);
	vh_cfg_write(&rf.m, rf.slot, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	before = (uint32_t)vh_mmio_read(&rf.m, ROM_GPA + 0x40, 4);
	vh_mmio_write(&rf.m, ROM_GPA, 2, 0);
	vh_mmio_write(&rf.m, ROM_GPA + 0x40, 4, ~before);
	vh_mmio_write(&rf.m, ROM_GPA + 0x100, 8, 0);
	vh_mmio_write(&rf.m, ROM_GPA + 0x7ff, 1, 0);
	/* Writes reached the ROM (owned, not unowned), and changed nothing. */
	assert_int_equal(bus_unowned_count(&rf.m.mmio), 0);
	assert_int_equal(vh_mmio_read(&rf.m, ROM_GPA, 2), 0xaa55);
	assert_int_equal(vh_mmio_read(&rf.m, ROM_GPA + 0x40, 4), before);
	assert_memory_equal(&(uint64_t){ vh_mmio_read(&rf.m, ROM_GPA + 0x100,
						      8) }, rom + 0x100, 8);
	assert_int_equal(vh_mmio_read(&rf.m, ROM_GPA + 0x7ff, 1), rom[0x7ff]);
	assert_int_equal(virtio_pci_rom_check(rom, sizeof(rom), ECHO_ID, NULL,
					      0), 0);
	romfix_fini(&rf);
}

static void
test_rom_none(void **state)
{
	struct fix *f = *state;
	struct vh_dev *d = &f->d;
	uint64_t unowned;

	/* The device of every other test: no ROM, so 0x30 is 0 and stays. */
	assert_null(virtio_pci_device(f->vp)->rom.data);
	assert_int_equal(vh_cfg_read(&f->m, d->slot, PCI_ROM_ADDRESS, 4), 0);
	vh_cfg_write(&f->m, d->slot, PCI_ROM_ADDRESS, 4, 0xffffffff);
	assert_int_equal(vh_cfg_read(&f->m, d->slot, PCI_ROM_ADDRESS, 4), 0);
	vh_cfg_write(&f->m, d->slot, PCI_ROM_ADDRESS, 4,
		     (uint32_t)ROM_GPA | PCI_ROM_ADDRESS_ENABLE);
	assert_int_equal(vh_cfg_read(&f->m, d->slot, PCI_ROM_ADDRESS, 4), 0);
	assert_int_equal(vh_cfg_read(&f->m, d->slot, PCI_ROM_ADDRESS, 2), 0);
	assert_int_equal(vh_cfg_read(&f->m, d->slot, PCI_ROM_ADDRESS + 3, 1),
			 0);
	unowned = bus_unowned_count(&f->m.mmio);
	assert_int_equal(vh_mmio_read(&f->m, ROM_GPA, 2), 0xffff);
	assert_int_equal(bus_unowned_count(&f->m.mmio), unowned + 1);
}

static void
test_rom_bad_config(void **state)
{
	static const uint8_t tiny[16];
	struct romfix rf;

	(void)state;
	assert_int_equal(romfix_init(&rf, tiny, 0), -EINVAL);
	/* A refused transport leaves the device as it was. */
	assert_null(rf.echo.vdev.transport);
	assert_null(rf.vp);
	romfix_fini(&rf);
	assert_int_equal(romfix_init(&rf, NULL, 4096), -EINVAL);
	romfix_fini(&rf);
	/* Refused before anything is copied: tiny is only 16 bytes. */
	assert_int_equal(romfix_init(&rf, tiny, VIRTIO_PCI_ROM_MAX + 1),
			 -EFBIG);
	romfix_fini(&rf);
	assert_int_equal(romfix_init(&rf, tiny, SIZE_MAX), -EFBIG);
	romfix_fini(&rf);
}

/* --- virtio_pci_rom_check() ----------------------------------------- */

static void
test_rom_check(void **state)
{
	uint8_t rom[3 * 1024];
	char err[256];

	(void)state;
	/* One x86 image for 1af4:1041 (virtio-net): what SeaBIOS runs. */
	rom_image(rom, 1024, 0x1af4, 0x1041, 0, true);
	err[0] = 0;
	assert_int_equal(virtio_pci_rom_check(rom, 1024, ROM_VIRTIO_NET, err,
					      sizeof(err)), 0);
	assert_string_equal(err, "");
	/* A ROM file longer than its image (padding) is fine. */
	assert_int_equal(virtio_pci_rom_check(rom, sizeof(rom), ROM_VIRTIO_NET,
					      NULL, 0), 0);

	/* For the legacy device id 1af4:1000: not ours, the ids named. */
	rom_image(rom, 1024, 0x1af4, 0x1000, 0, true);
	assert_int_equal(virtio_pci_rom_check(rom, 1024, ROM_VIRTIO_NET, err,
					      sizeof(err)), -ENODEV);
	assert_non_null(strstr(err, "no x86 image for PCI device 1af4:1041"));
	assert_non_null(strstr(err, "1af4:1000 x86"));
	/* Right ids, for another device (the echo device is 1af4:106a). */
	rom_image(rom, 1024, 0x1af4, 0x1041, 0, true);
	assert_int_equal(virtio_pci_rom_check(rom, 1024, ECHO_ID, err,
					      sizeof(err)), -ENODEV);
	assert_non_null(strstr(err, "1af4:106a"));
	/* Another vendor. */
	rom_image(rom, 1024, 0x8086, 0x1041, 0, true);
	assert_int_equal(virtio_pci_rom_check(rom, 1024, ROM_VIRTIO_NET, err,
					      sizeof(err)), -ENODEV);
	assert_non_null(strstr(err, "8086:1041 x86"));

	/* Two images: EFI first, then the x86 one (the other order of
	 * QEMU's efi-*.rom); the x86 one is found through the chain. */
	rom_image(rom, 1024, 0x1af4, 0x1041, 3, false);
	rom_image(rom + 1024, 2048, 0x1af4, 0x1041, 0, true);
	assert_int_equal(virtio_pci_rom_check(rom, sizeof(rom),
					      ROM_VIRTIO_NET, err,
					      sizeof(err)), 0);
	/* The same, but the first image says it is the last: the x86 one
	 * is never reached, and the message names the EFI image. */
	rom_image(rom, 1024, 0x1af4, 0x1041, 3, true);
	assert_int_equal(virtio_pci_rom_check(rom, sizeof(rom),
					      ROM_VIRTIO_NET, err,
					      sizeof(err)), -ENODEV);
	assert_non_null(strstr(err, "1af4:1041 EFI"));
	/* An EFI image only, its length running past the end of the file. */
	rom_image(rom, 1024, 0x1af4, 0x1041, 3, false);
	rom[ROM_PCIR + 0x10] = 0xff;
	assert_int_equal(virtio_pci_rom_check(rom, 1024, ROM_VIRTIO_NET, err,
					      sizeof(err)), -ENODEV);
	/* A chain whose next image has no signature. */
	rom_image(rom, 1024, 0x1af4, 0x1041, 3, false);
	memset(rom + 1024, 0, 2048);
	assert_int_equal(virtio_pci_rom_check(rom, sizeof(rom),
					      ROM_VIRTIO_NET, err,
					      sizeof(err)), -ENOEXEC);
	assert_non_null(strstr(err, "offset 0x400"));

	/* A bad checksum. */
	rom_image(rom, 1024, 0x1af4, 0x1041, 0, true);
	rom[100] ^= 0x01;
	assert_int_equal(virtio_pci_rom_check(rom, 1024, ROM_VIRTIO_NET, err,
					      sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "checksum"));
	/* An initialization size past the end of the file. */
	rom_image(rom, 1024, 0x1af4, 0x1041, 0, true);
	assert_int_equal(virtio_pci_rom_check(rom, 512, ROM_VIRTIO_NET, err,
					      sizeof(err)), -ENOEXEC);
	assert_non_null(strstr(err, "past the end"));
	/* Not a ROM at all; a PCIR pointer out of the file; no "PCIR". */
	memset(rom, 0, sizeof(rom));
	assert_int_equal(virtio_pci_rom_check(rom, sizeof(rom),
					      ROM_VIRTIO_NET, err,
					      sizeof(err)), -ENOEXEC);
	assert_non_null(strstr(err, "signature"));
	rom_image(rom, 1024, 0x1af4, 0x1041, 0, true);
	rom[0x18] = 0xfc;
	rom[0x19] = 0x03;	/* 0x3fc: PCIR would run past 1024 */
	assert_int_equal(virtio_pci_rom_check(rom, 1024, ROM_VIRTIO_NET, err,
					      sizeof(err)), -ENOEXEC);
	assert_non_null(strstr(err, "PCIR"));
	rom_image(rom, 1024, 0x1af4, 0x1041, 0, true);
	rom[ROM_PCIR] = 'X';
	assert_int_equal(virtio_pci_rom_check(rom, 1024, ROM_VIRTIO_NET, err,
					      sizeof(err)), -ENOEXEC);
	/* Shorter than a header; empty; NULL. */
	assert_int_equal(virtio_pci_rom_check(rom, 0x19, ROM_VIRTIO_NET, err,
					      sizeof(err)), -ENOEXEC);
	assert_int_equal(virtio_pci_rom_check(rom, 0, ROM_VIRTIO_NET, err,
					      sizeof(err)), -ENOEXEC);
	assert_int_equal(virtio_pci_rom_check(NULL, 1024, ROM_VIRTIO_NET, err,
					      sizeof(err)), -ENOEXEC);
	/* A tiny err buffer is cut, not overrun (ASan watches). */
	rom_image(rom, 1024, 0x1af4, 0x1000, 0, true);
	assert_int_equal(virtio_pci_rom_check(rom, 1024, ROM_VIRTIO_NET, err,
					      4), -ENODEV);
	assert_int_equal(strlen(err), 3);
}

/* Debian's iPXE ROM for virtio-net (package ipxe-qemu), when installed:
 * the ids SeaBIOS matches are our modern virtio-net's. */
static void
test_rom_check_ipxe(void **state)
{
	FILE *fp = fopen(IPXE_VIRTIO_ROM, "rb");
	static uint8_t rom[1 << 20];
	struct romfix rf;
	char err[256] = "";
	size_t n;

	(void)state;
	if (!fp) {
		print_message("# %s: not installed (ipxe-qemu)\n",
			      IPXE_VIRTIO_ROM);
		skip();
	}
	n = fread(rom, 1, sizeof(rom), fp);
	fclose(fp);
	assert_true(n > 0x1000);
	if (virtio_pci_rom_check(rom, n, ROM_VIRTIO_NET, err, sizeof(err)))
		fail_msg("%s: %s", IPXE_VIRTIO_ROM, err);
	assert_int_equal(virtio_pci_rom_check(rom, n, ECHO_ID, NULL, 0),
			 -ENODEV);
	/* And it reads back whole through the ROM BAR. */
	assert_int_equal(romfix_init(&rf, rom, n), 0);
	rom_set(&rf, (uint32_t)ROM_GPA | PCI_ROM_ADDRESS_ENABLE);
	vh_cfg_write(&rf.m, rf.slot, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	for (size_t i = 0; i < n; i += 4) {
		uint32_t want = 0xffffffff;

		memcpy(&want, rom + i, n - i < 4 ? n - i : 4);
		if (vh_mmio_read(&rf.m, ROM_GPA + i, 4) != want)
			fail_msg("iPXE ROM at 0x%zx: read back differs", i);
	}
	romfix_fini(&rf);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_enumeration),
		T(test_features),
		T(test_queue_registers),
		T(test_bad_ring_address),
		T(test_round_trip_doorbell),
		T(test_round_trip_eventfd),
		T(test_many_in_flight),
		T(test_msix_mask_pba),
		T(test_reset_during_io),
		T(test_device_config),
		T(test_pci_cfg_window),
		T(test_isr_without_msix),
		cmocka_unit_test_setup_teardown(test_intx_gsi_of_slot,
						setup_intx, teardown_intx),
		T(test_hostile_ring_needs_reset),
		T(test_bar_moves),
		T(test_rom_none),
		cmocka_unit_test(test_rom_sizing),
		cmocka_unit_test(test_rom_enable_and_contents),
		cmocka_unit_test(test_rom_writes_ignored),
		cmocka_unit_test(test_rom_bad_config),
		cmocka_unit_test(test_rom_check),
		cmocka_unit_test(test_rom_check_ipxe),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}

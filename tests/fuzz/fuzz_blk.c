/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the virtio-blk request parser: the input is a
 * whole (small) guest RAM holding a split virtqueue, its descriptor
 * tables, request headers, segment lists and buffers, plus a few bytes
 * choosing the queue and the disk (capacity, read-only, negotiated
 * discard / write-zeroes, serial). Every chain the virtqueue hands out
 * goes through blk_parse(); what it decides is then carried out against a
 * fake disk in memory, checking that no file offset leaves the disk, that
 * the data iovecs add up to the length and lie inside guest RAM (every
 * byte is touched, so ASan sees any escape), and that the status byte is
 * the chain's last writable byte.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "mem.h"
#include "virtio/blk.h"
#include "virtio/virtq.h"

#define FZ_RAM		(64 * 1024)
/* Rings first, so that short inputs already describe chains. */
#define FZ_DESC		0x0000		/* up to 16 entries */
#define FZ_AVAIL	0x0100
#define FZ_USED		0x0200
#define FZ_MAX_IOV	256
#define FZ_DISK_SECT	256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Globals, so that ASan knows exactly where guest RAM and the disk end. */
static uint8_t fz_ram[FZ_RAM];
static uint8_t fz_disk[FZ_DISK_SECT * BLK_SECTOR_SIZE];
static struct iovec fz_iov[FZ_MAX_IOV];
static struct iovec fz_data[FZ_MAX_IOV];
static struct blk_parsed fz_p;

static void
fz_check(bool ok)
{
	if (!ok)
		abort();
}

static void
fz_on_error(struct virtq *vq, const char *why, void *opaque)
{
	(void)vq;
	(void)why;
	(void)opaque;
}

static void
fz_carry_out(const struct blk_limits *lim, const struct virtq_elem *e,
	     const struct blk_parsed *p)
{
	const struct iovec *last = &e->iov[e->nr_out + e->nr_in - 1];
	uint64_t disk = lim->capacity * BLK_SECTOR_SIZE, sum = 0;
	unsigned int i;

	fz_check(p->status_ptr == (uint8_t *)last->iov_base +
		 last->iov_len - 1);
	fz_check(p->used_len == e->in_len);
	switch (p->op) {
	case BLK_OP_READ:
	case BLK_OP_WRITE:
		fz_check(p->offset <= disk && p->len <= disk - p->offset);
		fz_check(p->len % BLK_SECTOR_SIZE == 0);
		fz_check(!lim->readonly || p->op == BLK_OP_READ);
		for (i = 0; i < p->nr_iov; i++) {
			uint8_t *d = fz_disk + p->offset + sum;

			fz_check(fz_data[i].iov_len <= p->len - sum);
			/* Inside RAM: both checked by ASan and by hand. */
			fz_check((uint8_t *)fz_data[i].iov_base >= fz_ram &&
				 (uint8_t *)fz_data[i].iov_base +
				 fz_data[i].iov_len <= fz_ram + FZ_RAM);
			if (p->op == BLK_OP_READ)
				memcpy(fz_data[i].iov_base, d,
				       fz_data[i].iov_len);
			else
				memcpy(d, fz_data[i].iov_base,
				       fz_data[i].iov_len);
			sum += fz_data[i].iov_len;
		}
		fz_check(sum == p->len);
		break;
	case BLK_OP_DISCARD:
	case BLK_OP_WRITE_ZEROES:
		fz_check(!lim->readonly);
		fz_check(p->nr_segs >= 1 && p->nr_segs <= BLK_MAX_DISCARD_SEG);
		for (i = 0; i < p->nr_segs; i++) {
			const struct blk_seg *s = &p->segs[i];

			fz_check(s->offset <= disk && s->len <= disk - s->offset);
			memset(fz_disk + s->offset, 0, s->len);
		}
		break;
	case BLK_OP_FLUSH:
		break;
	case BLK_OP_NONE:
		fz_check(p->status <= VIRTIO_BLK_S_UNSUPP);
		break;
	}
	*p->status_ptr = p->op == BLK_OP_NONE ? p->status : VIRTIO_BLK_S_OK;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct guest_mem mem = {
		.hva = fz_ram, .size = FZ_RAM, .fd = -1, .nr_regions = 1,
		.regions = { { .gpa = 0, .size = FZ_RAM, .offset = 0 } },
	};
	static const char *serials[] = { NULL, "s", "ABCDEFGHIJKLMNOPQRST" };
	struct blk_limits lim;
	struct virtq vq;
	struct virtq_elem e;
	unsigned int max_iov;
	uint16_t qsize;
	uint8_t cfg, fill;
	int r;

	if (size < 5)
		return 0;
	cfg = data[0];
	qsize = (uint16_t)(1u << (cfg & 7) % 5);		/* 1 .. 16 */
	fill = data[4];
	max_iov = 1 + data[1] % FZ_MAX_IOV;
	lim.capacity = data[2] % (FZ_DISK_SECT + 1);
	lim.readonly = cfg & 0x20;
	lim.discard = cfg & 0x40;
	lim.write_zeroes = cfg & 0x80;
	lim.serial = serials[data[3] % 3];
	data += 5;
	size -= 5;
	memset(fz_ram, 0, sizeof(fz_ram));
	memcpy(fz_ram, data, size < FZ_RAM ? size : FZ_RAM);
	/* Optionally a well-formed available ring (heads 0, 1, ...), so the
	 * fuzzer spends its time on descriptors and requests. */
	if (fill & 0x80) {
		uint16_t n = (uint16_t)((fill & 0x7f) % (qsize + 1)), i;

		for (i = 0; i < n; i++)
			memcpy(fz_ram + FZ_AVAIL + 4 + 2 * i, &i, 2);
		memcpy(fz_ram + FZ_AVAIL + 2, &n, 2);
	}

	virtq_init(&vq, 0, fz_on_error, NULL);
	if (virtq_setup(&vq, &mem, qsize, FZ_DESC,
			FZ_AVAIL, FZ_USED, cfg & 0x08, cfg & 0x10) < 0)
		return 0;
	while ((r = virtq_pop(&vq, fz_iov, max_iov, &e)) == 1) {
		r = blk_parse(&lim, &e, fz_data, FZ_MAX_IOV, &fz_p);
		if (r < 0) {
			/* Only a chain with no writable byte is refused. */
			fz_check(r == -EBADMSG && e.in_len == 0);
			break;	/* the device would need a reset */
		}
		fz_carry_out(&lim, &e, &fz_p);
		virtq_push(&vq, e.head, fz_p.used_len);
		virtq_notify_needed(&vq);
	}
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the split-virtqueue walker: the input is a whole
 * (small) guest RAM holding the rings, the descriptor tables and the
 * buffers, plus a few bytes choosing the queue's parameters. The device
 * side pops every chain it can, touches every byte of every buffer it was
 * given (so ASan sees any range that escapes guest RAM), pushes them back
 * and asks about interrupts, as a device would.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>

#include "mem.h"
#include "virtio/virtq.h"

#define FZ_RAM		(64 * 1024)
#define FZ_DESC		0x0000
#define FZ_AVAIL	0x4000
#define FZ_USED		0x5000
#define FZ_MAX_IOV	256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A global, so that ASan knows exactly where guest RAM ends. */
static uint8_t fz_ram[FZ_RAM];
static struct iovec fz_iov[FZ_MAX_IOV];
static volatile uint8_t fz_sink;
static unsigned int fz_errors;

static void
fz_on_error(struct virtq *vq, const char *why, void *opaque)
{
	(void)vq;
	(void)opaque;
	(void)why;
	fz_errors++;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct guest_mem mem = {
		.hva = fz_ram, .size = FZ_RAM, .fd = -1, .nr_regions = 1,
		.regions = { { .gpa = 0, .size = FZ_RAM, .offset = 0 } },
	};
	struct virtq vq;
	struct virtq_elem e;
	uint16_t qsize;
	unsigned int max_iov, rounds, i, k;
	uint8_t cfg;
	int r;

	if (size < 3)
		return 0;
	cfg = data[0];
	qsize = (uint16_t)(1u << (cfg & 7));		/* 1 .. 128 */
	max_iov = 1 + data[1] % FZ_MAX_IOV;
	rounds = 1 + data[2] % 8;
	data += 3;
	size -= 3;
	memset(fz_ram, 0, sizeof(fz_ram));
	memcpy(fz_ram, data, size < FZ_RAM ? size : FZ_RAM);

	virtq_init(&vq, 0, fz_on_error, NULL);
	if (virtq_setup(&vq, &mem, qsize, FZ_DESC, FZ_AVAIL, FZ_USED,
			cfg & 0x08, cfg & 0x10) < 0)
		return 0;
	if (cfg & 0x20)
		virtq_disable_notify(&vq);
	for (k = 0; k < rounds; k++) {
		while ((r = virtq_pop(&vq, fz_iov, max_iov, &e)) == 1) {
			uint32_t out = 0, in = 0;

			for (i = 0; i < e.nr_out + e.nr_in; i++) {
				const uint8_t *p = e.iov[i].iov_base;
				size_t n = e.iov[i].iov_len;

				/* Every byte handed out must be guest RAM. */
				if (p < fz_ram || p + n > fz_ram + FZ_RAM)
					__builtin_trap();
				fz_sink ^= p[0] ^ p[n - 1];
				if (i < e.nr_out)
					out += (uint32_t)n;
				else
					in += (uint32_t)n;
			}
			if (out != e.out_len || in != e.in_len)
				__builtin_trap();
			virtq_push(&vq, e.head, in);
		}
		(void)virtq_notify_needed(&vq);
		if (r < 0 && !vq.broken && vq.ready)
			__builtin_trap();
		/* The driver moves on between rounds: take the avail index
		 * from further in the input. */
		if (size >= 8 + 2 * k + 2)
			memcpy(fz_ram + FZ_AVAIL + 2, data + 8 + 2 * k, 2);
	}
	return 0;
}

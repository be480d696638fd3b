/* SPDX-License-Identifier: MIT */
/*
 * The split virtqueue, device side. The guest writes the descriptor table
 * and the available ring while we read them, so every field is fetched
 * exactly once into a local before it is checked and used.
 */
#include "virtio/virtq.h"

#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <linux/virtio_ring.h>

/* Offsets into the rings (virtio 1.x 2.7.5, 2.7.6, 2.7.8). */
#define VIRTQ_DESC_SIZE		16u
#define VIRTQ_RING_FLAGS	0u
#define VIRTQ_RING_IDX		2u
#define VIRTQ_RING_START	4u

struct virtq_desc_copy {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

static inline uint16_t
virtq_rd16(const uint8_t *p)
{
	return le16toh(__atomic_load_n((const uint16_t *)(const void *)p,
				       __ATOMIC_RELAXED));
}

static inline void
virtq_wr16(uint8_t *p, uint16_t v)
{
	__atomic_store_n((uint16_t *)(void *)p, htole16(v), __ATOMIC_RELAXED);
}

static inline void
virtq_wr32(uint8_t *p, uint32_t v)
{
	__atomic_store_n((uint32_t *)(void *)p, htole32(v), __ATOMIC_RELAXED);
}

/* One fetch of a descriptor; tables of indirect chains need not be aligned. */
static void
virtq_read_desc(const uint8_t *table, uint16_t i, struct virtq_desc_copy *d)
{
	uint8_t raw[VIRTQ_DESC_SIZE];
	uint64_t a;
	uint32_t l;
	uint16_t f, n;

	memcpy(raw, table + (size_t)i * VIRTQ_DESC_SIZE, sizeof(raw));
	memcpy(&a, raw, 8);
	memcpy(&l, raw + 8, 4);
	memcpy(&f, raw + 12, 2);
	memcpy(&n, raw + 14, 2);
	d->addr = le64toh(a);
	d->len = le32toh(l);
	d->flags = le16toh(f);
	d->next = le16toh(n);
}

static void
virtq_fail(struct virtq *vq, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
virtq_fail(struct virtq *vq, const char *fmt, ...)
{
	va_list ap;

	if (vq->broken)
		return;
	vq->broken = true;
	va_start(ap, fmt);
	vsnprintf(vq->why, sizeof(vq->why), fmt, ap);
	va_end(ap);
	if (vq->on_error)
		vq->on_error(vq, vq->why, vq->opaque);
}

void
virtq_init(struct virtq *vq, unsigned int index, virtq_error_fn on_error,
	   void *opaque)
{
	memset(vq, 0, sizeof(*vq));
	vq->index = index;
	vq->on_error = on_error;
	vq->opaque = opaque;
}

void
virtq_stop(struct virtq *vq)
{
	__atomic_store_n(&vq->stopping, true, __ATOMIC_SEQ_CST);
}

void
virtq_reset(struct virtq *vq)
{
	virtq_init(vq, vq->index, vq->on_error, vq->opaque);
}

static int
virtq_setup_fail(struct virtq *vq, const char *what, uint64_t gpa,
		 uint64_t len)
{
	snprintf(vq->why, sizeof(vq->why),
		 "queue %u: %s at 0x%llx (%llu bytes) is misaligned or outside "
		 "guest RAM", vq->index, what, (unsigned long long)gpa,
		 (unsigned long long)len);
	return -EINVAL;
}

int
virtq_setup(struct virtq *vq, const struct guest_mem *mem, uint16_t size,
	    uint64_t desc_gpa, uint64_t avail_gpa, uint64_t used_gpa,
	    bool event_idx, bool indirect)
{
	uint8_t *desc, *avail, *used;

	virtq_reset(vq);
	if (size == 0 || (size & (size - 1)) != 0 || size > VIRTQ_MAX_SIZE) {
		snprintf(vq->why, sizeof(vq->why),
			 "queue %u: size %u is not a power of two up to %u",
			 vq->index, size, VIRTQ_MAX_SIZE);
		return -EINVAL;
	}
	desc = guest_mem_ptr(mem, desc_gpa, VIRTQ_DESC_BYTES(size));
	if (!desc || desc_gpa % 16)
		return virtq_setup_fail(vq, "descriptor table", desc_gpa,
					VIRTQ_DESC_BYTES(size));
	avail = guest_mem_ptr(mem, avail_gpa, VIRTQ_AVAIL_BYTES(size));
	if (!avail || avail_gpa % 2)
		return virtq_setup_fail(vq, "available ring", avail_gpa,
					VIRTQ_AVAIL_BYTES(size));
	used = guest_mem_ptr(mem, used_gpa, VIRTQ_USED_BYTES(size));
	if (!used || used_gpa % 4)
		return virtq_setup_fail(vq, "used ring", used_gpa,
					VIRTQ_USED_BYTES(size));
	vq->mem = mem;
	vq->size = size;
	vq->event_idx = event_idx;
	vq->indirect = indirect;
	vq->desc_gpa = desc_gpa;
	vq->avail_gpa = avail_gpa;
	vq->used_gpa = used_gpa;
	vq->desc = desc;
	vq->avail = avail;
	vq->used = used;
	/*
	 * A fresh queue starts at index 0 on both sides (the driver zeroed
	 * the used ring); take our used index from what is there so that a
	 * driver that did not zero it still sees consistent indices.
	 */
	vq->used_idx = virtq_rd16(used + VIRTQ_RING_IDX);
	vq->signalled_used = vq->used_idx;
	vq->last_avail = 0;
	vq->ready = true;
	return 0;
}

bool
virtq_has_work(struct virtq *vq)
{
	if (!vq->ready || vq->broken)
		return false;
	return virtq_rd16(vq->avail + VIRTQ_RING_IDX) != vq->last_avail;
}

void
virtq_disable_notify(struct virtq *vq)
{
	uint16_t f;

	if (!vq->ready || vq->event_idx)
		return;	/* with EVENT_IDX, avail_event simply stays behind */
	f = virtq_rd16(vq->used + VIRTQ_RING_FLAGS);
	virtq_wr16(vq->used + VIRTQ_RING_FLAGS, f | VRING_USED_F_NO_NOTIFY);
}

/* Ask for kicks again from the next entry on. */
static void
virtq_enable_notify(struct virtq *vq)
{
	uint16_t f;

	if (vq->event_idx) {
		virtq_wr16(vq->used + VIRTQ_RING_START +
			   8u * vq->size, vq->last_avail);
		return;
	}
	f = virtq_rd16(vq->used + VIRTQ_RING_FLAGS);
	if (f & VRING_USED_F_NO_NOTIFY)
		virtq_wr16(vq->used + VIRTQ_RING_FLAGS,
			   f & ~VRING_USED_F_NO_NOTIFY);
}

/*
 * The available index, checked: the driver may be at most a queue ahead.
 * Returns the number of chains waiting, or -EIO.
 */
static int
virtq_avail_pending(struct virtq *vq)
{
	uint16_t idx = virtq_rd16(vq->avail + VIRTQ_RING_IDX);
	uint16_t n = (uint16_t)(idx - vq->last_avail);

	if (n > vq->size) {
		virtq_fail(vq, "queue %u: available index jumped from %u to %u "
			   "(queue size %u)", vq->index, vq->last_avail, idx,
			   vq->size);
		return -EIO;
	}
	return n;
}

struct virtq_walk {
	struct iovec *iov;
	unsigned int max_iov;
	unsigned int nr;
	unsigned int nr_out;
	uint64_t out_len;
	uint64_t in_len;
	bool seen_write;
	unsigned int buffers;	/* non-indirect descriptors, for the size bound */
};

/* One buffer descriptor: order, range, totals. 0 or -EIO. */
static int
virtq_take_buffer(struct virtq *vq, struct virtq_walk *w,
		  const struct virtq_desc_copy *d, uint16_t head)
{
	void *p;

	if (++w->buffers > vq->size) {
		virtq_fail(vq, "queue %u: chain at head %u is longer than the "
			   "queue (%u)", vq->index, head, vq->size);
		return -EIO;
	}
	if (d->flags & VRING_DESC_F_WRITE) {
		w->seen_write = true;
	} else if (w->seen_write) {
		virtq_fail(vq, "queue %u: chain at head %u has a readable "
			   "buffer after a writable one", vq->index, head);
		return -EIO;
	}
	if (d->flags & VRING_DESC_F_WRITE)
		w->in_len += d->len;
	else
		w->out_len += d->len;
	if (w->in_len > UINT32_MAX || w->out_len > UINT32_MAX) {
		virtq_fail(vq, "queue %u: chain at head %u adds up to more than "
			   "4 GiB", vq->index, head);
		return -EIO;
	}
	if (d->len == 0)
		return 0;
	p = guest_mem_ptr(vq->mem, d->addr, d->len);
	if (!p) {
		virtq_fail(vq, "queue %u: chain at head %u: buffer 0x%llx "
			   "(%u bytes) is outside guest RAM", vq->index, head,
			   (unsigned long long)d->addr, d->len);
		return -EIO;
	}
	if (w->nr >= w->max_iov) {
		virtq_fail(vq, "queue %u: chain at head %u has more than %u "
			   "buffers", vq->index, head, w->max_iov);
		return -EIO;
	}
	w->iov[w->nr].iov_base = p;
	w->iov[w->nr].iov_len = d->len;
	w->nr++;
	if (!(d->flags & VRING_DESC_F_WRITE))
		w->nr_out++;
	return 0;
}

/* Walk an indirect table; the chain ends with it. 0 or -EIO. */
static int
virtq_walk_indirect(struct virtq *vq, struct virtq_walk *w,
		    const struct virtq_desc_copy *ind, uint16_t head)
{
	struct virtq_desc_copy d;
	const uint8_t *table;
	uint32_t n, steps = 0;
	uint16_t i = 0;

	if (!vq->indirect) {
		virtq_fail(vq, "queue %u: chain at head %u uses an indirect "
			   "table, not negotiated", vq->index, head);
		return -EIO;
	}
	if (ind->flags & VRING_DESC_F_NEXT) {
		virtq_fail(vq, "queue %u: chain at head %u: indirect descriptor "
			   "with NEXT set", vq->index, head);
		return -EIO;
	}
	n = ind->len / VIRTQ_DESC_SIZE;
	if (ind->len == 0 || ind->len % VIRTQ_DESC_SIZE || n > vq->size) {
		virtq_fail(vq, "queue %u: chain at head %u: indirect table of "
			   "%u bytes (queue size %u)", vq->index, head, ind->len,
			   vq->size);
		return -EIO;
	}
	table = guest_mem_ptr(vq->mem, ind->addr, ind->len);
	if (!table) {
		virtq_fail(vq, "queue %u: chain at head %u: indirect table at "
			   "0x%llx (%u bytes) is outside guest RAM", vq->index,
			   head, (unsigned long long)ind->addr, ind->len);
		return -EIO;
	}
	for (;;) {
		if (++steps > n) {
			virtq_fail(vq, "queue %u: chain at head %u loops in its "
				   "indirect table", vq->index, head);
			return -EIO;
		}
		virtq_read_desc(table, i, &d);
		if (d.flags & VRING_DESC_F_INDIRECT) {
			virtq_fail(vq, "queue %u: chain at head %u: nested "
				   "indirect table", vq->index, head);
			return -EIO;
		}
		if (virtq_take_buffer(vq, w, &d, head) < 0)
			return -EIO;
		if (!(d.flags & VRING_DESC_F_NEXT))
			return 0;
		if (d.next >= n) {
			virtq_fail(vq, "queue %u: chain at head %u: indirect "
				   "next %u out of a table of %u", vq->index,
				   head, d.next, n);
			return -EIO;
		}
		i = d.next;
	}
}

int
virtq_pop(struct virtq *vq, struct iovec *iov, unsigned int max_iov,
	  struct virtq_elem *ret)
{
	struct virtq_walk w = { .iov = iov, .max_iov = max_iov };
	struct virtq_desc_copy d;
	uint32_t steps = 0;
	uint16_t head, i;
	int n;

	if (!vq->ready || vq->broken)
		return -EIO;
	if (__atomic_load_n(&vq->stopping, __ATOMIC_ACQUIRE))
		return 0;
	n = virtq_avail_pending(vq);
	if (n < 0)
		return n;
	if (n == 0) {
		virtq_enable_notify(vq);
		/*
		 * Full barrier: our avail_event (or flags) store must be seen
		 * before we read avail->idx again. Pairs with the driver's
		 * full barrier between its avail->idx store and its read of
		 * avail_event/flags when deciding whether to kick; one of the
		 * two sides sees the other's write.
		 */
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		n = virtq_avail_pending(vq);
		if (n <= 0)
			return n;
	}
	/*
	 * Read barrier: the ring entry and descriptors are read only after
	 * avail->idx. Pairs with the driver's write barrier between filling
	 * them and publishing avail->idx.
	 */
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	head = virtq_rd16(vq->avail + VIRTQ_RING_START +
			  2u * (vq->last_avail & (vq->size - 1)));
	if (head >= vq->size) {
		virtq_fail(vq, "queue %u: available entry %u names head %u "
			   "(queue size %u)", vq->index, vq->last_avail, head,
			   vq->size);
		return -EIO;
	}
	i = head;
	for (;;) {
		if (++steps > vq->size) {
			virtq_fail(vq, "queue %u: chain at head %u loops or is "
				   "longer than the queue", vq->index, head);
			return -EIO;
		}
		virtq_read_desc(vq->desc, i, &d);
		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (virtq_walk_indirect(vq, &w, &d, head) < 0)
				return -EIO;
			break;
		}
		if (virtq_take_buffer(vq, &w, &d, head) < 0)
			return -EIO;
		if (!(d.flags & VRING_DESC_F_NEXT))
			break;
		if (d.next >= vq->size) {
			virtq_fail(vq, "queue %u: chain at head %u: next %u "
				   "(queue size %u)", vq->index, head, d.next,
				   vq->size);
			return -EIO;
		}
		i = d.next;
	}
	vq->last_avail++;
	ret->head = head;
	ret->iov = iov;
	ret->nr_out = w.nr_out;
	ret->nr_in = w.nr - w.nr_out;
	ret->out_len = (uint32_t)w.out_len;
	ret->in_len = (uint32_t)w.in_len;
	return 1;
}

int
virtq_push(struct virtq *vq, uint16_t head, uint32_t written)
{
	uint8_t *e;

	if (!vq->ready || head >= vq->size)
		return -EINVAL;
	e = vq->used + VIRTQ_RING_START + 8u * (vq->used_idx & (vq->size - 1));
	virtq_wr32(e, head);
	virtq_wr32(e + 4, written);
	vq->used_idx++;
	/*
	 * Release: the used element (and the buffers the device wrote) are
	 * visible before the new used->idx. Pairs with the driver's read
	 * barrier between reading used->idx and reading the element.
	 */
	__atomic_store_n((uint16_t *)(void *)(vq->used + VIRTQ_RING_IDX),
			 htole16(vq->used_idx), __ATOMIC_RELEASE);
	return 0;
}

bool
virtq_notify_needed(struct virtq *vq)
{
	uint16_t old, cur, event;
	bool valid;

	if (!vq->ready)
		return false;
	old = vq->signalled_used;
	valid = vq->signalled_valid;
	cur = vq->used_idx;
	if (old == cur)
		return false;	/* nothing pushed since the last call */
	vq->signalled_used = cur;
	vq->signalled_valid = true;
	/*
	 * Full barrier: our used->idx store comes before the read of
	 * used_event/flags. Pairs with the driver's full barrier between
	 * writing used_event (enabling callbacks) and reading used->idx
	 * again, so either we see its event or it sees our index.
	 */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!vq->event_idx)
		return !(virtq_rd16(vq->avail + VIRTQ_RING_FLAGS) &
			 VRING_AVAIL_F_NO_INTERRUPT);
	if (!valid)
		return true;
	event = virtq_rd16(vq->avail + VIRTQ_RING_START + 2u * vq->size);
	return virtq_need_event(event, cur, old);
}

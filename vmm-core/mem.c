/* SPDX-License-Identifier: MIT */
#include "mem.h"
#include "layout.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int
guest_mem_layout(struct guest_mem *m, uint64_t ram_size)
{
	uint64_t low;

	memset(m, 0, sizeof(*m));
	m->fd = -1;
	if (ram_size == 0 || ram_size % (4 * KiB) != 0)
		return -EINVAL;
	/* Keep the top of the address space out of reach of overflow. */
	if (ram_size > (1ULL << 46))
		return -EINVAL;
	low = ram_size < LAYOUT_PCI_HOLE_START ? ram_size : LAYOUT_PCI_HOLE_START;
	m->size = ram_size;
	m->regions[0] = (struct guest_mem_region){ 0, low, 0 };
	m->nr_regions = 1;
	if (ram_size > low) {
		m->regions[1] = (struct guest_mem_region){
			LAYOUT_HIGH_RAM_START, ram_size - low, low
		};
		m->nr_regions = 2;
	}
	return 0;
}

int
guest_mem_init(struct guest_mem *m, uint64_t ram_size)
{
	int r, fd;
	void *p;

	r = guest_mem_layout(m, ram_size);
	if (r < 0)
		return r;
	fd = memfd_create("guest-ram", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)ram_size) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	p = mmap(NULL, ram_size, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_NORESERVE, fd, 0);
	if (p == MAP_FAILED) {
		r = -errno;
		close(fd);
		return r;
	}
	/* Guest RAM has no business in a core dump of the VMM. */
	(void)madvise(p, ram_size, MADV_DONTDUMP);
	m->hva = p;
	m->fd = fd;
	return 0;
}

void
guest_mem_destroy(struct guest_mem *m)
{
	if (!m)
		return;
	if (m->hva)
		munmap(m->hva, m->size);
	if (m->fd >= 0)
		close(m->fd);
	m->hva = NULL;
	m->fd = -1;
}

static const struct guest_mem_region *
guest_mem_find(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	int i;

	for (i = 0; i < m->nr_regions; i++) {
		const struct guest_mem_region *r = &m->regions[i];

		if (gpa < r->gpa)
			continue;
		if (gpa - r->gpa > r->size)
			continue;
		if (len > r->size - (gpa - r->gpa))
			continue;
		return r;
	}
	return NULL;
}

bool
guest_mem_contains(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	return guest_mem_find(m, gpa, len) != NULL;
}

void *
guest_mem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	const struct guest_mem_region *r;

	if (!m->hva)
		return NULL;
	r = guest_mem_find(m, gpa, len);
	if (!r)
		return NULL;
	return m->hva + r->offset + (gpa - r->gpa);
}

uint64_t
guest_mem_top(const struct guest_mem *m)
{
	const struct guest_mem_region *r = &m->regions[m->nr_regions - 1];

	return r->gpa + r->size;
}

int
guest_mem_write(const struct guest_mem *m, uint64_t gpa,
		const void *src, uint64_t len)
{
	void *p = guest_mem_ptr(m, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(p, src, len);
	return 0;
}

int
guest_mem_read(const struct guest_mem *m, uint64_t gpa, void *dst, uint64_t len)
{
	const void *p = guest_mem_ptr(m, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(dst, p, len);
	return 0;
}

/* SPDX-License-Identifier: MIT */
#include "dev/debugcon.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct debugcon {
	struct bus *pio;
	uint16_t port;
	int out_fd;
	uint64_t dropped;	/* atomic */
};

static void
debugcon_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
	    bool is_write)
{
	struct debugcon *d = opaque;
	uint32_t done = 0;
	ssize_t n;

	(void)offset;
	if (!is_write) {
		memset(data, d->out_fd >= 0 ? DEBUGCON_READBACK : 0xff, len);
		return;
	}
	while (d->out_fd >= 0 && done < len) {
		n = write(d->out_fd, data + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (uint32_t)n;
	}
	if (done < len)
		__atomic_add_fetch(&d->dropped, len - done, __ATOMIC_RELAXED);
}

struct debugcon *
debugcon_new(struct bus *pio, uint16_t port, int out_fd)
{
	struct debugcon *d;
	int r;

	d = calloc(1, sizeof(*d));
	if (!d) {
		errno = ENOMEM;
		return NULL;
	}
	d->pio = pio;
	d->port = port;
	d->out_fd = out_fd < 0 ? -1 : out_fd;
	r = bus_register(pio, port, 1, debugcon_io, d, "debugcon");
	if (r < 0) {
		free(d);
		errno = -r;
		return NULL;
	}
	return d;
}

void
debugcon_free(struct debugcon *d)
{
	if (!d)
		return;
	bus_unregister(d->pio, d->port);
	free(d);
}

uint64_t
debugcon_dropped(struct debugcon *d)
{
	return __atomic_load_n(&d->dropped, __ATOMIC_RELAXED);
}

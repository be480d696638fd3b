/* SPDX-License-Identifier: MIT */
/*
 * The console hub (conhub.h): one ring, one thread, many readers.
 */
#include "conhub.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define CONHUB_INPUT_CHUNK 4096

struct conhub_client {
	int fd;
	uint64_t pos;		/* next byte of the output stream to send */
};

struct conhub {
	pthread_mutex_t lock;	/* ring, total, skipped, new_fds */
	uint8_t *ring;
	size_t size;
	uint64_t total;		/* bytes ever written; ring holds the last */
	uint64_t skipped;
	int new_fds[CONHUB_MAX_CLIENTS];	/* handed over, not yet served */
	unsigned int nr_new;
	int listen_fd;
	char *path;
	bool stopping;

	int wake_fd;
	bool kicked;		/* a wake-up is pending on wake_fd */
	pthread_t thread;

	/* The hub thread's own. */
	struct conhub_client clients[CONHUB_MAX_CLIENTS];
	unsigned int nr_clients;
	conhub_input_fn input;
	void *opaque;
	int room_fd;
	uint8_t pending[CONHUB_INPUT_CHUNK];	/* input the guest refused */
	size_t pend_off, pend_len;
};

static void
conhub_wake(struct conhub *h)
{
	if (!__atomic_exchange_n(&h->kicked, true, __ATOMIC_SEQ_CST)) {
		/* An eventfd write fails only on overflow, which cannot
		 * happen with one pending wake-up. */
		if (write(h->wake_fd, &(uint64_t){ 1 }, sizeof(uint64_t)) < 0)
			__atomic_store_n(&h->kicked, false, __ATOMIC_SEQ_CST);
	}
}

void
conhub_write(struct conhub *h, const uint8_t *buf, size_t len)
{
	size_t start, first;

	if (!h || !len)
		return;
	pthread_mutex_lock(&h->lock);
	if (len > h->size) {
		h->total += len - h->size;
		buf += len - h->size;
		len = h->size;
	}
	start = (size_t)(h->total % h->size);
	first = h->size - start < len ? h->size - start : len;
	memcpy(h->ring + start, buf, first);
	memcpy(h->ring, buf + first, len - first);
	h->total += len;
	pthread_mutex_unlock(&h->lock);
	conhub_wake(h);
}

int
conhub_history(struct conhub *h, uint8_t **ret_buf, size_t *ret_len)
{
	uint64_t from;
	size_t len, start, first;
	uint8_t *buf;

	pthread_mutex_lock(&h->lock);
	from = h->total > h->size ? h->total - h->size : 0;
	len = (size_t)(h->total - from);
	buf = malloc(len ? len : 1);
	if (!buf) {
		pthread_mutex_unlock(&h->lock);
		return -ENOMEM;
	}
	start = (size_t)(from % h->size);
	first = h->size - start < len ? h->size - start : len;
	memcpy(buf, h->ring + start, first);
	memcpy(buf + first, h->ring, len - first);
	pthread_mutex_unlock(&h->lock);
	*ret_buf = buf;
	*ret_len = len;
	return 0;
}

void
conhub_get_stats(struct conhub *h, struct conhub_stats *ret)
{
	pthread_mutex_lock(&h->lock);
	ret->written = h->total;
	ret->skipped = h->skipped;
	ret->clients = __atomic_load_n(&h->nr_clients, __ATOMIC_RELAXED) +
		       h->nr_new;
	pthread_mutex_unlock(&h->lock);
}

static void
conhub_drop_client(struct conhub *h, unsigned int i)
{
	close(h->clients[i].fd);
	h->clients[i] = h->clients[h->nr_clients - 1];
	__atomic_store_n(&h->nr_clients, h->nr_clients - 1, __ATOMIC_RELAXED);
}

/*
 * Send what the client has not seen yet, without blocking. Returns 0, or -1
 * when the client is gone.
 */
static int
conhub_flush(struct conhub *h, struct conhub_client *c)
{
	int r = 0;

	pthread_mutex_lock(&h->lock);
	if (h->total - c->pos > h->size) {
		h->skipped += h->total - h->size - c->pos;
		c->pos = h->total - h->size;
	}
	while (c->pos < h->total) {
		size_t start = (size_t)(c->pos % h->size);
		size_t len = (size_t)(h->total - c->pos);
		ssize_t n;

		if (len > h->size - start)
			len = h->size - start;
		n = send(c->fd, h->ring + start, len,
			 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				r = -1;
			break;
		}
		c->pos += (uint64_t)n;
	}
	pthread_mutex_unlock(&h->lock);
	return r;
}

static void
conhub_add(struct conhub *h, int fd)
{
	struct conhub_client *c;

	if (h->nr_clients >= CONHUB_MAX_CLIENTS) {
		close(fd);
		return;
	}
	c = &h->clients[h->nr_clients];
	c->fd = fd;
	/* Start with the history. */
	pthread_mutex_lock(&h->lock);
	c->pos = h->total > h->size ? h->total - h->size : 0;
	pthread_mutex_unlock(&h->lock);
	__atomic_store_n(&h->nr_clients, h->nr_clients + 1, __ATOMIC_RELAXED);
}

/* Offer the refused input again. */
static void
conhub_retry_input(struct conhub *h)
{
	size_t n;

	if (!h->pend_len)
		return;
	n = h->input(h->opaque, h->pending + h->pend_off, h->pend_len);
	h->pend_off += n;
	h->pend_len -= n;
	if (!h->pend_len)
		h->pend_off = 0;
}

/* Read from a client and give it to the guest. Returns -1 when it is gone. */
static int
conhub_read_client(struct conhub *h, struct conhub_client *c)
{
	ssize_t n = read(c->fd, h->pending, sizeof(h->pending));

	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : -1;
	if (n == 0)
		return -1;
	if (!h->input)
		return 0;
	h->pend_off = 0;
	h->pend_len = (size_t)n;
	conhub_retry_input(h);
	return 0;
}

static void *
conhub_thread(void *arg)
{
	struct conhub *h = arg;
	struct pollfd pfd[CONHUB_MAX_CLIENTS + 3];

	for (;;) {
		unsigned int i, n = 0, first_client;
		int listen_fd, accepted, new_fds[CONHUB_MAX_CLIENTS];
		unsigned int nr_new;
		uint64_t total;
		bool stopping;

		pthread_mutex_lock(&h->lock);
		stopping = h->stopping;
		listen_fd = h->listen_fd;
		nr_new = h->nr_new;
		memcpy(new_fds, h->new_fds, sizeof(new_fds));
		h->nr_new = 0;
		pthread_mutex_unlock(&h->lock);
		if (stopping)
			break;
		for (i = 0; i < nr_new; i++)
			conhub_add(h, new_fds[i]);

		/* Catch every client up before sleeping. */
		for (i = 0; i < h->nr_clients;) {
			if (conhub_flush(h, &h->clients[i]) < 0)
				conhub_drop_client(h, i);
			else
				i++;
		}
		pthread_mutex_lock(&h->lock);
		total = h->total;
		pthread_mutex_unlock(&h->lock);

		pfd[n++] = (struct pollfd){ .fd = h->wake_fd, .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = listen_fd,
			.events = listen_fd >= 0 ? POLLIN : 0 };
		pfd[n++] = (struct pollfd){ .fd = h->room_fd,
			.events = h->pend_len && h->room_fd >= 0 ? POLLIN : 0 };
		first_client = n;
		for (i = 0; i < h->nr_clients; i++) {
			short ev = 0;

			/* While the guest refuses input, read no more. */
			if (!h->pend_len)
				ev |= POLLIN;
			if (h->clients[i].pos < total)
				ev |= POLLOUT;
			pfd[n++] = (struct pollfd){ .fd = h->clients[i].fd,
						    .events = ev };
		}
		if (poll(pfd, n, -1) < 0)
			continue;
		if (pfd[0].revents & POLLIN) {
			uint64_t v;

			if (read(h->wake_fd, &v, sizeof(v)) < 0 &&
			    errno != EAGAIN)
				continue;
			__atomic_store_n(&h->kicked, false, __ATOMIC_SEQ_CST);
		}
		if (pfd[1].revents & POLLIN) {
			accepted = accept4(listen_fd, NULL, NULL,
					   SOCK_NONBLOCK | SOCK_CLOEXEC);
			if (accepted >= 0)
				conhub_add(h, accepted);
		}
		if (pfd[2].revents & POLLIN) {
			uint64_t v;

			if (read(h->room_fd, &v, sizeof(v)) < 0 &&
			    errno != EAGAIN)
				continue;
			conhub_retry_input(h);
		}
		/* Clients from the last poll, in reverse so that a drop (which
		 * moves the last client into the hole) skips nobody. */
		for (i = n - first_client; i-- > 0;) {
			struct pollfd *p = &pfd[first_client + i];
			int gone = 0;

			if (i >= h->nr_clients || h->clients[i].fd != p->fd)
				continue;
			if ((p->revents & POLLIN) && !h->pend_len)
				gone = conhub_read_client(h, &h->clients[i]);
			else if (p->revents & (POLLHUP | POLLERR | POLLNVAL))
				gone = -1;
			if (gone < 0)
				conhub_drop_client(h, i);
		}
	}
	for (unsigned int i = 0; i < h->nr_clients; i++)
		close(h->clients[i].fd);
	h->nr_clients = 0;
	return NULL;
}

int
conhub_new(size_t history, conhub_input_fn input, void *opaque,
	   int input_room_fd, struct conhub **ret)
{
	struct conhub *h;
	int r;

	if (history < CONHUB_HISTORY_MIN || history > CONHUB_HISTORY_MAX)
		return -EINVAL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->ring = malloc(history);
	if (!h->ring) {
		free(h);
		return -ENOMEM;
	}
	h->size = history;
	h->listen_fd = -1;
	h->input = input;
	h->opaque = opaque;
	h->room_fd = input_room_fd;
	pthread_mutex_init(&h->lock, NULL);
	h->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (h->wake_fd < 0) {
		r = -errno;
		goto fail;
	}
	r = -pthread_create(&h->thread, NULL, conhub_thread, h);
	if (r < 0) {
		close(h->wake_fd);
		goto fail;
	}
	*ret = h;
	return 0;
fail:
	pthread_mutex_destroy(&h->lock);
	free(h->ring);
	free(h);
	return r;
}

int
conhub_listen(struct conhub *h, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (unlink(path) < 0 && errno != ENOENT) {
		r = -errno;
		goto fail;
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(path, 0600) < 0 || listen(fd, 8) < 0) {
		r = -errno;
		goto fail;
	}
	pthread_mutex_lock(&h->lock);
	if (h->listen_fd >= 0) {
		pthread_mutex_unlock(&h->lock);
		r = -EBUSY;
		goto fail;
	}
	h->path = strdup(path);
	h->listen_fd = fd;
	pthread_mutex_unlock(&h->lock);
	conhub_wake(h);
	return 0;
fail:
	close(fd);
	return r;
}

int
conhub_add_client(struct conhub *h, int fd)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		close(fd);
		return -EBADF;
	}
	pthread_mutex_lock(&h->lock);
	if (h->nr_new + __atomic_load_n(&h->nr_clients, __ATOMIC_RELAXED) >=
	    CONHUB_MAX_CLIENTS) {
		pthread_mutex_unlock(&h->lock);
		close(fd);
		return -EMFILE;
	}
	h->new_fds[h->nr_new++] = fd;
	pthread_mutex_unlock(&h->lock);
	conhub_wake(h);
	return 0;
}

void
conhub_free(struct conhub *h)
{
	unsigned int i;

	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	h->stopping = true;
	pthread_mutex_unlock(&h->lock);
	__atomic_store_n(&h->kicked, false, __ATOMIC_SEQ_CST);
	conhub_wake(h);
	pthread_join(h->thread, NULL);
	for (i = 0; i < h->nr_new; i++)
		close(h->new_fds[i]);
	if (h->listen_fd >= 0) {
		close(h->listen_fd);
		if (h->path)
			unlink(h->path);
	}
	free(h->path);
	close(h->wake_fd);
	pthread_mutex_destroy(&h->lock);
	free(h->ring);
	free(h);
}

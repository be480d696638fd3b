/* SPDX-License-Identifier: MIT */
/*
 * The console hub: what a guest writes on its console is kept in a history
 * ring and streamed to every client of a UNIX socket; what a client writes
 * goes to the guest. A client that connects first gets the history, then
 * the live output. The daemon is the usual client (it decides who may
 * write); the hub lives in vmm-run so that the history survives a restart
 * of the daemon.
 *
 * Every client reads from the one ring at its own position, so a slow
 * client costs no memory: one that falls more than the history size behind
 * skips ahead and misses what the ring no longer holds (counted).
 */
#ifndef VMM_CONHUB_H
#define VMM_CONHUB_H

#include <stddef.h>
#include <stdint.h>

#define CONHUB_MAX_CLIENTS	16
#define CONHUB_HISTORY_MIN	4096
#define CONHUB_HISTORY_MAX	(16u << 20)

/*
 * Hand bytes from a client to the guest. Returns how many were taken; the
 * hub keeps the rest and retries when input_room_fd becomes readable.
 */
typedef size_t (*conhub_input_fn)(void *opaque, const uint8_t *buf,
				  size_t len);

struct conhub;

/*
 * A hub with history bytes of history (CONHUB_HISTORY_MIN..MAX). input may
 * be NULL (client input is read and dropped); input_room_fd is an eventfd
 * that becomes readable when the guest can take more input, borrowed, or
 * -1. Returns 0 and a new hub in *ret, or a negative errno.
 */
int conhub_new(size_t history, conhub_input_fn input, void *opaque,
	       int input_room_fd, struct conhub **ret);

/*
 * Serve clients on a UNIX stream socket at path (an old socket file there
 * is replaced), mode 0600, on a thread of the hub's own. Returns 0 or a
 * negative errno.
 */
int conhub_listen(struct conhub *h, const char *path);

/*
 * Add one client on an already connected stream socket (taken over: the hub
 * closes it). Returns 0, or -EMFILE when the hub has its maximum of clients
 * (fd is closed then too).
 */
int conhub_add_client(struct conhub *h, int fd);

/* Guest output: into the history and out to the clients. Quick, never
 * blocks on a client; callable from any thread. */
void conhub_write(struct conhub *h, const uint8_t *buf, size_t len);

/*
 * A copy of the history (at most the ring size, oldest first) into a new
 * malloc'd buffer. Returns 0 or -ENOMEM.
 */
int conhub_history(struct conhub *h, uint8_t **ret_buf, size_t *ret_len);

struct conhub_stats {
	uint64_t written;	/* bytes the guest wrote */
	uint64_t skipped;	/* bytes slow clients missed */
	unsigned int clients;
};
void conhub_get_stats(struct conhub *h, struct conhub_stats *ret);

/* Stop the thread, close every client and the socket (the socket file is
 * removed), free. NULL is a no-op. */
void conhub_free(struct conhub *h);

#endif

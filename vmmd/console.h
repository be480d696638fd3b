/* SPDX-License-Identifier: MIT */
/*
 * vm.console: a client's connection turned into a raw byte stream spliced
 * to the VM's console socket (vmm-run's console hub, which keeps the
 * history and replays it to each new connection). vmmd opens one hub
 * connection per attached client; the writer's bytes go to the guest, a
 * reader's are read and dropped. A slow client makes vmmd stop reading the
 * hub, and the hub skips it ahead: a client never makes the daemon queue
 * more than a bounded amount.
 *
 * history_bytes: before it connects, vmmd asks vmm-run how many bytes the
 * guest ever wrote; the hub replays min(that, its history size) first.
 * With history false those bytes are skipped; output the guest writes
 * between that question and the connection counts as live.
 */
#ifndef VMMD_CONSOLE_H
#define VMMD_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>

#include "vmmd/queue.h"

struct evbuffer;
struct rpc_call;
struct vm;

/* At most this many consoles per VM (the hub serves 16 connections). */
#define CONSOLE_MAX_PER_VM	15

struct console;

/*
 * Attach the caller of call to vm's console (writer: as the one writer;
 * history: replay it). Answers call: the result, after which the
 * connection carries console bytes, or an error. Returns 0, or a negative
 * errno with call answered already.
 */
int console_attach(struct rpc_call *call, struct vm *vm, bool writer,
		   bool history);

/* From the client's connection: bytes it sent (in console mode). */
void console_client_input(struct console *con, struct evbuffer *in);
/* Its output drained: read the hub again. */
void console_client_drained(struct console *con);
/* It is gone: close the hub connection, free. */
void console_client_gone(struct console *con);

/* vm is being deleted or the daemon stops: close every console. */
void console_close_all(struct vm *vm);

/* Bytes the hub replays to a new connection (for tests). */
size_t console_history_bytes(unsigned long long written, size_t ring);

#endif

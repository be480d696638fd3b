/* SPDX-License-Identifier: MIT */
/*
 * The BSD tail queue macros from glibc's <sys/queue.h>, plus the _SAFE
 * iteration glibc lacks, in one place for vmmd's lists.
 */
#ifndef VMMD_QUEUE_H
#define VMMD_QUEUE_H

#include <sys/queue.h>

#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)			\
	for ((var) = TAILQ_FIRST(head);					\
	     (var) && ((tvar) = TAILQ_NEXT(var, field), 1);		\
	     (var) = (tvar))
#endif

#endif

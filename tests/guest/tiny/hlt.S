/* SPDX-License-Identifier: MIT */
/* Nothing but HLT: without an in-kernel irqchip it exits to userspace. */
	.code32
	.text
	.globl _start
_start:
	hlt
1:	hlt
	jmp	1b

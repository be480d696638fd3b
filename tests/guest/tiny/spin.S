/* SPDX-License-Identifier: MIT */
/*
 * Counts in memory forever without an exit: the pause test reads the
 * counter at 0x2000 to see whether the vCPU runs.
 * Flat 32-bit protected mode, loaded and entered at 0x1000.
 */
	.code32
	.text
	.globl _start
_start:
	xorl	%eax, %eax
1:	incl	%eax
	movl	%eax, 0x2000
	jmp	1b

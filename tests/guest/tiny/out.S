/* SPDX-License-Identifier: MIT */
/*
 * Port output of each size to one port: the test checks that its device saw
 * exactly these three accesses, in order, and one IO_OUT exit for each.
 * Flat 32-bit protected mode, loaded and entered at 0x1000.
 */
	.code32
	.text
	.globl _start
_start:
	movw	$0x500, %dx
	movb	$0x11, %al
	outb	%al, %dx
	movw	$0x2233, %ax
	outw	%ax, %dx
	movl	$0x44556677, %eax
	outl	%eax, %dx
1:	hlt
	jmp	1b

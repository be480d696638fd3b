/* SPDX-License-Identifier: MIT */
/*
 * MMIO of one and two bytes, at offsets inside the device's range: writes
 * at 0x10 and 0x12, reads at 0x20 and 0x22, whose values go out to port
 * 0x502 with the same size.
 */
	.code32
	.text
	.globl _start
_start:
	movb	$0x5a, 0xd0000010
	movw	$0x1234, 0xd0000012
	movw	$0x502, %dx
	movb	0xd0000020, %al
	outb	%al, %dx
	movw	0xd0000022, %ax
	outw	%ax, %dx
1:	hlt
	jmp	1b

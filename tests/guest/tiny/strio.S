/* SPDX-License-Identifier: MIT */
/*
 * String port I/O: rep outsb of four bytes to 0x502, then rep insw of three
 * words from 0x501 into RAM at 0x2000. KVM may hand such an instruction to
 * userspace as one exit with a count above one; every element must reach
 * the device (or memory) in order.
 */
	.code32
	.text
	.globl _start
_start:
	cld
	movw	$0x502, %dx
	movl	$src, %esi
	movl	$4, %ecx
	rep outsb

	movw	$0x501, %dx
	movl	$0x2000, %edi
	movl	$3, %ecx
	rep insw
1:	hlt
	jmp	1b

src:
	.byte	0xa1, 0xb2, 0xc3, 0xd4

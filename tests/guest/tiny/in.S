/* SPDX-License-Identifier: MIT */
/*
 * Port input of each size from 0x501; each value plus one goes back out to
 * 0x502 with the same size, so the test sees that the value its device
 * returned reached the guest's register intact (and nothing more).
 */
	.code32
	.text
	.globl _start
_start:
	movw	$0x501, %dx
	inb	%dx, %al
	incb	%al
	incw	%dx
	outb	%al, %dx

	decw	%dx
	inw	%dx, %ax
	incw	%ax
	incw	%dx
	outw	%ax, %dx

	decw	%dx
	inl	%dx, %eax
	incl	%eax
	incw	%dx
	outl	%eax, %dx
1:	hlt
	jmp	1b

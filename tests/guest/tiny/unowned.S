/* SPDX-License-Identifier: MIT */
/*
 * Reads nothing owns: a byte and a dword from port 0x1234 and a dword from
 * MMIO 0xe0000000. Each must read as all ones; each value goes out to port
 * 0x502 (same size) for the test to check.
 */
	.code32
	.text
	.globl _start
_start:
	movw	$0x1234, %dx
	inb	%dx, %al
	movw	$0x502, %dx
	outb	%al, %dx

	movw	$0x1234, %dx
	xorl	%eax, %eax
	inl	%dx, %eax
	movw	$0x502, %dx
	outl	%eax, %dx

	xorl	%eax, %eax
	movl	0xe0000000, %eax
	outl	%eax, %dx
1:	hlt
	jmp	1b

/* SPDX-License-Identifier: MIT */
/*
 * A 32-bit MMIO write and read outside RAM: the write must reach the test's
 * device at offset 0, the read at offset 4 must return what the device
 * gave, which goes out to port 0x502 for the test to check.
 */
	.code32
	.text
	.globl _start
_start:
	movl	$0xdeadbeef, 0xd0000000
	movl	0xd0000004, %eax
	movw	$0x502, %dx
	outl	%eax, %dx
1:	hlt
	jmp	1b

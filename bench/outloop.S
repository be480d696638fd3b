/* SPDX-License-Identifier: MIT */
/*
 * The exit-cost guest: ECX times `outb %al, $0x80`, then HLT. The host may
 * set ECX before the first run; zero means the default of 100000. The loop
 * body is the OUT and the LOOP alone because where kernel mode is emulated
 * (PVM) every guest instruction costs about a microsecond, which would
 * otherwise blur the cost of the exit being measured.
 *
 * Flat 32-bit protected mode without paging, loaded and entered at 0x1000
 * (like tests/guest/tiny/), with no in-kernel irqchip so that HLT exits.
 */
	.code32
	.text
	.globl _start
_start:
	testl	%ecx, %ecx
	jnz	1f
	movl	$100000, %ecx
1:	xorl	%eax, %eax
2:	outb	%al, $0x80
	loop	2b
3:	hlt
	jmp	3b

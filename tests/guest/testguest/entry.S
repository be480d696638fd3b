/* SPDX-License-Identifier: MIT */
/*
 * Entry from the VMM in 64-bit long mode, as for a Linux vmlinux: paging on
 * with the first 4 GiB identity-mapped, interrupts off, RSI = the physical
 * address of the boot_params (zero page). The stack is our own, in .bss.
 */
	.section .text.entry, "ax"
	.code64
	.globl _start
_start:
	cli
	cld
	leaq	testguest_stack_top(%rip), %rsp
	xorl	%ebp, %ebp
	movq	%rsi, %rdi
	call	testguest_main
	/* Not reached: testguest_main never returns; park the CPU if it does. */
	.globl testguest_halt_forever
testguest_halt_forever:
	cli
1:	hlt
	jmp	1b

/*
 * Triple fault on purpose: no exception can be delivered through an IDT
 * whose limit is zero, so the breakpoint raises #GP, that raises #DF, and
 * the #DF shuts the CPU down.
 */
	.globl testguest_triple_fault
testguest_triple_fault:
	cli
	lidt	zero_idtr(%rip)
	int3
	/* If int3 was skipped somehow, any other exception does it too. */
	ud2
	jmp	testguest_halt_forever

	.section .rodata
	.balign	16
zero_idtr:
	.word	0
	.quad	0

	.section .bss
	.balign	16
testguest_stack:
	.skip	16384
testguest_stack_top:

	.section .note.GNU-stack, "", @progbits

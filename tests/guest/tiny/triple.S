/* SPDX-License-Identifier: MIT */
/*
 * A triple fault: with a zero-limit IDT the breakpoint cannot be delivered
 * (#GP), nor can the #GP (#DF), nor the #DF: the CPU shuts down, which KVM
 * reports as KVM_EXIT_SHUTDOWN. Where the host cannot emulate int3 (PVM)
 * the VMM carries it out and injects the #BP. The OUT before it tells the
 * test the guest really ran up to here; the HLT after it must never be
 * reached.
 */
	.code32
	.text
	.globl _start
_start:
	lidt	idtr
	movw	$0x502, %dx
	movb	$0x3, %al
	outb	%al, %dx
	int	$3
	movb	$0xee, %al
	outb	%al, %dx
1:	hlt
	jmp	1b

	.balign	8
idtr:
	.word	0
	.long	0

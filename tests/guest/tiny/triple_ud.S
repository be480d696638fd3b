/* SPDX-License-Identifier: MIT */
/*
 * The triple fault of triple.S without the breakpoint: ud2 raises #UD, which
 * the zero-limit IDT turns into #GP, #DF and a shutdown. Hosts that emulate
 * guest kernel code (PVM) cannot emulate int3 and leave it to the VMM; ud2
 * they handle themselves, so this one tests KVM_EXIT_SHUTDOWN alone.
 */
	.code32
	.text
	.globl _start
_start:
	lidt	idtr
	movw	$0x502, %dx
	movb	$0x4, %al
	outb	%al, %dx
	ud2
	movb	$0xee, %al
	outb	%al, %dx
1:	hlt
	jmp	1b

	.balign	8
idtr:
	.word	0
	.long	0

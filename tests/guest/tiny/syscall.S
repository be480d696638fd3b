/* SPDX-License-Identifier: MIT */
/*
 * A system call the way every Linux process makes one: ring 3 executes
 * SYSCALL, the kernel's entry (LSTAR, on a supervisor-only page) runs in
 * ring 0 and returns with SYSRETQ. Entered in flat 32-bit protected mode
 * at 0x1000; switches to long mode itself (4 KiB pages over the first
 * 2 MiB, all user-accessible but the entry's page), loads an IDT whose
 * gates all lead to `fault` and a TSS for ring 0's stack, sets STAR,
 * LSTAR (by WRMSR, as a kernel does) and SFMASK, and drops to ring 3.
 * User code makes two system calls (RAX 0x5e1, then 0x5e2); the entry
 * writes RAX, then its own CS, then the return RIP the CPU left in RCX,
 * then RFLAGS to port 0x500, and after the second call halts (HLT is
 * privileged: it exits only from ring 0). Any exception writes 0xfa17
 * and halts.
 */
#define PML4	0x10000
#define PDPT	0x11000
#define PD	0x12000
#define PT	0x13000
#define IDT	0x14000
#define TSS	0x15000

	.code32
	.text
	.globl _start
_start:
	movl	$PML4, %edi
	xorl	%eax, %eax
	movl	$(6 * 1024), %ecx	/* tables, IDT and TSS: 6 pages */
	rep stosl
	movl	$(PDPT + 7), PML4	/* present, writable, user */
	movl	$(PD + 7), PDPT
	movl	$(PT + 7), PD
	movl	$PT, %edi		/* 512 pages of 4 KiB, identity */
	movl	$7, %eax
1:	movl	%eax, (%edi)
	addl	$0x1000, %eax
	addl	$8, %edi
	cmpl	$(PT + 4096), %edi
	jne	1b
	movl	$entry_syscall, %eax	/* the kernel entry: supervisor only */
	shrl	$12, %eax
	andl	$~4, PT(,%eax,8)
	/* IDT: 32 interrupt gates to `fault`, selector 0x10, DPL 0. */
	movl	$IDT, %edi
	movl	$fault, %eax
2:	movw	%ax, (%edi)
	movw	$0x10, 2(%edi)
	movw	$0x8e00, 4(%edi)
	movw	$0, 6(%edi)
	addl	$16, %edi
	cmpl	$(IDT + 32 * 16), %edi
	jne	2b
	movl	$0x9000, TSS + 4	/* RSP0 */
	movl	$PML4, %eax
	movl	%eax, %cr3
	movl	%cr4, %eax
	orl	$0x20, %eax		/* PAE */
	movl	%eax, %cr4
	movl	$0xc0000080, %ecx	/* EFER: LME, SCE */
	rdmsr
	orl	$0x101, %eax
	wrmsr
	lgdt	gdt_ptr
	lidt	idt_ptr			/* 32-bit form: the base's low half */
	movl	%cr0, %eax
	orl	$0x80010001, %eax	/* PG, WP, PE */
	movl	%eax, %cr0
	ljmp	$0x10, $long_mode

	.code64
long_mode:
	movw	$0x18, %ax
	movw	%ax, %ds
	movw	%ax, %es
	movw	%ax, %ss
	movl	$0x8000, %esp
	movw	$0x38, %ax
	ltr	%ax
	/* STAR: kernel CS 0x10 (SS 0x18); SYSRET to 0x23 + 16 = 0x33 (SS
	 * 0x2b), Linux's selectors. */
	movl	$0xc0000081, %ecx
	xorl	%eax, %eax
	movl	$0x00230010, %edx
	wrmsr
	movl	$0xc0000082, %ecx	/* LSTAR */
	movl	$entry_syscall, %eax
	xorl	%edx, %edx
	wrmsr
	movl	$0xc0000084, %ecx	/* SFMASK: IF, TF, DF, ... as Linux */
	movl	$0x47700, %eax
	xorl	%edx, %edx
	wrmsr
	movl	$user, %ecx
	movl	$0x202, %r11d		/* ring 3 with interrupts on */
	sysretq

user:
	movl	$0x6000, %esp
	movl	$0x5e1, %eax
	syscall
	movl	$0x5e2, %eax
	syscall
	ud2				/* not reached */

fault:
	movw	$0x500, %dx
	movl	$0xfa17, %eax
	outl	%eax, %dx
3:	hlt
	jmp	3b

	.p2align 3
gdt:
	.quad	0
	.quad	0x00cf9b000000ffff	/* 0x08: 32-bit code */
	.quad	0x00af9b000000ffff	/* 0x10: 64-bit code */
	.quad	0x00cf93000000ffff	/* 0x18: data */
	.quad	0x00cffb000000ffff	/* 0x20 (0x23): user 32-bit code */
	.quad	0x00cff3000000ffff	/* 0x28 (0x2b): user data */
	.quad	0x00affb000000ffff	/* 0x30 (0x33): user 64-bit code */
	.quad	0x0000890150000067	/* 0x38: 64-bit TSS at 0x15000 */
	.quad	0
gdt_end:
gdt_ptr:
	.word	gdt_end - gdt - 1
	.long	gdt
idt_ptr:
	.word	32 * 16 - 1
	.quad	IDT

	/* The kernel's entry on a page of its own. */
	.p2align 12
entry_syscall:
	movl	%eax, %ebx
	movw	$0x500, %dx
	outl	%eax, %dx
	movl	%cs, %eax
	outl	%eax, %dx
	movl	%ecx, %eax
	outl	%eax, %dx
	pushfq
	popq	%rax
	outl	%eax, %dx
	cmpl	$0x5e2, %ebx
	je	4f
	sysretq
4:	hlt
	jmp	4b

/* SPDX-License-Identifier: MIT */
/*
 * The counter-probe guest kvm_probe.c copies to gpa KVMG_KCODE: two 4 KiB pages of 64-bit code,
 * an interpreter of the operation list at PRB_OPS (validate/kvm_probe_guest.h). Assembled into
 * the host library as read-only data; never executed on the host.
 *
 * Flow (ring 0, entered at kvmp_image with RSP = KVMG_KSTACK_TOP and CR3 = the probe's root):
 *   1. warm up everything the harness itself touches while the probe runs, so that none of it
 *      costs a counter inside the measured window: a read of every harness page and of the
 *      first 2 MiB of probe RAM (its page tables), a store to the stacks and the parameter
 *      block, one round trip to ring 3 and back (descriptor tables, TSS);
 *   2. HLT with r15 = PRB_MARK_START (the host's first snapshot);
 *   3. run the operations; a ring-3 loop is entered by IRETQ and ends with INT3, whose handler
 *      resumes the interpreter at r13; a #PF from the loop on the probe's region ORs the fix
 *      bits into its PTE and retries (a guest kernel's demand fault);
 *   4. HLT with r15 = PRB_MARK_DONE (the second snapshot).
 * Any other exception HLTs with r15 = PRB_MARK_EXC | vector, r14 = error code, r13 = CR2,
 * r12 = RIP.
 *
 * Invariants: r12 (the next operation) and r13 (where INT3 resumes) survive ring 3, whose code
 * uses only rax, rcx, rdx, rsi and rdi; the kernel stack is empty whenever ring 3 runs.
 */
#include "validate/kvm_guest.h"
#include "validate/kvm_probe_guest.h"

	.section .rodata, "a"
	.code64

	.globl kvmp_image, kvmp_image_end, kvmp_stubs, kvmp_start, kvmp_done
	.hidden kvmp_image, kvmp_image_end, kvmp_stubs, kvmp_start, kvmp_done

	.balign 4096
kvmp_image:
	/* 1. warm up: reads, then the pages the harness writes */
	movq	$KVMG_GDT, %rax
1:	movq	(%rax), %rbx
	addq	$4096, %rax
	cmpq	$PRB_OPS + PRB_OPS_SIZE, %rax
	jb	1b
	movq	$0x40000000, %rax
	movq	$0x40200000, %rdx
1:	movq	(%rax), %rbx
	addq	$4096, %rax
	cmpq	%rdx, %rax
	jb	1b
	movq	$0, KVMG_PARAM + PRB_P_NFAULT
	movq	$0, KVMG_KSTACK_TOP - 8
	movq	$0, KVMG_USTACK_TOP - 8
	leaq	warm(%rip), %r13
	movl	$PRB_OP_READ, %eax
	xorl	%esi, %esi
	jmp	to_user
warm:
	/* 2. the first snapshot */
	movq	$PRB_MARK_START, %r15
kvmp_start:
	hlt
	/* 3. the operations */
	movq	$PRB_OPS, %r12
next:
	movq	(%r12), %rax
	movq	8(%r12), %rdi
	movq	16(%r12), %rsi
	movq	24(%r12), %rdx
	addq	$32, %r12
	cmpq	$PRB_OP_READ, %rax
	je	user
	cmpq	$PRB_OP_WRITE, %rax
	je	user
	cmpq	$PRB_OP_STORE, %rax
	jne	1f
	movq	%rsi, (%rdi)
	jmp	next
1:	cmpq	$PRB_OP_INVLPG, %rax
	jne	1f
	invlpg	(%rdi)
	jmp	next
1:	cmpq	$PRB_OP_CR3, %rax
	jne	1f
	movq	%rdi, %cr3
	jmp	next
1:	testq	%rax, %rax
	jnz	badop
	/* 4. the second snapshot */
	movq	$PRB_MARK_DONE, %r15
kvmp_done:
	hlt
	jmp	kvmp_done
badop:
	movq	$PRB_MARK_BADOP, %r15
1:	hlt
	jmp	1b

user:
	leaq	next(%rip), %r13
to_user:
	pushq	$KVMG_USER_DS
	pushq	$KVMG_USTACK_TOP
	pushq	$2
	pushq	$KVMG_USER_CS
	pushq	$KVMG_UCODE
	iretq

	/* One 16-byte stub per vector: INT3 and #PF have their handlers, the rest report. */
	.balign 16
kvmp_stubs:
	vec = 0
	.rept KVMG_IDT_VECTORS
	.balign KVMG_STUB_SIZE
	.if vec == 3
	jmp	int3_h
	.elseif vec == 14
	jmp	pf_h
	.elseif (vec == 8) || (vec >= 10 && vec <= 13) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
	pushq	$vec
	jmp	common
	.else
	pushq	$0
	pushq	$vec
	jmp	common
	.endif
	vec = vec + 1
	.endr

/* The ring-3 loop is over: drop its frame and resume the interpreter. */
int3_h:
	movq	$KVMG_KSTACK_TOP, %rsp
	jmp	*%r13

/* A fault on the probe's region: make its PTE as the probe asks and retry the access. */
pf_h:
	pushq	%rax
	pushq	%rdx
	movq	%cr2, %rax
	movabsq	$PRB_GVA, %rdx
	subq	%rdx, %rax
	jb	pf_bad
	cmpq	KVMG_PARAM + PRB_P_SPAN, %rax
	jae	pf_bad
	movq	KVMG_PARAM + PRB_P_FIX, %rdx
	testq	%rdx, %rdx
	jz	pf_bad
	shrq	$12, %rax
	shlq	$3, %rax
	addq	KVMG_PARAM + PRB_P_PTBASE, %rax
	orq	%rdx, (%rax)
	incq	KVMG_PARAM + PRB_P_NFAULT
	popq	%rdx
	popq	%rax
	addq	$8, %rsp
	iretq
pf_bad:
	popq	%rdx
	popq	%rax
	pushq	$14
common:
	popq	%r15
	orq	$PRB_MARK_EXC, %r15
	popq	%r14
	movq	%cr2, %r13
	movq	0(%rsp), %r12
1:	hlt
	jmp	1b

	/* Page 1: ring 3. rax = PRB_OP_READ or PRB_OP_WRITE, rdi = first address, rsi = count,
	 * rdx = stride. */
	.balign 4096
uloop:
	cmpq	$PRB_OP_WRITE, %rax
	je	2f
1:	testq	%rsi, %rsi
	jz	3f
	movb	(%rdi), %cl
	addq	%rdx, %rdi
	decq	%rsi
	jmp	1b
2:	testq	%rsi, %rsi
	jz	3f
	movb	$1, (%rdi)
	addq	%rdx, %rdi
	decq	%rsi
	jmp	2b
3:	int3
	jmp	3b

	.balign 4096
kvmp_image_end:

	.section .note.GNU-stack, "", @progbits

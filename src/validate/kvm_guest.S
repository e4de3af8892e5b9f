/* SPDX-License-Identifier: MIT */
/*
 * The guest image kvm.c copies to gpa KVMG_KCODE: two 4 KiB pages of 64-bit code that run one
 * page-walk scenario and report by HLT. Assembled into the host library as read-only data;
 * never executed on the host.
 *
 * Flow (ring 0, entered at kvmg_image with RSP = KVMG_KSTACK_TOP, everything read from the
 * parameter block at KVMG_PARAM):
 *   1. clear stale qwords a previous scenario's aliased walk may have left A/D bits in;
 *   2. put the RET (KVMG_RET_OPCODE) at the leaf frame, so a successful fetch comes back;
 *   3. write the four scenario entries (the guest writes them, not the host: with shadow
 *      paging KVM only notices page-table changes made by guest writes), reload CR3 and
 *      INVLPG the test address. The INVLPG is not redundant under KVM: MOV CR3 only queues
 *      KVM's TLB sync, and an emulator that runs on (PVM's batched ring-0 emulation) keeps
 *      using its cached gva->MMIO-gpa translation from the previous scenario; INVLPG drops
 *      that cache at once;
 *   4. WRPKRU if asked, then the access: at ring 0 directly, or IRETQ to ring-3 code that
 *      makes the same access and signals completion with INT3.
 * Any exception lands in a per-vector stub and then in `common`, which reports the vector,
 * error code, CR2 and the frame's RIP/CS in r15..r11 and HLTs.
 *
 * Invariants: page 0 (ring 0) is mapped U=0, page 1 (ring 3) U=1; the host finds the entry
 * points through the exported (hidden) labels, all inside the image; the access itself is
 * a 1-byte load, a 1-byte store of KVMG_RET_OPCODE (so the frame keeps its RET), or a call.
 */
#include "validate/kvm_guest.h"

	.section .rodata, "a"
	.code64

	.globl kvmg_image, kvmg_image_end, kvmg_kdone, kvmg_udone, kvmg_exc_hlt, kvmg_stubs
	.hidden kvmg_image, kvmg_image_end, kvmg_kdone, kvmg_udone, kvmg_exc_hlt, kvmg_stubs

	.balign 4096
kvmg_image:
	movq	$KVMG_PARAM, %rsi

	/* 1. stale qwords (KVMG_P_ZERO, 0 = none) */
	movq	KVMG_P_ZERO + 0(%rsi), %rax
	testq	%rax, %rax
	jz	1f
	movq	$0, (%rax)
1:	movq	KVMG_P_ZERO + 8(%rsi), %rax
	testq	%rax, %rax
	jz	1f
	movq	$0, (%rax)
1:	movq	KVMG_P_ZERO + 16(%rsi), %rax
	testq	%rax, %rax
	jz	1f
	movq	$0, (%rax)
1:	movq	KVMG_P_ZERO + 24(%rsi), %rax
	testq	%rax, %rax
	jz	1f
	movq	$0, (%rax)

	/* 2. RET at the leaf frame; a whole qword, so its imm16 and the rest read as zero. */
1:	movq	KVMG_P_FRAME(%rsi), %rax
	testq	%rax, %rax
	jz	1f
	movq	$KVMG_RET_OPCODE, (%rax)

	/* 3. the scenario entries, then TLB flushes (see the header for why both) */
1:	movq	KVMG_P_ENTRY + 0(%rsi), %rax
	movq	%rax, KVMG_PML4 + 8
	movq	KVMG_P_ENTRY + 8(%rsi), %rax
	movq	%rax, 0x10000
	movq	KVMG_P_ENTRY + 16(%rsi), %rax
	movq	%rax, 0x11000
	movq	KVMG_P_ENTRY + 24(%rsi), %rax
	movq	%rax, 0x12000
	movq	%cr3, %rax
	movq	%rax, %cr3
	movabsq	$KVMG_GVA, %rbx
	invlpg	(%rbx)

	/* 4. PKRU, then the access */
	cmpq	$0, KVMG_P_PKE(%rsi)
	je	1f
	xorl	%ecx, %ecx
	xorl	%edx, %edx
	movl	KVMG_P_PKRU(%rsi), %eax
	wrpkru
1:	movl	KVMG_P_ACCESS(%rsi), %edi
	movq	KVMG_P_RFLAGS(%rsi), %rdx
	cmpq	$3, KVMG_P_CPL(%rsi)
	je	to_user
	pushq	%rdx
	popfq
	call	kaccess
	movq	$KVMG_MARK_DONE, %r15
kvmg_kdone:
	hlt
	jmp	kvmg_kdone

to_user:
	pushq	$KVMG_USER_DS
	pushq	$KVMG_USTACK_TOP
	pushq	%rdx
	pushq	$KVMG_USER_CS
	pushq	$KVMG_UCODE
	iretq

/* edi = access kind, rbx = the test address. */
kaccess:
	cmpl	$1, %edi
	jb	2f
	je	3f
	call	*%rbx
	ret
2:	movb	(%rbx), %al
	ret
3:	movb	$KVMG_RET_OPCODE, (%rbx)
	ret

	/* One 16-byte stub per vector; vectors with a CPU error code skip the dummy push. */
	.balign 16
kvmg_stubs:
	vec = 0
	.rept KVMG_IDT_VECTORS
	.balign KVMG_STUB_SIZE
	.if (vec == 8) || (vec >= 10 && vec <= 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
	pushq	$vec
	.else
	pushq	$0
	pushq	$vec
	.endif
	jmp	common
	vec = vec + 1
	.endr

common:
	popq	%r15
	orq	$KVMG_MARK_EXC, %r15
	popq	%r14
	movq	%cr2, %r13
	movq	0(%rsp), %r12
	movq	8(%rsp), %r11
kvmg_exc_hlt:
	hlt
	jmp	kvmg_exc_hlt

	/* Page 1: ring 3. Same access as kaccess, on the user stack; INT3 reports completion. */
	.balign 4096
uentry:
	call	uaccess
	int3
kvmg_udone:
	jmp	kvmg_udone

uaccess:
	cmpl	$1, %edi
	jb	2f
	je	3f
	call	*%rbx
	ret
2:	movb	(%rbx), %al
	ret
3:	movb	$KVMG_RET_OPCODE, (%rbx)
	ret

	.balign 4096
kvmg_image_end:

	.section .note.GNU-stack, "", @progbits

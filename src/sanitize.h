/* SPDX-License-Identifier: MIT */
/*
 * sanitize.h: which sanitizer this build runs, however it was asked for. meson's b_sanitize
 * defines VMMU_SANITIZE for any of them; one turned on from CFLAGS is told by the compiler's own
 * macro (GCC) or __has_feature (clang): VMMU_TSAN under ThreadSanitizer, VMMU_ASAN under
 * AddressSanitizer, and either defines VMMU_SANITIZE too. UBSan alone has no macro: set
 * b_sanitize, or -DVMMU_SANITIZE.
 */
#ifndef VMMU_SANITIZE_H
#define VMMU_SANITIZE_H

#if defined(__SANITIZE_THREAD__)
#define VMMU_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define VMMU_TSAN 1
#endif
#endif

#if defined(__SANITIZE_ADDRESS__)
#define VMMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VMMU_ASAN 1
#endif
#endif

#if (defined(VMMU_ASAN) || defined(VMMU_TSAN)) && !defined(VMMU_SANITIZE)
#define VMMU_SANITIZE 1
#endif

#endif

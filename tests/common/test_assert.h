/* SPDX-License-Identifier: MIT */
/* For cmocka tests: TEST_ASSERT(e, fmt, ...) fails the test printing the expression, where it
 * stands and why (the KVM selftests' TEST_ASSERT). */
#ifndef VMMU_TESTS_TEST_ASSERT_H
#define VMMU_TESTS_TEST_ASSERT_H

#define TEST_ASSERT(e, ...)                                                                        \
	do {                                                                                       \
		if (!(e)) {                                                                        \
			print_error("%s:%d: %s failed: ", __FILE__, __LINE__, #e);                 \
			print_error(__VA_ARGS__);                                                  \
			print_error("\n");                                                         \
			fail();                                                                    \
		}                                                                                  \
	} while (0)

#endif

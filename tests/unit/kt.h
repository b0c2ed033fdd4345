/* Shared helpers for the cmocka unit tests (header-only: every helper is
 * static inline so each test program compiles warning-free with -Werror). */
#ifndef KINKO_UNIT_KT_H
#define KINKO_UNIT_KT_H

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kinko/crypto.h"
#include "kinko/format.h"
#include "kinko/util.h"

/* hex string (even length, no separators) -> bytes; returns the byte count */
static inline size_t kt_unhex(uint8_t *out, size_t max, const char *hex)
{
	size_t n = strlen(hex) / 2;

	assert_true(strlen(hex) % 2 == 0);
	assert_true(n <= max);
	for (size_t i = 0; i < n; i++) {
		unsigned v;

		assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
	return n;
}

/* group setup for every test program: the crypto library must be initialised */
static inline int kt_group_setup(void **state)
{
	(void)state;
	return kcrypto_init() == 0 ? 0 : -1;
}

/* deterministic filler: byte i of stream `seed` */
static inline void kt_fill(uint8_t *p, size_t n, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 0x9e3779b9u;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
}

/* the epoch key schedule every format test uses (epoch key = fill(seed)) */
static inline void kt_epoch_keys(struct kformat_epoch_keys *k, uint32_t epoch, uint32_t seed)
{
	uint8_t ek[KCRYPTO_KEYBYTES];

	kt_fill(ek, sizeof(ek), seed);
	assert_int_equal(kformat_epoch_keys_derive(k, epoch, ek), 0);
}

/* A test that iterates over many inputs fails with a message naming the input. */
#define kt_check(cond, ...)                       \
	do {                                      \
		if (!(cond)) {                    \
			print_error(__VA_ARGS__); \
			print_error("\n");        \
			fail_msg("%s", #cond);    \
		}                                 \
	} while (0)

#endif

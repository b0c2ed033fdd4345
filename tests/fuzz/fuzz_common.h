/* Shared by the fuzz harnesses, the corpus replay driver and the seed-corpus
 * generator (tests/vectors/gen_fuzz_corpus.c): fixed keys, so that the
 * committed valid seeds authenticate and the harnesses reach the code behind
 * every MAC, signature and AEAD check. */
#ifndef KINKO_FUZZ_COMMON_H
#define KINKO_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "kinko/format.h"
#include "kinko/policy.h"

/* libFuzzer entry point (every harness defines it) */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* 0 when data is a complete, authentic instance under the fixed keys below;
 * the replay driver requires it for seeds named valid-* and refuses it for
 * seeds named corrupt-* */
int fuzz_check(const uint8_t *data, size_t size);

#define FUZZ_EPOCH 7u
#define FUZZ_USER "alice"
#define FUZZ_ADMIN "admin1"
#define FUZZ_XATTR_BACKING "user.kk7.fuzz"

struct fuzz_keys {
	struct kformat_epoch_keys ek;    /* epoch FUZZ_EPOCH */
	uint8_t epoch_key[32];
	uint8_t dir_iv[16];
	uint8_t vault_id[16], comp_id[16];
	uint8_t root_pk[32], root_sk[64];   /* vault root key */
	uint8_t admin_pk[32], admin_sk[64]; /* FUZZ_ADMIN's signing key */
	uint8_t box_pk[32], box_sk[32];     /* FUZZ_USER's X25519 key */
	uint8_t kek[32];                    /* key-file wrapping key (the KDF is skipped) */
	struct kformat_geom gcm, xchacha;
};
extern struct fuzz_keys fz;

/* idempotent; aborts if the crypto library cannot start */
void fuzz_init(void);
/* deterministic bytes (stream `seed`) */
void fuzz_fill(uint8_t *p, size_t n, uint32_t seed);

/* an invariant of the code under test broke: report and crash, so the fuzzer
 * (or the replay test) stops on this input */
#define FUZZ_ASSERT(c)                                                                          \
	do {                                                                                    \
		if (!(c)) {                                                                     \
			fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #c); \
			abort();                                                                \
		}                                                                               \
	} while (0)

#endif

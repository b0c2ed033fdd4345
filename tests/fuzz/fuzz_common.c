// SPDX-License-Identifier: GPL-2.0-or-later
#include <string.h>

#include "fuzz_common.h"

struct fuzz_keys fz;
static int fz_ready;

void fuzz_fill(uint8_t *p, size_t n, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 0x9e3779b9u;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
}

void fuzz_init(void)
{
	uint8_t seed[32];

	if (fz_ready)
		return;
	FUZZ_ASSERT(kcrypto_init() == 0);
	fuzz_fill(fz.epoch_key, 32, 1);
	FUZZ_ASSERT(kformat_epoch_keys_derive(&fz.ek, FUZZ_EPOCH, fz.epoch_key) == 0);
	fuzz_fill(fz.dir_iv, 16, 2);
	fuzz_fill(fz.vault_id, 16, 3);
	fuzz_fill(fz.comp_id, 16, 4);
	fuzz_fill(seed, 32, 5);
	FUZZ_ASSERT(kcrypto_sign_seed_keypair(fz.root_pk, fz.root_sk, seed) == 0);
	fuzz_fill(seed, 32, 6);
	FUZZ_ASSERT(kcrypto_sign_seed_keypair(fz.admin_pk, fz.admin_sk, seed) == 0);
	fuzz_fill(seed, 32, 7);
	FUZZ_ASSERT(kcrypto_box_seed_keypair(fz.box_pk, fz.box_sk, seed) == 0);
	fuzz_fill(fz.kek, 32, 8);
	FUZZ_ASSERT(kformat_geom_init(&fz.gcm, KSUITE_AES256GCM) == 0);
	FUZZ_ASSERT(kformat_geom_init(&fz.xchacha, KSUITE_XCHACHA20POLY1305) == 0);
	fz_ready = 1;
}

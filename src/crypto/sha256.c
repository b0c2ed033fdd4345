// SPDX-License-Identifier: GPL-2.0-or-later
/* kinko crypto: streaming SHA-256 (libsodium). */
#include <sodium.h>

#include "kinko/crypto.h"

_Static_assert(sizeof(crypto_hash_sha256_state) <= sizeof(((struct kcrypto_sha256 *)0)->s),
	       "kcrypto_sha256 too small");

void kcrypto_sha256_init(struct kcrypto_sha256 *h)
{
	crypto_hash_sha256_init((crypto_hash_sha256_state *)h->s);
}

void kcrypto_sha256_update(struct kcrypto_sha256 *h, const void *d, size_t n)
{
	crypto_hash_sha256_update((crypto_hash_sha256_state *)h->s, d, n);
}

void kcrypto_sha256_final(struct kcrypto_sha256 *h, uint8_t out[32])
{
	crypto_hash_sha256_final((crypto_hash_sha256_state *)h->s, out);
	sodium_memzero(h->s, sizeof(h->s));
}

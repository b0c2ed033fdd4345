// SPDX-License-Identifier: GPL-2.0-or-later
/* kinko.vault: the 140-byte self-signed vault header. */
#include <string.h>

#include "fuzz_common.h"

int fuzz_check(const uint8_t *d, size_t n)
{
	struct kformat_vault v;

	fuzz_init();
	if (kformat_vault_parse(d, n, &v))
		return -1;
	return memcmp(v.root_pk, fz.root_pk, 32) == 0 ? 0 : -2;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct kformat_vault v;

	fuzz_init();
	if (kformat_vault_parse(d, n, &v) != 0)
		return 0;
	FUZZ_ASSERT(n == KFORMAT_VAULT_LEN);
	FUZZ_ASSERT(v.version == KFORMAT_VERSION && v.features == 0);
	FUZZ_ASSERT(kcrypto_suite_noncebytes(v.suite) != 0);
	if (memcmp(v.root_pk, fz.root_pk, 32) == 0) {
		uint8_t again[KFORMAT_VAULT_LEN];

		/* Ed25519 is deterministic: an accepted header re-serializes exactly */
		FUZZ_ASSERT(kformat_vault_serialize(&v, fz.root_sk, again) == 0);
		FUZZ_ASSERT(memcmp(again, d, KFORMAT_VAULT_LEN) == 0);
	}
	return 0;
}

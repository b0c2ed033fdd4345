// SPDX-License-Identifier: GPL-2.0-or-later
/* ledger/<N>.klr: bounded parse, signature by FUZZ_ADMIN, the media fold. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "kinko/ledger.h"

int fuzz_check(const uint8_t *d, size_t n)
{
	struct kledger_rec r;
	char why[160];
	int e;

	fuzz_init();
	if (kledger_rec_parse(d, n, &r, why, sizeof(why)))
		return -1;
	e = kledger_rec_verify(d, n, fz.admin_pk) ? -2 : 0;
	kledger_rec_clear(&r);
	return e;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct kledger_rec r;
	struct kledger_media t = { 0 };
	uint8_t *out = NULL;
	size_t outlen;
	char why[160];

	fuzz_init();
	if (kledger_rec_parse(d, n, &r, why, sizeof(why)) != 0)
		return 0;
	FUZZ_ASSERT(r.seq != 0 && kuser_id_valid(r.signer) && r.bodylen == strlen(r.body));
	FUZZ_ASSERT(kledger_body_check(r.body, r.bodylen, why, sizeof(why)) == 0);
	/* one encoding: re-serialising (the signature is deterministic) gives the
	 * input back when the input was signed by that key */
	if (kledger_rec_verify(d, n, fz.admin_pk) == 0) {
		FUZZ_ASSERT(kledger_rec_serialize(&r, fz.admin_sk, &out, &outlen) == 0);
		FUZZ_ASSERT(outlen == n && memcmp(out, d, n) == 0);
		free(out);
	}
	FUZZ_ASSERT(kledger_media_apply(&t, &r) == 0);
	FUZZ_ASSERT(t.n <= 1);
	kledger_media_free(&t);
	kledger_rec_clear(&r);
	return 0;
}

// SPDX-License-Identifier: GPL-2.0-or-later
/* grants/<comp>/<epoch>/<user>.grant: parse, unseal, check the commitment. */
#include <string.h>

#include "fuzz_common.h"

static int open_grant(const struct kformat_grant *g)
{
	uint8_t ek[32], cm[32];
	int r;

	if ((r = kcrypto_seal_open(ek, g->sealed, sizeof(g->sealed), fz.box_pk, fz.box_sk)) != 0)
		return r;
	FUZZ_ASSERT(kformat_epoch_commitment(cm, ek, g->vault_id, g->comp_id, g->epoch) == 0);
	return kcrypto_memeq(cm, g->commitment, 32) ? 0 : KERR_AUTH;
}

int fuzz_check(const uint8_t *d, size_t n)
{
	struct kformat_grant g;

	fuzz_init();
	if (kformat_grant_parse(d, n, &g))
		return -1;
	return open_grant(&g) ? -2 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct kformat_grant g;
	struct kbuf b;

	fuzz_init();
	if (kformat_grant_parse(d, n, &g) != 0)
		return 0;
	FUZZ_ASSERT(g.epoch != 0 && kuser_id_valid(g.user));
	/* a grant has one encoding: serialize gives the input back */
	kbuf_init_writer(&b);
	FUZZ_ASSERT(kformat_grant_serialize(&g, &b) == 0);
	FUZZ_ASSERT(b.len == n && memcmp(b.p, d, n) == 0);
	kbuf_free(&b);
	(void)open_grant(&g);
	return 0;
}

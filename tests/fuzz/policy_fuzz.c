// SPDX-License-Identifier: GPL-2.0-or-later
/* policy/policy.<serial>: the signed envelope, then its JSON body. Inputs that
 * do not start with the envelope magic are also tried as a bare body. */
#include <string.h>

#include "fuzz_common.h"

/* an accepted body survives kpolicy_to_json -> parse -> kpolicy_to_json unchanged */
static int body(const uint8_t *b, size_t n)
{
	struct kpolicy *p = NULL, *q = NULL;
	char *j1 = NULL, *j2 = NULL;
	size_t l1, l2;
	int r;

	if ((r = kpolicy_parse_body(b, n, &p, NULL)) != 0) {
		FUZZ_ASSERT(p == NULL);
		return r;
	}
	FUZZ_ASSERT(p != NULL);
	FUZZ_ASSERT(kpolicy_to_json(p, &j1, &l1) == 0);
	FUZZ_ASSERT(kpolicy_parse_body((const uint8_t *)j1, l1, &q, NULL) == 0);
	FUZZ_ASSERT(kpolicy_to_json(q, &j2, &l2) == 0);
	FUZZ_ASSERT(l1 == l2 && memcmp(j1, j2, l1) == 0);
	FUZZ_ASSERT(p->nusers == q->nusers && p->ncomps == q->ncomps && p->ngrants == q->ngrants);
	for (size_t i = 0; i < p->ngrants; i++) {
		FUZZ_ASSERT(kpolicy_user_find(p, p->grants[i].user) != NULL);
		FUZZ_ASSERT(kpolicy_comp_find(p, p->grants[i].comp) != NULL);
	}
	for (size_t i = 0; i < p->ncomps; i++) {
		FUZZ_ASSERT(p->comps[i].nepochs > 0);
		FUZZ_ASSERT(kpolicy_epoch_find(&p->comps[i], p->comps[i].current_epoch) != NULL);
	}
	{
		struct kpolicy_settings s;

		kpolicy_settings_get(p, &s);
	}
	free(j1);
	free(j2);
	kpolicy_free(p);
	kpolicy_free(q);
	return 0;
}

static int envelope(const uint8_t *d, size_t n, bool *sigs_ok)
{
	struct kformat_policy_env env;
	int r;

	*sigs_ok = false;
	if ((r = kformat_policy_parse(d, n, &env)) != 0)
		return r;
	FUZZ_ASSERT(env.body >= d && env.body + env.body_len <= d + n);
	FUZZ_ASSERT(env.signed_len <= env.root_len && env.root_len + 64 == n);
	FUZZ_ASSERT(env.serial != 0 && kuser_id_valid(env.signer));
	*sigs_ok = kformat_policy_verify_root(d, &env, fz.root_pk) == 0 &&
		   kformat_policy_verify_signer(d, &env, fz.admin_pk) == 0;
	if (*sigs_ok) {
		struct kbuf b;

		/* deterministic signatures: an authentic envelope re-serializes exactly */
		kbuf_init_writer(&b);
		FUZZ_ASSERT(kformat_policy_serialize(env.vault_id, env.serial, (const char *)env.body, env.body_len,
						     env.signer, fz.admin_sk, fz.root_sk, &b) == 0);
		FUZZ_ASSERT(b.len == n && memcmp(b.p, d, n) == 0);
		kbuf_free(&b);
	}
	return body(env.body, env.body_len);
}

static bool is_envelope(const uint8_t *d, size_t n)
{
	return n >= 8 && memcmp(d, "KINKOPOL", 8) == 0;
}

int fuzz_check(const uint8_t *d, size_t n)
{
	bool sigs = false;

	fuzz_init();
	if (is_envelope(d, n))
		return envelope(d, n, &sigs) == 0 && sigs ? 0 : -1;
	return body(d, n) ? -2 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	bool sigs;

	fuzz_init();
	(void)envelope(d, n, &sigs);
	if (!is_envelope(d, n))
		(void)body(d, n);
	return 0;
}

// SPDX-License-Identifier: GPL-2.0-or-later
/* keys/<id>.key: the user key file (parse, extensions, then the unwrap a
 * real unlock does after the KDF, with a fixed key-encryption key). */
#include <string.h>

#include "fuzz_common.h"

static int unwrap(const uint8_t *d, const struct kformat_keyfile *kf)
{
	uint8_t sec[KFORMAT_KEY_SECRET_LEN];

	return kcrypto_unwrap(fz.kek, kf->nonce, d, kf->ad_len, kf->wrapped, sizeof(kf->wrapped), sec);
}

int fuzz_check(const uint8_t *d, size_t n)
{
	struct kformat_keyfile kf;

	fuzz_init();
	if (kformat_keyfile_parse(d, n, &kf))
		return -1;
	return unwrap(d, &kf) ? -2 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct kformat_keyfile kf, kf2;
	struct kbuf b;

	fuzz_init();
	if (kformat_keyfile_parse(d, n, &kf) != 0)
		return 0;
	FUZZ_ASSERT(kf.ad_len <= n && n - kf.ad_len == 24 + 4 + sizeof(kf.wrapped));
	FUZZ_ASSERT(kuser_id_valid(kf.user));
	FUZZ_ASSERT(!kf.cert == !kf.factor);
	if (kf.cert) {
		FUZZ_ASSERT(kf.cert >= d && kf.cert + kf.certlen <= d + kf.ad_len);
		FUZZ_ASSERT(kf.factor >= d && kf.factor + kf.factorlen <= d + kf.ad_len);
	}
	(void)unwrap(d, &kf);
	/* what the writer makes of the parsed fields parses back to the same fields */
	kbuf_init_writer(&b);
	FUZZ_ASSERT(kformat_keyfile_serialize_ad(&kf, &b) == 0);
	FUZZ_ASSERT(kformat_keyfile_serialize_tail(&kf, &b) == 0);
	FUZZ_ASSERT(kformat_keyfile_parse(b.p, b.len, &kf2) == 0);
	FUZZ_ASSERT(memcmp(kf.vault_id, kf2.vault_id, 16) == 0 && memcmp(kf.root_pk, kf2.root_pk, 32) == 0);
	FUZZ_ASSERT(strcmp(kf.user, kf2.user) == 0);
	FUZZ_ASSERT(memcmp(kf.box_pk, kf2.box_pk, 32) == 0 && memcmp(kf.sign_pk, kf2.sign_pk, 32) == 0);
	FUZZ_ASSERT(kf.m_kib == kf2.m_kib && kf.t_cost == kf2.t_cost && kf.p_cost == kf2.p_cost);
	FUZZ_ASSERT(memcmp(kf.salt, kf2.salt, 16) == 0 && memcmp(kf.nonce, kf2.nonce, 24) == 0);
	FUZZ_ASSERT(memcmp(kf.wrapped, kf2.wrapped, sizeof(kf.wrapped)) == 0);
	FUZZ_ASSERT(kf.pw_changed == kf2.pw_changed && kf.enrolment == kf2.enrolment);
	FUZZ_ASSERT(kf.certlen == kf2.certlen && kf.factorlen == kf2.factorlen);
	if (kf.cert) {
		FUZZ_ASSERT(memcmp(kf.cert, kf2.cert, kf.certlen) == 0);
		FUZZ_ASSERT(memcmp(kf.factor, kf2.factor, kf.factorlen) == 0);
	}
	kbuf_free(&b);
	return 0;
}

// SPDX-License-Identifier: GPL-2.0-or-later
/* kinko.diriv: the 72-byte directory IV file (parse + MAC). */
#include <string.h>

#include "fuzz_common.h"

int fuzz_check(const uint8_t *d, size_t n)
{
	struct kformat_diriv v;

	fuzz_init();
	if (kformat_diriv_parse(d, n, &v) || kformat_diriv_verify(d, n, &fz.ek) || v.epoch != FUZZ_EPOCH)
		return -1;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct kformat_diriv v;
	int rp, rv;

	fuzz_init();
	rp = kformat_diriv_parse(d, n, &v);
	rv = kformat_diriv_verify(d, n, &fz.ek);
	if (n != KFORMAT_DIRIV_LEN)
		FUZZ_ASSERT(rp != 0 && rv != 0);
	if (rp == 0 && rv == 0) {
		uint8_t again[KFORMAT_DIRIV_LEN];

		FUZZ_ASSERT(kformat_diriv_serialize(&v, &fz.ek, again) == 0);
		FUZZ_ASSERT(memcmp(again, d, KFORMAT_DIRIV_LEN) == 0);
		/* names of this directory encrypt and decrypt under its IV */
		{
			char backing[256], out[256];
			bool is_long;
			size_t len;

			FUZZ_ASSERT(kformat_name_encrypt(&fz.ek, v.iv, "probe", 5, backing, &is_long, NULL) == 0);
			FUZZ_ASSERT(kformat_name_decrypt(&fz.ek, v.iv, backing, strlen(backing), out, &len) == 0);
			FUZZ_ASSERT(len == 5 && memcmp(out, "probe", 5) == 0);
		}
	}
	return 0;
}

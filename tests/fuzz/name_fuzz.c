// SPDX-License-Identifier: GPL-2.0-or-later
/* Encrypted file names: base64url -> AES-256-SIV -> padding -> name checks,
 * plus entry classification and the long-name hash of the same bytes. */
#include <string.h>

#include "fuzz_common.h"

int fuzz_check(const uint8_t *d, size_t n)
{
	char out[256];
	size_t len;

	fuzz_init();
	return kformat_name_decrypt(&fz.ek, fz.dir_iv, (const char *)d, n, out, &len) ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	char out[256], backing[256], full[KFORMAT_ENCNAME_MAX];
	size_t len = 0;
	bool is_long;

	fuzz_init();
	if (kformat_name_decrypt(&fz.ek, fz.dir_iv, (const char *)d, n, out, &len) == 0) {
		FUZZ_ASSERT(kformat_name_valid(out, len) && out[len] == 0);
		/* SIV is deterministic and base64url canonical: the name encrypts back
		 * to exactly the input, in the short or the long form */
		FUZZ_ASSERT(kformat_name_encrypt(&fz.ek, fz.dir_iv, out, len, backing, &is_long, full) == 0);
		if (n <= KFORMAT_BACKING_NAME_MAX) {
			FUZZ_ASSERT(!is_long && strlen(backing) == n && memcmp(backing, d, n) == 0);
			FUZZ_ASSERT(kformat_entry_classify(backing) == KFORMAT_ENTRY_NAME);
		} else {
			FUZZ_ASSERT(is_long && strlen(full) == n && memcmp(full, d, n) == 0);
			FUZZ_ASSERT(kformat_entry_classify(backing) == KFORMAT_ENTRY_LONG);
		}
	}
	if (n < 1024 && !memchr(d, 0, n)) {
		char s[1024], lb[256];
		enum kformat_entry_kind k;

		memcpy(s, d, n);
		s[n] = 0;
		k = kformat_entry_classify(s);
		FUZZ_ASSERT(k >= KFORMAT_ENTRY_NAME && k <= KFORMAT_ENTRY_FOREIGN);
		if (k == KFORMAT_ENTRY_NAME)
			FUZZ_ASSERT(n > 0 && strchr(s, '.') == NULL);
		FUZZ_ASSERT(kformat_longname_backing(lb, s, n) == 0);
		FUZZ_ASSERT(kformat_entry_classify(lb) == KFORMAT_ENTRY_LONG);
	}
	return 0;
}

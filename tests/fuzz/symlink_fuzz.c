// SPDX-License-Identifier: GPL-2.0-or-later
/* Encrypted symlink targets: base64url(epoch || nonce || ct || tag), tried
 * with both cipher suites. */
#include <string.h>

#include "fuzz_common.h"

#define MAXIN (KFORMAT_SYMLINK_ENC_MAX + 64)

static int try_decrypt(const char *s)
{
	static char out[4096];
	size_t len = 0;
	int ok = 0;

	if (kformat_symlink_decrypt(&fz.gcm, &fz.ek, s, out, sizeof(out), &len) == 0) {
		FUZZ_ASSERT(len > 0 && len < sizeof(out) && out[len] == 0 && memchr(out, 0, len) == NULL);
		ok = 1;
	}
	if (kformat_symlink_decrypt(&fz.xchacha, &fz.ek, s, out, sizeof(out), &len) == 0) {
		FUZZ_ASSERT(len > 0 && len < sizeof(out) && out[len] == 0 && memchr(out, 0, len) == NULL);
		ok = 1;
	}
	/* a tiny output buffer is refused, never overrun */
	{
		char small[4];

		if (kformat_symlink_decrypt(&fz.gcm, &fz.ek, s, small, sizeof(small), &len) == 0)
			FUZZ_ASSERT(len < sizeof(small));
	}
	return ok;
}

static char *cstr(const uint8_t *d, size_t n)
{
	char *s;

	if (n > MAXIN)
		n = MAXIN;
	s = malloc(n + 1);
	FUZZ_ASSERT(s != NULL);
	memcpy(s, d, n);
	s[n] = 0;
	return s;
}

int fuzz_check(const uint8_t *d, size_t n)
{
	char *s;
	int ok;

	fuzz_init();
	s = cstr(d, n);
	ok = try_decrypt(s);
	free(s);
	return ok ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	char *s;
	uint32_t ep;

	fuzz_init();
	s = cstr(d, n);
	if (kformat_symlink_epoch(s, &ep) == 0)
		FUZZ_ASSERT(strlen(s) >= 8);
	(void)try_decrypt(s);
	free(s);
	return 0;
}

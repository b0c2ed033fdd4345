// SPDX-License-Identifier: GPL-2.0-or-later
/* Extended attributes: inputs beginning "user.kk" are backing attribute names
 * (epoch parse + SIV name decrypt); anything else is a value sealed under the
 * backing name FUZZ_XATTR_BACKING, tried with both suites. */
#include <string.h>

#include "fuzz_common.h"

static bool is_name(const uint8_t *d, size_t n)
{
	return n >= 7 && memcmp(d, "user.kk", 7) == 0;
}

static int name(const uint8_t *d, size_t n)
{
	char s[512], out[256], again[300];
	uint32_t ep;
	int r;

	if (n >= sizeof(s) || memchr(d, 0, n))
		return -1;
	memcpy(s, d, n);
	s[n] = 0;
	if (kformat_xattr_name_epoch(s, &ep) == 0)
		FUZZ_ASSERT(strncmp(s, KFORMAT_XATTR_PREFIX, strlen(KFORMAT_XATTR_PREFIX)) == 0);
	if ((r = kformat_xattr_name_decrypt(&fz.ek, s, out, sizeof(out))) != 0)
		return r;
	FUZZ_ASSERT(strlen(out) < sizeof(out));
	/* the canonical encoding of the decrypted name, under this epoch */
	if (kformat_xattr_name_epoch(s, &ep) == 0 && ep == FUZZ_EPOCH && strncmp(s, "user.kk7.", 9) == 0 &&
	    kformat_xattr_name_encrypt(&fz.ek, out, again, sizeof(again)) == 0)
		FUZZ_ASSERT(strcmp(again, s) == 0);
	return 0;
}

static int value(const uint8_t *d, size_t n)
{
	uint8_t *out = malloc(n + 1);
	int ok = 0;

	FUZZ_ASSERT(out != NULL);
	if (kformat_xattr_value_decrypt(&fz.gcm, &fz.ek, FUZZ_XATTR_BACKING, d, n, out) == 0)
		ok = 1;
	if (kformat_xattr_value_decrypt(&fz.xchacha, &fz.ek, FUZZ_XATTR_BACKING, d, n, out) == 0)
		ok = 1;
	free(out);
	return ok ? 0 : -1;
}

int fuzz_check(const uint8_t *d, size_t n)
{
	fuzz_init();
	return is_name(d, n) ? name(d, n) : value(d, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	fuzz_init();
	if (is_name(d, n))
		(void)name(d, n);
	else
		(void)value(d, n);
	return 0;
}

// SPDX-License-Identifier: GPL-2.0-or-later
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kinko/util.h"

const char *kinko_strerror(int r)
{
	switch (r) {
	case 0: return "success";
	case KERR_FORMAT: return "malformed or corrupt data";
	case KERR_VERSION: return "format version or feature not supported by this kinko (newer vault?)";
	case KERR_PASSWORD: return "wrong password";
	case KERR_AUTH: return "authentication failed (tampered or corrupt)";
	case KERR_KDFPARAM: return "key derivation parameters out of the accepted range";
	case KERR_MISMATCH: return "does not belong to this vault or user";
	case KERR_NOUSER: return "no such user";
	case KERR_NOGRANT: return "user holds no compartment grant";
	case KERR_CRYPTO: return "cryptographic library failure";
	case KERR_USAGE: return "invalid argument";
	case KERR_EXISTS: return "already exists";
	case KERR_FACTOR: return "second factor missing or wrong";
	case KERR_EXPIRED: return "password expired";
	case KERR_ROLLBACK: return "older policy than this workstation has already seen (replayed)";
	case KERR_POLICY: return "refused by the vault policy";
	default:
		if (r < 0 && r > -KERR_BASE)
			return strerror(-r);
		return "unknown error";
	}
}

void kerr_set(struct kerrinfo *ei, const char *file, const char *fmt, ...)
{
	va_list ap;

	if (!ei)
		return;
	snprintf(ei->file, sizeof(ei->file), "%s", file ? file : "");
	ei->detail[0] = 0;
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(ei->detail, sizeof(ei->detail), fmt, ap);
		va_end(ap);
	}
}

// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kinko/util.h"
#include "kinko_config.h"

int64_t ktime_now(void)
{
#if KINKO_TEST_BUILD
	/* Test builds only (meson -Dtest_hooks=true): a fixed clock for expiry tests.
	 * Release builds do not contain this code. */
	const char *s = getenv("KINKO_TEST_NOW");

	if (s && *s) {
		char *end;
		long long v = strtoll(s, &end, 10);

		if (*end == 0)
			return v;
	}
#endif
	return (int64_t)time(NULL);
}

void ktime_iso(char *out, size_t n, int64_t t)
{
	struct tm tm;
	time_t tt = (time_t)t;

	gmtime_r(&tt, &tm);
	strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int ktime_parse(const char *s, int64_t *t)
{
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (!end || *end) {
		memset(&tm, 0, sizeof(tm));
		end = strptime(s, "%Y-%m-%d", &tm);
		if (!end || *end)
			return -EINVAL;
	}
	*t = (int64_t)timegm(&tm);
	return 0;
}

// SPDX-License-Identifier: GPL-2.0-or-later
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "kinko/util.h"

static bool use_syslog;
static int max_level = KLOG_NOTICE;

void klog_init(const char *ident, bool to_syslog, int level)
{
	use_syslog = to_syslog;
	max_level = level;
	if (to_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void klog_at(int level, const char *file, const char *func, int line, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (level > max_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (use_syslog) {
		syslog(level, "%s", msg);
		return;
	}
	if (max_level >= KLOG_DEBUG)
		fprintf(stderr, "kinko[%s:%d %s]: %s\n", file, line, func, msg);
	else
		fprintf(stderr, "kinko: %s\n", msg);
}

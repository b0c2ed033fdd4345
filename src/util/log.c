// SPDX-License-Identifier: GPL-2.0-or-later
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

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

void krun_alert_hook(const char *cmd, const char *text)
{
	int p[2];
	pid_t pid;

	if (!cmd || !cmd[0] || pipe2(p, O_CLOEXEC) < 0)
		return;
	pid = fork();
	if (pid == 0) {
		/* a grandchild runs the hook so the caller never waits on it */
		if (fork() == 0) {
			dup2(p[0], 0);
			setsid();
			execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
			_exit(127);
		}
		_exit(0);
	}
	close(p[0]);
	if (pid > 0) {
		if (kwrite_all(p[1], text, strlen(text)) != 0)
			log_warn("alert_command: cannot pass the alert");
		waitpid(pid, NULL, 0);
	}
	close(p[1]);
}

/* kinko guard: the root removable-media guard service (kinko-guard(1)). */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "cli.h"
#include "kinko/guard.h"

struct guard_run {
	int ready_fd;
};

/* the plaintext path of a file of a kinko mount, as the vault's audit names it:
 * COMPARTMENT/dir/file */
static const char *vault_relative(const char *mountpoint, const char *held)
{
	size_t l = strlen(mountpoint);

	if (strncmp(held, mountpoint, l) == 0 && held[l] == '/')
		return held + l + 1;
	return held;
}

/* A refusal also goes to the vault's audit log, through the mount's control
 * socket (as root; the daemon accepts op guard-denied from root only). */
static void on_refusal(void *arg, const struct kguard_refusal *r)
{
	struct kerrinfo ei = { "", "" };
	json_t *req;
	char *text = NULL, *resp = NULL;
	int rc;

	(void)arg;
	if (!r->mountpoint)
		return; /* raw ciphertext: no mount to tell; syslog has it */
	req = json_pack("{s:s,s:i,s:i,s:s,s:s,s:s,s:i,s:b}", "op", "guard-denied", "pid", (int)r->pid,
			"uid", (int)r->uid, "comm", r->comm, "path",
			r->ciphertext && r->vault ? vault_relative(r->vault, r->held)
						  : vault_relative(r->mountpoint, r->held),
			"dest", r->dest, "holder", (int)r->holder, "ciphertext", r->ciphertext);
	if (req && (text = json_dumps(req, JSON_COMPACT))) {
		rc = kdaemon_request(r->mountpoint, text, NULL, &resp, &ei);
		if (rc != 0)
			syslog(LOG_WARNING, "refusal not recorded in the audit log of %s: %s", r->mountpoint,
			       ei.detail[0] ? ei.detail : kinko_strerror(rc));
	}
	free(text);
	free(resp);
	json_decref(req);
}

static void on_ready(void *arg)
{
	struct guard_run *g = arg;
	char c = 0;

	if (g->ready_fd >= 0) {
		if (write(g->ready_fd, &c, 1) != 1)
			syslog(LOG_WARNING, "could not tell the parent");
		close(g->ready_fd);
		g->ready_fd = -1;
	}
}

int cmd_guard(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "config", required_argument, 0, 'c' },
		{ "foreground", no_argument, 0, 'f' },
		{ 0, 0, 0, 0 },
	};
	const char *config = NULL;
	struct guard_run run = { -1 };
	struct kguard_service_opts so = { .on_refusal = on_refusal, .ready = on_ready, .arg = &run };
	struct kerrinfo ei = { "", "" };
	struct kguard *g = NULL;
	int c, r, pfd[2];

	optind = 1;
	while ((c = getopt_long(argc, argv, "f", lo, NULL)) != -1) {
		switch (c) {
		case 'c': config = optarg; break;
		case 'f': so.foreground = true; break;
		default: cli_usage_error("guard", "bad option"); return KEXIT_USAGE;
		}
	}
	if (optind != argc) {
		cli_usage_error("guard", "no arguments expected");
		return KEXIT_USAGE;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "kinko guard: must run as root (fanotify permission events)\n");
		return KEXIT_DENIED;
	}
	if ((r = kguard_new(config, &g, &ei)) != 0)
		return cli_fail(r, &ei, config ? config : KGUARD_CONFIG_DEFAULT);
	openlog("kinko-guard", LOG_PID | LOG_NDELAY, LOG_AUTHPRIV);
	if (!so.foreground) {
		pid_t pid;

		if (pipe(pfd) != 0 || (pid = fork()) < 0) {
			perror("kinko guard");
			kguard_free(g);
			return KEXIT_ERROR;
		}
		if (pid > 0) {
			char b;

			close(pfd[1]);
			kguard_free(g);
			/* the parent returns once the guard watches (or failed) */
			return read(pfd[0], &b, 1) == 1 ? KEXIT_OK : KEXIT_ERROR;
		}
		close(pfd[0]);
		run.ready_fd = pfd[1];
		setsid();
		if (chdir("/") != 0)
			syslog(LOG_WARNING, "chdir /: %s", strerror(errno));
	}
	r = kguard_service_run(g, &so, &ei);
	kguard_free(g);
	if (r != 0)
		return cli_fail(r, &ei, "kinko guard");
	return KEXIT_OK;
}

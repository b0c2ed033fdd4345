/* kinko daemon: mount lifecycle of one vault (fuse session, hardening, daemonizing). */
#ifndef KINKO_DAEMON_H
#define KINKO_DAEMON_H

#include "kinko/audit.h"
#include "kinko/fs.h"

struct kdaemon_opts {
	const char *mountpoint;
	bool foreground;
	bool read_only;
	bool debug;
	unsigned max_threads;
	bool no_audit;            /* test builds only: measure the audit's cost */
	struct kfs_options fs;
};

/* Process hardening for anything that holds keys: no core dumps, no ptrace
 * attach by the same user, fds 0-2 open, umask explicit. */
void kdaemon_harden(void);
/* Mounts and serves until unmounted or signalled. In background mode the calling
 * process returns only in the child; the parent exits 0 once the mount is up.
 * Takes ownership of v. Returns 0 or a negative error (ei names the reason). */
int kdaemon_run(struct kvault *v, const struct kdaemon_opts *o, struct kerrinfo *ei);

/* ---- control socket (control.c) ---- */
struct kctl;
/* $KINKO_RUN_DIR, /run/kinko (root), /run/user/UID/kinko or /tmp/kinko-UID,
 * + sha256(realpath(mountpoint)).sock */
int kdaemon_socket_path(const char *mountpoint, char *out, size_t n, bool create);
int kctl_start(struct kfs *fs, struct kvault *v, const char *mountpoint, struct kctl **out,
	       struct kerrinfo *ei);
void kctl_stop(struct kctl *c);
/* client: one JSON request line to the mount's daemon, then the secrets (a
 * NULL-terminated list, or NULL), one per line; *resp malloc'd JSON */
int kdaemon_request(const char *mountpoint, const char *req, const char *const *secrets,
		    char **resp, struct kerrinfo *ei);

#endif

/* kinko fs: the removable-media guard at open (kinko-guard(1), first layer).
 *
 * A process that holds a file open for writing on removable media (or feeds,
 * through pipes or socket pairs, one that does) may not open a vault file.
 * Checked at open, create and opendir only: reads served from the page cache
 * never reach the daemon, and reads of an open file stay free of /proc work.
 * Decisions are cached per pid for KFS_GUARD_TTL_MS. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs_i.h"
#include "kinko/guard.h"

#define KFS_GUARD_TTL_MS 1000

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* 1 refused (why filled), 0 allowed */
static int verdict(struct kfs *fs, pid_t pid, char *why, size_t n)
{
	int64_t t = now_ms();
	size_t slot = (size_t)pid % KFS_GUARD_CACHE;
	int r;

	pthread_mutex_lock(&fs->guard_lock);
	if (fs->guard_cache[slot].pid == pid && t - fs->guard_cache[slot].at < KFS_GUARD_TTL_MS) {
		r = fs->guard_cache[slot].refused;
		snprintf(why, n, "%s", fs->guard_cache[slot].why);
		pthread_mutex_unlock(&fs->guard_lock);
		return r;
	}
	pthread_mutex_unlock(&fs->guard_lock);

	r = kguard_writes_removable(fs->opt.guard, pid, why, n);
	if (r == -ENOENT || r == -ESRCH) {
		r = 0; /* gone already */
	} else if (r < 0) {
		/* a process we cannot inspect gets nothing (fail closed) */
		snprintf(why, n, "pid %d cannot be inspected: %s", (int)pid, strerror(-r));
		r = 1;
	}
	pthread_mutex_lock(&fs->guard_lock);
	fs->guard_cache[slot].pid = pid;
	fs->guard_cache[slot].at = t;
	fs->guard_cache[slot].refused = r;
	snprintf(fs->guard_cache[slot].why, sizeof(fs->guard_cache[slot].why), "%s", why);
	pthread_mutex_unlock(&fs->guard_lock);
	return r;
}

bool kfs_guard_refuse(struct kfs *fs, fuse_req_t req, const char *action, struct kinode *in,
		      const char *name)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	char why[200] = "", detail[400];
	struct kfs_ev e = { .action = action, .in = in, .name = name, .err = -EACCES,
			    .reason = "removable-media" };
	json_t *j;
	char *d = NULL;

	if (!fs->opt.guard || !ctx || ctx->pid <= 0)
		return false;
	if (verdict(fs, ctx->pid, why, sizeof(why)) == 0)
		return false;
	log_notice("removable-media guard: refused %s to pid %d (%s)", action, (int)ctx->pid, why);
	if ((j = json_pack("{s:s}", "guard", why)))
		d = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	snprintf(detail, sizeof(detail), "%s", d ? d : "{}");
	free(d);
	e.detail = detail;
	kfs_audit(fs, req, &e);
	return true;
}

void kfs_guard_report(struct kfs *fs, const struct kfs_guard_report *g)
{
	struct kaudit_rec r = { 0 };
	json_t *j;
	char *d = NULL;

	log_notice("removable-media guard service: refused pid %d writing %s while holding %s",
		   (int)g->pid, g->dest, g->path);
	if (!fs->audit)
		return;
	if ((j = json_pack("{s:s,s:s,s:b}", "dest", g->dest, "guard", "kinko guard", "ciphertext",
			   g->ciphertext)))
		d = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	r.action = "removable-write";
	r.path = g->path;
	r.detail = d;
	r.err = -EACCES;
	r.reason = "removable-media";
	r.uid = g->uid;
	r.pid = g->pid;
	r.comm = g->comm ? g->comm : "";
	kaudit_log(fs->audit, &r);
	free(d);
}

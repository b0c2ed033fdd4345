// SPDX-License-Identifier: GPL-2.0-or-later
/* Mount lifecycle: fuse session, hardening, background, clean unmount on
 * SIGINT/SIGTERM/SIGHUP (libfuse's handlers end the loop), keys wiped on exit. */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "kinko/daemon.h"
#include "kinko/guard.h"
#include "kinko/lifecycle.h"

void kdaemon_harden(void)
{
	struct rlimit rl = { 0, 0 };
	int fd;

	/* fds 0, 1, 2 must be open before anything opens a vault file */
	while ((fd = open("/dev/null", O_RDWR)) >= 0 && fd <= 2)
		;
	if (fd > 2)
		close(fd);
	/* memory contains unencrypted keys: no core dumps, no ptrace by this user */
	setrlimit(RLIMIT_CORE, &rl);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int wait_child(int rfd)
{
	char c = 1;
	ssize_t n;

	do
		n = read(rfd, &c, 1);
	while (n < 0 && errno == EINTR);
	return n == 1 && c == 0 ? 0 : 8; /* kinko(1): exit code 8, mount failed */
}

int kdaemon_run(struct kvault *v, const struct kdaemon_opts *o, struct kerrinfo *ei)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se = NULL;
	struct fuse_loop_config *cfg = NULL;
	struct kfs *fs = NULL;
	struct kaudit *audit = NULL;
	struct kctl *ctl = NULL;
	char opts[4400];
	int r = -EIO, pfd[2] = { -1, -1 };
	bool mounted = false, handlers = false;
	char mnt[PATH_MAX];

	/* the daemon leaves the working directory: keep the absolute path */
	if (!realpath(o->mountpoint, mnt))
		snprintf(mnt, sizeof(mnt), "%s", o->mountpoint);
	umask(0); /* the kernel applied the caller's umask already */
	/* a comma or backslash in the vault path would split or escape the options */
	/* Other users (allow_other) meet the kernel's permission checks. A mount
	 * only its owner can enter leaves them to the backing filesystem, which
	 * sees the same user (the daemon runs as the owner): the kernel then
	 * needs no directory attribute refresh after every create and unlink. */
	snprintf(opts, sizeof(opts), "%sfsname=kinko:%s,subtype=kinko%s%s",
		 kfs_kernel_checks(&o->fs) ? "default_permissions," : "",
		 strpbrk(v->path, ",\\") ? "vault" : v->path, o->fs.allow_other ? ",allow_other" : "",
		 o->read_only ? ",ro" : "");
	if (fuse_opt_add_arg(&args, "kinko") || fuse_opt_add_arg(&args, "-o") ||
	    fuse_opt_add_arg(&args, opts) || (o->debug && fuse_opt_add_arg(&args, "-d"))) {
		r = -ENOMEM;
		goto out;
	}
	if (!(fs = kfs_new(v, &o->fs))) {
		r = -ENOMEM;
		goto out;
	}
	se = fuse_session_new(&args, kfs_ops(), sizeof(*kfs_ops()), fs);
	if (!se) {
		kerr_set(ei, o->mountpoint, "cannot start the FUSE session");
		goto out;
	}
	if (fuse_set_signal_handlers(se) != 0)
		goto out;
	handlers = true;
	if (fuse_session_mount(se, mnt) != 0) {
		kerr_set(ei, o->mountpoint, "mount failed (is it an existing, empty directory you own, and is /dev/fuse usable?)");
		r = -EPERM;
		goto out;
	}
	mounted = true;
	/* before the first request is read: the INIT exchange goes through it */
	if (kfs_raw_channel(fs, se) != 0)
		log_warn("raw FUSE channel unavailable: every write costs an extra xattr request");
	if (!o->foreground) {
		pid_t pid;

		if (pipe(pfd) < 0) {
			r = -errno;
			goto out;
		}
		pid = fork();
		if (pid < 0) {
			r = -errno;
			goto out;
		}
		if (pid > 0) {
			/* parent: the mount is up; leave it to the child */
			close(pfd[1]);
			_exit(wait_child(pfd[0]));
		}
		close(pfd[0]);
		setsid();
		if (chdir("/") < 0)
			log_warn("chdir /: %s", strerror(errno));
		kvault_relock(v); /* memory locks are not inherited across fork */
		kvault_lock_forked(v); /* the holder file names this process */
	}
	/* threads start here, after the fork: the audit writer, the timer, the socket */
	if (!o->no_audit && (r = kaudit_open(v->vfd, v->policy, v->user->id, "mount", &audit, ei)) != 0)
		goto out;
	if ((r = kfs_start(fs, se, audit, mnt)) != 0 || (r = kctl_start(fs, v, mnt, &ctl, ei)) != 0)
		goto out;
	{
		struct kaudit_rec rec = { .action = "mount", .uid = (uint32_t)getuid(), .pid = getpid(),
					  .comm = "kinko" };
		json_t *d = json_pack("{s:s,s:s,s:b}", "mountpoint", mnt, "vault", v->path,
				      "read_only", o->read_only);
		char *txt = d ? json_dumps(d, JSON_COMPACT) : NULL;

		rec.detail = txt;
		kaudit_log(audit, &rec);
		free(txt);
		json_decref(d);
	}
	if (!o->foreground) {
		klog_init("kinko", true, o->debug ? KLOG_DEBUG : KLOG_NOTICE);
		{
			char ok = 0;
			int nfd = open("/dev/null", O_RDWR);

			if (write(pfd[1], &ok, 1) != 1)
				log_warn("could not signal the parent");
			close(pfd[1]);
			pfd[1] = -1;
			if (nfd >= 0) {
				dup2(nfd, 0);
				dup2(nfd, 1);
				dup2(nfd, 2);
				if (nfd > 2)
					close(nfd);
			}
		}
	}
	log_notice("mounted %s at %s for user %s", v->path, o->mountpoint, v->user->id);
	cfg = fuse_loop_cfg_create();
	if (!cfg) {
		r = -ENOMEM;
		goto out;
	}
	fuse_loop_cfg_set_max_threads(cfg, o->max_threads ? o->max_threads : 16);
	/* keep idle workers: creating a thread (and its 1 MiB buffer) per request is slow */
	fuse_loop_cfg_set_idle_threads(cfg, 10);
	fuse_loop_cfg_set_clone_fd(cfg, 0);
	r = fuse_session_loop_mt(se, cfg);
	r = r < 0 ? r : 0;
	/* the io_uring workers serve requests as long as they run: they stop
	 * with the /dev/fuse loop, before anything they use is torn down */
	kfs_uring_free(fs);
	log_notice("unmounting %s", o->mountpoint);
	kfs_release_leftovers(fs);
	{
		struct kaudit_rec rec = { .action = "unmount", .uid = (uint32_t)getuid(),
					  .pid = getpid(), .comm = "kinko" };

		kaudit_log(audit, &rec);
	}
out:
	kctl_stop(ctl);
	kfs_stop(fs);
	if (cfg)
		fuse_loop_cfg_destroy(cfg);
	if (mounted)
		fuse_session_unmount(se);
	if (handlers)
		fuse_remove_signal_handlers(se);
	if (se)
		fuse_session_destroy(se);
	if (fs)
		kfs_free(fs); /* frees the guard configuration with it */
	else
		kguard_free(o->fs.guard);
	if (kaudit_close(audit) != 0)
		log_err("the audit log could not be completed");
	kcrypto_thread_scrub();
	kvault_close(v); /* wipes every key */
	fuse_opt_free_args(&args);
	if (pfd[1] >= 0)
		close(pfd[1]);
	return r;
}

/* kinko fs: the FUSE low-level filesystem over a vault's encrypted tree. */
#ifndef KINKO_FS_H
#define KINKO_FS_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include "kinko/vault.h"

struct kfs;

struct kfs_options {
	double attr_timeout;   /* seconds the kernel may cache attributes */
	double entry_timeout;
	bool writeback_cache;  /* let the kernel merge small writes (-o writeback_cache) */
	bool allow_other;      /* other users may enter (kernel permission checks apply) */
	/* the kernel checks permissions against the attributes (always with
	 * allow_other); without it the mount owner is the only caller and the
	 * daemon, running as that owner, lets the backing filesystem check */
	bool default_permissions;
	bool debug;
	bool no_io_uring;      /* -o no_io_uring: /dev/fuse even where the kernel offers io_uring */
	struct kguard *guard;  /* removable-media guard (kinko-guard(1)); owned by the fs */
};

struct kaudit;
struct kguard;

/* whether the kernel checks permissions (default_permissions): always with allow_other */
static inline bool kfs_kernel_checks(const struct kfs_options *o)
{
	return o->allow_other || o->default_permissions;
}

struct kfs *kfs_new(struct kvault *v, const struct kfs_options *o);
void kfs_free(struct kfs *fs);
const struct fuse_lowlevel_ops *kfs_ops(void);

/* read and write /dev/fuse through kinko's hooks (after fuse_session_mount):
 * negotiates FUSE_HANDLE_KILLPRIV_V2 with the kernel (see session.c) */
int kfs_raw_channel(struct kfs *fs, struct fuse_session *se);
/* when the session loop has ended, before anything the requests use is torn
 * down: stops the io_uring workers (nothing when the mount has none) */
void kfs_uring_free(struct kfs *fs);

/* ---- the mount session: audit, lock states, idle and anomaly locks ---- */
enum { KFS_OPEN = 0, KFS_LOCKED = 1, KFS_ANOMALY = 2 };
/* start the idle/anomaly timer; audit may be NULL (not logged) */
int kfs_start(struct kfs *fs, struct fuse_session *se, struct kaudit *audit, const char *mountpoint);
void kfs_stop(struct kfs *fs);
/* after the session loop: audit (and close) the handles the kernel never released */
void kfs_release_leftovers(struct kfs *fs);
/* wipe the compartment keys and the user's secrets; requests fail with EACCES */
int kfs_lock(struct kfs *fs, const char *why);
/* the user's password again (not after an anomaly lock until an admin cleared it) */
int kfs_unlock(struct kfs *fs, const char *pw, size_t pwlen, const struct kkeys_factor_in *f,
	       struct kerrinfo *ei);
/* an administrator's credentials turn an anomaly lock into an ordinary lock */
int kfs_clear_anomaly(struct kfs *fs, const char *admin, const char *pw, size_t pwlen,
		      const struct kkeys_factor_in *f, struct kerrinfo *ei);
struct kfs_status {
	int state;
	char why[160];
	char user[33];
	int idle_lock, idle_left;
	bool audit_ok;
	char audit_why[256];
	uint64_t integrity_errors;
	bool io_uring;         /* requests travel over io_uring, not /dev/fuse */
};
void kfs_status(struct kfs *fs, struct kfs_status *st);
/* a refusal by the root guard service (kinko-guard(1)), audited as action
 * "removable-write", result denied, reason "removable-media" */
struct kfs_guard_report {
	pid_t pid;
	uint32_t uid;
	const char *comm;
	const char *path;  /* the vault file held: COMPARTMENT/dir/file */
	const char *dest;  /* the file on removable media */
	bool ciphertext;   /* path is a raw ciphertext file, relative to the vault */
};
void kfs_guard_report(struct kfs *fs, const struct kfs_guard_report *g);


#endif

/* kinko guard: removable-media detection and process inspection.
 *
 * Used by two layers (kinko-guard(1)):
 *  - the FUSE daemon refuses to open a vault file for a process that (or one it
 *    feeds through pipes, transitively) holds a file open for writing on
 *    removable media;
 *  - the root guard service (fanotify) refuses opening a file for writing on
 *    removable media by a process that (or one feeding it) holds a file of a
 *    kinko mount or of a vault's ciphertext open.
 * Removable: a block device with the sysfs `removable` flag, or one that sits on
 * USB, SD/MMC, firewire or thunderbolt (through partitions, dm/LVM slaves and
 * loop backing files), or a path under `removable_paths` of kinko.conf(5).
 * Depends on util only. */
#ifndef KINKO_GUARD_H
#define KINKO_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "kinko/util.h"

#define KGUARD_CONFIG_DEFAULT "/etc/kinko/kinko.conf"
#define KGUARD_SOCKET_DEFAULT "/run/kinko/guard.sock"
#define KGUARD_PATHS_MAX 64

/* ---- workstation configuration (kinko.conf(5), INI via libinih) ---- */
struct kguard_conf {
	char *removable_paths[KGUARD_PATHS_MAX]; /* absolute, no trailing slash */
	size_t n_removable;
	char *vault_paths[KGUARD_PATHS_MAX];
	size_t n_vault;
	/* [media] SERIAL = PATH: the serial of a medium mounted at PATH whose serial
	 * the kernel does not report (some card readers; tests) */
	char *media_serials[KGUARD_PATHS_MAX];
	char *media_paths[KGUARD_PATHS_MAX];
	size_t n_media;
};
/* path NULL: $KINKO_CONFIG, else /etc/kinko/kinko.conf (a missing default file
 * is an empty configuration; a missing named file is an error) */
int kguard_conf_load(const char *path, struct kguard_conf *c, struct kerrinfo *ei);
void kguard_conf_free(struct kguard_conf *c);
/* is path (absolute) equal to or below one of the listed paths? */
bool kguard_path_below(char *const *list, size_t n, const char *path);

/* ---- block devices (sysfs) ---- */
/* sysfs_root NULL: $KINKO_SYSFS_ROOT, else /sys. 1 removable, 0 not, <0 error
 * (no such block device: 0). why (may be NULL) names the reason. */
int kguard_dev_removable(const char *sysfs_root, unsigned major, unsigned minor, char *why,
			 size_t n);

/* The serial number of the medium holding path (absolute; need not exist yet:
 * its nearest existing parent counts): a [media] entry of the configuration
 * whose path is path or lies above it, else the first `serial` attribute
 * found from the block device up its sysfs parents (USB, MMC, SCSI, NVMe).
 * 0 (serial in out, where it came from in src), -ENOENT when there is none. */
int kguard_medium_serial(const struct kguard_conf *c, const char *sysfs_root, const char *path,
			 char *out, size_t n, char *src, size_t srcn);

/* ---- mounts (/proc/self/mountinfo) ---- */
struct kguard_mount {
	int id;                /* mount ID (as in fdinfo's mnt_id) */
	unsigned major, minor;
	char *root, *mountpoint, *fstype, *source;
};
struct kguard_mounts {
	struct kguard_mount *m;
	size_t n;
};
/* path NULL: /proc/self/mountinfo */
int kguard_mounts_read(const char *path, struct kguard_mounts *out);
void kguard_mounts_free(struct kguard_mounts *ms);
/* the mount holding path (longest mount point prefix), or NULL */
const struct kguard_mount *kguard_mount_of(const struct kguard_mounts *ms, const char *path);
const struct kguard_mount *kguard_mount_by_id(const struct kguard_mounts *ms, int id);
/* kinko mounts: fstype "fuse.kinko"; their vault from the fsname "kinko:VAULT" */
bool kguard_mount_is_kinko(const struct kguard_mount *m);
const char *kguard_mount_vault(const struct kguard_mount *m);

/* ---- the decision context (a workstation's view: conf + sysfs + device cache) ---- */
struct kguard;
int kguard_new(const char *config_path, struct kguard **out, struct kerrinfo *ei);
void kguard_free(struct kguard *g);
const struct kguard_conf *kguard_config(const struct kguard *g);
/* is a file at path, on device dev, on removable media? (cached per device) */
bool kguard_file_removable(struct kguard *g, const char *path, dev_t dev);

/* ---- processes (/proc) ---- */
struct kguard_fd {
	pid_t pid;
	int fd;                /* -1: a file being opened right now (flags of the open) */
	unsigned flags;        /* file status flags from fdinfo (O_ACCMODE, O_APPEND...) */
	int mnt_id;            /* fdinfo: the mount it lives on (no stat: a FUSE file
				  is never touched through the file system) */
	unsigned long long ino;
	const char *path;      /* readlink of /proc/PID/fd/N ("pipe:[N]", "/media/x") */
};
/* called for each open fd of each process in the set; return 1 to stop (match) */
typedef int (*kguard_fd_fn)(void *arg, const struct kguard_fd *f);
enum kguard_dir {
	KGUARD_SELF = 0,       /* the process only */
	KGUARD_DOWNSTREAM = 1, /* + the processes it feeds (its pipe/socket writes reach) */
	KGUARD_UPSTREAM = 2,   /* + the processes feeding it */
};
/* walk pid and its peers (transitively, through pipes and sockets shared between
 * processes, and both ends of connected unix socket pairs).
 * Returns 1 if fn matched, 0 if not, <0 if pid itself cannot be inspected. */
int kguard_proc_walk(pid_t pid, enum kguard_dir dir, kguard_fd_fn fn, void *arg);
/* Is thread tid of pid in the middle of an open (open, openat, openat2, creat,
 * open_by_handle_at)? 1 yes: *flags, and path (absolute, lexically normalised;
 * "" when it cannot be read), 0 no, <0 error. The walk above reports such an
 * open of every process as fd -1: an open still waiting for the guard service
 * is not in the fd table yet. */
int kguard_thread_opening(pid_t pid, pid_t tid, long *flags, char *path, size_t n);
/* pid's parent (0 if unknown) and its start time in clock ticks */
pid_t kguard_proc_ppid(pid_t pid);
unsigned long long kguard_proc_start(pid_t pid);

/* Does pid, or a process it feeds, hold a file open for writing on removable
 * media? 1 yes (why: that file), 0 no, <0 pid cannot be inspected. */
int kguard_writes_removable(struct kguard *g, pid_t pid, char *why, size_t n);

/* ---- approved jobs (kinko backup, kinko takeout export) ---- */
/* $KINKO_GUARD_SOCKET, else /run/kinko/guard.sock */
const char *kguard_socket_path(void);
/* Register the calling process's job with the guard service before writing
 * ciphertext to removable media. kind "backup"|"takeout". 0, -ECONNREFUSED /
 * -ENOENT when no guard runs (go on: no guard, no barrier), or a negative error
 * when the guard refuses (ei names its reason). */
int kguard_register_job(const char *kind, const char *medium, const char *dest, const char *user,
			const char *vault, struct kerrinfo *ei);

/* ---- the guard service (kinko guard; root) ---- */
struct kguard_refusal {
	pid_t pid;              /* the opener refused */
	uid_t uid;
	char comm[17];
	const char *dest;       /* the file on removable media */
	const char *held;       /* the vault file held open (by holder) */
	pid_t holder;           /* pid, or the process feeding it */
	bool ciphertext;        /* held is a vault's ciphertext, not a kinko mount's file */
	const char *mountpoint; /* the kinko mount of held, or NULL */
	const char *vault;      /* its vault, or NULL */
};
struct kguard_service_opts {
	bool foreground;        /* messages also on stderr */
	void (*on_refusal)(void *arg, const struct kguard_refusal *r); /* e.g. audit it */
	void (*ready)(void *arg);                                      /* watching now */
	void *arg;
};
/* Serves until SIGTERM/SIGINT: 0, or a negative error (ei names it). */
int kguard_service_run(struct kguard *g, const struct kguard_service_opts *o, struct kerrinfo *ei);

#endif

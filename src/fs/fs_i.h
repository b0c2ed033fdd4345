/* kinko fs internals: inode table, handles, block I/O. */
#ifndef KINKO_FS_I_H
#define KINKO_FS_I_H

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>

#include "kinko/audit.h"
#include "kinko/fs.h"
#include "kinko/lifecycle.h"

_Static_assert(sizeof(fuse_ino_t) >= sizeof(uintptr_t), "fuse_ino_t must hold a pointer");

struct kinode {
	int fd;              /* O_PATH fd of the backing object; -1 for the mount root */
	dev_t dev;
	ino_t ino;
	mode_t type;         /* S_IFMT bits */
	uint64_t nlookup;    /* guarded by kfs.itab_lock */
	struct kinode *hnext;
	struct kkeys_comp *comp; /* NULL for the mount root */
	char *lt_ref;        /* long symlink whose last link is gone: its side
			      * file's reference, removed with the inode;
			      * guarded by kfs.itab_lock */

	pthread_mutex_t lk;  /* guards the fields below */
	/* where this object was last seen: its parent (pinned: one lookup count
	 * held), the parent's IV and its backing name, which the name binding in
	 * its header / dir IV file must match */
	struct kinode *parent;
	uint8_t parent_iv[KFORMAT_ID_BYTES];
	char *bname;
	char *pname;         /* its plaintext name there (audit paths) */
	/* directories: the IV file, once verified */
	bool diriv_ok;
	struct kformat_diriv diriv;
	const struct kformat_epoch_keys *dkeys;

	/* regular files: content lock for read-modify-write and the header */
	pthread_rwlock_t content;
	bool hdr_ok;         /* hdr is valid for the current (non-empty) content */
	struct kformat_fhdr hdr;
	const struct kformat_epoch_keys *hkeys;
};

/* sliding window of KWIN_BUCKETS buckets */
#define KWIN_BUCKETS 60
struct kwin_bucket {
	int64_t slot;
	long long count;
};
struct kwin {
	int64_t width_ms;
	long long limit;
	struct kwin_bucket b[KWIN_BUCKETS];
};

#define KFS_COMM_CACHE 64
#define KFS_GUARD_CACHE 64
struct kguard_verdict {
	pid_t pid;
	int64_t at;
	int refused;
	char why[200];
};
/* names encrypted lately (kfs_encname): the kernel looks a new name up and
 * then creates it, the same name under the same key and IV twice */
#define KFS_ENCNAME_CACHE 8
struct kencname {
	const struct kformat_epoch_keys *k; /* NULL: empty slot */
	uint8_t iv[16];
	char name[KFORMAT_NAME_MAX + 1];
	char backing[256];
};
struct kcomm {
	pid_t pid;
	int64_t at;
	char comm[17];
};

struct kfs {
	struct kvault *v;
	struct kformat_geom geom;
	struct kfs_options opt;
	struct kinode root;
	pthread_mutex_t itab_lock;
	struct kinode **itab;
	size_t itab_size, itab_count;
	uid_t uid;
	gid_t gid;
	bool as_root;
	_Atomic uint64_t integrity_errors;

	/* session (session.c) */
	struct fuse_session *se;
	struct kaudit *audit;
	char mountpoint[512];
	char user[KFORMAT_USERID_MAX + 1];
	uint32_t unlock_gen;        /* the user's, when mounted (anomaly locks are per gen) */
	struct kpolicy_settings set;
	char *alert_command;
	int64_t takeout_until;      /* a take-out vault: locked when its period ends (0: not one) */
	pthread_rwlock_t gate;      /* requests hold it shared; lock/unlock exclusive */
	_Atomic int state;          /* KFS_OPEN, KFS_LOCKED, KFS_ANOMALY */
	pthread_mutex_t state_lock; /* lock/unlock/status; never taken inside the gate */
	char lock_why[160];
	bool keys_wiped;
	_Atomic int64_t last_access; /* monotonic ms */
	_Atomic time_t hours_checked_at;
	_Atomic bool hours_outside;
	_Atomic uint64_t read_pending; /* bytes read not yet in an_read */
	pthread_mutex_t an_lock;    /* leaf lock: windows, pending anomaly */
	struct kwin an_files, an_read, an_denials;
	/* distinct files opened: backing (dev, ino) -> when last counted; survives
	 * the kernel forgetting inodes (memory pressure, drop_caches) */
	struct kseen { uint64_t key; int64_t at; } *seen;
	size_t seen_cap, seen_n;
	bool anomaly_pending;
	char anomaly_why[160];
	pthread_mutex_t comm_lock;
	struct kcomm comms[KFS_COMM_CACHE];
	pthread_mutex_t guard_lock;  /* removable-media verdicts per pid (guard_hook.c) */
	struct kguard_verdict guard_cache[KFS_GUARD_CACHE];
	pthread_mutex_t files_lock;
	struct kfile *files;
	pthread_mutex_t encname_lock;
	struct kencname encname[KFS_ENCNAME_CACHE];
	unsigned encname_next;
	/* FUSE_HANDLE_KILLPRIV_V2 (session.c): the INIT request's id until it is
	 * answered, then whether the kernel runs with the flag */
	_Atomic uint64_t init_unique;
	bool init_killpriv, init_uring; /* what the kernel offered in INIT */
	bool killpriv_v2;
	struct kuring *uring;       /* FUSE over io_uring (uring.c), while its workers run */
	_Atomic bool uring_used;    /* a request has come through a ring */
	unsigned proto_minor;       /* the kernel's FUSE protocol 7.x */
	pthread_t timer;
	pthread_cond_t timer_cv;    /* with state_lock */
	bool timer_stop, timer_running;
};

/* session.c: an audited event */
struct kfs_ev {
	const char *action;
	struct kinode *in;    /* object, or directory of name */
	const char *name;
	struct kinode *in2;   /* rename/link target directory + name2 */
	const char *name2;
	int err;
	const char *reason;   /* NULL: derived from err */
	const char *detail;   /* JSON object text */
	bool bytes;
	uint64_t rd, wr;
	const struct kfile *opener; /* caller identity for release */
};
void kfs_caller(struct kfs *fs, fuse_req_t req, struct kfile *f);
void kfs_audit(struct kfs *fs, fuse_req_t req, const struct kfs_ev *e);
void kfs_path(struct kfs *fs, struct kinode *in, const char *name, char *out, size_t n);
/* every request passes the gate: 0 (then kfs_leave) or denied, replied and audited */
int kfs_enter(struct kfs *fs, fuse_req_t req, const char *op, struct kinode *in, const char *name);
void kfs_leave(struct kfs *fs);
void kfs_count_open(struct kfs *fs, struct kinode *in);
void kfs_count_read(struct kfs *fs, uint64_t bytes);
void kfs_session_init(struct kfs *fs);
void kfs_session_free(struct kfs *fs);
/* the request this thread is serving asks to remove set-user/group-ID
 * (a caller without CAP_FSETID writes, truncates or opens with O_TRUNC) */
bool kfs_kill_suidgid(struct kfs *fs);
/* ... and they were removed: the kernel must forget the mode it caches */
void kfs_killed_suidgid(struct kfs *fs, struct kinode *in);
/* guard_hook.c: true if refused (EACCES to reply; audited with reason removable-media) */
bool kfs_guard_refuse(struct kfs *fs, fuse_req_t req, const char *action, struct kinode *in,
		      const char *name);

struct kfile {
	struct kfile *prev, *next; /* kfs.files: handles the kernel has not released */
	int fd;               /* backing fd, O_RDWR or O_RDONLY */
	struct kinode *in;
	bool append;
	bool writable;
	uint32_t uid;         /* who opened it (release comes without a caller) */
	pid_t pid;
	char comm[17];
	_Atomic uint64_t bytes_read, bytes_written;
};

struct kdirh {
	DIR *dp;
	long offset;
	struct dirent *entry; /* pending entry that did not fit */
};

/* inode.c */
struct kinode *kfs_inode(struct kfs *fs, fuse_ino_t ino);
int kfs_inode_get(struct kfs *fs, struct kkeys_comp *comp, int fd, const struct stat *st,
		  struct kinode **out);
void kfs_inode_unref(struct kfs *fs, struct kinode *in, uint64_t n);
void kfs_inode_destroy(struct kfs *fs, struct kinode *in);
/* ---- FUSE over io_uring (uring.c) ---- */
struct kuring;
/* before the INIT reply: 0 when every worker is ready (then ask for it);
 * fs->uring is set only then */
int kfs_uring_setup(struct kfs *fs, size_t max_payload);
/* after the INIT reply went out: the workers register with the kernel */
void kfs_uring_go(struct kfs *fs);
/* a reply to a request that came through a ring: copied there (*ret: what
 * writev would return); false: it goes to /dev/fuse */
bool kfs_uring_reply(struct kfs *fs, const struct iovec *iov, int count, ssize_t *ret);
bool kfs_uring_active(struct kfs *fs);
/* what a request says about the caller (kill set-user-ID on write, ...),
 * noted for the thread that serves it */
void kfs_note_request(struct kfs *fs, const void *buf, size_t n);
/* the inode of st if the kernel holds it, pinned (kfs_inode_unref it), or NULL */
struct kinode *kfs_inode_find(struct kfs *fs, const struct stat *st);
/* kformat_lt_release, but a side file whose symlink the kernel still holds
 * goes when the kernel forgets that inode */
void kfs_lt_release(struct kfs *fs, struct kformat_lt_hold *h, struct kkeys_comp *comp);
int kfs_set_place(struct kfs *fs, struct kinode *in, struct kinode *parent,
		  const uint8_t parent_iv[16], const char *bname, const char *pname);
/* is the last known place still a name of this inode? */
bool kfs_place_valid(struct kinode *in);
/* /proc/self/fd/FD: a path that reaches the object an O_PATH descriptor holds */
static inline void kfs_fd_path(char out[64], int fd) { snprintf(out, 64, "/proc/self/fd/%d", fd); }
/* access(2) by the daemon's effective ids to the object FD holds: 0 or -errno */
int kfs_fd_access(int fd, int mode);
/* Lending: kinko's backing objects belong to the daemon's user, whose mode
 * bits may forbid what kinko itself needs (reading back a block of a
 * write-only file, an IV file in a read-only or unsearchable directory). The
 * owner lends itself BITS through FD (O_PATH is enough) for that one step and
 * gives them back unless somebody changed the mode meanwhile. -EACCES: not
 * the owner, or the bits are there already (the refusal has another cause). */
struct kfs_lend {
	char path[64];
	mode_t was, lent;
	int fd;
};
int kfs_lend(int fd, mode_t bits, struct kfs_lend *l);
void kfs_unlend(const struct kfs_lend *l);
/* make the kernel look up again the names it holds under DIR (not from within
 * a request on DIR before its reply: the notification takes DIR's lock) */
void kfs_inval_children(struct kfs *fs, struct kinode *dir);
/* make the kernel look up again every name it holds before its next use
 * (FUSE_NOTIFY_INC_EPOCH, Linux 6.16); takes no lock in the kernel, so a
 * request may send it before its reply. 0, or -ENOSYS on older kernels */
int kfs_notify_new_epoch(struct kfs *fs);
int kfs_dir_keys(struct kfs *fs, struct kinode *dir, struct kformat_diriv *d,
		 const struct kformat_epoch_keys **k);
int kfs_encname(struct kfs *fs, struct kinode *dir, const char *name, char backing[256],
		bool *is_long, char *full, uint8_t iv[16], const struct kformat_epoch_keys **k);
int kfs_decname(struct kfs *fs, struct kinode *dir, int dirfd, const char *backing,
		char out[256]);
int kfs_longname_write(int dirfd, const char *backing, const char *full);
void kfs_longname_remove(int dirfd, const char *backing);
int kfs_stat_fix(struct kfs *fs, struct kinode *in, struct stat *st, int fd_for_symlink,
		 const char *name_for_symlink);
void kfs_integrity(struct kfs *fs, struct kinode *in, const char *what, int r);
void kfs_encname_forget(struct kfs *fs);
int kfs_diriv_write(struct kfs *fs, int dirfd, const struct kformat_diriv *d,
		    const struct kformat_epoch_keys *k);
int kfs_new_diriv(struct kfs *fs, struct kkeys_comp *comp, const uint8_t parent_iv[16], const char *bname,
		  struct kformat_diriv *d, const struct kformat_epoch_keys **k);

/* io.c */
int kfs_io_open_header(struct kfs *fs, struct kinode *in, int fd);
ssize_t kfs_io_read(struct kfs *fs, struct kinode *in, int fd, char **out, size_t size, off_t off);
ssize_t kfs_io_write(struct kfs *fs, struct kinode *in, int fd, const char *buf, size_t size,
		     off_t off, bool append, bool kill);
/* remove set-user-ID, and set-group-ID with group execute, from a regular
 * file: 1 if they were removed, 0 if there were none, or -errno */
int kfs_io_kill_suidgid(int fd, const struct stat *st);
int kfs_io_truncate(struct kfs *fs, struct kinode *in, int fd, uint64_t size);
int kfs_io_fallocate(struct kfs *fs, struct kinode *in, int fd, int mode, off_t off, off_t len);
int kfs_io_rebind(struct kfs *fs, struct kinode *in, int fd, const uint8_t new_bind[16],
		  const uint8_t prev_bind[16], bool linked);
uint64_t kfs_io_plain_size(struct kfs *fs, uint64_t csize);
/* the helper threads that seal and open half of a large request's blocks:
 * started with the mount, ended at unmount */
void kfs_io_helpers_start(void);
void kfs_io_helpers_stop(void);

#endif

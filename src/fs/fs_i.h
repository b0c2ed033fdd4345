/* kinko fs internals: inode table, handles, block I/O. */
#ifndef KINKO_FS_I_H
#define KINKO_FS_I_H

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>

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

	pthread_mutex_t lk;  /* guards the fields below */
	/* where this object was last seen: its parent (pinned: one lookup count
	 * held), the parent's IV and its backing name, which the name binding in
	 * its header / dir IV file must match */
	struct kinode *parent;
	uint8_t parent_iv[KFORMAT_ID_BYTES];
	char *bname;
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
};

struct kfile {
	int fd;               /* backing fd, O_RDWR or O_RDONLY */
	struct kinode *in;
	bool append;
	bool writable;
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
int kfs_set_place(struct kfs *fs, struct kinode *in, struct kinode *parent,
		  const uint8_t parent_iv[16], const char *bname);
/* is the last known place still a name of this inode? */
bool kfs_place_valid(struct kinode *in);
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
int kfs_diriv_write(struct kfs *fs, int dirfd, const struct kformat_diriv *d,
		    const struct kformat_epoch_keys *k);
int kfs_new_diriv(struct kfs *fs, struct kkeys_comp *comp, const uint8_t parent_iv[16], const char *bname,
		  struct kformat_diriv *d, const struct kformat_epoch_keys **k);

/* io.c */
int kfs_io_open_header(struct kfs *fs, struct kinode *in, int fd);
ssize_t kfs_io_read(struct kfs *fs, struct kinode *in, int fd, char **out, size_t size, off_t off);
ssize_t kfs_io_write(struct kfs *fs, struct kinode *in, int fd, const char *buf, size_t size,
		     off_t off, bool append);
int kfs_io_truncate(struct kfs *fs, struct kinode *in, int fd, uint64_t size);
int kfs_io_fallocate(struct kfs *fs, struct kinode *in, int fd, int mode, off_t off, off_t len);
int kfs_io_rebind(struct kfs *fs, struct kinode *in, int fd, const uint8_t new_bind[16],
		  const uint8_t prev_bind[16], bool linked);
uint64_t kfs_io_plain_size(struct kfs *fs, uint64_t csize);

#endif

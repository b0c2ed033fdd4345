// SPDX-License-Identifier: GPL-2.0-or-later
/* FUSE low-level operations. Each op is a thin adapter: do_x() returns 0 or a
 * negative errno and the op makes exactly one fuse_reply_*. The mount root is
 * virtual and lists the compartments the user holds; everything below maps to
 * VAULT/data/<compartment id>/ with encrypted names. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <jansson.h>

#include "fs_i.h"
#include "kinko/guard.h"

#define XATTR_USER "user."

static struct kfs *FS(fuse_req_t req) { return fuse_req_userdata(req); }

static void audit_name(fuse_req_t req, const char *action, struct kinode *dir, const char *name,
		       int r, const char *detail)
{
	struct kfs_ev e = { .action = action, .in = dir, .name = name, .err = r, .detail = detail };

	kfs_audit(FS(req), req, &e);
}

/* {"KEY":"VALUE"} with VALUE escaped (names of xattrs are the caller's bytes) */
static char *detail_str(const char *key, const char *value)
{
	json_t *j = json_pack("{s:s}", key, value);
	char *t = j ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	return t;
}

/* Without default_permissions the kernel checks no write or search permission
 * on a directory before names change in it; where kinko changes state before
 * the backing call that would refuse (a header unbound for a link, a removed
 * directory's IV file, a moved directory's binding) it asks first. WANT is
 * W_OK | X_OK for a directory whose names change. Root passes, as natively. */
static int may(struct kfs *fs, struct kinode *in, int want)
{
	if (fs->opt.default_permissions || in == &fs->root)
		return 0;
	return kfs_fd_access(in->fd, want);
}

static void fill_entry(struct kfs *fs, struct fuse_entry_param *e, struct kinode *in,
		       const struct stat *st)
{
	memset(e, 0, sizeof(*e));
	e->ino = (fuse_ino_t)(uintptr_t)in;
	e->attr = *st;
	e->attr_timeout = fs->opt.attr_timeout;
	e->entry_timeout = fs->opt.entry_timeout;
}

static void root_stat(struct kfs *fs, struct stat *st)
{
	fstat(fs->v->vfd, st);
	st->st_ino = FUSE_ROOT_ID;
	st->st_mode = S_IFDIR | (fs->opt.allow_other ? 0555 : 0500);
	st->st_nlink = 2 + (nlink_t)fs->v->ring->ncomps;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_size = 0;
}

/* ---- lookup ---- */

static int comp_lookup(struct kfs *fs, const char *name, struct fuse_entry_param *e)
{
	struct kkeyring *ring = fs->v->ring;
	struct kinode *in;
	struct stat st;
	int fd, r;

	for (size_t i = 0; i < ring->ncomps; i++) {
		struct kkeys_comp *c = &ring->comps[i];

		if (c->closed || strcmp(c->name, name) != 0)
			continue;
		fd = openat(fs->v->datafd, c->hexid, O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return -errno == -ENOENT ? -EIO : -errno;
		if (fstat(fd, &st) < 0) {
			r = -errno;
			close(fd);
			return r;
		}
		if ((r = kfs_inode_get(fs, c, fd, &st, &in)) != 0)
			return r;
		kfs_set_place(fs, in, NULL, c->id, c->hexid, c->name);
		fill_entry(fs, e, in, &st);
		return 0;
	}
	return -ENOENT;
}

static int lookup_backing(struct kfs *fs, struct kinode *dir, const char *backing,
			  const char *pname, const uint8_t iv[16], struct fuse_entry_param *e)
{
	struct kinode *in;
	struct stat st;
	int fd, r;

	fd = openat(dir->fd, backing, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	if ((r = kfs_stat_fix(fs, dir, &st, dir->fd, backing)) != 0) {
		close(fd);
		return r;
	}
	if ((r = kfs_inode_get(fs, dir->comp, fd, &st, &in)) != 0)
		return r;
	if ((r = kfs_set_place(fs, in, dir, iv, backing, pname)) != 0) {
		kfs_inode_unref(fs, in, 1);
		return r;
	}
	fill_entry(fs, e, in, &st);
	return 0;
}

static int do_lookup(struct kfs *fs, struct kinode *dir, const char *name,
		     struct fuse_entry_param *e)
{
	char backing[256];
	uint8_t iv[16];
	const struct kformat_epoch_keys *k = NULL;
	bool is_long;
	int r;

	if (dir == &fs->root)
		return comp_lookup(fs, name, e);
	if ((r = kfs_encname(fs, dir, name, backing, &is_long, NULL, iv, &k)) != 0)
		return r == -EINVAL ? -ENOENT : r;
	return lookup_backing(fs, dir, backing, name, iv, e);
}

static void kfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	int r = do_lookup(FS(req), kfs_inode(FS(req), parent), name, &e);

	if (r == -ENOENT) {
		/* a negative entry the kernel may cache as long as a positive one */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = FS(req)->opt.entry_timeout;
		r = 0;
	}
	if (r == 0)
		fuse_reply_entry(req, &e);
	else
		fuse_reply_err(req, -r);
}

static void kfs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	kfs_inode_unref(FS(req), kfs_inode(FS(req), ino), nlookup);
	fuse_reply_none(req);
}

static void kfs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *fd)
{
	for (size_t i = 0; i < count; i++)
		kfs_inode_unref(FS(req), kfs_inode(FS(req), fd[i].ino), fd[i].nlookup);
	fuse_reply_none(req);
}

/* ---- access(2) and chdir(2) ---- */

/* Asked only without default_permissions (the kernel checks the attributes
 * itself otherwise). The caller is then the mount's owner, as the daemon is:
 * the backing object's mode answers for it. */
static void kfs_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct kfs *fs = FS(req);
	struct kinode *in = kfs_inode(fs, ino);
	int r = 0;

	if (in == &fs->root)
		r = (mask & W_OK) && !fs->as_root ? -EACCES : 0; /* r-x, virtual */
	else if ((mask & W_OK) && in->comp->read_only)
		r = -EROFS;
	else if (!S_ISLNK(in->type))
		r = kfs_fd_access(in->fd, mask);
	fuse_reply_err(req, -r);
}

/* ---- attributes ---- */

static int do_getattr(struct kfs *fs, struct kinode *in, struct stat *st)
{
	if (in == &fs->root) {
		root_stat(fs, st);
		return 0;
	}
	if (fstatat(in->fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (S_ISLNK(st->st_mode)) {
		/* the symlink's size is its plaintext target length */
		char plain[KFORMAT_SYMLINK_TARGET_MAX + 1];
		size_t len = 0;

		if (kkeys_symlink_read(&fs->geom, in->comp, fs->v->datafd, in->fd, "", NULL, plain,
				       sizeof(plain), &len, NULL) == 0) {
			st->st_size = (off_t)len;
			ksecmem_wipe(plain, len);
		}
		return 0;
	}
	return kfs_stat_fix(fs, in, st, -1, NULL);
}

static void kfs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	int r;

	(void)fi;
	r = do_getattr(FS(req), kfs_inode(FS(req), ino), &st);
	if (r == 0)
		fuse_reply_attr(req, &st, FS(req)->opt.attr_timeout);
	else
		fuse_reply_err(req, -r);
}

/* Open the backing object for read-modify-write even if its mode forbids
 * reading (we own it). WANT is the access the caller asked for (R_OK, W_OK):
 * where the kernel does not check permissions (no default_permissions), the
 * caller, who is the daemon's user, must have it by the mode. */
static int open_rw(struct kfs *fs, struct kinode *in, int flags, int want)
{
	struct kfs_lend l;
	char p[64];
	int fd;

	kfs_fd_path(p, in->fd);
	fd = open(p, flags | O_CLOEXEC);
	if (fd >= 0 || errno != EACCES)
		return fd < 0 ? -errno : fd;
	if (!fs->opt.default_permissions && kfs_fd_access(in->fd, want) != 0)
		return -EACCES;
	if (kfs_lend(in->fd, S_IRUSR | S_IWUSR, &l) != 0)
		return -EACCES;
	fd = open(p, flags | O_CLOEXEC);
	kfs_unlend(&l);
	return fd < 0 ? -errno : fd;
}

static int kill_suidgid_fd(struct kfs *fs, struct kinode *in, int fd)
{
	struct stat st;
	int r = fstat(fd, &st) < 0 ? -errno : kfs_io_kill_suidgid(fd, &st);

	if (r > 0)
		kfs_killed_suidgid(fs, in);
	return r < 0 ? r : 0;
}

static int do_setattr(struct kfs *fs, struct kinode *in, struct stat *attr, int valid,
		      struct fuse_file_info *fi, struct stat *out)
{
	char p[64];
	int r;

	if (in == &fs->root)
		return -EPERM;
	if (in->comp->read_only && (valid & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID |
					   FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_ATIME |
					   FUSE_SET_ATTR_MTIME)))
		return -EROFS;
	kfs_fd_path(p, in->fd);
	/* chown(path, -1, -1) changes nothing but the change time, as natively:
	 * the backing object is chowned the same way */
	if (!(valid & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID | FUSE_SET_ATTR_SIZE |
		       FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW |
		       FUSE_SET_ATTR_MTIME_NOW))) {
		if (in->comp->read_only)
			return -EROFS;
		if (fchownat(in->fd, "", (uid_t)-1, (gid_t)-1, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
	}
	if (valid & FUSE_SET_ATTR_MODE) {
		if (fi ? fchmod((int)((struct kfile *)fi->fh)->fd, attr->st_mode) : chmod(p, attr->st_mode))
			return -errno;
	}
	if (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
		gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;

		if (fchownat(in->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
	}
	if (valid & FUSE_SET_ATTR_SIZE) {
		int fd;

		if (!S_ISREG(in->type))
			return S_ISDIR(in->type) ? -EISDIR : -EINVAL;
		if (fi && ((struct kfile *)fi->fh)->writable) {
			fd = ((struct kfile *)fi->fh)->fd;
			r = kfs_io_truncate(fs, in, fd, (uint64_t)attr->st_size);
			if (r == 0 && kfs_kill_suidgid(fs))
				r = kill_suidgid_fd(fs, in, fd);
		} else {
			if ((fd = open_rw(fs, in, O_RDWR, W_OK)) < 0)
				return fd;
			r = kfs_io_truncate(fs, in, fd, (uint64_t)attr->st_size);
			if (r == 0 && kfs_kill_suidgid(fs))
				r = kill_suidgid_fd(fs, in, fd);
			close(fd);
		}
		if (r)
			return r;
	}
	if (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
		struct timespec tv[2];

		tv[0].tv_sec = tv[1].tv_sec = 0;
		tv[0].tv_nsec = tv[1].tv_nsec = UTIME_OMIT;
		if (valid & FUSE_SET_ATTR_ATIME_NOW)
			tv[0].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_ATIME)
			tv[0] = attr->st_atim;
		if (valid & FUSE_SET_ATTR_MTIME_NOW)
			tv[1].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_MTIME)
			tv[1] = attr->st_mtim;
		if (fi)
			r = futimens(((struct kfile *)fi->fh)->fd, tv);
		else if (S_ISLNK(in->type))
			r = utimensat(in->fd, "", tv, AT_EMPTY_PATH);
		else
			r = utimensat(AT_FDCWD, p, tv, 0);
		if (r < 0)
			return -errno;
	}
	return do_getattr(fs, in, out);
}

static void kfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int valid,
			struct fuse_file_info *fi)
{
	struct kfs *fs = FS(req); /* req is gone after the reply */
	struct stat st;
	struct kinode *in = kfs_inode(fs, ino);
	int r = do_setattr(fs, in, attr, valid, fi, &st);
	bool forget;
	char d[256];
	size_t n = 0;

	/* what changed, for the audit log (atime alone is not an access) */
	if (valid & ~(FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW)) {
		n += (size_t)snprintf(d + n, sizeof(d) - n, "{\"changes\":{");
		if (valid & FUSE_SET_ATTR_MODE)
			n += (size_t)snprintf(d + n, sizeof(d) - n, "\"mode\":\"%04o\",",
					      (unsigned)(attr->st_mode & 07777));
		if (valid & FUSE_SET_ATTR_UID)
			n += (size_t)snprintf(d + n, sizeof(d) - n, "\"uid\":%u,", (unsigned)attr->st_uid);
		if (valid & FUSE_SET_ATTR_GID)
			n += (size_t)snprintf(d + n, sizeof(d) - n, "\"gid\":%u,", (unsigned)attr->st_gid);
		if (valid & FUSE_SET_ATTR_SIZE)
			n += (size_t)snprintf(d + n, sizeof(d) - n, "\"size\":%lld,",
					      (long long)attr->st_size);
		if (valid & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW))
			n += (size_t)snprintf(d + n, sizeof(d) - n, "\"mtime\":true,");
		if (d[n - 1] == ',')
			n--;
		snprintf(d + n, sizeof(d) - n, "}}");
		audit_name(req, "setattr", in, NULL, r, d);
	}
	/* Without default_permissions the kernel checks no search permission on
	 * the names it has cached under a directory: after the directory's mode
	 * changed, the next path walk must look them up again (the backing
	 * filesystem checks). A new epoch does that before the caller returns;
	 * older kernels forget the names after the reply (invalidating a name
	 * takes the directory's lock, which the caller holds until then). Root
	 * searches every directory anyway. */
	forget = r == 0 && (valid & FUSE_SET_ATTR_MODE) && S_ISDIR(in->type) &&
		 !fs->opt.default_permissions && !fs->as_root;
	if (forget && kfs_notify_new_epoch(fs) == 0)
		forget = false;
	if (r == 0)
		fuse_reply_attr(req, &st, fs->opt.attr_timeout);
	else
		fuse_reply_err(req, -r);
	if (forget)
		kfs_inval_children(fs, in);
}

/* ---- creating names ---- */

struct newname {
	const char *name; /* plaintext */
	char backing[256];
	char full[KFORMAT_ENCNAME_MAX];
	bool is_long;
	bool side_new; /* the long name's side file was created for this entry */
	uint8_t iv[16];
	const struct kformat_epoch_keys *k;
};

static int prepare_name(struct kfs *fs, struct kinode *dir, const char *name, struct newname *nn)
{
	int r;

	if (dir == &fs->root)
		return -EPERM;
	if (dir->comp->read_only)
		return -EROFS;
	nn->name = name;
	if ((r = kfs_encname(fs, dir, name, nn->backing, &nn->is_long, nn->full, nn->iv, &nn->k)) != 0)
		return r;
	nn->side_new = false;
	if (nn->is_long && (r = kfs_longname_write(dir->fd, nn->backing, nn->full)) < 0)
		return r;
	nn->side_new = r == 1;
	return 0;
}

/* new objects belong to the caller (as a native filesystem does) when we run as root */
static void set_owner(struct kfs *fs, fuse_req_t req, struct kinode *dir, const char *backing)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct stat pst;
	gid_t gid = ctx->gid;

	/* the backing filesystem already applied a setgid parent's group */
	if (!fs->as_root || (ctx->uid == fs->uid && ctx->gid == fs->gid))
		return;
	if (fstatat(dir->fd, "", &pst, AT_EMPTY_PATH) == 0 && (pst.st_mode & S_ISGID))
		gid = (gid_t)-1;
	if (fchownat(dir->fd, backing, ctx->uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
		log_warn("chown of new entry failed: %s", strerror(errno));
}

static int finish_new(struct kfs *fs, struct kinode *dir, struct newname *nn,
		      struct fuse_entry_param *e)
{
	struct kinode *in;
	struct stat st;
	int fd, r;

	fd = openat(dir->fd, nn->backing, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	if ((r = kfs_stat_fix(fs, dir, &st, dir->fd, nn->backing)) != 0) {
		close(fd);
		return r;
	}
	if ((r = kfs_inode_get(fs, dir->comp, fd, &st, &in)) != 0)
		return r;
	kfs_set_place(fs, in, dir, nn->iv, nn->backing, nn->name);
	fill_entry(fs, e, in, &st);
	return 0;
}

static void undo_name(struct kinode *dir, struct newname *nn)
{
	if (nn->is_long && nn->side_new)
		kfs_longname_remove(dir->fd, nn->backing);
}

static void kfs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct kfs *fs = FS(req);
	struct kinode *dir = kfs_inode(fs, parent);
	struct fuse_entry_param e;
	struct newname nn;
	int r;

	if ((r = prepare_name(fs, dir, name, &nn)) != 0)
		goto out;
	if (mknodat(dir->fd, nn.backing, mode, rdev) < 0) {
		r = -errno;
		if (r != -EEXIST)
			undo_name(dir, &nn);
		goto out;
	}
	set_owner(fs, req, dir, nn.backing);
	r = finish_new(fs, dir, &nn, &e);
out:
	audit_name(req, "mknod", dir, name, r, NULL);
	if (r == 0)
		fuse_reply_entry(req, &e);
	else
		fuse_reply_err(req, -r);
}

/* write the IV file of a new directory (backing name `at` in dir) bound to its
 * final name nn->backing */
static int write_new_diriv(struct kfs *fs, struct kinode *dir, const char *at, struct newname *nn)
{
	struct kformat_diriv d;
	const struct kformat_epoch_keys *k = NULL;
	uint8_t buf[KFORMAT_DIRIV_LEN];
	int dfd, fd, r;

	if ((r = kfs_new_diriv(fs, dir->comp, nn->iv, nn->backing, &d, &k)) != 0)
		return r;
	if (kformat_diriv_serialize(&d, k, buf))
		return -EIO;
	dfd = openat(dir->fd, at, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	/* a new directory's IV file is created, not rewritten: no fsync (as mkdir) */
	fd = openat(dfd, KFORMAT_DIRIV_NAME, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0400);
	if (fd < 0) {
		r = -errno;
	} else {
		r = kwrite_all(fd, buf, sizeof(buf));
		close(fd);
	}
	close(dfd);
	return r;
}

static void remove_new_dir(struct kinode *dir, const char *at)
{
	char p[300];

	snprintf(p, sizeof(p), "%s/" KFORMAT_DIRIV_NAME, at);
	unlinkat(dir->fd, p, 0);
	unlinkat(dir->fd, at, AT_REMOVEDIR);
}

static void kfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct kfs *fs = FS(req);
	struct kinode *dir = kfs_inode(fs, parent);
	struct fuse_entry_param e;
	struct newname nn;
	uint8_t rnd[8];
	char tmp[64];
	int r;

	if ((r = prepare_name(fs, dir, name, &nn)) != 0)
		goto out;
	/* built under a hidden name and renamed into place, so a crash never
	 * leaves a directory without its IV file */
	kcrypto_random(rnd, sizeof(rnd));
	snprintf(tmp, sizeof(tmp), "kinko.mkdir.%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1],
		 rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	if (faccessat(dir->fd, nn.backing, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		r = -EEXIST;
		goto out;
	}
	if (mkdirat(dir->fd, tmp, 0700) < 0) {
		r = -errno;
		undo_name(dir, &nn);
		goto out;
	}
	if ((r = write_new_diriv(fs, dir, tmp, &nn)) != 0 ||
	    (fchmodat(dir->fd, tmp, mode & 07777, 0) < 0 && (r = -errno))) {
		remove_new_dir(dir, tmp);
		undo_name(dir, &nn);
		goto out;
	}
	if (renameat2(dir->fd, tmp, dir->fd, nn.backing, RENAME_NOREPLACE) < 0) {
		r = -errno;
		/* backing stores without renameat2 flags (sshfs, some NFS) */
		if (r == -EINVAL || r == -ENOSYS) {
			r = faccessat(dir->fd, nn.backing, F_OK, AT_SYMLINK_NOFOLLOW) == 0 ? -EEXIST :
			    renameat(dir->fd, tmp, dir->fd, nn.backing) < 0 ? -errno : 0;
		}
		if (r) {
			remove_new_dir(dir, tmp);
			if (r != -EEXIST)
				undo_name(dir, &nn);
			goto out;
		}
	}
	set_owner(fs, req, dir, nn.backing);
	r = finish_new(fs, dir, &nn, &e);
out:
	audit_name(req, "mkdir", dir, name, r, NULL);
	if (r == 0)
		fuse_reply_entry(req, &e);
	else
		fuse_reply_err(req, -r);
}

static void kfs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	struct kfs *fs = FS(req);
	struct kinode *dir = kfs_inode(fs, parent);
	struct fuse_entry_param e;
	struct newname nn;
	char *enc = NULL, *t;
	const struct kformat_epoch_keys *k = NULL;
	int r;

	if (dir == &fs->root) {
		r = -EPERM;
		goto out;
	}
	k = kvault_current_keys(fs->v, dir->comp);
	enc = malloc(KFORMAT_SYMLINK_ENC_MAX + 1 + KFORMAT_SYMLINK_MAX + 1);
	if (!enc || !k) {
		r = enc ? -EIO : -ENOMEM;
		goto out;
	}
	t = enc + KFORMAT_SYMLINK_ENC_MAX + 1;
	if ((r = kformat_symlink_encrypt(&fs->geom, k, link, strlen(link), enc,
					 KFORMAT_SYMLINK_ENC_MAX + 1)) != 0) {
		r = r == -ENAMETOOLONG ? r : -EIO;
		goto out;
	}
	if ((r = prepare_name(fs, dir, name, &nn)) != 0)
		goto out;
	/* a long sealed target goes to a side file */
	if ((r = kformat_symlink_store(fs->v->datafd, dir->comp->hexid, enc, t)) != 0) {
		undo_name(dir, &nn);
		goto out;
	}
	if (symlinkat(t, dir->fd, nn.backing) < 0) {
		r = -errno;
		kformat_symlink_forget(fs->v->datafd, dir->comp->hexid, t);
		if (r != -EEXIST)
			undo_name(dir, &nn);
		goto out;
	}
	set_owner(fs, req, dir, nn.backing);
	r = finish_new(fs, dir, &nn, &e);
out:
	audit_name(req, "symlink", dir, name, r, NULL);
	free(enc);
	if (r == 0)
		fuse_reply_entry(req, &e);
	else
		fuse_reply_err(req, -r);
}

static void kfs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct kfs *fs = FS(req);
	struct kinode *in = kfs_inode(fs, ino);
	char plain[KFORMAT_SYMLINK_TARGET_MAX + 1];
	size_t len;
	int r;

	if (in == &fs->root) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	r = kkeys_symlink_read(&fs->geom, in->comp, fs->v->datafd, in->fd, "", NULL, plain,
			       sizeof(plain), &len, NULL);
	if (r < 0 && r > -KERR_BASE) {
		fuse_reply_err(req, -r);
		return;
	}
	if (r) {
		kfs_integrity(fs, in, "symlink target does not decrypt", r);
		fuse_reply_err(req, EIO);
		return;
	}
	fuse_reply_readlink(req, plain);
	ksecmem_wipe(plain, len);
}

/* ---- removing names ---- */

static int dir_only_internal(int dfd, bool *empty)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;
	struct dirent *de;

	*empty = true;
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d)) != NULL) {
		enum kformat_entry_kind kind;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		kind = kformat_entry_classify(de->d_name);
		if (kind == KFORMAT_ENTRY_INTERNAL || kind == KFORMAT_ENTRY_SIDECAR)
			continue;
		*empty = false;
		break;
	}
	closedir(d);
	return 0;
}

/* remove kinko's own files from an empty directory (so rmdir/rename over it can
 * proceed); keeps the IV bytes to put back if the directory operation fails */
static int strip_dir(int parentfd, const char *backing, uint8_t saved[KFORMAT_DIRIV_LEN],
		     bool *had)
{
	int dfd = openat(parentfd, backing, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int fd, r;
	bool empty;

	*had = false;
	if (dfd < 0)
		return -errno;
	if ((r = dir_only_internal(dfd, &empty)) != 0)
		goto out;
	if (!empty) {
		r = -ENOTEMPTY;
		goto out;
	}
	fd = openat(dfd, KFORMAT_DIRIV_NAME, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0) {
		*had = kpread_full(fd, saved, KFORMAT_DIRIV_LEN, 0) == KFORMAT_DIRIV_LEN;
		close(fd);
	}
	if (unlinkat(dfd, KFORMAT_DIRIV_NAME, 0) < 0 && errno != ENOENT) {
		r = -errno;
		if (r == -EACCES) {
			struct kfs_lend l;

			if (kfs_lend(dfd, S_IWUSR, &l) == 0) {
				r = unlinkat(dfd, KFORMAT_DIRIV_NAME, 0) < 0 ? -errno : 0;
				kfs_unlend(&l);
			}
		}
		if (r)
			goto out;
	}
	r = 0;
out:
	close(dfd);
	return r;
}

static void restore_dir(int parentfd, const char *backing, const uint8_t saved[KFORMAT_DIRIV_LEN])
{
	char p[300];

	snprintf(p, sizeof(p), "%s/" KFORMAT_DIRIV_NAME, backing);
	if (kfile_create_at(parentfd, p, saved, KFORMAT_DIRIV_LEN, 0400) != 0)
		log_err("could not restore the directory IV file of %s", backing);
}

static int do_unlink(struct kfs *fs, struct kinode *dir, const char *name, bool isdir)
{
	char backing[256];
	uint8_t iv[16], saved[KFORMAT_DIRIV_LEN];
	const struct kformat_epoch_keys *k = NULL;
	struct kformat_lt_hold lt = { .fd = -1 };
	bool is_long, had = false;
	int r;

	if (dir == &fs->root)
		return -EPERM;
	if (dir->comp->read_only)
		return -EROFS;
	if ((r = kfs_encname(fs, dir, name, backing, &is_long, NULL, iv, &k)) != 0)
		return r == -EINVAL ? -ENOENT : r;
	if (isdir) {
		struct stat st;

		if (fstatat(dir->fd, backing, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
		if (!S_ISDIR(st.st_mode))
			return -ENOTDIR;
		if ((r = may(fs, dir, W_OK | X_OK)) != 0 ||
		    (r = strip_dir(dir->fd, backing, saved, &had)) != 0)
			return r;
	}
	if (!isdir)
		kformat_lt_hold(&lt, dir->fd, backing, NULL);
	if (unlinkat(dir->fd, backing, isdir ? AT_REMOVEDIR : 0) < 0) {
		r = -errno;
		if (isdir && had)
			restore_dir(dir->fd, backing, saved);
		kfs_lt_release(fs, &lt, dir->comp);
		return r;
	}
	if (is_long)
		kfs_longname_remove(dir->fd, backing);
	kfs_lt_release(fs, &lt, dir->comp);
	return 0;
}

static void kfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct kinode *dir = kfs_inode(FS(req), parent);
	int r = do_unlink(FS(req), dir, name, false);

	audit_name(req, "unlink", dir, name, r, NULL);
	fuse_reply_err(req, -r);
}

static void kfs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct kinode *dir = kfs_inode(FS(req), parent);
	int r = do_unlink(FS(req), dir, name, true);

	audit_name(req, "rmdir", dir, name, r, NULL);
	fuse_reply_err(req, -r);
}

/* ---- rename and link ---- */

/* a moved object: its inode (pinned) and what binds it */
struct moved {
	struct kinode *in;
	bool pinned_tmp; /* in was created here, not by the kernel */
	mode_t type;
	uint8_t oldbind[16], newbind[16];
	struct kformat_diriv d;
	const struct kformat_epoch_keys *dk;
	int rwfd;
};

static int moved_get(struct kfs *fs, struct kinode *dir, const char *backing, struct moved *m)
{
	struct stat st;
	int fd, r;

	memset(m, 0, sizeof(*m));
	m->rwfd = -1;
	if (fstatat(dir->fd, backing, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	m->type = st.st_mode & S_IFMT;
	m->in = kfs_inode_find(fs, &st);
	if (!m->in) {
		fd = openat(dir->fd, backing, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		if ((r = kfs_inode_get(fs, dir->comp, fd, &st, &m->in)) != 0)
			return r;
	}
	return 0;
}

static void moved_put(struct kfs *fs, struct moved *m)
{
	if (m->rwfd >= 0)
		close(m->rwfd);
	if (m->in)
		kfs_inode_unref(fs, m->in, 1);
	m->in = NULL;
}

/* phase 1: bind the object to both its old and its new place */
static int bind_both(struct kfs *fs, struct kinode *sdir, const char *sb, const char *sname,
		     const uint8_t siv[16], const uint8_t div[16], const char *db, struct moved *m)
{
	int r, dfd;

	if (kformat_binding(m->oldbind, siv, sb) || kformat_binding(m->newbind, div, db))
		return -EIO;
	kfs_set_place(fs, m->in, sdir, siv, sb, sname);
	if (m->type == S_IFREG) {
		struct stat st;

		if (fstat(m->in->fd, &st) < 0)
			return -errno;
		if (st.st_size == 0)
			return 0;
		if ((m->rwfd = open_rw(fs, m->in, O_RDWR, F_OK)) < 0)
			return m->rwfd;
		return kfs_io_rebind(fs, m->in, m->rwfd, m->newbind, m->oldbind, false);
	}
	if (m->type == S_IFDIR) {
		if ((r = kfs_dir_keys(fs, m->in, &m->d, &m->dk)) != 0)
			return r;
		memcpy(m->d.bind, m->newbind, 16);
		memcpy(m->d.bind_prev, m->oldbind, 16);
		dfd = m->in->fd;
		(void)sdir;
		return kfs_diriv_write(fs, dfd, &m->d, m->dk);
	}
	return 0;
}

/* phase 2 (after the rename) or undo (after a failed rename) */
static void bind_final(struct kfs *fs, struct moved *m, struct kinode *dir, const uint8_t iv[16],
		       const char *b, const char *pname, bool done)
{
	const uint8_t *bind = done ? m->newbind : m->oldbind;

	if (m->type == S_IFREG && m->rwfd >= 0) {
		if (kfs_io_rebind(fs, m->in, m->rwfd, bind, NULL, false) != 0)
			log_warn("could not finish the name binding of %s", b);
	} else if (m->type == S_IFDIR && m->dk) {
		memcpy(m->d.bind, bind, 16);
		memset(m->d.bind_prev, 0, 16);
		if (kfs_diriv_write(fs, m->in->fd, &m->d, m->dk) != 0)
			log_warn("could not finish the directory binding of %s", b);
		pthread_mutex_lock(&m->in->lk);
		m->in->diriv = m->d;
		m->in->diriv_ok = true;
		m->in->dkeys = m->dk;
		pthread_mutex_unlock(&m->in->lk);
	}
	kfs_set_place(fs, m->in, dir, iv, b, pname);
}

static int do_rename(struct kfs *fs, struct kinode *sdir, const char *sname, struct kinode *ddir,
		     const char *dname, unsigned int flags)
{
	struct newname sn, dn;
	struct moved ms, md;
	uint8_t saved[KFORMAT_DIRIV_LEN];
	bool had = false, side_new = false, exchange = flags & RENAME_EXCHANGE;
	struct kformat_lt_hold lt = { .fd = -1 };
	struct stat dst;
	int r;

	memset(&ms, 0, sizeof(ms));
	memset(&md, 0, sizeof(md));
	ms.rwfd = md.rwfd = -1;
	if (sdir == &fs->root || ddir == &fs->root)
		return -EPERM;
	if (sdir->comp != ddir->comp)
		return -EXDEV;
	if (sdir->comp->read_only)
		return -EROFS;
	if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL;
	if ((r = kfs_encname(fs, sdir, sname, sn.backing, &sn.is_long, sn.full, sn.iv, &sn.k)) != 0 ||
	    (r = kfs_encname(fs, ddir, dname, dn.backing, &dn.is_long, dn.full, dn.iv, &dn.k)) != 0)
		return r == -EINVAL ? -ENOENT : r;
	if ((r = moved_get(fs, sdir, sn.backing, &ms)) != 0)
		return r;
	if (sdir == ddir && strcmp(sn.backing, dn.backing) == 0)
		goto out; /* same name: nothing to do (r == 0) */
	if ((r = may(fs, sdir, W_OK | X_OK)) != 0 || (ddir != sdir && (r = may(fs, ddir, W_OK | X_OK)) != 0) ||
	    (ddir != sdir && ms.type == S_IFDIR && (r = may(fs, ms.in, W_OK)) != 0))
		goto out;
	if (fstatat(ddir->fd, dn.backing, &dst, AT_SYMLINK_NOFOLLOW) == 0) {
		if (flags & RENAME_NOREPLACE) {
			r = -EEXIST;
			goto out;
		}
		if (exchange) {
			if ((r = moved_get(fs, ddir, dn.backing, &md)) != 0)
				goto out;
		} else if (S_ISDIR(dst.st_mode)) {
			if (ms.type != S_IFDIR) {
				r = -EISDIR;
				goto out;
			}
			if ((r = strip_dir(ddir->fd, dn.backing, saved, &had)) != 0)
				goto out;
		} else if (ms.type == S_IFDIR) {
			r = -ENOTDIR;
			goto out;
		} else if (dst.st_dev == ms.in->dev && dst.st_ino == ms.in->ino) {
			goto out; /* hard links of one file: POSIX says do nothing */
		} else {
			kformat_lt_hold(&lt, ddir->fd, dn.backing, &dst);
		}
	} else if (exchange) {
		r = -ENOENT;
		goto out;
	}
	if (dn.is_long) {
		if ((r = kfs_longname_write(ddir->fd, dn.backing, dn.full)) < 0)
			goto out;
		side_new = r == 1;
	}
	if ((r = bind_both(fs, sdir, sn.backing, sname, sn.iv, dn.iv, dn.backing, &ms)) != 0)
		goto undo;
	if (exchange && (r = bind_both(fs, ddir, dn.backing, dname, dn.iv, sn.iv, sn.backing, &md)) != 0)
		goto undo;
	if (renameat2(sdir->fd, sn.backing, ddir->fd, dn.backing, flags) < 0) {
		r = -errno;
		goto undo;
	}
	bind_final(fs, &ms, ddir, dn.iv, dn.backing, dname, true);
	if (exchange)
		bind_final(fs, &md, sdir, sn.iv, sn.backing, sname, true);
	else if (sn.is_long)
		kfs_longname_remove(sdir->fd, sn.backing);
	r = 0;
	goto out;
undo:
	if (ms.in)
		bind_final(fs, &ms, sdir, sn.iv, sn.backing, sname, false);
	if (md.in)
		bind_final(fs, &md, ddir, dn.iv, dn.backing, dname, false);
	if (had)
		restore_dir(ddir->fd, dn.backing, saved);
	/* a side file written above for the new name names nothing now */
	if (side_new)
		kfs_longname_remove(ddir->fd, dn.backing);
out:
	kfs_lt_release(fs, &lt, sdir->comp);
	moved_put(fs, &ms);
	moved_put(fs, &md);
	return r;
}

static void kfs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		       const char *newname, unsigned int flags)
{
	struct kfs *fs = FS(req);
	struct kinode *sdir = kfs_inode(fs, parent), *ddir = kfs_inode(fs, newparent);
	int r = do_rename(fs, sdir, name, ddir, newname, flags);
	struct kfs_ev e = { .action = "rename", .in = sdir, .name = name, .in2 = ddir,
			    .name2 = newname, .err = r,
			    .detail = flags & RENAME_EXCHANGE ? "{\"exchange\":true}" : NULL };

	kfs_audit(fs, req, &e);
	fuse_reply_err(req, -r);
}

static void kfs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct kfs *fs = FS(req);
	struct kinode *in = kfs_inode(fs, ino), *dir = kfs_inode(fs, newparent);
	struct fuse_entry_param e;
	struct newname nn;
	char p[64];
	int r, fd;

	if (in == &fs->root || dir == &fs->root) {
		r = -EPERM;
		goto out;
	}
	if (in->comp != dir->comp) {
		r = -EXDEV;
		goto out;
	}
	if ((r = may(fs, dir, W_OK | X_OK)) != 0 || (r = prepare_name(fs, dir, newname, &nn)) != 0)
		goto out;
	if (S_ISREG(in->type)) {
		struct stat st;

		/* a second name: the header can no longer be bound to one place */
		if (fstat(in->fd, &st) == 0 && st.st_size > 0) {
			if ((fd = open_rw(fs, in, O_RDWR, F_OK)) < 0) {
				r = fd;
				undo_name(dir, &nn);
				goto out;
			}
			r = kfs_io_rebind(fs, in, fd, NULL, NULL, true);
			close(fd);
			if (r) {
				undo_name(dir, &nn);
				goto out;
			}
		}
	}
	kfs_fd_path(p, in->fd);
	if (linkat(AT_FDCWD, p, dir->fd, nn.backing, AT_SYMLINK_FOLLOW) < 0) {
		r = -errno;
		if (r == -ENOENT && S_ISLNK(in->type))
			r = linkat(in->fd, "", dir->fd, nn.backing, AT_EMPTY_PATH) < 0 ? -errno : 0;
		if (r) {
			if (r != -EEXIST)
				undo_name(dir, &nn);
			goto out;
		}
	}
	r = finish_new(fs, dir, &nn, &e);
out:
	{
		struct kfs_ev ev = { .action = "link", .in = in, .in2 = dir, .name2 = newname, .err = r };

		kfs_audit(fs, req, &ev);
	}
	if (r == 0)
		fuse_reply_entry(req, &e);
	else
		fuse_reply_err(req, -r);
}

/* ---- files ---- */

static int backing_flags(int flags)
{
	/* O_NOFOLLOW: the kernel resolved the path already, and the backing file is
	 * opened through its /proc/self/fd magic link, which must be followed */
	int f = flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_APPEND | O_DIRECT | O_ACCMODE | O_NOFOLLOW);

	/* writes need to read back partial blocks */
	f |= (flags & O_ACCMODE) == O_RDONLY ? O_RDONLY : O_RDWR;
	return f | O_CLOEXEC;
}

static int new_kfile(struct kfs *fs, struct kinode *in, int fd, int flags,
		     struct fuse_file_info *fi)
{
	struct kfile *f = calloc(1, sizeof(*f));
	int r;

	if (!f) {
		close(fd);
		return -ENOMEM;
	}
	f->fd = fd;
	f->in = in;
	/* with the writeback cache the kernel places appends itself and flushes
	 * pages at their real offsets */
	f->append = (flags & O_APPEND) && !fs->opt.writeback_cache;
	f->writable = (flags & O_ACCMODE) != O_RDONLY;
	if (flags & O_TRUNC) {
		pthread_rwlock_wrlock(&in->content);
		in->hdr_ok = false;
		pthread_rwlock_unlock(&in->content);
		/* a caller without CAP_FSETID truncates: as a write (HANDLE_KILLPRIV_V2) */
		if (kfs_kill_suidgid(fs) && (r = kill_suidgid_fd(fs, in, fd)) != 0) {
			close(fd);
			free(f);
			return r;
		}
	} else if ((r = kfs_io_open_header(fs, in, fd)) != 0) {
		close(fd);
		free(f);
		return r;
	}
	fi->fh = (uint64_t)(uintptr_t)f;
	fi->keep_cache = 0;
	/* Write-only handles bypass the page cache when there is no writeback
	 * cache: their writes reach the daemon at once either way (write-through),
	 * nothing can be read back through them, and the next open drops the
	 * cached pages anyway (keep_cache 0). Direct I/O spares the kernel's
	 * security.capability probe (a GETXATTR round trip) before the first
	 * write to each inode and a copy of every written page; the kill marks
	 * for set-user/group-ID arrive with each write (HANDLE_KILLPRIV_V2). */
	fi->direct_io = (flags & O_ACCMODE) == O_WRONLY && !fs->opt.writeback_cache &&
			fs->killpriv_v2 && !getenv("KINKO_NO_WRONLY_DIRECT");
	pthread_mutex_lock(&fs->files_lock);
	f->next = fs->files;
	if (fs->files)
		fs->files->prev = f;
	fs->files = f;
	pthread_mutex_unlock(&fs->files_lock);
	return 0;
}

static int do_open(struct kfs *fs, struct kinode *in, struct fuse_file_info *fi)
{
	int fd, r;

	if (in == &fs->root)
		return -EISDIR;
	if ((fi->flags & O_ACCMODE) != O_RDONLY && in->comp->read_only)
		return -EROFS;
	if ((fi->flags & O_TRUNC) && in->comp->read_only)
		return -EROFS;
	/* execve: the kernel checks only that some x bit is set (__FMODE_EXEC) */
	if ((fi->flags & 0x20) && (r = may(fs, in, X_OK)) != 0)
		return r;
	/* an execve reads the file with execute permission alone */
	fd = open_rw(fs, in, backing_flags(fi->flags),
		     (fi->flags & 0x20 ? X_OK : (fi->flags & O_ACCMODE) != O_WRONLY ? R_OK : 0) |
		     ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC) ? W_OK : 0));
	if (fd < 0)
		return fd;
	return new_kfile(fs, in, fd, fi->flags, fi);
}

static void kfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kinode *in = kfs_inode(FS(req), ino);
	int r;
	char d[80];

	if (kfs_guard_refuse(FS(req), req, "open", in, NULL)) {
		fuse_reply_err(req, EACCES);
		return;
	}
	r = do_open(FS(req), in, fi);

	snprintf(d, sizeof(d), "{\"mode\":\"%s\"%s%s}",
		 (fi->flags & O_ACCMODE) == O_RDONLY ? "r" : (fi->flags & O_ACCMODE) == O_WRONLY ? "w" : "rw",
		 fi->flags & O_TRUNC ? ",\"truncate\":true" : "",
		 fi->flags & O_APPEND ? ",\"append\":true" : "");
	audit_name(req, "open", in, NULL, r, d);
	if (r == 0)
		kfs_caller(FS(req), req, (struct kfile *)(uintptr_t)fi->fh);
	if (r == 0 && (fi->flags & O_ACCMODE) != O_WRONLY)
		kfs_count_open(FS(req), in);

	if (r == 0)
		fuse_reply_open(req, fi);
	else
		fuse_reply_err(req, -r);
}

static void kfs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		       struct fuse_file_info *fi)
{
	struct kfs *fs = FS(req);
	struct kinode *dir = kfs_inode(fs, parent);
	struct fuse_entry_param e;
	struct newname nn;
	int r, fd;

	if (kfs_guard_refuse(fs, req, "create", dir, name)) {
		fuse_reply_err(req, EACCES);
		return;
	}
	if ((r = prepare_name(fs, dir, name, &nn)) != 0)
		goto out;
	fd = openat(dir->fd, nn.backing,
		    backing_flags(fi->flags) | O_CREAT | O_NOFOLLOW | (fi->flags & O_EXCL), mode);
	if (fd < 0) {
		r = -errno;
		if (r != -EEXIST)
			undo_name(dir, &nn);
		goto out;
	}
	set_owner(fs, req, dir, nn.backing);
	if ((r = finish_new(fs, dir, &nn, &e)) != 0) {
		close(fd);
		goto out;
	}
	if ((r = new_kfile(fs, kfs_inode(fs, e.ino), fd, fi->flags, fi)) != 0) {
		kfs_inode_unref(fs, kfs_inode(fs, e.ino), 1);
		goto out;
	}
	kfs_caller(fs, req, (struct kfile *)(uintptr_t)fi->fh);
out:
	{
		char d[64];

		snprintf(d, sizeof(d), "{\"mode\":\"%s\"}",
			 (fi->flags & O_ACCMODE) == O_RDONLY ? "r" : (fi->flags & O_ACCMODE) == O_WRONLY ? "w" : "rw");
		audit_name(req, "create", dir, name, r, d);
	}
	if (r == 0)
		fuse_reply_create(req, &e, fi);
	else
		fuse_reply_err(req, -r);
}

static void kfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct kfile *f = (struct kfile *)(uintptr_t)fi->fh;
	char *buf;
	ssize_t n;

	(void)ino;
	n = kfs_io_read(FS(req), f->in, f->fd, &buf, size, off);
	if (n < 0) {
		fuse_reply_err(req, (int)-n);
		return;
	}
	atomic_fetch_add(&f->bytes_read, (uint64_t)n);
	kfs_count_read(FS(req), (uint64_t)n);
	fuse_reply_buf(req, buf, (size_t)n);
}

static void kfs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	struct kfile *f = (struct kfile *)(uintptr_t)fi->fh;
	ssize_t n;

	(void)ino;
	if (!f->writable) {
		fuse_reply_err(req, EBADF);
		return;
	}
	n = kfs_io_write(FS(req), f->in, f->fd, buf, size, off, f->append, kfs_kill_suidgid(FS(req)));
	if (n < 0) {
		fuse_reply_err(req, (int)-n);
		return;
	}
	atomic_fetch_add(&f->bytes_written, (uint64_t)n);
	fuse_reply_write(req, (size_t)n);
}

static void kfs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kfile *f = (struct kfile *)(uintptr_t)fi->fh;
	struct kfs_ev e = { .action = "release", .in = f->in, .bytes = true, .opener = f,
			    .rd = atomic_load(&f->bytes_read), .wr = atomic_load(&f->bytes_written) };

	(void)ino;
	kfs_audit(FS(req), req, &e);
	pthread_mutex_lock(&FS(req)->files_lock);
	if (f->prev)
		f->prev->next = f->next;
	else
		FS(req)->files = f->next;
	if (f->next)
		f->next->prev = f->prev;
	pthread_mutex_unlock(&FS(req)->files_lock);
	close(f->fd);
	free(f);
	fuse_reply_err(req, 0);
}

static void kfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct kfile *f = (struct kfile *)(uintptr_t)fi->fh;
	int r;

	(void)ino;
	r = datasync ? fdatasync(f->fd) : fsync(f->fd);
	fuse_reply_err(req, r < 0 ? errno : 0);
}

static void kfs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			  struct fuse_file_info *fi)
{
	struct kfile *f = (struct kfile *)(uintptr_t)fi->fh;

	(void)ino;
	if (!f->writable) {
		fuse_reply_err(req, EBADF);
		return;
	}
	fuse_reply_err(req, -kfs_io_fallocate(FS(req), f->in, f->fd, mode, off, len));
}

/* ---- directories ---- */

static void kfs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kfs *fs = FS(req);
	struct kinode *in = kfs_inode(fs, ino);
	struct kdirh *d;
	int fd;

	if (in != &fs->root && kfs_guard_refuse(fs, req, "opendir", in, NULL)) {
		fuse_reply_err(req, EACCES);
		return;
	}
	if (!(d = calloc(1, sizeof(*d)))) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (in != &fs->root) {
		struct kformat_diriv dv;
		const struct kformat_epoch_keys *dk;
		int r = kfs_dir_keys(fs, in, &dv, &dk);
		bool empty = false;

		/* an empty directory without a valid IV file has no names to protect:
		 * list it (empty) so it can be removed */
		if (r && !(dir_only_internal(in->fd, &empty) == 0 && empty)) {
			free(d);
			fuse_reply_err(req, -r);
			return;
		}
		char p[64];

		/* through the magic link: listing needs read permission, not search */
		kfs_fd_path(p, in->fd);
		fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || !(d->dp = fdopendir(fd))) {
			int e = errno;

			if (fd >= 0)
				close(fd);
			free(d);
			fuse_reply_err(req, e);
			return;
		}
	}
	fi->fh = (uint64_t)(uintptr_t)d;
	fuse_reply_open(req, fi);
}

static size_t add_entry(fuse_req_t req, char *p, size_t rem, bool plus, const char *name,
			struct fuse_entry_param *e, const struct stat *st, off_t next)
{
	if (plus)
		return fuse_add_direntry_plus(req, p, rem, name, e, next);
	return fuse_add_direntry(req, p, rem, name, st, next);
}

static void root_readdir(fuse_req_t req, struct kfs *fs, size_t size, off_t off, bool plus)
{
	char *buf = calloc(1, size), *p = buf;
	size_t rem = size, n;
	struct kkeyring *ring = fs->v->ring;
	off_t total = 2 + (off_t)ring->ncomps;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (off_t i = off; i < total; i++) {
		struct fuse_entry_param e;
		struct stat st;
		const char *name;

		memset(&e, 0, sizeof(e));
		memset(&st, 0, sizeof(st));
		if (i < 2) {
			name = i == 0 ? "." : "..";
			st.st_ino = FUSE_ROOT_ID;
			st.st_mode = S_IFDIR;
			e.attr = st;
		} else {
			name = ring->comps[i - 2].name;
			st.st_mode = S_IFDIR;
			if (ring->comps[i - 2].closed)
				continue;
			if (plus && comp_lookup(fs, name, &e) != 0)
				continue;
			st = e.attr;
		}
		n = add_entry(req, p, rem, plus, name, &e, &st, i + 1);
		if (n > rem) {
			if (plus && i >= 2)
				kfs_inode_unref(fs, kfs_inode(fs, e.ino), 1);
			break;
		}
		p += n;
		rem -= n;
	}
	fuse_reply_buf(req, buf, size - rem);
	free(buf);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct kfs *fs = FS(req);
	struct kinode *dir = kfs_inode(fs, ino);
	struct kdirh *d = (struct kdirh *)(uintptr_t)fi->fh;
	char *buf, *p, name[256];
	size_t rem = size;
	int err = 0;

	if (dir == &fs->root) {
		root_readdir(req, fs, size, off, plus);
		return;
	}
	buf = calloc(1, size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	p = buf;
	if (off != d->offset) {
		seekdir(d->dp, off);
		d->entry = NULL;
		d->offset = off;
	}
	for (;;) {
		struct fuse_entry_param e;
		struct stat st;
		struct dirent *de;
		size_t n;
		off_t next;
		bool isdot;

		if (!d->entry) {
			errno = 0;
			d->entry = readdir(d->dp);
			if (!d->entry) {
				if (errno)
					err = errno;
				break;
			}
		}
		de = d->entry;
		next = de->d_off;
		isdot = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");
		if (isdot) {
			snprintf(name, sizeof(name), "%s", de->d_name);
		} else {
			int r = kfs_decname(fs, dir, dirfd(d->dp), de->d_name, name);

			if (r) { /* kinko's own files, foreign or damaged entries: not shown */
				d->entry = NULL;
				d->offset = next;
				continue;
			}
		}
		memset(&e, 0, sizeof(e));
		memset(&st, 0, sizeof(st));
		st.st_ino = de->d_ino;
		st.st_mode = (mode_t)DTTOIF(de->d_type);
		if (plus && !isdot) {
			struct kformat_diriv dv;
			const struct kformat_epoch_keys *dk;
			int r = kfs_dir_keys(fs, dir, &dv, &dk);

			if (r == 0)
				r = lookup_backing(fs, dir, de->d_name, name, dv.iv, &e);
			if (r == -EACCES) {
				/* a directory its owner may read but not search:
				 * the name without attributes (node 0), as natively */
				memset(&e, 0, sizeof(e));
				e.attr = st;
				r = 0;
			}
			if (r) {
				d->entry = NULL;
				d->offset = next;
				continue;
			}
		} else {
			e.attr = st;
		}
		n = add_entry(req, p, rem, plus, name, &e, &st, next);
		if (n > rem) {
			if (plus && !isdot && e.ino)
				kfs_inode_unref(fs, kfs_inode(fs, e.ino), 1);
			break;
		}
		p += n;
		rem -= n;
		d->entry = NULL;
		d->offset = next;
	}
	if (err && rem == size)
		fuse_reply_err(req, err);
	else
		fuse_reply_buf(req, buf, size - rem);
	free(buf);
}

static void kfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

static void kfs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			    struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

static void kfs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kdirh *d = (struct kdirh *)(uintptr_t)fi->fh;

	(void)ino;
	if (d->dp)
		closedir(d->dp);
	free(d);
	fuse_reply_err(req, 0);
}

static void kfs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct kdirh *d = (struct kdirh *)(uintptr_t)fi->fh;
	int r = 0;

	(void)ino;
	if (d->dp)
		r = (datasync ? fdatasync(dirfd(d->dp)) : fsync(dirfd(d->dp))) < 0 ? errno : 0;
	fuse_reply_err(req, r);
}

static void kfs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;

	(void)ino;
	if (fstatvfs(FS(req)->v->datafd, &sv) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	sv.f_namemax = KFORMAT_NAME_MAX;
	fuse_reply_statfs(req, &sv);
}

/* ---- xattrs: only the user namespace, names and values encrypted ---- */

/* the backing name under which a plaintext xattr name is stored, if any */
/* 1 if P carries the backing attribute NAME, 0 if not. getxattr needs read
 * permission: a write-only file (which may still be given attributes) is
 * searched through its list of names, which needs none. */
static int xattr_present(const char *p, const char *name)
{
	ssize_t n;
	char *list;
	int r = 0;

	if (getxattr(p, name, NULL, 0) >= 0)
		return 1;
	if (errno != EACCES)
		return errno == ENODATA ? 0 : -errno;
	if ((n = listxattr(p, NULL, 0)) <= 0)
		return n < 0 ? -errno : 0;
	if (!(list = malloc((size_t)n)))
		return -ENOMEM;
	if ((n = listxattr(p, list, (size_t)n)) < 0)
		r = -errno;
	for (size_t i = 0; r == 0 && n > 0 && i < (size_t)n;) {
		size_t len = strnlen(list + i, (size_t)n - i);

		if (i + len < (size_t)n && strcmp(list + i, name) == 0)
			r = 1;
		i += len + 1;
	}
	free(list);
	return r;
}

static int xattr_find(struct kfs *fs, struct kinode *in, const char *p, const char *name,
		      char *out, size_t outmax, const struct kformat_epoch_keys **kout)
{
	struct kkeys_comp *c = in->comp;

	for (size_t i = kkeys_comp_nepochs(c); i-- > 0;) {
		const struct kformat_epoch_keys *k = &c->epochs[i];

		int r;

		if (kformat_xattr_name_encrypt(k, name, out, outmax) != 0)
			return -ERANGE;
		if ((r = xattr_present(p, out)) < 0)
			return r;
		if (r) {
			*kout = k;
			return 0;
		}
	}
	(void)fs;
	return -ENODATA;
}

static int xattr_target(struct kfs *fs, struct kinode *in, const char *name, char p[64])
{
	if (in == &fs->root)
		return -ENOTSUP;
	/* Only user.* is kept. Every other namespace, security.* included,
	 * is "not supported" rather than "absent": ls -l (libselinux) then
	 * stops asking for security.selinux on this device after the first
	 * file, which spares one GETXATTR round trip per listed file. */
	if (strncmp(name, XATTR_USER, sizeof(XATTR_USER) - 1) != 0)
		return -ENOTSUP;
	if (S_ISLNK(in->type))
		return -ENODATA;
	kfs_fd_path(p, in->fd);
	return 0;
}

static void kfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct kfs *fs = FS(req);
	struct kinode *in = kfs_inode(fs, ino);
	char p[64], bname[300];
	const struct kformat_epoch_keys *k = NULL;
	uint8_t *enc = NULL, *val = NULL;
	ssize_t n;
	int r;

	if ((r = xattr_target(fs, in, name, p)) != 0)
		goto out;
	if ((r = xattr_find(fs, in, p, name, bname, sizeof(bname), &k)) != 0) {
		/* natively the read permission comes first (without
		 * default_permissions nobody else checked it) */
		if (r == -ENODATA && !fs->opt.default_permissions &&
		    kfs_fd_access(in->fd, R_OK) == -EACCES)
			r = -EACCES;
		goto out;
	}
	n = getxattr(p, bname, NULL, 0);
	if (n < 0) {
		r = -errno;
		goto out;
	}
	enc = malloc((size_t)n + 1);
	val = malloc((size_t)n + 1);
	if (!enc || !val) {
		r = -ENOMEM;
		goto out;
	}
	n = getxattr(p, bname, enc, (size_t)n);
	if (n < 0) {
		r = -errno;
		goto out;
	}
	if (kformat_xattr_value_decrypt(&fs->geom, k, bname, enc, (size_t)n, val) != 0) {
		kfs_integrity(fs, in, "xattr value does not decrypt", KERR_AUTH);
		r = -EIO;
		goto out;
	}
	n -= (ssize_t)kformat_xattr_value_overhead(&fs->geom);
	if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else if ((size_t)n > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, (char *)val, (size_t)n);
	r = 1;
out:
	if (r <= 0)
		fuse_reply_err(req, -r);
	free(enc);
	free(val);
}

static void kfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			 size_t size, int flags)
{
	struct kfs *fs = FS(req);
	struct kinode *in = kfs_inode(fs, ino);
	char p[64], oldname[300], bname[300];
	const struct kformat_epoch_keys *k = NULL, *ok = NULL;
	uint8_t *enc = NULL;
	int r;

	if ((r = xattr_target(fs, in, name, p)) != 0)
		goto out;
	if (in->comp->read_only) {
		r = -EROFS;
		goto out;
	}
	/* natively the write permission comes before the attribute's existence */
	if ((r = may(fs, in, W_OK)) != 0)
		goto out;
	r = xattr_find(fs, in, p, name, oldname, sizeof(oldname), &ok);
	if (r && r != -ENODATA)
		goto out;
	if ((flags & XATTR_CREATE) && r == 0) {
		r = -EEXIST;
		goto out;
	}
	if ((flags & XATTR_REPLACE) && r == -ENODATA)
		goto out;
	k = kvault_current_keys(fs->v, in->comp);
	if (!k || kformat_xattr_name_encrypt(k, name, bname, sizeof(bname)) != 0) {
		r = k ? -ERANGE : -EIO;
		goto out;
	}
	enc = malloc(size + kformat_xattr_value_overhead(&fs->geom));
	if (!enc) {
		r = -ENOMEM;
		goto out;
	}
	if (kformat_xattr_value_encrypt(&fs->geom, k, bname, (const uint8_t *)value, size, enc)) {
		r = -EIO;
		goto out;
	}
	if (setxattr(p, bname, enc, size + kformat_xattr_value_overhead(&fs->geom), 0) < 0) {
		r = -errno;
		goto out;
	}
	if (ok && ok != k)
		removexattr(p, oldname); /* the same name under an older epoch */
	r = 0;
out:
	{
		char *d = detail_str("xattr", name);

		audit_name(req, "setxattr", in, NULL, r, d);
		free(d);
	}
	free(enc);
	fuse_reply_err(req, -r);
}

static void kfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct kfs *fs = FS(req);
	struct kinode *in = kfs_inode(fs, ino);
	char p[64], *list = NULL, *out = NULL, plain[256];
	size_t olen = 0;
	ssize_t n;
	int r = 0;

	if (in == &fs->root || S_ISLNK(in->type)) {
		if (size == 0)
			fuse_reply_xattr(req, 0);
		else
			fuse_reply_buf(req, NULL, 0);
		return;
	}
	kfs_fd_path(p, in->fd);
	n = listxattr(p, NULL, 0);
	if (n < 0) {
		r = -errno;
		goto out;
	}
	list = malloc((size_t)n + 1);
	out = malloc((size_t)n + 1);
	if (!list || !out) {
		r = -ENOMEM;
		goto out;
	}
	n = listxattr(p, list, (size_t)n);
	if (n < 0) {
		r = -errno;
		goto out;
	}
	for (char *s = list; s < list + n; s += strlen(s) + 1) {
		uint32_t epoch;
		const struct kformat_epoch_keys *k = NULL;
		size_t l;

		if (kformat_xattr_name_epoch(s, &epoch) != 0 || !(k = kkeys_comp_epoch(in->comp, epoch)) ||
		    kformat_xattr_name_decrypt(k, s, plain, sizeof(plain)) != 0)
			continue;
		l = strlen(plain) + 1;
		if (olen + l > (size_t)n)
			break; /* plaintext names are shorter than encrypted ones */
		memcpy(out + olen, plain, l);
		olen += l;
	}
	if (size == 0)
		fuse_reply_xattr(req, olen);
	else if (olen > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, out, olen);
	r = 1;
out:
	if (r <= 0)
		fuse_reply_err(req, -r);
	free(list);
	free(out);
}

static void kfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct kfs *fs = FS(req);
	struct kinode *in = kfs_inode(fs, ino);
	char p[64], bname[300];
	const struct kformat_epoch_keys *k = NULL;
	int r;

	if ((r = xattr_target(fs, in, name, p)) == 0) {
		if (in->comp->read_only)
			r = -EROFS;
		else if ((r = may(fs, in, W_OK)) == 0 &&
			 (r = xattr_find(fs, in, p, name, bname, sizeof(bname), &k)) == 0 &&
			 removexattr(p, bname) < 0)
			r = -errno;
	}
	{
		char *d = detail_str("xattr", name);

		audit_name(req, "removexattr", in, NULL, r, d);
		free(d);
	}
	fuse_reply_err(req, -r);
}

/* ---- session ---- */

static void kfs_init(void *userdata, struct fuse_conn_info *conn)
{
	struct kfs *fs = userdata;

	/* no NFS export: inode numbers are pointers */
	conn->want &= ~FUSE_CAP_EXPORT_SUPPORT;
	/* O_TRUNC arrives with open, so truncation and open are one step */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* we transform every byte: splicing buys nothing */
	conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
	/* locks stay in the kernel (local to this workstation) */
	conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
	if (fs->opt.writeback_cache && (conn->capable & FUSE_CAP_WRITEBACK_CACHE))
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	else
		conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	/* Cached pages stay until the file is reopened (close-to-open, as NFS):
	 * with automatic invalidation every attribute refresh after a write
	 * throws away the whole file's cache. KINKO_AUTO_INVAL=1 restores it. */
	if (!getenv("KINKO_AUTO_INVAL"))
		conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	fs->proto_minor = conn->proto_minor;
	kfs_io_helpers_start();
	/* one write request covers up to 256 blocks */
	conn->max_write = 1u << 20;
	conn->max_readahead = conn->max_readahead > (1u << 20) ? (1u << 20) : conn->max_readahead;
}

/* ---- the gate: every request but forget and release passes kfs_enter ---- */
#define GATED(op, decl, args, what, ino, nm) \
	static void g_##op decl \
	{ \
		struct kfs *fs_ = FS(req); \
		if (kfs_enter(fs_, req, what, kfs_inode(fs_, ino), nm) != 0) \
			return; \
		kfs_##op args; \
		kfs_leave(fs_); \
	}
GATED(lookup, (fuse_req_t req, fuse_ino_t parent, const char *name), (req, parent, name), "lookup", parent, name)
GATED(access, (fuse_req_t req, fuse_ino_t ino, int mask), (req, ino, mask), "access", ino, NULL)
GATED(getattr, (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi), (req, ino, fi), "getattr", ino, NULL)
GATED(setattr, (fuse_req_t req, fuse_ino_t ino, struct stat *attr, int valid, struct fuse_file_info *fi), (req, ino, attr, valid, fi), "setattr", ino, NULL)
GATED(readlink, (fuse_req_t req, fuse_ino_t ino), (req, ino), "readlink", ino, NULL)
GATED(mknod, (fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev), (req, parent, name, mode, rdev), "mknod", parent, name)
GATED(mkdir, (fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode), (req, parent, name, mode), "mkdir", parent, name)
GATED(unlink, (fuse_req_t req, fuse_ino_t parent, const char *name), (req, parent, name), "unlink", parent, name)
GATED(rmdir, (fuse_req_t req, fuse_ino_t parent, const char *name), (req, parent, name), "rmdir", parent, name)
GATED(symlink, (fuse_req_t req, const char *link, fuse_ino_t parent, const char *name), (req, link, parent, name), "symlink", parent, name)
GATED(rename, (fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent, const char *newname, unsigned int flags), (req, parent, name, newparent, newname, flags), "rename", parent, name)
GATED(link, (fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname), (req, ino, newparent, newname), "link", ino, NULL)
GATED(open, (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi), (req, ino, fi), "open", ino, NULL)
GATED(read, (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi), (req, ino, size, off, fi), "read", ino, NULL)
GATED(write, (fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off, struct fuse_file_info *fi), (req, ino, buf, size, off, fi), "write", ino, NULL)
GATED(fsync, (fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi), (req, ino, datasync, fi), "fsync", ino, NULL)
GATED(opendir, (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi), (req, ino, fi), "opendir", ino, NULL)
GATED(readdir, (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi), (req, ino, size, off, fi), "readdir", ino, NULL)
GATED(readdirplus, (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi), (req, ino, size, off, fi), "readdir", ino, NULL)
GATED(fsyncdir, (fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi), (req, ino, datasync, fi), "fsyncdir", ino, NULL)
GATED(statfs, (fuse_req_t req, fuse_ino_t ino), (req, ino), "statfs", ino, NULL)
GATED(setxattr, (fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size, int flags), (req, ino, name, value, size, flags), "setxattr", ino, NULL)
GATED(getxattr, (fuse_req_t req, fuse_ino_t ino, const char *name, size_t size), (req, ino, name, size), "getxattr", ino, NULL)
GATED(listxattr, (fuse_req_t req, fuse_ino_t ino, size_t size), (req, ino, size), "listxattr", ino, NULL)
GATED(removexattr, (fuse_req_t req, fuse_ino_t ino, const char *name), (req, ino, name), "removexattr", ino, NULL)
GATED(create, (fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi), (req, parent, name, mode, fi), "create", parent, name)
GATED(fallocate, (fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len, struct fuse_file_info *fi), (req, ino, mode, off, len, fi), "fallocate", ino, NULL)

static const struct fuse_lowlevel_ops kfs_oper = {
	.init = kfs_init,
	.lookup = g_lookup,
	.forget = kfs_forget,
	.forget_multi = kfs_forget_multi,
	.getattr = g_getattr,
	.access = g_access,
	.setattr = g_setattr,
	.readlink = g_readlink,
	.mknod = g_mknod,
	.mkdir = g_mkdir,
	.unlink = g_unlink,
	.rmdir = g_rmdir,
	.symlink = g_symlink,
	.rename = g_rename,
	.link = g_link,
	.open = g_open,
	.read = g_read,
	.write = g_write,
	/* no .flush: nothing to do at close(), and without it the kernel stops
	 * sending FLUSH (one round trip less per close); locks stay in the kernel */
	.release = kfs_release,
	.fsync = g_fsync,
	.opendir = g_opendir,
	.readdir = g_readdir,
	.readdirplus = g_readdirplus,
	.releasedir = kfs_releasedir,
	.fsyncdir = g_fsyncdir,
	.statfs = g_statfs,
	.setxattr = g_setxattr,
	.getxattr = g_getxattr,
	.listxattr = g_listxattr,
	.removexattr = g_removexattr,
	.create = g_create,
	.fallocate = g_fallocate,
};

const struct fuse_lowlevel_ops *kfs_ops(void) { return &kfs_oper; }

void kfs_release_leftovers(struct kfs *fs)
{
	/* the kernel drops RELEASE requests still queued when the file system
	 * is unmounted: the audit log gets the bytes of those handles here */
	pthread_mutex_lock(&fs->files_lock);
	while (fs->files) {
		struct kfile *f = fs->files;
		struct kfs_ev e = { .action = "release", .in = f->in, .bytes = true, .opener = f,
				    .rd = atomic_load(&f->bytes_read),
				    .wr = atomic_load(&f->bytes_written),
				    .detail = "{\"at_unmount\":true}" };

		fs->files = f->next;
		kfs_audit(fs, NULL, &e);
		close(f->fd);
		free(f);
	}
	pthread_mutex_unlock(&fs->files_lock);
}

struct kfs *kfs_new(struct kvault *v, const struct kfs_options *o)
{
	struct kfs *fs = calloc(1, sizeof(*fs));

	if (!fs)
		return NULL;
	fs->v = v;
	fs->geom = v->geom;
	fs->opt = *o;
	fs->opt.default_permissions = kfs_kernel_checks(o);
	fs->root.fd = -1;
	fs->root.nlookup = 2;
	pthread_mutex_init(&fs->root.lk, NULL);
	pthread_rwlock_init(&fs->root.content, NULL);
	pthread_mutex_init(&fs->itab_lock, NULL);
	fs->uid = getuid();
	fs->gid = getgid();
	fs->as_root = geteuid() == 0;
	pthread_mutex_init(&fs->guard_lock, NULL);
	pthread_mutex_init(&fs->files_lock, NULL);
	pthread_mutex_init(&fs->encname_lock, NULL);
	kfs_session_init(fs);
	return fs;
}

void kfs_free(struct kfs *fs)
{
	if (!fs)
		return;
	kfs_session_free(fs);
	kfs_release_leftovers(fs);
	kfs_io_helpers_stop();
	kguard_free(fs->opt.guard);
	pthread_mutex_destroy(&fs->files_lock);
	pthread_mutex_destroy(&fs->guard_lock);
	pthread_mutex_destroy(&fs->encname_lock);
	for (size_t i = 0; i < fs->itab_size; i++) {
		struct kinode *in = fs->itab[i], *next;

		for (; in; in = next) {
			next = in->hnext;
			kfs_inode_destroy(fs, in);
		}
	}
	free(fs->itab);
	pthread_mutex_destroy(&fs->itab_lock);
	free(fs);
}

// SPDX-License-Identifier: GPL-2.0-or-later
/* Inode table (lookup counts follow the kernel's rules), directory IVs,
 * name encryption in a directory, attribute translation. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs_i.h"

struct kinode *kfs_inode(struct kfs *fs, fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return &fs->root;
	return (struct kinode *)(uintptr_t)ino;
}

static size_t hslot(struct kfs *fs, dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9E3779B97F4A7C15ull ^ (uint64_t)dev;

	return (size_t)(h >> 17) & (fs->itab_size - 1);
}

static int itab_grow(struct kfs *fs)
{
	size_t nsize = fs->itab_size ? fs->itab_size * 2 : 1024;
	struct kinode **nt = calloc(nsize, sizeof(*nt));
	size_t osize = fs->itab_size;
	struct kinode **ot = fs->itab;

	if (!nt)
		return -ENOMEM;
	fs->itab = nt;
	fs->itab_size = nsize;
	for (size_t i = 0; i < osize; i++) {
		struct kinode *in = ot[i], *next;

		for (; in; in = next) {
			size_t s = hslot(fs, in->dev, in->ino);

			next = in->hnext;
			in->hnext = nt[s];
			nt[s] = in;
		}
	}
	free(ot);
	return 0;
}

void kfs_inode_destroy(struct kfs *fs, struct kinode *in)
{
	/* the last link of this long symlink went while the kernel still held
	 * it (an O_PATH descriptor can read it): its side file goes now */
	if (in->lt_ref) {
		kformat_symlink_forget(fs->v->datafd, in->comp->hexid, in->lt_ref);
		free(in->lt_ref);
	}
	if (in->fd >= 0)
		close(in->fd);
	free(in->bname);
	free(in->pname);
	pthread_mutex_destroy(&in->lk);
	pthread_rwlock_destroy(&in->content);
	free(in);
}

int kfs_inode_get(struct kfs *fs, struct kkeys_comp *comp, int fd, const struct stat *st,
		  struct kinode **out)
{
	struct kinode *in;
	size_t s;

	pthread_mutex_lock(&fs->itab_lock);
	if (fs->itab_size) {
		for (in = fs->itab[hslot(fs, st->st_dev, st->st_ino)]; in; in = in->hnext)
			if (in->dev == st->st_dev && in->ino == st->st_ino) {
				in->nlookup++;
				pthread_mutex_unlock(&fs->itab_lock);
				close(fd);
				*out = in;
				return 0;
			}
	}
	if (fs->itab_count + 1 > fs->itab_size / 2 && itab_grow(fs) != 0) {
		pthread_mutex_unlock(&fs->itab_lock);
		close(fd);
		return -ENOMEM;
	}
	in = calloc(1, sizeof(*in));
	if (!in) {
		pthread_mutex_unlock(&fs->itab_lock);
		close(fd);
		return -ENOMEM;
	}
	in->fd = fd;
	in->dev = st->st_dev;
	in->ino = st->st_ino;
	in->type = st->st_mode & S_IFMT;
	in->comp = comp;
	in->nlookup = 1;
	pthread_mutex_init(&in->lk, NULL);
	pthread_rwlock_init(&in->content, NULL);
	s = hslot(fs, in->dev, in->ino);
	in->hnext = fs->itab[s];
	fs->itab[s] = in;
	fs->itab_count++;
	pthread_mutex_unlock(&fs->itab_lock);
	*out = in;
	return 0;
}

void kfs_inode_unref(struct kfs *fs, struct kinode *in, uint64_t n)
{
	struct kinode **pp, *parent;

	while (in && in != &fs->root) {
		pthread_mutex_lock(&fs->itab_lock);
		if (n > in->nlookup)
			abort(); /* the kernel forgot more than it looked up: an internal bug */
		in->nlookup -= n;
		if (in->nlookup != 0) {
			pthread_mutex_unlock(&fs->itab_lock);
			return;
		}
		for (pp = &fs->itab[hslot(fs, in->dev, in->ino)]; *pp; pp = &(*pp)->hnext)
			if (*pp == in) {
				*pp = in->hnext;
				break;
			}
		fs->itab_count--;
		pthread_mutex_unlock(&fs->itab_lock);
		parent = in->parent;
		kfs_inode_destroy(fs, in);
		/* release the pin this inode held on its parent */
		in = parent;
		n = 1;
	}
}

struct kinode *kfs_inode_find(struct kfs *fs, const struct stat *st)
{
	struct kinode *in = NULL;

	pthread_mutex_lock(&fs->itab_lock);
	if (fs->itab_size) {
		for (in = fs->itab[hslot(fs, st->st_dev, st->st_ino)]; in; in = in->hnext)
			if (in->dev == st->st_dev && in->ino == st->st_ino)
				break;
		if (in)
			in->nlookup++; /* pin while the caller uses it */
	}
	pthread_mutex_unlock(&fs->itab_lock);
	return in;
}

void kfs_lt_release(struct kfs *fs, struct kformat_lt_hold *h, struct kkeys_comp *comp)
{
	struct kinode *in;
	struct stat st;
	bool deferred = false;
	char *ref;

	if (h->fd < 0)
		return;
	if (fstat(h->fd, &st) == 0 && st.st_nlink == 0) {
		/* the kernel still holds the unlinked symlink: readlink through
		 * an O_PATH descriptor must still work, so its side file stays
		 * until the kernel forgets it (or the mount ends). Out of
		 * memory, it goes now rather than never. */
		if ((in = kfs_inode_find(fs, &st))) {
			ref = strdup(h->ref);
			pthread_mutex_lock(&fs->itab_lock);
			if (in->lt_ref) {
				deferred = true;
			} else if (ref) {
				in->lt_ref = ref;
				ref = NULL;
				deferred = true;
			}
			pthread_mutex_unlock(&fs->itab_lock);
			free(ref);
			kfs_inode_unref(fs, in, 1);
		}
		if (!deferred)
			kformat_symlink_forget(fs->v->datafd, comp->hexid, h->ref);
	}
	close(h->fd);
	h->fd = -1;
}

static void pin(struct kfs *fs, struct kinode *in)
{
	pthread_mutex_lock(&fs->itab_lock);
	in->nlookup++;
	pthread_mutex_unlock(&fs->itab_lock);
}

int kfs_set_place(struct kfs *fs, struct kinode *in, struct kinode *parent,
		  const uint8_t parent_iv[16], const char *bname, const char *pname)
{
	char *n = strdup(bname), *pn = pname ? strdup(pname) : NULL;
	struct kinode *old;

	if (!n || (pname && !pn)) {
		free(n);
		free(pn);
		return -ENOMEM;
	}
	if (parent == &fs->root)
		parent = NULL;
	if (parent)
		pin(fs, parent);
	pthread_mutex_lock(&in->lk);
	memcpy(in->parent_iv, parent_iv, 16);
	free(in->bname);
	in->bname = n;
	if (pn) {
		free(in->pname);
		in->pname = pn;
	}
	old = in->parent;
	in->parent = parent;
	pthread_mutex_unlock(&in->lk);
	if (old)
		kfs_inode_unref(fs, old, 1);
	return 0;
}

void kfs_inval_children(struct kfs *fs, struct kinode *dir)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	bool oom = false;

	pthread_mutex_lock(&fs->itab_lock);
	for (size_t i = 0; i < fs->itab_size && !oom; i++) {
		for (struct kinode *in = fs->itab[i]; in && !oom; in = in->hnext) {
			pthread_mutex_lock(&in->lk);
			if (in->parent == dir && in->pname) {
				if (n == cap) {
					size_t nc = cap ? cap * 2 : 16;
					char **t = realloc(names, nc * sizeof(*t));

					if (t) {
						names = t;
						cap = nc;
					}
				}
				if (n < cap && (names[n] = strdup(in->pname)))
					n++;
				else
					oom = true;
			}
			pthread_mutex_unlock(&in->lk);
		}
	}
	pthread_mutex_unlock(&fs->itab_lock);
	if (oom)
		log_warn("out of memory: names under a directory whose mode changed stay cached for the entry timeout");
	for (size_t i = 0; i < n; i++) {
		/* -ENOENT: the kernel no longer holds that name */
		if (fs->se)
			fuse_lowlevel_notify_inval_entry(fs->se, (fuse_ino_t)(uintptr_t)dir, names[i],
							 strlen(names[i]));
		free(names[i]);
	}
	free(names);
}

bool kfs_place_valid(struct kinode *in)
{
	struct stat st;
	bool ok;

	pthread_mutex_lock(&in->lk);
	ok = in->parent && in->bname &&
	     fstatat(in->parent->fd, in->bname, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	     st.st_dev == in->dev && st.st_ino == in->ino;
	pthread_mutex_unlock(&in->lk);
	return ok;
}

void kfs_integrity(struct kfs *fs, struct kinode *in, const char *what, int r)
{
	atomic_fetch_add(&fs->integrity_errors, 1);
	log_warn("integrity: %s (inode %llu, backing '%s' in compartment %s): %s", what,
		 (unsigned long long)(in ? in->ino : 0), in && in->bname ? in->bname : "?",
		 in && in->comp ? in->comp->name : "?", kinko_strerror(r));
}

static bool bind_matches(const struct kformat_diriv *d, const uint8_t expect[16])
{
	if (kcrypto_memeq(d->bind, expect, 16))
		return true;
	return !kformat_binding_is_zero(d->bind_prev) && kcrypto_memeq(d->bind_prev, expect, 16);
}

/* A directory its owner may read but not search (mode 0600, 0400) lists its
 * names natively; here their key is a file inside it. Its owner (the daemon,
 * when not root) lends itself search permission for that one open. */
int kfs_fd_access(int fd, int mode)
{
	char p[64];

	kfs_fd_path(p, fd);
	return faccessat(AT_FDCWD, p, mode, AT_EACCESS) == 0 ? 0 : -errno;
}

int kfs_lend(int fd, mode_t bits, struct kfs_lend *l)
{
	struct stat st;

	if (fstat(fd, &st) < 0 || st.st_uid != geteuid() || (st.st_mode & bits) == bits)
		return -EACCES;
	l->fd = fd;
	l->was = st.st_mode & 07777;
	l->lent = l->was | bits;
	kfs_fd_path(l->path, fd);
	return chmod(l->path, l->lent) < 0 ? -EACCES : 0;
}

void kfs_unlend(const struct kfs_lend *l)
{
	struct stat st;
	int e = errno;

	if (fstat(l->fd, &st) == 0 && (st.st_mode & 07777) == l->lent && chmod(l->path, l->was) < 0)
		log_warn("could not give back the mode of a backing object: %s", strerror(errno));
	errno = e;
}

/* the IV file of a directory its owner may read but not search */
static int open_unsearchable(int dirfd, const char *name, bool *lent_x)
{
	struct kfs_lend l;
	struct stat st;
	int fd;

	if (fstat(dirfd, &st) < 0 || !(st.st_mode & S_IRUSR) || kfs_lend(dirfd, S_IXUSR, &l) != 0)
		return errno = EACCES, -1;
	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	kfs_unlend(&l);
	*lent_x = true;
	return fd;
}

int kfs_dir_keys(struct kfs *fs, struct kinode *dir, struct kformat_diriv *d,
		 const struct kformat_epoch_keys **k)
{
	uint8_t buf[KFORMAT_DIRIV_LEN + 1], expect[16];
	bool lent = false;
	struct kformat_diriv nd;
	const struct kformat_epoch_keys *nk;
	ssize_t n;
	int fd, r;

	if (dir == &fs->root || !dir->comp)
		return -EPERM;
	pthread_mutex_lock(&dir->lk);
	if (dir->diriv_ok) {
		*d = dir->diriv;
		*k = dir->dkeys;
		pthread_mutex_unlock(&dir->lk);
		return 0;
	}
	fd = openat(dir->fd, KFORMAT_DIRIV_NAME, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == EACCES) {
		int e;

		fd = open_unsearchable(dir->fd, KFORMAT_DIRIV_NAME, &lent);
		e = errno;
		/* names other threads looked up inside meanwhile (Linux 6.16+) */
		if (lent)
			kfs_notify_new_epoch(fs);
		errno = e;
	}
	if (fd < 0) {
		r = -errno;
		pthread_mutex_unlock(&dir->lk);
		/* a directory its owner may not search (the daemon runs as the owner
		 * unless it is root): no name inside can be reached, as natively.
		 * In a searchable one the IV file itself is wrong: damage. */
		if (r == -EACCES && kfs_fd_access(dir->fd, X_OK) != 0)
			return r;
		kfs_integrity(fs, dir, "directory IV file missing", r);
		return -EIO;
	}
	n = kpread_full(fd, buf, sizeof(buf), 0);
	close(fd);
	r = n < 0 ? (int)n : kformat_diriv_parse(buf, (size_t)n, &nd);
	if (r == 0 && !(nk = kkeys_comp_epoch(dir->comp, nd.epoch)))
		r = KERR_NOGRANT;
	if (r == 0)
		r = kformat_diriv_verify(buf, (size_t)n, nk);
	if (r == 0 && dir->bname) {
		r = kformat_binding(expect, dir->parent_iv, dir->bname);
		if (r == 0 && !bind_matches(&nd, expect))
			r = KERR_MISMATCH;
	}
	if (r) {
		pthread_mutex_unlock(&dir->lk);
		kfs_integrity(fs, dir, r == KERR_MISMATCH ? "directory IV file does not belong to this directory" :
			      "directory IV file corrupt", r);
		return -EIO;
	}
	dir->diriv = nd;
	dir->dkeys = nk;
	dir->diriv_ok = true;
	*d = nd;
	*k = nk;
	pthread_mutex_unlock(&dir->lk);
	return 0;
}

int kfs_encname(struct kfs *fs, struct kinode *dir, const char *name, char backing[256],
		bool *is_long, char *full, uint8_t iv[16], const struct kformat_epoch_keys **k)
{
	struct kformat_diriv d;
	int r;

	size_t len = strlen(name);

	if ((r = kfs_dir_keys(fs, dir, &d, k)) != 0)
		return r;
	if (iv)
		memcpy(iv, d.iv, 16);
	/* AES-SIV is deterministic: a name encrypted lately under this key and
	 * IV (the lookup before a create) is reused. Epoch keys stay where they
	 * are for the mount's life, so the key's address names it. Long names
	 * (a side file) are not kept. */
	if (len <= KFORMAT_NAME_MAX) {
		pthread_mutex_lock(&fs->encname_lock);
		for (unsigned i = 0; i < KFS_ENCNAME_CACHE; i++) {
			struct kencname *c = &fs->encname[i];

			if (c->k == *k && memcmp(c->iv, d.iv, 16) == 0 && strcmp(c->name, name) == 0) {
				memcpy(backing, c->backing, strlen(c->backing) + 1);
				pthread_mutex_unlock(&fs->encname_lock);
				*is_long = false;
				return 0;
			}
		}
		pthread_mutex_unlock(&fs->encname_lock);
	}
	r = kformat_name_encrypt(*k, d.iv, name, len, backing, is_long, full);
	if (r == -ENAMETOOLONG || r == -EINVAL)
		return r;
	if (r)
		return -EIO;
	if (!*is_long && strlen(backing) < sizeof(fs->encname[0].backing)) {
		struct kencname *c;

		pthread_mutex_lock(&fs->encname_lock);
		c = &fs->encname[fs->encname_next++ % KFS_ENCNAME_CACHE];
		c->k = *k;
		memcpy(c->iv, d.iv, 16);
		memcpy(c->name, name, len + 1);
		memcpy(c->backing, backing, strlen(backing) + 1);
		pthread_mutex_unlock(&fs->encname_lock);
	}
	return 0;
}

/* a lock forgets the names with the keys (a ring loaded again at unlock may
 * sit where the old one was) */
void kfs_encname_forget(struct kfs *fs)
{
	pthread_mutex_lock(&fs->encname_lock);
	explicit_bzero(fs->encname, sizeof(fs->encname));
	pthread_mutex_unlock(&fs->encname_lock);
}

int kfs_decname(struct kfs *fs, struct kinode *dir, int dirfd, const char *backing, char out[256])
{
	struct kformat_diriv d;
	const struct kformat_epoch_keys *k = NULL;
	char full[KFORMAT_ENCNAME_MAX + 1], side[300], check[256];
	size_t outlen;
	ssize_t n;
	int fd, r;

	switch (kformat_entry_classify(backing)) {
	case KFORMAT_ENTRY_NAME:
		if ((r = kfs_dir_keys(fs, dir, &d, &k)) != 0)
			return r;
		r = kformat_name_decrypt(k, d.iv, backing, strlen(backing), out, &outlen);
		break;
	case KFORMAT_ENTRY_LONG:
		if ((r = kfs_dir_keys(fs, dir, &d, &k)) != 0)
			return r;
		snprintf(side, sizeof(side), "%s" KFORMAT_LONGNAME_SUFFIX, backing);
		fd = openat(dirfd, side, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0) {
			r = KERR_FORMAT;
			break;
		}
		n = kpread_full(fd, full, sizeof(full) - 1, 0);
		close(fd);
		if (n <= 0 || (size_t)n >= sizeof(full) - 1) {
			r = KERR_FORMAT;
			break;
		}
		full[n] = 0;
		if ((r = kformat_longname_backing(check, full, (size_t)n)) != 0)
			break;
		if (strcmp(check, backing) != 0) {
			r = KERR_MISMATCH;
			break;
		}
		r = kformat_name_decrypt(k, d.iv, full, (size_t)n, out, &outlen);
		break;
	default:
		return -ENOENT;
	}
	if (r) {
		kfs_integrity(fs, dir, "undecryptable name in directory", r);
		return -EIO;
	}
	return 0;
}

/* Writes the side file of a hashed long name. 1: created it, 0: one with
 * this content was there already (the entry's own, or left over by an
 * earlier entry of the same name), negative errno on failure. Only a side
 * file this call created may be removed when the entry's creation fails. */
int kfs_longname_write(int dirfd, const char *backing, const char *full)
{
	char side[300], old[KFORMAT_ENCNAME_MAX + 1];
	size_t len = strlen(full);
	bool existed = false;
	ssize_t n;
	int fd, r;

	snprintf(side, sizeof(side), "%s" KFORMAT_LONGNAME_SUFFIX, backing);
	fd = openat(dirfd, side, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0400);
	if (fd < 0 && errno == EEXIST) {
		existed = true;
		if ((fd = openat(dirfd, side, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) >= 0) {
			n = kpread_full(fd, old, sizeof(old), 0);
			close(fd);
			if (n == (ssize_t)len && memcmp(old, full, len) == 0)
				return 0;
		}
		/* torn by a crash or damaged: replaced (it may be read-only) */
		unlinkat(dirfd, side, 0);
		fd = openat(dirfd, side, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0400);
	}
	if (fd < 0)
		return -errno;
	r = kwrite_all(fd, full, len);
	close(fd);
	if (r < 0) {
		unlinkat(dirfd, side, 0); /* no torn side file left behind */
		return r;
	}
	return existed ? 0 : 1;
}

void kfs_longname_remove(int dirfd, const char *backing)
{
	char side[300];

	snprintf(side, sizeof(side), "%s" KFORMAT_LONGNAME_SUFFIX, backing);
	unlinkat(dirfd, side, 0);
}

int kfs_stat_fix(struct kfs *fs, struct kinode *in, struct stat *st, int fd, const char *name)
{
	bool bad;

	if (S_ISREG(st->st_mode)) {
		st->st_size = (off_t)kformat_plain_size(&fs->geom, (uint64_t)st->st_size, &bad);
	} else if (S_ISLNK(st->st_mode)) {
		char plain[KFORMAT_SYMLINK_TARGET_MAX + 1];
		size_t len = 0;
		int r = in && in->comp ? kkeys_symlink_read(&fs->geom, in->comp, fs->v->datafd, fd, name,
							   NULL, plain, sizeof(plain), &len, NULL)
				       : KERR_NOGRANT;

		if (r < 0 && r > -KERR_BASE)
			return r;
		if (r) {
			kfs_integrity(fs, in, "symlink target does not decrypt", r);
			st->st_size = 0;
			return 0;
		}
		ksecmem_wipe(plain, len);
		st->st_size = (off_t)len;
	}
	return 0;
}

int kfs_diriv_write(struct kfs *fs, int dirfd, const struct kformat_diriv *d,
		    const struct kformat_epoch_keys *k)
{
	uint8_t buf[KFORMAT_DIRIV_LEN];
	int r;

	struct stat before;
	char pp[64];
	bool have_times;

	(void)fs;
	if ((r = kformat_diriv_serialize(d, k, buf)) != 0)
		return -EIO;
	have_times = fstatat(dirfd, "", &before, AT_EMPTY_PATH) == 0;
	kfs_fd_path(pp, dirfd);
	r = kfile_replace_at(dirfd, KFORMAT_DIRIV_NAME, buf, sizeof(buf), 0400);
	if (r == -EACCES) {
		/* a read-only directory we own (rename of a 0500 dir): lend w for the rewrite */
		struct kfs_lend l;

		if (kfs_lend(dirfd, S_IWUSR, &l) == 0) {
			r = kfile_replace_at(dirfd, KFORMAT_DIRIV_NAME, buf, sizeof(buf), 0400);
			kfs_unlend(&l);
		}
	}
	if (r == 0 && have_times) {
		/* an internal rewrite: the directory's times stay what the user saw */
		struct timespec tv[2] = { before.st_atim, before.st_mtim };

		utimensat(AT_FDCWD, pp, tv, 0);
	}
	return r;
}

int kfs_new_diriv(struct kfs *fs, struct kkeys_comp *comp, const uint8_t parent_iv[16], const char *bname,
		  struct kformat_diriv *d, const struct kformat_epoch_keys **k)
{
	memset(d, 0, sizeof(*d));
	*k = kvault_current_keys(fs->v, comp);
	if (!*k)
		return -EIO;
	d->epoch = (*k)->epoch;
	kcrypto_random(d->iv, 16);
	return kformat_binding(d->bind, parent_iv, bname) ? -EIO : 0;
}

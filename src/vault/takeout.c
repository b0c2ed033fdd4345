// SPDX-License-Identifier: GPL-2.0-or-later
/* Take-out (持出し) export: a separate small format-v1 vault holding only the
 * approved files, read-only, keyed to the requester, with the take-out id and
 * period in its only signed policy (kinko-format(5), TAKE-OUT VAULT).
 *
 * The source is read through the verified walk (vault/walk.c) pruned to the
 * approved paths: every byte is authenticated on the way out and re-encrypted
 * under fresh compartment keys. The vault is built in DIR/.kinko-export.tmp,
 * its parts renamed into place, kinko.vault written last (its presence marks
 * a complete vault). Nothing is left at DIR on failure. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <jansson.h>

#include "kinko/lifecycle.h"
#include "kinko/takeout.h"
#include "kinko/vault.h"
#include "kinko/x509.h"

#define TMPDIR_NAME ".kinko-export.tmp"
#define MAX_DEPTH 520
#define WBLOCKS 64 /* output blocks written per write */

/* ---------------- VPATHs ---------------- */

struct vpath {
	const char *orig;
	char comp[KFORMAT_NAME_MAX + 1];
	char *rel;                   /* "" = the whole compartment */
	const struct kkeys_comp *c;  /* the user's keys of it */
	bool found;
};

/* "COMP[/a/b]" -> comp + normalized rel; KERR_USAGE on "", "..", "//" */
static int vpath_parse(const char *s, struct vpath *p, struct kerrinfo *ei)
{
	const char *q;
	size_t cl, o = 0;
	char *rel;

	memset(p, 0, sizeof(*p));
	p->orig = s;
	while (*s == '/')
		s++;
	q = strchr(s, '/');
	cl = q ? (size_t)(q - s) : strlen(s);
	if (cl == 0 || cl > KFORMAT_NAME_MAX) {
		kerr_set(ei, p->orig, "not a take-out path (COMPARTMENT or COMPARTMENT/path)");
		return KERR_USAGE;
	}
	memcpy(p->comp, s, cl);
	p->comp[cl] = 0;
	s += cl;
	if (!(rel = malloc(strlen(s) + 1)))
		return -ENOMEM;
	while (*s) {
		size_t n;

		while (*s == '/')
			s++;
		if (!*s)
			break;
		n = strcspn(s, "/");
		if (!kformat_name_valid(s, n)) {
			kerr_set(ei, p->orig, "not a take-out path (empty, '.' or '..' component, or a name over 255 bytes)");
			free(rel);
			return KERR_USAGE;
		}
		if (o)
			rel[o++] = '/';
		memcpy(rel + o, s, n);
		o += n;
		s += n;
	}
	rel[o] = 0;
	p->rel = rel;
	return 0;
}

/* the user's keys of the VPATH's compartment: -ENOENT or KERR_NOGRANT */
static int vpath_comp(struct kvault *v, struct vpath *p, struct kerrinfo *ei)
{
	const struct kpolicy_comp *pc = kpolicy_comp_find_name(v->policy, p->comp);

	for (size_t i = 0; v->ring && i < v->ring->ncomps; i++)
		if (strcmp(v->ring->comps[i].name, p->comp) == 0) {
			p->c = &v->ring->comps[i];
			return 0;
		}
	if (!pc) {
		kerr_set(ei, p->orig, "no such compartment '%s'", p->comp);
		return -ENOENT;
	}
	kerr_set(ei, p->orig, "user '%s' holds no usable key for compartment '%s'",
		 v->user ? v->user->id : "?", p->comp);
	return KERR_NOGRANT;
}

/* is path equal to or below rel? */
static bool within(const char *path, const char *rel)
{
	size_t n = strlen(rel);

	return n == 0 || (strncmp(path, rel, n) == 0 && (path[n] == 0 || path[n] == '/'));
}

/* ---------------- the walk's selection (shared by check, count, copy) ---------------- */

struct sel {
	struct vpath *vp;
	size_t nvp;
	const struct kkeys_comp *c;
	bool below;               /* also everything below each target */
	/* damage */
	int err;                  /* first fatal error */
	struct kerrinfo *ei;
	char route_why[600];      /* first damage on the way to a target */
};

static int sel_want(void *ctx, const char *path, int kind)
{
	struct sel *s = ctx;
	bool want = false;
	size_t pl = strlen(path);

	for (size_t i = 0; i < s->nvp; i++) {
		const struct vpath *p = &s->vp[i];

		if (p->c != s->c)
			continue;
		if (strcmp(path, p->rel) == 0) {
			s->vp[i].found = true;
			want = true;
		} else if (s->below && within(path, p->rel)) {
			want = true;
		} else if (kind == KVAULT_WALK_DIR && strncmp(p->rel, path, pl) == 0 && p->rel[pl] == '/') {
			want = true; /* on the way */
		}
	}
	return want;
}

/* damage at or below a target fails; on the way to one it is kept for the
 * "not found" message (a damaged name may be the target's) */
static int sel_damage(void *ctx, const char *path, const char *why)
{
	struct sel *s = ctx;
	const char *p = strcmp(path, "/") == 0 ? "" : path;

	for (size_t i = 0; i < s->nvp; i++) {
		if (s->vp[i].c != s->c)
			continue;
		if (s->below ? within(p, s->vp[i].rel) : strcmp(p, s->vp[i].rel) == 0) {
			kerr_set(s->ei, "", "%s%s%s: %s (damaged in the vault; run kinko fsck)",
				 s->c->name, p[0] ? "/" : "", p, why);
			s->err = -EIO;
			return -EIO;
		}
	}
	if (!s->route_why[0])
		snprintf(s->route_why, sizeof(s->route_why), "%s%s%s: %s", s->c->name, p[0] ? "/" : "",
			 p, why);
	return 0;
}

/* after a walk: every target of compartment c found? */
static int sel_check_found(struct sel *s)
{
	for (size_t i = 0; i < s->nvp; i++) {
		if (s->vp[i].c != s->c || s->vp[i].found)
			continue;
		if (s->route_why[0]) {
			kerr_set(s->ei, s->vp[i].orig, "cannot be reached: %s (damaged in the vault; run kinko fsck)",
				 s->route_why);
			return -EIO;
		}
		kerr_set(s->ei, s->vp[i].orig, "no such file or directory in compartment '%s'", s->c->name);
		return -ENOENT;
	}
	return 0;
}

static int root_enter(void *ctx, const char *path, const struct stat *st)
{
	struct sel *s = ctx;

	(void)st;
	if (path[0] == 0)
		for (size_t i = 0; i < s->nvp; i++)
			if (s->vp[i].c == s->c && s->vp[i].rel[0] == 0)
				s->vp[i].found = true;
	return 0;
}

static int skip_content(void *ctx, const char *path, const struct stat *st, uint64_t size)
{
	(void)ctx;
	(void)path;
	(void)st;
	(void)size;
	return 1;
}

int kvault_vpath_check(struct kvault *v, const char *vpath, struct kerrinfo *ei)
{
	static const struct kvault_walk_ops ops = {
		.want = sel_want, .damage = sel_damage, .dir_enter = root_enter,
		.file_begin = skip_content,
	};
	struct kvault_fsck_stats st;
	struct vpath p;
	struct sel s;
	int r;

	if (!v->ring || !v->user)
		return KERR_USAGE;
	if ((r = vpath_parse(vpath, &p, ei)) != 0)
		return r;
	if ((r = vpath_comp(v, &p, ei)) != 0)
		goto out;
	memset(&s, 0, sizeof(s));
	memset(&st, 0, sizeof(st));
	s.vp = &p;
	s.nvp = 1;
	s.c = p.c;
	s.ei = ei;
	r = kvault_walk_comp(v, p.c, &ops, &s, &st);
	if (r == 0)
		r = sel_check_found(&s);
out:
	free(p.rel);
	return r;
}

/* ---------------- writing the take-out tree ---------------- */

struct odir {
	int fd;
	uint8_t iv[16];
	char *path;          /* plaintext path (for matching dir_leave) */
};

struct out {
	struct sel sel;
	struct kvault *v;
	const struct kformat_geom *g;
	const struct kformat_epoch_keys *k; /* the take-out compartment's keys */
	struct odir stack[MAX_DEPTH + 2];
	int depth;           /* entries used in stack */
	int rootfd;          /* data/<new comp> */
	/* the file being written */
	int fd;
	char backing[256];
	char *fpath;         /* its plaintext path, for messages */
	struct stat fst;
	uint8_t file_id[16], fkey[32];
	uint8_t *pend;       /* plaintext of the block not yet sealed (secure memory) */
	size_t pendlen;
	uint64_t blockno, nbytes;
	uint8_t *wbuf;       /* sealed blocks waiting to be written */
	size_t wlen;
	uint64_t woff;
	bool has_hdr;
	/* counts */
	struct ktakeout_stats *st;
	uint64_t total;
	ktakeout_progress_fn progress;
	void *pctx;
	bool as_root;
};

static int fail(struct out *o, int r, const char *path, const char *what)
{
	if (!o->sel.err) {
		o->sel.err = r;
		kerr_set(o->sel.ei, "", "%s%s%s: cannot write the take-out copy (%s): %s", o->sel.c->name,
			 path[0] ? "/" : "", path, what, r < -KERR_BASE ? kinko_strerror(r) : strerror(-r));
	}
	return r;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

/* a new small file (exclusive create); no fsync here: the whole tree is
 * synced once (syncfs) before its parts are renamed into place */
static int put_small(int dfd, const char *name, const void *data, size_t len)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400), r;

	if (fd < 0)
		return -errno;
	r = kwrite_all(fd, data, len);
	close(fd);
	return r;
}

/* encrypt name for the directory on top of the stack (writes the long-name
 * sidecar when needed) */
static int new_name(struct out *o, const char *name, char backing[256])
{
	struct odir *d = &o->stack[o->depth - 1];
	char full[KFORMAT_ENCNAME_MAX + 1], side[300];
	bool is_long = false;
	int r;

	if ((r = kformat_name_encrypt(o->k, d->iv, name, strlen(name), backing, &is_long, full)) != 0)
		return r;
	if (!is_long)
		return 0;
	snprintf(side, sizeof(side), "%s" KFORMAT_LONGNAME_SUFFIX, backing);
	return put_small(d->fd, side, full, strlen(full));
}

static void keep_owner(struct out *o, int dfd, const char *name, const struct stat *st)
{
	if (o->as_root && fchownat(dfd, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0)
		log_debug("chown in the take-out copy: %s", strerror(errno));
}

static int write_diriv(int dfd, const struct kformat_epoch_keys *k, const uint8_t parent_iv[16],
		       const char *bname, uint8_t iv[16])
{
	struct kformat_diriv d;
	uint8_t buf[KFORMAT_DIRIV_LEN];
	int r;

	memset(&d, 0, sizeof(d));
	d.epoch = k->epoch;
	kcrypto_random(d.iv, 16);
	if ((r = kformat_binding(d.bind, parent_iv, bname)) != 0 ||
	    (r = kformat_diriv_serialize(&d, k, buf)) != 0)
		return r;
	memcpy(iv, d.iv, 16);
	return put_small(dfd, KFORMAT_DIRIV_NAME, buf, sizeof(buf));
}

static int out_dir_enter(void *ctx, const char *path, const struct stat *st)
{
	struct out *o = ctx;
	struct odir *d;
	char backing[256];
	int r, fd;

	(void)st;
	if (o->depth >= MAX_DEPTH)
		return fail(o, -ELOOP, path, "directory nesting");
	d = &o->stack[o->depth];
	if (path[0] == 0) {
		/* the compartment root: made with the vault (kvault_comp_dir_create) */
		uint8_t buf[KFORMAT_DIRIV_LEN + 1];
		struct kformat_diriv dv;
		ssize_t n;

		int ifd;

		root_enter(&o->sel, path, st);
		if ((fd = dup(o->rootfd)) < 0)
			return fail(o, -errno, path, "dup");
		ifd = openat(fd, KFORMAT_DIRIV_NAME, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		n = ifd < 0 ? -1 : kpread_full(ifd, buf, sizeof(buf), 0);
		if (ifd >= 0)
			close(ifd);
		if (n != KFORMAT_DIRIV_LEN || kformat_diriv_parse(buf, (size_t)n, &dv) != 0) {
			close(fd);
			return fail(o, -EIO, path, "compartment directory IV");
		}
		memcpy(d->iv, dv.iv, 16);
	} else {
		struct odir *parent = &o->stack[o->depth - 1];

		if ((r = new_name(o, base_name(path), backing)) != 0)
			return fail(o, r, path, "name");
		if (mkdirat(parent->fd, backing, 0700) < 0)
			return fail(o, -errno, path, "mkdir");
		fd = openat(parent->fd, backing, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return fail(o, -errno, path, "open directory");
		if ((r = write_diriv(fd, o->k, parent->iv, backing, d->iv)) != 0) {
			close(fd);
			return fail(o, r, path, "directory IV file");
		}
		o->st->dirs++;
	}
	d->fd = fd;
	if (!(d->path = strdup(path))) {
		close(fd);
		return fail(o, -ENOMEM, path, "memory");
	}
	o->depth++;
	return 0;
}

static int out_dir_leave(void *ctx, const char *path, const struct stat *st)
{
	struct out *o = ctx;
	struct odir *d = &o->stack[o->depth - 1];
	struct timespec ts[2] = { st->st_atim, st->st_mtim };
	int r = 0;

	if (o->as_root && fchown(d->fd, st->st_uid, st->st_gid) < 0)
		log_debug("chown in the take-out copy: %s", strerror(errno));
	if (fchmod(d->fd, st->st_mode & 07777) < 0 || futimens(d->fd, ts) < 0)
		r = fail(o, -errno, path, "directory mode and times");
	close(d->fd);
	free(d->path);
	d->fd = -1;
	d->path = NULL;
	o->depth--;
	return r;
}

static int put_xattr(struct out *o, int fd, const char *path, const char *name, const uint8_t *val,
		     size_t len)
{
	char bname[512], p[64];
	uint8_t *enc;
	size_t ov = kformat_xattr_value_overhead(o->g);
	int r = 0;

	if (kformat_xattr_name_encrypt(o->k, name, bname, sizeof(bname)) != 0)
		return fail(o, -EIO, path, "xattr name");
	if (!(enc = malloc(len + ov)))
		return fail(o, -ENOMEM, path, "memory");
	if (kformat_xattr_value_encrypt(o->g, o->k, bname, val, len, enc) != 0)
		r = fail(o, -EIO, path, "xattr value");
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	if (!r && setxattr(p, bname, enc, len + ov, 0) < 0)
		r = fail(o, -errno, path, "setxattr");
	free(enc);
	return r;
}

/* is path an approved target or below one (not just a directory on the way)? */
static bool approved_path(const struct sel *s, const char *path)
{
	for (size_t i = 0; i < s->nvp; i++)
		if (s->vp[i].c == s->c && within(path, s->vp[i].rel))
			return true;
	return false;
}

static int out_xattr(void *ctx, const char *path, const char *name, const uint8_t *val, size_t len)
{
	struct out *o = ctx;

	/* a directory only on the way to an approved path travels without its
	 * extended attributes (they are not part of what was approved) */
	if (o->fd < 0 && !approved_path(&o->sel, path))
		return 0;

	/* the walk gives a file's xattrs between file_begin and its data, a
	 * directory's right after dir_enter */
	return put_xattr(o, o->fd >= 0 ? o->fd : o->stack[o->depth - 1].fd, path, name, val, len);
}

static int out_file_begin(void *ctx, const char *path, const struct stat *st, uint64_t size)
{
	struct out *o = ctx;
	struct odir *d = &o->stack[o->depth - 1];
	int r;

	(void)size;
	if ((r = new_name(o, base_name(path), o->backing)) != 0)
		return fail(o, r, path, "name");
	o->fd = openat(d->fd, o->backing, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (o->fd < 0)
		return fail(o, -errno, path, "create");
	o->fst = *st;
	free(o->fpath);
	o->fpath = strdup(path);
	o->pendlen = 0;
	o->blockno = o->nbytes = 0;
	o->wlen = 0;
	o->woff = 0;
	o->has_hdr = false;
	return 0;
}

static int flush_blocks(struct out *o)
{
	int r;

	if (!o->wlen)
		return 0;
	if ((r = kpwrite_all(o->fd, o->wbuf, o->wlen, (off_t)o->woff)) != 0)
		return r;
	o->woff += o->wlen;
	o->wlen = 0;
	return 0;
}

/* seal the pending block (last: the file's final block) */
static int seal_pending(struct out *o, bool last)
{
	struct kformat_fhdr h;
	int r;

	if (!o->has_hdr) {
		uint8_t hb[KFORMAT_FHDR_LEN];

		memset(&h, 0, sizeof(h));
		h.suite = (uint8_t)o->g->suite;
		h.epoch = o->k->epoch;
		kcrypto_random(h.file_id, 16);
		if ((r = kformat_binding(h.bind, o->stack[o->depth - 1].iv, o->backing)) != 0 ||
		    (r = kformat_fhdr_serialize(&h, o->k, hb)) != 0 ||
		    (r = kformat_file_key(o->fkey, o->k, h.file_id)) != 0)
			return r;
		memcpy(o->file_id, h.file_id, 16);
		memcpy(o->wbuf, hb, sizeof(hb));
		o->wlen = sizeof(hb);
		o->has_hdr = true;
	}
	if (o->wlen + o->g->cbs > KFORMAT_FHDR_LEN + (size_t)WBLOCKS * o->g->cbs &&
	    (r = flush_blocks(o)) != 0)
		return r;
	if ((r = kformat_block_seal(o->g, o->fkey, o->file_id, o->blockno, last, o->pend, o->pendlen,
				    o->wbuf + o->wlen)) != 0)
		return r;
	o->wlen += o->pendlen + o->g->overhead;
	o->blockno++;
	o->pendlen = 0;
	return 0;
}

static int out_file_data(void *ctx, const uint8_t *p, size_t n)
{
	struct out *o = ctx;
	int r;

	while (n) {
		size_t take;

		if (o->pendlen == KFORMAT_BS && (r = seal_pending(o, false)) != 0)
			return fail(o, r, o->fpath ? o->fpath : "", "encrypt");
		take = KFORMAT_BS - o->pendlen < n ? KFORMAT_BS - o->pendlen : n;
		memcpy(o->pend + o->pendlen, p, take);
		o->pendlen += take;
		o->nbytes += take;
		p += take;
		n -= take;
	}
	return 0;
}

static int out_file_end(void *ctx, const char *path, bool ok)
{
	struct out *o = ctx;
	struct timespec ts[2] = { o->fst.st_atim, o->fst.st_mtim };
	int r = 0;

	if (!ok) /* the walk reported the damage (the export fails) */
		goto out;
	if (o->pendlen && (r = seal_pending(o, true)) != 0) {
		r = fail(o, r, path, "encrypt");
		goto out;
	}
	if ((r = flush_blocks(o)) != 0) {
		r = fail(o, r, path, "write");
		goto out;
	}
	if (o->as_root && fchown(o->fd, o->fst.st_uid, o->fst.st_gid) < 0)
		log_debug("chown in the take-out copy: %s", strerror(errno));
	if (fchmod(o->fd, o->fst.st_mode & 07777) < 0 || futimens(o->fd, ts) < 0) {
		r = fail(o, -errno, path, "mode and times");
		goto out;
	}
	o->st->files++;
	o->st->bytes += o->nbytes;
	if (o->progress)
		o->progress(o->pctx, o->st->bytes, o->total, o->st->files);
out:
	ksecmem_wipe(o->fkey, sizeof(o->fkey));
	ksecmem_wipe(o->pend, KFORMAT_BS);
	o->pendlen = 0;
	close(o->fd);
	o->fd = -1;
	return r;
}

static int out_symlink(void *ctx, const char *path, const char *target, const struct stat *st)
{
	struct out *o = ctx;
	struct odir *d = &o->stack[o->depth - 1];
	struct timespec ts[2] = { st->st_atim, st->st_mtim };
	char backing[256], *enc = malloc(KFORMAT_SYMLINK_ENC_MAX + 1 + KFORMAT_SYMLINK_MAX + 1), *t;
	int r;

	if (!enc)
		return fail(o, -ENOMEM, path, "memory");
	t = enc + KFORMAT_SYMLINK_ENC_MAX + 1;
	if ((r = kformat_symlink_encrypt(o->g, o->k, target, strlen(target), enc,
					 KFORMAT_SYMLINK_ENC_MAX + 1)) != 0) {
		free(enc);
		return fail(o, r, path, "symlink target");
	}
	r = new_name(o, base_name(path), backing);
	if (r) {
		free(enc);
		return fail(o, r, path, "name");
	}
	if ((r = kformat_symlink_store(o->rootfd, ".", enc, t)) != 0) {
		free(enc);
		return fail(o, r, path, "symlink target");
	}
	if (symlinkat(t, d->fd, backing) < 0) {
		r = -errno;
		kformat_symlink_forget(o->rootfd, ".", t);
		free(enc);
		return fail(o, r, path, "symlink");
	}
	free(enc);
	keep_owner(o, d->fd, backing, st);
	utimensat(d->fd, backing, ts, AT_SYMLINK_NOFOLLOW);
	o->st->files++;
	if (o->progress)
		o->progress(o->pctx, o->st->bytes, o->total, o->st->files);
	return 0;
}

static int out_other(void *ctx, const char *path, const struct stat *st)
{
	struct out *o = ctx;

	(void)path;
	(void)st;
	o->st->skipped++; /* FIFOs, devices, sockets are not taken out */
	return 0;
}

/* first pass: every target there, nothing damaged on the way; plaintext bytes */
struct count {
	struct sel sel;
	uint64_t bytes, files;
};

static int count_file(void *ctx, const char *path, const struct stat *st, uint64_t size)
{
	struct count *c = ctx;

	(void)path;
	(void)st;
	c->files++;
	c->bytes += size;
	return 1;
}

static int count_enter(void *ctx, const char *path, const struct stat *st)
{
	return root_enter(&((struct count *)ctx)->sel, path, st);
}

/* ---------------- the take-out vault ---------------- */

struct tcomp {
	const struct kkeys_comp *src;
	uint8_t id[16];
	uint8_t *epoch_key;               /* secure memory */
	struct kformat_epoch_keys *ek;    /* secure memory */
};

static json_t *iso(int64_t t)
{
	char s[32];

	ktime_iso(s, sizeof(s), t);
	return json_string(s);
}

static int dir_state(int fd)
{
	DIR *d;
	struct dirent *de;
	int dfd = dup(fd), r = 0;

	if (dfd < 0 || !(d = fdopendir(dfd))) {
		if (dfd >= 0)
			close(dfd);
		return -errno;
	}
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		r = strcmp(de->d_name, KFORMAT_VAULT_FILE) == 0 ? KERR_EXISTS : -ENOTEMPTY;
		if (r == KERR_EXISTS)
			break;
	}
	closedir(d);
	return r;
}

/* remove everything the export made at dirfd (it was empty before) */
static void undo(int dirfd, const char *dir, bool made_dir)
{
	static const char *const parts[] = { TMPDIR_NAME, "keys", "grants", "policy", "data" };

	unlinkat(dirfd, KFORMAT_VAULT_FILE, 0);
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
		if (kvault_shred_tree(dirfd, parts[i], NULL) != 0)
			log_warn("%s/%s: could not remove the incomplete take-out", dir, parts[i]);
	if (made_dir && rmdir(dir) < 0)
		log_warn("%s: could not remove: %s", dir, strerror(errno));
}

/* the main vault's audit recipients (its active auditors, or its active
 * admins when there is none) except the requester (an auditor who takes files
 * out does not read their own take-out's log) */
static int audit_recipients(const struct kpolicy *p, const char *requester,
			    const struct kpolicy_user ***out, size_t *n)
{
	const struct kpolicy_user **r = calloc(p->nusers + 1, sizeof(*r));
	int want = KROLE_AUDITOR;

	*n = 0;
	if (!r)
		return -ENOMEM;
	for (size_t i = 0; i < p->nusers; i++)
		if (p->users[i].role == KROLE_AUDITOR && p->users[i].active &&
		    strcmp(p->users[i].id, requester) != 0)
			goto pick;
	want = KROLE_ADMIN;
pick:
	for (size_t i = 0; i < p->nusers; i++)
		if (p->users[i].role == want && p->users[i].active && strcmp(p->users[i].id, requester))
			r[(*n)++] = &p->users[i];
	*out = r;
	return 0;
}

static int build_policy(struct kvault *v, const struct ktakeout_export *x, const uint8_t vid[16],
			const struct kkeys_user *signer, struct tcomp *tc, size_t ntc,
			const struct kpolicy_user **aud, size_t naud, struct kpolicy **out)
{
	const struct kpolicy_user *me = kpolicy_user_find(v->policy, v->user->id);
	struct kpolicy *p = kpolicy_new(vid);
	struct kpolicy_user u;
	json_t *settings, *t;
	char hex[33];
	int64_t now = ktime_now();
	int r = -ENOMEM;

	*out = NULL;
	if (!p || !me)
		goto out;
	p->serial = 1;
	/* the synthetic administrator: signs this one policy, has no key file */
	memset(&u, 0, sizeof(u));
	snprintf(u.id, sizeof(u.id), "%s", KTAKEOUT_SIGNER);
	u.role = KROLE_ADMIN;
	u.active = true;
	u.name = (char *)"kinko take-out";
	u.dept = (char *)"";
	u.contact = (char *)"";
	memcpy(u.box_pk, signer->box_pk, 32);
	memcpy(u.sign_pk, signer->sign_pk, 32);
	u.created = u.password_changed = now;
	if ((r = kpolicy_user_add(p, &u)) != 0)
		goto out;
	/* the requester: the same keys and password date (key file: wrap.pw_changed) */
	u = *me;
	u.role = KROLE_STAFF;
	u.active = true;
	u.unlock_gen = 0;
	u.created = now;
	if ((r = kpolicy_user_add(p, &u)) != 0)
		goto out;
	/* the audit log's readers: public keys only */
	for (size_t i = 0; i < naud; i++) {
		u = *aud[i];
		u.role = KROLE_AUDITOR;
		u.unlock_gen = 0;
		if ((r = kpolicy_user_add(p, &u)) != 0)
			goto out;
	}
	for (size_t i = 0; i < ntc; i++) {
		uint8_t cm[32];

		if ((r = kformat_epoch_commitment(cm, tc[i].epoch_key, vid, tc[i].id, 1)) != 0 ||
		    (r = kpolicy_comp_add(p, tc[i].id, tc[i].src->name, tc[i].src->klass)) != 0 ||
		    (r = kpolicy_epoch_add(&p->comps[p->ncomps - 1], 1, cm, now)) != 0 ||
		    (r = kpolicy_grant_set(p, v->user->id, tc[i].id, true)) != 0)
			goto out;
	}
	/* the main vault's settings and the take-out's own */
	r = -ENOMEM;
	if (!(settings = json_deep_copy(v->policy->settings)))
		goto out;
	json_decref(p->settings);
	p->settings = settings;
	if (!(t = json_object()))
		goto out;
	khex_encode(hex, v->hdr.vault_id, 16);
	json_object_set_new(t, "id", json_string(x->id));
	json_object_set_new(t, "requester", json_string(v->user->id));
	json_object_set_new(t, "medium", json_string(x->medium ? x->medium : ""));
	json_object_set_new(t, "approver", json_string(x->approver ? x->approver : ""));
	json_object_set_new(t, "from", iso(x->from));
	json_object_set_new(t, "until", iso(x->until));
	json_object_set_new(t, "main_vault", json_string(hex));
	json_object_set_new(t, "request", json_string(x->request_hash ? x->request_hash : ""));
	if (json_object_set_new(settings, "takeout", t) != 0)
		goto out;
	*out = p;
	p = NULL;
	r = 0;
out:
	kpolicy_free(p);
	return r;
}

/* keys/<requester>.key: the same secrets under the same password and KDF
 * cost; a second-factor certificate is kept (a fresh factor secret sealed to it) */
static int write_keyfile(struct kvault *v, int tfd, const uint8_t vid[16], const uint8_t root_pk[32],
			 const char *pw, size_t pwlen, struct kerrinfo *ei)
{
	struct kkeys_wrap w;
	uint8_t *fsec = NULL, *blob = NULL;
	size_t bloblen = 0;
	int r;

	memset(&w, 0, sizeof(w));
	w.kdf = v->meta.kdf;
	if (!w.kdf.m_kib)
		kkeys_kdf_default(&w.kdf);
	w.pw_changed = v->meta.pw_changed;
	if (v->meta.cert) {
		if (!(fsec = ksecmem_alloc(KX509_SECRETBYTES)))
			return -ENOMEM;
		kcrypto_random(fsec, KX509_SECRETBYTES);
		if ((r = kx509_seal(v->meta.cert, v->meta.certlen, fsec, &blob, &bloblen, ei)) != 0)
			goto out;
		w.cert = v->meta.cert;
		w.certlen = v->meta.certlen;
		w.factor_blob = blob;
		w.bloblen = bloblen;
		w.factor_secret = fsec;
	}
	r = kkeys_keyfile_write(tfd, vid, root_pk, v->user, pw, pwlen, &w, false, ei);
out:
	ksecmem_free(fsec);
	free(blob);
	return r;
}

/* the password given is the one of the unlocked key file */
static int check_password(struct kvault *v, const char *pw, size_t pwlen, struct kerrinfo *ei)
{
	struct kkeys_user *u = NULL;
	struct kkeys_meta m;
	int r;

	if (v->meta.cert)
		return 0; /* needs the certificate's key again: the caller's unlock checked it */
	memset(&m, 0, sizeof(m));
	r = kkeys_unlock(v->vfd, v->hdr.vault_id, v->hdr.root_pk, v->user->id, pw, pwlen, NULL, &u,
			 &m, ei);
	if (r == 0 && (!kcrypto_memeq(u->box_pk, v->user->box_pk, 32) ||
		       !kcrypto_memeq(u->sign_pk, v->user->sign_pk, 32)))
		r = KERR_MISMATCH;
	kkeys_user_free(u);
	kkeys_meta_clear(&m);
	return r;
}

int kvault_takeout_export(struct kvault *v, const char *pw, size_t pwlen,
			  const struct ktakeout_export *x, const char *dir,
			  ktakeout_progress_fn progress, void *ctx, struct ktakeout_stats *st,
			  struct kerrinfo *ei)
{
	static const struct kvault_walk_ops count_ops = {
		.want = sel_want, .damage = sel_damage, .dir_enter = count_enter,
		.file_begin = count_file,
	};
	static const struct kvault_walk_ops copy_ops = {
		.want = sel_want, .damage = sel_damage, .dir_enter = out_dir_enter,
		.dir_leave = out_dir_leave, .xattr = out_xattr, .file_begin = out_file_begin,
		.file_data = out_file_data, .file_end = out_file_end, .symlink = out_symlink,
		.other = out_other,
	};
	struct vpath *vp = NULL;
	struct tcomp *tc = NULL;
	size_t ntc = 0, naud = 0;
	const struct kpolicy_user **aud = NULL;
	struct kkeys_user *signer = NULL;
	struct kpolicy *p = NULL;
	struct kformat_vault hdr;
	struct kvault_fsck_stats ws;
	struct count cnt;
	struct out *o = NULL;
	uint8_t *root_seed = NULL, *root_sk = NULL, hbuf[KFORMAT_VAULT_LEN];
	bool made_dir = false, took_lock = false, started = false;
	int dfd = -1, tfd = -1, r;

	memset(st, 0, sizeof(*st));
	if (!v || !v->user || !v->ring || !v->policy || !x || !dir || !pw) {
		kerr_set(ei, dir ? dir : "", "the vault is not unlocked with its grants");
		return KERR_USAGE;
	}
	if (!x->id || !*x->id || strlen(x->id) >= sizeof(((struct ktakeout_info *)0)->id) ||
	    (x->medium && strlen(x->medium) >= sizeof(((struct ktakeout_info *)0)->medium)) ||
	    (x->approver && strlen(x->approver) > KFORMAT_USERID_MAX) ||
	    (x->request_hash && strlen(x->request_hash) >= sizeof(((struct ktakeout_info *)0)->request))) {
		kerr_set(ei, "take-out", "id, medium, approver or request hash missing or too long");
		return KERR_USAGE;
	}
	if (x->until <= x->from) {
		kerr_set(ei, x->id, "the period ends before it begins");
		return KERR_USAGE;
	}
	if (!x->nfiles || !x->files) {
		kerr_set(ei, x->id, "no files to take out");
		return KERR_USAGE;
	}
	if (strcmp(v->user->id, KTAKEOUT_SIGNER) == 0) {
		kerr_set(ei, v->user->id, "this id is reserved for the take-out vault's signer");
		return KERR_USAGE;
	}

	/* ---- every refusal before the first change on disk ---- */
	r = -ENOMEM;
	if (!(vp = calloc(x->nfiles, sizeof(*vp))) || !(tc = calloc(x->nfiles, sizeof(*tc))))
		goto out;
	for (size_t i = 0; i < x->nfiles; i++) {
		if ((r = vpath_parse(x->files[i], &vp[i], ei)) != 0 ||
		    (r = vpath_comp(v, &vp[i], ei)) != 0)
			goto out;
	}
	if ((r = audit_recipients(v->policy, v->user->id, &aud, &naud)) != 0)
		goto out;
	if (!naud) {
		r = KERR_POLICY;
		kerr_set(ei, "policy", "no auditor or other administrator to seal the take-out's audit log to");
		goto out;
	}
	for (size_t i = 0; i < naud; i++)
		if (strcmp(aud[i]->id, KTAKEOUT_SIGNER) == 0) {
			r = KERR_POLICY;
			kerr_set(ei, "policy", "user id '%s' is reserved for the take-out vault's signer",
				 KTAKEOUT_SIGNER);
			goto out;
		}
	if ((r = check_password(v, pw, pwlen, ei)) != 0) {
		if (r == KERR_PASSWORD)
			kerr_set(ei, "password", "not the password of '%s'", v->user->id);
		goto out;
	}
	/* keep rekey and erase away while the source is read */
	if (!v->holder) {
		char what[96];

		snprintf(what, sizeof(what), "take-out %s export", x->id);
		if ((r = kvault_lock(v, KVAULT_LOCK_MOUNT, what, ei)) != 0)
			goto out;
		took_lock = true;
	}
	/* the compartments involved, and a first pass: every path there and
	 * undamaged on the way; the bytes to copy */
	memset(&cnt, 0, sizeof(cnt));
	memset(&ws, 0, sizeof(ws));
	cnt.sel.vp = vp;
	cnt.sel.nvp = x->nfiles;
	cnt.sel.below = true;
	cnt.sel.ei = ei;
	for (size_t i = 0; i < x->nfiles; i++) {
		size_t j;

		for (j = 0; j < ntc && tc[j].src != vp[i].c; j++)
			;
		if (j < ntc)
			continue;
		tc[ntc++].src = vp[i].c;
		cnt.sel.c = vp[i].c;
		cnt.sel.route_why[0] = 0;
		r = kvault_walk_comp(v, vp[i].c, &count_ops, &cnt, &ws);
		if (r == 0)
			r = sel_check_found(&cnt.sel);
		if (r)
			goto out;
	}

	/* ---- DIR: new or empty ---- */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 && errno == ENOENT) {
		if (mkdir(dir, 0700) < 0) {
			r = -errno;
			kerr_set(ei, dir, NULL);
			goto out;
		}
		made_dir = true;
		dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (dfd < 0) {
		r = -errno;
		kerr_set(ei, dir, NULL);
		goto out;
	}
	if ((r = dir_state(dfd)) != 0) {
		kerr_set(ei, dir, r == KERR_EXISTS ? "a vault already exists here" :
			 r == -ENOTEMPTY ? "directory is not empty; a take-out needs a new or empty directory" :
			 NULL);
		close(dfd);
		dfd = -1;
		goto out;
	}
	started = true;
	if (mkdirat(dfd, TMPDIR_NAME, 0700) < 0 ||
	    (tfd = openat(dfd, TMPDIR_NAME, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)) < 0 ||
	    mkdirat(tfd, "policy", 0755) < 0 || mkdirat(tfd, "keys", 0755) < 0 ||
	    mkdirat(tfd, "grants", 0755) < 0 || mkdirat(tfd, "data", 0700) < 0) {
		r = -errno;
		kerr_set(ei, dir, NULL);
		goto out;
	}

	/* ---- keys: vault root (wiped after signing), signer, compartments ---- */
	r = -ENOMEM;
	if (!(root_seed = ksecmem_alloc(32)) || !(root_sk = ksecmem_alloc(64)) ||
	    !(signer = kkeys_user_alloc()))
		goto out;
	memset(&hdr, 0, sizeof(hdr));
	kcrypto_random(hdr.vault_id, 16);
	hdr.suite = v->hdr.suite;
	hdr.created = ktime_now();
	kcrypto_random(root_seed, 32);
	if ((r = kcrypto_sign_seed_keypair(hdr.root_pk, root_sk, root_seed)) != 0 ||
	    (r = kkeys_user_generate(signer, KTAKEOUT_SIGNER)) != 0)
		goto out;
	ksecmem_free(root_seed);
	root_seed = NULL;
	for (size_t i = 0; i < ntc; i++) {
		r = -ENOMEM;
		if (!(tc[i].epoch_key = ksecmem_alloc(32)) || !(tc[i].ek = ksecmem_alloc(sizeof(*tc[i].ek))))
			goto out;
		kcrypto_random(tc[i].id, 16);
		kcrypto_random(tc[i].epoch_key, 32);
		if ((r = kformat_epoch_keys_derive(tc[i].ek, 1, tc[i].epoch_key)) != 0)
			goto out;
		if ((r = kvault_comp_dir_create(tfd, tc[i].id, tc[i].ek)) != 0) {
			kerr_set(ei, dir, "cannot create the compartment directory: %s", strerror(-r));
			goto out;
		}
		if ((r = kkeys_grant_write(tfd, hdr.vault_id, tc[i].id, 1, v->user->id, v->user->box_pk,
					   tc[i].epoch_key, ei)) != 0)
			goto out;
	}
	if ((r = build_policy(v, x, hdr.vault_id, signer, tc, ntc, aud, naud, &p)) != 0 ||
	    (r = kpolicy_store(tfd, p, KTAKEOUT_SIGNER, signer->sign_sk, root_sk, ei)) != 0)
		goto out;
	if ((r = write_keyfile(v, tfd, hdr.vault_id, hdr.root_pk, pw, pwlen, ei)) != 0)
		goto out;
	if ((r = kformat_vault_serialize(&hdr, root_sk, hbuf)) != 0)
		goto out;
	/* nobody can sign for this vault again */
	ksecmem_free(root_sk);
	root_sk = NULL;
	kkeys_user_free(signer);
	signer = NULL;

	/* ---- the files ---- */
	r = -ENOMEM;
	if (!(o = calloc(1, sizeof(*o))) || !(o->pend = ksecmem_alloc(KFORMAT_BS)) ||
	    !(o->wbuf = malloc(KFORMAT_FHDR_LEN + (size_t)(WBLOCKS + 1) * v->geom.cbs)))
		goto out;
	o->v = v;
	o->g = &v->geom;
	o->fd = -1;
	o->st = st;
	o->total = cnt.bytes;
	o->progress = progress;
	o->pctx = ctx;
	o->as_root = geteuid() == 0;
	o->sel.vp = vp;
	o->sel.nvp = x->nfiles;
	o->sel.below = true;
	o->sel.ei = ei;
	for (size_t i = 0; i < ntc; i++) {
		char hex[33], path[64];

		for (size_t j = 0; j < x->nfiles; j++)
			vp[j].found = false;
		khex_encode(hex, tc[i].id, 16);
		snprintf(path, sizeof(path), "data/%s", hex);
		o->rootfd = openat(tfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (o->rootfd < 0) {
			r = -errno;
			kerr_set(ei, dir, NULL);
			goto out;
		}
		o->k = tc[i].ek;
		o->sel.c = tc[i].src;
		o->sel.route_why[0] = 0;
		o->depth = 0;
		r = kvault_walk_comp(v, tc[i].src, &copy_ops, o, &ws);
		while (o->depth > 0) { /* a walk that stopped inside */
			close(o->stack[o->depth - 1].fd);
			free(o->stack[o->depth - 1].path);
			o->depth--;
		}
		if (o->fd >= 0) {
			close(o->fd);
			o->fd = -1;
		}
		close(o->rootfd);
		o->rootfd = -1;
		if (r == 0)
			r = o->sel.err ? o->sel.err : sel_check_found(&o->sel);
		if (r) {
			if (ei && !ei->detail[0])
				kerr_set(ei, dir, "%s", kinko_strerror(r));
			goto out;
		}
	}

	/* ---- into place, kinko.vault last ---- */
	if (syncfs(tfd) < 0) {
		r = -errno;
		kerr_set(ei, dir, NULL);
		goto out;
	}
	{
		static const char *const parts[] = { "data", "grants", "policy", "keys" };

		for (size_t i = 0; i < 4; i++)
			if (renameat(tfd, parts[i], dfd, parts[i]) < 0) {
				r = -errno;
				kerr_set(ei, dir, NULL);
				goto out;
			}
	}
	close(tfd);
	tfd = -1;
	if (unlinkat(dfd, TMPDIR_NAME, AT_REMOVEDIR) < 0 || (r = kfsync_dir(dfd)) < 0) {
		r = r ? r : -errno;
		kerr_set(ei, dir, NULL);
		goto out;
	}
	if ((r = kfile_create_at(dfd, KFORMAT_VAULT_FILE, hbuf, sizeof(hbuf), 0644)) != 0) {
		kerr_set(ei, dir, "cannot write %s: %s", KFORMAT_VAULT_FILE, strerror(-r));
		goto out;
	}
	memcpy(st->vault_id, hdr.vault_id, 16);
	memcpy(st->root_pk, hdr.root_pk, 32);
	r = 0;
out:
	if (o) {
		free(o->fpath);
		ksecmem_free(o->pend);
		free(o->wbuf);
		free(o);
	}
	if (tfd >= 0)
		close(tfd);
	if (r && started)
		undo(dfd, dir, made_dir);
	else if (r && made_dir)
		rmdir(dir);
	if (dfd >= 0)
		close(dfd);
	if (r) {
		uint8_t z[16] = { 0 };

		memcpy(st->vault_id, z, 16);
		st->files = st->dirs = st->bytes = st->skipped = 0;
	}
	for (size_t i = 0; tc && i < ntc; i++) {
		ksecmem_free(tc[i].epoch_key);
		ksecmem_free(tc[i].ek);
	}
	for (size_t i = 0; vp && i < x->nfiles; i++)
		free(vp[i].rel);
	if (took_lock)
		kvault_lock_release(v);
	kpolicy_free(p);
	kkeys_user_free(signer);
	ksecmem_free(root_seed);
	ksecmem_free(root_sk);
	ksecmem_wipe(hbuf, sizeof(hbuf));
	free(aud);
	free(tc);
	free(vp);
	return r;
}

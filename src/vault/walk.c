// SPDX-License-Identifier: GPL-2.0-or-later
/* The verified tree walk of a compartment, shared by fsck and the take-out
 * exporter: every directory IV file (and its binding to its place), name, file
 * header (and its name binding unless LINKED), content block, symlink target
 * and xattr is authenticated before its plaintext reaches a callback. Each
 * damaged item goes to ops->damage with its plaintext path where the names
 * above it decrypt. A want callback prunes: entries it declines are neither
 * verified nor entered. Read-only: the walk never changes the vault. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "kinko/vault.h"

#define MAX_DEPTH 512
#define CHUNK 256
#define dfd_of(dp) dirfd(dp)

struct walk {
	struct kvault *v;
	const struct kkeys_comp *c;
	const struct kvault_walk_ops *ops;
	void *ctx;
	struct kvault_fsck_stats *st;
	uint8_t *cbuf, *pbuf;
	int stop; /* nonzero: a callback ended the walk with this value */
	struct lt_ref { char name[33]; dev_t dev; ino_t ino; } *lt; /* side files referred to */
	size_t nlt, ltcap;
	bool lt_lost;   /* out of memory: no orphan check */
};

static void damage(struct walk *w, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void damage(struct walk *w, const char *path, const char *fmt, ...)
{
	char why[512];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	w->st->damaged++;
	if (w->ops->damage && (r = w->ops->damage(w->ctx, path, why)) != 0 && !w->stop)
		w->stop = r;
}

/* a callback's result: nonzero ends the walk */
static bool cb(struct walk *w, int r)
{
	if (r && !w->stop)
		w->stop = r;
	return w->stop != 0;
}

static void check_xattrs(struct walk *w, int fd, const char *path)
{
	char p[64], *list = NULL, plain[256];
	uint8_t *val = NULL, *out = NULL;
	ssize_t n;

	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	n = listxattr(p, NULL, 0);
	if (n <= 0 || !(list = malloc((size_t)n)) || (n = listxattr(p, list, (size_t)n)) <= 0)
		goto out;
	for (char *s = list; s < list + n && !w->stop; s += strlen(s) + 1) {
		uint32_t epoch;
		const struct kformat_epoch_keys *k = NULL;
		ssize_t vl;

		if (kformat_xattr_name_epoch(s, &epoch) != 0)
			continue;
		w->st->xattrs++;
		if (!(k = kkeys_comp_epoch(w->c, epoch))) {
			damage(w, path, "xattr under unknown epoch %u", epoch);
			continue;
		}
		if (kformat_xattr_name_decrypt(k, s, plain, sizeof(plain)) != 0) {
			damage(w, path, "xattr name does not decrypt");
			continue;
		}
		vl = getxattr(p, s, NULL, 0);
		free(val);
		free(out);
		val = out = NULL;
		if (vl < 0 || !(val = malloc((size_t)vl + 1)) || !(out = malloc((size_t)vl + 1)) ||
		    (vl = getxattr(p, s, val, (size_t)vl)) < 0 ||
		    kformat_xattr_value_decrypt(&w->v->geom, k, s, val, (size_t)vl, out) != 0) {
			damage(w, path, "xattr '%s' value does not decrypt", plain);
			continue;
		}
		if (w->ops->xattr) {
			size_t ol = (size_t)vl - kformat_xattr_value_overhead(&w->v->geom);

			cb(w, w->ops->xattr(w->ctx, path, plain, out, ol));
			ksecmem_wipe(out, ol);
		}
	}
out:
	free(list);
	free(val);
	free(out);
}

static void check_file(struct walk *w, int dirfd, const char *bname, const uint8_t dir_iv[16],
		       const char *path)
{
	const struct kformat_geom *g = &w->v->geom;
	const struct kvault_walk_ops *ops = w->ops;
	struct kformat_fhdr h;
	const struct kformat_epoch_keys *k = NULL;
	uint8_t hb[KFORMAT_FHDR_LEN], key[32], expect[16];
	struct stat st;
	uint64_t psize, nblocks;
	bool bad, ok = false, begun = false;
	int fd, r;

	w->st->files++;
	fd = openat(dirfd, bname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		damage(w, path, "cannot open: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	psize = kformat_plain_size(g, (uint64_t)st.st_size, &bad);
	if (ops->file_begin) {
		r = ops->file_begin(w->ctx, path, &st, bad ? 0 : psize);
		if (r > 0) /* the caller needs nothing more of this file */
			goto out;
		if (cb(w, r))
			goto out;
		begun = true;
	}
	check_xattrs(w, fd, path);
	if (w->stop)
		goto out;
	if (st.st_size == 0) {
		ok = true;
		goto out;
	}
	if (kpread_full(fd, hb, sizeof(hb), 0) != (ssize_t)sizeof(hb) ||
	    kformat_fhdr_parse(hb, sizeof(hb), &h) != 0 || h.suite != g->suite) {
		damage(w, path, "file header missing or malformed");
		goto out;
	}
	if (!(k = kkeys_comp_epoch(w->c, h.epoch))) {
		damage(w, path, "file is under epoch %u, which this user holds no key for", h.epoch);
		goto out;
	}
	if (kformat_fhdr_verify(hb, sizeof(hb), k) != 0) {
		damage(w, path, "file header fails authentication");
		goto out;
	}
	if (!(h.flags & KFORMAT_FHDR_LINKED)) {
		if (kformat_binding(expect, dir_iv, bname) != 0 ||
		    (!kcrypto_memeq(expect, h.bind, 16) &&
		     (kformat_binding_is_zero(h.bind_prev) || !kcrypto_memeq(expect, h.bind_prev, 16)))) {
			damage(w, path, "file header is bound to another name (file swapped or moved)");
			goto out;
		}
	}
	if (bad) {
		damage(w, path, "size %lld cannot be a kinko file (truncated inside a block)",
		       (long long)st.st_size);
		goto out;
	}
	if (kformat_file_key(key, k, h.file_id) != 0)
		goto out;
	kcrypto_aead_batch_begin(key);
	nblocks = kformat_nblocks(psize);
	for (uint64_t b0 = 0; b0 < nblocks; b0 += CHUNK) {
		uint64_t nb = nblocks - b0 < CHUNK ? nblocks - b0 : CHUNK;
		uint64_t coff = kformat_block_off(g, b0), cend = kformat_block_off(g, b0 + nb);
		ssize_t n;

		if (cend > (uint64_t)st.st_size)
			cend = (uint64_t)st.st_size;
		n = kpread_full(fd, w->cbuf, cend - coff, (off_t)coff);
		if (n != (ssize_t)(cend - coff)) {
			damage(w, path, "short read");
			goto wipe;
		}
		for (uint64_t i = 0; i < nb; i++) {
			uint64_t cl = cend - coff - i * g->cbs;

			cl = cl < g->cbs ? cl : g->cbs;
			r = kformat_block_open(g, key, h.file_id, b0 + i, b0 + i == nblocks - 1,
					       w->cbuf + i * g->cbs, cl, w->pbuf);
			if (r) {
				damage(w, path, "block %llu fails authentication (offset %llu)",
				       (unsigned long long)(b0 + i),
				       (unsigned long long)((b0 + i) * KFORMAT_BS));
				goto wipe;
			}
			w->st->blocks++;
			if (ops->file_data && cb(w, ops->file_data(w->ctx, w->pbuf, cl - g->overhead)))
				goto wipe;
		}
	}
	w->st->bytes += psize;
	ok = true;
wipe:
	kcrypto_aead_batch_end();
	ksecmem_wipe(key, sizeof(key));
	ksecmem_wipe(w->pbuf, KFORMAT_BS);
out:
	close(fd);
	if (begun && ops->file_end)
		cb(w, ops->file_end(w->ctx, path, ok && !w->stop));
}

static void lt_seen(struct walk *w, const char *name, const struct stat *st)
{
	if (w->nlt == w->ltcap) {
		size_t cap = w->ltcap ? 2 * w->ltcap : 16;
		struct lt_ref *n = realloc(w->lt, cap * sizeof(*n));

		if (!n) {
			w->lt_lost = true;
			return;
		}
		w->lt = n;
		w->ltcap = cap;
	}
	memcpy(w->lt[w->nlt].name, name, 33); /* 32 hex digits and the NUL (a checked reference) */
	w->lt[w->nlt].dev = st->st_dev;
	w->lt[w->nlt++].ino = st->st_ino;
}

static void walk_dir(struct walk *w, int dfd, const uint8_t parent_iv[16], const char *bname,
		     const char *path, int depth)
{
	const struct kvault_walk_ops *ops = w->ops;
	uint8_t buf[KFORMAT_DIRIV_LEN + 1], expect[16];
	struct kformat_diriv d;
	const struct kformat_epoch_keys *k = NULL;
	DIR *dp;
	struct dirent *de;
	struct stat dst;
	ssize_t n;
	int fd, r;

	w->st->dirs++;
	if (depth > MAX_DEPTH) {
		damage(w, path, "directory nesting deeper than %d", MAX_DEPTH);
		return;
	}
	fd = openat(dfd, KFORMAT_DIRIV_NAME, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		damage(w, path[0] ? path : "/", "directory IV file missing: names cannot be read");
		return;
	}
	n = kpread_full(fd, buf, sizeof(buf), 0);
	close(fd);
	r = n < 0 ? (int)n : kformat_diriv_parse(buf, (size_t)n, &d);
	if (r == 0 && !(k = kkeys_comp_epoch(w->c, d.epoch)))
		r = KERR_NOGRANT;
	if (r == 0)
		r = kformat_diriv_verify(buf, (size_t)n, k);
	if (r == 0 && (kformat_binding(expect, parent_iv, bname) != 0 ||
		       (!kcrypto_memeq(expect, d.bind, 16) &&
			(kformat_binding_is_zero(d.bind_prev) || !kcrypto_memeq(expect, d.bind_prev, 16)))))
		r = KERR_MISMATCH;
	if (r == KERR_NOGRANT) {
		/* not damage as such: keys of that epoch are gone (re-keyed, erased)
		 * or were never this user's */
		damage(w, path[0] ? path : "/", "directory is under epoch %u, which this user holds no key for",
		       d.epoch);
		return;
	}
	if (r) {
		damage(w, path[0] ? path : "/", "directory IV file %s",
		       r == KERR_MISMATCH ? "belongs to another directory (replaced or moved)" :
		       "corrupt or fails authentication");
		return;
	}
	fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(dp = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		damage(w, path, "cannot list: %s", strerror(errno));
		return;
	}
	if (fstat(dfd_of(dp), &dst) < 0)
		memset(&dst, 0, sizeof(dst));
	if (ops->dir_enter && cb(w, ops->dir_enter(w->ctx, path, &dst)))
		goto done;
	check_xattrs(w, dfd, path[0] ? path : "/");
	while (!w->stop && (de = readdir(dp)) != NULL) {
		char name[256], full[KFORMAT_ENCNAME_MAX + 1], check[256], child[8192];
		enum kformat_entry_kind kind;
		const char *enc = de->d_name;
		size_t nlen, enclen = strlen(de->d_name);
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		kind = kformat_entry_classify(de->d_name);
		if (kind == KFORMAT_ENTRY_INTERNAL)
			continue;
		if (kind == KFORMAT_ENTRY_SIDECAR) {
			char main_name[256];

			snprintf(main_name, sizeof(main_name), "%.*s", (int)(enclen - 5), de->d_name);
			if (faccessat(dfd_of(dp), main_name, F_OK, AT_SYMLINK_NOFOLLOW) != 0)
				damage(w, path[0] ? path : "/", "orphan long-name file %s", de->d_name);
			continue;
		}
		if (kind == KFORMAT_ENTRY_FOREIGN) {
			damage(w, path[0] ? path : "/", "foreign entry '%s' (not made by kinko)", de->d_name);
			continue;
		}
		if (kind == KFORMAT_ENTRY_LONG) {
			char side[300];
			int sfd;

			snprintf(side, sizeof(side), "%s" KFORMAT_LONGNAME_SUFFIX, de->d_name);
			sfd = openat(dfd_of(dp), side, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
			n = sfd < 0 ? -1 : kpread_full(sfd, full, sizeof(full) - 1, 0);
			if (sfd >= 0)
				close(sfd);
			if (n <= 0 || (size_t)n >= sizeof(full) - 1) {
				damage(w, path[0] ? path : "/", "long name %s has no readable name file", de->d_name);
				continue;
			}
			full[n] = 0;
			if (kformat_longname_backing(check, full, (size_t)n) != 0 ||
			    strcmp(check, de->d_name) != 0) {
				damage(w, path[0] ? path : "/", "long name file of %s does not match", de->d_name);
				continue;
			}
			enc = full;
			enclen = (size_t)n;
		}
		if (kformat_name_decrypt(k, d.iv, enc, enclen, name, &nlen) != 0) {
			damage(w, path[0] ? path : "/", "name %s does not decrypt", de->d_name);
			continue;
		}
		snprintf(child, sizeof(child), "%s%s%s", path, path[0] ? "/" : "", name);
		if (fstatat(dfd_of(dp), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (ops->want) {
			int kw = S_ISDIR(st.st_mode) ? KVAULT_WALK_DIR : S_ISREG(st.st_mode) ?
				 KVAULT_WALK_FILE : S_ISLNK(st.st_mode) ? KVAULT_WALK_SYMLINK :
				 KVAULT_WALK_OTHER;

			if (!ops->want(w->ctx, child, kw))
				continue;
		}
		if (S_ISDIR(st.st_mode)) {
			int cfd = openat(dfd_of(dp), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (cfd < 0) {
				damage(w, child, "cannot open directory: %s", strerror(errno));
				continue;
			}
			walk_dir(w, cfd, d.iv, de->d_name, child, depth + 1);
			close(cfd);
		} else if (S_ISREG(st.st_mode)) {
			check_file(w, dfd_of(dp), de->d_name, d.iv, child);
		} else if (S_ISLNK(st.st_mode)) {
			char raw[KFORMAT_SYMLINK_MAX + 1] = "", plain[KFORMAT_SYMLINK_TARGET_MAX + 1];
			size_t tl;
			int lr = kkeys_symlink_read(&w->v->geom, w->c, w->v->datafd, dfd_of(dp), de->d_name,
						    raw, plain, sizeof(plain), &tl, NULL);

			w->st->symlinks++;
			if (kformat_symlink_is_ref(raw) &&
			    kformat_lt_name_valid(raw + sizeof(KFORMAT_LT_REF) - 1))
				lt_seen(w, raw + sizeof(KFORMAT_LT_REF) - 1, &st); /* even if damaged: not an orphan */
			if (lr < 0 && lr > -KERR_BASE) {
				damage(w, child, "symlink unreadable: %s", strerror(-lr));
				continue;
			}
			if (lr && kformat_symlink_is_ref(raw)) {
				damage(w, child, "long symlink target %s/%s is missing or does not decrypt",
				       KFORMAT_LT_DIR, raw + sizeof(KFORMAT_LT_REF) - 1);
				continue;
			}
			if (lr) {
				damage(w, child, "symlink target does not decrypt");
				continue;
			}
			if (ops->symlink)
				cb(w, ops->symlink(w->ctx, child, plain, &st));
		} else {
			w->st->others++;
			if (ops->other)
				cb(w, ops->other(w->ctx, child, &st));
		}
	}
	if (!w->stop && ops->dir_leave)
		cb(w, ops->dir_leave(w->ctx, path, &dst));
done:
	closedir(dp);
}

static int lt_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* side files in <compartment>/kinko.lt that no symlink refers to */
static void lt_orphans(struct walk *w, int cfd)
{
	int fd = openat(cfd, KFORMAT_LT_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct dirent *de;
	DIR *d;

	if (fd < 0) {
		if (errno != ENOENT)
			damage(w, "/", "%s is not a readable directory: %s", KFORMAT_LT_DIR, strerror(errno));
		return;
	}
	if (!(d = fdopendir(fd))) {
		close(fd);
		return;
	}
	if (w->nlt)
		qsort(w->lt, w->nlt, sizeof(w->lt[0]), lt_cmp);
	/* one side file, two symlinks that are not hard links of each other: a
	 * copy of the vault that did not keep hard links; removing one takes it */
	for (size_t i = 1; i < w->nlt; i++)
		if (!strcmp(w->lt[i].name, w->lt[i - 1].name) &&
		    (w->lt[i].ino != w->lt[i - 1].ino || w->lt[i].dev != w->lt[i - 1].dev))
			damage(w, "/", "%s/%s is shared by separate symlinks (a copy that did not keep "
			       "hard links): removing one would break the others", KFORMAT_LT_DIR,
			       w->lt[i].name);
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (!kformat_lt_name_valid(de->d_name))
			damage(w, "/", "foreign entry '%s/%s' (not made by kinko)", KFORMAT_LT_DIR, de->d_name);
		else if (!w->nlt || !bsearch(de->d_name, w->lt, w->nlt, sizeof(w->lt[0]), lt_cmp)) {
			/* a leftover, not damage */
			char what[600];

			snprintf(what, sizeof(what), "orphan long symlink target %s/%s: no symlink refers "
				 "to it (left by a crash, or by a removal on a network filesystem that "
				 "reports no link counts); it holds ciphertext only and may be deleted",
				 KFORMAT_LT_DIR, de->d_name);
			w->st->notes++;
			if (w->ops->note)
				cb(w, w->ops->note(w->ctx, "/", what));
		}
	}
	closedir(d);
}

int kvault_walk_comp(struct kvault *v, const struct kkeys_comp *c, const struct kvault_walk_ops *ops,
		     void *ctx, struct kvault_fsck_stats *st)
{
	struct walk w;
	int fd;

	memset(&w, 0, sizeof(w));
	w.v = v;
	w.c = c;
	w.ops = ops;
	w.ctx = ctx;
	w.st = st;
	w.cbuf = malloc((size_t)CHUNK * v->geom.cbs);
	w.pbuf = ksecmem_alloc(KFORMAT_BS);
	if (!w.cbuf || !w.pbuf) {
		free(w.cbuf);
		ksecmem_free(w.pbuf);
		return -ENOMEM;
	}
	fd = openat(v->datafd, c->hexid, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		damage(&w, "/", "compartment directory data/%s missing", c->hexid);
	} else {
		uint64_t damaged = st->damaged;

		walk_dir(&w, fd, c->id, c->hexid, "", 0);
		/* only a whole walk knows every reference: not one that skipped
		 * damaged entries (a symlink among them would look orphaned) */
		if (!ops->want && !w.stop && !w.lt_lost && st->damaged == damaged)
			lt_orphans(&w, fd);
		close(fd);
	}
	free(w.lt);
	free(w.cbuf);
	ksecmem_free(w.pbuf);
	return w.stop;
}

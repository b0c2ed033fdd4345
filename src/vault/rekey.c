// SPDX-License-Identifier: GPL-2.0-or-later
/* kinko key rekey: re-encrypt every file, name, symlink and xattr of a
 * compartment still under an older epoch, then destroy the old epoch keys.
 *
 * Crash safety comes from the on-disk state itself: every item records its
 * epoch (file header, directory IV file, symlink encoding, xattr name) and a
 * name either decrypts under the target epoch (done) or under an older one
 * (to do), so a rerun simply continues. Each step is atomic:
 *  - a file is rewritten whole as kinko.rk.t<random> (new header, new file id,
 *    blocks re-encrypted, xattrs, owner, mode, times), fsynced, renamed to its
 *    new name; the old name goes only after the directory is fsynced, and a
 *    rerun that finds both names drops the old one;
 *  - a directory gets its IV file rebound (bind_prev = old place) before the
 *    rename, as a rename in the mount does, then its contents are processed,
 *    then its IV file is rewritten under the target epoch;
 *  - symlinks are recreated under a temporary name and renamed;
 *  - xattrs of directories are set under the new name before the old goes;
 *  - files with several names are staged once at the compartment root as
 *    kinko.rk.l<inode>.<file id> and linked to each new name, so a crash never
 *    splits a hard link into copies.
 * Temporary kinko.rk.t* files of a killed run are removed; the staging files
 * and the marker data/COMP/kinko.rekey (mounts refuse while it exists) go
 * when the walk is complete. Only after a walk with no damaged item are the
 * old epochs removed from the policy and their grant files overwritten and
 * unlinked. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "kinko/lifecycle.h"
#include "kinko_config.h"

#define CHUNK 256           /* blocks per read/write: 1 MiB of plaintext */
#define MAX_DEPTH 512
#define TMP_PREFIX "kinko.rk.t"
#define STAGE_PREFIX "kinko.rk.l"
#define MARKER "kinko.rekey"
#define PENDING_MAX 256
#define HELPER_MIN 32               /* blocks in a chunk worth a second thread */
#define READY_MAX 256                /* re-keyed copies made durable by one syncfs */
#define READY_BYTES (64u << 20)

struct pending {
	char name[256];
	bool long_name;
	bool sidecar_only;
};

struct rk {
	struct kvault *v;
	const struct kformat_geom *g;
	const struct kkeys_comp *c;
	const struct kformat_epoch_keys *tk;
	uint32_t target;
	int compfd;
	bool counting;
	uint8_t *cin, *cout, *nonces;
	uint8_t *pt;      /* secure: plaintext of one chunk */
	uint8_t *fkeys;   /* secure: old and new file keys */
	kvault_rekey_progress_fn progress;
	kvault_rekey_report_fn report;
	void *ctx;
	struct kvault_rekey_progress p;
	struct timespec t0;
	double last;
	uint64_t damaged;
	long delay_ms;    /* test builds: pause per item (kill -9 tests) */
	struct helper *helper; /* second crypto thread, or NULL */
};
struct helper;

static void damage(struct rk *rk, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void damage(struct rk *rk, const char *path, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	if (rk->counting)
		return; /* reported once, by the real pass */
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	rk->damaged++;
	if (rk->report)
		rk->report(rk->ctx, path[0] ? path : "/", why);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void tick(struct rk *rk, bool final)
{
	double t = now_s();

	if (rk->counting || !rk->progress || (!final && t - rk->last < 0.2))
		return;
	rk->last = t;
	rk->p.elapsed = t - ((double)rk->t0.tv_sec + (double)rk->t0.tv_nsec / 1e9);
	rk->progress(rk->ctx, &rk->p, final);
}

static void test_pause(struct rk *rk)
{
	if (rk->delay_ms > 0 && !rk->counting) {
		struct timespec ts = { rk->delay_ms / 1000, (rk->delay_ms % 1000) * 1000000L };

		nanosleep(&ts, NULL);
	}
}

static void child_path(char *out, size_t n, const char *path, const char *name)
{
	snprintf(out, n, "%s%s%s", path, path[0] ? "/" : "", name);
}

static void tmp_name(char out[64], const char *prefix)
{
	uint8_t r[8];

	if (kcrypto_nonce(r, sizeof(r)) != 0) /* not secret: the DRBG, no system call */
		kcrypto_random(r, sizeof(r));
	snprintf(out, 64, "%s%02x%02x%02x%02x%02x%02x%02x%02x", prefix, r[0], r[1], r[2], r[3], r[4],
		 r[5], r[6], r[7]);
}

static int sidecar_write(int dfd, const char *backing, const char *full)
{
	char side[300];
	int fd, r;

	snprintf(side, sizeof(side), "%s" KFORMAT_LONGNAME_SUFFIX, backing);
	unlinkat(dfd, side, 0);
	fd = openat(dfd, side, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0400);
	if (fd < 0)
		return -errno;
	r = kwrite_all(fd, full, strlen(full));
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

static void sidecar_remove(int dfd, const char *backing)
{
	char side[300];

	snprintf(side, sizeof(side), "%s" KFORMAT_LONGNAME_SUFFIX, backing);
	unlinkat(dfd, side, 0);
}

/* ---- per-directory list of old names to drop once the new ones are durable ---- */

/* re-keyed copies written but not yet synced and renamed into place */
struct ready {
	char tmp[64];
	char nb[256];
	char nb_full[KFORMAT_ENCNAME_MAX + 1];
	bool nb_long;
	char old[256];
	bool is_new, is_long;
};

struct pend {
	struct pending a[PENDING_MAX];
	size_t n;
	struct ready *rd;  /* READY_MAX */
	size_t nrd;
	uint64_t rd_bytes;
	int cfd;           /* the compartment's directory */
};

/* unlink dfd/name; the side file of a long symlink target goes with its last link */
static void unlink_entry(int cfd, int dfd, const char *name)
{
	struct kformat_lt_hold lt;

	kformat_lt_hold(&lt, dfd, name, NULL);
	unlinkat(dfd, name, 0);
	kformat_lt_release(&lt, cfd, ".");
}

static void pend_flush(int dfd, struct pend *pd)
{
	if (!pd->n)
		return;
	fsync(dfd);
	for (size_t i = 0; i < pd->n; i++) {
		if (!pd->a[i].sidecar_only)
			unlink_entry(pd->cfd, dfd, pd->a[i].name);
		if (pd->a[i].long_name)
			sidecar_remove(dfd, pd->a[i].name);
	}
	pd->n = 0;
}

static void pend_add(int dfd, struct pend *pd, const char *name, bool long_name, bool sidecar_only);

/* One syncfs for a batch of copies instead of an fsync each (small files
 * would otherwise run at the disk's sync rate), then the renames. */
static void ready_flush(struct rk *rk, int dfd, struct pend *pd)
{
	bool synced;

	if (!pd->nrd)
		return;
	for (size_t i = 0; i < pd->nrd; i++) {
		struct ready *x = &pd->rd[i];
		char side[300];
		int fd;

		if (!x->nb_long)
			continue;
		snprintf(side, sizeof(side), "%s" KFORMAT_LONGNAME_SUFFIX, x->nb);
		unlinkat(dfd, side, 0);
		fd = openat(dfd, side, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0400);
		if (fd < 0 || kwrite_all(fd, x->nb_full, strlen(x->nb_full)) != 0) {
			damage(rk, "", "cannot write the name file %s: %s", side, strerror(errno));
			x->tmp[0] = 0; /* not renamed: the next run redoes it */
		}
		if (fd >= 0)
			close(fd);
	}
	synced = syncfs(dfd) == 0;
	for (size_t i = 0; i < pd->nrd; i++) {
		struct ready *x = &pd->rd[i];

		if (!x->tmp[0])
			continue;
		if (!synced) { /* a filesystem without syncfs: one by one */
			int fd = openat(dfd, x->tmp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

			if (fd < 0 || fsync(fd) < 0) {
				damage(rk, "", "cannot sync %s: %s", x->tmp, strerror(errno));
				if (fd >= 0)
					close(fd);
				continue;
			}
			close(fd);
		}
		if (renameat(dfd, x->tmp, dfd, x->nb) < 0) {
			damage(rk, "", "cannot rename the re-keyed copy %s: %s", x->tmp, strerror(errno));
			unlinkat(dfd, x->tmp, 0);
			continue;
		}
		if (!x->is_new)
			pend_add(dfd, pd, x->old, x->is_long, false);
	}
	pd->nrd = 0;
	pd->rd_bytes = 0;
}

static void pend_add(int dfd, struct pend *pd, const char *name, bool long_name, bool sidecar_only)
{
	if (pd->n == PENDING_MAX)
		pend_flush(dfd, pd);
	snprintf(pd->a[pd->n].name, sizeof(pd->a[pd->n].name), "%s", name);
	pd->a[pd->n].long_name = long_name;
	pd->a[pd->n].sidecar_only = sidecar_only;
	pd->n++;
}

/* ---- xattrs ---- */

/* Re-encrypt the kinko xattrs of src: onto dst (a new file) or, dst < 0, in
 * place. Returns 0, or <0 when one could not be read (reported). */
static int xattrs_rekey(struct rk *rk, int src, int dst, const char *path, bool *any_old)
{
	char *list = NULL, plain[256], nname[400];
	uint8_t *val = NULL, *pv = NULL, *nv = NULL;
	ssize_t n;
	int r = 0;

	if (any_old)
		*any_old = false;
	n = flistxattr(src, NULL, 0);
	if (n <= 0)
		return 0;
	if (!(list = malloc((size_t)n)) || (n = flistxattr(src, list, (size_t)n)) < 0) {
		free(list);
		return -ENOMEM;
	}
	for (char *s = list; s < list + n; s += strlen(s) + 1) {
		const struct kformat_epoch_keys *k;
		size_t ov = kformat_xattr_value_overhead(rk->g);
		uint32_t e;
		ssize_t vl;

		if (kformat_xattr_name_epoch(s, &e) != 0)
			continue; /* not kinko's: not copied */
		if (any_old) {
			if (e != rk->target)
				*any_old = true;
			continue;
		}
		if (dst < 0 && e == rk->target)
			continue;
		if (!(k = kkeys_comp_epoch(rk->c, e))) {
			damage(rk, path, "xattr under epoch %" PRIu32 ", which you hold no key for", e);
			r = KERR_NOGRANT;
			continue;
		}
		free(val);
		free(pv);
		free(nv);
		val = pv = nv = NULL;
		vl = fgetxattr(src, s, NULL, 0);
		if (vl < (ssize_t)ov || !(val = malloc((size_t)vl)) || !(pv = malloc((size_t)vl)) ||
		    !(nv = malloc((size_t)vl + 64)) || (vl = fgetxattr(src, s, val, (size_t)vl)) < (ssize_t)ov ||
		    kformat_xattr_name_decrypt(k, s, plain, sizeof(plain)) != 0 ||
		    kformat_xattr_value_decrypt(rk->g, k, s, val, (size_t)vl, pv) != 0) {
			damage(rk, path, "xattr %s does not decrypt", s);
			r = KERR_AUTH;
			continue;
		}
		if (e == rk->target) { /* already new: copy as is */
			ksecmem_wipe(pv, (size_t)vl);
			if (fsetxattr(dst, s, val, (size_t)vl, 0) < 0)
				r = -errno;
			continue;
		}
		if (kformat_xattr_name_encrypt(rk->tk, plain, nname, sizeof(nname)) != 0 ||
		    kformat_xattr_value_encrypt(rk->g, rk->tk, nname, pv, (size_t)vl - ov, nv) != 0) {
			ksecmem_wipe(pv, (size_t)vl);
			r = -EIO;
			continue;
		}
		ksecmem_wipe(pv, (size_t)vl);
		if (fsetxattr(dst >= 0 ? dst : src, nname, nv, (size_t)vl, 0) < 0) {
			r = -errno;
			damage(rk, path, "cannot set xattr: %s", strerror(errno));
			continue;
		}
		if (dst < 0)
			fremovexattr(src, s);
		rk->p.items++;
	}
	free(list);
	free(val);
	free(pv);
	free(nv);
	return r;
}

/* ---- regular files ---- */

/* blocks [i0, i1) of one chunk (first block b0): open with the old file key,
 * seal with the new one; plen[i] = plaintext length of block i */
struct span {
	struct rk *rk;
	const uint8_t *okey, *nkey, *oid, *nid;
	uint64_t b0, i0, i1, nblocks, clen;
	size_t *plen;
	uint64_t bad; /* block that failed authentication */
	int r;
};

static void span_work(struct span *s)
{
	const struct kformat_geom *g = s->rk->g;
	struct rk *rk = s->rk;

	s->r = 0;
	kcrypto_aead_batch_begin(s->okey);
	for (uint64_t i = s->i0; i < s->i1; i++) {
		uint64_t cl = s->clen - i * g->cbs;

		cl = cl < g->cbs ? cl : g->cbs;
		s->plen[i] = cl - g->overhead;
		if ((s->r = kformat_block_open(g, s->okey, s->oid, s->b0 + i, s->b0 + i == s->nblocks - 1,
					       rk->cin + i * g->cbs, cl, rk->pt + i * KFORMAT_BS)) != 0) {
			s->bad = s->b0 + i;
			break;
		}
	}
	kcrypto_aead_batch_end();
	if (s->r)
		return;
	kcrypto_aead_batch_begin(s->nkey);
	for (uint64_t i = s->i0; i < s->i1 && s->r == 0; i++)
		s->r = kformat_block_seal_nonce(g, s->nkey, s->nid, s->b0 + i, s->b0 + i == s->nblocks - 1,
						rk->pt + i * KFORMAT_BS, s->plen[i],
						rk->nonces + i * g->nonce, rk->cout + i * g->cbs);
	kcrypto_aead_batch_end();
}

/* ---- a second thread for the crypto of large files ---- */

struct helper {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct span *job;
	bool busy, quit;
};

static void *helper_main(void *arg)
{
	struct helper *hp = arg;

	pthread_mutex_lock(&hp->mu);
	for (;;) {
		while (!hp->job && !hp->quit)
			pthread_cond_wait(&hp->cv, &hp->mu);
		if (hp->quit)
			break;
		pthread_mutex_unlock(&hp->mu);
		span_work(hp->job);
		pthread_mutex_lock(&hp->mu);
		hp->job = NULL;
		hp->busy = false;
		pthread_cond_broadcast(&hp->cv);
	}
	pthread_mutex_unlock(&hp->mu);
	kcrypto_thread_scrub(); /* its key schedules */
	return NULL;
}

static void helper_run(struct helper *hp, struct span *s)
{
	pthread_mutex_lock(&hp->mu);
	hp->job = s;
	hp->busy = true;
	pthread_cond_broadcast(&hp->cv);
	pthread_mutex_unlock(&hp->mu);
}

static void helper_wait(struct helper *hp)
{
	pthread_mutex_lock(&hp->mu);
	while (hp->busy)
		pthread_cond_wait(&hp->cv, &hp->mu);
	pthread_mutex_unlock(&hp->mu);
}

static struct helper *helper_start(void)
{
	struct helper *hp;

	if (sysconf(_SC_NPROCESSORS_ONLN) < 2 || !(hp = calloc(1, sizeof(*hp))))
		return NULL;
	pthread_mutex_init(&hp->mu, NULL);
	pthread_cond_init(&hp->cv, NULL);
	if (pthread_create(&hp->th, NULL, helper_main, hp) != 0) {
		pthread_mutex_destroy(&hp->mu);
		pthread_cond_destroy(&hp->cv);
		free(hp);
		return NULL;
	}
	return hp;
}

static void helper_stop(struct helper *hp)
{
	if (!hp)
		return;
	pthread_mutex_lock(&hp->mu);
	hp->quit = true;
	pthread_cond_broadcast(&hp->cv);
	pthread_mutex_unlock(&hp->mu);
	pthread_join(hp->th, NULL);
	pthread_mutex_destroy(&hp->mu);
	pthread_cond_destroy(&hp->cv);
	free(hp);
}

static int copy_content(struct rk *rk, int fd, int tfd, const struct kformat_fhdr *h,
			const struct kformat_epoch_keys *hk, uint64_t csize, const uint8_t bind[16],
			bool linked, const char *path)
{
	const struct kformat_geom *g = rk->g;
	struct kformat_fhdr nh;
	uint8_t hb[KFORMAT_FHDR_LEN], *okey = rk->fkeys, *nkey = rk->fkeys + 32;
	uint64_t psize, nblocks = 0;
	bool bad;
	int r;

	psize = kformat_plain_size(g, csize, &bad);
	if (bad) {
		damage(rk, path, "size %" PRIu64 " cannot be a kinko file (truncated inside a block)", csize);
		return KERR_FORMAT;
	}
	memset(&nh, 0, sizeof(nh));
	nh.suite = (uint8_t)g->suite;
	nh.epoch = rk->target;
	kcrypto_random(nh.file_id, sizeof(nh.file_id));
	if (linked)
		nh.flags = KFORMAT_FHDR_LINKED;
	else
		memcpy(nh.bind, bind, 16);
	if ((r = kformat_fhdr_serialize(&nh, rk->tk, hb)) != 0 ||
	    (r = kpwrite_all(tfd, hb, sizeof(hb), 0)) != 0)
		return r;
	if ((r = kformat_file_key(okey, hk, h->file_id)) != 0 ||
	    (r = kformat_file_key(nkey, rk->tk, nh.file_id)) != 0)
		goto out;
	nblocks = kformat_nblocks(psize);
	for (uint64_t b0 = 0; b0 < nblocks; b0 += CHUNK) {
		uint64_t nb = nblocks - b0 < CHUNK ? nblocks - b0 : CHUNK;
		uint64_t coff = kformat_block_off(g, b0), cend = kformat_block_off(g, b0 + nb);
		size_t plen[CHUNK];
		ssize_t got;

		if (cend > csize)
			cend = csize;
		got = kpread_full(fd, rk->cin, cend - coff, (off_t)coff);
		if (got != (ssize_t)(cend - coff)) {
			damage(rk, path, "short read");
			r = got < 0 ? (int)got : -EIO;
			goto out;
		}
		struct span sp = { rk, okey, nkey, h->file_id, nh.file_id, b0, 0, nb, nblocks,
				   cend - coff, plen, UINT64_MAX, 0 };

		if ((r = kcrypto_nonce(rk->nonces, nb * g->nonce)) != 0)
			goto out;
		if (rk->helper && nb >= HELPER_MIN) {
			/* two cores: the helper takes the second half of the chunk */
			struct span hs = sp;

			hs.i0 = sp.i1 = nb / 2;
			helper_run(rk->helper, &hs);
			span_work(&sp);
			helper_wait(rk->helper);
			if (!sp.r && hs.r) {
				sp.r = hs.r;
				sp.bad = hs.bad;
			}
		} else {
			span_work(&sp);
		}
		if ((r = sp.r) != 0) {
			if (sp.bad != UINT64_MAX)
				damage(rk, path, "block %" PRIu64 " fails authentication", sp.bad);
			goto out;
		}
		if ((r = kpwrite_all(tfd, rk->cout, cend - coff, (off_t)coff)) != 0)
			goto out;
		rk->p.bytes_done += cend - coff;
		tick(rk, false);
	}
	r = 0;
out:
	ksecmem_wipe(rk->fkeys, 64);
	/* the plaintext this file left (at most one chunk) */
	ksecmem_wipe(rk->pt, (size_t)(nblocks < CHUNK ? nblocks : CHUNK) * KFORMAT_BS);
	return r;
}

static void copy_meta(int tfd, const struct stat *st)
{
	struct timespec tv[2] = { st->st_atim, st->st_mtim };

	if (fchown(tfd, st->st_uid, st->st_gid) < 0)
		log_debug("fchown: %s", strerror(errno));
	fchmod(tfd, st->st_mode & 07777);
	futimens(tfd, tv);
}

/* build the re-keyed copy of open file fd as dfd/tmp */
static int build_copy(struct rk *rk, int dfd, const char *tmp, int fd, const struct stat *st,
		      const struct kformat_fhdr *h, const struct kformat_epoch_keys *hk,
		      const uint8_t bind[16], bool linked, bool sync, const char *path)
{
	int tfd = openat(dfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	int r = 0;

	if (tfd < 0) {
		r = -errno;
		damage(rk, path, "cannot create %s: %s", tmp, strerror(errno));
		return r;
	}
	if (st->st_size > 0)
		r = copy_content(rk, fd, tfd, h, hk, (uint64_t)st->st_size, bind, linked, path);
	if (r == 0)
		r = xattrs_rekey(rk, fd, tfd, path, NULL);
	if (r == 0) {
		copy_meta(tfd, st);
		if (sync && fsync(tfd) < 0)
			r = -errno;
	}
	close(tfd);
	if (r)
		unlinkat(dfd, tmp, 0);
	return r;
}

struct entry {
	char *bname;       /* backing name now */
	bool is_long;
	bool is_new;       /* name already under the target epoch */
	char nb[256];      /* backing name under the target epoch */
	bool nb_long;
	char nb_full[KFORMAT_ENCNAME_MAX + 1];
};

/* An item that cannot be re-encrypted (damaged) still gets its name under
 * the target epoch, so that its directory stays readable as a whole: a file
 * with a valid header is rebound as a rename in the mount does (bind_prev),
 * its content stays under its epoch, whose keys are then kept. */
static void rename_only(struct rk *rk, int dfd, const uint8_t iv[16], struct entry *e,
			const struct kformat_fhdr *h, const struct kformat_epoch_keys *hk,
			const char *path, struct pend *pd)
{
	struct kformat_fhdr h2;
	uint8_t hb[KFORMAT_FHDR_LEN];
	int fd = -1;

	if (e->is_new)
		return;
	if (h && hk && !(h->flags & KFORMAT_FHDR_LINKED)) {
		h2 = *h;
		fd = openat(dfd, e->bname, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || kformat_binding(h2.bind_prev, iv, e->bname) != 0 ||
		    kformat_binding(h2.bind, iv, e->nb) != 0 || kformat_fhdr_serialize(&h2, hk, hb) != 0 ||
		    kpwrite_all(fd, hb, sizeof(hb), 0) != 0 || fsync(fd) < 0) {
			if (fd >= 0)
				close(fd);
			return;
		}
	}
	if ((e->nb_long && sidecar_write(dfd, e->nb, e->nb_full) != 0) ||
	    renameat(dfd, e->bname, dfd, e->nb) < 0) {
		if (fd >= 0)
			close(fd);
		return;
	}
	if (fd >= 0) {
		memset(h2.bind_prev, 0, sizeof(h2.bind_prev));
		if (kformat_fhdr_serialize(&h2, hk, hb) == 0)
			(void)kpwrite_all(fd, hb, sizeof(hb), 0);
		close(fd);
	}
	if (e->is_long)
		pend_add(dfd, pd, e->bname, true, true);
	if (rk->report)
		rk->report(rk->ctx, path, "renamed under the new epoch; its content stays under its old epoch");
}

static int rekey_file(struct rk *rk, int dfd, const uint8_t iv[16], struct entry *e,
		      const struct stat *lst, const char *path, struct pend *pd)
{
	struct kformat_fhdr h;
	const struct kformat_epoch_keys *hk = NULL;
	uint8_t hb[KFORMAT_FHDR_LEN], bind[16];
	struct stat st, sst;
	char tmp[64], stage[96], fid[33];
	bool xold = false, cold = false, linked, hdr_ok = false;
	int fd, r;

	if (rk->counting && !e->is_new) {
		/* an old name: all of it is to do (no need to read it twice) */
		rk->p.files_total++;
		rk->p.bytes_total += (uint64_t)lst->st_size;
		return 0;
	}
	fd = openat(dfd, e->bname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		damage(rk, path, "cannot open: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -EIO;
	}
	memset(&h, 0, sizeof(h));
	if (st.st_size > 0) {
		if (kpread_full(fd, hb, sizeof(hb), 0) != (ssize_t)sizeof(hb) ||
		    kformat_fhdr_parse(hb, sizeof(hb), &h) != 0 || h.suite != rk->g->suite) {
			damage(rk, path, "file header missing or malformed");
			r = KERR_FORMAT;
			goto out;
		}
		if (!(hk = kkeys_comp_epoch(rk->c, h.epoch))) {
			damage(rk, path, "file is under epoch %" PRIu32 ", which you hold no key for", h.epoch);
			r = KERR_NOGRANT;
			goto out;
		}
		if (kformat_fhdr_verify(hb, sizeof(hb), hk) != 0) {
			damage(rk, path, "file header fails authentication");
			r = KERR_AUTH;
			goto out;
		}
		hdr_ok = true;
		cold = h.epoch != rk->target;
	}
	xattrs_rekey(rk, fd, -1, path, &xold);
	if (rk->counting) {
		if (cold || xold || !e->is_new) {
			rk->p.files_total++;
			rk->p.bytes_total += cold ? (uint64_t)st.st_size : 0;
		}
		r = 0;
		goto out;
	}
	if (e->is_new && !cold && !xold) {
		r = 0;
		goto out;
	}
	test_pause(rk);
	if ((r = kformat_binding(bind, iv, e->nb)) != 0)
		goto out;
	/* A file with several names (or that had them: LINKED) goes through one
	 * staged copy, also when a killed run already moved some of its names
	 * (the old inode then has fewer links, but its staged copy exists). */
	khex_encode(fid, h.file_id, st.st_size > 0 ? 16 : 0);
	snprintf(stage, sizeof(stage), STAGE_PREFIX "%llx.%s", (unsigned long long)st.st_ino,
		 st.st_size > 0 ? fid : "e");
	linked = st.st_nlink > 1 || (h.flags & KFORMAT_FHDR_LINKED) ||
		 (st.st_size == 0 && fstatat(rk->compfd, stage, &sst, AT_SYMLINK_NOFOLLOW) == 0);
	if (linked) {
		if (fstatat(rk->compfd, stage, &sst, AT_SYMLINK_NOFOLLOW) != 0) {
			tmp_name(tmp, TMP_PREFIX);
			if ((r = build_copy(rk, rk->compfd, tmp, fd, &st, &h, hk, bind, true, true, path)) != 0)
				goto out;
			if (renameat(rk->compfd, tmp, rk->compfd, stage) < 0 || fsync(rk->compfd) < 0) {
				r = -errno;
				unlinkat(rk->compfd, tmp, 0);
				goto out;
			}
		} else {
			rk->p.bytes_done += (uint64_t)st.st_size;
		}
		tmp_name(tmp, TMP_PREFIX);
		if (linkat(rk->compfd, stage, dfd, tmp, 0) < 0) {
			r = -errno;
			damage(rk, path, "cannot link the re-keyed copy: %s", strerror(errno));
			goto out;
		}
	} else {
		struct ready *x;

		tmp_name(tmp, TMP_PREFIX);
		if ((r = build_copy(rk, dfd, tmp, fd, &st, &h, hk, bind, false, false, path)) != 0)
			goto out;
		/* synced and renamed with a batch */
		if (pd->nrd == READY_MAX)
			ready_flush(rk, dfd, pd);
		x = &pd->rd[pd->nrd++];
		snprintf(x->tmp, sizeof(x->tmp), "%s", tmp);
		snprintf(x->nb, sizeof(x->nb), "%s", e->nb);
		snprintf(x->nb_full, sizeof(x->nb_full), "%s", e->nb_long ? e->nb_full : "");
		snprintf(x->old, sizeof(x->old), "%s", e->bname);
		x->nb_long = e->nb_long;
		x->is_new = e->is_new;
		x->is_long = e->is_long;
		pd->rd_bytes += (uint64_t)st.st_size;
		if (pd->rd_bytes >= READY_BYTES)
			ready_flush(rk, dfd, pd);
		rk->p.files_done++;
		tick(rk, false);
		r = 0;
		goto out;
	}
	if (e->nb_long && (r = sidecar_write(dfd, e->nb, e->nb_full)) != 0) {
		unlinkat(dfd, tmp, 0);
		goto out;
	}
	if (renameat(dfd, tmp, dfd, e->nb) < 0) {
		r = -errno;
		unlinkat(dfd, tmp, 0);
		damage(rk, path, "cannot rename the re-keyed copy: %s", strerror(errno));
		goto out;
	}
	if (!e->is_new)
		pend_add(dfd, pd, e->bname, e->is_long, false);
	rk->p.files_done++;
	tick(rk, false);
	r = 0;
out:
	if (r && !rk->counting && (r == KERR_FORMAT || r == KERR_AUTH || r == KERR_NOGRANT))
		rename_only(rk, dfd, iv, e, hdr_ok ? &h : NULL, hdr_ok ? hk : NULL, path, pd);
	close(fd);
	return r;
}

static int rekey_symlink(struct rk *rk, int dfd, struct entry *e, const char *path,
			 struct pend *pd)
{
	char plain[KFORMAT_SYMLINK_TARGET_MAX + 1], tmp[64], *nenc, *t;
	struct kformat_lt_hold lt;
	struct stat st;
	uint32_t ep;
	size_t tl;
	int r;

	if (fstatat(dfd, e->bname, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		damage(rk, path, "symlink unreadable");
		return -EIO;
	}
	r = kkeys_symlink_read(rk->g, rk->c, rk->v->datafd, dfd, e->bname, NULL, plain, sizeof(plain),
			       &tl, &ep);
	if (r < 0 && r > -KERR_BASE) {
		damage(rk, path, "symlink unreadable: %s", strerror(-r));
		return r;
	}
	if (r) {
		damage(rk, path, "symlink target does not decrypt");
		if (!rk->counting)
			rename_only(rk, dfd, NULL, e, NULL, NULL, path, pd);
		return KERR_AUTH;
	}
	if (e->is_new && ep == rk->target)
		goto done;
	if (rk->counting) {
		rk->p.files_total++;
		goto done;
	}
	test_pause(rk);
	if (!(nenc = malloc(KFORMAT_SYMLINK_ENC_MAX + 1 + KFORMAT_SYMLINK_MAX + 1))) {
		r = -ENOMEM;
		goto done;
	}
	t = nenc + KFORMAT_SYMLINK_ENC_MAX + 1;
	r = kformat_symlink_encrypt(rk->g, rk->tk, plain, tl, nenc, KFORMAT_SYMLINK_ENC_MAX + 1);
	tmp_name(tmp, TMP_PREFIX);
	if (r == 0)
		r = kformat_symlink_store(rk->compfd, ".", nenc, t);
	if (r == 0 && symlinkat(t, dfd, tmp) < 0) {
		r = -errno;
		kformat_symlink_forget(rk->compfd, ".", t);
	}
	free(nenc);
	if (r) {
		damage(rk, path, "cannot re-key the symlink: %s", kinko_strerror(r));
		goto done;
	}
	{
		struct timespec tv[2] = { st.st_atim, st.st_mtim };

		if (fchownat(dfd, tmp, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0)
			log_debug("lchown: %s", strerror(errno));
		utimensat(dfd, tmp, tv, AT_SYMLINK_NOFOLLOW);
	}
	/* the name it replaces (itself, when the name is already new) loses a link */
	kformat_lt_hold(&lt, dfd, e->nb, NULL);
	if ((e->nb_long && (r = sidecar_write(dfd, e->nb, e->nb_full)) != 0) ||
	    (renameat(dfd, tmp, dfd, e->nb) < 0 && (r = -errno))) {
		kformat_lt_release(&lt, rk->compfd, ".");
		unlink_entry(rk->compfd, dfd, tmp);
		goto done;
	}
	kformat_lt_release(&lt, rk->compfd, ".");
	if (!e->is_new)
		pend_add(dfd, pd, e->bname, e->is_long, false);
	rk->p.items++;
	rk->p.files_done++;
	r = 0;
done:
	ksecmem_wipe(plain, sizeof(plain));
	return r;
}

/* ---- directories ---- */

static int diriv_read(struct rk *rk, int dfd, struct kformat_diriv *d,
		      const struct kformat_epoch_keys **k)
{
	uint8_t buf[KFORMAT_DIRIV_LEN + 1];
	ssize_t n;
	int fd = openat(dfd, KFORMAT_DIRIV_NAME, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), r;

	if (fd < 0)
		return -errno;
	n = kpread_full(fd, buf, sizeof(buf), 0);
	close(fd);
	r = n < 0 ? (int)n : kformat_diriv_parse(buf, (size_t)n, d);
	if (r == 0 && !(*k = kkeys_comp_epoch(rk->c, d->epoch)))
		r = KERR_NOGRANT;
	if (r == 0)
		r = kformat_diriv_verify(buf, (size_t)n, *k);
	return r;
}

static int diriv_store(int dfd, const struct kformat_diriv *d, const struct kformat_epoch_keys *k)
{
	uint8_t buf[KFORMAT_DIRIV_LEN];
	int r;

	if ((r = kformat_diriv_serialize(d, k, buf)) != 0)
		return r;
	return kfile_replace_at(dfd, KFORMAT_DIRIV_NAME, buf, sizeof(buf), 0400);
}

static int name_plain(struct rk *rk, const uint8_t iv[16], const char *enc, size_t enclen,
		      char out[256], bool *is_new)
{
	size_t n, ne = kkeys_comp_nepochs(rk->c);

	if (kformat_name_decrypt(rk->tk, iv, enc, enclen, out, &n) == 0) {
		*is_new = true;
		return 0;
	}
	for (size_t i = ne; i-- > 0;) {
		const struct kformat_epoch_keys *k = &rk->c->epochs[i];

		if (k != rk->tk && kformat_name_decrypt(k, iv, enc, enclen, out, &n) == 0) {
			*is_new = false;
			return 0;
		}
	}
	return KERR_AUTH;
}

static int read_sidecar(int dfd, const char *bname, char *full, size_t max)
{
	char side[300], check[256];
	ssize_t n;
	int fd;

	snprintf(side, sizeof(side), "%s" KFORMAT_LONGNAME_SUFFIX, bname);
	fd = openat(dfd, side, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	n = fd < 0 ? -1 : kpread_full(fd, full, max - 1, 0);
	if (fd >= 0)
		close(fd);
	if (n <= 0 || (size_t)n >= max - 1)
		return KERR_FORMAT;
	full[n] = 0;
	if (kformat_longname_backing(check, full, (size_t)n) != 0 || strcmp(check, bname) != 0)
		return KERR_FORMAT;
	return 0;
}

static int process_dir(struct rk *rk, int dfd, const uint8_t parent_iv[16], const char *bname,
		       const char *path, int depth);

static int rekey_subdir(struct rk *rk, int dfd, const uint8_t iv[16], struct entry *e,
			const char *path, struct pend *pd, int depth)
{
	int cfd, r;

	if (!e->is_new && !rk->counting) {
		struct kformat_diriv cd;
		const struct kformat_epoch_keys *ck = NULL;

		test_pause(rk);
		cfd = openat(dfd, e->bname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (cfd < 0) {
			damage(rk, path, "cannot open directory: %s", strerror(errno));
			return -errno;
		}
		r = diriv_read(rk, cfd, &cd, &ck);
		if (r) {
			close(cfd);
			damage(rk, path, "directory IV file corrupt or fails authentication");
			rename_only(rk, dfd, NULL, e, NULL, NULL, path, pd);
			return r;
		}
		/* as a rename in the mount: valid at both places until done */
		if ((r = kformat_binding(cd.bind_prev, iv, e->bname)) != 0 ||
		    (r = kformat_binding(cd.bind, iv, e->nb)) != 0 || (r = diriv_store(cfd, &cd, ck)) != 0 ||
		    (e->nb_long && (r = sidecar_write(dfd, e->nb, e->nb_full)) != 0)) {
			close(cfd);
			damage(rk, path, "cannot rebind the directory: %s", kinko_strerror(r));
			return r;
		}
		close(cfd);
		if (renameat(dfd, e->bname, dfd, e->nb) < 0) {
			r = -errno;
			damage(rk, path, "cannot rename the directory: %s", strerror(errno));
			return r;
		}
		if (e->is_long)
			pend_add(dfd, pd, e->bname, true, true);
		rk->p.items++;
	}
	cfd = openat(dfd, rk->counting && !e->is_new ? e->bname : e->nb,
		     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (cfd < 0) {
		damage(rk, path, "cannot open directory: %s", strerror(errno));
		return -errno;
	}
	r = process_dir(rk, cfd, iv, rk->counting && !e->is_new ? e->bname : e->nb, path, depth + 1);
	close(cfd);
	return r;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int process_dir(struct rk *rk, int dfd, const uint8_t parent_iv[16], const char *bname,
		       const char *path, int depth)
{
	struct kformat_diriv d;
	const struct kformat_epoch_keys *dk = NULL;
	struct pend *pd = NULL;
	struct stat dst;
	char **names = NULL;
	size_t nnames = 0, cap = 0;
	uint8_t expect[16];
	DIR *dp;
	struct dirent *de;
	bool made_writable = false;
	int fd, r;

	if (depth > MAX_DEPTH) {
		damage(rk, path, "directory nesting deeper than %d", MAX_DEPTH);
		return -ELOOP;
	}
	if (fstat(dfd, &dst) < 0)
		return -errno;
	if ((r = diriv_read(rk, dfd, &d, &dk)) != 0) {
		damage(rk, path, "directory IV file %s", r == KERR_NOGRANT ?
		       "is under an epoch you hold no key for" : "missing, corrupt or fails authentication");
		return r;
	}
	if (!rk->counting && !(dst.st_mode & S_IWUSR)) {
		fchmod(dfd, (dst.st_mode & 07777) | S_IRWXU);
		made_writable = true;
	}
	/* a snapshot of the entries: the loop renames inside this directory */
	fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(dp = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		damage(rk, path, "cannot list: %s", strerror(errno));
		r = -EIO;
		goto out;
	}
	while ((de = readdir(dp)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (!strncmp(de->d_name, TMP_PREFIX, sizeof(TMP_PREFIX) - 1) ||
		    (!strncmp(de->d_name, "kinko.", 6) && strstr(de->d_name, ".tmp.") &&
		     de->d_type != DT_DIR)) {
			/* ours, or a kfile_replace_at() temporary (IV file, marker) */
			if (!rk->counting) /* left by a killed run */
				unlink_entry(rk->compfd, dfd, de->d_name);
			continue;
		}
		if (nnames == cap) {
			char **nn = realloc(names, (cap ? cap * 2 : 64) * sizeof(*names));

			if (!nn) {
				closedir(dp);
				r = -ENOMEM;
				goto out;
			}
			names = nn;
			cap = cap ? cap * 2 : 64;
		}
		if (!(names[nnames] = strdup(de->d_name))) {
			closedir(dp);
			r = -ENOMEM;
			goto out;
		}
		nnames++;
	}
	closedir(dp);
	/* sorted: is a new name already there (from a killed run)? without a system call */
	qsort(names, nnames, sizeof(*names), cmp_names);
	r = -ENOMEM;
	if (!(pd = calloc(1, sizeof(*pd))) || !(pd->rd = calloc(READY_MAX, sizeof(*pd->rd))))
		goto out;
	pd->cfd = rk->compfd;
	r = 0;
	for (size_t i = 0; i < nnames; i++) {
		enum kformat_entry_kind kind = kformat_entry_classify(names[i]);
		char plain[256], full[KFORMAT_ENCNAME_MAX + 1], cpath[8192];
		const char *enc = names[i];
		struct entry e;
		struct stat st;

		if (kind == KFORMAT_ENTRY_INTERNAL || kind == KFORMAT_ENTRY_SIDECAR)
			continue;
		if (kind == KFORMAT_ENTRY_FOREIGN) {
			/* not ours: reported, but it does not hold back the key destruction */
			if (!rk->counting && rk->report) {
				char why[320];

				snprintf(why, sizeof(why), "foreign entry '%s' (not made by kinko): left as it is",
					 names[i]);
				rk->report(rk->ctx, path[0] ? path : "/", why);
			}
			continue;
		}
		memset(&e, 0, sizeof(e));
		e.bname = names[i];
		e.is_long = kind == KFORMAT_ENTRY_LONG;
		if (e.is_long) {
			if (read_sidecar(dfd, names[i], full, sizeof(full)) != 0) {
				damage(rk, path, "long name %s has no readable name file", names[i]);
				continue;
			}
			enc = full;
		}
		if (name_plain(rk, d.iv, enc, strlen(enc), plain, &e.is_new) != 0) {
			damage(rk, path, "name %s does not decrypt under any epoch you hold", names[i]);
			continue;
		}
		child_path(cpath, sizeof(cpath), path, plain);
		if (fstatat(dfd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (e.is_new) {
			snprintf(e.nb, sizeof(e.nb), "%s", names[i]);
		} else {
			if (kformat_name_encrypt(rk->tk, d.iv, plain, strlen(plain), e.nb, &e.nb_long,
						 e.nb_full) != 0) {
				damage(rk, cpath, "name does not encrypt");
				continue;
			}
			if (!rk->counting && !S_ISDIR(st.st_mode) &&
			    bsearch(&(const char *){ e.nb }, names, nnames, sizeof(*names), cmp_names) &&
			    faccessat(dfd, e.nb, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
				/* a killed run put the new entry in place: the old one goes */
				pend_add(dfd, pd, names[i], e.is_long, false);
				continue;
			}
		}
		if (S_ISDIR(st.st_mode))
			rekey_subdir(rk, dfd, d.iv, &e, cpath, pd, depth);
		else if (S_ISREG(st.st_mode))
			rekey_file(rk, dfd, d.iv, &e, &st, cpath, pd);
		else if (S_ISLNK(st.st_mode))
			rekey_symlink(rk, dfd, &e, cpath, pd);
		else if (!e.is_new && !rk->counting) {
			/* FIFOs, sockets, devices: only the name */
			if ((e.nb_long && sidecar_write(dfd, e.nb, e.nb_full) != 0) ||
			    renameat(dfd, names[i], dfd, e.nb) < 0) {
				damage(rk, cpath, "cannot rename: %s", strerror(errno));
				continue;
			}
			if (e.is_long)
				pend_add(dfd, pd, names[i], true, true);
			rk->p.items++;
		}
	}
	if (rk->counting)
		goto out;
	ready_flush(rk, dfd, pd);
	pend_flush(dfd, pd);
	/* sidecars whose entry is gone (a killed run between the two unlinks) */
	for (size_t i = 0; i < nnames; i++)
		if (kformat_entry_classify(names[i]) == KFORMAT_ENTRY_SIDECAR) {
			char main_name[256];

			snprintf(main_name, sizeof(main_name), "%.*s", (int)(strlen(names[i]) - 5), names[i]);
			if (faccessat(dfd, main_name, F_OK, AT_SYMLINK_NOFOLLOW) != 0)
				unlinkat(dfd, names[i], 0);
		}
	xattrs_rekey(rk, dfd, -1, path[0] ? path : "/", NULL);
	/* last: the IV file says the names are under the target epoch now */
	if ((r = kformat_binding(expect, parent_iv, bname)) != 0)
		goto out;
	if (d.epoch != rk->target || memcmp(d.bind, expect, 16) != 0 ||
	    !kformat_binding_is_zero(d.bind_prev)) {
		d.epoch = rk->target;
		memcpy(d.bind, expect, 16);
		memset(d.bind_prev, 0, 16);
		if ((r = diriv_store(dfd, &d, rk->tk)) != 0) {
			damage(rk, path, "cannot rewrite the directory IV file: %s", kinko_strerror(r));
			goto out;
		}
		rk->p.items++;
	}
	fsync(dfd);
out:
	if (!rk->counting) {
		struct timespec tv[2] = { dst.st_atim, dst.st_mtim };

		if (made_writable)
			fchmod(dfd, dst.st_mode & 07777);
		futimens(dfd, tv); /* the directory's times stay what the user saw */
	}
	for (size_t i = 0; i < nnames; i++)
		free(names[i]);
	free(names);
	if (pd)
		free(pd->rd);
	free(pd);
	return r;
}

/* ---- the whole compartment ---- */

bool kvault_rekey_pending(struct kvault *v, const char *hexid)
{
	char p[96];

	snprintf(p, sizeof(p), "%s/" MARKER, hexid);
	return faccessat(v->datafd, p, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

static void remove_staging(int compfd)
{
	int fd = dup(compfd);
	DIR *d;
	struct dirent *de;

	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL)
		if (!strncmp(de->d_name, STAGE_PREFIX, sizeof(STAGE_PREFIX) - 1))
			unlinkat(compfd, de->d_name, 0);
	closedir(d);
}

/* After a clean walk every symlink is under the target epoch, so a side file
 * of a long symlink target under any other epoch is referred to by nothing
 * (left by a crash, or by a removal on a filesystem that reports no link
 * counts) and its key is about to be destroyed: remove it. */
static void remove_stale_side_files(struct rk *rk)
{
	int fd = openat(rk->compfd, KFORMAT_LT_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct dirent *de;
	DIR *d;

	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		char head[9];
		uint32_t ep;
		int f;
		ssize_t n;

		if (!kformat_lt_name_valid(de->d_name))
			continue;
		f = openat(dirfd(d), de->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		n = f < 0 ? -1 : kpread_full(f, head, 8, 0);
		if (f >= 0)
			close(f);
		if (n != 8)
			continue;
		head[8] = 0;
		if (kformat_symlink_epoch(head, &ep) == 0 && ep != rk->target)
			unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
}

/* overwrite and unlink grant and recovery files of epochs no longer in the policy */
static void destroy_stale_epochs(struct kvault *v, const struct kpolicy_comp *c,
				 struct kvault_rekey_result *res)
{
	static const char *const roots[] = { "grants", "recovery" };
	char p[200];

	for (size_t k = 0; k < 2; k++) {
		int fd;
		DIR *d;
		struct dirent *de;

		snprintf(p, sizeof(p), "%s/%s", roots[k], c->hexid);
		fd = openat(v->vfd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || !(d = fdopendir(fd))) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		while ((de = readdir(d)) != NULL) {
			char *end;
			unsigned long e = strtoul(de->d_name, &end, 10);
			bool isgrant = k == 1 && strcmp(end, ".grant") == 0;

			if (de->d_name[0] < '1' || de->d_name[0] > '9' || e > UINT32_MAX ||
			    (*end && !isgrant) || kpolicy_epoch_find(c, (uint32_t)e))
				continue;
			if (isgrant)
				unlinkat(dirfd(d), de->d_name, 0);
			else
				kvault_shred_tree(dirfd(d), de->d_name, NULL);
			if (k == 0 && res && res->ndestroyed < 64)
				res->destroyed[res->ndestroyed++] = (uint32_t)e;
		}
		fsync(dirfd(d));
		closedir(d);
	}
}

static int drop_old_epochs(struct kvault *v, const char *comp, uint32_t target, struct kerrinfo *ei)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		struct kpolicy_comp *c;
		size_t kept = 0, n;
		int r;

		if ((r = kvault_policy_reload(v, ei)) != 0)
			return r;
		if (!(c = kpolicy_comp_find_name(v->policy, comp)))
			return KERR_NOGRANT;
		n = c->nepochs;
		for (size_t i = 0; i < n; i++)
			if (c->epochs[i].epoch >= target)
				c->epochs[kept++] = c->epochs[i];
		if (kept == n || kept == 0)
			return 0;
		c->nepochs = kept;
		r = kvault_policy_commit(v, ei);
		if (r != -EEXIST)
			return r;
	}
	return -EEXIST;
}

int kvault_rekey(struct kvault *v, const char *comp, kvault_rekey_progress_fn progress,
		 kvault_rekey_report_fn report, void *ctx, struct kvault_rekey_result *res,
		 struct kerrinfo *ei)
{
	struct rk rk;
	struct kpolicy_comp *pc;
	const struct kkeys_comp *kc = NULL;
	char mark[32];
	size_t chunk;
	int r;

	memset(res, 0, sizeof(*res));
	memset(&rk, 0, sizeof(rk));
	rk.compfd = -1;
	if (!v->root_sk || !v->holder)
		return KERR_USAGE;
	if ((r = kvault_policy_reload(v, ei)) != 0)
		return r;
	if (!(pc = kpolicy_comp_find_name(v->policy, comp))) {
		kerr_set(ei, comp, "no such compartment (see kinko compartment list)");
		return KERR_NOGRANT;
	}
	/* the keys of every epoch, from the newest policy */
	kkeys_ring_free(v->ring);
	v->ring = NULL;
	if ((r = kkeys_ring_load(v->vfd, v->policy, v->user, &v->ring, ei)) != 0)
		return r;
	for (size_t i = 0; i < v->ring->ncomps; i++)
		if (!memcmp(v->ring->comps[i].id, pc->id, 16))
			kc = &v->ring->comps[i];
	rk.target = pc->current_epoch;
	res->target = rk.target;
	if (!kc || !(rk.tk = kkeys_comp_epoch(kc, rk.target))) {
		kerr_set(ei, comp, "administrator '%s' holds no key of this compartment's epoch %" PRIu32 "; an administrator who holds it must run rekey (or take a grant with kinko recovery grant)",
			 v->user->id, rk.target);
		return KERR_NOGRANT;
	}
	rk.v = v;
	rk.g = &v->geom;
	rk.c = kc;
	rk.progress = progress;
	rk.report = report;
	rk.ctx = ctx;
#if KINKO_TEST_BUILD
	if (getenv("KINKO_TEST_REKEY_DELAY_MS"))
		rk.delay_ms = atol(getenv("KINKO_TEST_REKEY_DELAY_MS"));
#endif
	chunk = (size_t)CHUNK * v->geom.cbs;
	r = -ENOMEM;
	if (!(rk.cin = malloc(chunk)) || !(rk.cout = malloc(chunk)) ||
	    !(rk.nonces = malloc((size_t)CHUNK * v->geom.nonce)) ||
	    !(rk.pt = ksecmem_alloc((size_t)CHUNK * KFORMAT_BS)) || !(rk.fkeys = ksecmem_alloc(64)))
		goto out;
	rk.compfd = openat(v->datafd, pc->hexid, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rk.compfd < 0) {
		r = -errno;
		kerr_set(ei, "data/", "compartment directory data/%s: %s", pc->hexid, strerror(errno));
		goto out;
	}
	/* mounts refuse the compartment until the walk is complete */
	snprintf(mark, sizeof(mark), "target %" PRIu32 "\n", rk.target);
	if ((r = kfile_replace_at(rk.compfd, MARKER, mark, strlen(mark), 0600)) != 0) {
		kerr_set(ei, "data/", "cannot write data/%s/" MARKER ": %s", pc->hexid, strerror(-r));
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &rk.t0);
	/* KINKO_REKEY_THREADS=1: leave the other cores to the rest of the machine */
	if (!getenv("KINKO_REKEY_THREADS") || atoi(getenv("KINKO_REKEY_THREADS")) != 1)
		rk.helper = helper_start();
	rk.counting = true;
	process_dir(&rk, rk.compfd, pc->id, pc->hexid, "", 0);
	rk.counting = false;
	rk.damaged = 0;
	process_dir(&rk, rk.compfd, pc->id, pc->hexid, "", 0);
	tick(&rk, true);
	res->p = rk.p;
	res->damaged = rk.damaged;
	if (rk.damaged) {
		r = KERR_FORMAT;
		kerr_set(ei, comp, "%" PRIu64 " item(s) could not be re-keyed (listed above); the old epoch keys are kept",
			 rk.damaged);
		goto done;
	}
	remove_staging(rk.compfd);
	remove_stale_side_files(&rk);
	fsync(rk.compfd);
	if ((r = drop_old_epochs(v, comp, rk.target, ei)) != 0)
		goto out;
	if ((pc = kpolicy_comp_find_name(v->policy, comp)) != NULL)
		destroy_stale_epochs(v, pc, res);
done:
	unlinkat(rk.compfd, MARKER, 0);
	fsync(rk.compfd);
out:
	helper_stop(rk.helper);
	kcrypto_thread_scrub();
	if (rk.compfd >= 0)
		close(rk.compfd);
	free(rk.cin);
	free(rk.cout);
	free(rk.nonces);
	ksecmem_free(rk.pt);
	ksecmem_free(rk.fkeys);
	return r;
}

// SPDX-License-Identifier: GPL-2.0-or-later
/* Block I/O: a read is one pread of the joint ciphertext range and one AEAD
 * open per block; a write is read-modify-write of at most the two partial end
 * blocks (plus the old last block when the file grows, whose "last" flag in
 * the associated data changes), then one pwrite per chunk. */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "fs_i.h"

#define CHUNK_BLOCKS 256u

struct tbuf {
	uint8_t *c, *p;
	size_t ccap, pcap;
};

static pthread_key_t tb_key;
static pthread_once_t tb_once = PTHREAD_ONCE_INIT;

static void tb_free(void *v)
{
	struct tbuf *t = v;

	if (!t)
		return;
	if (t->p)
		explicit_bzero(t->p, t->pcap);
	free(t->c);
	free(t->p);
	free(t);
}

static void tb_init(void) { pthread_key_create(&tb_key, tb_free); }

static struct tbuf *tbuf_get(size_t cneed, size_t pneed)
{
	struct tbuf *t;

	pthread_once(&tb_once, tb_init);
	t = pthread_getspecific(tb_key);
	if (!t) {
		t = calloc(1, sizeof(*t));
		if (!t || pthread_setspecific(tb_key, t) != 0) {
			free(t);
			return NULL;
		}
	}
	if (t->ccap < cneed) {
		free(t->c);
		t->ccap = cneed;
		if (!(t->c = malloc(cneed))) {
			t->ccap = 0;
			return NULL;
		}
	}
	if (t->pcap < pneed) {
		if (t->p)
			explicit_bzero(t->p, t->pcap);
		free(t->p);
		t->pcap = pneed;
		if (!(t->p = malloc(pneed))) {
			t->pcap = 0;
			return NULL;
		}
	}
	return t;
}

/* ---- a second core for large requests ----
 * A write of a megabyte spends about half its time sealing blocks while the
 * writer waits, a read as long opening them. Blocks seal and open
 * independently, so the request's thread hands the second half of a chunk to
 * an idle helper and does the first half itself. When no helper is idle it
 * does everything, as before. */
#define PAR_MIN_BLOCKS 64u
#define PAR_MAX_HELPERS 4

struct blk {
	const uint8_t *pt; /* seal: the request's buffer or a prepared block */
	uint8_t *out;      /* seal: nonce | ciphertext | tag; open: plaintext */
	const uint8_t *nonce; /* seal: the block's nonce; open: the sealed block */
	uint64_t b;
	uint32_t len;      /* seal: plaintext length; open: sealed length */
	bool last;
};

struct seal_job {
	const struct kformat_geom *g;
	const uint8_t *key, *file_id;
	const struct blk *blks;
	size_t n;
	bool open;
	int r;
	bool done;
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv, done_cv;
	struct seal_job *job; /* posted, not yet taken */
	int idle, n;
	bool stop;
	pthread_t th[PAR_MAX_HELPERS];
} par = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER,
	    .done_cv = PTHREAD_COND_INITIALIZER };

static int seal_blocks(const struct seal_job *j, const struct blk *blks, size_t n)
{
	int r = 0;

	kcrypto_aead_batch_begin(j->key);
	for (size_t i = 0; i < n && r == 0; i++)
		r = j->open ? kformat_block_open(j->g, j->key, j->file_id, blks[i].b, blks[i].last,
						 blks[i].nonce, blks[i].len, blks[i].out) :
			      kformat_block_seal_nonce(j->g, j->key, j->file_id, blks[i].b,
						       blks[i].last, blks[i].pt, blks[i].len,
						       blks[i].nonce, blks[i].out);
	kcrypto_aead_batch_end();
	return r;
}

static void *par_helper(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&par.mu);
	for (;;) {
		struct seal_job *j;

		par.idle++;
		while (!par.job && !par.stop)
			pthread_cond_wait(&par.cv, &par.mu);
		par.idle--;
		if (!par.job)
			break; /* stopping, and nobody waits for a job */
		j = par.job;
		par.job = NULL;
		pthread_mutex_unlock(&par.mu);
		j->r = seal_blocks(j, j->blks, j->n);
		pthread_mutex_lock(&par.mu);
		j->done = true;
		pthread_cond_broadcast(&par.done_cv);
	}
	pthread_mutex_unlock(&par.mu);
	kcrypto_thread_scrub();
	return NULL;
}

void kfs_io_helpers_start(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int want = cpus > 1 ? (int)(cpus - 1 < PAR_MAX_HELPERS ? cpus - 1 : PAR_MAX_HELPERS) : 0;

	if (getenv("KINKO_NO_PARALLEL_SEAL"))
		want = 0;
	pthread_mutex_lock(&par.mu);
	par.stop = false;
	pthread_mutex_unlock(&par.mu);
	while (par.n < want && pthread_create(&par.th[par.n], NULL, par_helper, NULL) == 0)
		par.n++;
}

/* post J if a helper is idle and nothing else is waiting for one */
static bool par_post(struct seal_job *j)
{
	bool ok = false;

	pthread_mutex_lock(&par.mu);
	if (par.idle > 0 && !par.job && !par.stop) {
		j->done = false;
		par.job = j;
		pthread_cond_signal(&par.cv);
		ok = true;
	}
	pthread_mutex_unlock(&par.mu);
	return ok;
}

static void par_wait(struct seal_job *j)
{
	pthread_mutex_lock(&par.mu);
	while (!j->done)
		pthread_cond_wait(&par.done_cv, &par.mu);
	pthread_mutex_unlock(&par.mu);
}

/* seal (or open) N blocks, half of them on a helper when one is idle; ends
 * this thread's AEAD batch */
static int seal_chunk(const struct kformat_geom *g, const uint8_t *key, const uint8_t *file_id,
		      const struct blk *blks, size_t n, bool open)
{
	struct seal_job j = { g, key, file_id, blks + n / 2, n - n / 2, open, 0, false };
	int r;

	if (n < PAR_MIN_BLOCKS || !par_post(&j)) {
		j.blks = blks;
		j.n = n;
		return seal_blocks(&j, blks, n);
	}
	r = seal_blocks(&j, blks, n / 2);
	par_wait(&j);
	return r ? r : j.r;
}

void kfs_io_helpers_stop(void)
{
	pthread_mutex_lock(&par.mu);
	par.stop = true;
	pthread_cond_broadcast(&par.cv);
	pthread_mutex_unlock(&par.mu);
	for (int i = 0; i < par.n; i++)
		pthread_join(par.th[i], NULL);
	par.n = 0;
}

uint64_t kfs_io_plain_size(struct kfs *fs, uint64_t csize)
{
	bool bad;

	return kformat_plain_size(&fs->geom, csize, &bad);
}

/* read, check and cache the header; content lock held for writing */
static int load_header(struct kfs *fs, struct kinode *in, int fd)
{
	uint8_t buf[KFORMAT_FHDR_LEN], expect[16];
	struct kformat_fhdr h;
	const struct kformat_epoch_keys *k = NULL;
	ssize_t n;
	int r;

	in->hdr_ok = false;
	n = kpread_full(fd, buf, sizeof(buf), 0);
	if (n < 0)
		return (int)n;
	if (n == 0)
		return 0; /* empty file: no header */
	{
		struct stat st;

		bool bad = false;

		if (fstat(fd, &st) == 0)
			kformat_plain_size(&fs->geom, (uint64_t)st.st_size, &bad);
		if (bad) {
			/* a size kinko never writes: truncated inside a block, cut to the
			 * bare header, or bytes appended */
			kfs_integrity(fs, in, "file size impossible for kinko (truncated or padded)",
				      KERR_FORMAT);
			return -EIO;
		}
	}
	r = (size_t)n < sizeof(buf) ? KERR_FORMAT : kformat_fhdr_parse(buf, sizeof(buf), &h);
	if (r == 0 && h.suite != fs->geom.suite)
		r = KERR_MISMATCH;
	if (r == 0 && !(k = kkeys_comp_epoch(in->comp, h.epoch)))
		r = KERR_NOGRANT;
	if (r == 0)
		r = kformat_fhdr_verify(buf, sizeof(buf), k);
	if (r) {
		kfs_integrity(fs, in, "file header corrupt or from another vault", r);
		return -EIO;
	}
	if (!(h.flags & KFORMAT_FHDR_LINKED)) {
		pthread_mutex_lock(&in->lk);
		r = in->bname ? kformat_binding(expect, in->parent_iv, in->bname) : KERR_FORMAT;
		pthread_mutex_unlock(&in->lk);
		if (r == 0 && !kcrypto_memeq(h.bind, expect, 16) &&
		    (kformat_binding_is_zero(h.bind_prev) || !kcrypto_memeq(h.bind_prev, expect, 16)))
			r = KERR_MISMATCH;
		if (r) {
			kfs_integrity(fs, in, "file header is bound to another name (files swapped or moved)", r);
			return -EIO;
		}
	}
	in->hdr = h;
	in->hkeys = k;
	in->hdr_ok = true;
	return 0;
}

int kfs_io_open_header(struct kfs *fs, struct kinode *in, int fd)
{
	int r;

	pthread_rwlock_wrlock(&in->content);
	r = load_header(fs, in, fd);
	pthread_rwlock_unlock(&in->content);
	return r;
}

static int file_key(struct kinode *in, uint8_t key[32])
{
	return kformat_file_key(key, in->hkeys, in->hdr.file_id) ? -EIO : 0;
}

/* the whole blocks holding plaintext bytes [off, end), end > off, and a
 * buffer for them */
struct span {
	uint64_t b0, nb, coff, clen; /* first block, blocks, ciphertext offset and length */
};

static void span_calc(const struct kformat_geom *g, uint64_t off, uint64_t end, struct span *s)
{
	uint64_t b1 = (end - 1) / KFORMAT_BS;

	s->b0 = off / KFORMAT_BS;
	s->nb = b1 - s->b0 + 1;
	s->coff = kformat_block_off(g, s->b0);
	s->clen = kformat_block_off(g, b1) + g->cbs - s->coff;
}

static struct tbuf *span_of(const struct kformat_geom *g, uint64_t off, uint64_t end, struct span *s)
{
	span_calc(g, off, end, s);
	/* the header's room also holds the byte read past the span */
	return tbuf_get(s->clen + KFORMAT_FHDR_LEN, s->nb * KFORMAT_BS);
}

ssize_t kfs_io_read(struct kfs *fs, struct kinode *in, int fd, char **out, size_t size, off_t off)
{
	const struct kformat_geom *g = &fs->geom;
	struct stat st;
	struct tbuf *t;
	struct span sp;
	uint64_t psize, end, lastb;
	uint8_t key[32];
	ssize_t n, r;
	bool bad, have = false; /* t->c already holds the file from sp.coff to its end */

	*out = NULL;
	pthread_rwlock_rdlock(&in->content);
	if (in->hdr_ok && size > 0 && (uint64_t)off + size > (uint64_t)off) {
		/* Most reads end before the file does: reading one byte past the
		 * last block asked for proves that none of them is the file's last
		 * block, without asking the backing filesystem for the size. */
		end = (uint64_t)off + size;
		if (!(t = span_of(g, (uint64_t)off, end, &sp))) {
			r = -ENOMEM;
			goto out;
		}
		n = kpread_full(fd, t->c, sp.clen + 1, (off_t)sp.coff);
		if (n < 0) {
			r = n;
			goto out;
		}
		if ((uint64_t)n == sp.clen + 1) {
			lastb = UINT64_MAX;
			goto decrypt;
		}
		/* the file ends where the read stopped: that is its size, and the
		 * bytes read are all there is to decrypt (the read lock keeps the
		 * header; another workstation can change the size at any time,
		 * read here or by fstat alike) */
		st.st_size = (off_t)(sp.coff + (uint64_t)n);
		have = true;
	}
	for (int tries = 0;; tries++) {
		if (!have && fstat(fd, &st) < 0) {
			r = -errno;
			goto out;
		}
		psize = kformat_plain_size(g, (uint64_t)st.st_size, &bad);
		if (bad && st.st_size > 0 && (uint64_t)st.st_size <= KFORMAT_FHDR_LEN) {
			kfs_integrity(fs, in, "file truncated to its header", KERR_FORMAT);
			r = -EIO;
			goto out;
		}
		if ((uint64_t)off >= psize || size == 0) {
			r = 0;
			goto out;
		}
		if (in->hdr_ok)
			break;
		if (tries > 2) {
			r = -EIO;
			goto out;
		}
		pthread_rwlock_unlock(&in->content);
		pthread_rwlock_wrlock(&in->content);
		r = in->hdr_ok ? 0 : load_header(fs, in, fd);
		pthread_rwlock_unlock(&in->content);
		pthread_rwlock_rdlock(&in->content);
		if (r)
			goto out;
	}
	end = (uint64_t)off + size < psize ? (uint64_t)off + size : psize;
	lastb = (psize - 1) / KFORMAT_BS;
	if (have) {
		span_calc(g, (uint64_t)off, end, &sp); /* a prefix of what was read */
	} else if (!(t = span_of(g, (uint64_t)off, end, &sp))) {
		r = -ENOMEM;
		goto out;
	}
	if (sp.coff + sp.clen > (uint64_t)st.st_size)
		sp.clen = (uint64_t)st.st_size - sp.coff; /* the last block is short */
	if (!have && (n = kpread_full(fd, t->c, sp.clen, (off_t)sp.coff)) != (ssize_t)sp.clen) {
		r = n < 0 ? n : -EIO;
		goto out;
	}
decrypt:
	if ((r = file_key(in, key)) != 0)
		goto out;
	for (uint64_t c0 = 0; c0 < sp.nb; c0 += CHUNK_BLOCKS) {
		struct blk blks[CHUNK_BLOCKS];
		uint64_t cn = sp.nb - c0 < CHUNK_BLOCKS ? sp.nb - c0 : CHUNK_BLOCKS;

		for (uint64_t i = c0; i < c0 + cn; i++) {
			struct blk *k = &blks[i - c0];

			k->b = sp.b0 + i;
			k->last = sp.b0 + i == lastb;
			k->nonce = t->c + i * g->cbs;
			k->len = (uint32_t)(sp.clen - i * g->cbs < g->cbs ? sp.clen - i * g->cbs : g->cbs);
			k->out = t->p + i * KFORMAT_BS;
		}
		r = seal_chunk(g, key, in->hdr.file_id, blks, (size_t)cn, true);
		if (r) {
			kfs_integrity(fs, in, "content block fails authentication", (int)r);
			r = -EIO;
			goto out;
		}
	}
	*out = (char *)t->p + ((uint64_t)off - sp.b0 * KFORMAT_BS);
	r = (ssize_t)(end - (uint64_t)off);
out:
	kcrypto_aead_batch_end();
	explicit_bzero(key, sizeof(key));
	pthread_rwlock_unlock(&in->content);
	return r;
}

/* decrypt block b (ciphertext cb, clen bytes) into pt; returns its plaintext length */
static ssize_t open_block(struct kfs *fs, struct kinode *in, const uint8_t key[32], uint64_t b,
			  uint64_t psize, const uint8_t *cb, size_t clen, uint8_t *pt)
{
	int r = kformat_block_open(&fs->geom, key, in->hdr.file_id, b, b == (psize - 1) / KFORMAT_BS, cb,
				   clen, pt);

	if (r) {
		kfs_integrity(fs, in, "content block fails authentication", r);
		return -EIO;
	}
	return (ssize_t)(clen - fs->geom.overhead);
}

/* read and decrypt one existing block into pt; returns its plaintext length */
static ssize_t read_block(struct kfs *fs, struct kinode *in, int fd, const uint8_t key[32],
			  uint64_t b, uint64_t psize, uint64_t csize, uint8_t *pt)
{
	const struct kformat_geom *g = &fs->geom;
	uint8_t cb[KFORMAT_BS + 64];
	uint64_t coff = kformat_block_off(g, b), clen;
	ssize_t n;

	if (coff >= csize)
		return -EIO;
	clen = csize - coff < g->cbs ? csize - coff : g->cbs;
	n = kpread_full(fd, cb, clen, (off_t)coff);
	if (n < 0 || (uint64_t)n != clen)
		return n < 0 ? n : -EIO;
	return open_block(fs, in, key, b, psize, cb, (size_t)clen, pt);
}

static int new_header(struct kfs *fs, struct kinode *in, const struct stat *st, uint8_t out[KFORMAT_FHDR_LEN])
{
	struct kformat_fhdr h;
	const struct kformat_epoch_keys *k = kvault_current_keys(fs->v, in->comp);
	int r = 0;

	if (!k)
		return -EIO;
	memset(&h, 0, sizeof(h));
	h.suite = (uint8_t)fs->geom.suite;
	h.epoch = k->epoch;
	kcrypto_random(h.file_id, sizeof(h.file_id));
	if (st->st_nlink > 1 || !kfs_place_valid(in)) {
		/* several names, or the one we knew was removed: bind to none */
		h.flags = KFORMAT_FHDR_LINKED;
	} else {
		pthread_mutex_lock(&in->lk);
		r = in->bname ? kformat_binding(h.bind, in->parent_iv, in->bname) : KERR_FORMAT;
		pthread_mutex_unlock(&in->lk);
		if (r)
			return -EIO;
	}
	if (kformat_fhdr_serialize(&h, k, out))
		return -EIO;
	in->hdr = h;
	in->hkeys = k;
	in->hdr_ok = true;
	return 0;
}

int kfs_io_kill_suidgid(int fd, const struct stat *st)
{
	mode_t m = st->st_mode & 07777, k = m & ~(mode_t)S_ISUID;

	if (!S_ISREG(st->st_mode))
		return 0;
	if ((k & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
		k &= ~(mode_t)S_ISGID;
	if (k == m)
		return 0;
	return fchmod(fd, k) < 0 ? -errno : 1;
}

/* Growing a file writes all its new blocks, zeros included: a kinko file has
 * no holes, because a hole could not be told from blocks an attacker zeroed.
 * A growth the backing filesystem has no room for fails before anything is
 * written (growths under 16 MiB are not asked about: their failure is undone). */
#define GROW_ASK_MIN (UINT64_C(16) << 20)

static bool growth_fits(const struct kformat_geom *g, int fd, uint64_t csize, uint64_t newsize)
{
	struct statvfs sv;
	uint64_t need = kformat_cipher_size(g, newsize);

	if (need <= csize || need - csize < GROW_ASK_MIN)
		return true;
	if (fstatvfs(fd, &sv) != 0 || sv.f_frsize == 0)
		return true; /* the write itself will tell */
	return (need - csize) / sv.f_frsize < (uint64_t)sv.f_bavail;
}

/* content lock held for writing. data == NULL writes zeros. kill: remove
 * set-user/group-ID first (kfs_kill_suidgid). A write that grows the file is
 * all or nothing: when one of its chunks cannot be written (ENOSPC, EDQUOT,
 * EIO) the file is cut back to its old size and its old last block, which the
 * write had re-sealed as an inner block, is put back. */
static ssize_t write_locked(struct kfs *fs, struct kinode *in, int fd, const uint8_t *data,
			    size_t size, uint64_t off, bool kill)
{
	const struct kformat_geom *g = &fs->geom;
	struct stat st;
	struct tbuf *t;
	uint8_t key[32];
	uint64_t psize, csize, end, newsize, start, b_first, b_last, old_last, new_last;
	uint8_t undo[KFORMAT_BS + 64];
	size_t undo_len = 0;
	bool fresh = false, bad, grows, wrote = false;
	ssize_t r = 0;

	if (size == 0)
		return 0;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (kill && (r = kfs_io_kill_suidgid(fd, &st)) != 0) {
		if (r < 0)
			return r;
		kfs_killed_suidgid(fs, in);
		st.st_mode &= ~(mode_t)(S_ISUID | S_ISGID);
	}
	csize = (uint64_t)st.st_size;
	psize = kformat_plain_size(g, csize, &bad);
	end = off + size;
	if (end < off || end > (UINT64_C(1) << 50))
		return -EFBIG;
	grows = end > psize;
	if (grows && !growth_fits(g, fd, csize, end))
		return -ENOSPC;
	if (!(t = tbuf_get(KFORMAT_FHDR_LEN + CHUNK_BLOCKS * g->cbs, CHUNK_BLOCKS * KFORMAT_BS)))
		return -ENOMEM;
	if (csize == 0) {
		if ((r = new_header(fs, in, &st, t->c)) != 0)
			return r;
		fresh = true;
		psize = 0;
	} else if (!in->hdr_ok && (r = load_header(fs, in, fd)) != 0) {
		return r;
	}
	if ((r = file_key(in, key)) != 0)
		return r;
	kcrypto_aead_batch_begin(key);
	newsize = end > psize ? end : psize;
	start = off < psize ? off : psize;
	b_first = start / KFORMAT_BS;
	old_last = psize ? (psize - 1) / KFORMAT_BS : UINT64_MAX;
	if (psize && newsize > psize && old_last < b_first)
		b_first = old_last;
	b_last = (end - 1) / KFORMAT_BS;
	new_last = (newsize - 1) / KFORMAT_BS;
	if (grows && psize) {
		/* the old last block is re-sealed as an inner one: keep it to undo */
		uint64_t lo = kformat_block_off(g, old_last);
		ssize_t n;

		undo_len = (size_t)(csize - lo);
		n = undo_len <= sizeof(undo) ? kpread_full(fd, undo, undo_len, (off_t)lo) : -EIO;
		if (n < 0 || (size_t)n != undo_len) {
			r = n < 0 ? n : -EIO;
			goto out;
		}
	}
	for (uint64_t cb = b_first; cb <= b_last; cb += CHUNK_BLOCKS) {
		uint64_t ce = cb + CHUNK_BLOCKS - 1 < b_last ? cb + CHUNK_BLOCKS - 1 : b_last;
		uint8_t *cbase = t->c + KFORMAT_FHDR_LEN;
		size_t clen = 0;
		/* every nonce of the chunk in one call (kcrypto_nonce) */
		uint8_t nonces[CHUNK_BLOCKS * KCRYPTO_NONCE_MAX];
		struct blk blks[CHUNK_BLOCKS];

		if (kcrypto_nonce(nonces, (size_t)(ce - cb + 1) * g->nonce) != 0) {
			r = -EIO;
			goto out;
		}

		for (uint64_t b = cb; b <= ce; b++) {
			uint64_t bstart = b * KFORMAT_BS;
			uint64_t bend = bstart + KFORMAT_BS < newsize ? bstart + KFORMAT_BS : newsize;
			uint64_t oldend = psize < bstart + KFORMAT_BS ? psize : bstart + KFORMAT_BS;
			uint8_t *pb = t->p + (b - cb) * KFORMAT_BS;
			uint64_t ws, we, zs;
			struct blk *k = &blks[b - cb];

			k->b = b;
			k->last = b == new_last;
			k->len = (uint32_t)(bend - bstart);
			k->nonce = nonces + (b - cb) * g->nonce;
			k->out = cbase + clen;
			k->pt = pb;
			clen += bend - bstart + g->overhead;
			if (data && off <= bstart && end >= bend) {
				/* wholly the caller's bytes: sealed from the request itself */
				k->pt = data + (bstart - off);
				continue;
			}
			zs = bstart;
			if (bstart < psize && !(off <= bstart && end >= oldend)) {
				/* the old last block was read already, to undo a failure */
				r = undo_len && b == old_last
					    ? open_block(fs, in, key, b, psize, undo, undo_len, pb)
					    : read_block(fs, in, fd, key, b, psize, csize, pb);
				if (r < 0)
					goto out;
				zs = oldend;
			}
			if (zs < bend)
				memset(pb + (zs - bstart), 0, bend - zs);
			ws = off > bstart ? off : bstart;
			we = end < bend ? end : bend;
			if (ws < we) {
				if (data)
					memcpy(pb + (ws - bstart), data + (ws - off), we - ws);
				else
					memset(pb + (ws - bstart), 0, we - ws);
			}
		}
		if (seal_chunk(g, key, in->hdr.file_id, blks, (size_t)(ce - cb + 1), false) != 0) {
			r = -EIO;
			goto out;
		}
		kcrypto_aead_batch_begin(key); /* sealing ended this thread's batch */
		wrote = true;
		if (fresh && cb == 0)
			r = kpwrite_all(fd, t->c, KFORMAT_FHDR_LEN + clen, 0);
		else
			r = kpwrite_all(fd, cbase, clen, (off_t)kformat_block_off(g, cb));
		if (r)
			goto out;
	}
	r = (ssize_t)size;
out:
	if (r < 0 && grows && wrote) {
		/* cut first: that frees the space the old block may need again */
		if (ftruncate(fd, (off_t)csize) < 0 ||
		    (undo_len && kpwrite_all(fd, undo, undo_len, (off_t)kformat_block_off(g, old_last)) != 0))
			kfs_integrity(fs, in, "a failed write that grew the file could not be undone", -EIO);
		if (fresh)
			in->hdr_ok = false;
	}
	kcrypto_aead_batch_end();
	explicit_bzero(key, sizeof(key));
	return r;
}

ssize_t kfs_io_write(struct kfs *fs, struct kinode *in, int fd, const char *buf, size_t size,
		     off_t off, bool append, bool kill)
{
	ssize_t r;

	pthread_rwlock_wrlock(&in->content);
	if (append) {
		struct stat st;

		if (fstat(fd, &st) < 0) {
			r = -errno;
			goto out;
		}
		off = (off_t)kfs_io_plain_size(fs, (uint64_t)st.st_size);
	}
	r = write_locked(fs, in, fd, (const uint8_t *)buf, size, (uint64_t)off, kill);
out:
	pthread_rwlock_unlock(&in->content);
	return r;
}

static int truncate_locked(struct kfs *fs, struct kinode *in, int fd, uint64_t size)
{
	const struct kformat_geom *g = &fs->geom;
	struct stat st;
	uint8_t key[32], pb[KFORMAT_BS], cb[KFORMAT_BS + 64];
	uint64_t psize, L, blen;
	ssize_t n;
	int r;
	bool bad;

	if (fstat(fd, &st) < 0)
		return -errno;
	psize = kformat_plain_size(g, (uint64_t)st.st_size, &bad);
	if (size == psize && !bad)
		return 0;
	if (size == 0) {
		if (ftruncate(fd, 0) < 0)
			return -errno;
		in->hdr_ok = false;
		return 0;
	}
	if (size > psize) {
		/* no room for the zeros: the size is beyond what this file can have */
		if (!growth_fits(g, fd, (uint64_t)st.st_size, size))
			return -EFBIG;
		n = write_locked(fs, in, fd, NULL, size - psize, psize, false);
		return n < 0 ? (int)n : 0;
	}
	if (!in->hdr_ok && (r = load_header(fs, in, fd)) != 0)
		return r;
	if ((r = file_key(in, key)) != 0)
		return r;
	L = (size - 1) / KFORMAT_BS;
	blen = size - L * KFORMAT_BS;
	n = read_block(fs, in, fd, key, L, psize, (uint64_t)st.st_size, pb);
	if (n < 0) {
		r = (int)n;
		goto out;
	}
	if (kformat_block_seal(g, key, in->hdr.file_id, L, true, pb, blen, cb)) {
		r = -EIO;
		goto out;
	}
	if ((r = kpwrite_all(fd, cb, blen + g->overhead, (off_t)kformat_block_off(g, L))) != 0)
		goto out;
	if (ftruncate(fd, (off_t)(kformat_block_off(g, L) + blen + g->overhead)) < 0)
		r = -errno;
out:
	explicit_bzero(key, sizeof(key));
	explicit_bzero(pb, sizeof(pb));
	return r;
}

int kfs_io_truncate(struct kfs *fs, struct kinode *in, int fd, uint64_t size)
{
	int r;

	if (size > (UINT64_C(1) << 50))
		return -EFBIG;
	pthread_rwlock_wrlock(&in->content);
	r = truncate_locked(fs, in, fd, size);
	pthread_rwlock_unlock(&in->content);
	return r;
}

int kfs_io_fallocate(struct kfs *fs, struct kinode *in, int fd, int mode, off_t off, off_t len)
{
	struct stat st;
	uint64_t psize, end;
	ssize_t n = 0;
	int r = 0;

	if (off < 0 || len <= 0)
		return -EINVAL;
	end = (uint64_t)off + (uint64_t)len;
	pthread_rwlock_wrlock(&in->content);
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	psize = kfs_io_plain_size(fs, (uint64_t)st.st_size);
	switch (mode) {
	case 0:
		if (end > psize)
			n = write_locked(fs, in, fd, NULL, end - psize, psize, false);
		break;
	case FALLOC_FL_KEEP_SIZE:
		break; /* an allocation hint: nothing to promise beyond the current size */
	case FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE:
	case FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE:
		if ((uint64_t)off < psize)
			n = write_locked(fs, in, fd, NULL, (end < psize ? end : psize) - (uint64_t)off,
					 (uint64_t)off, false);
		break;
	case FALLOC_FL_ZERO_RANGE:
		n = write_locked(fs, in, fd, NULL, (size_t)len, (uint64_t)off, false);
		break;
	default:
		r = -EOPNOTSUPP;
	}
	if (n < 0)
		r = (int)n;
out:
	pthread_rwlock_unlock(&in->content);
	return r;
}

int kfs_io_rebind(struct kfs *fs, struct kinode *in, int fd, const uint8_t new_bind[16],
		  const uint8_t prev_bind[16], bool linked)
{
	uint8_t buf[KFORMAT_FHDR_LEN];
	struct stat st;
	int r = 0;

	pthread_rwlock_wrlock(&in->content);
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if (st.st_size == 0)
		goto out; /* no header: nothing bound */
	if (!in->hdr_ok && (r = load_header(fs, in, fd)) != 0)
		goto out;
	if (linked) {
		in->hdr.flags |= KFORMAT_FHDR_LINKED;
		memset(in->hdr.bind, 0, 16);
		memset(in->hdr.bind_prev, 0, 16);
	} else {
		if (in->hdr.flags & KFORMAT_FHDR_LINKED)
			goto out; /* stays unbound while it may have other names */
		memcpy(in->hdr.bind, new_bind, 16);
		if (prev_bind)
			memcpy(in->hdr.bind_prev, prev_bind, 16);
		else
			memset(in->hdr.bind_prev, 0, 16);
	}
	if (kformat_fhdr_serialize(&in->hdr, in->hkeys, buf)) {
		r = -EIO;
		goto out;
	}
	r = kpwrite_all(fd, buf, sizeof(buf), 0);
	if (r == 0) {
		/* an internal rewrite: the file's times stay what the user saw */
		struct timespec tv[2] = { st.st_atim, st.st_mtim };

		futimens(fd, tv);
	}
out:
	pthread_rwlock_unlock(&in->content);
	return r;
}

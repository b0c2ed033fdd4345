// SPDX-License-Identifier: GPL-2.0-or-later
/* Encrypted names (AES-256-SIV, directory IV as AD, padded to 16 bytes,
 * base64url), long names, symlink targets (inline or, when long, in a side
 * file) and xattrs. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kinko/format.h"
#include "kinko/util.h"

#define NAME_PAD 16
#define SIV_MAX_PT 272 /* 255 bytes padded to 256 (+ a spare block) */

bool kformat_name_valid(const char *name, size_t len)
{
	if (len == 0 || len > KFORMAT_NAME_MAX)
		return false;
	if (memchr(name, '/', len) || memchr(name, 0, len))
		return false;
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		return false;
	return true;
}

static size_t pad_into(uint8_t *dst, const void *src, size_t len)
{
	size_t plen = (len / NAME_PAD + 1) * NAME_PAD;
	uint8_t pv = (uint8_t)(plen - len);

	memcpy(dst, src, len);
	memset(dst + len, pv, pv);
	return plen;
}

static int unpad(const uint8_t *p, size_t plen, size_t *len)
{
	uint8_t pv;

	if (plen == 0 || plen % NAME_PAD)
		return KERR_FORMAT;
	pv = p[plen - 1];
	if (pv == 0 || pv > NAME_PAD)
		return KERR_FORMAT;
	for (size_t i = plen - pv; i < plen; i++)
		if (p[i] != pv)
			return KERR_FORMAT;
	*len = plen - pv;
	return 0;
}

int kformat_longname_backing(char backing[256], const char *full, size_t fulllen)
{
	uint8_t h[32];
	int r;

	kcrypto_sha256(h, (const uint8_t *)full, fulllen);
	memcpy(backing, KFORMAT_LONGNAME_PREFIX, sizeof(KFORMAT_LONGNAME_PREFIX) - 1);
	r = kcrypto_b64url_encode(backing + sizeof(KFORMAT_LONGNAME_PREFIX) - 1,
				  256 - (sizeof(KFORMAT_LONGNAME_PREFIX) - 1), h, sizeof(h));
	return r;
}

int kformat_name_encrypt(const struct kformat_epoch_keys *k, const uint8_t dir_iv[16],
			 const char *name, size_t len, char backing[256], bool *is_long, char *full)
{
	uint8_t padded[SIV_MAX_PT], ct[KCRYPTO_SIV_TAGBYTES + SIV_MAX_PT];
	char enc[KFORMAT_ENCNAME_MAX];
	size_t plen, enclen;
	int r;

	if (!kformat_name_valid(name, len))
		return len > KFORMAT_NAME_MAX ? -ENAMETOOLONG : -EINVAL;
	plen = pad_into(padded, name, len);
	if ((r = kcrypto_siv_encrypt(k->names, dir_iv, 16, padded, plen, ct)) != 0)
		return r;
	if ((r = kcrypto_b64url_encode(enc, sizeof(enc), ct, KCRYPTO_SIV_TAGBYTES + plen)) != 0)
		return r;
	enclen = strlen(enc);
	if (enclen <= KFORMAT_BACKING_NAME_MAX) {
		memcpy(backing, enc, enclen + 1);
		*is_long = false;
		return 0;
	}
	*is_long = true;
	if (full)
		memcpy(full, enc, enclen + 1);
	return kformat_longname_backing(backing, enc, enclen);
}

int kformat_name_decrypt(const struct kformat_epoch_keys *k, const uint8_t dir_iv[16],
			 const char *enc, size_t enclen, char out[256], size_t *outlen)
{
	uint8_t ct[KCRYPTO_SIV_TAGBYTES + SIV_MAX_PT], pt[SIV_MAX_PT];
	size_t ctlen, len;
	int r;

	if (enclen == 0 || enclen >= KFORMAT_ENCNAME_MAX)
		return KERR_FORMAT;
	if ((r = kcrypto_b64url_decode(ct, sizeof(ct), &ctlen, enc, enclen)) != 0)
		return r;
	if (ctlen <= KCRYPTO_SIV_TAGBYTES || (ctlen - KCRYPTO_SIV_TAGBYTES) % NAME_PAD)
		return KERR_FORMAT;
	if ((r = kcrypto_siv_decrypt(k->names, dir_iv, 16, ct, ctlen, pt)) != 0)
		return r;
	if ((r = unpad(pt, ctlen - KCRYPTO_SIV_TAGBYTES, &len)) != 0)
		return r;
	if (!kformat_name_valid((const char *)pt, len))
		return KERR_FORMAT;
	memcpy(out, pt, len);
	out[len] = 0;
	*outlen = len;
	return 0;
}

static bool is_b64url(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
	}
	return n > 0;
}

enum kformat_entry_kind kformat_entry_classify(const char *backing)
{
	size_t n = strlen(backing), pl = sizeof(KFORMAT_LONGNAME_PREFIX) - 1,
	       sl = sizeof(KFORMAT_LONGNAME_SUFFIX) - 1;

	if (strncmp(backing, KFORMAT_LONGNAME_PREFIX, pl) == 0) {
		if (n == pl + 43 && is_b64url(backing + pl, 43))
			return KFORMAT_ENTRY_LONG;
		if (n == pl + 43 + sl && is_b64url(backing + pl, 43) &&
		    strcmp(backing + pl + 43, KFORMAT_LONGNAME_SUFFIX) == 0)
			return KFORMAT_ENTRY_SIDECAR;
		return KFORMAT_ENTRY_INTERNAL;
	}
	if (strncmp(backing, "kinko.", 6) == 0)
		return KFORMAT_ENTRY_INTERNAL;
	if (is_b64url(backing, n))
		return KFORMAT_ENTRY_NAME;
	return KFORMAT_ENTRY_FOREIGN;
}

/* ---- symlinks ---- */

static const uint8_t symlink_id[16] = "symlink-target-1";
static const uint8_t xattr_id[16] = "xattr-value-v1\0\0";

int kformat_symlink_encrypt(const struct kformat_geom *g, const struct kformat_epoch_keys *k,
			    const char *target, size_t tlen, char *out, size_t outmax)
{
	uint8_t key[32], ad[20], *blob = NULL;
	size_t blen = 4 + g->overhead + tlen;
	int r;

	if (tlen == 0 || tlen > KFORMAT_SYMLINK_TARGET_MAX)
		return -ENAMETOOLONG;
	if (kcrypto_b64url_len(blen) >= outmax || kcrypto_b64url_len(blen) > KFORMAT_SYMLINK_ENC_MAX)
		return -ENAMETOOLONG;
	blob = malloc(blen);
	if (!blob)
		return -ENOMEM;
	memcpy(ad, "kinko-symlink-v1", 16);
	kput_le32(ad + 16, k->epoch);
	kput_le32(blob, k->epoch);
	kcrypto_random(blob + 4, g->nonce);
	if ((r = kformat_file_key(key, k, symlink_id)) != 0)
		goto out;
	if ((r = kcrypto_aead_seal(g->suite, key, blob + 4, ad, sizeof(ad), (const uint8_t *)target,
				   tlen, blob + 4 + g->nonce, blob + 4 + g->nonce + tlen)) != 0)
		goto out;
	r = kcrypto_b64url_encode(out, outmax, blob, blen);
out:
	ksecmem_wipe(key, sizeof(key));
	free(blob);
	return r;
}

int kformat_symlink_epoch(const char *enc, uint32_t *epoch)
{
	uint8_t head[6];
	size_t n;

	/* 8 base64 characters decode to 6 bytes: the epoch is the first 4 */
	if (strlen(enc) < 8 || kcrypto_b64url_decode(head, sizeof(head), &n, enc, 8) != 0 || n != 6)
		return KERR_FORMAT;
	*epoch = kget_le32(head);
	return 0;
}

int kformat_symlink_decrypt(const struct kformat_geom *g, const struct kformat_epoch_keys *k,
			    const char *enc, char *out, size_t outmax, size_t *outlen)
{
	uint8_t key[32], ad[20], *blob = NULL;
	size_t enclen = strlen(enc), blen, tlen;
	int r;

	if (enclen == 0 || enclen > KFORMAT_SYMLINK_ENC_MAX)
		return KERR_FORMAT;
	blob = malloc(enclen);
	if (!blob)
		return -ENOMEM;
	if ((r = kcrypto_b64url_decode(blob, enclen, &blen, enc, enclen)) != 0)
		goto out;
	r = KERR_FORMAT;
	if (blen <= 4 + g->overhead || kget_le32(blob) != k->epoch)
		goto out;
	tlen = blen - 4 - g->overhead;
	if (tlen + 1 > outmax)
		goto out;
	memcpy(ad, "kinko-symlink-v1", 16);
	kput_le32(ad + 16, k->epoch);
	if ((r = kformat_file_key(key, k, symlink_id)) != 0)
		goto out;
	if ((r = kcrypto_aead_open(g->suite, key, blob + 4, ad, sizeof(ad), blob + 4 + g->nonce, tlen,
				   blob + 4 + g->nonce + tlen, (uint8_t *)out)) != 0)
		goto out;
	if (memchr(out, 0, tlen)) {
		r = KERR_FORMAT;
		goto out;
	}
	out[tlen] = 0;
	*outlen = tlen;
	r = 0;
out:
	ksecmem_wipe(key, sizeof(key));
	free(blob);
	return r;
}

/* ---- long symlink targets: side files in <compartment>/kinko.lt ---- */

bool kformat_lt_name_valid(const char *name)
{
	size_t i;

	for (i = 0; name[i]; i++)
		if (i >= 32 || !((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
			return false;
	return i == 32;
}

bool kformat_symlink_is_ref(const char *t)
{
	return strncmp(t, KFORMAT_LT_REF, sizeof(KFORMAT_LT_REF) - 1) == 0;
}

static void lt_name(char name[33], const char *enc, size_t len)
{
	uint8_t d[32];

	kcrypto_sha256(d, (const uint8_t *)enc, len);
	khex_encode(name, d, 16);
}

/* base/cdir/kinko.lt, made if asked */
static int lt_dir(int base, const char *cdir, bool make)
{
	int cfd = openat(base, cdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), fd;

	if (cfd < 0)
		return -errno;
	fd = 0;
	if (make) {
		if (mkdirat(cfd, KFORMAT_LT_DIR, 0700) == 0)
			fd = kfsync_dir(cfd); /* durable before a symlink refers into it */
		else if (errno != EEXIST)
			fd = -errno;
	}
	if (fd == 0 && (fd = openat(cfd, KFORMAT_LT_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		fd = -errno;
	close(cfd);
	return fd;
}

int kformat_symlink_store(int base, const char *cdir, const char *enc, char *out)
{
	size_t len = strlen(enc);
	char name[33];
	int lfd, r;

	if (len <= KFORMAT_SYMLINK_MAX) {
		memcpy(out, enc, len + 1);
		return 0;
	}
	if (len > KFORMAT_SYMLINK_ENC_MAX)
		return -ENAMETOOLONG;
	if ((lfd = lt_dir(base, cdir, true)) < 0)
		return lfd;
	lt_name(name, enc, len);
	/* the name hashes a sealed target with a random nonce: never taken */
	r = kfile_create_at(lfd, name, enc, len, 0400);
	close(lfd);
	if (r == 0)
		snprintf(out, KFORMAT_SYMLINK_MAX + 1, KFORMAT_LT_REF "%s", name);
	return r;
}

/* a side file (or kinko.lt) that is missing, too large, not a regular file,
 * a symlink or unreadable is damage; running out of memory or descriptors is not */
static int lt_err(int r)
{
	return r == -ENOMEM || r == -EMFILE || r == -ENFILE || r == -EINTR ? r : KERR_FORMAT;
}

int kformat_symlink_load(int base, const char *cdir, const char *t, char *out)
{
	size_t len = strlen(t), n;
	const char *name = t + sizeof(KFORMAT_LT_REF) - 1;
	char check[33];
	uint8_t *buf;
	int lfd, r;

	if (!kformat_symlink_is_ref(t)) {
		if (len == 0 || len > KFORMAT_SYMLINK_MAX)
			return KERR_FORMAT;
		memcpy(out, t, len + 1);
		return 0;
	}
	if (!kformat_lt_name_valid(name))
		return KERR_FORMAT;
	if ((lfd = lt_dir(base, cdir, false)) < 0)
		return lt_err(lfd);
	r = kfile_read_at(lfd, name, KFORMAT_SYMLINK_ENC_MAX, &buf, &n);
	close(lfd);
	if (r)
		return lt_err(r);
	lt_name(check, (const char *)buf, n);
	if (n <= KFORMAT_SYMLINK_MAX || strcmp(check, name) != 0 || memchr(buf, 0, n)) {
		free(buf);
		return KERR_FORMAT;
	}
	memcpy(out, buf, n);
	out[n] = 0;
	free(buf);
	return 0;
}

void kformat_symlink_forget(int base, const char *cdir, const char *t)
{
	int lfd;

	if (!kformat_symlink_is_ref(t) || !kformat_lt_name_valid(t + sizeof(KFORMAT_LT_REF) - 1) ||
	    (lfd = lt_dir(base, cdir, false)) < 0)
		return;
	unlinkat(lfd, t + sizeof(KFORMAT_LT_REF) - 1, 0);
	close(lfd);
}

void kformat_lt_hold(struct kformat_lt_hold *h, int dirfd, const char *name, const struct stat *st)
{
	struct stat own;
	ssize_t n;

	h->fd = -1;
	if (!st && fstatat(dirfd, name, &own, AT_SYMLINK_NOFOLLOW) == 0)
		st = &own;
	if (!st || !S_ISLNK(st->st_mode) || (size_t)st->st_size != KFORMAT_LT_REFLEN)
		return;
	if ((h->fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return;
	n = readlinkat(h->fd, "", h->ref, sizeof(h->ref));
	if (n == (ssize_t)KFORMAT_LT_REFLEN)
		h->ref[n] = 0;
	if (n != (ssize_t)KFORMAT_LT_REFLEN || !kformat_symlink_is_ref(h->ref) ||
	    !kformat_lt_name_valid(h->ref + sizeof(KFORMAT_LT_REF) - 1)) {
		close(h->fd);
		h->fd = -1;
	}
}

void kformat_lt_release(struct kformat_lt_hold *h, int base, const char *cdir)
{
	struct stat st;

	if (h->fd < 0)
		return;
	if (fstat(h->fd, &st) == 0 && st.st_nlink == 0)
		kformat_symlink_forget(base, cdir, h->ref);
	close(h->fd);
	h->fd = -1;
}

/* ---- xattrs ---- */

int kformat_xattr_name_encrypt(const struct kformat_epoch_keys *k, const char *name, char *out,
			       size_t outmax)
{
	uint8_t padded[SIV_MAX_PT], ct[KCRYPTO_SIV_TAGBYTES + SIV_MAX_PT];
	size_t len = strlen(name), plen;
	int n, r;

	if (len == 0 || len > 200)
		return -ERANGE;
	plen = pad_into(padded, name, len);
	if ((r = kcrypto_siv_encrypt(k->names, (const uint8_t *)"kinko-xattr-name", 16, padded, plen,
				     ct)) != 0)
		return r;
	n = snprintf(out, outmax, KFORMAT_XATTR_PREFIX "%u.", k->epoch);
	if (n < 0 || (size_t)n >= outmax)
		return -ERANGE;
	r = kcrypto_b64url_encode(out + n, outmax - (size_t)n, ct, KCRYPTO_SIV_TAGBYTES + plen);
	if (r == 0 && strlen(out) > 255)
		return -ERANGE;
	return r;
}

int kformat_xattr_name_epoch(const char *backing, uint32_t *epoch)
{
	const char *p = backing + sizeof(KFORMAT_XATTR_PREFIX) - 1;
	char *end;
	unsigned long v;

	if (strncmp(backing, KFORMAT_XATTR_PREFIX, sizeof(KFORMAT_XATTR_PREFIX) - 1) != 0)
		return KERR_FORMAT;
	if (*p < '0' || *p > '9')
		return KERR_FORMAT;
	v = strtoul(p, &end, 10);
	if (*end != '.' || v > UINT32_MAX)
		return KERR_FORMAT;
	*epoch = (uint32_t)v;
	return 0;
}

int kformat_xattr_name_decrypt(const struct kformat_epoch_keys *k, const char *backing, char *out,
			       size_t outmax)
{
	uint8_t ct[KCRYPTO_SIV_TAGBYTES + SIV_MAX_PT], pt[SIV_MAX_PT];
	const char *dot = strchr(backing, '.');
	size_t ctlen, len;
	int r;

	if (!dot || !(dot = strchr(dot + 1, '.')))
		return KERR_FORMAT;
	dot++;
	if ((r = kcrypto_b64url_decode(ct, sizeof(ct), &ctlen, dot, strlen(dot))) != 0)
		return r;
	if (ctlen <= KCRYPTO_SIV_TAGBYTES)
		return KERR_FORMAT;
	if ((r = kcrypto_siv_decrypt(k->names, (const uint8_t *)"kinko-xattr-name", 16, ct, ctlen,
				     pt)) != 0)
		return r;
	if ((r = unpad(pt, ctlen - KCRYPTO_SIV_TAGBYTES, &len)) != 0)
		return r;
	if (len + 1 > outmax || memchr(pt, 0, len))
		return KERR_FORMAT;
	memcpy(out, pt, len);
	out[len] = 0;
	return 0;
}

size_t kformat_xattr_value_overhead(const struct kformat_geom *g) { return g->overhead; }

int kformat_xattr_value_encrypt(const struct kformat_geom *g, const struct kformat_epoch_keys *k,
				const char *backing_name, const uint8_t *v, size_t vlen, uint8_t *out)
{
	uint8_t key[32];
	int r;

	kcrypto_random(out, g->nonce);
	if ((r = kformat_file_key(key, k, xattr_id)) == 0)
		r = kcrypto_aead_seal(g->suite, key, out, (const uint8_t *)backing_name,
				      strlen(backing_name), v, vlen, out + g->nonce,
				      out + g->nonce + vlen);
	ksecmem_wipe(key, sizeof(key));
	return r;
}

int kformat_xattr_value_decrypt(const struct kformat_geom *g, const struct kformat_epoch_keys *k,
				const char *backing_name, const uint8_t *in, size_t inlen, uint8_t *out)
{
	uint8_t key[32];
	size_t vlen;
	int r;

	if (inlen < g->overhead)
		return KERR_FORMAT;
	vlen = inlen - g->overhead;
	if ((r = kformat_file_key(key, k, xattr_id)) == 0)
		r = kcrypto_aead_open(g->suite, key, in, (const uint8_t *)backing_name,
				      strlen(backing_name), in + g->nonce, vlen, in + g->nonce + vlen,
				      out);
	ksecmem_wipe(key, sizeof(key));
	return r;
}

// SPDX-License-Identifier: GPL-2.0-or-later
/* format/records.c: vault header, user key file, grant file, policy envelope.
 * Round trips; every single-bit change of a serialized record is rejected by
 * its parser or by the signature/AEAD that covers it; truncation at every
 * length, a trailing byte and newer versions/flags are refused. */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kinko/keys.h"
#include "kt.h"

/* ---------------- fixtures ---------------- */

struct signer {
	uint8_t pk[32], sk[64];
};

static void signer_make(struct signer *s, uint32_t seed)
{
	uint8_t sd[32];

	kt_fill(sd, 32, seed);
	assert_int_equal(kcrypto_sign_seed_keypair(s->pk, s->sk, sd), 0);
}

/* flip every bit of buf[0..len) in turn; accept(buf, len) must say no each time */
typedef int (*accept_fn)(const uint8_t *buf, size_t len, void *ctx);

static void every_bit_rejected(const char *what, uint8_t *buf, size_t len, accept_fn accept, void *ctx)
{
	assert_int_equal(accept(buf, len, ctx), 0);
	for (size_t bit = 0; bit < len * 8; bit++) {
		int r;

		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		r = accept(buf, len, ctx);
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		kt_check(r != 0, "%s: bit %zu (byte %zu) flipped and still accepted", what, bit, bit / 8);
	}
	/* and every byte inverted */
	for (size_t i = 0; i < len; i++) {
		int r;

		buf[i] ^= 0xff;
		r = accept(buf, len, ctx);
		buf[i] ^= 0xff;
		kt_check(r != 0, "%s: byte %zu inverted and still accepted", what, i);
	}
	assert_int_equal(accept(buf, len, ctx), 0);
}

/* every proper prefix and one trailing byte are refused (by the parser) */
static void truncations_rejected(const char *what, const uint8_t *buf, size_t len, accept_fn parse,
				 void *ctx)
{
	uint8_t *copy = malloc(len + 1);

	assert_non_null(copy);
	for (size_t n = 0; n < len; n++) {
		int r;

		/* a fresh allocation of exactly n bytes, so ASan sees any over-read */
		uint8_t *t = malloc(n ? n : 1);

		assert_non_null(t);
		memcpy(t, buf, n);
		r = parse(t, n, ctx);
		free(t);
		kt_check(r != 0, "%s: truncated to %zu of %zu bytes and accepted", what, n, len);
	}
	memcpy(copy, buf, len);
	for (int v = 0; v < 256; v += 85) {
		copy[len] = (uint8_t)v;
		kt_check(parse(copy, len + 1, ctx) == KERR_FORMAT, "%s: trailing byte 0x%02x accepted", what, v);
	}
	free(copy);
}

/* ---------------- vault header ---------------- */

struct vault_fx {
	struct signer root;
	struct kformat_vault v;
	uint8_t buf[KFORMAT_VAULT_LEN];
};

static void vault_fx(struct vault_fx *f, int suite)
{
	signer_make(&f->root, 101);
	memset(&f->v, 0, sizeof(f->v));
	kt_fill(f->v.vault_id, 16, 102);
	f->v.suite = (uint8_t)suite;
	memcpy(f->v.root_pk, f->root.pk, 32);
	f->v.created = 1700000000;
	assert_int_equal(kformat_vault_serialize(&f->v, f->root.sk, f->buf), 0);
}

static int vault_accept(const uint8_t *buf, size_t len, void *ctx)
{
	struct kformat_vault v;

	(void)ctx;
	return kformat_vault_parse(buf, len, &v);
}

static void test_vault_roundtrip(void **state)
{
	static const int suites[] = { KSUITE_AES256GCM, KSUITE_XCHACHA20POLY1305 };

	(void)state;
	for (int s = 0; s < 2; s++) {
		struct vault_fx f;
		struct kformat_vault p;
		uint8_t msg[16 + 76];

		vault_fx(&f, suites[s]);
		/* the layout of kinko-format(5) */
		assert_memory_equal(f.buf, "KINKOVLT", 8);
		assert_int_equal(kget_le16(f.buf + 8), 1);
		assert_int_equal(kget_le16(f.buf + 10), KFORMAT_VAULT_LEN);
		assert_int_equal(kget_le32(f.buf + 12), 0);
		assert_memory_equal(f.buf + 16, f.v.vault_id, 16);
		assert_int_equal(f.buf[32], suites[s]);
		assert_memory_equal(f.buf + 33, "\0\0\0", 3);
		assert_memory_equal(f.buf + 36, f.root.pk, 32);
		assert_true(kget_le64(f.buf + 68) == 1700000000);
		/* the signature is Ed25519 over the 16-byte context || bytes 0..75 */
		memcpy(msg, "kinko-vault-v1\0\0", 16);
		memcpy(msg + 16, f.buf, 76);
		assert_int_equal(kcrypto_verify(f.buf + 76, msg, sizeof(msg), f.root.pk), 0);

		memset(&p, 0xee, sizeof(p));
		assert_int_equal(kformat_vault_parse(f.buf, sizeof(f.buf), &p), 0);
		assert_int_equal(p.version, 1);
		assert_int_equal(p.features, 0);
		assert_memory_equal(p.vault_id, f.v.vault_id, 16);
		assert_int_equal(p.suite, suites[s]);
		assert_memory_equal(p.root_pk, f.root.pk, 32);
		assert_true(p.created == 1700000000);
		/* deterministic (Ed25519) */
		{
			uint8_t again[KFORMAT_VAULT_LEN];

			assert_int_equal(kformat_vault_serialize(&f.v, f.root.sk, again), 0);
			assert_memory_equal(again, f.buf, sizeof(again));
		}
	}
}

static void test_vault_tamper(void **state)
{
	struct vault_fx f;

	(void)state;
	vault_fx(&f, KSUITE_AES256GCM);
	every_bit_rejected("vault header", f.buf, sizeof(f.buf), vault_accept, NULL);
	truncations_rejected("vault header", f.buf, sizeof(f.buf), vault_accept, NULL);
}

/* a header re-signed after an edit: the structural checks still refuse it */
static void vault_resign(struct vault_fx *f, uint8_t *buf)
{
	uint8_t msg[16 + 76];

	memcpy(msg, "kinko-vault-v1\0\0", 16);
	memcpy(msg + 16, buf, 76);
	assert_int_equal(kcrypto_sign(buf + 76, msg, sizeof(msg), f->root.sk), 0);
}

static void test_vault_versions(void **state)
{
	struct vault_fx f;
	struct kformat_vault p;
	uint8_t b[KFORMAT_VAULT_LEN];

	(void)state;
	vault_fx(&f, KSUITE_XCHACHA20POLY1305);
	/* newer versions, signed properly */
	for (unsigned v = 2; v <= 0xffff; v = v < 8 ? v + 1 : v * 3) {
		memcpy(b, f.buf, sizeof(b));
		kput_le16(b + 8, (uint16_t)v);
		vault_resign(&f, b);
		kt_check(kformat_vault_parse(b, sizeof(b), &p) == KERR_VERSION, "version %u", v);
	}
	memcpy(b, f.buf, sizeof(b));
	kput_le16(b + 8, 0);
	vault_resign(&f, b);
	assert_int_equal(kformat_vault_parse(b, sizeof(b), &p), KERR_FORMAT);
	/* every feature bit */
	for (int bit = 0; bit < 32; bit++) {
		memcpy(b, f.buf, sizeof(b));
		kput_le32(b + 12, 1u << bit);
		vault_resign(&f, b);
		kt_check(kformat_vault_parse(b, sizeof(b), &p) == KERR_VERSION, "feature bit %d", bit);
	}
	/* unknown cipher suite */
	for (int s = 0; s < 256; s++) {
		if (s == KSUITE_AES256GCM || s == KSUITE_XCHACHA20POLY1305)
			continue;
		memcpy(b, f.buf, sizeof(b));
		b[32] = (uint8_t)s;
		vault_resign(&f, b);
		kt_check(kformat_vault_parse(b, sizeof(b), &p) == KERR_VERSION, "suite %d", s);
	}
	/* header length field, reserved bytes */
	memcpy(b, f.buf, sizeof(b));
	kput_le16(b + 10, KFORMAT_VAULT_LEN + 1);
	vault_resign(&f, b);
	assert_int_equal(kformat_vault_parse(b, sizeof(b), &p), KERR_FORMAT);
	for (int i = 33; i < 36; i++) {
		memcpy(b, f.buf, sizeof(b));
		b[i] = 1;
		vault_resign(&f, b);
		assert_int_equal(kformat_vault_parse(b, sizeof(b), &p), KERR_FORMAT);
	}
	/* a header signed by another key than the one it names */
	{
		struct signer other;

		signer_make(&other, 999);
		assert_int_equal(kformat_vault_serialize(&f.v, other.sk, b), 0);
		assert_int_equal(kformat_vault_parse(b, sizeof(b), &p), KERR_AUTH);
	}
	/* a header naming another root key, signed by it: self-consistent, so it
	 * parses; the key file is what authenticates the root key */
	{
		struct signer other;
		struct kformat_vault v2 = f.v;

		signer_make(&other, 998);
		memcpy(v2.root_pk, other.pk, 32);
		assert_int_equal(kformat_vault_serialize(&v2, other.sk, b), 0);
		assert_int_equal(kformat_vault_parse(b, sizeof(b), &p), 0);
		assert_memory_equal(p.root_pk, other.pk, 32);
	}
}

/* ---------------- key file ---------------- */

struct key_fx {
	struct kformat_keyfile kf;
	uint8_t kek[32];
	uint8_t secret[KFORMAT_KEY_SECRET_LEN];
	struct kbuf b;
	uint8_t cert[40], factor[24];
};

/* build a key file the way kkeys_keyfile_write does, with a known KEK */
static void key_fx(struct key_fx *f, const char *user, int ext)
{
	memset(f, 0, sizeof(*f));
	kt_fill(f->kf.vault_id, 16, 102);
	kt_fill(f->kf.root_pk, 32, 103);
	snprintf(f->kf.user, sizeof(f->kf.user), "%s", user);
	kt_fill(f->kf.box_pk, 32, 104);
	kt_fill(f->kf.sign_pk, 32, 105);
	f->kf.kdf_alg = KFORMAT_KDF_ARGON2ID;
	f->kf.m_kib = KCRYPTO_ARGON2_DEF_MKIB;
	f->kf.t_cost = KCRYPTO_ARGON2_DEF_T;
	f->kf.p_cost = KCRYPTO_ARGON2_DEF_P;
	kt_fill(f->kf.salt, 16, 106);
	kt_fill(f->kf.nonce, 24, 107);
	f->kf.pw_changed = 1700000000;
	if (ext & 1)
		f->kf.enrolment = true;
	if (ext & 2) {
		kt_fill(f->cert, sizeof(f->cert), 108);
		kt_fill(f->factor, sizeof(f->factor), 109);
		f->kf.cert = f->cert;
		f->kf.certlen = sizeof(f->cert);
		f->kf.factor = f->factor;
		f->kf.factorlen = sizeof(f->factor);
	}
	kt_fill(f->kek, 32, 110);
	kt_fill(f->secret, sizeof(f->secret), 111);
	kbuf_init_writer(&f->b);
	assert_int_equal(kformat_keyfile_serialize_ad(&f->kf, &f->b), 0);
	assert_int_equal(kcrypto_wrap(f->kek, f->kf.nonce, f->b.p, f->b.len, f->secret, sizeof(f->secret),
				      f->kf.wrapped),
			 0);
	assert_int_equal(kformat_keyfile_serialize_tail(&f->kf, &f->b), 0);
}

/* what kkeys_unlock does after the KDF: parse, then unwrap with AD = the file
 * up to the nonce */
static int key_open(const uint8_t *buf, size_t len, void *ctx)
{
	const struct key_fx *f = ctx;
	struct kformat_keyfile kf;
	uint8_t sec[KFORMAT_KEY_SECRET_LEN];
	int r;

	if ((r = kformat_keyfile_parse(buf, len, &kf)) != 0)
		return r;
	if (kf.ad_len > len)
		return -1000000; /* impossible: would be an out-of-bounds AD */
	if ((r = kcrypto_unwrap(f->kek, kf.nonce, buf, kf.ad_len, kf.wrapped, sizeof(kf.wrapped), sec)) != 0)
		return r;
	return memcmp(sec, f->secret, sizeof(sec)) == 0 ? 0 : -1000001;
}

static int key_parse(const uint8_t *buf, size_t len, void *ctx)
{
	struct kformat_keyfile kf;

	(void)ctx;
	return kformat_keyfile_parse(buf, len, &kf);
}

/* the fixed part of the key file before the extension length, per kinko-format(5) */
static size_t key_fixed_len(const char *user)
{
	return 8 + 2 + 2 + 16 + 32 + 1 + strlen(user) + 32 + 32 + 1 + 4 + 4 + 4 + 16;
}

static void test_keyfile_roundtrip(void **state)
{
	static const char *const users[] = { "a", "alice", "abcdefghijklmnopqrstuvwxyz012345" };

	(void)state;
	for (size_t u = 0; u < 3; u++) {
		for (int ext = 0; ext < 4; ext++) {
			struct key_fx f;
			struct kformat_keyfile p;
			size_t off = key_fixed_len(users[u]);

			key_fx(&f, users[u], ext);
			assert_memory_equal(f.b.p, "KINKOKEY\x01\x00\x00\x00", 12);
			assert_int_equal(f.b.p[60], strlen(users[u]));
			memset(&p, 0xee, sizeof(p));
			assert_int_equal(kformat_keyfile_parse(f.b.p, f.b.len, &p), 0);
			assert_int_equal(p.flags, 0);
			assert_memory_equal(p.vault_id, f.kf.vault_id, 16);
			assert_memory_equal(p.root_pk, f.kf.root_pk, 32);
			assert_string_equal(p.user, users[u]);
			assert_memory_equal(p.box_pk, f.kf.box_pk, 32);
			assert_memory_equal(p.sign_pk, f.kf.sign_pk, 32);
			assert_int_equal(p.kdf_alg, KFORMAT_KDF_ARGON2ID);
			assert_int_equal(p.m_kib, f.kf.m_kib);
			assert_int_equal(p.t_cost, f.kf.t_cost);
			assert_int_equal(p.p_cost, f.kf.p_cost);
			assert_memory_equal(p.salt, f.kf.salt, 16);
			assert_memory_equal(p.nonce, f.kf.nonce, 24);
			assert_memory_equal(p.wrapped, f.kf.wrapped, sizeof(p.wrapped));
			assert_true(p.pw_changed == 1700000000);
			assert_int_equal(p.enrolment, (ext & 1) != 0);
			if (ext & 2) {
				assert_non_null(p.cert);
				assert_int_equal(p.certlen, sizeof(f.cert));
				assert_memory_equal(p.cert, f.cert, sizeof(f.cert));
				assert_int_equal(p.factorlen, sizeof(f.factor));
				assert_memory_equal(p.factor, f.factor, sizeof(f.factor));
				/* points into the parsed buffer */
				assert_true(p.cert > f.b.p && p.cert < f.b.p + f.b.len);
			} else {
				assert_null(p.cert);
				assert_null(p.factor);
			}
			/* AD = everything before the nonce; the tail is nonce, length, wrapped */
			assert_int_equal(p.ad_len + 24 + 4 + 80, f.b.len);
			assert_int_equal(kget_le32(f.b.p + off) + off + 4, p.ad_len);
			assert_memory_equal(f.b.p + p.ad_len, f.kf.nonce, 24);
			assert_int_equal(kget_le32(f.b.p + p.ad_len + 24), 80);
			assert_int_equal(key_open(f.b.p, f.b.len, &f), 0);
			kbuf_free(&f.b);
		}
	}
}

static void test_keyfile_tamper(void **state)
{
	(void)state;
	for (int ext = 0; ext < 4; ext++) {
		struct key_fx f;

		key_fx(&f, "carol", ext);
		every_bit_rejected("key file", f.b.p, f.b.len, key_open, &f);
		truncations_rejected("key file", f.b.p, f.b.len, key_parse, &f);
		kbuf_free(&f.b);
	}
}

/* a key file with a hand-made extension area, wrapped properly */
static int key_with_ext(struct key_fx *f, const uint8_t *ext, size_t extlen, uint32_t declared,
			uint8_t **out, size_t *outlen)
{
	struct kbuf b;
	size_t off = key_fixed_len("dave");
	uint8_t wrapped[80];

	key_fx(f, "dave", 0);
	kbuf_init_writer(&b);
	assert_int_equal(kbuf_put_raw(&b, f->b.p, off), 0);
	assert_int_equal(kbuf_put_u32(&b, declared), 0);
	assert_int_equal(kbuf_put_raw(&b, ext, extlen), 0);
	assert_int_equal(kcrypto_wrap(f->kek, f->kf.nonce, b.p, b.len, f->secret, 64, wrapped), 0);
	assert_int_equal(kbuf_put_raw(&b, f->kf.nonce, 24), 0);
	assert_int_equal(kbuf_put_u32(&b, 80), 0);
	assert_int_equal(kbuf_put_raw(&b, wrapped, 80), 0);
	*out = malloc(b.len);
	assert_non_null(*out);
	memcpy(*out, b.p, b.len);
	*outlen = b.len;
	kbuf_free(&b);
	kbuf_free(&f->b);
	return key_open(*out, *outlen, f);
}

static void test_keyfile_versions_extensions(void **state)
{
	struct key_fx f;
	struct kformat_keyfile p;
	uint8_t *buf, *mod;
	size_t len;

	(void)state;
	key_fx(&f, "erin", 0);
	buf = f.b.p;
	len = f.b.len;
	mod = malloc(len);
	assert_non_null(mod);
	/* versions and flags (checked before anything is unwrapped) */
	for (unsigned v = 2; v <= 0xffff; v = v < 8 ? v + 1 : v * 3) {
		memcpy(mod, buf, len);
		kput_le16(mod + 8, (uint16_t)v);
		kt_check(kformat_keyfile_parse(mod, len, &p) == KERR_VERSION, "version %u", v);
	}
	memcpy(mod, buf, len);
	kput_le16(mod + 8, 0);
	assert_int_equal(kformat_keyfile_parse(mod, len, &p), KERR_FORMAT);
	for (int bit = 0; bit < 16; bit++) {
		memcpy(mod, buf, len);
		kput_le16(mod + 10, (uint16_t)(1u << bit));
		kt_check(kformat_keyfile_parse(mod, len, &p) == KERR_VERSION, "flag bit %d", bit);
	}
	/* KDF algorithm */
	for (int a = 0; a < 256; a++) {
		if (a == KFORMAT_KDF_ARGON2ID)
			continue;
		memcpy(mod, buf, len);
		mod[key_fixed_len("erin") - 29] = (uint8_t)a;
		kt_check(kformat_keyfile_parse(mod, len, &p) == KERR_VERSION, "kdf %d", a);
	}
	/* user ids that are not valid ids */
	{
		static const char *const bad[] = { "Erin", "-rin", "er n", "er/n" };

		for (int i = 0; i < 4; i++) {
			memcpy(mod, buf, len);
			memcpy(mod + 61, bad[i], 4);
			kt_check(kformat_keyfile_parse(mod, len, &p) == KERR_FORMAT, "user '%s'", bad[i]);
		}
		memcpy(mod, buf, len);
		mod[62] = 0; /* embedded NUL */
		assert_int_equal(kformat_keyfile_parse(mod, len, &p), KERR_FORMAT);
		memcpy(mod, buf, len);
		mod[60] = 0; /* empty */
		assert_int_not_equal(kformat_keyfile_parse(mod, len, &p), 0);
		memcpy(mod, buf, len);
		mod[60] = 33; /* longer than a user id */
		assert_int_not_equal(kformat_keyfile_parse(mod, len, &p), 0);
	}
	/* wrapped length other than 80 */
	{
		size_t wl = len - 80 - 4;

		for (uint32_t w = 0; w < 200; w += 7) {
			if (w == 80)
				continue;
			memcpy(mod, buf, len);
			kput_le32(mod + wl, w);
			kt_check(kformat_keyfile_parse(mod, len, &p) != 0, "wrapped length %u", w);
		}
	}
	free(mod);
	kbuf_free(&f.b);

	/* extension area, each wrapped correctly so only the parser can object */
	{
		static const uint8_t pw[] = { 0x01, 0x00, 0x08, 0x00, 1, 2, 3, 4, 5, 6, 7, 8 };
		uint8_t e[64];
		uint8_t *kb;
		size_t kl;

		/* none at all: accepted, pw_changed unknown */
		assert_int_equal(key_with_ext(&f, NULL, 0, 0, &kb, &kl), 0);
		assert_int_equal(kformat_keyfile_parse(kb, kl, &p), 0);
		assert_true(p.pw_changed == 0);
		free(kb);
		/* the password date */
		assert_int_equal(key_with_ext(&f, pw, sizeof(pw), sizeof(pw), &kb, &kl), 0);
		assert_int_equal(kformat_keyfile_parse(kb, kl, &p), 0);
		assert_true(p.pw_changed == (int64_t)UINT64_C(0x0807060504030201));
		free(kb);
		/* twice */
		memcpy(e, pw, sizeof(pw));
		memcpy(e + sizeof(pw), pw, sizeof(pw));
		assert_int_equal(key_with_ext(&f, e, 2 * sizeof(pw), 2 * sizeof(pw), &kb, &kl), KERR_FORMAT);
		free(kb);
		/* wrong length */
		memcpy(e, pw, sizeof(pw));
		e[2] = 7;
		assert_int_equal(key_with_ext(&f, e, 11, 11, &kb, &kl), KERR_FORMAT);
		free(kb);
		/* enrolment with a value */
		memcpy(e, "\x02\x80\x01\x00\x00", 5);
		assert_int_equal(key_with_ext(&f, e, 5, 5, &kb, &kl), KERR_FORMAT);
		free(kb);
		memcpy(e, "\x02\x80\x00\x00", 4);
		assert_int_equal(key_with_ext(&f, e, 4, 4, &kb, &kl), 0);
		assert_int_equal(kformat_keyfile_parse(kb, kl, &p), 0);
		assert_true(p.enrolment);
		free(kb);
		/* a certificate without its factor, and the reverse */
		memcpy(e, "\x03\x80\x02\x00\xaa\xbb", 6);
		assert_int_equal(key_with_ext(&f, e, 6, 6, &kb, &kl), KERR_FORMAT);
		free(kb);
		memcpy(e, "\x04\x80\x02\x00\xaa\xbb", 6);
		assert_int_equal(key_with_ext(&f, e, 6, 6, &kb, &kl), KERR_FORMAT);
		free(kb);
		memcpy(e, "\x03\x80\x00\x00\x04\x80\x01\x00\xbb", 9); /* empty certificate */
		assert_int_equal(key_with_ext(&f, e, 9, 9, &kb, &kl), KERR_FORMAT);
		free(kb);
		/* unknown critical: newer; unknown non-critical: ignored */
		memcpy(e, "\x10\x80\x00\x00", 4);
		assert_int_equal(key_with_ext(&f, e, 4, 4, &kb, &kl), KERR_VERSION);
		free(kb);
		memcpy(e, "\x10\x00\x02\x00xy", 6);
		assert_int_equal(key_with_ext(&f, e, 6, 6, &kb, &kl), 0);
		free(kb);
		/* a TLV running past the extension area, or a partial TLV header */
		memcpy(e, "\x01\x00\x08\x00\x01\x02", 6);
		assert_int_not_equal(key_with_ext(&f, e, 6, 6, &kb, &kl), 0);
		free(kb);
		memcpy(e, "\x01\x00\x08", 3);
		assert_int_not_equal(key_with_ext(&f, e, 3, 3, &kb, &kl), 0);
		free(kb);
		/* declared extension length beyond the file, and beyond the cap */
		assert_int_not_equal(key_with_ext(&f, pw, sizeof(pw), 5000, &kb, &kl), 0);
		free(kb);
		assert_int_equal(key_with_ext(&f, pw, sizeof(pw), 65537, &kb, &kl), KERR_FORMAT);
		free(kb);
		assert_int_equal(key_with_ext(&f, pw, sizeof(pw), UINT32_MAX, &kb, &kl), KERR_FORMAT);
		free(kb);
	}
}

/* ---------------- key files through kkeys (real KDF, real files) ---------------- */

static int vault_tmp(char *path, size_t n)
{
	int fd;

	snprintf(path, n, "/tmp/kinko-unit-records.XXXXXX");
	assert_non_null(mkdtemp(path));
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(kmkdirs_at(fd, "keys", 0700), 0);
	return fd;
}

static void rm_tree(int at, const char *name)
{
	int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd >= 0) {
		DIR *d = fdopendir(fd);
		struct dirent *de;

		assert_non_null(d);
		while ((de = readdir(d)) != NULL)
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				rm_tree(dirfd(d), de->d_name);
		closedir(d);
		assert_int_equal(unlinkat(at, name, AT_REMOVEDIR), 0);
	} else {
		assert_int_equal(unlinkat(at, name, 0), 0);
	}
}

static void write_file(int vfd, const char *path, const uint8_t *buf, size_t len)
{
	int fd = openat(vfd, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(kwrite_all(fd, buf, len), 0);
	assert_int_equal(close(fd), 0);
}

static void test_keyfile_kkeys(void **state)
{
	char dir[64];
	int vfd = vault_tmp(dir, sizeof(dir));
	struct kkeys_user *u = kkeys_user_alloc(), *back = NULL;
	struct kkeys_wrap w;
	struct kkeys_meta meta;
	uint8_t vid[16], rootpk[32], *buf;
	size_t len;

	(void)state;
	assert_non_null(u);
	kt_fill(vid, 16, 120);
	kt_fill(rootpk, 32, 121);
	assert_int_equal(kkeys_user_generate(u, "frank"), 0);
	memset(&w, 0, sizeof(w));
	w.kdf.m_kib = KCRYPTO_ARGON2_MIN_MKIB;
	w.kdf.t_cost = 1;
	w.kdf.p_cost = 1;
	w.pw_changed = 1700000001;
	assert_int_equal(kkeys_keyfile_write(vfd, vid, rootpk, u, "secret pw", 9, &w, false, NULL), 0);
	/* exclusive create unless replace */
	assert_int_equal(kkeys_keyfile_write(vfd, vid, rootpk, u, "secret pw", 9, &w, false, NULL), -EEXIST);

	memset(&meta, 0, sizeof(meta));
	assert_int_equal(kkeys_unlock(vfd, vid, rootpk, "frank", "secret pw", 9, NULL, &back, &meta, NULL), 0);
	assert_non_null(back);
	assert_memory_equal(back->box_sk, u->box_sk, 32);
	assert_memory_equal(back->sign_sk, u->sign_sk, 64);
	assert_memory_equal(back->box_pk, u->box_pk, 32);
	assert_true(meta.pw_changed == 1700000001);
	kkeys_meta_clear(&meta);
	kkeys_user_free(back);
	back = NULL;
	assert_int_equal(kkeys_unlock(vfd, vid, rootpk, "frank", "secret pX", 9, NULL, &back, NULL, NULL),
			 KERR_PASSWORD);
	assert_null(back);
	assert_int_equal(kkeys_unlock(vfd, vid, rootpk, "frank", "secret p", 8, NULL, &back, NULL, NULL),
			 KERR_PASSWORD);
	rootpk[0] ^= 1;
	assert_int_equal(kkeys_unlock(vfd, vid, rootpk, "frank", "secret pw", 9, NULL, &back, NULL, NULL),
			 KERR_MISMATCH);
	rootpk[0] ^= 1;
	assert_int_equal(kkeys_unlock(vfd, vid, rootpk, "nobody", "x", 1, NULL, &back, NULL, NULL), KERR_NOUSER);
	assert_int_equal(kkeys_unlock(vfd, vid, rootpk, "../x", "x", 1, NULL, &back, NULL, NULL), KERR_USAGE);

	/* the KDF parameters are inside the AD: raising t in the file is a wrong password */
	assert_int_equal(kfile_read_at(vfd, "keys/frank.key", 1 << 20, &buf, &len), 0);
	{
		size_t t_off = key_fixed_len("frank") - 16 - 8;

		assert_int_equal(kget_le32(buf + t_off), 1);
		kput_le32(buf + t_off, 2);
		write_file(vfd, "keys/frank.key", buf, len);
		assert_int_equal(kkeys_unlock(vfd, vid, rootpk, "frank", "secret pw", 9, NULL, &back, NULL, NULL),
				 KERR_PASSWORD);
		/* hostile KDF parameters: refused before anything is derived */
		{
			static const uint32_t hostile[][3] = { { UINT32_MAX, 1, 1 }, { KCRYPTO_ARGON2_MAX_MKIB + 1, 1, 1 },
							       { KCRYPTO_ARGON2_MIN_MKIB, 1000000, 1 },
							       { KCRYPTO_ARGON2_MIN_MKIB, 1, 255 },
							       { 1024, 1, 1 } };
			struct timespec t0, t1;

			for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
				kput_le32(buf + t_off - 4, hostile[i][0]);
				kput_le32(buf + t_off, hostile[i][1]);
				kput_le32(buf + t_off + 4, hostile[i][2]);
				write_file(vfd, "keys/frank.key", buf, len);
				clock_gettime(CLOCK_MONOTONIC, &t0);
				kt_check(kkeys_unlock(vfd, vid, rootpk, "frank", "secret pw", 9, NULL, &back, NULL,
						      NULL) == KERR_KDFPARAM,
					 "hostile KDF parameters %zu not refused", i);
				clock_gettime(CLOCK_MONOTONIC, &t1);
				kt_check((t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec) < 200000000L,
					 "hostile KDF parameters %zu took time", i);
			}
		}
	}
	free(buf);
	/* a key file truncated, or empty */
	write_file(vfd, "keys/frank.key", (const uint8_t *)"KINKOKEY", 8);
	assert_int_equal(kkeys_unlock(vfd, vid, rootpk, "frank", "secret pw", 9, NULL, &back, NULL, NULL),
			 KERR_FORMAT);
	write_file(vfd, "keys/frank.key", (const uint8_t *)"", 0);
	assert_int_equal(kkeys_unlock(vfd, vid, rootpk, "frank", "secret pw", 9, NULL, &back, NULL, NULL),
			 KERR_FORMAT);
	assert_null(back);
	kkeys_user_free(u);
	close(vfd);
	rm_tree(AT_FDCWD, dir);
}

/* ---------------- grant ---------------- */

struct grant_fx {
	uint8_t vid[16], cid[16], ek[32];
	uint32_t epoch;
	struct kkeys_user *u;
	struct kpolicy *pol;
	struct kpolicy_comp *c;
	int vfd;
	char dir[64], path[160];
};

static void grant_fx_init(struct grant_fx *f)
{
	uint8_t cm[32];
	char hex[33];

	memset(f, 0, sizeof(*f));
	kt_fill(f->vid, 16, 130);
	kt_fill(f->cid, 16, 131);
	kt_fill(f->ek, 32, 132);
	f->epoch = 3;
	f->u = kkeys_user_alloc();
	assert_non_null(f->u);
	assert_int_equal(kkeys_user_generate(f->u, "gina"), 0);
	f->pol = kpolicy_new(f->vid);
	assert_non_null(f->pol);
	assert_int_equal(kpolicy_comp_add(f->pol, f->cid, "main", KCLASS_HIMITSU), 0);
	f->c = kpolicy_comp_find(f->pol, f->cid);
	assert_non_null(f->c);
	assert_int_equal(kformat_epoch_commitment(cm, f->ek, f->vid, f->cid, f->epoch), 0);
	assert_int_equal(kpolicy_epoch_add(f->c, f->epoch, cm, 1700000000), 0);
	f->vfd = vault_tmp(f->dir, sizeof(f->dir));
	assert_int_equal(kkeys_grant_write(f->vfd, f->vid, f->cid, f->epoch, "gina", f->u->box_pk, f->ek, NULL), 0);
	khex_encode(hex, f->cid, 16);
	snprintf(f->path, sizeof(f->path), "grants/%s/3/gina.grant", hex);
}

static void grant_fx_free(struct grant_fx *f)
{
	kkeys_user_free(f->u);
	kpolicy_free(f->pol);
	close(f->vfd);
	rm_tree(AT_FDCWD, f->dir);
}

/* the whole check a mount makes: kkeys_grant_open on the file as given */
static int grant_open(const uint8_t *buf, size_t len, void *ctx)
{
	struct grant_fx *f = ctx;
	uint8_t ek[32];
	int r;

	write_file(f->vfd, f->path, buf, len);
	r = kkeys_grant_open(f->vfd, f->vid, f->c, f->epoch, f->u, ek, NULL);
	if (r == 0 && memcmp(ek, f->ek, 32) != 0)
		return -1000002;
	return r;
}

static int grant_parse(const uint8_t *buf, size_t len, void *ctx)
{
	struct kformat_grant g;

	(void)ctx;
	return kformat_grant_parse(buf, len, &g);
}

static void test_grant(void **state)
{
	struct grant_fx f;
	struct kformat_grant g, p;
	uint8_t *buf, *mod;
	size_t len;

	(void)state;
	grant_fx_init(&f);
	assert_int_equal(kfile_read_at(f.vfd, f.path, 4096, &buf, &len), 0);
	assert_int_equal(len, 161 + strlen("gina"));
	assert_memory_equal(buf, "KINKOGRT\x01\x00\x00\x00", 12);
	assert_memory_equal(buf + 12, f.vid, 16);
	assert_memory_equal(buf + 28, f.cid, 16);
	assert_int_equal(kget_le32(buf + 44), 3);
	assert_int_equal(buf[48], 4);
	assert_memory_equal(buf + 49, "gina", 4);
	assert_memory_equal(buf + 53, f.c->epochs[0].commitment, 32);
	memset(&p, 0xee, sizeof(p));
	assert_int_equal(kformat_grant_parse(buf, len, &p), 0);
	assert_memory_equal(p.vault_id, f.vid, 16);
	assert_memory_equal(p.comp_id, f.cid, 16);
	assert_int_equal(p.epoch, 3);
	assert_string_equal(p.user, "gina");
	/* serialize gives back the same bytes */
	{
		struct kbuf b;

		kbuf_init_writer(&b);
		assert_int_equal(kformat_grant_serialize(&p, &b), 0);
		assert_int_equal(b.len, len);
		assert_memory_equal(b.p, buf, len);
		kbuf_free(&b);
	}
	assert_int_equal(grant_open(buf, len, &f), 0);
	every_bit_rejected("grant", buf, len, grant_open, &f);
	truncations_rejected("grant", buf, len, grant_parse, &f);

	mod = malloc(len);
	assert_non_null(mod);
	for (unsigned v = 2; v <= 0xffff; v = v < 8 ? v + 1 : v * 3) {
		memcpy(mod, buf, len);
		kput_le16(mod + 8, (uint16_t)v);
		kt_check(kformat_grant_parse(mod, len, &g) == KERR_VERSION, "version %u", v);
	}
	for (int bit = 0; bit < 16; bit++) {
		memcpy(mod, buf, len);
		kput_le16(mod + 10, (uint16_t)(1u << bit));
		kt_check(kformat_grant_parse(mod, len, &g) == KERR_VERSION, "flag bit %d", bit);
	}
	memcpy(mod, buf, len);
	kput_le32(mod + 44, 0); /* epoch 0 */
	assert_int_equal(kformat_grant_parse(mod, len, &g), KERR_FORMAT);
	memcpy(mod, buf, len);
	mod[49] = 'G'; /* not a user id */
	assert_int_equal(kformat_grant_parse(mod, len, &g), KERR_FORMAT);
	/* a grant for another user, moved into this user's name: refused */
	{
		struct kkeys_user *o = kkeys_user_alloc();
		char hex[33], other[160];
		uint8_t *ob, ek[32];
		size_t ol;

		assert_non_null(o);
		assert_int_equal(kkeys_user_generate(o, "hugo"), 0);
		assert_int_equal(kkeys_grant_write(f.vfd, f.vid, f.cid, 3, "hugo", o->box_pk, f.ek, NULL), 0);
		khex_encode(hex, f.cid, 16);
		snprintf(other, sizeof(other), "grants/%s/3/hugo.grant", hex);
		assert_int_equal(kfile_read_at(f.vfd, other, 4096, &ob, &ol), 0);
		write_file(f.vfd, f.path, ob, ol);
		assert_int_equal(kkeys_grant_open(f.vfd, f.vid, f.c, 3, f.u, ek, NULL), KERR_MISMATCH);
		free(ob);
		kkeys_user_free(o);
	}
	/* a grant sealing another key with a matching self-made commitment:
	 * refused, the policy's commitment decides */
	{
		struct kformat_grant fg;
		struct kbuf b;
		uint8_t ek2[32], ek[32];

		memset(&fg, 0, sizeof(fg));
		memcpy(fg.vault_id, f.vid, 16);
		memcpy(fg.comp_id, f.cid, 16);
		fg.epoch = 3;
		snprintf(fg.user, sizeof(fg.user), "gina");
		kt_fill(ek2, 32, 133);
		assert_int_equal(kformat_epoch_commitment(fg.commitment, ek2, f.vid, f.cid, 3), 0);
		assert_int_equal(kcrypto_seal(fg.sealed, ek2, 32, f.u->box_pk), 0);
		kbuf_init_writer(&b);
		assert_int_equal(kformat_grant_serialize(&fg, &b), 0);
		write_file(f.vfd, f.path, b.p, b.len);
		assert_int_not_equal(kkeys_grant_open(f.vfd, f.vid, f.c, 3, f.u, ek, NULL), 0);
		/* same, but the policy's commitment copied in: the sealed key does not match it */
		memcpy(fg.commitment, f.c->epochs[0].commitment, 32);
		kbuf_free(&b);
		kbuf_init_writer(&b);
		assert_int_equal(kformat_grant_serialize(&fg, &b), 0);
		write_file(f.vfd, f.path, b.p, b.len);
		assert_int_equal(kkeys_grant_open(f.vfd, f.vid, f.c, 3, f.u, ek, NULL), KERR_AUTH);
		kbuf_free(&b);
	}
	free(mod);
	free(buf);
	grant_fx_free(&f);
}

/* ---------------- policy envelope ---------------- */

struct pol_fx {
	struct signer root, admin;
	uint8_t vid[16];
	struct kbuf b;
};

static const char pol_body[] = "{\"format\": 1, \"hello\": \"\\u65e5\"}";

static void pol_fx(struct pol_fx *f, const char *body, size_t blen, uint64_t serial, const char *signer)
{
	signer_make(&f->root, 140);
	signer_make(&f->admin, 141);
	kt_fill(f->vid, 16, 142);
	kbuf_init_writer(&f->b);
	assert_int_equal(kformat_policy_serialize(f->vid, serial, body, blen, signer, f->admin.sk, f->root.sk, &f->b),
			 0);
}

static int pol_accept(const uint8_t *buf, size_t len, void *ctx)
{
	struct pol_fx *f = ctx;
	struct kformat_policy_env env;
	int r;

	if ((r = kformat_policy_parse(buf, len, &env)) != 0)
		return r;
	if (env.root_len > len || env.signed_len > len || env.body + env.body_len > buf + len)
		return -1000003;
	if ((r = kformat_policy_verify_root(buf, &env, f->root.pk)) != 0)
		return r;
	return kformat_policy_verify_signer(buf, &env, f->admin.pk);
}

static int pol_parse(const uint8_t *buf, size_t len, void *ctx)
{
	struct kformat_policy_env env;

	(void)ctx;
	return kformat_policy_parse(buf, len, &env);
}

static void test_policy_env_roundtrip(void **state)
{
	struct pol_fx f;
	struct kformat_policy_env env;
	size_t bl = strlen(pol_body);

	(void)state;
	pol_fx(&f, pol_body, bl, 7, "ivan");
	assert_int_equal(f.b.len, 169 + bl + 4);
	assert_memory_equal(f.b.p, "KINKOPOL\x01\x00\x00\x00", 12);
	assert_memory_equal(f.b.p + 12, f.vid, 16);
	assert_true(kget_le64(f.b.p + 28) == 7);
	assert_int_equal(kget_le32(f.b.p + 36), bl);
	assert_memory_equal(f.b.p + 40, pol_body, bl);
	memset(&env, 0xee, sizeof(env));
	assert_int_equal(kformat_policy_parse(f.b.p, f.b.len, &env), 0);
	assert_memory_equal(env.vault_id, f.vid, 16);
	assert_true(env.serial == 7);
	assert_int_equal(env.body_len, bl);
	assert_ptr_equal(env.body, f.b.p + 40);
	assert_string_equal(env.signer, "ivan");
	assert_int_equal(env.signed_len, 40 + bl + 5);
	assert_int_equal(env.root_len, 40 + bl + 5 + 64);
	assert_int_equal(kformat_policy_verify_root(f.b.p, &env, f.root.pk), 0);
	assert_int_equal(kformat_policy_verify_signer(f.b.p, &env, f.admin.pk), 0);
	/* the two keys are not interchangeable */
	assert_int_equal(kformat_policy_verify_root(f.b.p, &env, f.admin.pk), KERR_AUTH);
	assert_int_equal(kformat_policy_verify_signer(f.b.p, &env, f.root.pk), KERR_AUTH);
	/* independent check of the signatures' contexts */
	{
		uint8_t *msg = malloc(16 + env.root_len);

		assert_non_null(msg);
		memcpy(msg, "kinko-policy-v1\0", 16);
		memcpy(msg + 16, f.b.p, env.signed_len);
		assert_int_equal(kcrypto_verify(env.signer_sig, msg, 16 + env.signed_len, f.admin.pk), 0);
		memcpy(msg, "kinko-polroot-v1", 16);
		memcpy(msg + 16, f.b.p, env.root_len);
		assert_int_equal(kcrypto_verify(env.root_sig, msg, 16 + env.root_len, f.root.pk), 0);
		free(msg);
	}
	kbuf_free(&f.b);
}

static void test_policy_env_tamper(void **state)
{
	struct pol_fx f;

	(void)state;
	pol_fx(&f, pol_body, strlen(pol_body), 7, "ivan");
	every_bit_rejected("policy envelope", f.b.p, f.b.len, pol_accept, &f);
	truncations_rejected("policy envelope", f.b.p, f.b.len, pol_parse, &f);
	kbuf_free(&f.b);
}

static void test_policy_env_limits(void **state)
{
	struct pol_fx f;
	struct kformat_policy_env env;
	uint8_t *mod;
	size_t len;

	(void)state;
	pol_fx(&f, pol_body, strlen(pol_body), 7, "ivan");
	len = f.b.len;
	mod = malloc(len);
	assert_non_null(mod);
	for (unsigned v = 2; v <= 0xffff; v = v < 8 ? v + 1 : v * 3) {
		memcpy(mod, f.b.p, len);
		kput_le16(mod + 8, (uint16_t)v);
		kt_check(kformat_policy_parse(mod, len, &env) == KERR_VERSION, "version %u", v);
	}
	memcpy(mod, f.b.p, len);
	kput_le16(mod + 8, 0);
	assert_int_equal(kformat_policy_parse(mod, len, &env), KERR_FORMAT);
	for (int bit = 0; bit < 16; bit++) {
		memcpy(mod, f.b.p, len);
		kput_le16(mod + 10, (uint16_t)(1u << bit));
		kt_check(kformat_policy_parse(mod, len, &env) == KERR_VERSION, "flag bit %d", bit);
	}
	/* body length 0, beyond the file, beyond the cap */
	memcpy(mod, f.b.p, len);
	kput_le32(mod + 36, 0);
	assert_int_equal(kformat_policy_parse(mod, len, &env), KERR_FORMAT);
	memcpy(mod, f.b.p, len);
	kput_le32(mod + 36, (uint32_t)len);
	assert_int_equal(kformat_policy_parse(mod, len, &env), KERR_FORMAT);
	memcpy(mod, f.b.p, len);
	kput_le32(mod + 36, KFORMAT_POLICY_BODY_MAX + 1);
	assert_int_equal(kformat_policy_parse(mod, len, &env), KERR_FORMAT);
	memcpy(mod, f.b.p, len);
	kput_le32(mod + 36, UINT32_MAX);
	assert_int_equal(kformat_policy_parse(mod, len, &env), KERR_FORMAT);
	free(mod);
	kbuf_free(&f.b);

	/* serial 0, a NUL in the body, an invalid signer: made by the writer, refused by the reader */
	pol_fx(&f, pol_body, strlen(pol_body), 0, "ivan");
	assert_int_equal(kformat_policy_parse(f.b.p, f.b.len, &env), KERR_FORMAT);
	kbuf_free(&f.b);
	pol_fx(&f, "{\"a\":\"\0\"}", 9, 1, "ivan");
	assert_int_equal(kformat_policy_parse(f.b.p, f.b.len, &env), KERR_FORMAT);
	kbuf_free(&f.b);
	pol_fx(&f, pol_body, strlen(pol_body), 1, "Ivan");
	assert_int_equal(kformat_policy_parse(f.b.p, f.b.len, &env), KERR_FORMAT);
	kbuf_free(&f.b);
	pol_fx(&f, pol_body, strlen(pol_body), 1, "abcdefghijklmnopqrstuvwxyz0123456");
	assert_int_not_equal(kformat_policy_parse(f.b.p, f.b.len, &env), 0);
	kbuf_free(&f.b);
	/* the writer refuses empty and oversized bodies without reading them */
	{
		struct kbuf b;
		struct signer s;

		signer_make(&s, 143);
		kbuf_init_writer(&b);
		assert_int_equal(kformat_policy_serialize(f.vid, 1, "", 0, "ivan", s.sk, s.sk, &b), KERR_USAGE);
		assert_int_equal(kformat_policy_serialize(f.vid, 1, "x", (size_t)KFORMAT_POLICY_BODY_MAX + 1, "ivan",
							  s.sk, s.sk, &b),
				 KERR_USAGE);
		assert_int_equal(b.len, 0);
		kbuf_free(&b);
	}
	/* the largest body accepted */
	{
		char *big = malloc(KFORMAT_POLICY_BODY_MAX);

		assert_non_null(big);
		memset(big, ' ', KFORMAT_POLICY_BODY_MAX);
		pol_fx(&f, big, KFORMAT_POLICY_BODY_MAX, 2, "ivan");
		assert_int_equal(pol_accept(f.b.p, f.b.len, &f), 0);
		kbuf_free(&f.b);
		free(big);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vault_roundtrip),
		cmocka_unit_test(test_vault_tamper),
		cmocka_unit_test(test_vault_versions),
		cmocka_unit_test(test_keyfile_roundtrip),
		cmocka_unit_test(test_keyfile_tamper),
		cmocka_unit_test(test_keyfile_versions_extensions),
		cmocka_unit_test(test_keyfile_kkeys),
		cmocka_unit_test(test_grant),
		cmocka_unit_test(test_policy_env_roundtrip),
		cmocka_unit_test(test_policy_env_tamper),
		cmocka_unit_test(test_policy_env_limits),
	};

	return cmocka_run_group_tests_name("records", tests, kt_group_setup, NULL);
}

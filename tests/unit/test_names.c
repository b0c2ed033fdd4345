// SPDX-License-Identifier: GPL-2.0-or-later
/* format/names.c: encrypted names (AES-256-SIV + padding + base64url), long
 * names, entry classification, symlink targets, xattr names and values. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kt.h"

struct fx {
	struct kformat_epoch_keys k;
	uint8_t iv[16];
};

static void fx_init(struct fx *f)
{
	kt_epoch_keys(&f->k, 4, 61);
	kt_fill(f->iv, 16, 62);
}

/* base64url length of the encrypted name of a len-byte name, computed from the
 * format description: tag(16) + len padded to the next multiple of 16 (a full
 * block of padding when already aligned), 4 characters per 3 bytes, no '=' */
static size_t model_enclen(size_t len)
{
	size_t bytes = 16 + (len / 16 + 1) * 16;

	return (bytes * 4 + 2) / 3;
}

/* encrypt, check the backing name form, decrypt back */
static void roundtrip(const struct fx *f, const char *name, size_t len)
{
	char backing[256], full[KFORMAT_ENCNAME_MAX], out[256];
	size_t outlen = 0, elen = model_enclen(len);
	bool is_long = !(elen > 255);

	memset(full, 0, sizeof(full));
	assert_int_equal(kformat_name_encrypt(&f->k, f->iv, name, len, backing, &is_long, full), 0);
	kt_check(is_long == (elen > 255), "len %zu: is_long %d, encoded length %zu", len, is_long, elen);
	if (!is_long) {
		kt_check(strlen(backing) == elen, "len %zu: backing length %zu, expected %zu", len,
			 strlen(backing), elen);
		assert_int_equal(kformat_entry_classify(backing), KFORMAT_ENTRY_NAME);
		assert_int_equal(kformat_name_decrypt(&f->k, f->iv, backing, strlen(backing), out, &outlen), 0);
	} else {
		char lb[256], sidecar[300];

		kt_check(strlen(full) == elen, "len %zu: full length %zu, expected %zu", len, strlen(full), elen);
		assert_int_equal(strncmp(backing, KFORMAT_LONGNAME_PREFIX, strlen(KFORMAT_LONGNAME_PREFIX)), 0);
		assert_int_equal(strlen(backing), strlen(KFORMAT_LONGNAME_PREFIX) + 43);
		assert_int_equal(kformat_longname_backing(lb, full, strlen(full)), 0);
		assert_string_equal(lb, backing);
		assert_int_equal(kformat_entry_classify(backing), KFORMAT_ENTRY_LONG);
		snprintf(sidecar, sizeof(sidecar), "%s%s", backing, KFORMAT_LONGNAME_SUFFIX);
		assert_int_equal(kformat_entry_classify(sidecar), KFORMAT_ENTRY_SIDECAR);
		assert_int_equal(kformat_entry_classify(full), KFORMAT_ENTRY_NAME);
		assert_int_equal(kformat_name_decrypt(&f->k, f->iv, full, strlen(full), out, &outlen), 0);
		/* full may be NULL: the backing name is still produced */
		{
			char b2[256];
			bool l2 = false;

			assert_int_equal(kformat_name_encrypt(&f->k, f->iv, name, len, b2, &l2, NULL), 0);
			assert_true(l2);
			assert_string_equal(b2, backing);
		}
	}
	assert_int_equal(outlen, len);
	assert_memory_equal(out, name, len);
	assert_int_equal(out[len], 0);
}

static void test_names_ascii(void **state)
{
	struct fx f;
	char name[256];
	static const char *const samples[] = { "a", "README.md", ".hidden", "...", "a b c", "x-y_z~!@#$%^&*()",
					       "\x7f\x01\x02", "-", "kinko.diriv", "kinko.ln.xyz" };

	(void)state;
	fx_init(&f);
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++)
		roundtrip(&f, samples[i], strlen(samples[i]));
	/* every length 1..255 */
	for (size_t len = 1; len <= 255; len++) {
		for (size_t i = 0; i < len; i++)
			name[i] = (char)('a' + (i * 7 + len) % 26);
		roundtrip(&f, name, len);
	}
	/* the switch to the long form happens exactly where the encoding passes 255 */
	{
		char b[256];
		bool l;

		memset(name, 'q', sizeof(name));
		assert_int_equal(kformat_name_encrypt(&f.k, f.iv, name, 159, b, &l, NULL), 0);
		assert_false(l);
		assert_int_equal(kformat_name_encrypt(&f.k, f.iv, name, 160, b, &l, NULL), 0);
		assert_true(l);
	}
}

/* Japanese names of 1..85 characters (3 UTF-8 bytes each: up to 255 bytes) */
static void test_names_japanese(void **state)
{
	static const char *const kana[] = { "\xe6\x97\xa5", "\xe6\x9c\xac", "\xe8\xaa\x9e", "\xe3\x81\xae",
					    "\xe5\x90\x8d", "\xe5\x89\x8d" }; /* 日 本 語 の 名 前 */
	struct fx f;
	char name[300];
	int nlong = 0, nshort = 0;

	(void)state;
	fx_init(&f);
	for (size_t n = 1; n <= 86; n++) {
		char b[256];
		bool l;

		for (size_t i = 0; i < n; i++)
			memcpy(name + 3 * i, kana[i % 6], 3);
		if (n == 86) {
			/* 258 bytes: over NAME_MAX */
			assert_int_equal(kformat_name_encrypt(&f.k, f.iv, name, 3 * n, b, &l, NULL), -ENAMETOOLONG);
			break;
		}
		roundtrip(&f, name, 3 * n);
		if (model_enclen(3 * n) > 255)
			nlong++;
		else
			nshort++;
	}
	/* both forms were exercised: 53 characters (159 bytes) is the last short one */
	assert_int_equal(nshort, 53);
	assert_int_equal(nlong, 85 - 53);
}

static void test_names_limits_invalid(void **state)
{
	struct fx f;
	char name[300], b[256];
	bool l;
	static const struct {
		const char *s;
		size_t n;
	} bad[] = { { "", 0 }, { ".", 1 }, { "..", 2 }, { "/", 1 }, { "a/b", 3 }, { "a/", 2 },
		    { "/a", 2 }, { "a\0b", 3 }, { "\0", 1 }, { "abc\0", 4 } };

	(void)state;
	fx_init(&f);
	memset(name, 'x', sizeof(name));
	assert_int_equal(kformat_name_encrypt(&f.k, f.iv, name, 255, b, &l, NULL), 0);
	assert_int_equal(kformat_name_encrypt(&f.k, f.iv, name, 256, b, &l, NULL), -ENAMETOOLONG);
	assert_int_equal(kformat_name_encrypt(&f.k, f.iv, name, 4096, b, &l, NULL), -ENAMETOOLONG);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		kt_check(!kformat_name_valid(bad[i].s, bad[i].n), "bad name %zu valid", i);
		kt_check(kformat_name_encrypt(&f.k, f.iv, bad[i].s, bad[i].n, b, &l, NULL) == -EINVAL,
			 "bad name %zu encrypted", i);
	}
	assert_true(kformat_name_valid("...", 3));
	assert_true(kformat_name_valid(".a", 2));
	assert_true(kformat_name_valid(name, 255));
	assert_false(kformat_name_valid(name, 256));
}

static void test_names_deterministic(void **state)
{
	struct fx f, g;
	char b1[256], b2[256];
	bool l;

	(void)state;
	fx_init(&f);
	fx_init(&g);
	assert_int_equal(kformat_name_encrypt(&f.k, f.iv, "same", 4, b1, &l, NULL), 0);
	assert_int_equal(kformat_name_encrypt(&f.k, f.iv, "same", 4, b2, &l, NULL), 0);
	assert_string_equal(b1, b2);
	/* another directory */
	g.iv[0] ^= 1;
	assert_int_equal(kformat_name_encrypt(&g.k, g.iv, "same", 4, b2, &l, NULL), 0);
	assert_string_not_equal(b1, b2);
	{
		char out[256];
		size_t n;

		assert_int_equal(kformat_name_decrypt(&g.k, g.iv, b1, strlen(b1), out, &n), KERR_AUTH);
	}
	/* another epoch key */
	kt_epoch_keys(&g.k, 4, 99);
	assert_int_equal(kformat_name_encrypt(&g.k, f.iv, "same", 4, b2, &l, NULL), 0);
	assert_string_not_equal(b1, b2);
	{
		char out[256];
		size_t n;

		assert_int_equal(kformat_name_decrypt(&g.k, f.iv, b1, strlen(b1), out, &n), KERR_AUTH);
	}
}

/* SIV-encrypt an arbitrary padded plaintext for f's directory, base64url it */
static void craft(const struct fx *f, const uint8_t *pt, size_t n, char *enc, size_t encmax)
{
	uint8_t ct[16 + 512];

	assert_true(n <= 512);
	assert_int_equal(kcrypto_siv_encrypt(f->k.names, f->iv, 16, pt, n, ct), 0);
	assert_int_equal(kcrypto_b64url_encode(enc, encmax, ct, 16 + n), 0);
}

static void test_names_decrypt_errors(void **state)
{
	struct fx f;
	char enc[800], out[256], good[256];
	uint8_t pt[512];
	size_t n;
	bool l;

	(void)state;
	fx_init(&f);

	/* authentic ciphertexts whose plaintext is not a valid padded name */
	memset(pt, 'a', sizeof(pt));
	pt[15] = 0; /* pad value 0 */
	craft(&f, pt, 16, enc, sizeof(enc));
	assert_int_equal(kformat_name_decrypt(&f.k, f.iv, enc, strlen(enc), out, &n), KERR_FORMAT);
	pt[15] = 17; /* pad value above the block */
	craft(&f, pt, 16, enc, sizeof(enc));
	assert_int_equal(kformat_name_decrypt(&f.k, f.iv, enc, strlen(enc), out, &n), KERR_FORMAT);
	pt[15] = 3; /* inconsistent padding */
	pt[14] = 3;
	pt[13] = 2;
	craft(&f, pt, 16, enc, sizeof(enc));
	assert_int_equal(kformat_name_decrypt(&f.k, f.iv, enc, strlen(enc), out, &n), KERR_FORMAT);
	memset(pt, 16, 16); /* padding only: empty name */
	craft(&f, pt, 16, enc, sizeof(enc));
	assert_int_equal(kformat_name_decrypt(&f.k, f.iv, enc, strlen(enc), out, &n), KERR_FORMAT);
	{
		static const char *const names[] = { ".", "..", "a/b", "/" };

		for (size_t i = 0; i < 4; i++) {
			size_t len = strlen(names[i]);

			memcpy(pt, names[i], len);
			memset(pt + len, (int)(16 - len), 16 - len);
			craft(&f, pt, 16, enc, sizeof(enc));
			kt_check(kformat_name_decrypt(&f.k, f.iv, enc, strlen(enc), out, &n) == KERR_FORMAT,
				 "'%s' decrypted", names[i]);
		}
	}
	memcpy(pt, "a\0b", 3); /* embedded NUL */
	memset(pt + 3, 13, 13);
	craft(&f, pt, 16, enc, sizeof(enc));
	assert_int_equal(kformat_name_decrypt(&f.k, f.iv, enc, strlen(enc), out, &n), KERR_FORMAT);
	/* 256 bytes of name in 17 blocks: over NAME_MAX */
	memset(pt, 'z', 272);
	memset(pt + 256, 16, 16);
	craft(&f, pt, 272, enc, sizeof(enc));
	assert_int_equal(kformat_name_decrypt(&f.k, f.iv, enc, strlen(enc), out, &n), KERR_FORMAT);
	/* 18 blocks: too long an encoding */
	memset(pt, 'z', 288);
	memset(pt + 272, 16, 16);
	craft(&f, pt, 288, enc, sizeof(enc));
	assert_true(strlen(enc) >= KFORMAT_ENCNAME_MAX);
	assert_int_equal(kformat_name_decrypt(&f.k, f.iv, enc, strlen(enc), out, &n), KERR_FORMAT);
	/* ciphertext not a multiple of the padding */
	memset(pt, 'a', 20);
	craft(&f, pt, 20, enc, sizeof(enc));
	assert_int_equal(kformat_name_decrypt(&f.k, f.iv, enc, strlen(enc), out, &n), KERR_FORMAT);

	/* garbage and base64 errors */
	{
		static const char *const junk[] = { "!!!!", "abc=", "abc+def", "abc/def", "a", "ab\ncd",
						    "AAAAAAAAAAAAAAAAAAAAAA",    /* tag only */
						    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", /* 31 bytes */
						    "kinko.diriv", "\xe6\x97\xa5" };

		for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
			kt_check(kformat_name_decrypt(&f.k, f.iv, junk[i], strlen(junk[i]), out, &n) != 0,
				 "junk '%s' decrypted", junk[i]);
		assert_int_equal(kformat_name_decrypt(&f.k, f.iv, "", 0, out, &n), KERR_FORMAT);
		memset(enc, 'A', 500);
		enc[500] = 0;
		for (size_t len = KFORMAT_ENCNAME_MAX - 1; len <= 500; len++)
			assert_int_equal(kformat_name_decrypt(&f.k, f.iv, enc, len, out, &n), KERR_FORMAT);
		/* 32 zero bytes: right shape, fails authentication */
		assert_int_equal(kformat_name_decrypt(&f.k, f.iv, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 43,
						      out, &n),
				 KERR_AUTH);
	}

	/* every character of a real encrypted name replaced, and every truncation */
	assert_int_equal(kformat_name_encrypt(&f.k, f.iv, "report-2024.pdf", 15, good, &l, NULL), 0);
	for (size_t i = 0; i < strlen(good); i++) {
		static const char alt[] = "AB-_z9";

		for (const char *c = alt; *c; c++) {
			char mod[256];

			if (*c == good[i])
				continue;
			memcpy(mod, good, strlen(good) + 1);
			mod[i] = *c;
			kt_check(kformat_name_decrypt(&f.k, f.iv, mod, strlen(mod), out, &n) != 0,
				 "char %zu -> '%c' accepted", i, *c);
		}
	}
	for (size_t len = 0; len < strlen(good); len++)
		kt_check(kformat_name_decrypt(&f.k, f.iv, good, len, out, &n) != 0, "prefix %zu accepted", len);
	/* the declared length is honoured: trailing characters beyond it are ignored */
	{
		char ext[300];

		snprintf(ext, sizeof(ext), "%sAAAA", good);
		assert_int_equal(kformat_name_decrypt(&f.k, f.iv, ext, strlen(good), out, &n), 0);
		assert_string_equal(out, "report-2024.pdf");
		assert_int_not_equal(kformat_name_decrypt(&f.k, f.iv, ext, strlen(ext), out, &n), 0);
	}
}

/* The encoding of a name is unique: a backing name in which one base64url
 * character is replaced by a byte outside the alphabet is refused, not
 * decoded to the same plaintext (which would let a second backing entry,
 * e.g. a long-name entry with its own hash and sidecar, or a second backing
 * xattr, show up under an existing name). Checked with every byte >= 0x80 in
 * place of a '_' in short names, long names, xattr names and symlink targets. */
static void replace_underscore_refused(const char *what, const char *enc,
				       int (*dec)(const struct fx *, const char *, size_t), const struct fx *f)
{
	const char *u = strchr(enc, '_');
	size_t len = strlen(enc);
	char mod[KFORMAT_SYMLINK_MAX + 1]; /* on the stack: a failure here leaks nothing */

	assert_non_null(u);
	assert_true(len < sizeof(mod));
	assert_int_equal(dec(f, enc, len), 0);
	for (int c = 0x80; c < 0x100; c++) {
		memcpy(mod, enc, len + 1);
		mod[u - enc] = (char)c;
		kt_check(dec(f, mod, len) != 0, "%s: '_' at %td replaced by byte 0x%02x decodes to the same plaintext",
			 what, u - enc, c);
	}
}

static int dec_name(const struct fx *f, const char *enc, size_t len)
{
	char out[256];
	size_t n;

	return kformat_name_decrypt(&f->k, f->iv, enc, len, out, &n);
}

static int dec_xattr(const struct fx *f, const char *enc, size_t len)
{
	char out[256];

	(void)len;
	return kformat_xattr_name_decrypt(&f->k, enc, out, sizeof(out));
}

static int dec_symlink(const struct fx *f, const char *enc, size_t len)
{
	struct kformat_geom g;
	char out[256];
	size_t n;

	(void)len;
	assert_int_equal(kformat_geom_init(&g, KSUITE_AES256GCM), 0);
	return kformat_symlink_decrypt(&g, &f->k, enc, out, sizeof(out), &n);
}

static void test_names_non_canonical(void **state)
{
	struct fx f;
	char name[256], backing[256], full[KFORMAT_ENCNAME_MAX], enc[300];
	bool l;
	int i;

	(void)state;
	fx_init(&f);
	/* a short name whose encoding contains '_' */
	for (i = 0;; i++) {
		snprintf(name, sizeof(name), "file-%d.txt", i);
		assert_int_equal(kformat_name_encrypt(&f.k, f.iv, name, strlen(name), backing, &l, NULL), 0);
		if (strchr(backing, '_'))
			break;
	}
	replace_underscore_refused("short name", backing, dec_name, &f);
	/* a long name (the sidecar holds the full encoding) */
	for (i = 0;; i++) {
		memset(name, 'x', 200);
		snprintf(name + 200, 20, "%d", i);
		assert_int_equal(kformat_name_encrypt(&f.k, f.iv, name, strlen(name), backing, &l, full), 0);
		assert_true(l);
		if (strchr(full, '_'))
			break;
	}
	replace_underscore_refused("long name", full, dec_name, &f);
	/* xattr names */
	for (i = 0;; i++) {
		snprintf(name, sizeof(name), "user.attr%d", i);
		assert_int_equal(kformat_xattr_name_encrypt(&f.k, name, enc, sizeof(enc)), 0);
		if (strchr(enc + 9, '_'))
			break;
	}
	replace_underscore_refused("xattr name", enc, dec_xattr, &f);
	/* symlink targets */
	{
		struct kformat_geom g;

		assert_int_equal(kformat_geom_init(&g, KSUITE_AES256GCM), 0);
		for (i = 0;; i++) {
			snprintf(name, sizeof(name), "../target-%d", i);
			assert_int_equal(kformat_symlink_encrypt(&g, &f.k, name, strlen(name), enc, sizeof(enc)), 0);
			if (strchr(enc + 8, '_'))
				break;
		}
		replace_underscore_refused("symlink target", enc, dec_symlink, &f);
	}
}

static void test_entry_classify(void **state)
{
	char b[300];
	static const struct {
		const char *name;
		enum kformat_entry_kind kind;
	} cases[] = {
		{ "kinko.diriv", KFORMAT_ENTRY_INTERNAL },
		{ "kinko.diriv.tmp.0a1b2c3d", KFORMAT_ENTRY_INTERNAL },
		{ "kinko.", KFORMAT_ENTRY_INTERNAL },
		{ "kinko.ln.", KFORMAT_ENTRY_INTERNAL },
		{ "kinko.ln.short", KFORMAT_ENTRY_INTERNAL },
		{ "kinko.ln.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", KFORMAT_ENTRY_LONG },
		{ "kinko.ln.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", KFORMAT_ENTRY_INTERNAL }, /* 44 */
		{ "kinko.ln.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", KFORMAT_ENTRY_INTERNAL },   /* 42 */
		{ "kinko.ln.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+AA", KFORMAT_ENTRY_INTERNAL },
		{ "kinko.ln.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.name", KFORMAT_ENTRY_SIDECAR },
		{ "kinko.ln.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.nam", KFORMAT_ENTRY_INTERNAL },
		{ "kinko.ln.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.names", KFORMAT_ENTRY_INTERNAL },
		{ "kinko.ln.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.name.tmp.01234567",
		  KFORMAT_ENTRY_INTERNAL },
		{ "kinko.ln.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA!AAAAAAAAAAAA.name", KFORMAT_ENTRY_INTERNAL },
		{ "Kinko.diriv", KFORMAT_ENTRY_FOREIGN },
		{ "kinko", KFORMAT_ENTRY_NAME }, /* b64url characters only */
		{ "abcXYZ019-_", KFORMAT_ENTRY_NAME },
		{ "foo.txt", KFORMAT_ENTRY_FOREIGN },
		{ "a b", KFORMAT_ENTRY_FOREIGN },
		{ "a=", KFORMAT_ENTRY_FOREIGN },
		{ "a+b", KFORMAT_ENTRY_FOREIGN },
		{ "\xe6\x97\xa5", KFORMAT_ENTRY_FOREIGN },
		{ "", KFORMAT_ENTRY_FOREIGN },
		{ ".", KFORMAT_ENTRY_FOREIGN },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		kt_check(kformat_entry_classify(cases[i].name) == cases[i].kind, "'%s': %d, expected %d",
			 cases[i].name, kformat_entry_classify(cases[i].name), cases[i].kind);
	/* a real long-name hash in both forms */
	assert_int_equal(kformat_longname_backing(b, "whatever", 8), 0);
	assert_int_equal(kformat_entry_classify(b), KFORMAT_ENTRY_LONG);
	strcat(b, ".name");
	assert_int_equal(kformat_entry_classify(b), KFORMAT_ENTRY_SIDECAR);
	/* the long-name hash depends on the whole name */
	{
		char b1[256], b2[256];

		assert_int_equal(kformat_longname_backing(b1, "whatever", 8), 0);
		assert_int_equal(kformat_longname_backing(b2, "whateveR", 8), 0);
		assert_string_not_equal(b1, b2);
		assert_int_equal(kformat_longname_backing(b2, "whatever", 7), 0);
		assert_string_not_equal(b1, b2);
	}
}

/* ---------------- symlinks ---------------- */

static void test_symlink(void **state)
{
	static const int suites[] = { KSUITE_AES256GCM, KSUITE_XCHACHA20POLY1305 };
	struct fx f;
	char target[4200], enc[KFORMAT_SYMLINK_ENC_MAX + 2], out[4200];
	size_t n;
	uint32_t ep;

	(void)state;
	fx_init(&f);
	for (size_t i = 0; i < sizeof(target); i++)
		target[i] = (char)('a' + i % 26);
	target[5] = '/';
	for (int s = 0; s < 2; s++) {
		struct kformat_geom g, other;
		static const size_t lens[] = { 1, 2, 17, 255, 1024, 2999, 3000, 3001, 4095 };

		assert_int_equal(kformat_geom_init(&g, suites[s]), 0);
		assert_int_equal(kformat_geom_init(&other, suites[1 - s]), 0);
		for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
			size_t tl = lens[li];

			assert_int_equal(kformat_symlink_encrypt(&g, &f.k, target, tl, enc, sizeof(enc)), 0);
			assert_int_equal(strlen(enc), kcrypto_b64url_len(4 + g.overhead + tl));
			assert_true(strlen(enc) <= (tl <= 3000 ? KFORMAT_SYMLINK_MAX : KFORMAT_SYMLINK_ENC_MAX));
			assert_int_equal(kformat_symlink_epoch(enc, &ep), 0);
			assert_int_equal(ep, f.k.epoch);
			memset(out, 0x55, sizeof(out));
			assert_int_equal(kformat_symlink_decrypt(&g, &f.k, enc, out, sizeof(out), &n), 0);
			assert_int_equal(n, tl);
			assert_memory_equal(out, target, tl);
			assert_int_equal(out[tl], 0);
			/* exactly enough room, one byte short */
			assert_int_equal(kformat_symlink_decrypt(&g, &f.k, enc, out, tl + 1, &n), 0);
			assert_int_equal(kformat_symlink_decrypt(&g, &f.k, enc, out, tl, &n), KERR_FORMAT);
			/* other suite */
			assert_int_not_equal(kformat_symlink_decrypt(&other, &f.k, enc, out, sizeof(out), &n), 0);
		}
		/* random nonce: two encryptions differ and both decrypt */
		{
			char e2[200];

			assert_int_equal(kformat_symlink_encrypt(&g, &f.k, "x", 1, enc, sizeof(enc)), 0);
			assert_int_equal(kformat_symlink_encrypt(&g, &f.k, "x", 1, e2, sizeof(e2)), 0);
			assert_string_not_equal(enc, e2);
		}
		/* limits */
		assert_int_equal(kformat_symlink_encrypt(&g, &f.k, target, 0, enc, sizeof(enc)), -ENAMETOOLONG);
		assert_int_equal(kformat_symlink_encrypt(&g, &f.k, target, 4096, enc, sizeof(enc)),
				 -ENAMETOOLONG);
		assert_int_equal(kformat_symlink_encrypt(&g, &f.k, target, 10, enc,
							 kcrypto_b64url_len(4 + g.overhead + 10)),
				 -ENAMETOOLONG);
		assert_int_equal(kformat_symlink_encrypt(&g, &f.k, target, 10, enc,
							 kcrypto_b64url_len(4 + g.overhead + 10) + 1),
				 0);

		/* tamper: every character replaced, every truncation */
		{
			char good[200];

			assert_int_equal(kformat_symlink_encrypt(&g, &f.k, "../target/file", 14, good, sizeof(good)), 0);
			for (size_t i = 0; i < strlen(good); i++) {
				char mod[200];

				memcpy(mod, good, strlen(good) + 1);
				mod[i] = mod[i] == 'B' ? 'C' : 'B';
				kt_check(kformat_symlink_decrypt(&g, &f.k, mod, out, sizeof(out), &n) != 0,
					 "suite %d: char %zu replaced, accepted", suites[s], i);
			}
			for (size_t len = 0; len < strlen(good); len++) {
				char mod[200];

				memcpy(mod, good, len);
				mod[len] = 0;
				kt_check(kformat_symlink_decrypt(&g, &f.k, mod, out, sizeof(out), &n) != 0,
					 "suite %d: truncated to %zu, accepted", suites[s], len);
			}
			/* another epoch's keys: refused (epoch mismatch) */
			{
				struct kformat_epoch_keys k2;

				kt_epoch_keys(&k2, 5, 61);
				assert_int_equal(kformat_symlink_decrypt(&g, &k2, good, out, sizeof(out), &n),
						 KERR_FORMAT);
				kt_epoch_keys(&k2, 4, 77); /* same epoch number, other key */
				assert_int_equal(kformat_symlink_decrypt(&g, &k2, good, out, sizeof(out), &n),
						 KERR_AUTH);
			}
		}
		/* a target with an embedded NUL can be sealed but never comes back */
		assert_int_equal(kformat_symlink_encrypt(&g, &f.k, "ab\0cd", 5, enc, sizeof(enc)), 0);
		assert_int_equal(kformat_symlink_decrypt(&g, &f.k, enc, out, sizeof(out), &n), KERR_FORMAT);
	}
	/* malformed */
	assert_int_equal(kformat_symlink_epoch("", &ep), KERR_FORMAT);
	assert_int_equal(kformat_symlink_epoch("AAAAAAA", &ep), KERR_FORMAT);
	assert_int_equal(kformat_symlink_epoch("AAAA!AAA", &ep), KERR_FORMAT);
	assert_int_equal(kformat_symlink_epoch("BAAAAAAA", &ep), 0);
	assert_int_equal(ep, 4);
	{
		struct kformat_geom g;
		char big[KFORMAT_SYMLINK_MAX + 10];

		assert_int_equal(kformat_geom_init(&g, KSUITE_AES256GCM), 0);
		assert_int_equal(kformat_symlink_decrypt(&g, &f.k, "", out, sizeof(out), &n), KERR_FORMAT);
		assert_int_equal(kformat_symlink_decrypt(&g, &f.k, "!!!!", out, sizeof(out), &n), KERR_FORMAT);
		/* epoch ok, nothing after the tag */
		assert_int_equal(kformat_symlink_decrypt(&g, &f.k, "BAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", out,
							 sizeof(out), &n),
				 KERR_FORMAT);
		memset(big, 'A', sizeof(big));
		big[KFORMAT_SYMLINK_MAX + 1] = 0;
		assert_int_equal(kformat_symlink_decrypt(&g, &f.k, big, out, sizeof(out), &n), KERR_FORMAT);
	}
}

/* long targets: the side file in kinko.lt, its reference, its removal */
static void test_symlink_side_file(void **state)
{
	char dir[] = "/tmp/kinko-lt-XXXXXX", target[4096], enc[KFORMAT_SYMLINK_ENC_MAX + 1],
	     ref[KFORMAT_SYMLINK_MAX + 1], back[KFORMAT_SYMLINK_ENC_MAX + 1], p[KFORMAT_SYMLINK_MAX + 16],
	     bad[64];
	struct kformat_geom g;
	struct kformat_lt_hold h;
	struct stat st;
	struct fx f;
	int cfd;

	(void)state;
	fx_init(&f);
	assert_int_equal(kformat_geom_init(&g, KSUITE_AES256GCM), 0);
	assert_non_null(mkdtemp(dir));
	cfd = open(dir, O_RDONLY | O_DIRECTORY);
	assert_true(cfd >= 0);
	memset(target, 'q', sizeof(target));
	/* short: the backing target is the encoding itself, no side file */
	assert_int_equal(kformat_symlink_encrypt(&g, &f.k, target, 100, enc, sizeof(enc)), 0);
	assert_int_equal(kformat_symlink_store(cfd, ".", enc, ref), 0);
	assert_string_equal(ref, enc);
	assert_false(kformat_symlink_is_ref(ref));
	assert_int_equal(faccessat(cfd, KFORMAT_LT_DIR, F_OK, 0), -1);
	/* long: a reference to a side file holding the encoding */
	assert_int_equal(kformat_symlink_encrypt(&g, &f.k, target, 4095, enc, sizeof(enc)), 0);
	assert_true(strlen(enc) > KFORMAT_SYMLINK_MAX);
	assert_int_equal(kformat_symlink_store(cfd, ".", enc, ref), 0);
	assert_true(kformat_symlink_is_ref(ref));
	assert_int_equal(strlen(ref), KFORMAT_LT_REFLEN);
	assert_true(kformat_lt_name_valid(ref + 9));
	assert_int_equal(kformat_symlink_load(cfd, ".", ref, back), 0);
	assert_string_equal(back, enc);
	snprintf(p, sizeof(p), KFORMAT_LT_DIR "/%s", ref + 9);
	assert_int_equal(fstatat(cfd, p, &st, 0), 0);
	assert_int_equal(st.st_mode & 07777, 0400);
	/* hostile references: bad names, other files, no side file */
	static const char *const refs[] = {
		"kinko.lt:", "kinko.lt:0123", "kinko.lt:../../../../etc/passwd",
		"kinko.lt:0123456789abcdef0123456789ABCDEF", "kinko.lt:0123456789abcdef0123456789abcdef0",
		"kinko.lt:00000000000000000000000000000000",
	};
	for (size_t i = 0; i < sizeof(refs) / sizeof(refs[0]); i++)
		kt_check(kformat_symlink_load(cfd, ".", refs[i], back) == KERR_FORMAT, "%s accepted", refs[i]);
	assert_int_equal(kformat_symlink_load(cfd, ".", "", back), KERR_FORMAT);
	/* a side file under another name (hash mismatch), short, with a NUL, too large */
	{
		static const struct { const char *data; size_t len; } planted[] = {
			{ NULL, 0 }, { "AAAA", 4 }, { NULL, 5000 }, { NULL, KFORMAT_SYMLINK_ENC_MAX + 1 },
		};
		for (size_t i = 0; i < sizeof(planted) / sizeof(planted[0]); i++) {
			char *d = malloc(KFORMAT_SYMLINK_ENC_MAX + 2);
			size_t len = planted[i].data ? planted[i].len : planted[i].len ? planted[i].len : strlen(enc);
			uint8_t hash[32];
			char name[33];

			assert_non_null(d);
			if (planted[i].data)
				memcpy(d, planted[i].data, len);
			else
				memcpy(d, enc, len < strlen(enc) ? len : strlen(enc));
			if (!planted[i].data && len > strlen(enc))
				memset(d + strlen(enc), 'A', len - strlen(enc));
			if (i == 2)
				d[100] = 0; /* a NUL inside, named by its own hash */
			kcrypto_sha256(hash, (const uint8_t *)d, len);
			khex_encode(name, hash, 16);
			if (i == 0)
				name[0] = name[0] == 'a' ? 'b' : 'a'; /* the name of other content */
			snprintf(p, sizeof(p), KFORMAT_LT_DIR "/%s", name);
			assert_int_equal(kfile_create_at(cfd, p, d, len, 0400), 0);
			snprintf(bad, sizeof(bad), KFORMAT_LT_REF "%s", name);
			kt_check(kformat_symlink_load(cfd, ".", bad, back) == KERR_FORMAT, "planted %zu accepted", i);
			kformat_symlink_forget(cfd, ".", bad);
			kt_check(faccessat(cfd, p, F_OK, 0) != 0, "planted %zu not removed", i);
			free(d);
		}
	}
	/* the side file goes with the symlink's last link, not before */
	assert_int_equal(symlinkat(ref, cfd, "l1"), 0);
	assert_int_equal(linkat(cfd, "l1", cfd, "l2", 0), 0);
	snprintf(p, sizeof(p), KFORMAT_LT_DIR "/%s", ref + 9);
	kformat_lt_hold(&h, cfd, "l1", NULL);
	assert_true(h.fd >= 0);
	assert_int_equal(unlinkat(cfd, "l1", 0), 0);
	kformat_lt_release(&h, cfd, ".");
	assert_int_equal(h.fd, -1);
	assert_int_equal(faccessat(cfd, p, F_OK, 0), 0);
	kformat_lt_hold(&h, cfd, "l2", NULL);
	assert_int_equal(unlinkat(cfd, "l2", 0), 0);
	kformat_lt_release(&h, cfd, ".");
	assert_int_equal(faccessat(cfd, p, F_OK, 0), -1);
	/* not a reference: nothing held */
	assert_int_equal(symlinkat("kinko.lt:not-a-reference-of-41-characters", cfd, "l3"), 0);
	kformat_lt_hold(&h, cfd, "l3", NULL);
	assert_int_equal(h.fd, -1);
	kformat_lt_hold(&h, cfd, KFORMAT_LT_DIR, NULL);
	assert_int_equal(h.fd, -1);
	assert_int_equal(unlinkat(cfd, "l3", 0), 0);
	assert_int_equal(unlinkat(cfd, KFORMAT_LT_DIR, AT_REMOVEDIR), 0);
	close(cfd);
	assert_int_equal(rmdir(dir), 0);
}

/* ---------------- xattrs ---------------- */

static void test_xattr_names(void **state)
{
	struct fx f;
	char enc[300], out[256], name[256];
	uint32_t ep;

	(void)state;
	fx_init(&f);
	for (size_t len = 1; len <= 159; len++) {
		for (size_t i = 0; i < len; i++)
			name[i] = (char)('a' + (i + len) % 26);
		name[len] = 0;
		assert_int_equal(kformat_xattr_name_encrypt(&f.k, name, enc, sizeof(enc)), 0);
		assert_true(strlen(enc) <= 255);
		assert_int_equal(strncmp(enc, "user.kk4.", 9), 0);
		assert_int_equal(kformat_xattr_name_epoch(enc, &ep), 0);
		assert_int_equal(ep, 4);
		memset(out, 0x55, sizeof(out));
		assert_int_equal(kformat_xattr_name_decrypt(&f.k, enc, out, sizeof(out)), 0);
		assert_string_equal(out, name);
	}
	/* deterministic */
	{
		char e2[300];

		assert_int_equal(kformat_xattr_name_encrypt(&f.k, "user.comment", enc, sizeof(enc)), 0);
		assert_int_equal(kformat_xattr_name_encrypt(&f.k, "user.comment", e2, sizeof(e2)), 0);
		assert_string_equal(enc, e2);
		/* out buffer exactly large enough / one short */
		assert_int_equal(kformat_xattr_name_decrypt(&f.k, enc, out, 13), 0);
		assert_int_equal(kformat_xattr_name_decrypt(&f.k, enc, out, 12), KERR_FORMAT);
		/* tamper */
		for (size_t i = 9; i < strlen(enc); i++) {
			memcpy(e2, enc, strlen(enc) + 1);
			e2[i] = e2[i] == 'B' ? 'C' : 'B';
			kt_check(kformat_xattr_name_decrypt(&f.k, e2, out, sizeof(out)) != 0, "char %zu", i);
		}
		{
			struct kformat_epoch_keys k2;

			kt_epoch_keys(&k2, 4, 78);
			assert_int_equal(kformat_xattr_name_decrypt(&k2, enc, out, sizeof(out)), KERR_AUTH);
		}
	}
	/* too long for one backing xattr name, and empty */
	memset(name, 'n', 200);
	name[160] = 0;
	assert_int_equal(kformat_xattr_name_encrypt(&f.k, name, enc, sizeof(enc)), -ERANGE);
	name[201] = 0;
	name[200] = 'n';
	assert_int_equal(kformat_xattr_name_encrypt(&f.k, name, enc, sizeof(enc)), -ERANGE);
	assert_int_equal(kformat_xattr_name_encrypt(&f.k, "", enc, sizeof(enc)), -ERANGE);
	assert_int_equal(kformat_xattr_name_encrypt(&f.k, "user.x", enc, 5), -ERANGE);
	assert_int_equal(kformat_xattr_name_encrypt(&f.k, "user.x", enc, 20), -ENAMETOOLONG);

	/* epoch parsing */
	assert_int_equal(kformat_xattr_name_epoch("user.kk0.x", &ep), 0);
	assert_int_equal(ep, 0);
	assert_int_equal(kformat_xattr_name_epoch("user.kk4294967295.x", &ep), 0);
	assert_true(ep == UINT32_MAX);
	{
		static const char *const bad[] = { "user.kk4294967296.x", "user.kk99999999999999999999.x",
						   "user.kk.x", "user.kk", "user.kkx.y", "user.kk1", "user.kk1x.y",
						   "user.k1.x", "user.other", "trusted.kk1.x", "", "user.kk-1.x",
						   "user.kk+1.x", "user.kk 1.x" };

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
			kt_check(kformat_xattr_name_epoch(bad[i], &ep) == KERR_FORMAT, "'%s' parsed", bad[i]);
	}
	/* malformed backing names for decrypt */
	{
		static const char *const bad[] = { "user", "user.kk4", "user.kk4.", "user.kk4.!!!!",
						   "user.kk4.AAAAAAAAAAAAAAAAAAAAAA", /* tag only */
						   "user.kk4.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" };

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
			kt_check(kformat_xattr_name_decrypt(&f.k, bad[i], out, sizeof(out)) != 0, "'%s'", bad[i]);
	}
}

static void test_xattr_values(void **state)
{
	static const int suites[] = { KSUITE_AES256GCM, KSUITE_XCHACHA20POLY1305 };
	struct fx f;
	uint8_t v[1000], ct[1000 + 64], back[1000 + 64];

	(void)state;
	fx_init(&f);
	kt_fill(v, sizeof(v), 71);
	for (int s = 0; s < 2; s++) {
		struct kformat_geom g;
		static const size_t lens[] = { 0, 1, 16, 999 };

		assert_int_equal(kformat_geom_init(&g, suites[s]), 0);
		assert_int_equal(kformat_xattr_value_overhead(&g), g.overhead);
		for (size_t li = 0; li < 4; li++) {
			size_t n = lens[li], cl = n + g.overhead;

			memset(ct, 0xc5, sizeof(ct));
			assert_int_equal(kformat_xattr_value_encrypt(&g, &f.k, "user.kk4.AAAA", v, n, ct), 0);
			for (size_t i = cl; i < sizeof(ct); i++)
				kt_check(ct[i] == 0xc5, "wrote past %zu", cl);
			assert_int_equal(kformat_xattr_value_decrypt(&g, &f.k, "user.kk4.AAAA", ct, cl, back), 0);
			assert_memory_equal(back, v, n);
			/* bound to its (backing) name */
			assert_int_equal(kformat_xattr_value_decrypt(&g, &f.k, "user.kk4.AAAB", ct, cl, back), KERR_AUTH);
			assert_int_equal(kformat_xattr_value_decrypt(&g, &f.k, "user.kk4.AAA", ct, cl, back), KERR_AUTH);
			/* every bit */
			for (size_t bit = 0; bit < cl * 8; bit += (n > 100 ? 13 : 1)) {
				ct[bit / 8] ^= (uint8_t)(1u << (bit % 8));
				kt_check(kformat_xattr_value_decrypt(&g, &f.k, "user.kk4.AAAA", ct, cl, back) ==
						 KERR_AUTH,
					 "suite %d len %zu bit %zu", suites[s], n, bit);
				ct[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			}
			if (cl > g.overhead)
				assert_int_equal(kformat_xattr_value_decrypt(&g, &f.k, "user.kk4.AAAA", ct, cl - 1, back),
						 KERR_AUTH);
		}
		for (size_t n = 0; n < g.overhead; n++)
			assert_int_equal(kformat_xattr_value_decrypt(&g, &f.k, "n", ct, n, back), KERR_FORMAT);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names_ascii),
		cmocka_unit_test(test_names_japanese),
		cmocka_unit_test(test_names_limits_invalid),
		cmocka_unit_test(test_names_deterministic),
		cmocka_unit_test(test_names_decrypt_errors),
		cmocka_unit_test(test_names_non_canonical),
		cmocka_unit_test(test_entry_classify),
		cmocka_unit_test(test_symlink),
		cmocka_unit_test(test_symlink_side_file),
		cmocka_unit_test(test_xattr_names),
		cmocka_unit_test(test_xattr_values),
	};

	return cmocka_run_group_tests_name("names", tests, kt_group_setup, NULL);
}

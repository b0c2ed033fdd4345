// SPDX-License-Identifier: GPL-2.0-or-later
/* Writes the seed corpora of the fuzz harnesses (tests/fuzz/) into
 * OUTDIR/<parser>/: a few valid-* samples made with the fixed keys of
 * tests/fuzz/fuzz_common.c (so they authenticate) and a few corrupt-* ones.
 * Built by tests/fuzz/meson.build as gen_fuzz_corpus (not by default):
 *
 *   ninja -C BUILD tests/fuzz/gen_fuzz_corpus
 *   BUILD/tests/fuzz/gen_fuzz_corpus tests/vectors/fuzz
 *
 * Samples with random nonces (blocks, symlinks, sealed boxes) differ from run
 * to run; everything else is byte-for-byte reproducible. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "../fuzz/fuzz_common.h"

static const char *outdir;

static void die(const char *what)
{
	fprintf(stderr, "gen_fuzz_corpus: %s\n", what);
	exit(1);
}

#define CHECK(x)                        \
	do {                            \
		if ((x) != 0)           \
			die(#x);        \
	} while (0)

static void put(const char *parser, const char *name, const void *data, size_t len)
{
	char dir[1024], path[1200];
	int fd;

	snprintf(dir, sizeof(dir), "%s/%s", outdir, parser);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		die(dir);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || kwrite_all(fd, data, len) != 0 || close(fd) != 0)
		die(path);
}

static void put_flipped(const char *parser, const char *name, const uint8_t *data, size_t len, size_t at)
{
	uint8_t *c = malloc(len);

	if (!c)
		die("malloc");
	memcpy(c, data, len);
	c[at] ^= 0x01;
	put(parser, name, c, len);
	free(c);
}

/* ---- regular files: header + blocks ---- */

static size_t make_file(uint8_t *out, int suite, uint16_t flags, size_t plen)
{
	struct kformat_geom g;
	struct kformat_fhdr h;
	uint8_t fkey[32], pt[KFORMAT_BS];
	size_t off = KFORMAT_FHDR_LEN;
	uint64_t nb = kformat_nblocks(plen);

	CHECK(kformat_geom_init(&g, suite));
	memset(&h, 0, sizeof(h));
	h.suite = (uint8_t)suite;
	h.flags = flags;
	h.epoch = FUZZ_EPOCH;
	fuzz_fill(h.file_id, 16, 100 + (uint32_t)plen);
	if (!(flags & KFORMAT_FHDR_LINKED))
		CHECK(kformat_binding(h.bind, fz.dir_iv, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
	CHECK(kformat_fhdr_serialize(&h, &fz.ek, out));
	CHECK(kformat_file_key(fkey, &fz.ek, h.file_id));
	for (uint64_t b = 0; b < nb; b++) {
		size_t n = plen - b * KFORMAT_BS < KFORMAT_BS ? plen - b * KFORMAT_BS : KFORMAT_BS;

		memset(pt, 'a' + (int)b, n);
		CHECK(kformat_block_seal(&g, fkey, h.file_id, b, b == nb - 1, pt, n, out + off));
		off += n + g.overhead;
	}
	return off;
}

static void gen_fhdr(void)
{
	static uint8_t f[KFORMAT_FHDR_LEN + 3 * (KFORMAT_BS + 40)];
	size_t n;

	n = make_file(f, KSUITE_AES256GCM, 0, 1);
	put("fhdr", "valid-gcm-1byte.bin", f, n);
	put_flipped("fhdr", "corrupt-gcm-1byte-tag.bin", f, n, n - 1);
	put("fhdr", "corrupt-header-only.bin", f, KFORMAT_FHDR_LEN);
	put("fhdr", "corrupt-cut-in-tag.bin", f, n - 3);
	n = make_file(f, KSUITE_AES256GCM, 0, KFORMAT_BS + 100);
	put("fhdr", "valid-gcm-2blocks.bin", f, n);
	put_flipped("fhdr", "corrupt-header-mac.bin", f, n, 70);
	n = make_file(f, KSUITE_XCHACHA20POLY1305, KFORMAT_FHDR_LINKED, 2 * KFORMAT_BS);
	put("fhdr", "valid-xchacha-linked-2full.bin", f, n);
	/* the last block cut off at a block boundary: block 0 is not marked last */
	put("fhdr", "corrupt-xchacha-last-block-dropped.bin", f, n - (KFORMAT_BS + 40));
	f[2] = 2; /* version 2 */
	put("fhdr", "corrupt-version2.bin", f, n);
}

static void gen_diriv(void)
{
	struct kformat_diriv d;
	uint8_t b[KFORMAT_DIRIV_LEN];
	char hex[33];

	memset(&d, 0, sizeof(d));
	d.epoch = FUZZ_EPOCH;
	memcpy(d.iv, fz.dir_iv, 16);
	/* the top directory of a compartment: bound to the compartment id */
	khex_encode(hex, fz.comp_id, 16);
	CHECK(kformat_binding(d.bind, fz.comp_id, hex));
	CHECK(kformat_diriv_serialize(&d, &fz.ek, b));
	put("diriv", "valid-top.bin", b, sizeof(b));
	put_flipped("diriv", "corrupt-mac.bin", b, sizeof(b), 60);
	put_flipped("diriv", "corrupt-iv.bin", b, sizeof(b), 9);
	put("diriv", "corrupt-short.bin", b, sizeof(b) - 1);
	fuzz_fill(d.iv, 16, 200);
	CHECK(kformat_binding(d.bind, fz.dir_iv, "BBBBBBBBBBBBBBBBBBBBBB"));
	CHECK(kformat_diriv_serialize(&d, &fz.ek, b));
	put("diriv", "valid-sub.bin", b, sizeof(b));
	b[2] = 9;
	put("diriv", "corrupt-version9.bin", b, sizeof(b));
}

static void gen_vault(void)
{
	struct kformat_vault v;
	uint8_t b[KFORMAT_VAULT_LEN + 1];

	memset(&v, 0, sizeof(v));
	memcpy(v.vault_id, fz.vault_id, 16);
	v.suite = KSUITE_AES256GCM;
	memcpy(v.root_pk, fz.root_pk, 32);
	v.created = 1700000000;
	CHECK(kformat_vault_serialize(&v, fz.root_sk, b));
	put("vault", "valid-gcm.bin", b, KFORMAT_VAULT_LEN);
	put_flipped("vault", "corrupt-signature.bin", b, KFORMAT_VAULT_LEN, 100);
	put_flipped("vault", "corrupt-created.bin", b, KFORMAT_VAULT_LEN, 70);
	b[KFORMAT_VAULT_LEN] = 0;
	put("vault", "corrupt-trailing.bin", b, KFORMAT_VAULT_LEN + 1);
	v.suite = KSUITE_XCHACHA20POLY1305;
	CHECK(kformat_vault_serialize(&v, fz.root_sk, b));
	put("vault", "valid-xchacha.bin", b, KFORMAT_VAULT_LEN);
	b[12] = 1; /* a feature flag */
	put("vault", "corrupt-feature.bin", b, KFORMAT_VAULT_LEN);
}

static void gen_keyfile(void)
{
	static const char *const names[] = { "valid-plain.bin", "valid-enrolment.bin", "valid-cert.bin" };
	uint8_t cert[64], factor[48], secret[KFORMAT_KEY_SECRET_LEN];

	fuzz_fill(cert, sizeof(cert), 300);
	fuzz_fill(factor, sizeof(factor), 301);
	fuzz_fill(secret, sizeof(secret), 302);
	for (int kind = 0; kind < 3; kind++) {
		struct kformat_keyfile kf;
		struct kbuf b;

		memset(&kf, 0, sizeof(kf));
		memcpy(kf.vault_id, fz.vault_id, 16);
		memcpy(kf.root_pk, fz.root_pk, 32);
		snprintf(kf.user, sizeof(kf.user), "%s", FUZZ_USER);
		memcpy(kf.box_pk, fz.box_pk, 32);
		memcpy(kf.sign_pk, fz.admin_pk, 32);
		kf.kdf_alg = KFORMAT_KDF_ARGON2ID;
		kf.m_kib = KCRYPTO_ARGON2_DEF_MKIB;
		kf.t_cost = KCRYPTO_ARGON2_DEF_T;
		kf.p_cost = KCRYPTO_ARGON2_DEF_P;
		fuzz_fill(kf.salt, 16, 303);
		fuzz_fill(kf.nonce, 24, 304);
		kf.pw_changed = 1700000000;
		kf.enrolment = kind == 1;
		if (kind == 2) {
			kf.cert = cert;
			kf.certlen = sizeof(cert);
			kf.factor = factor;
			kf.factorlen = sizeof(factor);
		}
		kbuf_init_writer(&b);
		CHECK(kformat_keyfile_serialize_ad(&kf, &b));
		CHECK(kcrypto_wrap(fz.kek, kf.nonce, b.p, b.len, secret, sizeof(secret), kf.wrapped));
		CHECK(kformat_keyfile_serialize_tail(&kf, &b));
		put("keyfile", names[kind], b.p, b.len);
		if (kind == 0) {
			put_flipped("keyfile", "corrupt-kdf-m.bin", b.p, b.len, 126 + strlen(FUZZ_USER));
			put_flipped("keyfile", "corrupt-wrapped.bin", b.p, b.len, b.len - 5);
			put("keyfile", "corrupt-truncated.bin", b.p, b.len - 1);
		}
		if (kind == 2)
			put_flipped("keyfile", "corrupt-cert.bin", b.p, b.len, 180);
		kbuf_free(&b);
	}
}

static void gen_grant(void)
{
	struct kformat_grant g;
	struct kbuf b;

	memset(&g, 0, sizeof(g));
	memcpy(g.vault_id, fz.vault_id, 16);
	memcpy(g.comp_id, fz.comp_id, 16);
	g.epoch = FUZZ_EPOCH;
	snprintf(g.user, sizeof(g.user), "%s", FUZZ_USER);
	CHECK(kformat_epoch_commitment(g.commitment, fz.epoch_key, fz.vault_id, fz.comp_id, FUZZ_EPOCH));
	CHECK(kcrypto_seal(g.sealed, fz.epoch_key, 32, fz.box_pk));
	kbuf_init_writer(&b);
	CHECK(kformat_grant_serialize(&g, &b));
	put("grant", "valid.bin", b.p, b.len);
	put_flipped("grant", "corrupt-sealed.bin", b.p, b.len, b.len - 20);
	put_flipped("grant", "corrupt-commitment.bin", b.p, b.len, 60);
	CHECK(kbuf_put_u8(&b, 0));
	put("grant", "corrupt-trailing.bin", b.p, b.len);
	kbuf_free(&b);
}

static struct kpolicy *sample_policy(void)
{
	struct kpolicy *p = kpolicy_new(fz.vault_id);
	struct kpolicy_user u;
	struct kpolicy_comp *c;
	uint8_t cm[32];

	if (!p)
		die("kpolicy_new");
	p->serial = 3;
	p->updated = 1700000000;
	snprintf(p->updated_by, sizeof(p->updated_by), FUZZ_ADMIN);
	memset(&u, 0, sizeof(u));
	snprintf(u.id, sizeof(u.id), FUZZ_ADMIN);
	u.role = KROLE_ADMIN;
	u.active = true;
	u.name = (char *)"\xe7\xae\xa1\xe7\x90\x86\xe8\x80\x85"; /* 管理者 */
	u.dept = (char *)"IT";
	u.contact = (char *)"";
	memcpy(u.sign_pk, fz.admin_pk, 32);
	fuzz_fill(u.box_pk, 32, 400);
	u.created = u.password_changed = 1700000000;
	CHECK(kpolicy_user_add(p, &u));
	snprintf(u.id, sizeof(u.id), FUZZ_USER);
	u.role = KROLE_STAFF;
	u.name = (char *)"Alice";
	memcpy(u.box_pk, fz.box_pk, 32);
	u.unlock_gen = 2;
	u.has_cert = true;
	fuzz_fill(u.cert_sha256, 32, 401);
	CHECK(kpolicy_user_add(p, &u));
	CHECK(kpolicy_comp_add(p, fz.comp_id, "main", KCLASS_HIMITSU));
	c = kpolicy_comp_find(p, fz.comp_id);
	fuzz_fill(cm, 32, 402);
	CHECK(kpolicy_epoch_add(c, 1, cm, 1690000000));
	CHECK(kformat_epoch_commitment(cm, fz.epoch_key, fz.vault_id, fz.comp_id, FUZZ_EPOCH));
	CHECK(kpolicy_epoch_add(c, FUZZ_EPOCH, cm, 1700000000));
	CHECK(kpolicy_grant_set(p, FUZZ_USER, fz.comp_id, false));
	CHECK(kpolicy_grant_set(p, FUZZ_ADMIN, fz.comp_id, true));
	json_object_set_new(p->settings, "password.min_length", json_integer(10));
	return p;
}

static void gen_policy(void)
{
	struct kpolicy *p = sample_policy();
	struct kbuf b;
	char *body;
	size_t blen;

	CHECK(kpolicy_to_json(p, &body, &blen));
	put("policy", "valid-body.json", body, blen);
	kbuf_init_writer(&b);
	CHECK(kformat_policy_serialize(fz.vault_id, 3, body, blen, FUZZ_ADMIN, fz.admin_sk, fz.root_sk, &b));
	put("policy", "valid-envelope.bin", b.p, b.len);
	put_flipped("policy", "corrupt-envelope-body.bin", b.p, b.len, 60);
	put_flipped("policy", "corrupt-envelope-rootsig.bin", b.p, b.len, b.len - 1);
	kbuf_free(&b);
	/* a body that is JSON but not a policy: a grant naming an unknown user */
	{
		char *bad = strdup(body), *at;

		if (!bad)
			die("strdup");
		at = strstr(bad, "\"user\": \"" FUZZ_USER "\"");
		if (!at)
			die("sample body layout");
		memcpy(at + 9, "bobby", 5);
		put("policy", "corrupt-body-unknown-user.json", bad, blen);
		free(bad);
	}
	put("policy", "corrupt-body-truncated.json", body, blen / 2);
	free(body);
	kpolicy_free(p);
}

/* the first encoding with a '_', that '_' replaced by 0xff: a base64url
 * decoder must refuse it (kinko-format(5)); libsodium 1.0.18 reads it as '_' */
static void put_high_byte(const char *parser, const char *file, const char *enc, size_t skip)
{
	char *mod = strdup(enc), *u;

	if (!mod || !(u = strchr(mod + skip, '_')))
		die("no '_' to replace");
	*u = (char)0xff;
	put(parser, file, mod, strlen(mod));
	free(mod);
}

static void gen_names(void)
{
	static const char *const samples[][2] = {
		{ "valid-short.txt", "report-2024.pdf" },
		{ "valid-japanese.txt", "\xe5\xb9\xb4\xe6\xac\xa1\xe5\xa0\xb1\xe5\x91\x8a.docx" }, /* 年次報告 */
		{ "valid-16.txt", "0123456789abcdef" },
	};
	char backing[256], full[KFORMAT_ENCNAME_MAX], longname[256];
	bool is_long;

	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		CHECK(kformat_name_encrypt(&fz.ek, fz.dir_iv, samples[i][1], strlen(samples[i][1]), backing,
					   &is_long, full));
		put("name", samples[i][0], backing, strlen(backing));
		if (i == 0) {
			put_flipped("name", "corrupt-char.txt", (const uint8_t *)backing, strlen(backing), 5);
			put("name", "corrupt-truncated.txt", backing, strlen(backing) - 1);
		}
	}
	memset(longname, 'L', 255);
	CHECK(kformat_name_encrypt(&fz.ek, fz.dir_iv, longname, 255, backing, &is_long, full));
	if (!is_long)
		die("255-byte name is not long");
	put("name", "valid-long-full.txt", full, strlen(full));
	put("name", "corrupt-long-backing.txt", backing, strlen(backing));
	put("name", "corrupt-garbage.txt", "not/base64==", 12);
	for (int i = 0;; i++) {
		char nm[32];

		snprintf(nm, sizeof(nm), "file-%d.txt", i);
		CHECK(kformat_name_encrypt(&fz.ek, fz.dir_iv, nm, strlen(nm), backing, &is_long, full));
		if (strchr(backing, '_'))
			break;
	}
	put_high_byte("name", "corrupt-high-byte-for-underscore.txt", backing, 0);
}

static void gen_symlinks(void)
{
	char enc[KFORMAT_SYMLINK_ENC_MAX + 1], longt[KFORMAT_SYMLINK_TARGET_MAX];
	struct kformat_epoch_keys other;
	uint8_t ek[32];

	CHECK(kformat_symlink_encrypt(&fz.gcm, &fz.ek, "../shared/target.txt", 20, enc, sizeof(enc)));
	put("symlink", "valid-gcm.txt", enc, strlen(enc));
	put_flipped("symlink", "corrupt-gcm-char.txt", (const uint8_t *)enc, strlen(enc), 20);
	CHECK(kformat_symlink_encrypt(&fz.xchacha, &fz.ek, "/abs/\xe6\x97\xa5\xe6\x9c\xac", 11, enc, sizeof(enc)));
	put("symlink", "valid-xchacha.txt", enc, strlen(enc));
	fuzz_fill(ek, 32, 500);
	CHECK(kformat_epoch_keys_derive(&other, FUZZ_EPOCH + 1, ek));
	CHECK(kformat_symlink_encrypt(&fz.gcm, &other, "elsewhere", 9, enc, sizeof(enc)));
	put("symlink", "corrupt-other-epoch.txt", enc, strlen(enc));
	for (int i = 0;; i++) {
		char t[32];

		snprintf(t, sizeof(t), "../target-%d", i);
		CHECK(kformat_symlink_encrypt(&fz.gcm, &fz.ek, t, strlen(t), enc, sizeof(enc)));
		if (strchr(enc + 8, '_'))
			break;
	}
	put_high_byte("symlink", "corrupt-high-byte-for-underscore.txt", enc, 8);
	/* the longest target: its encoding is what a side file in kinko.lt holds */
	memset(longt, 'z', sizeof(longt));
	CHECK(kformat_symlink_encrypt(&fz.gcm, &fz.ek, longt, sizeof(longt), enc, sizeof(enc)));
	put("symlink", "valid-longest-gcm.txt", enc, strlen(enc));
}

static void gen_xattrs(void)
{
	char name[300];
	uint8_t v[64 + 40];

	CHECK(kformat_xattr_name_encrypt(&fz.ek, "user.comment", name, sizeof(name)));
	put("xattr", "valid-name.txt", name, strlen(name));
	put_flipped("xattr", "corrupt-name.txt", (const uint8_t *)name, strlen(name), strlen(name) - 3);
	CHECK(kformat_xattr_value_encrypt(&fz.gcm, &fz.ek, FUZZ_XATTR_BACKING, (const uint8_t *)"hello", 5, v));
	put("xattr", "valid-value-gcm.bin", v, 5 + fz.gcm.overhead);
	put_flipped("xattr", "corrupt-value-gcm.bin", v, 5 + fz.gcm.overhead, 14);
	CHECK(kformat_xattr_value_encrypt(&fz.xchacha, &fz.ek, FUZZ_XATTR_BACKING, (const uint8_t *)"", 0, v));
	put("xattr", "valid-value-xchacha-empty.bin", v, fz.xchacha.overhead);
	for (int i = 0;; i++) {
		char nm[32];

		snprintf(nm, sizeof(nm), "user.attr%d", i);
		CHECK(kformat_xattr_name_encrypt(&fz.ek, nm, name, sizeof(name)));
		if (strchr(name + 9, '_'))
			break;
	}
	put_high_byte("xattr", "corrupt-name-high-byte-for-underscore.txt", name, 9);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s OUTDIR (tests/vectors/fuzz)\n", argv[0]);
		return 2;
	}
	outdir = argv[1];
	if (mkdir(outdir, 0755) < 0 && errno != EEXIST)
		die(outdir);
	fuzz_init();
	gen_fhdr();
	gen_diriv();
	gen_vault();
	gen_keyfile();
	gen_grant();
	gen_policy();
	gen_names();
	gen_symlinks();
	gen_xattrs();
	return 0;
}

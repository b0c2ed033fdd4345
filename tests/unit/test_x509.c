// SPDX-License-Identifier: GPL-2.0-or-later
/* x509: the second factor. Fixtures (two CAs, a CA with the real CA's name
 * but another key, a short-lived CA, RSA-2048 / P-256 / P-384 / X25519 /
 * Ed25519 / RSA-1024 user certificates, expired and not-yet-valid ones,
 * PKCS#12 bundles, encrypted PEM keys) are made at test time by
 * tests/vectors/x509/gen_fixtures.sh with the openssl command-line tool, in a
 * mkdtemp directory, with explicit validity dates so `now` can be chosen.
 *
 * Covered: certificate loading (PEM, DER, errors), fingerprints against the
 * openssl tool, verification (ok, expired, not yet valid, foreign CA, CA
 * expired, key usage, the `now` boundary seconds, each with its reason text),
 * seal/open round trips for every key type and container, wrong keys and
 * passwords, every byte flip / truncation / extension of the blob, describe(). */
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>

#include "kt.h"
#include "kinko/x509.h"

#ifndef KT_X509_GEN
#define KT_X509_GEN "tests/vectors/x509/gen_fixtures.sh"
#endif

#define ALG_RSA 1
#define ALG_P256 2
#define ALG_P384 3
#define ALG_X25519 4

static char fxdir[64];

/* path of a fixture file (a few rotating buffers: usable several times in one call) */
static const char *fx(const char *name)
{
	static char bufs[8][320];
	static unsigned next;
	char *b = bufs[next++ % 8];

	snprintf(b, sizeof(bufs[0]), "%s/%s", fxdir, name);
	return b;
}

static int64_t T(const char *s)
{
	int64_t t = 0;

	assert_int_equal(ktime_parse(s, &t), 0);
	return t;
}

static int group_setup(void **state)
{
	const char *gen = getenv("KINKO_X509_GEN") ? getenv("KINKO_X509_GEN") : KT_X509_GEN;
	char cmd[1024];

	(void)state;
	if (kcrypto_init() != 0)
		return -1;
	snprintf(fxdir, sizeof(fxdir), "/tmp/kinko-x509-XXXXXX");
	if (!mkdtemp(fxdir))
		return -1;
	snprintf(cmd, sizeof(cmd), "sh '%s' '%s'", gen, fxdir);
	if (system(cmd) != 0) {
		fprintf(stderr, "fixture generation failed: %s\n", cmd);
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	char cmd[256];

	(void)state;
	if (fxdir[0] && !getenv("KINKO_X509_KEEP")) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fxdir);
		if (system(cmd) != 0)
			return -1;
	}
	return 0;
}

/* every call leaves the thread's OpenSSL error queue empty */
static void no_ossl_errors(void)
{
	kt_check(ERR_peek_error() == 0, "OpenSSL error left in the queue: %lu", ERR_peek_error());
}

static void load(const char *name, uint8_t **der, size_t *len)
{
	struct kerrinfo ei;

	memset(&ei, 0, sizeof(ei));
	kt_check(kx509_cert_load(fx(name), der, len, &ei) == 0, "load %s: %s", name, ei.detail);
	assert_non_null(*der);
	assert_true(*len > 100 && *len <= KX509_MAX_DER);
	no_ossl_errors();
}

static void write_file(const char *path, const void *d, size_t n)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(d, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

/* ---------------- loading ---------------- */

static void test_cert_load(void **state)
{
	struct kerrinfo ei;
	uint8_t *pem = NULL, *der = NULL, *comb = NULL, *x = NULL, fp[32];
	size_t pemlen, derlen, comblen, xlen = 0;
	char hex[65], line[256], want[65] = "", *eq;
	FILE *p;
	size_t o = 0;

	(void)state;
	load("rsa.pem", &pem, &pemlen);
	load("rsa.der", &der, &derlen);
	/* PEM and DER of one certificate: the same DER bytes */
	assert_int_equal(pemlen, derlen);
	assert_memory_equal(pem, der, derlen);
	/* a PEM file with the certificate followed by its key */
	load("ec_combined.pem", &comb, &comblen);
	free(x);
	load("ec.pem", &x, &xlen);
	assert_int_equal(comblen, xlen);
	assert_memory_equal(comb, x, xlen);

	/* fingerprint = SHA-256 of the DER, as the openssl tool computes it */
	kx509_fingerprint(pem, pemlen, fp);
	khex_encode(hex, fp, 32);
	snprintf(line, sizeof(line), "openssl x509 -in '%s' -noout -fingerprint -sha256", fx("rsa.pem"));
	p = popen(line, "r");
	assert_non_null(p);
	assert_non_null(fgets(line, sizeof(line), p));
	assert_int_equal(pclose(p), 0);
	eq = strchr(line, '=');
	assert_non_null(eq);
	for (eq++; *eq && *eq != '\n' && o < 64; eq++)
		if (*eq != ':')
			want[o++] = *eq;
	want[o] = 0;
	assert_int_equal(strlen(want), 64);
	kt_check(strcasecmp(hex, want) == 0, "fingerprint %s, openssl says %s", hex, want);

	/* errors: missing, not a certificate, empty, directory, trailing garbage */
	memset(&ei, 0, sizeof(ei));
	free(x);
	x = NULL;
	assert_int_equal(kx509_cert_load(fx("nonexistent.pem"), &x, &xlen, &ei), -ENOENT);
	assert_null(x);
	assert_string_equal(ei.file, fx("nonexistent.pem"));
	assert_int_equal(kx509_cert_load(fx("ec.key"), &x, &xlen, &ei), KERR_FORMAT);
	assert_null(x);
	assert_string_equal(ei.file, fx("ec.key"));
	assert_int_equal(kx509_cert_load(fx("ec.key.der"), &x, &xlen, &ei), KERR_FORMAT);
	assert_int_equal(kx509_cert_load(fx("empty.key"), &x, &xlen, &ei), KERR_FORMAT);
	assert_int_equal(kx509_cert_load(fxdir, &x, &xlen, &ei), -EISDIR);
	{
		uint8_t *longer = malloc(derlen + 1);

		assert_non_null(longer);
		memcpy(longer, der, derlen);
		longer[derlen] = 0;
		write_file(fx("trailing.der"), longer, derlen + 1);
		assert_int_equal(kx509_cert_load(fx("trailing.der"), &x, &xlen, &ei), KERR_FORMAT);
		write_file(fx("short.der"), der, derlen - 1);
		assert_int_equal(kx509_cert_load(fx("short.der"), &x, &xlen, &ei), KERR_FORMAT);
		free(longer);
	}
	assert_null(x);
	no_ossl_errors();
	free(pem);
	free(der);
	free(comb);
}

/* ---------------- verification ---------------- */

struct vcase {
	const char *cert, *ca, *when;
	int expect;
	const char *detail; /* exact text, or a prefix when it ends in '*' */
};

static void run_vcases(const struct vcase *vc, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct kerrinfo ei;
		uint8_t *c = NULL, *ca = NULL;
		size_t cl, cal, dl;
		int r;

		load(vc[i].cert, &c, &cl);
		load(vc[i].ca, &ca, &cal);
		memset(&ei, 0, sizeof(ei));
		r = kx509_verify(c, cl, ca, cal, T(vc[i].when), &ei);
		kt_check(r == vc[i].expect, "%s against %s at %s: r=%d (%s), want %d", vc[i].cert, vc[i].ca,
			 vc[i].when, r, ei.detail, vc[i].expect);
		if (vc[i].detail) {
			dl = strlen(vc[i].detail);
			if (dl && vc[i].detail[dl - 1] == '*')
				kt_check(strncmp(ei.detail, vc[i].detail, dl - 1) == 0,
					 "%s at %s: detail '%s', want '%s'", vc[i].cert, vc[i].when, ei.detail,
					 vc[i].detail);
			else
				kt_check(strcmp(ei.detail, vc[i].detail) == 0, "%s at %s: detail '%s', want '%s'",
					 vc[i].cert, vc[i].when, ei.detail, vc[i].detail);
			/* the caller names the file: verify leaves it empty */
			kt_check(ei.file[0] == 0, "file set to '%s'", ei.file);
		}
		no_ossl_errors();
		free(c);
		free(ca);
	}
}

static void test_verify_ok(void **state)
{
	static const struct vcase vc[] = {
		{ "rsa.pem", "ca.pem", "2026-06-01", 0, NULL },
		{ "ec.pem", "ca.pem", "2026-06-01", 0, NULL },
		{ "p384.pem", "ca.pem", "2026-06-01", 0, NULL },
		{ "odd.pem", "ca.pem", "2026-06-01", 0, NULL },
		{ "ka.pem", "ca.pem", "2026-06-01", 0, NULL },     /* keyAgreement only, EC */
		{ "noku.pem", "ca.pem", "2026-06-01", 0, NULL },   /* no key usage extension */
		{ "nocn.pem", "ca.pem", "2026-06-01", 0, NULL },
		{ "shortleaf.pem", "short.pem", "2024-06-01", 0, NULL },
		{ "expired.pem", "ca.pem", "2020-06-01", 0, NULL },
		{ "notyet.pem", "ca.pem", "2035-06-01", 0, NULL },
		/* an intermediate CA as the organisation's CA is a trust anchor */
		{ "interleaf.pem", "inter.pem", "2026-06-01", 0, NULL },
	};

	(void)state;
	run_vcases(vc, sizeof(vc) / sizeof(vc[0]));
}

static void test_verify_expired(void **state)
{
	static const struct vcase vc[] = {
		{ "expired.pem", "ca.pem", "2026-06-01", KERR_AUTH, "certificate expired on 2021-01-01" },
		{ "rsa.pem", "ca.pem", "2031-01-01", KERR_AUTH, "certificate expired on 2030-01-01" },
		{ "odd.pem", "ca.pem", "2030-01-01", KERR_AUTH, "certificate expired on 2029-06-20 08:30:00 UTC" },
	};

	(void)state;
	run_vcases(vc, sizeof(vc) / sizeof(vc[0]));
}

static void test_verify_not_yet_valid(void **state)
{
	static const struct vcase vc[] = {
		{ "notyet.pem", "ca.pem", "2026-06-01", KERR_AUTH, "certificate not valid before 2035-01-01" },
		{ "ec.pem", "ca.pem", "2023-12-31", KERR_AUTH, "certificate not valid before 2024-01-01" },
		{ "odd.pem", "ca.pem", "2024-03-15T12:34:55Z", KERR_AUTH,
		  "certificate not valid before 2024-03-15 12:34:56 UTC" },
	};

	(void)state;
	run_vcases(vc, sizeof(vc) / sizeof(vc[0]));
}

static void test_verify_other_ca(void **state)
{
	static const struct vcase vc[] = {
		{ "othercert.pem", "ca.pem", "2026-06-01", KERR_AUTH,
		  "certificate not issued by the organisation's CA" },
		/* same issuer name as the real CA, another key */
		{ "evilcert.pem", "ca.pem", "2026-06-01", KERR_AUTH,
		  "certificate not issued by the organisation's CA*" },
		/* a genuine certificate checked against another organisation's CA */
		{ "rsa.pem", "other.pem", "2026-06-01", KERR_AUTH,
		  "certificate not issued by the organisation's CA" },
		{ "ec.pem", "evil.pem", "2026-06-01", KERR_AUTH,
		  "certificate not issued by the organisation's CA*" },
		/* a CA certificate is not a user certificate */
		{ "other.pem", "ca.pem", "2026-06-01", KERR_AUTH,
		  "certificate not issued by the organisation's CA" },
		{ "ca.pem", "ca.pem", "2026-06-01", KERR_AUTH,
		  "certificate is the organisation's CA certificate itself, not a user's" },
		/* issued by an intermediate below the CA: the intermediate is not
		 * supplied, so the chain does not reach the CA */
		{ "interleaf.pem", "ca.pem", "2026-06-01", KERR_AUTH,
		  "certificate not issued by the organisation's CA" },
		/* a genuine sub-CA certificate is not a user certificate either */
		{ "inter.pem", "ca.pem", "2026-06-01", KERR_AUTH,
		  "certificate key usage allows neither digitalSignature nor keyEncipherment" },
		/* the "CA" is an end-user certificate (CA:false) */
		{ "byleaf.pem", "ec.pem", "2026-06-01", KERR_AUTH,
		  "the organisation's CA certificate may not issue certificates*" },
	};

	(void)state;
	run_vcases(vc, sizeof(vc) / sizeof(vc[0]));
}

static void test_verify_ca_validity_and_usage(void **state)
{
	static const struct vcase vc[] = {
		/* the CA expired although the user certificate is still valid */
		{ "shortleaf.pem", "short.pem", "2026-06-01", KERR_AUTH,
		  "the organisation's CA certificate expired on 2025-01-01" },
		/* both dates are checked for the CA too */
		{ "expired.pem", "ca.pem", "2019-12-31", KERR_AUTH,
		  "certificate not valid before 2020-01-01" },
		{ "badku.pem", "ca.pem", "2026-06-01", KERR_AUTH,
		  "certificate key usage allows neither digitalSignature nor keyEncipherment" },
	};

	(void)state;
	run_vcases(vc, sizeof(vc) / sizeof(vc[0]));
}

/* `now` is the only clock: the same certificate is valid at one time and not
 * at another; the validity period is inclusive at both ends (RFC 5280). */
static void test_verify_now_controls(void **state)
{
	static const struct {
		const char *when;
		int expect;
		const char *detail;
	} t[] = {
		{ "2023-12-31T23:59:59Z", KERR_AUTH, "certificate not valid before 2024-01-01" },
		{ "2024-01-01T00:00:00Z", 0, NULL },
		{ "2027-07-07T07:07:07Z", 0, NULL },
		{ "2030-01-01T00:00:00Z", 0, NULL },
		{ "2030-01-01T00:00:01Z", KERR_AUTH, "certificate expired on 2030-01-01" },
		{ "2039-12-31T23:59:59Z", KERR_AUTH, "certificate expired on 2030-01-01" },
	};
	uint8_t *c = NULL, *ca = NULL, *cs = NULL, *cas = NULL;
	size_t cl, cal, csl, casl;

	(void)state;
	load("ec.pem", &c, &cl);
	load("ca.pem", &ca, &cal);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct kerrinfo ei;
		int r;

		memset(&ei, 0, sizeof(ei));
		r = kx509_verify(c, cl, ca, cal, T(t[i].when), &ei);
		kt_check(r == t[i].expect, "at %s: r=%d (%s)", t[i].when, r, ei.detail);
		if (t[i].detail)
			kt_check(strcmp(ei.detail, t[i].detail) == 0, "at %s: '%s'", t[i].when, ei.detail);
		no_ossl_errors();
	}
	/* the CA's own notAfter, inclusive too */
	load("shortleaf.pem", &cs, &csl);
	load("short.pem", &cas, &casl);
	assert_int_equal(kx509_verify(cs, csl, cas, casl, T("2025-01-01T00:00:00Z"), NULL), 0);
	assert_int_equal(kx509_verify(cs, csl, cas, casl, T("2025-01-01T00:00:01Z"), NULL), KERR_AUTH);
	/* 1970 and 2100: outside the period whatever the system clock says */
	assert_int_equal(kx509_verify(c, cl, ca, cal, 0, NULL), KERR_AUTH);
	assert_int_equal(kx509_verify(c, cl, ca, cal, INT64_C(4102444800), NULL), KERR_AUTH); /* 2100 */
	free(c);
	free(ca);
	free(cs);
	free(cas);
}

static void test_verify_bad_input(void **state)
{
	struct kerrinfo ei;
	uint8_t *c = NULL, *ca = NULL, *junk;
	size_t cl, cal;
	int64_t now = T("2026-06-01");

	(void)state;
	load("ec.pem", &c, &cl);
	load("ca.pem", &ca, &cal);
	junk = malloc(cl);
	assert_non_null(junk);
	memcpy(junk, c, cl);
	junk[0] ^= 0x10; /* not a SEQUENCE */
	memset(&ei, 0, sizeof(ei));
	assert_int_equal(kx509_verify(junk, cl, ca, cal, now, &ei), KERR_FORMAT);
	assert_true(ei.detail[0] != 0);
	assert_int_equal(kx509_verify(c, cl, junk, cl, now, &ei), KERR_FORMAT);
	assert_int_equal(kx509_verify(c, cl - 1, ca, cal, now, &ei), KERR_FORMAT);
	assert_int_equal(kx509_verify(c, cl, ca, cal - 1, now, &ei), KERR_FORMAT);
	assert_int_equal(kx509_verify(NULL, 0, ca, cal, now, &ei), KERR_FORMAT);
	/* a signature byte changed: the certificate is not the CA's any more */
	memcpy(junk, c, cl);
	junk[cl - 3] ^= 0x01;
	memset(&ei, 0, sizeof(ei));
	assert_int_equal(kx509_verify(junk, cl, ca, cal, now, &ei), KERR_AUTH);
	kt_check(strncmp(ei.detail, "certificate not issued by the organisation's CA", 47) == 0, "%s",
		 ei.detail);
	no_ossl_errors();
	free(junk);
	free(c);
	free(ca);
}

/* ---------------- seal / open ---------------- */

struct okey {
	const char *cert, *key, *pass;
	int alg;
	size_t bloblen;
};

static const struct okey okeys[] = {
	{ "rsa.pem", "rsa.key", NULL, ALG_RSA, 260 },
	{ "rsa.pem", "rsa.key", "unused-password", ALG_RSA, 260 },
	{ "rsa.pem", "rsa_enc_trad.key", "pem-secret", ALG_RSA, 260 },
	{ "rsa.pem", "rsa.p12", "p12-secret", ALG_RSA, 260 },
	{ "ec.pem", "ec.key", NULL, ALG_P256, 135 },
	{ "ec.pem", "ec_trad.key", NULL, ALG_P256, 135 },
	{ "ec.pem", "ec_enc.key", "pem-secret", ALG_P256, 135 },
	{ "ec.pem", "ec.p12", "p12-secret", ALG_P256, 135 },
	{ "ec.pem", "ec.key.der", NULL, ALG_P256, 135 },
	{ "ec.pem", "ec_enc.key.der", "pem-secret", ALG_P256, 135 },
	{ "ec.pem", "ec_combined.pem", NULL, ALG_P256, 135 },
	{ "ka.pem", "ka.key", NULL, ALG_P256, 135 },
	{ "p384.pem", "p384.key", NULL, ALG_P384, 167 },
	{ "p384.pem", "p384_enc.key", "pem-secret", ALG_P384, 167 },
	{ "p384.pem", "p384_nopass.p12", NULL, ALG_P384, 167 },
	{ "p384.pem", "p384_nopass.p12", "", ALG_P384, 167 },
	{ "x25519.pem", "x25519.key", NULL, ALG_X25519, 102 },
};

static void seal_one(const char *certname, const uint8_t *secret, uint8_t **blob, size_t *bloblen)
{
	struct kerrinfo ei;
	uint8_t *c = NULL;
	size_t cl;

	load(certname, &c, &cl);
	memset(&ei, 0, sizeof(ei));
	kt_check(kx509_seal(c, cl, secret, blob, bloblen, &ei) == 0, "seal to %s: %s", certname, ei.detail);
	no_ossl_errors();
	free(c);
}

static int open_one(const char *certname, const char *key, const char *pass, const uint8_t *blob,
		    size_t bloblen, uint8_t *out, struct kerrinfo *ei)
{
	uint8_t *c = NULL;
	size_t cl;
	int r;

	load(certname, &c, &cl);
	memset(ei, 0, sizeof(*ei));
	r = kx509_open(key, pass, c, cl, blob, bloblen, out, ei);
	no_ossl_errors();
	free(c);
	return r;
}

static void test_seal_open_roundtrip(void **state)
{
	uint8_t secret[KX509_SECRETBYTES], *out = ksecmem_alloc(KX509_SECRETBYTES);

	(void)state;
	assert_non_null(out);
	for (size_t i = 0; i < sizeof(okeys) / sizeof(okeys[0]); i++) {
		const struct okey *k = &okeys[i];
		struct kerrinfo ei;
		uint8_t *b1 = NULL, *b2 = NULL;
		size_t l1 = 0, l2 = 0;
		int r;

		kt_fill(secret, sizeof(secret), (uint32_t)i + 1);
		seal_one(k->cert, secret, &b1, &l1);
		seal_one(k->cert, secret, &b2, &l2);
		kt_check(l1 == k->bloblen && l2 == k->bloblen, "%s: blob %zu bytes, want %zu", k->cert, l1,
			 k->bloblen);
		kt_check(b1[0] == 1 && b1[1] == k->alg, "%s: header %u %u", k->cert, b1[0], b1[1]);
		/* randomised: two seals of one secret differ */
		kt_check(memcmp(b1, b2, l1) != 0, "%s: sealing is deterministic", k->cert);
		/* the secret does not appear in the blob */
		kt_check(!memmem(b1, l1, secret, 8), "%s: plaintext in the blob", k->cert);
		memset(out, 0xaa, KX509_SECRETBYTES);
		r = open_one(k->cert, fx(k->key), k->pass, b1, l1, out, &ei);
		kt_check(r == 0, "open %s with %s: r=%d %s", k->cert, k->key, r, ei.detail);
		assert_memory_equal(out, secret, KX509_SECRETBYTES);
		memset(out, 0xaa, KX509_SECRETBYTES);
		r = open_one(k->cert, fx(k->key), k->pass, b2, l2, out, &ei);
		kt_check(r == 0, "open (2) %s with %s: r=%d %s", k->cert, k->key, r, ei.detail);
		assert_memory_equal(out, secret, KX509_SECRETBYTES);
		free(b1);
		free(b2);
	}
	ksecmem_free(out);
}

/* "provider:" + an OSSL_STORE URI: the default provider's file: store stands
 * in for a token here */
static void test_open_provider_uri(void **state)
{
	uint8_t secret[KX509_SECRETBYTES], *out = ksecmem_alloc(KX509_SECRETBYTES), *b = NULL, *bp = NULL;
	size_t l = 0, lp = 0;
	struct kerrinfo ei;
	char uri[512];
	int r;

	(void)state;
	assert_non_null(out);
	kt_fill(secret, sizeof(secret), 77);
	seal_one("ec.pem", secret, &b, &l);
	seal_one("p384.pem", secret, &bp, &lp);

	snprintf(uri, sizeof(uri), "provider:file:%s", fx("ec.key"));
	r = open_one("ec.pem", uri, NULL, b, l, out, &ei);
	kt_check(r == 0, "%s: r=%d %s", uri, r, ei.detail);
	assert_memory_equal(out, secret, sizeof(secret));

	/* a plain path is a URI too; encrypted key with the password */
	memset(out, 0, KX509_SECRETBYTES);
	snprintf(uri, sizeof(uri), "provider:%s", fx("p384_enc.key"));
	r = open_one("p384.pem", uri, "pem-secret", bp, lp, out, &ei);
	kt_check(r == 0, "%s: r=%d %s", uri, r, ei.detail);
	assert_memory_equal(out, secret, sizeof(secret));

	/* PKCS#12 through the store */
	memset(out, 0, KX509_SECRETBYTES);
	snprintf(uri, sizeof(uri), "provider:file:%s", fx("ec.p12"));
	r = open_one("ec.pem", uri, "p12-secret", b, l, out, &ei);
	kt_check(r == 0, "%s: r=%d %s", uri, r, ei.detail);
	assert_memory_equal(out, secret, sizeof(secret));

	/* wrong key, wrong password, nothing there */
	memset(out, 0xaa, KX509_SECRETBYTES);
	snprintf(uri, sizeof(uri), "provider:file:%s", fx("ec_wrong.key"));
	assert_int_equal(open_one("ec.pem", uri, NULL, b, l, out, &ei), KERR_AUTH);
	assert_string_equal(ei.detail, "private key does not match the certificate");
	snprintf(uri, sizeof(uri), "provider:file:%s", fx("p384_enc.key"));
	r = open_one("p384.pem", uri, "not-the-password", bp, lp, out, &ei);
	kt_check(r == KERR_FACTOR, "%s wrong password: r=%d %s", uri, r, ei.detail);
	r = open_one("p384.pem", uri, NULL, bp, lp, out, &ei);
	kt_check(r == KERR_FACTOR, "%s no password: r=%d %s", uri, r, ei.detail);
	snprintf(uri, sizeof(uri), "provider:file:%s", fx("nonexistent.key"));
	r = open_one("ec.pem", uri, NULL, b, l, out, &ei);
	kt_check(r == KERR_FACTOR, "%s: r=%d %s", uri, r, ei.detail);
	snprintf(uri, sizeof(uri), "provider:file:%s", fx("ec.pub"));
	r = open_one("ec.pem", uri, NULL, b, l, out, &ei);
	kt_check(r != 0, "%s (public key only): r=%d %s", uri, r, ei.detail);
	r = open_one("ec.pem", "provider:nosuchscheme:whatever", NULL, b, l, out, &ei);
	kt_check(r != 0, "unknown scheme: r=%d %s", r, ei.detail);
	for (size_t i = 0; i < KX509_SECRETBYTES; i++)
		kt_check(out[i] == 0xaa, "secret written on failure");
	free(b);
	free(bp);
	ksecmem_free(out);
}

static void test_open_wrong_key(void **state)
{
	static const struct {
		const char *cert, *key, *pass;
	} w[] = {
		{ "rsa.pem", "rsa_wrong.key", NULL },
		{ "rsa.pem", "ec.key", NULL },
		{ "rsa.pem", "ec.p12", "p12-secret" },
		{ "ec.pem", "ec_wrong.key", NULL },
		{ "ec.pem", "p384.key", NULL },
		{ "ec.pem", "rsa.p12", "p12-secret" },
		{ "ec.pem", "x25519.key", NULL },
		{ "p384.pem", "ec_enc.key", "pem-secret" },
		{ "x25519.pem", "ec.key", NULL },
		{ "ka.pem", "ec.key", NULL },
	};
	uint8_t secret[KX509_SECRETBYTES], *out = ksecmem_alloc(KX509_SECRETBYTES);

	(void)state;
	assert_non_null(out);
	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
		struct kerrinfo ei;
		uint8_t *b = NULL;
		size_t l = 0;
		int r;

		kt_fill(secret, sizeof(secret), (uint32_t)(100 + i));
		seal_one(w[i].cert, secret, &b, &l);
		memset(out, 0xaa, KX509_SECRETBYTES);
		r = open_one(w[i].cert, fx(w[i].key), w[i].pass, b, l, out, &ei);
		kt_check(r == KERR_AUTH, "%s with %s: r=%d (%s)", w[i].cert, w[i].key, r, ei.detail);
		assert_string_equal(ei.detail, "private key does not match the certificate");
		assert_string_equal(ei.file, fx(w[i].key));
		for (size_t j = 0; j < KX509_SECRETBYTES; j++)
			kt_check(out[j] == 0xaa, "secret written on failure");
		free(b);
	}
	ksecmem_free(out);
}

/* the key matches the certificate, but the blob was sealed to another one */
static void test_open_blob_for_other_cert(void **state)
{
	uint8_t secret[KX509_SECRETBYTES], *out = ksecmem_alloc(KX509_SECRETBYTES), *b = NULL;
	size_t l = 0;
	struct kerrinfo ei;

	(void)state;
	assert_non_null(out);
	kt_fill(secret, sizeof(secret), 5);
	seal_one("ka.pem", secret, &b, &l);
	memset(out, 0xaa, KX509_SECRETBYTES);
	assert_int_equal(open_one("ec.pem", fx("ec.key"), NULL, b, l, out, &ei), KERR_FORMAT);
	for (size_t j = 0; j < KX509_SECRETBYTES; j++)
		kt_check(out[j] == 0xaa, "secret written on failure");
	free(b);
	/* RSA blob, EC certificate: wrong algorithm for the key */
	seal_one("rsa.pem", secret, &b, &l);
	assert_int_equal(open_one("ec.pem", fx("ec.key"), NULL, b, l, out, &ei), KERR_FORMAT);
	free(b);
	seal_one("p384.pem", secret, &b, &l);
	assert_int_equal(open_one("ec.pem", fx("ec.key"), NULL, b, l, out, &ei), KERR_FORMAT);
	free(b);
	ksecmem_free(out);
}

static void test_open_key_errors(void **state)
{
	static const struct {
		const char *cert, *key, *pass;
		int expect;
		const char *detail;
	} e[] = {
		{ "rsa.pem", "rsa.p12", "wrong-password", KERR_FACTOR, "wrong password for the PKCS#12 file" },
		{ "rsa.pem", "rsa.p12", NULL, KERR_FACTOR, "the PKCS#12 file needs a password" },
		{ "rsa.pem", "rsa.p12", "", KERR_FACTOR, "the PKCS#12 file needs a password" },
		{ "ec.pem", "ec.p12", "P12-SECRET", KERR_FACTOR, "wrong password for the PKCS#12 file" },
		{ "ec.pem", "ec_enc.key", "wrong-password", KERR_FACTOR, "wrong password for the private key" },
		{ "ec.pem", "ec_enc.key", NULL, KERR_FACTOR, "the private key is encrypted: a password is needed" },
		{ "ec.pem", "ec_enc.key.der", "wrong-password", KERR_FACTOR, "wrong password for the private key" },
		{ "ec.pem", "ec_enc.key.der", NULL, KERR_FACTOR,
		  "the private key is encrypted: a password is needed" },
		{ "rsa.pem", "rsa_enc_trad.key", "wrong-password", KERR_FACTOR, "wrong password for the private key" },
		{ "rsa.pem", "rsa_enc_trad.key", NULL, KERR_FACTOR,
		  "the private key is encrypted: a password is needed" },
		{ "ec.pem", "nonexistent.key", NULL, -ENOENT, NULL },
		{ "ec.pem", "empty.key", NULL, KERR_FORMAT, "the private key file is empty" },
		{ "ec.pem", "ec.pem", NULL, KERR_FORMAT, NULL },      /* a certificate, no key */
		{ "ec.pem", "ec.pub", NULL, KERR_FORMAT, NULL },      /* a public key only */
		{ "ec.pem", "rsa.der", NULL, KERR_FORMAT, NULL },     /* DER, but a certificate */
		{ "ec.pem", "ca.d", NULL, -EISDIR, NULL },
	};
	uint8_t secret[KX509_SECRETBYTES], *out = ksecmem_alloc(KX509_SECRETBYTES), *brsa = NULL, *bec = NULL;
	size_t lrsa = 0, lec = 0;
	struct kerrinfo ei;

	(void)state;
	assert_non_null(out);
	kt_fill(secret, sizeof(secret), 9);
	seal_one("rsa.pem", secret, &brsa, &lrsa);
	seal_one("ec.pem", secret, &bec, &lec);
	for (size_t i = 0; i < sizeof(e) / sizeof(e[0]); i++) {
		bool isrsa = strcmp(e[i].cert, "rsa.pem") == 0;
		int r;

		memset(out, 0xaa, KX509_SECRETBYTES);
		r = open_one(e[i].cert, fx(e[i].key), e[i].pass, isrsa ? brsa : bec, isrsa ? lrsa : lec, out, &ei);
		kt_check(r == e[i].expect, "%s with %s / %s: r=%d (%s), want %d", e[i].cert, e[i].key,
			 e[i].pass ? e[i].pass : "(null)", r, ei.detail, e[i].expect);
		if (e[i].detail)
			kt_check(strcmp(ei.detail, e[i].detail) == 0, "%s: '%s'", e[i].key, ei.detail);
		kt_check(ei.detail[0] != 0, "%s: no reason given", e[i].key);
		assert_string_equal(ei.file, fx(e[i].key));
		for (size_t j = 0; j < KX509_SECRETBYTES; j++)
			kt_check(out[j] == 0xaa, "secret written on failure");
	}
	/* no key at all */
	assert_int_equal(open_one("ec.pem", NULL, NULL, bec, lec, out, &ei), KERR_USAGE);
	assert_int_equal(open_one("ec.pem", "", NULL, bec, lec, out, &ei), KERR_USAGE);
	free(brsa);
	free(bec);
	ksecmem_free(out);
}

/* Every single-byte change (two patterns), every truncation and an extension
 * of the blob is refused with KERR_FORMAT, and the output is not written. */
static void corrupt_all(const char *certname, const char *keyname, const char *pass, uint32_t seed)
{
	uint8_t secret[KX509_SECRETBYTES], *out = ksecmem_alloc(KX509_SECRETBYTES), *b = NULL, *m, *c = NULL;
	const char *key = fx(keyname);
	struct kerrinfo ei;
	size_t l = 0, cl;
	int r;

	assert_non_null(out);
	kt_fill(secret, sizeof(secret), seed);
	seal_one(certname, secret, &b, &l);
	load(certname, &c, &cl);
	m = malloc(l + 1);
	assert_non_null(m);
	memset(out, 0xaa, KX509_SECRETBYTES);
	for (size_t i = 0; i < l; i++) {
		static const uint8_t pat[] = { 0x01, 0x80, 0xff };

		for (size_t k = 0; k < sizeof(pat); k++) {
			memcpy(m, b, l);
			m[i] ^= pat[k];
			memset(&ei, 0, sizeof(ei));
			r = kx509_open(key, pass, c, cl, m, l, out, &ei);
			kt_check(r == KERR_FORMAT, "%s: byte %zu ^ %02x: r=%d (%s)", certname, i, pat[k], r,
				 ei.detail);
			kt_check(ei.detail[0] != 0, "%s: byte %zu: no reason", certname, i);
		}
	}
	for (size_t n = 0; n < l; n++) {
		/* an exact-size copy so ASan sees any read past the end */
		uint8_t *t = malloc(n ? n : 1);

		assert_non_null(t);
		memcpy(t, b, n);
		r = kx509_open(key, pass, c, cl, t, n, out, &ei);
		kt_check(r == KERR_FORMAT, "%s: truncated to %zu: r=%d (%s)", certname, n, r, ei.detail);
		free(t);
	}
	memcpy(m, b, l);
	m[l] = 0;
	assert_int_equal(kx509_open(key, pass, c, cl, m, l + 1, out, &ei), KERR_FORMAT);
	assert_int_equal(kx509_open(key, pass, c, cl, NULL, 0, out, &ei), KERR_FORMAT);
	for (size_t j = 0; j < KX509_SECRETBYTES; j++)
		kt_check(out[j] == 0xaa, "%s: secret written on failure", certname);
	no_ossl_errors();
	/* the original still opens */
	assert_int_equal(kx509_open(key, pass, c, cl, b, l, out, &ei), 0);
	assert_memory_equal(out, secret, sizeof(secret));
	free(m);
	free(b);
	free(c);
	ksecmem_free(out);
}

static void test_corrupt_blob_rsa(void **state)
{
	(void)state;
	corrupt_all("rsa.pem", "rsa.key", NULL, 31);
}

static void test_corrupt_blob_ec(void **state)
{
	(void)state;
	corrupt_all("ec.pem", "ec.key", NULL, 32);
	corrupt_all("p384.pem", "p384.key", NULL, 33);
}

static void test_corrupt_blob_x25519(void **state)
{
	(void)state;
	corrupt_all("x25519.pem", "x25519.key", NULL, 34);
}

/* random blobs of many sizes, and blobs with plausible headers */
static void test_garbage_blobs(void **state)
{
	uint8_t *out = ksecmem_alloc(KX509_SECRETBYTES), *c = NULL, buf[600];
	struct kerrinfo ei;
	size_t cl;

	(void)state;
	assert_non_null(out);
	load("ec.pem", &c, &cl);
	for (uint32_t s = 0; s < 200; s++) {
		size_t n = (s * 37) % sizeof(buf);

		kt_fill(buf, n, s);
		if (s % 2 && n >= 2) {
			buf[0] = 1;
			buf[1] = ALG_P256;
		}
		assert_int_equal(kx509_open(fx("ec.key"), NULL, c, cl, buf, n, out, &ei), KERR_FORMAT);
	}
	/* header, then field lengths that claim more than is there */
	memset(buf, 0, sizeof(buf));
	buf[0] = 1;
	buf[1] = ALG_P256;
	buf[2] = 0xff;
	buf[3] = 0xff;
	assert_int_equal(kx509_open(fx("ec.key"), NULL, c, cl, buf, 4, out, &ei), KERR_FORMAT);
	assert_int_equal(kx509_open(fx("ec.key"), NULL, c, cl, buf, sizeof(buf), out, &ei), KERR_FORMAT);
	/* a right-sized P-256 blob whose point is not on the curve */
	{
		uint8_t b[135];
		size_t o = 0;

		memset(b, 0, sizeof(b));
		b[o++] = 1;
		b[o++] = ALG_P256;
		kput_le16(b + o, 65);
		b[o + 2] = 0x04;
		memset(b + o + 3, 0x11, 64);
		o += 2 + 65;
		kput_le16(b + o, 12);
		o += 2 + 12;
		kput_le16(b + o, 32);
		o += 2 + 32;
		kput_le16(b + o, 16);
		o += 2 + 16;
		assert_int_equal(o, sizeof(b));
		assert_int_equal(kx509_open(fx("ec.key"), NULL, c, cl, b, o, out, &ei), KERR_FORMAT);
	}
	/* the certificate itself damaged or absent */
	assert_int_equal(kx509_open(fx("ec.key"), NULL, c, cl - 1, buf, 10, out, &ei), KERR_FORMAT);
	assert_int_equal(kx509_open(fx("ec.key"), NULL, NULL, 0, buf, 10, out, &ei), KERR_FORMAT);
	no_ossl_errors();
	free(c);
	ksecmem_free(out);
}

static void test_seal_unsupported(void **state)
{
	static const struct {
		const char *cert, *detail;
	} u[] = {
		{ "rsa1024.pem", "certificate has an RSA key of 1024 bits (accepted: 2048 to 16384)" },
		{ "ed25519.pem", "certificate key type ED25519 is not supported (accepted: RSA, EC P-256/P-384, X25519)" },
	};
	uint8_t secret[KX509_SECRETBYTES], *c = NULL, *b = NULL;
	struct kerrinfo ei;
	size_t cl, l = 0;

	(void)state;
	kt_fill(secret, sizeof(secret), 3);
	for (size_t i = 0; i < sizeof(u) / sizeof(u[0]); i++) {
		load(u[i].cert, &c, &cl);
		memset(&ei, 0, sizeof(ei));
		assert_int_equal(kx509_seal(c, cl, secret, &b, &l, &ei), KERR_FACTOR);
		assert_null(b);
		assert_int_equal(l, 0);
		kt_check(strcmp(ei.detail, u[i].detail) == 0, "%s: '%s'", u[i].cert, ei.detail);
		free(c);
	}
	load("ec.pem", &c, &cl);
	assert_int_equal(kx509_seal(c, cl - 1, secret, &b, &l, &ei), KERR_FORMAT);
	assert_int_equal(kx509_seal(NULL, 0, secret, &b, &l, &ei), KERR_FORMAT);
	assert_null(b);
	no_ossl_errors();
	free(c);
}

/* ---------------- describe ---------------- */

static void test_describe(void **state)
{
	uint8_t *c = NULL;
	size_t cl;
	char cn[128];
	int64_t na = 0;

	(void)state;
	load("rsa.pem", &c, &cl);
	assert_int_equal(kx509_describe(c, cl, cn, sizeof(cn), &na), 0);
	assert_string_equal(cn, "Alice \xc3\x85ngstr\xc3\xb6m");
	assert_true(na == T("2030-01-01"));
	/* truncation keeps whole UTF-8 characters and the NUL */
	memset(cn, 'x', sizeof(cn));
	assert_int_equal(kx509_describe(c, cl, cn, 8, NULL), 0);
	assert_string_equal(cn, "Alice ");
	assert_int_equal(kx509_describe(c, cl, cn, 9, NULL), 0);
	assert_string_equal(cn, "Alice \xc3\x85");
	assert_int_equal(kx509_describe(c, cl, cn, 1, NULL), 0);
	assert_string_equal(cn, "");
	/* either output may be left out */
	na = 0;
	assert_int_equal(kx509_describe(c, cl, NULL, 0, &na), 0);
	assert_true(na == T("2030-01-01"));
	free(c);

	load("odd.pem", &c, &cl);
	assert_int_equal(kx509_describe(c, cl, cn, sizeof(cn), &na), 0);
	assert_string_equal(cn, "frank-odd-times");
	assert_true(na == T("2029-06-20T08:30:00Z"));
	free(c);

	load("expired.pem", &c, &cl);
	assert_int_equal(kx509_describe(c, cl, cn, sizeof(cn), &na), 0);
	assert_string_equal(cn, "dave-expired");
	assert_true(na == T("2021-01-01"));
	free(c);

	/* control characters are not passed to a terminal */
	load("esc.pem", &c, &cl);
	assert_int_equal(kx509_describe(c, cl, cn, sizeof(cn), &na), 0);
	assert_string_equal(cn, "evil?[31mred?x?y");
	free(c);

	/* no common name: the subject */
	load("nocn.pem", &c, &cl);
	assert_int_equal(kx509_describe(c, cl, cn, sizeof(cn), &na), 0);
	assert_string_equal(cn, "OU=No Name,O=Kinko Test");
	assert_int_equal(kx509_describe(c, cl - 1, cn, sizeof(cn), &na), KERR_FORMAT);
	assert_int_equal(kx509_describe(NULL, 0, cn, sizeof(cn), &na), KERR_FORMAT);
	no_ossl_errors();
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cert_load),
		cmocka_unit_test(test_verify_ok),
		cmocka_unit_test(test_verify_expired),
		cmocka_unit_test(test_verify_not_yet_valid),
		cmocka_unit_test(test_verify_other_ca),
		cmocka_unit_test(test_verify_ca_validity_and_usage),
		cmocka_unit_test(test_verify_now_controls),
		cmocka_unit_test(test_verify_bad_input),
		cmocka_unit_test(test_seal_open_roundtrip),
		cmocka_unit_test(test_open_provider_uri),
		cmocka_unit_test(test_open_wrong_key),
		cmocka_unit_test(test_open_blob_for_other_cert),
		cmocka_unit_test(test_open_key_errors),
		cmocka_unit_test(test_corrupt_blob_rsa),
		cmocka_unit_test(test_corrupt_blob_ec),
		cmocka_unit_test(test_corrupt_blob_x25519),
		cmocka_unit_test(test_garbage_blobs),
		cmocka_unit_test(test_seal_unsupported),
		cmocka_unit_test(test_describe),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

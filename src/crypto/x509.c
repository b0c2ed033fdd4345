// SPDX-License-Identifier: GPL-2.0-or-later
/* X.509 second factor (IC card / PKI): certificate loading and verification
 * against the organisation's CA at a caller-supplied time, and a 32-byte
 * factor secret sealed to the certificate's public key.
 *
 * Everything cryptographic goes through OpenSSL 3.0 (EVP_PKEY, X509_STORE,
 * OSSL_DECODER, PKCS12, OSSL_STORE, EVP_KDF, EVP_CIPHER).
 *
 * Blob, version 1 (all lengths little-endian u16):
 *   u8 version (1) | u8 algorithm | fields, each len16 || bytes
 *   ALG_RSA_OAEP (1): ciphertext                        (RSA-OAEP, SHA-256, MGF1-SHA-256, no label)
 *   ALG_ECDH_P256 (2), ALG_ECDH_P384 (3), ALG_X25519 (4):
 *                     ephemeral public key (X9.62 uncompressed point / raw X25519)
 *                     nonce (12) | ciphertext (32) | tag (16)
 *   ECDH: Z = ECDH(ephemeral, certificate key)
 *         K = HKDF-SHA256(IKM = Z, salt = none,
 *                         info = "kinko x509 factor v1" || version || alg ||
 *                                len16 || ephemeral pk || len16 || certificate pk)
 *         AES-256-GCM(K, nonce, AD = every blob byte before the ciphertext field)
 * Every field length is fixed by the algorithm and the certificate's key, so a
 * parser accepts exactly one length per field and nothing after the last one. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/objects.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/rsa.h>
#include <openssl/store.h>
#include <openssl/ui.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "kinko/x509.h"

#define BLOB_VERSION 1
#define BLOB_MAX 4096                /* RSA-16384 ciphertext is 2048 bytes */
#define CERTFILE_MAX (1u << 20)      /* PEM with comments around a <= 64 KiB DER */
#define KEYFILE_MAX (1u << 20)
#define STORE_MAX_OBJECTS 256        /* objects looked at behind a provider: URI */
#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 16384
#define ZMAX 66                      /* largest ECDH shared secret (P-521) */
#define GCM_NONCE 12
#define GCM_TAG 16
#define PROVIDER_PREFIX "provider:"
#define KDF_LABEL "kinko x509 factor v1"

enum { ALG_RSA_OAEP = 1, ALG_ECDH_P256 = 2, ALG_ECDH_P384 = 3, ALG_X25519 = 4 };

struct kx_alg {
	uint8_t id;
	const char *group;  /* EC group for the ephemeral key, else NULL */
	size_t epklen;      /* encoded ephemeral public key, 0 for RSA */
};

static const struct kx_alg kx_algs[] = {
	{ ALG_RSA_OAEP, NULL, 0 },
	{ ALG_ECDH_P256, "P-256", 65 },
	{ ALG_ECDH_P384, "P-384", 97 },
	{ ALG_X25519, NULL, 32 },
};

static const struct kx_alg *alg_by_id(uint8_t id)
{
	const struct kx_alg *a = NULL;

	for (size_t i = 0; i < sizeof(kx_algs) / sizeof(kx_algs[0]); i++)
		if (kx_algs[i].id == id)
			a = &kx_algs[i];
	return a;
}

/* The one place that turns an OpenSSL failure into a kinko error: allocation
 * failures become -ENOMEM, everything else `code`. The last queued OpenSSL
 * reason is appended to `what` in ei->detail and the thread's error queue is
 * emptied (nothing stale is left for the next caller). */
static int ossl_fail(struct kerrinfo *ei, const char *file, int code, const char *what)
{
	unsigned long e = ERR_peek_last_error();
	const char *reason = e ? ERR_reason_error_string(e) : NULL;

	if (e && ERR_GET_REASON(e) == ERR_R_MALLOC_FAILURE)
		code = -ENOMEM;
	if (reason)
		kerr_set(ei, file, "%s (%s)", what, reason);
	else
		kerr_set(ei, file, "%s", what);
	ERR_clear_error();
	return code;
}

/* ---- small helpers ---- */

/* Whole file into memory (secure memory for key material); at most max bytes. */
static int read_file(const char *path, size_t max, bool secure, uint8_t **out, size_t *outlen)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t cap = 0;
	ssize_t n;
	int fd = -1, r;

	*out = NULL;
	*outlen = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		goto out;
	}
	if (st.st_size < 0 || (uint64_t)st.st_size > max) {
		r = -EFBIG;
		goto out;
	}
	cap = (size_t)st.st_size + 1; /* one more: notices a file that grew */
	r = -ENOMEM;
	if (!(buf = secure ? ksecmem_alloc(cap) : malloc(cap)))
		goto out;
	n = kpread_full(fd, buf, cap, 0);
	if (n < 0) {
		r = (int)n;
		goto out;
	}
	if ((size_t)n == cap) {
		r = -EFBIG;
		goto out;
	}
	*out = buf;
	*outlen = (size_t)n;
	buf = NULL;
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	if (buf) {
		if (secure) {
			ksecmem_free(buf);
		} else {
			OPENSSL_cleanse(buf, cap);
			free(buf);
		}
	}
	return r;
}

static void file_error(struct kerrinfo *ei, const char *path, int r, const char *what)
{
	if (r == -EFBIG)
		kerr_set(ei, path, "%s: file too large", what);
	else
		kerr_set(ei, path, "%s: %s", what, strerror(-r));
}

/* Exactly one DER certificate, nothing after it. */
static int cert_parse(const uint8_t *der, size_t len, X509 **out)
{
	const uint8_t *p = der;
	X509 *x = NULL;
	int r = KERR_FORMAT;

	*out = NULL;
	if (!der || len == 0 || len > KX509_MAX_DER)
		goto out;
	x = d2i_X509(NULL, &p, (long)len);
	if (!x || p != der + len)
		goto out;
	*out = x;
	x = NULL;
	r = 0;
out:
	X509_free(x);
	ERR_clear_error();
	return r;
}

static int asn1_time_unix(const ASN1_TIME *t, int64_t *out)
{
	struct tm tm;
	int r = KERR_FORMAT;

	memset(&tm, 0, sizeof(tm));
	if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
		goto out;
	*out = (int64_t)timegm(&tm);
	r = 0;
out:
	ERR_clear_error();
	return r;
}

/* "2026-01-01" at midnight UTC, else "2026-01-01 12:34:56 UTC" */
static void fmt_date(char *out, size_t n, int64_t t)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (!gmtime_r(&tt, &tm))
		snprintf(out, n, "@%lld", (long long)t);
	else if (tm.tm_hour == 0 && tm.tm_min == 0 && tm.tm_sec == 0)
		strftime(out, n, "%Y-%m-%d", &tm);
	else
		strftime(out, n, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

/* Which blob algorithm a certificate key gets; unsupported keys: KERR_FACTOR. */
static int key_alg(EVP_PKEY *pk, const struct kx_alg **alg, struct kerrinfo *ei)
{
	char group[64];
	int r = KERR_FACTOR, bits, nid = NID_undef;

	*alg = NULL;
	if (EVP_PKEY_is_a(pk, "RSA")) {
		bits = EVP_PKEY_get_bits(pk);
		if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
			kerr_set(ei, "", "certificate has an RSA key of %d bits (accepted: %d to %d)", bits,
				 RSA_MIN_BITS, RSA_MAX_BITS);
			goto out;
		}
		*alg = alg_by_id(ALG_RSA_OAEP);
	} else if (EVP_PKEY_is_a(pk, "EC")) {
		if (EVP_PKEY_get_group_name(pk, group, sizeof(group), NULL) == 1) {
			nid = OBJ_sn2nid(group);
			if (nid == NID_undef)
				nid = EC_curve_nist2nid(group);
		}
		if (nid == NID_X9_62_prime256v1)
			*alg = alg_by_id(ALG_ECDH_P256);
		else if (nid == NID_secp384r1)
			*alg = alg_by_id(ALG_ECDH_P384);
		else {
			kerr_set(ei, "", "certificate has an EC key on an unsupported curve (accepted: P-256, P-384)");
			goto out;
		}
	} else if (EVP_PKEY_is_a(pk, "X25519")) {
		*alg = alg_by_id(ALG_X25519);
	} else {
		kerr_set(ei, "", "certificate key type %s is not supported (accepted: RSA, EC P-256/P-384, X25519)",
			 EVP_PKEY_get0_type_name(pk) ? EVP_PKEY_get0_type_name(pk) : "unknown");
		goto out;
	}
	r = *alg ? 0 : KERR_CRYPTO;
out:
	ERR_clear_error();
	return r;
}

/* ---- certificates ---- */

int kx509_cert_load(const char *path, uint8_t **der, size_t *derlen, struct kerrinfo *ei)
{
	uint8_t *buf = NULL, *enc = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	X509 *x = NULL;
	int r, n;

	*der = NULL;
	*derlen = 0;
	if ((r = read_file(path, CERTFILE_MAX, false, &buf, &len)) != 0) {
		file_error(ei, path, r, "cannot read the certificate");
		goto out;
	}
	r = KERR_FORMAT;
	if (len && memmem(buf, len, "-----BEGIN", 10)) {
		if (!(bio = BIO_new_mem_buf(buf, (int)len))) {
			r = ossl_fail(ei, path, KERR_CRYPTO, "cannot read the certificate");
			goto out;
		}
		if (!(x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
			r = ossl_fail(ei, path, KERR_FORMAT, "no PEM certificate in the file");
			goto out;
		}
		n = i2d_X509(x, &enc);
		if (n <= 0) {
			r = ossl_fail(ei, path, KERR_FORMAT, "cannot encode the certificate");
			goto out;
		}
		if ((size_t)n > KX509_MAX_DER) {
			kerr_set(ei, path, "certificate larger than %u bytes", KX509_MAX_DER);
			goto out;
		}
		r = -ENOMEM;
		if (!(*der = malloc((size_t)n)))
			goto out;
		memcpy(*der, enc, (size_t)n);
		*derlen = (size_t)n;
	} else {
		if (cert_parse(buf, len, &x) != 0) {
			kerr_set(ei, path, len > KX509_MAX_DER ? "certificate larger than 64 KiB" :
				 "not a PEM or DER X.509 certificate");
			goto out;
		}
		*der = buf;
		*derlen = len;
		buf = NULL;
	}
	r = 0;
out:
	OPENSSL_free(enc);
	X509_free(x);
	BIO_free(bio);
	free(buf);
	ERR_clear_error();
	return r;
}

void kx509_fingerprint(const uint8_t *der, size_t derlen, uint8_t out[32])
{
	kcrypto_sha256(out, der, derlen);
}

/* RFC 5280 validity is inclusive (notBefore <= now <= notAfter); OpenSSL
 * already calls a certificate expired at notAfter itself. kx509_verify checks
 * both certificates' validity first, with the inclusive rule; this callback
 * only forgives OpenSSL's verdict for that one boundary second. */
static int verify_cb(int ok, X509_STORE_CTX *ctx)
{
	X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);
	X509 *c = X509_STORE_CTX_get_current_cert(ctx);
	int64_t na;

	if (!ok && X509_STORE_CTX_get_error(ctx) == X509_V_ERR_CERT_HAS_EXPIRED && c && param &&
	    (X509_VERIFY_PARAM_get_flags(param) & X509_V_FLAG_USE_CHECK_TIME) &&
	    asn1_time_unix(X509_get0_notAfter(c), &na) == 0 &&
	    na == (int64_t)X509_VERIFY_PARAM_get_time(param))
		ok = 1;
	return ok;
}

static void verify_error(struct kerrinfo *ei, int err, int depth, X509 *x, X509 *ca)
{
	const char *who = depth > 0 ? "the organisation's CA certificate" : "certificate";
	X509 *c = depth > 0 ? ca : x;
	int64_t t;
	char d[48];

	switch (err) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
		if (asn1_time_unix(X509_get0_notAfter(c), &t) == 0) {
			fmt_date(d, sizeof(d), t);
			kerr_set(ei, "", "%s expired on %s", who, d);
		} else {
			kerr_set(ei, "", "%s expired", who);
		}
		break;
	case X509_V_ERR_CERT_NOT_YET_VALID:
		if (asn1_time_unix(X509_get0_notBefore(c), &t) == 0) {
			fmt_date(d, sizeof(d), t);
			kerr_set(ei, "", "%s not valid before %s", who, d);
		} else {
			kerr_set(ei, "", "%s not yet valid", who);
		}
		break;
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_CERT_UNTRUSTED:
	case X509_V_ERR_SUBJECT_ISSUER_MISMATCH:
	case X509_V_ERR_AKID_SKID_MISMATCH:
	case X509_V_ERR_AKID_ISSUER_SERIAL_MISMATCH:
		kerr_set(ei, "", "certificate not issued by the organisation's CA");
		break;
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
		kerr_set(ei, "", "certificate not issued by the organisation's CA (signature does not verify)");
		break;
	case X509_V_ERR_INVALID_CA:
	case X509_V_ERR_KEYUSAGE_NO_CERTSIGN:
		kerr_set(ei, "", "the organisation's CA certificate may not issue certificates (%s)",
			 X509_verify_cert_error_string(err));
		break;
	default:
		kerr_set(ei, "", "%s rejected: %s", who, X509_verify_cert_error_string(err));
		break;
	}
}

int kx509_verify(const uint8_t *cert, size_t certlen, const uint8_t *ca, size_t calen, int64_t now,
		 struct kerrinfo *ei)
{
	X509 *x = NULL, *xca = NULL;
	X509_STORE *st = NULL;
	X509_STORE_CTX *ctx = NULL;
	X509_VERIFY_PARAM *param;
	EVP_PKEY *pk;
	int64_t nb, na, cnb, cna;
	uint32_t ku, allowed;
	char d[48];
	int r, ret;

	if ((r = cert_parse(cert, certlen, &x)) != 0) {
		kerr_set(ei, "", "certificate is not a valid DER X.509 certificate");
		goto out;
	}
	if ((r = cert_parse(ca, calen, &xca)) != 0) {
		kerr_set(ei, "", "the organisation's CA certificate is not a valid DER X.509 certificate");
		goto out;
	}
	if ((r = asn1_time_unix(X509_get0_notBefore(x), &nb)) != 0 ||
	    (r = asn1_time_unix(X509_get0_notAfter(x), &na)) != 0 ||
	    (r = asn1_time_unix(X509_get0_notBefore(xca), &cnb)) != 0 ||
	    (r = asn1_time_unix(X509_get0_notAfter(xca), &cna)) != 0) {
		kerr_set(ei, "", "certificate validity dates cannot be read");
		goto out;
	}
	r = KERR_AUTH;
	if (now < nb) {
		fmt_date(d, sizeof(d), nb);
		kerr_set(ei, "", "certificate not valid before %s", d);
		goto out;
	}
	if (now > na) {
		fmt_date(d, sizeof(d), na);
		kerr_set(ei, "", "certificate expired on %s", d);
		goto out;
	}
	if (now < cnb) {
		fmt_date(d, sizeof(d), cnb);
		kerr_set(ei, "", "the organisation's CA certificate not valid before %s", d);
		goto out;
	}
	if (now > cna) {
		fmt_date(d, sizeof(d), cna);
		kerr_set(ei, "", "the organisation's CA certificate expired on %s", d);
		goto out;
	}
	if (X509_cmp(x, xca) == 0) {
		kerr_set(ei, "", "certificate is the organisation's CA certificate itself, not a user's");
		goto out;
	}
	if (!(st = X509_STORE_new()) || !(ctx = X509_STORE_CTX_new()) || X509_STORE_add_cert(st, xca) != 1 ||
	    X509_STORE_CTX_init(ctx, st, x, NULL) != 1 || !(param = X509_STORE_CTX_get0_param(ctx))) {
		r = ossl_fail(ei, "", KERR_CRYPTO, "cannot set up certificate verification");
		goto out;
	}
	/* the CA from the signed policy is the trust anchor even when it is an
	 * intermediate of a larger PKI */
	X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN);
	X509_VERIFY_PARAM_set_time(param, (time_t)now);
	X509_STORE_CTX_set_verify_cb(ctx, verify_cb);
	ret = X509_verify_cert(ctx);
	if (ret < 0) {
		r = ossl_fail(ei, "", KERR_CRYPTO, "certificate verification failed");
		goto out;
	}
	if (ret != 1) {
		verify_error(ei, X509_STORE_CTX_get_error(ctx), X509_STORE_CTX_get_error_depth(ctx), x, xca);
		goto out;
	}
	/* key usage, if present, must allow the key's use here */
	if (X509_get_extension_flags(x) & EXFLAG_KUSAGE) {
		ku = X509_get_key_usage(x);
		allowed = KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT;
		pk = X509_get0_pubkey(x);
		if (pk && (EVP_PKEY_is_a(pk, "EC") || EVP_PKEY_is_a(pk, "X25519")))
			allowed |= KU_KEY_AGREEMENT;
		if (!(ku & allowed)) {
			kerr_set(ei, "", "certificate key usage allows neither digitalSignature nor keyEncipherment");
			goto out;
		}
	}
	r = 0;
out:
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(st);
	X509_free(x);
	X509_free(xca);
	ERR_clear_error();
	return r;
}

int kx509_describe(const uint8_t *cert, size_t certlen, char *cn, size_t cnlen, int64_t *not_after)
{
	X509 *x = NULL;
	X509_NAME *name;
	X509_NAME_ENTRY *ent;
	BIO *bio = NULL;
	unsigned char *u8 = NULL;
	const unsigned char *src = NULL;
	char *mem = NULL;
	long memlen;
	size_t n = 0, o = 0, step;
	int r, idx, len;

	if ((r = cert_parse(cert, certlen, &x)) != 0)
		goto out;
	r = KERR_FORMAT;
	if (not_after && asn1_time_unix(X509_get0_notAfter(x), not_after) != 0)
		goto out;
	if (cn && cnlen) {
		cn[0] = 0;
		if (!(name = X509_get_subject_name(x)))
			goto out;
		idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
		if (idx >= 0) {
			if (!(ent = X509_NAME_get_entry(name, idx)) ||
			    (len = ASN1_STRING_to_UTF8(&u8, X509_NAME_ENTRY_get_data(ent))) < 0)
				goto out;
			src = u8;
			n = (size_t)len;
		} else {
			/* no CN: the whole subject, RFC 2253 style, UTF-8 kept */
			r = KERR_CRYPTO;
			if (!(bio = BIO_new(BIO_s_mem())) ||
			    X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0)
				goto out;
			memlen = BIO_get_mem_data(bio, &mem);
			src = (const unsigned char *)mem;
			n = memlen > 0 ? (size_t)memlen : 0;
		}
		/* display-safe copy: control characters (C0, DEL, C1) become '?',
		 * truncated on a UTF-8 character boundary */
		for (size_t i = 0; i < n; i += step) {
			unsigned char c = src[i];

			step = c < 0x80 ? 1 : c >= 0xf8 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
			if (i + step > n)
				step = 1; /* a character cut short: shown as '?' below */
			if (o + step >= cnlen)
				break;
			if (c < 0x20 || c == 0x7f || (c >= 0x80 && step == 1) ||
			    (c == 0xc2 && step == 2 && src[i + 1] < 0xa0)) {
				cn[o++] = '?';
			} else {
				memcpy(cn + o, src + i, step);
				o += step;
			}
		}
		cn[o] = 0;
	}
	r = 0;
out:
	OPENSSL_free(u8);
	BIO_free(bio);
	X509_free(x);
	ERR_clear_error();
	return r;
}

/* ---- sealing ---- */

/* AES-256-GCM, one shot, own context (the key schedule is freed on return).
 * enc: tag is written; else tag is the expected tag. */
static int gcm(bool enc, const uint8_t key[32], const uint8_t nonce[GCM_NONCE], const uint8_t *ad,
	       size_t adlen, const uint8_t *in, size_t len, uint8_t *out, uint8_t tag[GCM_TAG])
{
	EVP_CIPHER *ciph = NULL;
	EVP_CIPHER_CTX *c = NULL;
	int r = KERR_CRYPTO, l = 0;

	if (len > 1024 || adlen > 1024)
		goto out;
	if (!(ciph = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL)) || !(c = EVP_CIPHER_CTX_new()) ||
	    EVP_CipherInit_ex2(c, ciph, key, nonce, enc ? 1 : 0, NULL) != 1 ||
	    EVP_CipherUpdate(c, NULL, &l, ad, (int)adlen) != 1 ||
	    EVP_CipherUpdate(c, out, &l, in, (int)len) != 1)
		goto out;
	if (enc) {
		if (EVP_CipherFinal_ex(c, out + l, &l) != 1 ||
		    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, GCM_TAG, tag) != 1)
			goto out;
	} else {
		if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, GCM_TAG, tag) != 1)
			goto out;
		if (EVP_CipherFinal_ex(c, out + l, &l) != 1) {
			OPENSSL_cleanse(out, len);
			r = KERR_AUTH;
			goto out;
		}
	}
	r = 0;
out:
	EVP_CIPHER_CTX_free(c);
	EVP_CIPHER_free(ciph);
	ERR_clear_error();
	return r;
}

/* Z = ECDH(priv, peer) into z (ZMAX bytes, secure memory) */
static int ecdh(EVP_PKEY *priv, EVP_PKEY *peer, uint8_t *z, size_t *zlen)
{
	EVP_PKEY_CTX *c = NULL;
	size_t n = 0;
	int r = KERR_CRYPTO;

	if (!(c = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL)) || EVP_PKEY_derive_init(c) <= 0 ||
	    EVP_PKEY_derive_set_peer_ex(c, peer, 1) <= 0 || EVP_PKEY_derive(c, NULL, &n) <= 0 ||
	    n == 0 || n > ZMAX)
		goto out;
	*zlen = n;
	if (EVP_PKEY_derive(c, z, zlen) <= 0 || *zlen != n)
		goto out;
	r = 0;
out:
	EVP_PKEY_CTX_free(c);
	return r;
}

/* K = HKDF-SHA256(Z, info = label || version || alg || len16 epk || epk || len16 rpk || rpk) */
static int hkdf(const uint8_t *z, size_t zlen, uint8_t alg, const uint8_t *epk, size_t epklen,
		const uint8_t *rpk, size_t rpklen, uint8_t key[32])
{
	EVP_KDF *kdf = NULL;
	EVP_KDF_CTX *kc = NULL;
	OSSL_PARAM params[4];
	char digest[] = "SHA256";
	uint8_t info[sizeof(KDF_LABEL) + 2 + 2 * (2 + 133)];
	size_t n = sizeof(KDF_LABEL) - 1;
	int r = KERR_CRYPTO;

	if (epklen > 133 || rpklen > 133)
		goto out;
	memcpy(info, KDF_LABEL, n);
	info[n++] = BLOB_VERSION;
	info[n++] = alg;
	kput_le16(info + n, (uint16_t)epklen);
	memcpy(info + n + 2, epk, epklen);
	n += 2 + epklen;
	kput_le16(info + n, (uint16_t)rpklen);
	memcpy(info + n + 2, rpk, rpklen);
	n += 2 + rpklen;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)z, zlen);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, n);
	params[3] = OSSL_PARAM_construct_end();
	if (!(kdf = EVP_KDF_fetch(NULL, "HKDF", NULL)) || !(kc = EVP_KDF_CTX_new(kdf)) ||
	    EVP_KDF_derive(kc, key, 32, params) <= 0)
		goto out;
	r = 0;
out:
	EVP_KDF_CTX_free(kc);
	EVP_KDF_free(kdf);
	return r;
}

static int rsa_oaep_ctx(EVP_PKEY *pk, bool enc, EVP_PKEY_CTX **out)
{
	EVP_PKEY_CTX *c = NULL;
	int r = KERR_CRYPTO;

	if (!(c = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL)) ||
	    (enc ? EVP_PKEY_encrypt_init(c) : EVP_PKEY_decrypt_init(c)) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md_name(c, "SHA256", NULL) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md_name(c, "SHA256", NULL) <= 0)
		goto out;
	*out = c;
	c = NULL;
	r = 0;
out:
	EVP_PKEY_CTX_free(c);
	return r;
}

static int put_field(struct kbuf *w, const uint8_t *p, size_t n)
{
	int r = KERR_CRYPTO;

	if (n > UINT16_MAX)
		goto out;
	if ((r = kbuf_put_u16(w, (uint16_t)n)) != 0 || (r = kbuf_put_raw(w, p, n)) != 0)
		goto out;
	r = 0;
out:
	return r;
}

int kx509_seal(const uint8_t *cert, size_t certlen, const uint8_t secret[KX509_SECRETBYTES],
	       uint8_t **blob, size_t *bloblen, struct kerrinfo *ei)
{
	const struct kx_alg *alg = NULL;
	struct kbuf w;
	X509 *x = NULL;
	EVP_PKEY *pk, *eph = NULL;
	EVP_PKEY_CTX *pc = NULL;
	uint8_t *ct = NULL, *epk = NULL, *rpk = NULL, *z = NULL, *key = NULL;
	uint8_t nonce[GCM_NONCE], tag[GCM_TAG], gct[KX509_SECRETBYTES];
	size_t ctlen = 0, epklen = 0, rpklen = 0, zlen = 0;
	int r;

	kbuf_init_writer(&w);
	*blob = NULL;
	*bloblen = 0;
	if ((r = cert_parse(cert, certlen, &x)) != 0) {
		kerr_set(ei, "", "certificate is not a valid DER X.509 certificate");
		goto out;
	}
	if (!(pk = X509_get0_pubkey(x))) {
		r = ossl_fail(ei, "", KERR_FORMAT, "cannot decode the certificate's public key");
		goto out;
	}
	if ((r = key_alg(pk, &alg, ei)) != 0)
		goto out;
	if ((r = kbuf_put_u8(&w, BLOB_VERSION)) != 0 || (r = kbuf_put_u8(&w, alg->id)) != 0)
		goto out;
	if (alg->id == ALG_RSA_OAEP) {
		if (rsa_oaep_ctx(pk, true, &pc) != 0 ||
		    EVP_PKEY_encrypt(pc, NULL, &ctlen, secret, KX509_SECRETBYTES) <= 0) {
			r = ossl_fail(ei, "", KERR_CRYPTO, "RSA-OAEP encryption failed");
			goto out;
		}
		r = -ENOMEM;
		if (!(ct = malloc(ctlen)))
			goto out;
		if (EVP_PKEY_encrypt(pc, ct, &ctlen, secret, KX509_SECRETBYTES) <= 0) {
			r = ossl_fail(ei, "", KERR_CRYPTO, "RSA-OAEP encryption failed");
			goto out;
		}
		if ((r = put_field(&w, ct, ctlen)) != 0)
			goto out;
	} else {
		r = -ENOMEM;
		if (!(z = ksecmem_alloc(ZMAX)) || !(key = ksecmem_alloc(32)))
			goto out;
		eph = alg->group ? EVP_EC_gen(alg->group) : EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
		if (!eph || ecdh(eph, pk, z, &zlen) != 0 ||
		    (epklen = EVP_PKEY_get1_encoded_public_key(eph, &epk)) != alg->epklen ||
		    (rpklen = EVP_PKEY_get1_encoded_public_key(pk, &rpk)) == 0 ||
		    hkdf(z, zlen, alg->id, epk, epklen, rpk, rpklen, key) != 0 ||
		    kcrypto_nonce(nonce, sizeof(nonce)) != 0) {
			r = ossl_fail(ei, "", KERR_CRYPTO, "ECDH key agreement failed");
			goto out;
		}
		if ((r = put_field(&w, epk, epklen)) != 0 || (r = put_field(&w, nonce, sizeof(nonce))) != 0)
			goto out;
		/* AD: every byte before the ciphertext field */
		if ((r = gcm(true, key, nonce, w.p, w.len, secret, KX509_SECRETBYTES, gct, tag)) != 0) {
			kerr_set(ei, "", "AES-256-GCM encryption failed");
			goto out;
		}
		if ((r = put_field(&w, gct, sizeof(gct))) != 0 || (r = put_field(&w, tag, sizeof(tag))) != 0)
			goto out;
	}
	if (w.len > BLOB_MAX) {
		r = KERR_CRYPTO;
		kerr_set(ei, "", "sealed factor larger than %u bytes", BLOB_MAX);
		goto out;
	}
	*blob = w.p;
	*bloblen = w.len;
	kbuf_init_writer(&w);
	r = 0;
out:
	kbuf_free(&w);
	free(ct);
	OPENSSL_free(epk);
	OPENSSL_free(rpk);
	EVP_PKEY_free(eph);
	EVP_PKEY_CTX_free(pc);
	ksecmem_free(z);
	ksecmem_free(key);
	X509_free(x);
	ERR_clear_error();
	return r;
}

/* ---- opening ---- */

struct blob_view {
	const struct kx_alg *alg;
	const uint8_t *ct, *epk, *nonce, *tag;
	size_t ctlen, adlen; /* adlen: bytes before the ciphertext field */
};

/* one field whose length must be exactly `want` */
static int get_field(struct kbuf *b, const uint8_t **p, size_t want)
{
	uint16_t n = 0;
	int r;

	if ((r = kbuf_get_u16(b, &n)) != 0)
		goto out;
	if (n != want) {
		r = KERR_FORMAT;
		goto out;
	}
	r = kbuf_get_ptr(b, p, n);
out:
	return r;
}

static int blob_parse(const uint8_t *blob, size_t len, const struct kx_alg *alg, size_t rsalen,
		      struct blob_view *v, struct kerrinfo *ei)
{
	struct kbuf b;
	uint8_t ver = 0, id = 0;
	int r = KERR_FORMAT;

	memset(v, 0, sizeof(*v));
	if (!blob || len > BLOB_MAX) {
		kerr_set(ei, "", "sealed second factor has an impossible size (%zu bytes)", len);
		goto out;
	}
	kbuf_init_reader(&b, blob, len);
	if (kbuf_get_u8(&b, &ver) != 0 || kbuf_get_u8(&b, &id) != 0) {
		kerr_set(ei, "", "sealed second factor is truncated");
		goto out;
	}
	if (ver != BLOB_VERSION) {
		kerr_set(ei, "", "sealed second factor has unknown version %u", ver);
		goto out;
	}
	if (id != alg->id) {
		kerr_set(ei, "", "sealed second factor (algorithm %u) does not fit the certificate's key", id);
		goto out;
	}
	v->alg = alg;
	if (alg->id == ALG_RSA_OAEP) {
		v->adlen = b.off;
		if (get_field(&b, &v->ct, rsalen) != 0)
			goto bad;
		v->ctlen = rsalen;
	} else {
		if (get_field(&b, &v->epk, alg->epklen) != 0 || get_field(&b, &v->nonce, GCM_NONCE) != 0)
			goto bad;
		v->adlen = b.off;
		if (get_field(&b, &v->ct, KX509_SECRETBYTES) != 0 || get_field(&b, &v->tag, GCM_TAG) != 0)
			goto bad;
		v->ctlen = KX509_SECRETBYTES;
	}
	if (kbuf_expect_end(&b) != 0)
		goto bad;
	r = 0;
	goto out;
bad:
	kerr_set(ei, "", "sealed second factor is corrupt (bad field length or trailing bytes)");
out:
	return r;
}

struct pwcb {
	const char *pass;
	bool asked;
};

/* passphrase callback for PEM, OSSL_DECODER and OSSL_STORE: never prompts */
static int pw_cb(char *buf, int size, int rwflag, void *u)
{
	struct pwcb *pw = u;
	size_t n;
	int r = -1;

	(void)rwflag;
	if (!pw)
		goto out;
	pw->asked = true;
	if (!pw->pass || size <= 0)
		goto out;
	n = strlen(pw->pass);
	if (n > (size_t)size)
		goto out;
	memcpy(buf, pw->pass, n);
	r = (int)n;
out:
	return r;
}

/* PKCS#12: the key inside; a wrong password is told apart from a damaged file */
static int load_p12(PKCS12 *p12, const char *path, const char *pass, EVP_PKEY **pk, struct kerrinfo *ei)
{
	X509 *c = NULL;
	STACK_OF(X509) *cas = NULL;
	int r = KERR_FORMAT, ok = 1;

	if (PKCS12_mac_present(p12)) {
		if (pass && *pass)
			ok = PKCS12_verify_mac(p12, pass, -1);
		else
			ok = PKCS12_verify_mac(p12, NULL, 0) || PKCS12_verify_mac(p12, "", 0);
	}
	if (!ok) {
		r = KERR_FACTOR;
		kerr_set(ei, path, pass && *pass ? "wrong password for the PKCS#12 file" :
			 "the PKCS#12 file needs a password");
		goto out;
	}
	if (PKCS12_parse(p12, pass, pk, &c, &cas) != 1) {
		r = ossl_fail(ei, path, KERR_FORMAT, "cannot read the PKCS#12 file");
		goto out;
	}
	if (!*pk) {
		kerr_set(ei, path, "the PKCS#12 file holds no private key");
		goto out;
	}
	r = 0;
out:
	X509_free(c);
	sk_X509_pop_free(cas, X509_free);
	ERR_clear_error();
	return r;
}

/* A key file: PEM private key (any PEM blocks before it are skipped;
 * encrypted with `pass` or not), PKCS#12, or a DER private key. */
static int load_key_file(const char *path, const char *pass, EVP_PKEY **pk, struct kerrinfo *ei)
{
	struct pwcb pw = { pass, false };
	uint8_t *buf = NULL;
	const uint8_t *p;
	size_t len = 0, left;
	BIO *bio = NULL;
	PKCS12 *p12 = NULL;
	OSSL_DECODER_CTX *dc = NULL;
	int r;

	*pk = NULL;
	if ((r = read_file(path, KEYFILE_MAX, true, &buf, &len)) != 0) {
		file_error(ei, path, r, "cannot read the private key");
		goto out;
	}
	r = KERR_FORMAT;
	if (len == 0) {
		kerr_set(ei, path, "the private key file is empty");
		goto out;
	}
	if (memmem(buf, len, "-----BEGIN", 10)) {
		if (!(bio = BIO_new_mem_buf(buf, (int)len))) {
			r = ossl_fail(ei, path, KERR_CRYPTO, "cannot read the private key");
			goto out;
		}
		*pk = PEM_read_bio_PrivateKey_ex(bio, NULL, pw_cb, &pw, NULL, NULL);
	} else {
		p = buf;
		if ((p12 = d2i_PKCS12(NULL, &p, (long)len)) != NULL) {
			r = load_p12(p12, path, pass, pk, ei);
			goto out;
		}
		ERR_clear_error();
		p = buf;
		left = len;
		if (!(dc = OSSL_DECODER_CTX_new_for_pkey(pk, "DER", NULL, NULL, EVP_PKEY_KEYPAIR, NULL, NULL)) ||
		    OSSL_DECODER_CTX_set_pem_password_cb(dc, pw_cb, &pw) != 1) {
			r = ossl_fail(ei, path, KERR_CRYPTO, "cannot set up the key decoder");
			goto out;
		}
		if (OSSL_DECODER_from_data(dc, &p, &left) != 1) {
			EVP_PKEY_free(*pk);
			*pk = NULL;
		}
	}
	if (!*pk) {
		if (pw.asked) {
			r = KERR_FACTOR;
			kerr_set(ei, path, pass ? "wrong password for the private key" :
				 "the private key is encrypted: a password is needed");
		} else {
			r = ossl_fail(ei, path, KERR_FORMAT,
				      "not a private key (PEM, DER or PKCS#12 expected)");
		}
		goto out;
	}
	r = 0;
out:
	OSSL_DECODER_CTX_free(dc);
	PKCS12_free(p12);
	BIO_free(bio);
	ksecmem_free(buf);
	ERR_clear_error();
	return r;
}

/* "provider:URI": the first private key behind the URI that matches the
 * certificate (else the first private key, which then fails the match). */
static int load_key_store(const char *uri, const char *pass, EVP_PKEY *certpk, EVP_PKEY **pk,
			  struct kerrinfo *ei)
{
	struct pwcb pw = { pass, false };
	UI_METHOD *ui = NULL;
	OSSL_STORE_CTX *sc = NULL;
	OSSL_STORE_INFO *info = NULL;
	EVP_PKEY *k = NULL, *first = NULL;
	int r = KERR_CRYPTO;

	*pk = NULL;
	if (!(ui = UI_UTIL_wrap_read_pem_callback(pw_cb, 0))) {
		r = ossl_fail(ei, uri, KERR_CRYPTO, "cannot set up the passphrase callback");
		goto out;
	}
	if (!(sc = OSSL_STORE_open_ex(uri, NULL, NULL, ui, &pw, NULL, NULL, NULL))) {
		r = ossl_fail(ei, uri, KERR_FACTOR, "cannot open the private key URI");
		goto out;
	}
	(void)OSSL_STORE_expect(sc, OSSL_STORE_INFO_PKEY);
	for (int i = 0; i < STORE_MAX_OBJECTS && !*pk && !OSSL_STORE_eof(sc); i++) {
		if (!(info = OSSL_STORE_load(sc)))
			continue; /* an object that failed to load: try the next */
		if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY &&
		    (k = OSSL_STORE_INFO_get1_PKEY(info)) != NULL) {
			if (EVP_PKEY_eq(k, certpk) == 1) {
				*pk = k;
			} else if (!first) {
				first = k;
			} else {
				EVP_PKEY_free(k);
			}
			k = NULL;
		}
		OSSL_STORE_INFO_free(info);
		info = NULL;
	}
	if (!*pk) {
		*pk = first;
		first = NULL;
	}
	if (!*pk) {
		if (pw.asked) {
			r = KERR_FACTOR;
			kerr_set(ei, uri, pass ? "wrong PIN or password for the private key" :
				 "the private key needs a PIN or password");
		} else {
			r = ossl_fail(ei, uri, KERR_FACTOR, "no private key found behind the URI");
		}
		goto out;
	}
	r = 0;
out:
	OSSL_STORE_INFO_free(info);
	EVP_PKEY_free(first);
	if (sc)
		OSSL_STORE_close(sc);
	UI_destroy_method(ui);
	ERR_clear_error();
	return r;
}

static int peer_from_encoded(const struct kx_alg *alg, const uint8_t *p, size_t n, EVP_PKEY **out)
{
	EVP_PKEY_CTX *c = NULL;
	OSSL_PARAM params[3];
	char group[16];
	int r = KERR_FORMAT;

	*out = NULL;
	if (alg->id == ALG_X25519) {
		*out = EVP_PKEY_new_raw_public_key_ex(NULL, "X25519", NULL, p, n);
	} else {
		snprintf(group, sizeof(group), "%s", alg->group);
		params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0);
		params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)p, n);
		params[2] = OSSL_PARAM_construct_end();
		if (!(c = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) || EVP_PKEY_fromdata_init(c) <= 0 ||
		    EVP_PKEY_fromdata(c, out, EVP_PKEY_PUBLIC_KEY, params) <= 0)
			goto out;
	}
	if (*out)
		r = 0;
out:
	EVP_PKEY_CTX_free(c);
	return r;
}

int kx509_open(const char *key_path, const char *pass, const uint8_t *cert, size_t certlen,
	       const uint8_t *blob, size_t bloblen, uint8_t secret[KX509_SECRETBYTES],
	       struct kerrinfo *ei)
{
	const struct kx_alg *alg = NULL;
	struct blob_view v;
	X509 *x = NULL;
	EVP_PKEY *certpk, *priv = NULL, *peer = NULL;
	EVP_PKEY_CTX *pc = NULL;
	uint8_t *out = NULL, *z = NULL, *key = NULL, *rpk = NULL, tag[GCM_TAG];
	size_t outlen = 0, zlen = 0, rpklen;
	bool unsure = false;
	int r, eq, rsalen = 0;

	if (!key_path || !*key_path) {
		r = KERR_USAGE;
		kerr_set(ei, "", "no private key given for the certificate");
		goto out;
	}
	if ((r = cert_parse(cert, certlen, &x)) != 0) {
		kerr_set(ei, "", "certificate is not a valid DER X.509 certificate");
		goto out;
	}
	if (!(certpk = X509_get0_pubkey(x))) {
		r = ossl_fail(ei, "", KERR_FORMAT, "cannot decode the certificate's public key");
		goto out;
	}
	if ((r = key_alg(certpk, &alg, ei)) != 0)
		goto out;
	if (alg->id == ALG_RSA_OAEP)
		rsalen = EVP_PKEY_get_size(certpk);
	if ((r = blob_parse(blob, bloblen, alg, (size_t)rsalen, &v, ei)) != 0)
		goto out;

	if (strncmp(key_path, PROVIDER_PREFIX, strlen(PROVIDER_PREFIX)) == 0)
		r = load_key_store(key_path + strlen(PROVIDER_PREFIX), pass, certpk, &priv, ei);
	else
		r = load_key_file(key_path, pass, &priv, ei);
	if (r)
		goto out;
	eq = EVP_PKEY_eq(priv, certpk);
	if (eq == -2) {
		unsure = true; /* a provider that cannot compare: decryption decides */
	} else if (eq != 1) {
		r = KERR_AUTH;
		kerr_set(ei, key_path, "private key does not match the certificate");
		goto out;
	}

	r = -ENOMEM;
	if (alg->id == ALG_RSA_OAEP) {
		if (!(out = ksecmem_alloc((size_t)rsalen)))
			goto out;
		outlen = (size_t)rsalen;
		if (rsa_oaep_ctx(priv, false, &pc) != 0) {
			r = ossl_fail(ei, key_path, KERR_CRYPTO, "cannot set up RSA-OAEP decryption");
			goto out;
		}
		if (EVP_PKEY_decrypt(pc, out, &outlen, v.ct, v.ctlen) <= 0 || outlen != KX509_SECRETBYTES)
			goto undecryptable;
	} else {
		if (!(out = ksecmem_alloc(KX509_SECRETBYTES)) || !(z = ksecmem_alloc(ZMAX)) ||
		    !(key = ksecmem_alloc(32)))
			goto out;
		if (peer_from_encoded(alg, v.epk, alg->epklen, &peer) != 0) {
			r = KERR_FORMAT;
			kerr_set(ei, "", "sealed second factor is corrupt (bad ephemeral public key)");
			goto out;
		}
		if (ecdh(priv, peer, z, &zlen) != 0) {
			if (unsure)
				goto undecryptable;
			r = KERR_FORMAT;
			kerr_set(ei, "", "sealed second factor is corrupt (key agreement failed)");
			goto out;
		}
		if ((rpklen = EVP_PKEY_get1_encoded_public_key(certpk, &rpk)) == 0 ||
		    hkdf(z, zlen, alg->id, v.epk, alg->epklen, rpk, rpklen, key) != 0) {
			r = ossl_fail(ei, "", KERR_CRYPTO, "key derivation failed");
			goto out;
		}
		memcpy(tag, v.tag, GCM_TAG);
		if ((r = gcm(false, key, v.nonce, blob, v.adlen, v.ct, v.ctlen, out, tag)) != 0) {
			if (r == KERR_AUTH)
				goto undecryptable;
			kerr_set(ei, "", "AES-256-GCM decryption failed");
			goto out;
		}
	}
	memcpy(secret, out, KX509_SECRETBYTES);
	r = 0;
	goto out;
undecryptable:
	if (unsure) {
		r = KERR_AUTH;
		kerr_set(ei, key_path, "private key does not match the certificate");
	} else {
		r = KERR_FORMAT;
		kerr_set(ei, "", "sealed second factor is corrupt (it does not decrypt with the certificate's key)");
	}
out:
	ksecmem_free(out);
	ksecmem_free(z);
	ksecmem_free(key);
	OPENSSL_free(rpk);
	EVP_PKEY_CTX_free(pc);
	EVP_PKEY_free(peer);
	EVP_PKEY_free(priv);
	X509_free(x);
	ERR_clear_error();
	return r;
}

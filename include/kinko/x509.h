/* kinko x509: second factor (IC card / PKI). Part of the crypto module: the
 * only place besides crypto.c that includes OpenSSL. A user's key file can be
 * bound to an X.509 certificate issued by the organisation's CA: a random
 * 32-byte factor secret is encrypted to the certificate's public key and mixed
 * into the key-encryption key, so unlocking needs the password AND the
 * certificate's private key. */
#ifndef KINKO_X509_H
#define KINKO_X509_H

#include <stddef.h>
#include <stdint.h>

#include "kinko/crypto.h"

#define KX509_SECRETBYTES 32
#define KX509_MAX_DER (64u * 1024)

/* Read a certificate (PEM or DER file) into malloc'd DER bytes. */
int kx509_cert_load(const char *path, uint8_t **der, size_t *derlen, struct kerrinfo *ei) W_UNUSED;
/* SHA-256 of the DER certificate. */
void kx509_fingerprint(const uint8_t *der, size_t derlen, uint8_t out[32]);
/* Verify cert against the CA certificate (both DER) at time `now` (unix
 * seconds; the caller passes ktime_now() so test builds can move the clock):
 * signature chain to the CA, notBefore <= now <= notAfter for both, key usage
 * allows digitalSignature or keyEncipherment if present. On failure returns
 * KERR_AUTH and ei->detail says why in one line: "certificate expired on
 * 2026-01-01", "certificate not valid before ...", "certificate not issued by
 * the organisation's CA", ... */
int kx509_verify(const uint8_t *cert, size_t certlen, const uint8_t *ca, size_t calen, int64_t now,
		 struct kerrinfo *ei) W_UNUSED;
/* Encrypt secret (32 bytes) to the certificate's public key. RSA keys:
 * RSA-OAEP with SHA-256. EC keys (P-256, P-384) and X25519: ephemeral ECDH,
 * HKDF-SHA256 of the shared secret, AES-256-GCM. Output is a self-describing
 * malloc'd blob (version byte, algorithm byte, fields length-prefixed). */
int kx509_seal(const uint8_t *cert, size_t certlen, const uint8_t secret[KX509_SECRETBYTES],
	       uint8_t **blob, size_t *bloblen, struct kerrinfo *ei) W_UNUSED;
/* Load the private key from key_path (PEM private key, optionally encrypted
 * with `pass`, or a PKCS#12 file with `pass`; if key_path starts with
 * "provider:" the rest is a URI opened through OpenSSL's OSSL_STORE, for
 * tokens via an OpenSSL provider), check it matches the certificate's public
 * key, and decrypt the blob into secret (secret must be secure memory).
 * Wrong key -> KERR_AUTH with ei->detail "private key does not match the
 * certificate". Parsing of the blob is bounded: a corrupt blob is KERR_FORMAT. */
int kx509_open(const char *key_path, const char *pass, const uint8_t *cert, size_t certlen,
	       const uint8_t *blob, size_t bloblen, uint8_t secret[KX509_SECRETBYTES],
	       struct kerrinfo *ei) W_UNUSED;
/* Subject common name (UTF-8) and notAfter of a DER certificate, for display. */
int kx509_describe(const uint8_t *cert, size_t certlen, char *cn, size_t cnlen, int64_t *not_after) W_UNUSED;

#endif

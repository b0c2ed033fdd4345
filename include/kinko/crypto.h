/* kinko crypto: the only module that includes libsodium, OpenSSL and libargon2.
 * Shapes follow libsodium: sizes are named constants, open/verify are
 * warn_unused_result, failures are KERR_AUTH (tag/signature) or KERR_CRYPTO. */
#ifndef KINKO_CRYPTO_H
#define KINKO_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kinko/util.h"

#define KCRYPTO_KEYBYTES 32          /* content / epoch / MAC keys */
#define KCRYPTO_SIV_KEYBYTES 64      /* AES-256-SIV (two AES-256 keys) */
#define KCRYPTO_TAGBYTES 16
#define KCRYPTO_SIV_TAGBYTES 16
#define KCRYPTO_GCM_NONCEBYTES 12
#define KCRYPTO_XCHACHA_NONCEBYTES 24
#define KCRYPTO_NONCE_MAX 24
#define KCRYPTO_SIGN_PKBYTES 32
#define KCRYPTO_SIGN_SKBYTES 64
#define KCRYPTO_SIGN_SEEDBYTES 32
#define KCRYPTO_SIGBYTES 64
#define KCRYPTO_BOX_PKBYTES 32
#define KCRYPTO_BOX_SKBYTES 32
#define KCRYPTO_SEALBYTES 48         /* crypto_box_seal overhead */
#define KCRYPTO_WRAP_NONCEBYTES 24   /* XChaCha20-Poly1305 key wrapping */
#define KCRYPTO_SALTBYTES 16

enum kcrypto_suite {
	KSUITE_AES256GCM = 1,
	KSUITE_XCHACHA20POLY1305 = 2,
};

#define W_UNUSED __attribute__((warn_unused_result))

int kcrypto_init(void) W_UNUSED;
const char *kcrypto_suite_name(int suite);
int kcrypto_suite_from_name(const char *name); /* suite or KERR_USAGE */
size_t kcrypto_suite_noncebytes(int suite);     /* 0 if unknown */

/* ---- secure memory (sodium_malloc: guard pages, mlock, no dump) ---- */
void *ksecmem_alloc(size_t n);
void ksecmem_free(void *p); /* accepts NULL; wipes */
void ksecmem_wipe(void *p, size_t n);
/* re-apply mlock after fork() (memory locks are not inherited) */
void ksecmem_relock(void *p, size_t n);

void kcrypto_random(void *buf, size_t n);
/* nonces: OpenSSL's DRBG through a per-thread pool of 1 KiB (one DRBG call per
 * 85 GCM nonces; a forked child empties the pool it inherited) */
int kcrypto_nonce(void *buf, size_t n) W_UNUSED;
bool kcrypto_memeq(const void *a, const void *b, size_t n); /* constant time */

/* ---- content AEAD (detached tag). Key 32 bytes. ---- */
int kcrypto_aead_seal(int suite, const uint8_t *key, const uint8_t *nonce,
		      const uint8_t *ad, size_t adlen, const uint8_t *pt, size_t ptlen,
		      uint8_t *ct, uint8_t *tag) W_UNUSED;
int kcrypto_aead_open(int suite, const uint8_t *key, const uint8_t *nonce,
		      const uint8_t *ad, size_t adlen, const uint8_t *ct, size_t ctlen,
		      const uint8_t *tag, uint8_t *pt) W_UNUSED;
/* wipe per-thread cipher contexts (key schedules) */
void kcrypto_thread_scrub(void);
/* wipe every thread's cipher contexts; no other thread may be using them */
void kcrypto_scrub_all(void);
/* Between begin(key) and end(), calls with this same key pointer reuse the
 * thread's key schedule and set only the nonce (a batch of blocks of one file).
 * The caller keeps the key unchanged at that address until end(). */
void kcrypto_aead_batch_begin(const uint8_t *key);
void kcrypto_aead_batch_end(void);

/* ---- AES-256-SIV (RFC 5297), one AD component. out = tag(16) || ct ---- */
int kcrypto_siv_encrypt(const uint8_t key[KCRYPTO_SIV_KEYBYTES], const uint8_t *ad, size_t adlen,
			const uint8_t *pt, size_t ptlen, uint8_t *out) W_UNUSED;
int kcrypto_siv_decrypt(const uint8_t key[KCRYPTO_SIV_KEYBYTES], const uint8_t *ad, size_t adlen,
			const uint8_t *in, size_t inlen, uint8_t *pt) W_UNUSED;

/* ---- hashing, MAC, subkeys ---- */
/* BLAKE2b, keyed when key != NULL (keylen 16..64), outlen 16..64 */
int kcrypto_hash(uint8_t *out, size_t outlen, const uint8_t *key, size_t keylen,
		 const uint8_t *in, size_t inlen) W_UNUSED;
void kcrypto_sha256(uint8_t out[32], const uint8_t *in, size_t inlen);
/* kcrypto_hash without the stack scrub (callers that scrub once for many hashes) */
int kcrypto_hash_raw(uint8_t *out, size_t outlen, const uint8_t *key, size_t keylen,
		     const uint8_t *in, size_t inlen) W_UNUSED;
/* overwrite n bytes (<= 64 KiB) of this thread's stack below the caller:
 * after key derivations whose libraries leave secrets in dead frames */
void ksecmem_stack_scrub(size_t n);
/* subkey = BLAKE2b-KDF(key, id, ctx[8]) ; outlen 16..64 */
int kcrypto_subkey(uint8_t *out, size_t outlen, uint64_t id, const char ctx[8],
		   const uint8_t key[KCRYPTO_KEYBYTES]) W_UNUSED;

/* ---- Argon2id ---- */
#define KCRYPTO_ARGON2_MIN_MKIB (19u * 1024)        /* 19 MiB (OWASP minimum) */
#define KCRYPTO_ARGON2_MAX_MKIB (4u * 1024 * 1024)  /* 4 GiB */
#define KCRYPTO_ARGON2_MIN_T 1
#define KCRYPTO_ARGON2_MAX_T 64
#define KCRYPTO_ARGON2_MIN_P 1
#define KCRYPTO_ARGON2_MAX_P 16
#define KCRYPTO_ARGON2_DEF_MKIB (64u * 1024)
#define KCRYPTO_ARGON2_DEF_T 3
#define KCRYPTO_ARGON2_DEF_P 1
/* checks the parameters against min and max before deriving (KERR_KDFPARAM) */
int kcrypto_argon2id(uint8_t *out, size_t outlen, const char *pw, size_t pwlen,
		     const uint8_t salt[KCRYPTO_SALTBYTES], uint32_t m_kib, uint32_t t,
		     uint32_t p) W_UNUSED;

/* ---- key wrapping: XChaCha20-Poly1305, out = ct || tag (len + 16) ---- */
int kcrypto_wrap(const uint8_t key[32], const uint8_t nonce[24], const uint8_t *ad, size_t adlen,
		 const uint8_t *pt, size_t ptlen, uint8_t *out) W_UNUSED;
int kcrypto_unwrap(const uint8_t key[32], const uint8_t nonce[24], const uint8_t *ad,
		   size_t adlen, const uint8_t *in, size_t inlen, uint8_t *pt) W_UNUSED;

/* ---- Ed25519 ---- */
int kcrypto_sign_seed_keypair(uint8_t pk[32], uint8_t sk[64], const uint8_t seed[32]) W_UNUSED;
int kcrypto_sign(uint8_t sig[64], const uint8_t *msg, size_t len, const uint8_t sk[64]) W_UNUSED;
int kcrypto_verify(const uint8_t sig[64], const uint8_t *msg, size_t len,
		   const uint8_t pk[32]) W_UNUSED;

/* ---- X25519 sealed boxes ---- */
int kcrypto_box_seed_keypair(uint8_t pk[32], uint8_t sk[32], const uint8_t seed[32]) W_UNUSED;
int kcrypto_box_pk_from_sk(uint8_t pk[32], const uint8_t sk[32]) W_UNUSED;
int kcrypto_seal(uint8_t *out, const uint8_t *msg, size_t len, const uint8_t pk[32]) W_UNUSED;
int kcrypto_seal_open(uint8_t *msg, const uint8_t *in, size_t inlen, const uint8_t pk[32],
		      const uint8_t sk[32]) W_UNUSED;

/* ---- base64url without padding ---- */
size_t kcrypto_b64url_len(size_t n); /* encoded length, without NUL */
int kcrypto_b64url_encode(char *out, size_t outmax, const uint8_t *in, size_t n) W_UNUSED;
/* decodes; *outlen set; KERR_FORMAT on bad characters or trailing bits */
int kcrypto_b64url_decode(uint8_t *out, size_t outmax, size_t *outlen, const char *in,
			  size_t inlen) W_UNUSED;
/* standard base64 with padding (for JSON fields) */
int kcrypto_b64_encode(char *out, size_t outmax, const uint8_t *in, size_t n) W_UNUSED;
int kcrypto_b64_decode(uint8_t *out, size_t outmax, size_t *outlen, const char *in) W_UNUSED;

/* ---- streaming SHA-256 (backup manifests; src/crypto/sha256.c) ---- */
struct kcrypto_sha256 {
	_Alignas(16) uint8_t s[128]; /* crypto_hash_sha256_state */
};
void kcrypto_sha256_init(struct kcrypto_sha256 *h);
void kcrypto_sha256_update(struct kcrypto_sha256 *h, const void *d, size_t n);
void kcrypto_sha256_final(struct kcrypto_sha256 *h, uint8_t out[32]);

#endif

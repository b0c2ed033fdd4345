// SPDX-License-Identifier: GPL-2.0-or-later
/* The only file that talks to libsodium, OpenSSL and libargon2.
 * AES-256-GCM and AES-256-SIV go through OpenSSL EVP (hardware AES);
 * XChaCha20-Poly1305, BLAKE2b, Ed25519, X25519 sealed boxes through libsodium. */
#include <argon2.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sodium.h>

#include "kinko/crypto.h"

static EVP_CIPHER *evp_gcm, *evp_siv;
static pthread_key_t tls_key;
static bool tls_key_ok;

struct kthread_ctx {
	struct kthread_ctx *next, *prev; /* every thread's context, for kcrypto_scrub_all */
	EVP_CIPHER_CTX *enc, *dec, *siv;
	bool enc_ready, dec_ready;
	/* AES-SIV key schedules (CMAC subkeys, CTR key) for the last names key:
	 * each name copies a keyed template (1 us) instead of keying a context
	 * (3 us); cleansed with the other contexts */
	EVP_CIPHER_CTX *siv_enc_t, *siv_dec_t;
	bool siv_enc_ok, siv_dec_ok;
	/* copies of the keys the contexts are keyed with, to tell whether the
	 * next call has the same key: locked memory (sodium_malloc) */
	struct kthread_keys {
		uint8_t siv[KCRYPTO_SIV_KEYBYTES];
		uint8_t enc[KCRYPTO_KEYBYTES], dec[KCRYPTO_KEYBYTES];
	} *keys;
	/* a batch of blocks under one key: the key schedule is set once, and
	 * kept for the next batch under the same key (the next request to the
	 * same file): keys->enc/dec are the keys the contexts hold when
	 * enc_keyed/dec_keyed, enc_match/dec_match whether that is batch_key */
	const uint8_t *batch_key;
	bool enc_keyed, dec_keyed, enc_match, dec_match;
	/* nonces come from a per-thread pool filled by one DRBG call: a call per
	 * nonce costs about 0.6 us (locking, fork check), one per 85 nonces of
	 * a 1 KiB fill 0.01 us each. A forked child empties its copy (at_fork). */
	size_t nonce_left;
	uint8_t nonce_pool[1024];
};

static pthread_mutex_t ctx_list_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kthread_ctx *ctx_list;

/* the child of a fork must never hand out nonces its parent still holds */
static void at_fork_child(void)
{
	struct kthread_ctx *t = tls_key_ok ? pthread_getspecific(tls_key) : NULL;

	if (t) {
		OPENSSL_cleanse(t->nonce_pool, sizeof(t->nonce_pool));
		t->nonce_left = 0;
	}
}

static void tls_free(void *p)
{
	struct kthread_ctx *t = p;

	if (!t)
		return;
	pthread_mutex_lock(&ctx_list_lock);
	if (t->prev)
		t->prev->next = t->next;
	else if (ctx_list == t)
		ctx_list = t->next;
	if (t->next)
		t->next->prev = t->prev;
	pthread_mutex_unlock(&ctx_list_lock);
	EVP_CIPHER_CTX_free(t->enc);
	EVP_CIPHER_CTX_free(t->dec);
	EVP_CIPHER_CTX_free(t->siv);
	EVP_CIPHER_CTX_free(t->siv_enc_t);
	EVP_CIPHER_CTX_free(t->siv_dec_t);
	ksecmem_free(t->keys); /* wipes */
	OPENSSL_free(t);
}

static struct kthread_ctx *tctx(void)
{
	struct kthread_ctx *t = pthread_getspecific(tls_key);

	if (t)
		return t;
	t = OPENSSL_zalloc(sizeof(*t));
	if (!t)
		return NULL;
	t->enc = EVP_CIPHER_CTX_new();
	t->dec = EVP_CIPHER_CTX_new();
	t->siv = EVP_CIPHER_CTX_new();
	t->siv_enc_t = EVP_CIPHER_CTX_new();
	t->siv_dec_t = EVP_CIPHER_CTX_new();
	t->keys = ksecmem_alloc(sizeof(*t->keys));
	if (!t->enc || !t->dec || !t->siv || !t->siv_enc_t || !t->siv_dec_t || !t->keys ||
	    pthread_setspecific(tls_key, t) != 0) {
		tls_free(t);
		return NULL;
	}
	pthread_mutex_lock(&ctx_list_lock);
	t->next = ctx_list;
	if (ctx_list)
		ctx_list->prev = t;
	ctx_list = t;
	pthread_mutex_unlock(&ctx_list_lock);
	return t;
}

int kcrypto_init(void)
{
	if (sodium_init() < 0)
		return KERR_CRYPTO;
	if (evp_gcm)
		return 0;
	evp_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
	evp_siv = EVP_CIPHER_fetch(NULL, "AES-256-SIV", NULL);
	if (!evp_gcm || !evp_siv)
		return KERR_CRYPTO;
	if (pthread_key_create(&tls_key, tls_free) != 0)
		return KERR_CRYPTO;
	tls_key_ok = true;
	if (pthread_atfork(NULL, NULL, at_fork_child) != 0)
		return KERR_CRYPTO;
	return 0;
}

const char *kcrypto_suite_name(int suite)
{
	switch (suite) {
	case KSUITE_AES256GCM: return "aes-256-gcm";
	case KSUITE_XCHACHA20POLY1305: return "xchacha20-poly1305";
	default: return "unknown";
	}
}

int kcrypto_suite_from_name(const char *name)
{
	if (strcmp(name, "aes-256-gcm") == 0)
		return KSUITE_AES256GCM;
	if (strcmp(name, "xchacha20-poly1305") == 0)
		return KSUITE_XCHACHA20POLY1305;
	return KERR_USAGE;
}

size_t kcrypto_suite_noncebytes(int suite)
{
	switch (suite) {
	case KSUITE_AES256GCM: return KCRYPTO_GCM_NONCEBYTES;
	case KSUITE_XCHACHA20POLY1305: return KCRYPTO_XCHACHA_NONCEBYTES;
	default: return 0;
	}
}

void *ksecmem_alloc(size_t n)
{
	void *p = sodium_malloc(n);

	if (p)
		sodium_memzero(p, n);
	return p;
}

void ksecmem_free(void *p)
{
	if (p)
		sodium_free(p); /* wipes before unmapping */
}

void ksecmem_wipe(void *p, size_t n) { sodium_memzero(p, n); }

void ksecmem_relock(void *p, size_t n)
{
	if (p)
		(void)sodium_mlock(p, n);
}

void kcrypto_random(void *buf, size_t n) { randombytes_buf(buf, n); }

int kcrypto_nonce(void *buf, size_t n)
{
	struct kthread_ctx *t = tctx();

	if (!t || n > sizeof(t->nonce_pool) / 4)
		return RAND_bytes(buf, (int)n) == 1 ? 0 : KERR_CRYPTO;
	if (t->nonce_left < n) {
		if (RAND_bytes(t->nonce_pool, (int)sizeof(t->nonce_pool)) != 1)
			return KERR_CRYPTO;
		t->nonce_left = sizeof(t->nonce_pool);
	}
	/* handed out from the end (nonces are public: nothing to wipe) */
	t->nonce_left -= n;
	memcpy(buf, t->nonce_pool + t->nonce_left, n);
	return 0;
}

bool kcrypto_memeq(const void *a, const void *b, size_t n) { return sodium_memcmp(a, b, n) == 0; }

/* ---- content AEAD ---- */

static int gcm_seal(const uint8_t *key, const uint8_t *nonce, const uint8_t *ad, size_t adlen,
		    const uint8_t *pt, size_t ptlen, uint8_t *ct, uint8_t *tag)
{
	struct kthread_ctx *t = tctx();
	int l1 = 0, l2 = 0;

	if (!t || ptlen > INT32_MAX || adlen > INT32_MAX)
		return KERR_CRYPTO;
	if (!t->enc_ready) {
		if (EVP_EncryptInit_ex2(t->enc, evp_gcm, NULL, NULL, NULL) != 1)
			return KERR_CRYPTO;
		t->enc_ready = true;
	}
	if (t->batch_key == key && t->enc_match) {
		if (EVP_EncryptInit_ex2(t->enc, NULL, NULL, nonce, NULL) != 1)
			return KERR_CRYPTO;
	} else {
		t->enc_keyed = t->enc_match = false;
		if (EVP_EncryptInit_ex2(t->enc, NULL, key, nonce, NULL) != 1)
			return KERR_CRYPTO;
		if (t->batch_key == key) {
			memcpy(t->keys->enc, key, sizeof(t->keys->enc));
			t->enc_keyed = t->enc_match = true;
		}
	}
	if ((adlen && EVP_EncryptUpdate(t->enc, NULL, &l1, ad, (int)adlen) != 1) ||
	    EVP_EncryptUpdate(t->enc, ct, &l1, pt, (int)ptlen) != 1 ||
	    EVP_EncryptFinal_ex(t->enc, ct + l1, &l2) != 1 ||
	    EVP_CIPHER_CTX_ctrl(t->enc, EVP_CTRL_AEAD_GET_TAG, KCRYPTO_TAGBYTES, tag) != 1)
		return KERR_CRYPTO;
	return 0;
}

static int gcm_open(const uint8_t *key, const uint8_t *nonce, const uint8_t *ad, size_t adlen,
		    const uint8_t *ct, size_t ctlen, const uint8_t *tag, uint8_t *pt)
{
	struct kthread_ctx *t = tctx();
	int l1 = 0, l2 = 0;

	if (!t || ctlen > INT32_MAX || adlen > INT32_MAX)
		return KERR_CRYPTO;
	if (!t->dec_ready) {
		if (EVP_DecryptInit_ex2(t->dec, evp_gcm, NULL, NULL, NULL) != 1)
			return KERR_CRYPTO;
		t->dec_ready = true;
	}
	if (t->batch_key == key && t->dec_match) {
		if (EVP_DecryptInit_ex2(t->dec, NULL, NULL, nonce, NULL) != 1)
			return KERR_CRYPTO;
	} else {
		t->dec_keyed = t->dec_match = false;
		if (EVP_DecryptInit_ex2(t->dec, NULL, key, nonce, NULL) != 1)
			return KERR_CRYPTO;
		if (t->batch_key == key) {
			memcpy(t->keys->dec, key, sizeof(t->keys->dec));
			t->dec_keyed = t->dec_match = true;
		}
	}
	if ((adlen && EVP_DecryptUpdate(t->dec, NULL, &l1, ad, (int)adlen) != 1) ||
	    EVP_DecryptUpdate(t->dec, pt, &l1, ct, (int)ctlen) != 1 ||
	    EVP_CIPHER_CTX_ctrl(t->dec, EVP_CTRL_AEAD_SET_TAG, KCRYPTO_TAGBYTES, (void *)tag) != 1)
		return KERR_CRYPTO;
	if (EVP_DecryptFinal_ex(t->dec, pt + l1, &l2) != 1) {
		sodium_memzero(pt, ctlen);
		return KERR_AUTH;
	}
	return 0;
}

int kcrypto_aead_seal(int suite, const uint8_t *key, const uint8_t *nonce, const uint8_t *ad,
		      size_t adlen, const uint8_t *pt, size_t ptlen, uint8_t *ct, uint8_t *tag)
{
	switch (suite) {
	case KSUITE_AES256GCM:
		return gcm_seal(key, nonce, ad, adlen, pt, ptlen, ct, tag);
	case KSUITE_XCHACHA20POLY1305:
		if (crypto_aead_xchacha20poly1305_ietf_encrypt_detached(ct, tag, NULL, pt, ptlen, ad,
									adlen, NULL, nonce, key) != 0)
			return KERR_CRYPTO;
		return 0;
	default:
		return KERR_VERSION;
	}
}

int kcrypto_aead_open(int suite, const uint8_t *key, const uint8_t *nonce, const uint8_t *ad,
		      size_t adlen, const uint8_t *ct, size_t ctlen, const uint8_t *tag, uint8_t *pt)
{
	switch (suite) {
	case KSUITE_AES256GCM:
		return gcm_open(key, nonce, ad, adlen, ct, ctlen, tag, pt);
	case KSUITE_XCHACHA20POLY1305:
		if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(pt, NULL, ct, ctlen, tag, ad,
									adlen, nonce, key) != 0)
			return KERR_AUTH;
		return 0;
	default:
		return KERR_VERSION;
	}
}

void kcrypto_aead_batch_begin(const uint8_t *key)
{
	struct kthread_ctx *t = tctx();

	if (t) {
		t->batch_key = key;
		t->enc_match = t->enc_keyed && CRYPTO_memcmp(t->keys->enc, key, sizeof(t->keys->enc)) == 0;
		t->dec_match = t->dec_keyed && CRYPTO_memcmp(t->keys->dec, key, sizeof(t->keys->dec)) == 0;
	}
}

void kcrypto_aead_batch_end(void)
{
	struct kthread_ctx *t = pthread_getspecific(tls_key);

	if (t) {
		t->batch_key = NULL;
		t->enc_match = t->dec_match = false;
	}
}

static void ctx_scrub(struct kthread_ctx *t)
{
	/* EVP_CIPHER_CTX_reset cleanses the provider context (key schedule) */
	if (t->enc_ready)
		EVP_CIPHER_CTX_reset(t->enc);
	if (t->dec_ready)
		EVP_CIPHER_CTX_reset(t->dec);
	EVP_CIPHER_CTX_reset(t->siv);
	EVP_CIPHER_CTX_reset(t->siv_enc_t);
	EVP_CIPHER_CTX_reset(t->siv_dec_t);
	t->siv_enc_ok = t->siv_dec_ok = false;
	if (t->keys)
		sodium_memzero(t->keys, sizeof(*t->keys));
	t->enc_ready = t->dec_ready = false;
	t->batch_key = NULL;
	t->enc_keyed = t->dec_keyed = t->enc_match = t->dec_match = false;
}

void kcrypto_thread_scrub(void)
{
	struct kthread_ctx *t = pthread_getspecific(tls_key);

	if (t)
		ctx_scrub(t);
}

void kcrypto_scrub_all(void)
{
	pthread_mutex_lock(&ctx_list_lock);
	for (struct kthread_ctx *t = ctx_list; t; t = t->next)
		ctx_scrub(t);
	pthread_mutex_unlock(&ctx_list_lock);
}

/* ---- AES-SIV ---- */

/* the thread's keyed template for key (encrypting or decrypting) */
static int siv_template(struct kthread_ctx *t, const uint8_t key[KCRYPTO_SIV_KEYBYTES], bool enc)
{
	bool *ok = enc ? &t->siv_enc_ok : &t->siv_dec_ok;
	EVP_CIPHER_CTX *c = enc ? t->siv_enc_t : t->siv_dec_t;

	if ((t->siv_enc_ok || t->siv_dec_ok) && CRYPTO_memcmp(t->keys->siv, key, sizeof(t->keys->siv)) != 0) {
		EVP_CIPHER_CTX_reset(t->siv_enc_t);
		EVP_CIPHER_CTX_reset(t->siv_dec_t);
		t->siv_enc_ok = t->siv_dec_ok = false;
	}
	if (*ok)
		return 0;
	if ((enc ? EVP_EncryptInit_ex2(c, evp_siv, key, NULL, NULL)
		 : EVP_DecryptInit_ex2(c, evp_siv, key, NULL, NULL)) != 1) {
		EVP_CIPHER_CTX_reset(c);
		return KERR_CRYPTO;
	}
	memcpy(t->keys->siv, key, sizeof(t->keys->siv));
	*ok = true;
	return 0;
}

int kcrypto_siv_encrypt(const uint8_t key[KCRYPTO_SIV_KEYBYTES], const uint8_t *ad, size_t adlen,
			const uint8_t *pt, size_t ptlen, uint8_t *out)
{
	struct kthread_ctx *t = tctx();
	int l = 0, r = KERR_CRYPTO;

	if (!t || ptlen == 0 || ptlen > 65536 || adlen > 65536)
		return KERR_CRYPTO;
	if (siv_template(t, key, true) != 0 || EVP_CIPHER_CTX_copy(t->siv, t->siv_enc_t) != 1 ||
	    (adlen && EVP_EncryptUpdate(t->siv, NULL, &l, ad, (int)adlen) != 1) ||
	    EVP_EncryptUpdate(t->siv, out + KCRYPTO_SIV_TAGBYTES, &l, pt, (int)ptlen) != 1 ||
	    EVP_EncryptFinal_ex(t->siv, out + KCRYPTO_SIV_TAGBYTES + l, &l) != 1 ||
	    EVP_CIPHER_CTX_ctrl(t->siv, EVP_CTRL_AEAD_GET_TAG, KCRYPTO_SIV_TAGBYTES, out) != 1)
		goto out;
	r = 0;
out:
	EVP_CIPHER_CTX_reset(t->siv);
	return r;
}

int kcrypto_siv_decrypt(const uint8_t key[KCRYPTO_SIV_KEYBYTES], const uint8_t *ad, size_t adlen,
			const uint8_t *in, size_t inlen, uint8_t *pt)
{
	struct kthread_ctx *t = tctx();
	int l = 0, r = KERR_CRYPTO;
	size_t ctlen;

	if (!t || inlen <= KCRYPTO_SIV_TAGBYTES || inlen > 65536 + KCRYPTO_SIV_TAGBYTES ||
	    adlen > 65536)
		return inlen <= KCRYPTO_SIV_TAGBYTES ? KERR_AUTH : KERR_CRYPTO;
	ctlen = inlen - KCRYPTO_SIV_TAGBYTES;
	if (siv_template(t, key, false) != 0 || EVP_CIPHER_CTX_copy(t->siv, t->siv_dec_t) != 1 ||
	    EVP_CIPHER_CTX_ctrl(t->siv, EVP_CTRL_AEAD_SET_TAG, KCRYPTO_SIV_TAGBYTES,
				(void *)in) != 1 ||
	    (adlen && EVP_DecryptUpdate(t->siv, NULL, &l, ad, (int)adlen) != 1))
		goto out;
	r = KERR_AUTH;
	if (EVP_DecryptUpdate(t->siv, pt, &l, in + KCRYPTO_SIV_TAGBYTES, (int)ctlen) != 1 ||
	    EVP_DecryptFinal_ex(t->siv, pt + l, &l) != 1) {
		sodium_memzero(pt, ctlen);
		goto out;
	}
	r = 0;
out:
	EVP_CIPHER_CTX_reset(t->siv);
	return r;
}

/* ---- hashing ---- */

/* libsodium's BLAKE2b leaves its 64-byte output buffer (and key block) on
 * the stack below the caller: overwrite the stack those frames used */
__attribute__((noinline)) void ksecmem_stack_scrub(size_t n)
{
	uint8_t buf[65536];

	sodium_memzero(buf, n < sizeof(buf) ? n : sizeof(buf));
	__asm__ __volatile__("" : : "r"(buf) : "memory");
}

#define HASH_STACK 4096

int kcrypto_hash(uint8_t *out, size_t outlen, const uint8_t *key, size_t keylen, const uint8_t *in,
		 size_t inlen)
{
	int r;

	r = kcrypto_hash_raw(out, outlen, key, keylen, in, inlen);
	if (key)
		ksecmem_stack_scrub(HASH_STACK);
	return r;
}

int kcrypto_hash_raw(uint8_t *out, size_t outlen, const uint8_t *key, size_t keylen,
		     const uint8_t *in, size_t inlen)
{
	if (outlen < crypto_generichash_BYTES_MIN || outlen > crypto_generichash_BYTES_MAX)
		return KERR_CRYPTO;
	if (key && (keylen < crypto_generichash_KEYBYTES_MIN ||
		    keylen > crypto_generichash_KEYBYTES_MAX))
		return KERR_CRYPTO;
	if (crypto_generichash(out, outlen, in, inlen, key, key ? keylen : 0) != 0)
		return KERR_CRYPTO;
	return 0;
}

void kcrypto_sha256(uint8_t out[32], const uint8_t *in, size_t inlen)
{
	crypto_hash_sha256(out, in, inlen);
}

int kcrypto_subkey(uint8_t *out, size_t outlen, uint64_t id, const char ctx[8],
		   const uint8_t key[KCRYPTO_KEYBYTES])
{
	int r = crypto_kdf_derive_from_key(out, outlen, id, ctx, key) != 0 ? KERR_CRYPTO : 0;

	ksecmem_stack_scrub(HASH_STACK);
	return r;
}

/* ---- Argon2id ---- */

static int argon2_to_err(int rc)
{
	switch (rc) {
	case ARGON2_OK: return 0;
	case ARGON2_MEMORY_ALLOCATION_ERROR: return -ENOMEM;
	default: return KERR_CRYPTO;
	}
}

int kcrypto_argon2id(uint8_t *out, size_t outlen, const char *pw, size_t pwlen,
		     const uint8_t salt[KCRYPTO_SALTBYTES], uint32_t m_kib, uint32_t t, uint32_t p)
{
	if (m_kib < KCRYPTO_ARGON2_MIN_MKIB || m_kib > KCRYPTO_ARGON2_MAX_MKIB ||
	    t < KCRYPTO_ARGON2_MIN_T || t > KCRYPTO_ARGON2_MAX_T || p < KCRYPTO_ARGON2_MIN_P ||
	    p > KCRYPTO_ARGON2_MAX_P || m_kib < 8 * p)
		return KERR_KDFPARAM;
	return argon2_to_err(argon2id_hash_raw(t, m_kib, p, pw, pwlen, salt, KCRYPTO_SALTBYTES, out,
					       outlen));
}

/* ---- key wrapping ---- */

int kcrypto_wrap(const uint8_t key[32], const uint8_t nonce[24], const uint8_t *ad, size_t adlen,
		 const uint8_t *pt, size_t ptlen, uint8_t *out)
{
	if (crypto_aead_xchacha20poly1305_ietf_encrypt(out, NULL, pt, ptlen, ad, adlen, NULL, nonce,
						       key) != 0)
		return KERR_CRYPTO;
	return 0;
}

int kcrypto_unwrap(const uint8_t key[32], const uint8_t nonce[24], const uint8_t *ad, size_t adlen,
		   const uint8_t *in, size_t inlen, uint8_t *pt)
{
	if (inlen < KCRYPTO_TAGBYTES)
		return KERR_FORMAT;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(pt, NULL, NULL, in, inlen, ad, adlen, nonce,
						       key) != 0)
		return KERR_AUTH;
	return 0;
}

/* ---- Ed25519 ---- */

int kcrypto_sign_seed_keypair(uint8_t pk[32], uint8_t sk[64], const uint8_t seed[32])
{
	return crypto_sign_seed_keypair(pk, sk, seed) == 0 ? 0 : KERR_CRYPTO;
}

int kcrypto_sign(uint8_t sig[64], const uint8_t *msg, size_t len, const uint8_t sk[64])
{
	return crypto_sign_detached(sig, NULL, msg, len, sk) == 0 ? 0 : KERR_CRYPTO;
}

int kcrypto_verify(const uint8_t sig[64], const uint8_t *msg, size_t len, const uint8_t pk[32])
{
	return crypto_sign_verify_detached(sig, msg, len, pk) == 0 ? 0 : KERR_AUTH;
}

/* ---- sealed boxes ---- */

int kcrypto_box_seed_keypair(uint8_t pk[32], uint8_t sk[32], const uint8_t seed[32])
{
	return crypto_box_seed_keypair(pk, sk, seed) == 0 ? 0 : KERR_CRYPTO;
}

int kcrypto_box_pk_from_sk(uint8_t pk[32], const uint8_t sk[32])
{
	return crypto_scalarmult_base(pk, sk) == 0 ? 0 : KERR_CRYPTO;
}

int kcrypto_seal(uint8_t *out, const uint8_t *msg, size_t len, const uint8_t pk[32])
{
	return crypto_box_seal(out, msg, len, pk) == 0 ? 0 : KERR_CRYPTO;
}

int kcrypto_seal_open(uint8_t *msg, const uint8_t *in, size_t inlen, const uint8_t pk[32],
		      const uint8_t sk[32])
{
	if (inlen < KCRYPTO_SEALBYTES)
		return KERR_FORMAT;
	return crypto_box_seal_open(msg, in, inlen, pk, sk) == 0 ? 0 : KERR_AUTH;
}

/* ---- base64 ---- */

size_t kcrypto_b64url_len(size_t n)
{
	return sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING) - 1;
}

int kcrypto_b64url_encode(char *out, size_t outmax, const uint8_t *in, size_t n)
{
	if (outmax < kcrypto_b64url_len(n) + 1)
		return -ENAMETOOLONG;
	sodium_bin2base64(out, outmax, in, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return 0;
}

/* libsodium 1.0.18 reads bytes 0x80-0xff as a valid last character: refuse
 * anything outside the alphabet first, so every encoding is canonical */
static bool b64_alphabet(const char *in, size_t n, bool url)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
			continue;
		if (url ? (c == '-' || c == '_') : (c == '+' || c == '/' || c == '='))
			continue;
		return false;
	}
	return true;
}

int kcrypto_b64url_decode(uint8_t *out, size_t outmax, size_t *outlen, const char *in, size_t inlen)
{
	const char *end = NULL;

	if (!b64_alphabet(in, inlen, true))
		return KERR_FORMAT;

	if (sodium_base642bin(out, outmax, in, inlen, NULL, outlen, &end,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    end != in + inlen)
		return KERR_FORMAT;
	return 0;
}

int kcrypto_b64_encode(char *out, size_t outmax, const uint8_t *in, size_t n)
{
	if (outmax < sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL))
		return -ENOSPC;
	sodium_bin2base64(out, outmax, in, n, sodium_base64_VARIANT_ORIGINAL);
	return 0;
}

int kcrypto_b64_decode(uint8_t *out, size_t outmax, size_t *outlen, const char *in)
{
	const char *end = NULL;
	size_t inlen = strlen(in);

	if (!b64_alphabet(in, inlen, false))
		return KERR_FORMAT;

	if (sodium_base642bin(out, outmax, in, inlen, NULL, outlen, &end,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    end != in + inlen)
		return KERR_FORMAT;
	return 0;
}

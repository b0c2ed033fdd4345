// SPDX-License-Identifier: GPL-2.0-or-later
/* crypto: known-answer vectors for every primitive kinko uses, output sizes,
 * and that any single-bit change of ciphertext, tag, AD or nonce fails to open. */
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <time.h>

#include <argon2.h>

#include "kt.h"

/* ---------------- helpers ---------------- */

#define GUARD 0xc5
#define GUARDLEN 32

static void guard_check(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		kt_check(p[i] == GUARD, "write past the documented size at +%zu", i);
}

/* Open with every single bit of ct, tag, ad and nonce flipped in turn: each
 * must fail with KERR_AUTH and must not hand out the plaintext. */
static void aead_flip_all(int suite, const uint8_t *key, uint8_t *nonce, size_t nlen, uint8_t *ad,
			  size_t adlen, uint8_t *ct, size_t ctlen, uint8_t *tag, const uint8_t *pt)
{
	struct {
		const char *what;
		uint8_t *p;
		size_t n;
	} parts[] = { { "ct", ct, ctlen }, { "tag", tag, 16 }, { "ad", ad, adlen }, { "nonce", nonce, nlen } };
	uint8_t *out = malloc(ctlen + 1);

	assert_non_null(out);
	/* untouched: opens */
	assert_int_equal(kcrypto_aead_open(suite, key, nonce, ad, adlen, ct, ctlen, tag, out), 0);
	assert_memory_equal(out, pt, ctlen);
	for (size_t k = 0; k < sizeof(parts) / sizeof(parts[0]); k++) {
		for (size_t bit = 0; bit < parts[k].n * 8; bit++) {
			int r;

			parts[k].p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			memset(out, 0xee, ctlen + 1);
			r = kcrypto_aead_open(suite, key, nonce, ad, adlen, ct, ctlen, tag, out);
			parts[k].p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			kt_check(r == KERR_AUTH, "suite %d: %s bit %zu flipped: r=%d", suite, parts[k].what,
				 bit, r);
			kt_check(ctlen < 4 || memcmp(out, pt, ctlen) != 0,
				 "suite %d: plaintext released on failure", suite);
		}
	}
	/* shorter or missing AD, shorter ciphertext */
	if (adlen) {
		assert_int_equal(kcrypto_aead_open(suite, key, nonce, ad, adlen - 1, ct, ctlen, tag, out),
				 KERR_AUTH);
		assert_int_equal(kcrypto_aead_open(suite, key, nonce, NULL, 0, ct, ctlen, tag, out),
				 KERR_AUTH);
	}
	if (ctlen)
		assert_int_equal(kcrypto_aead_open(suite, key, nonce, ad, adlen, ct, ctlen - 1, tag, out),
				 KERR_AUTH);
	/* and it still opens afterwards (nothing was left modified) */
	assert_int_equal(kcrypto_aead_open(suite, key, nonce, ad, adlen, ct, ctlen, tag, out), 0);
	free(out);
}

/* ---------------- AES-256-GCM ---------------- */

/* McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", test cases
 * 13, 14, 15 and 16 (256-bit key). */
static void test_gcm_kat(void **state)
{
	uint8_t key[32], iv[12], pt[64], ad[20], expect[64], tag[16], ctbuf[64 + GUARDLEN],
		out[64];
	size_t ptlen, adlen;

	(void)state;
	/* test case 13: zero key, zero IV, empty P, empty A */
	memset(key, 0, 32);
	memset(iv, 0, 12);
	assert_int_equal(kcrypto_aead_seal(KSUITE_AES256GCM, key, iv, NULL, 0, NULL, 0, ctbuf, tag), 0);
	kt_unhex(expect, 16, "530f8afbc74536b9a963b4f1c4cb738b");
	assert_memory_equal(tag, expect, 16);
	assert_int_equal(kcrypto_aead_open(KSUITE_AES256GCM, key, iv, NULL, 0, ctbuf, 0, tag, out), 0);

	/* test case 14: 16 zero bytes */
	memset(pt, 0, 16);
	memset(ctbuf, GUARD, sizeof(ctbuf));
	assert_int_equal(kcrypto_aead_seal(KSUITE_AES256GCM, key, iv, NULL, 0, pt, 16, ctbuf, tag), 0);
	kt_unhex(expect, 16, "cea7403d4d606b6e074ec5d3baf39d18");
	assert_memory_equal(ctbuf, expect, 16);
	guard_check(ctbuf + 16, GUARDLEN);
	kt_unhex(expect, 16, "d0d1c8a799996bf0265b98b5d48ab919");
	assert_memory_equal(tag, expect, 16);

	/* test case 15: 64-byte P, no A */
	kt_unhex(key, 32, "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
	kt_unhex(iv, 12, "cafebabefacedbaddecaf888");
	ptlen = kt_unhex(pt, 64,
			 "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
			 "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255");
	memset(ctbuf, GUARD, sizeof(ctbuf));
	assert_int_equal(kcrypto_aead_seal(KSUITE_AES256GCM, key, iv, NULL, 0, pt, ptlen, ctbuf, tag), 0);
	kt_unhex(expect, 64,
		 "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
		 "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad");
	assert_memory_equal(ctbuf, expect, 64);
	guard_check(ctbuf + 64, GUARDLEN);
	kt_unhex(expect, 16, "b094dac5d93471bdec1a502270e3cc6c");
	assert_memory_equal(tag, expect, 16);

	/* test case 16: 60-byte P, 20-byte A */
	ptlen = 60;
	adlen = kt_unhex(ad, 20, "feedfacedeadbeeffeedfacedeadbeefabaddad2");
	memset(ctbuf, GUARD, sizeof(ctbuf));
	assert_int_equal(kcrypto_aead_seal(KSUITE_AES256GCM, key, iv, ad, adlen, pt, ptlen, ctbuf, tag), 0);
	kt_unhex(expect, 60,
		 "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
		 "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662");
	assert_memory_equal(ctbuf, expect, 60);
	guard_check(ctbuf + 60, GUARDLEN);
	kt_unhex(expect, 16, "76fc6ece0f4e1768cddf8853bb2d551b");
	assert_memory_equal(tag, expect, 16);

	memset(out, 0, sizeof(out));
	assert_int_equal(kcrypto_aead_open(KSUITE_AES256GCM, key, iv, ad, adlen, ctbuf, ptlen, tag, out), 0);
	assert_memory_equal(out, pt, ptlen);
	aead_flip_all(KSUITE_AES256GCM, key, iv, 12, ad, adlen, ctbuf, ptlen, tag, pt);
}

/* ---------------- XChaCha20-Poly1305 ---------------- */

/* draft-irtf-cfrg-xchacha-03, appendix A.3.1 */
static const char xc_pt[] = "Ladies and Gentlemen of the class of '99: If I could offer you only "
			    "one tip for the future, sunscreen would be it.";
static const char xc_ct_hex[] =
	"bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb"
	"731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452"
	"2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
	"21f9664c97637da9768812f615c68b13b52e";
static const char xc_tag_hex[] = "c0875924c1c7987947deafd8780acf49";

static void xc_params(uint8_t key[32], uint8_t nonce[24], uint8_t ad[12])
{
	kt_unhex(key, 32, "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
	kt_unhex(nonce, 24, "404142434445464748494a4b4c4d4e4f5051525354555657");
	kt_unhex(ad, 12, "50515253c0c1c2c3c4c5c6c7");
}

static void test_xchacha_kat(void **state)
{
	uint8_t key[32], nonce[24], ad[12], expect[114], etag[16], ct[114 + GUARDLEN], tag[16],
		out[114];
	size_t ptlen = strlen(xc_pt);

	(void)state;
	assert_int_equal(ptlen, 114);
	xc_params(key, nonce, ad);
	kt_unhex(expect, sizeof(expect), xc_ct_hex);
	kt_unhex(etag, 16, xc_tag_hex);
	memset(ct, GUARD, sizeof(ct));
	assert_int_equal(kcrypto_aead_seal(KSUITE_XCHACHA20POLY1305, key, nonce, ad, sizeof(ad),
					   (const uint8_t *)xc_pt, ptlen, ct, tag), 0);
	assert_memory_equal(ct, expect, ptlen);
	assert_memory_equal(tag, etag, 16);
	guard_check(ct + ptlen, GUARDLEN);
	assert_int_equal(kcrypto_aead_open(KSUITE_XCHACHA20POLY1305, key, nonce, ad, sizeof(ad), ct,
					   ptlen, tag, out), 0);
	assert_memory_equal(out, xc_pt, ptlen);
	aead_flip_all(KSUITE_XCHACHA20POLY1305, key, nonce, 24, ad, sizeof(ad), ct, ptlen, tag,
		      (const uint8_t *)xc_pt);
}

/* kcrypto_wrap is the same AEAD with the tag appended: the same vector applies */
static void test_wrap_kat(void **state)
{
	uint8_t key[32], nonce[24], ad[12], expect[114 + 16], out[114 + 16 + GUARDLEN], pt[114];
	size_t ptlen = strlen(xc_pt);

	(void)state;
	xc_params(key, nonce, ad);
	kt_unhex(expect, 114, xc_ct_hex);
	kt_unhex(expect + 114, 16, xc_tag_hex);
	memset(out, GUARD, sizeof(out));
	assert_int_equal(kcrypto_wrap(key, nonce, ad, sizeof(ad), (const uint8_t *)xc_pt, ptlen, out), 0);
	assert_memory_equal(out, expect, sizeof(expect));
	guard_check(out + sizeof(expect), GUARDLEN);
	assert_int_equal(kcrypto_unwrap(key, nonce, ad, sizeof(ad), out, 130, pt), 0);
	assert_memory_equal(pt, xc_pt, ptlen);
	for (size_t bit = 0; bit < 130 * 8; bit++) {
		out[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		kt_check(kcrypto_unwrap(key, nonce, ad, sizeof(ad), out, 130, pt) == KERR_AUTH,
			 "wrapped bit %zu", bit);
		out[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	for (size_t bit = 0; bit < 24 * 8; bit++) {
		nonce[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		kt_check(kcrypto_unwrap(key, nonce, ad, sizeof(ad), out, 130, pt) == KERR_AUTH,
			 "nonce bit %zu", bit);
		nonce[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	for (size_t bit = 0; bit < sizeof(ad) * 8; bit++) {
		ad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		kt_check(kcrypto_unwrap(key, nonce, ad, sizeof(ad), out, 130, pt) == KERR_AUTH,
			 "ad bit %zu", bit);
		ad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	/* too short to hold a tag: a format error, not a crash */
	for (size_t n = 0; n < 16; n++)
		assert_int_equal(kcrypto_unwrap(key, nonce, ad, sizeof(ad), out, n, pt), KERR_FORMAT);
	/* the tag alone (empty plaintext) only opens if it was made that way */
	assert_int_equal(kcrypto_unwrap(key, nonce, ad, sizeof(ad), out, 16, pt), KERR_AUTH);
	assert_int_equal(kcrypto_wrap(key, nonce, NULL, 0, NULL, 0, out), 0);
	assert_int_equal(kcrypto_unwrap(key, nonce, NULL, 0, out, 16, pt), 0);
}

/* round trips of both suites over many lengths, with the unknown-suite error */
static void test_aead_roundtrip_sizes(void **state)
{
	static const int suites[] = { KSUITE_AES256GCM, KSUITE_XCHACHA20POLY1305 };
	uint8_t key[32], nonce[24], ad[25], pt[4096], ct[4096 + GUARDLEN], tag[16 + GUARDLEN],
		out[4096];

	(void)state;
	kt_fill(key, 32, 1);
	kt_fill(nonce, 24, 2);
	kt_fill(ad, 25, 3);
	kt_fill(pt, sizeof(pt), 4);
	for (size_t s = 0; s < 2; s++) {
		static const size_t big[] = { 63, 64, 65, 1000, 4095, 4096 };

		for (size_t li = 0; li < 41 + sizeof(big) / sizeof(big[0]); li++) {
			size_t len = li < 41 ? li : big[li - 41];

			memset(ct, GUARD, sizeof(ct));
			memset(tag, GUARD, sizeof(tag));
			assert_int_equal(kcrypto_aead_seal(suites[s], key, nonce, ad, 25, pt, len, ct, tag), 0);
			guard_check(ct + len, GUARDLEN);
			guard_check(tag + 16, GUARDLEN);
			assert_int_equal(kcrypto_aead_open(suites[s], key, nonce, ad, 25, ct, len, tag, out), 0);
			assert_memory_equal(out, pt, len);
			if (len >= 16)
				assert_memory_not_equal(ct, pt, len);
		}
		/* same inputs, same output; other key, other output */
		{
			uint8_t ct2[64], tag2[16];

			assert_int_equal(kcrypto_aead_seal(suites[s], key, nonce, ad, 25, pt, 64, ct, tag), 0);
			assert_int_equal(kcrypto_aead_seal(suites[s], key, nonce, ad, 25, pt, 64, ct2, tag2), 0);
			assert_memory_equal(ct, ct2, 64);
			assert_memory_equal(tag, tag2, 16);
			key[0] ^= 1;
			assert_int_equal(kcrypto_aead_open(suites[s], key, nonce, ad, 25, ct, 64, tag, out),
					 KERR_AUTH);
			key[0] ^= 1;
		}
		/* the two suites are different ciphers */
	}
	assert_int_equal(kcrypto_aead_seal(0, key, nonce, ad, 25, pt, 16, ct, tag), KERR_VERSION);
	assert_int_equal(kcrypto_aead_seal(3, key, nonce, ad, 25, pt, 16, ct, tag), KERR_VERSION);
	assert_int_equal(kcrypto_aead_open(3, key, nonce, ad, 25, ct, 16, tag, out), KERR_VERSION);

	/* per-thread contexts can be scrubbed between requests and come back */
	assert_int_equal(kcrypto_aead_seal(KSUITE_AES256GCM, key, nonce, ad, 25, pt, 100, ct, tag), 0);
	kcrypto_thread_scrub();
	assert_int_equal(kcrypto_aead_open(KSUITE_AES256GCM, key, nonce, ad, 25, ct, 100, tag, out), 0);
	assert_memory_equal(out, pt, 100);
	kcrypto_thread_scrub();
	kcrypto_thread_scrub();
	{
		uint8_t ct2[100], tag2[16];

		assert_int_equal(kcrypto_aead_seal(KSUITE_AES256GCM, key, nonce, ad, 25, pt, 100, ct2, tag2), 0);
		assert_memory_equal(ct2, ct, 100);
		assert_memory_equal(tag2, tag, 16);
	}
}

static void test_suites(void **state)
{
	(void)state;
	assert_string_equal(kcrypto_suite_name(KSUITE_AES256GCM), "aes-256-gcm");
	assert_string_equal(kcrypto_suite_name(KSUITE_XCHACHA20POLY1305), "xchacha20-poly1305");
	assert_string_equal(kcrypto_suite_name(0), "unknown");
	assert_int_equal(kcrypto_suite_from_name("aes-256-gcm"), KSUITE_AES256GCM);
	assert_int_equal(kcrypto_suite_from_name("xchacha20-poly1305"), KSUITE_XCHACHA20POLY1305);
	assert_int_equal(kcrypto_suite_from_name("AES-256-GCM"), KERR_USAGE);
	assert_int_equal(kcrypto_suite_from_name(""), KERR_USAGE);
	assert_int_equal(kcrypto_suite_noncebytes(KSUITE_AES256GCM), 12);
	assert_int_equal(kcrypto_suite_noncebytes(KSUITE_XCHACHA20POLY1305), 24);
	assert_int_equal(kcrypto_suite_noncebytes(0), 0);
	assert_int_equal(kcrypto_suite_noncebytes(255), 0);
	assert_true(KCRYPTO_NONCE_MAX >= KCRYPTO_XCHACHA_NONCEBYTES);
}

/* ---------------- AES-256-SIV ---------------- */

/* Expected outputs produced with python3-cryptography's AESSIV (64-byte key,
 * one AD component, output = SIV || ciphertext) by tests/vectors/gen_kat_vectors.py:
 *   AESSIV(bytes(range(64))).encrypt(pt, [bytes(range(0xa0, 0xb0))]) */
static const struct {
	const char *name;
	size_t ptlen;
	bool ad;
	const char *out_hex;
} siv_kat[] = {
	{ "kinko", 5, true, "009bb75af2488fadbd50c5b158dd6c7a24e32a9a3d" },
	{ "block16", 16, true, "fe8a1ef12cfeb762b155a1f1ee29ae2bffaf87175aa6a8cbdb52b286351fce10" },
	{ "long100", 100, true,
	  "9195da76aed75ea85c718ecac9c8b2feacc60168043cf9a4f199a0eece2c1e72e8596e0a9dc7fb53d855c1c7"
	  "0a8938e06a54381ec497a922d0d42bfdc6b1336c31fd101daee6b0d03aa3bcf0ed63cd069e1c53ea5908a4af"
	  "ad465129bb840015c7b0fbb1b6c2288c00d42c3d44cff56c6a5c058a" },
	{ "noad", 18, false, "f9dc9a470165f0891414d350934447e382a7994dd8671b2609dc72b978c1eaf3fa5e" },
};

static void siv_kat_pt(const char *name, uint8_t *pt, size_t len)
{
	if (strcmp(name, "kinko") == 0)
		memcpy(pt, "kinko", 5);
	else if (strcmp(name, "block16") == 0)
		for (size_t i = 0; i < len; i++)
			pt[i] = (uint8_t)i;
	else if (strcmp(name, "long100") == 0)
		for (size_t i = 0; i < len; i++)
			pt[i] = (uint8_t)(i * 7);
	else
		memcpy(pt, "no associated data", 18);
}

static void test_siv_kat(void **state)
{
	uint8_t key[64], ad[16], pt[128], out[16 + 128 + GUARDLEN], expect[16 + 128], back[128];

	(void)state;
	for (int i = 0; i < 64; i++)
		key[i] = (uint8_t)i;
	for (int i = 0; i < 16; i++)
		ad[i] = (uint8_t)(0xa0 + i);
	for (size_t c = 0; c < sizeof(siv_kat) / sizeof(siv_kat[0]); c++) {
		size_t n = siv_kat[c].ptlen, adlen = siv_kat[c].ad ? 16 : 0;

		siv_kat_pt(siv_kat[c].name, pt, n);
		assert_int_equal(kt_unhex(expect, sizeof(expect), siv_kat[c].out_hex), 16 + n);
		memset(out, GUARD, sizeof(out));
		assert_int_equal(kcrypto_siv_encrypt(key, siv_kat[c].ad ? ad : NULL, adlen, pt, n, out), 0);
		kt_check(memcmp(out, expect, 16 + n) == 0, "SIV vector %s", siv_kat[c].name);
		guard_check(out + 16 + n, GUARDLEN);
		memset(back, 0, sizeof(back));
		assert_int_equal(kcrypto_siv_decrypt(key, siv_kat[c].ad ? ad : NULL, adlen, out, 16 + n, back), 0);
		assert_memory_equal(back, pt, n);

		/* every bit of tag||ct, of the AD and of the key */
		for (size_t bit = 0; bit < (16 + n) * 8; bit++) {
			int r;

			out[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			r = kcrypto_siv_decrypt(key, siv_kat[c].ad ? ad : NULL, adlen, out, 16 + n, back);
			out[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			kt_check(r == KERR_AUTH, "SIV %s: bit %zu of tag||ct: r=%d", siv_kat[c].name, bit, r);
		}
		for (size_t bit = 0; bit < adlen * 8; bit++) {
			ad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			kt_check(kcrypto_siv_decrypt(key, ad, adlen, out, 16 + n, back) == KERR_AUTH,
				 "SIV %s: AD bit %zu", siv_kat[c].name, bit);
			ad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		}
		for (size_t bit = 0; bit < 64 * 8; bit += 7) {
			key[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			kt_check(kcrypto_siv_decrypt(key, siv_kat[c].ad ? ad : NULL, adlen, out, 16 + n, back) ==
					 KERR_AUTH,
				 "SIV %s: key bit %zu", siv_kat[c].name, bit);
			key[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		}
		/* dropping or adding the AD component changes the result */
		if (adlen)
			assert_int_equal(kcrypto_siv_decrypt(key, NULL, 0, out, 16 + n, back), KERR_AUTH);
		else
			assert_int_equal(kcrypto_siv_decrypt(key, ad, 16, out, 16 + n, back), KERR_AUTH);
		/* truncated */
		assert_int_equal(kcrypto_siv_decrypt(key, siv_kat[c].ad ? ad : NULL, adlen, out, 15 + n, back),
				 KERR_AUTH);
	}
	/* deterministic */
	{
		uint8_t o1[32], o2[32];

		assert_int_equal(kcrypto_siv_encrypt(key, ad, 16, pt, 16, o1), 0);
		assert_int_equal(kcrypto_siv_encrypt(key, ad, 16, pt, 16, o2), 0);
		assert_memory_equal(o1, o2, 32);
	}
	/* keyed templates are per thread and per key: two keys interleaved, and a
	 * scrub between, give the vector every time (and decrypt across keys fails) */
	{
		uint8_t key2[64], o1[16 + 5], o2[16 + 5], kat[16 + 5], back5[5];

		for (int i = 0; i < 64; i++)
			key2[i] = (uint8_t)(0x40 + i);
		assert_int_equal(kt_unhex(kat, sizeof(kat), siv_kat[0].out_hex), sizeof(kat));
		for (int round = 0; round < 3; round++) {
			assert_int_equal(kcrypto_siv_encrypt(key, ad, 16, (const uint8_t *)"kinko", 5, o1), 0);
			assert_memory_equal(o1, kat, sizeof(kat));
			assert_int_equal(kcrypto_siv_encrypt(key2, ad, 16, (const uint8_t *)"kinko", 5, o2), 0);
			kt_check(memcmp(o1, o2, sizeof(o1)) != 0, "SIV: two keys, one output");
			assert_int_equal(kcrypto_siv_decrypt(key, ad, 16, o2, sizeof(o2), back5), KERR_AUTH);
			assert_int_equal(kcrypto_siv_decrypt(key2, ad, 16, o2, sizeof(o2), back5), 0);
			assert_memory_equal(back5, "kinko", 5);
			assert_int_equal(kcrypto_siv_decrypt(key, ad, 16, o1, sizeof(o1), back5), 0);
			if (round == 1)
				kcrypto_thread_scrub();
		}
	}
	/* bounds: empty plaintext is refused; tag-only or shorter input fails auth */
	assert_int_equal(kcrypto_siv_encrypt(key, ad, 16, pt, 0, out), KERR_CRYPTO);
	for (size_t n = 0; n <= 16; n++)
		assert_int_equal(kcrypto_siv_decrypt(key, ad, 16, out, n, back), KERR_AUTH);
}

/* ---------------- BLAKE2b, SHA-256, subkeys ---------------- */

static void test_blake2b_kat(void **state)
{
	uint8_t key[64], in[255], out[64], expect[64];

	(void)state;
	/* RFC 7693 appendix A: BLAKE2b-512("abc") */
	assert_int_equal(kcrypto_hash(out, 64, NULL, 0, (const uint8_t *)"abc", 3), 0);
	kt_unhex(expect, 64,
		 "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1"
		 "7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923");
	assert_memory_equal(out, expect, 64);

	/* reference implementation blake2b-kat.txt (keyed, key = 00..3f):
	 * in = empty, in = 00, in = 00..fe */
	for (int i = 0; i < 64; i++)
		key[i] = (uint8_t)i;
	for (int i = 0; i < 255; i++)
		in[i] = (uint8_t)i;
	assert_int_equal(kcrypto_hash(out, 64, key, 64, in, 0), 0);
	kt_unhex(expect, 64,
		 "10ebb67700b1868efb4417987acf4690ae9d972fb7a590c2f02871799aaa4786"
		 "b5e996e8f0f4eb981fc214b005f42d2ff4233499391653df7aefcbc13fc51568");
	assert_memory_equal(out, expect, 64);
	assert_int_equal(kcrypto_hash(out, 64, key, 64, in, 1), 0);
	kt_unhex(expect, 64,
		 "961f6dd1e4dd30f63901690c512e78e4b45e4742ed197c3c5e45c549fd25f2e4"
		 "187b0bc9fe30492b16b0d0bc4ef9b0f34c7003fac09a5ef1532e69430234cebd");
	assert_memory_equal(out, expect, 64);
	assert_int_equal(kcrypto_hash(out, 64, key, 64, in, 255), 0);
	kt_unhex(expect, 64,
		 "142709d62e28fcccd0af97fad0f8465b971e82201dc51070faa0372aa43e9248"
		 "4be1c1e73ba10906d5d1853db6a4106e0a7bf9800d373d6dee2d46d62ef2a461");
	assert_memory_equal(out, expect, 64);

	/* bounds: output 16..64, key 16..64 */
	assert_int_equal(kcrypto_hash(out, 16, key, 16, in, 3), 0);
	assert_int_equal(kcrypto_hash(out, 15, key, 64, in, 3), KERR_CRYPTO);
	assert_int_equal(kcrypto_hash(out, 65, key, 64, in, 3), KERR_CRYPTO);
	assert_int_equal(kcrypto_hash(out, 32, key, 15, in, 3), KERR_CRYPTO);
	assert_int_equal(kcrypto_hash(out, 32, key, 65, in, 3), KERR_CRYPTO);
	assert_int_equal(kcrypto_hash(out, 32, NULL, 15, in, 3), 0); /* keylen ignored without key */
	/* keyed and unkeyed differ; the key matters */
	{
		uint8_t a[32], b[32];

		assert_int_equal(kcrypto_hash(a, 32, NULL, 0, in, 10), 0);
		assert_int_equal(kcrypto_hash(b, 32, key, 32, in, 10), 0);
		assert_memory_not_equal(a, b, 32);
		key[31] ^= 1;
		assert_int_equal(kcrypto_hash(a, 32, key, 32, in, 10), 0);
		assert_memory_not_equal(a, b, 32);
	}
}

static void test_sha256_kat(void **state)
{
	static const char two_block[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	uint8_t out[32], expect[32];

	(void)state;
	/* FIPS 180-2 examples */
	kcrypto_sha256(out, (const uint8_t *)"abc", 3);
	kt_unhex(expect, 32, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_memory_equal(out, expect, 32);
	kcrypto_sha256(out, (const uint8_t *)"", 0);
	kt_unhex(expect, 32, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_memory_equal(out, expect, 32);
	kcrypto_sha256(out, (const uint8_t *)two_block, strlen(two_block));
	kt_unhex(expect, 32, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	assert_memory_equal(out, expect, 32);
}

static void test_subkey(void **state)
{
	uint8_t key[32], a[64], b[64], c[64];

	(void)state;
	kt_fill(key, 32, 9);
	assert_int_equal(kcrypto_subkey(a, 32, 1, "kinkoEP1", key), 0);
	assert_int_equal(kcrypto_subkey(b, 32, 1, "kinkoEP1", key), 0);
	assert_memory_equal(a, b, 32);
	assert_int_equal(kcrypto_subkey(c, 32, 2, "kinkoEP1", key), 0);
	assert_memory_not_equal(a, c, 32);
	assert_int_equal(kcrypto_subkey(c, 32, 1, "kinkoEP2", key), 0);
	assert_memory_not_equal(a, c, 32);
	assert_int_equal(kcrypto_subkey(c, 64, 1, "kinkoEP1", key), 0);
	assert_int_equal(kcrypto_subkey(c, 16, 1, "kinkoEP1", key), 0);
	assert_int_equal(kcrypto_subkey(c, 15, 1, "kinkoEP1", key), KERR_CRYPTO);
	assert_int_equal(kcrypto_subkey(c, 65, 1, "kinkoEP1", key), KERR_CRYPTO);
}

/* ---------------- Argon2id ---------------- */

static long maxrss_kib(void)
{
	struct rusage ru;

	assert_int_equal(getrusage(RUSAGE_SELF, &ru), 0);
	return ru.ru_maxrss;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Out-of-range parameters are refused with KERR_KDFPARAM before anything is
 * derived or allocated. This runs first in the group, so the peak RSS has
 * not yet been raised by a real derivation: a hostile m (up to 4 TiB) that
 * reached argon2 would either fail differently (-ENOMEM/KERR_CRYPTO) or
 * raise the peak RSS and take seconds. */
static void test_argon2_bounds(void **state)
{
	static const struct {
		uint32_t m, t, p;
	} bad[] = {
		{ KCRYPTO_ARGON2_MIN_MKIB - 1, 3, 1 },
		{ 8, 1, 1 },
		{ 0, 1, 1 },
		{ KCRYPTO_ARGON2_MAX_MKIB + 1, 1, 1 },
		{ UINT32_MAX, 1, 1 },
		{ KCRYPTO_ARGON2_MAX_MKIB, 0, 1 },
		{ KCRYPTO_ARGON2_MAX_MKIB, KCRYPTO_ARGON2_MAX_T + 1, 1 },
		{ KCRYPTO_ARGON2_MAX_MKIB, UINT32_MAX, 1 },
		{ KCRYPTO_ARGON2_MAX_MKIB, 1, 0 },
		{ KCRYPTO_ARGON2_MAX_MKIB, 1, KCRYPTO_ARGON2_MAX_P + 1 },
		{ KCRYPTO_ARGON2_MAX_MKIB, 1, UINT32_MAX },
		{ UINT32_MAX, UINT32_MAX, UINT32_MAX },
		{ KCRYPTO_ARGON2_MIN_MKIB, KCRYPTO_ARGON2_MIN_T - 1, KCRYPTO_ARGON2_MIN_P },
		{ KCRYPTO_ARGON2_MIN_MKIB, KCRYPTO_ARGON2_MIN_T, KCRYPTO_ARGON2_MIN_P - 1 },
	};
	uint8_t out[32], salt[16];
	long rss0 = maxrss_kib();
	double t0 = now_s();

	(void)state;
	assert_true(KCRYPTO_ARGON2_MIN_MKIB == 19u * 1024);
	assert_true(KCRYPTO_ARGON2_MAX_MKIB == 4u * 1024 * 1024);
	memset(salt, 1, sizeof(salt));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(out, 0x77, sizeof(out));
		kt_check(kcrypto_argon2id(out, 32, "pw", 2, salt, bad[i].m, bad[i].t, bad[i].p) ==
				 KERR_KDFPARAM,
			 "m=%u t=%u p=%u accepted", bad[i].m, bad[i].t, bad[i].p);
		for (size_t j = 0; j < sizeof(out); j++)
			assert_int_equal(out[j], 0x77);
	}
	kt_check(now_s() - t0 < 0.5, "refusals took %.3f s: something was derived", now_s() - t0);
	kt_check(maxrss_kib() - rss0 < 8 * 1024, "peak RSS grew by %ld KiB", maxrss_kib() - rss0);
	assert_string_not_equal(kinko_strerror(KERR_KDFPARAM), "unknown error");
}

/* the reference implementation's own test (src/test.c, Argon2id v1.3):
 * hashtest(0x13, 2, 16, 1, "password", "somesalt", "09316115...") -- run through
 * the library kinko links, so a mismatched libargon2 is caught too */
static void test_argon2_reference_vector(void **state)
{
	uint8_t out[32], expect[32];

	(void)state;
	assert_int_equal(argon2id_hash_raw(2, 1u << 16, 1, "password", 8, "somesalt", 8, out, 32), ARGON2_OK);
	kt_unhex(expect, 32, "09316115d5cf24ed5a15a31a3ba326e5cf32edc24702987c02b6566f61913cf7");
	assert_memory_equal(out, expect, 32);
}

/* kcrypto_argon2id with kinko's 16-byte salt at the minimum memory cost;
 * expected bytes from python3-cryptography's Argon2id (tests/vectors/gen_kat_vectors.py) */
static void test_argon2_kinko_vectors(void **state)
{
	uint8_t out[32], expect[32];
	const uint8_t *salt = (const uint8_t *)"somesaltsomesalt";

	(void)state;
	assert_int_equal(kcrypto_argon2id(out, 32, "password", 8, salt, KCRYPTO_ARGON2_MIN_MKIB, 2, 1), 0);
	kt_unhex(expect, 32, "2b5dc4054886ec957ef59c73b661c54dd6fb274590b278f657c6d96aac8fa6d1");
	assert_memory_equal(out, expect, 32);
	assert_int_equal(kcrypto_argon2id(out, 32, "password", 8, salt, KCRYPTO_ARGON2_MIN_MKIB, 1, 2), 0);
	kt_unhex(expect, 32, "099a1e5cea9ad5576f39bc510cd388da7168018e1e9f81f18841d2c8a62e5f9b");
	assert_memory_equal(out, expect, 32);
	/* the password length is honoured (not NUL-terminated semantics) */
	assert_int_equal(kcrypto_argon2id(out, 32, "password", 7, salt, KCRYPTO_ARGON2_MIN_MKIB, 1, 2), 0);
	assert_memory_not_equal(out, expect, 32);
}

/* ---------------- Ed25519 ---------------- */

static void ed25519_case(const char *seed_hex, const char *pk_hex, const uint8_t *msg, size_t len,
			 const char *sig_hex)
{
	uint8_t seed[32], pk[32], sk[64], sig[64], epk[32], esig[64];

	kt_unhex(seed, 32, seed_hex);
	kt_unhex(epk, 32, pk_hex);
	kt_unhex(esig, 64, sig_hex);
	assert_int_equal(kcrypto_sign_seed_keypair(pk, sk, seed), 0);
	assert_memory_equal(pk, epk, 32);
	assert_memory_equal(sk, seed, 32);
	assert_memory_equal(sk + 32, pk, 32);
	assert_int_equal(kcrypto_sign(sig, msg, len, sk), 0);
	assert_memory_equal(sig, esig, 64);
	assert_int_equal(kcrypto_verify(sig, msg, len, pk), 0);
	for (size_t bit = 0; bit < 512; bit++) {
		sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		kt_check(kcrypto_verify(sig, msg, len, pk) == KERR_AUTH, "sig bit %zu", bit);
		sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	for (size_t bit = 0; bit < 256; bit++) {
		pk[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		kt_check(kcrypto_verify(sig, msg, len, pk) == KERR_AUTH, "pk bit %zu", bit);
		pk[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	{
		uint8_t m2[2] = { 0x72, 0x00 };

		assert_int_equal(kcrypto_verify(sig, m2, len + 1, pk), KERR_AUTH);
		if (len)
			assert_int_equal(kcrypto_verify(sig, msg, len - 1, pk), KERR_AUTH);
	}
}

/* RFC 8032 section 7.1, TEST 1 (empty message) and TEST 2 (one byte 0x72) */
static void test_ed25519_kat(void **state)
{
	static const uint8_t m72 = 0x72;

	(void)state;
	ed25519_case("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
		     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
		     (const uint8_t *)"", 0,
		     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
		     "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
	ed25519_case("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
		     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", &m72, 1,
		     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
		     "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00");
}

/* ---------------- sealed boxes ---------------- */

static void test_sealed_box(void **state)
{
	uint8_t seed[32], pk[32], sk[32], pk2[32], sk2[32], msg[32], box[32 + KCRYPTO_SEALBYTES + GUARDLEN],
		back[32];

	(void)state;
	kt_fill(seed, 32, 21);
	assert_int_equal(kcrypto_box_seed_keypair(pk, sk, seed), 0);
	assert_int_equal(kcrypto_box_pk_from_sk(pk2, sk), 0);
	assert_memory_equal(pk, pk2, 32);
	assert_int_equal(kcrypto_box_seed_keypair(pk2, sk2, seed), 0);
	assert_memory_equal(sk, sk2, 32);
	seed[0] ^= 1;
	assert_int_equal(kcrypto_box_seed_keypair(pk2, sk2, seed), 0);
	assert_memory_not_equal(pk, pk2, 32);

	kt_fill(msg, 32, 22);
	memset(box, GUARD, sizeof(box));
	assert_int_equal(kcrypto_seal(box, msg, 32, pk), 0);
	guard_check(box + 32 + KCRYPTO_SEALBYTES, GUARDLEN);
	assert_int_equal(kcrypto_seal_open(back, box, 32 + KCRYPTO_SEALBYTES, pk, sk), 0);
	assert_memory_equal(back, msg, 32);
	/* wrong recipient */
	assert_int_equal(kcrypto_seal_open(back, box, 32 + KCRYPTO_SEALBYTES, pk2, sk2), KERR_AUTH);
	/* every bit */
	for (size_t bit = 0; bit < (32 + KCRYPTO_SEALBYTES) * 8; bit++) {
		box[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		kt_check(kcrypto_seal_open(back, box, 32 + KCRYPTO_SEALBYTES, pk, sk) == KERR_AUTH,
			 "sealed box bit %zu", bit);
		box[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	/* truncated */
	for (size_t n = 0; n < KCRYPTO_SEALBYTES; n++)
		assert_int_equal(kcrypto_seal_open(back, box, n, pk, sk), KERR_FORMAT);
	assert_int_equal(kcrypto_seal_open(back, box, 32 + KCRYPTO_SEALBYTES - 1, pk, sk), KERR_AUTH);
	/* randomised: two seals of the same message differ */
	{
		uint8_t box2[32 + KCRYPTO_SEALBYTES];

		assert_int_equal(kcrypto_seal(box2, msg, 32, pk), 0);
		assert_memory_not_equal(box, box2, sizeof(box2));
	}
}

/* ---------------- base64 ---------------- */

static void test_b64url(void **state)
{
	static const struct {
		const char *bin;
		size_t n;
		const char *enc;
	} v[] = { { "", 0, "" }, { "f", 1, "Zg" }, { "fo", 2, "Zm8" }, { "foo", 3, "Zm9v" },
		  { "foob", 4, "Zm9vYg" }, { "\xfb\xff", 2, "-_8" }, { "\xff\xff\xff", 3, "____" } };
	static const char *const bad[] = { "Zg==", "Zg=", "+_8", "/_8", "Z", "Zh", "Zm9", "Zm9v!", "Zm 9v",
					   "Zm9v\n", "YWJj\xc3\xa9" };
	char enc[64];
	uint8_t dec[64];
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		assert_int_equal(kcrypto_b64url_len(v[i].n), strlen(v[i].enc));
		assert_int_equal(kcrypto_b64url_encode(enc, sizeof(enc), (const uint8_t *)v[i].bin, v[i].n), 0);
		assert_string_equal(enc, v[i].enc);
		assert_int_equal(kcrypto_b64url_decode(dec, sizeof(dec), &n, enc, strlen(enc)), 0);
		assert_int_equal(n, v[i].n);
		assert_memory_equal(dec, v[i].bin, n);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		kt_check(kcrypto_b64url_decode(dec, sizeof(dec), &n, bad[i], strlen(bad[i])) == KERR_FORMAT,
			 "'%s' decoded", bad[i]);
	/* embedded NUL inside the declared length */
	assert_int_equal(kcrypto_b64url_decode(dec, sizeof(dec), &n, "Zm\0v", 4), KERR_FORMAT);
	/* output too small */
	assert_int_equal(kcrypto_b64url_decode(dec, 2, &n, "Zm9v", 4), KERR_FORMAT);
	assert_int_equal(kcrypto_b64url_encode(enc, 4, (const uint8_t *)"foo", 3), -ENAMETOOLONG);
	assert_int_equal(kcrypto_b64url_encode(enc, 5, (const uint8_t *)"foo", 3), 0);
	assert_int_equal(kcrypto_b64url_len(32), 43);
	assert_int_equal(kcrypto_b64url_len(192), 256);

	/* standard alphabet with padding (JSON fields) */
	assert_int_equal(kcrypto_b64_encode(enc, sizeof(enc), (const uint8_t *)"\xfb\xff", 2), 0);
	assert_string_equal(enc, "+/8=");
	assert_int_equal(kcrypto_b64_decode(dec, sizeof(dec), &n, "+/8="), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(dec, "\xfb\xff", 2);
	assert_int_equal(kcrypto_b64_decode(dec, sizeof(dec), &n, "-_8"), KERR_FORMAT);
	assert_int_equal(kcrypto_b64_decode(dec, sizeof(dec), &n, "Zg"), KERR_FORMAT);
	assert_int_equal(kcrypto_b64_decode(dec, sizeof(dec), &n, "Zg==x"), KERR_FORMAT);
	assert_int_equal(kcrypto_b64_encode(enc, 4, (const uint8_t *)"foo", 3), -ENOSPC);
}

/* kinko-format(5): "decoders refuse other characters". Every byte outside the
 * alphabet is refused at every position. (libsodium 1.0.18's sodium_base642bin
 * takes every byte >= 0x80 for the 63rd character, '_' or '/', so a wrapper
 * that relies on it alone accepts 128 extra spellings of each '_'.) */
static void test_b64_alphabet(void **state)
{
	uint8_t dec[16];
	size_t n;

	(void)state;
	for (int c = 0; c < 256; c++) {
		bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');

		for (int pos = 0; pos < 4; pos++) {
			char s[5] = "AAAA";

			s[pos] = (char)c;
			if (!alnum && c != '-' && c != '_')
				kt_check(kcrypto_b64url_decode(dec, sizeof(dec), &n, s, 4) == KERR_FORMAT,
					 "base64url: byte 0x%02x at position %d accepted", c, pos);
			if (!alnum && c != '+' && c != '/' && c != '=' && c != 0)
				kt_check(kcrypto_b64_decode(dec, sizeof(dec), &n, s) == KERR_FORMAT,
					 "base64: byte 0x%02x at position %d accepted", c, pos);
		}
	}
}

/* ---------------- nonces ---------------- */

/* nonces come from a per-thread pool: no two draws alike, and a forked child
 * never hands out the nonces its parent draws next (GCM with a repeated
 * nonce under one key leaks the authentication key) */
static void test_nonce_pool(void **state)
{
	enum { N = 400 };
	static uint8_t seen[N][12];
	uint8_t parent[12], child[12];
	int pfd[2], st;
	pid_t pid;

	(void)state;
	for (int i = 0; i < N; i++) {
		assert_int_equal(kcrypto_nonce(seen[i], 12), 0);
		for (int j = 0; j < i; j++)
			kt_check(memcmp(seen[i], seen[j], 12) != 0, "nonce %d repeats nonce %d", i, j);
	}
	assert_int_equal(kcrypto_nonce(parent, 5), 0); /* the pool is now part used */
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		_exit(kcrypto_nonce(child, sizeof(child)) == 0 &&
			      write(pfd[1], child, sizeof(child)) == (ssize_t)sizeof(child)
		      ? 0
		      : 1);
	}
	close(pfd[1]);
	assert_int_equal(kcrypto_nonce(parent, sizeof(parent)), 0);
	assert_int_equal(read(pfd[0], child, sizeof(child)), (ssize_t)sizeof(child));
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	kt_check(memcmp(parent, child, sizeof(child)) != 0, "a forked child drew its parent's next nonce");
	/* a request larger than the pool goes to the DRBG directly */
	{
		uint8_t big[4096] = { 0 }, zero[4096] = { 0 };

		assert_int_equal(kcrypto_nonce(big, sizeof(big)), 0);
		assert_true(memcmp(big, zero, sizeof(big)) != 0);
	}
}

/* one AES-GCM seal or open as a batch of its own under key */
static int in_batch(bool seal, const uint8_t *key, const uint8_t *nonce, uint8_t *pt, uint8_t *ct,
		    uint8_t *tag)
{
	int r;

	kcrypto_aead_batch_begin(key);
	r = seal ? kcrypto_aead_seal(KSUITE_AES256GCM, key, nonce, NULL, 0, pt, 64, ct, tag)
		 : kcrypto_aead_open(KSUITE_AES256GCM, key, nonce, NULL, 0, ct, 64, tag, pt);
	kcrypto_aead_batch_end();
	return r;
}

/* A batch keeps its key schedule for the next batch under the same key bytes,
 * never for other bytes in the same buffer (a request's key lives on the stack,
 * at the same address for every file) */
static void test_batch_key_reuse(void **state)
{
	uint8_t key[32], a[32], b[32], nonce[12] = { 1 }, pt[64], ct[64], tag[16], out[64];

	(void)state;
	memset(a, 0xa1, sizeof(a));
	memset(b, 0xb2, sizeof(b));
	memset(pt, 0x5c, sizeof(pt));
	for (int round = 0; round < 2; round++) {
		/* seal under a, then under b from the same buffer */
		memcpy(key, a, 32);
		assert_int_equal(in_batch(true, key, nonce, pt, ct, tag), 0);
		assert_int_equal(kcrypto_aead_open(KSUITE_AES256GCM, a, nonce, NULL, 0, ct, 64, tag, out), 0);
		memcpy(key, b, 32);
		assert_int_equal(in_batch(true, key, nonce, pt, ct, tag), 0);
		kt_check(kcrypto_aead_open(KSUITE_AES256GCM, b, nonce, NULL, 0, ct, 64, tag, out) == 0,
			 "sealed under the old key schedule (round %d)", round);
		assert_int_equal(kcrypto_aead_open(KSUITE_AES256GCM, a, nonce, NULL, 0, ct, 64, tag, out),
				 KERR_AUTH);
		/* open in a batch under b (keyed), then a batch under a from the same buffer */
		assert_int_equal(in_batch(false, key, nonce, out, ct, tag), 0);
		assert_int_equal(kcrypto_aead_seal(KSUITE_AES256GCM, a, nonce, NULL, 0, pt, 64, ct, tag), 0);
		memcpy(key, a, 32);
		kt_check(in_batch(false, key, nonce, out, ct, tag) == 0, "opened under the old key schedule (round %d)",
			 round);
		assert_memory_equal(out, pt, 64);
		/* the same key again: still right after a scrub (lock) */
		if (round == 0)
			kcrypto_thread_scrub();
	}
}

/* ---------------- misc ---------------- */

static void test_misc(void **state)
{
	uint8_t a[32], b[32];
	uint8_t *sec;

	(void)state;
	kcrypto_random(a, 32);
	kcrypto_random(b, 32);
	assert_memory_not_equal(a, b, 32);
	assert_true(kcrypto_memeq(a, a, 32));
	memcpy(b, a, 32);
	for (int i = 0; i < 32; i++) {
		b[i] ^= 0x80;
		kt_check(!kcrypto_memeq(a, b, 32), "memeq ignored byte %d", i);
		b[i] ^= 0x80;
	}
	assert_true(kcrypto_memeq(a, b, 0));

	sec = ksecmem_alloc(100);
	assert_non_null(sec);
	for (int i = 0; i < 100; i++)
		assert_int_equal(sec[i], 0);
	memset(sec, 0x55, 100);
	ksecmem_relock(sec, 100);
	ksecmem_wipe(sec, 50);
	assert_int_equal(sec[0], 0);
	assert_int_equal(sec[49], 0);
	assert_int_equal(sec[50], 0x55);
	ksecmem_free(sec);
	ksecmem_free(NULL);
	ksecmem_relock(NULL, 10);
}

static int setup(void **state)
{
	(void)state;
	return kcrypto_init() == 0 && kcrypto_init() == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_argon2_bounds), /* first: measures the peak RSS */
		cmocka_unit_test(test_gcm_kat),
		cmocka_unit_test(test_xchacha_kat),
		cmocka_unit_test(test_wrap_kat),
		cmocka_unit_test(test_aead_roundtrip_sizes),
		cmocka_unit_test(test_suites),
		cmocka_unit_test(test_siv_kat),
		cmocka_unit_test(test_blake2b_kat),
		cmocka_unit_test(test_sha256_kat),
		cmocka_unit_test(test_subkey),
		cmocka_unit_test(test_argon2_reference_vector),
		cmocka_unit_test(test_argon2_kinko_vectors),
		cmocka_unit_test(test_ed25519_kat),
		cmocka_unit_test(test_sealed_box),
		cmocka_unit_test(test_b64url),
		cmocka_unit_test(test_b64_alphabet),
		cmocka_unit_test(test_nonce_pool),
		cmocka_unit_test(test_batch_key_reuse),
		cmocka_unit_test(test_misc),
	};

	return cmocka_run_group_tests_name("crypto", tests, setup, NULL);
}

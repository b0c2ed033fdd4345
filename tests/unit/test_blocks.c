// SPDX-License-Identifier: GPL-2.0-or-later
/* format/blocks.c: epoch key schedule, block geometry (exhaustive size math)
 * and block sealing (AD = file id || block number || last flag). */
#include "kt.h"

static const int suites[] = { KSUITE_AES256GCM, KSUITE_XCHACHA20POLY1305 };
#define NSUITES 2
#define MAXPLAIN (5 * KFORMAT_BS + 1)

/* ---------------- key schedule ---------------- */

static void test_epoch_keys(void **state)
{
	struct kformat_epoch_keys a, b, c;
	uint8_t ek[32], vid[16], cid[16], cm1[32], cm2[32], fk1[32], fk2[32], fid[16];

	(void)state;
	kt_fill(ek, 32, 1);
	assert_int_equal(kformat_epoch_keys_derive(&a, 5, ek), 0);
	assert_int_equal(kformat_epoch_keys_derive(&b, 5, ek), 0);
	assert_int_equal(a.epoch, 5);
	assert_memory_equal(&a, &b, sizeof(a));
	/* the three subkeys are distinct from each other and from the epoch key */
	assert_memory_not_equal(a.content, a.meta, 32);
	assert_memory_not_equal(a.content, a.names, 32);
	assert_memory_not_equal(a.names, a.names + 32, 32);
	assert_memory_not_equal(a.content, ek, 32);
	ek[31] ^= 1;
	assert_int_equal(kformat_epoch_keys_derive(&c, 5, ek), 0);
	assert_memory_not_equal(a.content, c.content, 32);
	assert_memory_not_equal(a.names, c.names, 64);
	assert_memory_not_equal(a.meta, c.meta, 32);
	ek[31] ^= 1;

	/* commitment binds key, vault, compartment and epoch */
	kt_fill(vid, 16, 2);
	kt_fill(cid, 16, 3);
	assert_int_equal(kformat_epoch_commitment(cm1, ek, vid, cid, 1), 0);
	assert_int_equal(kformat_epoch_commitment(cm2, ek, vid, cid, 1), 0);
	assert_memory_equal(cm1, cm2, 32);
	assert_int_equal(kformat_epoch_commitment(cm2, ek, vid, cid, 2), 0);
	assert_memory_not_equal(cm1, cm2, 32);
	assert_int_equal(kformat_epoch_commitment(cm2, ek, cid, vid, 1), 0);
	assert_memory_not_equal(cm1, cm2, 32);
	vid[0] ^= 1;
	assert_int_equal(kformat_epoch_commitment(cm2, ek, vid, cid, 1), 0);
	assert_memory_not_equal(cm1, cm2, 32);
	vid[0] ^= 1;
	ek[0] ^= 1;
	assert_int_equal(kformat_epoch_commitment(cm2, ek, vid, cid, 1), 0);
	assert_memory_not_equal(cm1, cm2, 32);
	ek[0] ^= 1;

	/* per-file keys */
	kt_fill(fid, 16, 4);
	assert_int_equal(kformat_file_key(fk1, &a, fid), 0);
	assert_int_equal(kformat_file_key(fk2, &a, fid), 0);
	assert_memory_equal(fk1, fk2, 32);
	assert_memory_not_equal(fk1, a.content, 32);
	fid[15] ^= 0x80;
	assert_int_equal(kformat_file_key(fk2, &a, fid), 0);
	assert_memory_not_equal(fk1, fk2, 32);
	fid[15] ^= 0x80;
	assert_int_equal(kformat_file_key(fk2, &c, fid), 0);
	assert_memory_not_equal(fk1, fk2, 32);
}

/* ---------------- geometry ---------------- */

static void test_geom(void **state)
{
	struct kformat_geom g;

	(void)state;
	assert_int_equal(kformat_geom_init(&g, KSUITE_AES256GCM), 0);
	assert_int_equal(g.suite, KSUITE_AES256GCM);
	assert_int_equal(g.nonce, 12);
	assert_int_equal(g.overhead, 28);
	assert_int_equal(g.cbs, 4096 + 28);
	assert_int_equal(kformat_geom_init(&g, KSUITE_XCHACHA20POLY1305), 0);
	assert_int_equal(g.nonce, 24);
	assert_int_equal(g.overhead, 40);
	assert_int_equal(g.cbs, 4096 + 40);
	assert_int_equal(kformat_geom_init(&g, 0), KERR_VERSION);
	assert_int_equal(kformat_geom_init(&g, 3), KERR_VERSION);
	assert_int_equal(kformat_geom_init(&g, -1), KERR_VERSION);
	assert_int_equal(kformat_block_off(&g, 0), KFORMAT_FHDR_LEN);
	assert_int_equal(kformat_block_off(&g, 3), KFORMAT_FHDR_LEN + 3 * g.cbs);
	assert_int_equal(kformat_nblocks(0), 0);
	assert_int_equal(kformat_nblocks(1), 1);
	assert_int_equal(kformat_nblocks(4096), 1);
	assert_int_equal(kformat_nblocks(4097), 2);
}

/* the worked examples of kinko-format(5), EXAMPLES / Backing sizes */
static void test_size_examples(void **state)
{
	static const struct {
		uint64_t plain, gcm, xchacha;
	} ex[] = { { 0, 0, 0 }, { 1, 105, 117 }, { 4096, 4200, 4212 }, { 4097, 4229, 4253 },
		   { 1048576, 1055820, 1058892 } };
	struct kformat_geom g, x;

	(void)state;
	assert_int_equal(kformat_geom_init(&g, KSUITE_AES256GCM), 0);
	assert_int_equal(kformat_geom_init(&x, KSUITE_XCHACHA20POLY1305), 0);
	for (size_t i = 0; i < sizeof(ex) / sizeof(ex[0]); i++) {
		bool bad = true;

		assert_true(kformat_cipher_size(&g, ex[i].plain) == ex[i].gcm);
		assert_true(kformat_cipher_size(&x, ex[i].plain) == ex[i].xchacha);
		assert_true(kformat_plain_size(&g, ex[i].gcm, &bad) == ex[i].plain);
		assert_false(bad);
		assert_true(kformat_plain_size(&x, ex[i].xchacha, &bad) == ex[i].plain);
		assert_false(bad);
	}
}

/* reference model of the layout, written from the format description:
 * 0 bytes -> 0; else header + one (nonce||ct||tag) per 4096-byte block */
static uint64_t model_cipher_size(const struct kformat_geom *g, uint64_t p)
{
	uint64_t c = 0;

	if (p == 0)
		return 0;
	c = KFORMAT_FHDR_LEN;
	while (p) {
		uint64_t n = p < KFORMAT_BS ? p : KFORMAT_BS;

		c += n + g->overhead;
		p -= n;
	}
	return c;
}

/* Every plaintext size 0 .. 5*4096+1 maps to a cipher size and back; every
 * cipher size in that range that no plaintext maps to is flagged bad. The
 * header-only size (76) is checked separately by test_plain_size_header_only. */
static void test_size_math_exhaustive(void **state)
{
	(void)state;
	for (int s = 0; s < NSUITES; s++) {
		struct kformat_geom g;
		uint64_t cmax, prev = 0;
		uint8_t *image;
		uint64_t *plain_of;

		assert_int_equal(kformat_geom_init(&g, suites[s]), 0);
		cmax = kformat_cipher_size(&g, MAXPLAIN);
		image = calloc(cmax + 1, 1);
		plain_of = calloc(cmax + 1, sizeof(*plain_of));
		assert_non_null(image);
		assert_non_null(plain_of);
		for (uint64_t p = 0; p <= MAXPLAIN; p++) {
			uint64_t c = kformat_cipher_size(&g, p), back;
			bool bad = true;

			kt_check(c == model_cipher_size(&g, p), "suite %d plain %llu: cipher %llu, model %llu",
				 suites[s], (unsigned long long)p, (unsigned long long)c,
				 (unsigned long long)model_cipher_size(&g, p));
			kt_check(p == 0 || c > prev, "suite %d: cipher size not increasing at %llu", suites[s],
				 (unsigned long long)p);
			back = kformat_plain_size(&g, c, &bad);
			kt_check(back == p && !bad, "suite %d plain %llu -> cipher %llu -> plain %llu bad %d",
				 suites[s], (unsigned long long)p, (unsigned long long)c,
				 (unsigned long long)back, bad);
			/* the last block is exactly where the size says */
			if (p) {
				uint64_t last = kformat_nblocks(p) - 1;

				kt_check(kformat_block_off(&g, last) + (p - last * KFORMAT_BS) + g.overhead == c,
					 "suite %d plain %llu: last block does not end the file", suites[s],
					 (unsigned long long)p);
			}
			image[c] = 1;
			plain_of[c] = p;
			prev = c;
		}
		for (uint64_t c = 0; c <= cmax; c++) {
			bool bad = false;
			uint64_t p = kformat_plain_size(&g, c, &bad);

			if (c == KFORMAT_FHDR_LEN)
				continue; /* test_plain_size_header_only */
			if (image[c]) {
				kt_check(!bad && p == plain_of[c], "suite %d cipher %llu: plain %llu bad %d",
					 suites[s], (unsigned long long)c, (unsigned long long)p, bad);
			} else {
				kt_check(bad, "suite %d cipher size %llu cannot come from kinko but is not bad "
					      "(plain %llu)",
					 suites[s], (unsigned long long)c, (unsigned long long)p);
				/* a bad size never claims more data than whole blocks hold */
				kt_check(p <= (c > KFORMAT_FHDR_LEN ? c - KFORMAT_FHDR_LEN : 0),
					 "suite %d cipher %llu: plain %llu", suites[s], (unsigned long long)c,
					 (unsigned long long)p);
			}
		}
		free(image);
		free(plain_of);
	}
}

/* A file that holds a header and no block cannot come from kinko: an empty
 * file is 0 bytes without a header, and the first write stores the header
 * together with the first block. Cutting every block off a file (truncate to
 * 76 bytes) must be flagged, or the file silently reads as empty and fsck
 * passes it. */
static void test_plain_size_header_only(void **state)
{
	(void)state;
	for (int s = 0; s < NSUITES; s++) {
		struct kformat_geom g;
		bool bad = false;
		uint64_t p;

		assert_int_equal(kformat_geom_init(&g, suites[s]), 0);
		p = kformat_plain_size(&g, KFORMAT_FHDR_LEN, &bad);
		assert_int_equal(p, 0);
		kt_check(bad, "suite %d: a header-only file (%u bytes) is not flagged bad", suites[s],
			 KFORMAT_FHDR_LEN);
	}
}

static void test_size_math_large(void **state)
{
	(void)state;
	for (int s = 0; s < NSUITES; s++) {
		struct kformat_geom g;
		static const uint64_t sizes[] = { UINT64_C(1) << 32, (UINT64_C(1) << 40) + 1,
						  (UINT64_C(1) << 50) - 1, UINT64_C(1) << 50 };

		assert_int_equal(kformat_geom_init(&g, suites[s]), 0);
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			for (uint64_t d = 0; d < 3; d++) {
				uint64_t p = sizes[i] + d, c = kformat_cipher_size(&g, p);
				bool bad = true;

				assert_true(kformat_plain_size(&g, c, &bad) == p);
				assert_false(bad);
				assert_true(kformat_plain_size(&g, c + 1, &bad) != p || bad);
			}
		}
	}
}

/* ---------------- block seal / open ---------------- */

static void test_block_ad(void **state)
{
	uint8_t ad[KFORMAT_BLOCK_ADLEN], fid[16];

	(void)state;
	kt_fill(fid, 16, 5);
	kformat_block_ad(ad, fid, UINT64_C(0x0102030405060708), true);
	assert_memory_equal(ad, fid, 16);
	assert_memory_equal(ad + 16, "\x08\x07\x06\x05\x04\x03\x02\x01", 8);
	assert_int_equal(ad[24], 1);
	kformat_block_ad(ad, fid, 0, false);
	assert_memory_equal(ad + 16, "\0\0\0\0\0\0\0\0", 8);
	assert_int_equal(ad[24], 0);
}

static void test_block_seal_open(void **state)
{
	uint8_t fkey[32], fkey2[32], fid[16], fid2[16], pt[4096], out[4096 + 64 + 32], back[4096 + 64];
	struct kformat_epoch_keys k;

	(void)state;
	kt_epoch_keys(&k, 1, 7);
	kt_fill(fid, 16, 8);
	memcpy(fid2, fid, 16);
	fid2[3] ^= 0x10;
	assert_int_equal(kformat_file_key(fkey, &k, fid), 0);
	assert_int_equal(kformat_file_key(fkey2, &k, fid2), 0);
	kt_fill(pt, sizeof(pt), 9);
	for (int s = 0; s < NSUITES; s++) {
		struct kformat_geom g, other;
		static const size_t lens[] = { 1, 2, 15, 16, 17, 1000, 4095, 4096 };

		assert_int_equal(kformat_geom_init(&g, suites[s]), 0);
		assert_int_equal(kformat_geom_init(&other, suites[1 - s]), 0);
		for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
			size_t n = lens[li], clen = n + g.overhead;

			for (int lastf = 0; lastf <= 1; lastf++) {
				bool last = lastf;
				uint64_t bn = 3;

				memset(out, 0xc5, sizeof(out));
				assert_int_equal(kformat_block_seal(&g, fkey, fid, bn, last, pt, n, out), 0);
				for (size_t i = clen; i < sizeof(out); i++)
					kt_check(out[i] == 0xc5, "suite %d len %zu: wrote past %zu", suites[s], n,
						 clen);
				assert_int_equal(kformat_block_open(&g, fkey, fid, bn, last, out, clen, back), 0);
				assert_memory_equal(back, pt, n);
				/* wrong block number, last flag, file id, key */
				assert_int_equal(kformat_block_open(&g, fkey, fid, bn + 1, last, out, clen, back),
						 KERR_AUTH);
				assert_int_equal(kformat_block_open(&g, fkey, fid, bn - 1, last, out, clen, back),
						 KERR_AUTH);
				assert_int_equal(kformat_block_open(&g, fkey, fid, bn + (UINT64_C(1) << 32), last,
								    out, clen, back),
						 KERR_AUTH);
				assert_int_equal(kformat_block_open(&g, fkey, fid, bn, !last, out, clen, back),
						 KERR_AUTH);
				assert_int_equal(kformat_block_open(&g, fkey, fid2, bn, last, out, clen, back),
						 KERR_AUTH);
				assert_int_equal(kformat_block_open(&g, fkey2, fid, bn, last, out, clen, back),
						 KERR_AUTH);
				/* the block read with the other suite's geometry */
				if (clen > other.overhead && clen <= other.cbs)
					assert_int_not_equal(kformat_block_open(&other, fkey, fid, bn, last, out,
										clen, back),
							     0);
				/* truncated (a byte cut off the end) or extended */
				assert_int_equal(kformat_block_open(&g, fkey, fid, bn, last, out, clen - 1, back),
						 clen - 1 <= g.overhead ? KERR_FORMAT : KERR_AUTH);
				if (clen + 1 <= g.cbs)
					assert_int_equal(kformat_block_open(&g, fkey, fid, bn, last, out, clen + 1,
									    back),
							 KERR_AUTH);
			}
		}
		/* every single-bit change of a short block */
		{
			size_t n = 40, clen = n + g.overhead;

			assert_int_equal(kformat_block_seal(&g, fkey, fid, 0, true, pt, n, out), 0);
			for (size_t bit = 0; bit < clen * 8; bit++) {
				out[bit / 8] ^= (uint8_t)(1u << (bit % 8));
				kt_check(kformat_block_open(&g, fkey, fid, 0, true, out, clen, back) == KERR_AUTH,
					 "suite %d: bit %zu of a block", suites[s], bit);
				out[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			}
		}
		/* fresh nonce per seal */
		{
			uint8_t out2[100];

			assert_int_equal(kformat_block_seal(&g, fkey, fid, 0, true, pt, 50, out), 0);
			assert_int_equal(kformat_block_seal(&g, fkey, fid, 0, true, pt, 50, out2), 0);
			assert_memory_not_equal(out, out2, g.nonce);
			assert_memory_not_equal(out + g.nonce, out2 + g.nonce, 50);
		}
		/* size limits */
		assert_int_equal(kformat_block_seal(&g, fkey, fid, 0, true, pt, 0, out), KERR_USAGE);
		assert_int_equal(kformat_block_seal(&g, fkey, fid, 0, true, pt, 4097, out), KERR_USAGE);
		for (size_t n = 0; n <= g.overhead; n++)
			assert_int_equal(kformat_block_open(&g, fkey, fid, 0, true, out, n, back), KERR_FORMAT);
		assert_int_equal(kformat_block_open(&g, fkey, fid, 0, true, out, g.cbs + 1, back), KERR_FORMAT);
	}
}

/* blocks of one file swapped with each other, or moved to another file, fail */
static void test_block_swap(void **state)
{
	struct kformat_geom g;
	struct kformat_epoch_keys k;
	uint8_t fkey[32], fid[16], pt[3][KFORMAT_BS], blk[3][KFORMAT_BS + 64], back[KFORMAT_BS];

	(void)state;
	kt_epoch_keys(&k, 2, 10);
	kt_fill(fid, 16, 11);
	assert_int_equal(kformat_file_key(fkey, &k, fid), 0);
	for (int s = 0; s < NSUITES; s++) {
		assert_int_equal(kformat_geom_init(&g, suites[s]), 0);
		for (int b = 0; b < 3; b++) {
			kt_fill(pt[b], KFORMAT_BS, 20 + (uint32_t)b);
			assert_int_equal(kformat_block_seal(&g, fkey, fid, (uint64_t)b, b == 2, pt[b], KFORMAT_BS,
							    blk[b]),
					 0);
		}
		for (int at = 0; at < 3; at++)
			for (int b = 0; b < 3; b++) {
				int r = kformat_block_open(&g, fkey, fid, (uint64_t)at, at == 2, blk[b], g.cbs, back);

				if (at == b) {
					assert_int_equal(r, 0);
					assert_memory_equal(back, pt[b], KFORMAT_BS);
				} else {
					kt_check(r == KERR_AUTH, "suite %d: block %d accepted at %d", suites[s], b, at);
				}
			}
		/* truncation at a block boundary: block 1 is not marked last */
		assert_int_equal(kformat_block_open(&g, fkey, fid, 1, true, blk[1], g.cbs, back), KERR_AUTH);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_epoch_keys),
		cmocka_unit_test(test_geom),
		cmocka_unit_test(test_size_examples),
		cmocka_unit_test(test_size_math_exhaustive),
		cmocka_unit_test(test_plain_size_header_only),
		cmocka_unit_test(test_size_math_large),
		cmocka_unit_test(test_block_ad),
		cmocka_unit_test(test_block_seal_open),
		cmocka_unit_test(test_block_swap),
	};

	return cmocka_run_group_tests_name("blocks", tests, kt_group_setup, NULL);
}

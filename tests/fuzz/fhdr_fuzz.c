// SPDX-License-Identifier: GPL-2.0-or-later
/* A regular file's backing bytes: the 76-byte header (parse + MAC), the size
 * arithmetic, then every content block (AEAD with AD = file id, number, last). */
#include <string.h>

#include "fuzz_common.h"

#define MAX_BLOCKS 16

/* open every block of a file whose header verified; 0 if all authenticate */
static int open_blocks(const uint8_t *d, size_t n, const struct kformat_fhdr *h,
		       const struct kformat_geom *g)
{
	static uint8_t pt[KFORMAT_BS];
	uint8_t fkey[32];
	uint64_t psize, nb;
	bool bad = false;
	int r = 0;

	psize = kformat_plain_size(g, n, &bad);
	if (bad || psize == 0)
		return -1;
	FUZZ_ASSERT(kformat_cipher_size(g, psize) == n);
	FUZZ_ASSERT(kformat_file_key(fkey, &fz.ek, h->file_id) == 0);
	nb = kformat_nblocks(psize);
	for (uint64_t b = 0; b < nb && b < MAX_BLOCKS; b++) {
		uint64_t off = kformat_block_off(g, b), len = n - off < g->cbs ? n - off : g->cbs;

		FUZZ_ASSERT(off < n);
		if ((r = kformat_block_open(g, fkey, h->file_id, b, b == nb - 1, d + off, (size_t)len, pt)) != 0)
			break;
	}
	return r;
}

int fuzz_check(const uint8_t *d, size_t n)
{
	struct kformat_fhdr h;
	struct kformat_geom g;

	fuzz_init();
	if (kformat_fhdr_parse(d, n, &h) || kformat_fhdr_verify(d, n, &fz.ek) || h.epoch != FUZZ_EPOCH)
		return -1;
	if (kformat_geom_init(&g, h.suite))
		return -2;
	return open_blocks(d, n, &h, &g) ? -3 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct kformat_fhdr h;
	int rp, rv;

	fuzz_init();
	rp = kformat_fhdr_parse(d, n, &h);
	rv = kformat_fhdr_verify(d, n, &fz.ek);
	if (n < KFORMAT_FHDR_LEN)
		FUZZ_ASSERT(rp != 0 && rv != 0);
	if (rp == 0)
		FUZZ_ASSERT((h.flags & ~KFORMAT_FHDR_KNOWN_FLAGS) == 0);
	if (rp == 0 && rv == 0) {
		uint8_t again[KFORMAT_FHDR_LEN];

		/* an accepted header is canonical: it serializes to the same bytes */
		FUZZ_ASSERT(kformat_fhdr_serialize(&h, &fz.ek, again) == 0);
		FUZZ_ASSERT(memcmp(again, d, KFORMAT_FHDR_LEN) == 0);
		/* the blocks, with the suite the header names and with the other one */
		(void)open_blocks(d, n, &h, &fz.gcm);
		(void)open_blocks(d, n, &h, &fz.xchacha);
	}
	/* size arithmetic on the input's length */
	{
		bool bad = false;
		uint64_t p = kformat_plain_size(&fz.gcm, n, &bad);

		if (!bad)
			FUZZ_ASSERT(kformat_cipher_size(&fz.gcm, p) == n);
		p = kformat_plain_size(&fz.xchacha, n, &bad);
		if (!bad)
			FUZZ_ASSERT(kformat_cipher_size(&fz.xchacha, p) == n);
	}
	return 0;
}

// SPDX-License-Identifier: GPL-2.0-or-later
/* Key schedule of an epoch, block geometry and block sealing. Pure arithmetic
 * and one AEAD call per block; unit-tested exhaustively (tests/unit/test_blocks.c). */
#include <string.h>

#include "kinko/format.h"

#define KDF_CTX "kinkoEP1"

int kformat_epoch_keys_derive(struct kformat_epoch_keys *k, uint32_t epoch,
			      const uint8_t epoch_key[KCRYPTO_KEYBYTES])
{
	int r;

	k->epoch = epoch;
	if ((r = kcrypto_subkey(k->content, sizeof(k->content), 1, KDF_CTX, epoch_key)) != 0 ||
	    (r = kcrypto_subkey(k->names, sizeof(k->names), 2, KDF_CTX, epoch_key)) != 0 ||
	    (r = kcrypto_subkey(k->meta, sizeof(k->meta), 3, KDF_CTX, epoch_key)) != 0)
		return r;
	return 0;
}

int kformat_epoch_commitment(uint8_t out[32], const uint8_t epoch_key[32], const uint8_t vault_id[16],
			     const uint8_t comp_id[16], uint32_t epoch)
{
	uint8_t msg[16 + 16 + 16 + 4];

	memcpy(msg, "kinko-commit-v1", 16); /* includes the NUL */
	memcpy(msg + 16, vault_id, 16);
	memcpy(msg + 32, comp_id, 16);
	kput_le32(msg + 48, epoch);
	return kcrypto_hash(out, 32, epoch_key, 32, msg, sizeof(msg));
}

int kformat_file_key(uint8_t out[32], const struct kformat_epoch_keys *k, const uint8_t file_id[16])
{
	uint8_t msg[8 + 16];

	memcpy(msg, "kfilekey", 8);
	memcpy(msg + 8, file_id, 16);
	return kcrypto_hash(out, 32, k->content, sizeof(k->content), msg, sizeof(msg));
}

int kformat_geom_init(struct kformat_geom *g, int suite)
{
	size_t n = kcrypto_suite_noncebytes(suite);

	if (n == 0)
		return KERR_VERSION;
	g->suite = suite;
	g->nonce = (uint32_t)n;
	g->overhead = (uint32_t)n + KCRYPTO_TAGBYTES;
	g->cbs = KFORMAT_BS + g->overhead;
	return 0;
}

uint64_t kformat_plain_size(const struct kformat_geom *g, uint64_t cipher_size, bool *bad)
{
	uint64_t payload, full, rem;

	*bad = false;
	if (cipher_size == 0)
		return 0;
	if (cipher_size <= KFORMAT_FHDR_LEN) {
		/* kinko writes the header together with the first block: a header
		 * alone is a file truncated by someone else */
		*bad = true;
		return 0;
	}
	payload = cipher_size - KFORMAT_FHDR_LEN;
	full = payload / g->cbs;
	rem = payload % g->cbs;
	if (rem == 0)
		return full * KFORMAT_BS;
	if (rem <= g->overhead) {
		*bad = true;
		return full * KFORMAT_BS;
	}
	return full * KFORMAT_BS + (rem - g->overhead);
}

uint64_t kformat_cipher_size(const struct kformat_geom *g, uint64_t plain_size)
{
	uint64_t full, rem;

	if (plain_size == 0)
		return 0;
	full = plain_size / KFORMAT_BS;
	rem = plain_size % KFORMAT_BS;
	return KFORMAT_FHDR_LEN + full * g->cbs + (rem ? rem + g->overhead : 0);
}

void kformat_block_ad(uint8_t ad[KFORMAT_BLOCK_ADLEN], const uint8_t file_id[16], uint64_t blockno,
		      bool last)
{
	memcpy(ad, file_id, 16);
	kput_le64(ad + 16, blockno);
	ad[24] = last ? 1 : 0;
}

int kformat_block_seal_nonce(const struct kformat_geom *g, const uint8_t fkey[32],
			     const uint8_t file_id[16], uint64_t blockno, bool last,
			     const uint8_t *pt, size_t ptlen, const uint8_t *nonce, uint8_t *out)
{
	uint8_t ad[KFORMAT_BLOCK_ADLEN];

	if (ptlen == 0 || ptlen > KFORMAT_BS)
		return KERR_USAGE;
	kformat_block_ad(ad, file_id, blockno, last);
	memcpy(out, nonce, g->nonce);
	return kcrypto_aead_seal(g->suite, fkey, out, ad, sizeof(ad), pt, ptlen, out + g->nonce,
				 out + g->nonce + ptlen);
}

int kformat_block_seal(const struct kformat_geom *g, const uint8_t fkey[32], const uint8_t file_id[16],
		       uint64_t blockno, bool last, const uint8_t *pt, size_t ptlen, uint8_t *out)
{
	uint8_t nonce[KCRYPTO_NONCE_MAX];

	if (kcrypto_nonce(nonce, g->nonce) != 0)
		return KERR_CRYPTO;
	return kformat_block_seal_nonce(g, fkey, file_id, blockno, last, pt, ptlen, nonce, out);
}

int kformat_block_open(const struct kformat_geom *g, const uint8_t fkey[32], const uint8_t file_id[16],
		       uint64_t blockno, bool last, const uint8_t *in, size_t inlen, uint8_t *pt)
{
	uint8_t ad[KFORMAT_BLOCK_ADLEN];
	size_t ctlen;

	if (inlen <= g->overhead || inlen > g->cbs)
		return KERR_FORMAT;
	ctlen = inlen - g->overhead;
	kformat_block_ad(ad, file_id, blockno, last);
	return kcrypto_aead_open(g->suite, fkey, in, ad, sizeof(ad), in + g->nonce, ctlen,
				 in + g->nonce + ctlen, pt);
}

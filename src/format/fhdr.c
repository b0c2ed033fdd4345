// SPDX-License-Identifier: GPL-2.0-or-later
/* File header and directory IV file: fixed-size, MAC'd with the epoch's meta key.
 *
 * file header (76 bytes):  "kF" ver suite flags(u16) rsv(u16) epoch(u32) file_id(16)
 *                          bind(16) bind_prev(16) mac(16)
 * dir IV file (72 bytes):  "kD" ver 0 epoch(u32) iv(16) bind(16) bind_prev(16) mac(16)  */
#include <errno.h>
#include <string.h>

#include "kinko/format.h"

static int meta_mac(uint8_t out[16], const struct kformat_epoch_keys *k, const uint8_t *buf,
		    size_t len)
{
	return kcrypto_hash(out, 16, k->meta, sizeof(k->meta), buf, len);
}

int kformat_binding(uint8_t out[KFORMAT_BIND_BYTES], const uint8_t parent_iv[16],
		    const char *backing_name)
{
	uint8_t msg[16 + 16 + KFORMAT_BACKING_NAME_MAX];
	size_t n = strlen(backing_name);

	if (n > KFORMAT_BACKING_NAME_MAX)
		return -ENAMETOOLONG;
	memcpy(msg, "kinko-bind-v1\0\0", 16);
	memcpy(msg + 16, parent_iv, 16);
	memcpy(msg + 32, backing_name, n);
	return kcrypto_hash(out, KFORMAT_BIND_BYTES, NULL, 0, msg, 32 + n);
}

bool kformat_binding_is_zero(const uint8_t b[KFORMAT_BIND_BYTES])
{
	uint8_t acc = 0;

	for (int i = 0; i < KFORMAT_BIND_BYTES; i++)
		acc |= b[i];
	return acc == 0;
}

int kformat_fhdr_parse(const uint8_t *buf, size_t len, struct kformat_fhdr *h)
{
	if (len < KFORMAT_FHDR_LEN || buf[0] != 'k' || buf[1] != 'F')
		return KERR_FORMAT;
	if (buf[2] != KFORMAT_VERSION)
		return buf[2] > KFORMAT_VERSION ? KERR_VERSION : KERR_FORMAT;
	h->suite = buf[3];
	h->flags = kget_le16(buf + 4);
	if (h->flags & ~KFORMAT_FHDR_KNOWN_FLAGS)
		return KERR_VERSION;
	if (kget_le16(buf + 6) != 0)
		return KERR_FORMAT;
	h->epoch = kget_le32(buf + 8);
	memcpy(h->file_id, buf + 12, 16);
	memcpy(h->bind, buf + 28, 16);
	memcpy(h->bind_prev, buf + 44, 16);
	return 0;
}

int kformat_fhdr_verify(const uint8_t *buf, size_t len, const struct kformat_epoch_keys *k)
{
	uint8_t mac[16];
	int r;

	if (len < KFORMAT_FHDR_LEN)
		return KERR_FORMAT;
	if ((r = meta_mac(mac, k, buf, KFORMAT_FHDR_LEN - 16)) != 0)
		return r;
	return kcrypto_memeq(mac, buf + KFORMAT_FHDR_LEN - 16, 16) ? 0 : KERR_AUTH;
}

int kformat_fhdr_serialize(const struct kformat_fhdr *h, const struct kformat_epoch_keys *k,
			   uint8_t out[KFORMAT_FHDR_LEN])
{
	out[0] = 'k';
	out[1] = 'F';
	out[2] = KFORMAT_VERSION;
	out[3] = h->suite;
	kput_le16(out + 4, h->flags);
	kput_le16(out + 6, 0);
	kput_le32(out + 8, h->epoch);
	memcpy(out + 12, h->file_id, 16);
	memcpy(out + 28, h->bind, 16);
	memcpy(out + 44, h->bind_prev, 16);
	return meta_mac(out + 60, k, out, KFORMAT_FHDR_LEN - 16);
}

int kformat_diriv_parse(const uint8_t *buf, size_t len, struct kformat_diriv *d)
{
	if (len != KFORMAT_DIRIV_LEN || buf[0] != 'k' || buf[1] != 'D')
		return KERR_FORMAT;
	if (buf[2] != KFORMAT_VERSION)
		return buf[2] > KFORMAT_VERSION ? KERR_VERSION : KERR_FORMAT;
	if (buf[3] != 0)
		return KERR_FORMAT;
	d->epoch = kget_le32(buf + 4);
	memcpy(d->iv, buf + 8, 16);
	memcpy(d->bind, buf + 24, 16);
	memcpy(d->bind_prev, buf + 40, 16);
	return 0;
}

int kformat_diriv_verify(const uint8_t *buf, size_t len, const struct kformat_epoch_keys *k)
{
	uint8_t mac[16];
	int r;

	if (len != KFORMAT_DIRIV_LEN)
		return KERR_FORMAT;
	if ((r = meta_mac(mac, k, buf, KFORMAT_DIRIV_LEN - 16)) != 0)
		return r;
	return kcrypto_memeq(mac, buf + KFORMAT_DIRIV_LEN - 16, 16) ? 0 : KERR_AUTH;
}

int kformat_diriv_serialize(const struct kformat_diriv *d, const struct kformat_epoch_keys *k,
			    uint8_t out[KFORMAT_DIRIV_LEN])
{
	out[0] = 'k';
	out[1] = 'D';
	out[2] = KFORMAT_VERSION;
	out[3] = 0;
	kput_le32(out + 4, d->epoch);
	memcpy(out + 8, d->iv, 16);
	memcpy(out + 24, d->bind, 16);
	memcpy(out + 40, d->bind_prev, 16);
	return meta_mac(out + 56, k, out, KFORMAT_DIRIV_LEN - 16);
}

// SPDX-License-Identifier: GPL-2.0-or-later
/* Bounded reader/writer for every on-disk structure. Every getter checks the
 * remaining length first; parsers end with kbuf_expect_end(). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kinko/util.h"

#define KBUF_MAX (64u << 20)

void kbuf_init_reader(struct kbuf *b, const void *data, size_t len)
{
	memset(b, 0, sizeof(*b));
	b->p = (uint8_t *)data;
	b->len = len;
	b->cap = len;
	b->fixed = true;
}

void kbuf_init_writer(struct kbuf *b)
{
	memset(b, 0, sizeof(*b));
}

void kbuf_free(struct kbuf *b)
{
	if (!b)
		return;
	if (!b->fixed && b->p) {
		explicit_bzero(b->p, b->cap);
		free(b->p);
	}
	memset(b, 0, sizeof(*b));
}

size_t kbuf_remaining(const struct kbuf *b) { return b->len - b->off; }
const uint8_t *kbuf_cursor(const struct kbuf *b) { return b->p + b->off; }

int kbuf_get_ptr(struct kbuf *b, const uint8_t **p, size_t n)
{
	if (n > kbuf_remaining(b))
		return KERR_FORMAT;
	*p = b->p + b->off;
	b->off += n;
	return 0;
}

int kbuf_get_raw(struct kbuf *b, void *out, size_t n)
{
	const uint8_t *p;
	int r = kbuf_get_ptr(b, &p, n);

	if (r == 0 && n)
		memcpy(out, p, n);
	return r;
}

int kbuf_get_u8(struct kbuf *b, uint8_t *v) { return kbuf_get_raw(b, v, 1); }

int kbuf_get_u16(struct kbuf *b, uint16_t *v)
{
	const uint8_t *p;
	int r = kbuf_get_ptr(b, &p, 2);

	if (r == 0)
		*v = kget_le16(p);
	return r;
}

int kbuf_get_u32(struct kbuf *b, uint32_t *v)
{
	const uint8_t *p;
	int r = kbuf_get_ptr(b, &p, 4);

	if (r == 0)
		*v = kget_le32(p);
	return r;
}

int kbuf_get_u64(struct kbuf *b, uint64_t *v)
{
	const uint8_t *p;
	int r = kbuf_get_ptr(b, &p, 8);

	if (r == 0)
		*v = kget_le64(p);
	return r;
}

int kbuf_get_str8(struct kbuf *b, char *out, size_t max)
{
	uint8_t n;
	const uint8_t *p;
	int r;

	if ((r = kbuf_get_u8(b, &n)) != 0)
		return r;
	if (n == 0 || n > max)
		return KERR_FORMAT;
	if ((r = kbuf_get_ptr(b, &p, n)) != 0)
		return r;
	if (memchr(p, 0, n))
		return KERR_FORMAT;
	memcpy(out, p, n);
	out[n] = 0;
	return 0;
}

int kbuf_expect_end(const struct kbuf *b)
{
	return kbuf_remaining(b) == 0 ? 0 : KERR_FORMAT;
}

static int kbuf_reserve(struct kbuf *b, size_t n)
{
	size_t need, ncap;
	uint8_t *np;

	if (b->fixed)
		return n <= b->cap - b->len ? 0 : -ENOSPC;
	if (n > KBUF_MAX || b->len > KBUF_MAX - n)
		return -EFBIG;
	need = b->len + n;
	if (need <= b->cap)
		return 0;
	ncap = b->cap ? b->cap : 256;
	while (ncap < need)
		ncap *= 2;
	/* grow by copy so the old storage can be wiped */
	np = malloc(ncap);
	if (!np)
		return -ENOMEM;
	if (b->p) {
		memcpy(np, b->p, b->len);
		explicit_bzero(b->p, b->cap);
		free(b->p);
	}
	b->p = np;
	b->cap = ncap;
	return 0;
}

int kbuf_put_raw(struct kbuf *b, const void *d, size_t n)
{
	int r = kbuf_reserve(b, n);

	if (r)
		return r;
	if (n)
		memcpy(b->p + b->len, d, n);
	b->len += n;
	return 0;
}

int kbuf_put_u8(struct kbuf *b, uint8_t v) { return kbuf_put_raw(b, &v, 1); }

int kbuf_put_u16(struct kbuf *b, uint16_t v)
{
	uint8_t t[2];

	kput_le16(t, v);
	return kbuf_put_raw(b, t, 2);
}

int kbuf_put_u32(struct kbuf *b, uint32_t v)
{
	uint8_t t[4];

	kput_le32(t, v);
	return kbuf_put_raw(b, t, 4);
}

int kbuf_put_u64(struct kbuf *b, uint64_t v)
{
	uint8_t t[8];

	kput_le64(t, v);
	return kbuf_put_raw(b, t, 8);
}

int kbuf_put_str8(struct kbuf *b, const char *s)
{
	size_t n = strlen(s);
	int r;

	if (n == 0 || n > 255)
		return KERR_USAGE;
	if ((r = kbuf_put_u8(b, (uint8_t)n)) != 0)
		return r;
	return kbuf_put_raw(b, s, n);
}

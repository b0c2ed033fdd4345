// SPDX-License-Identifier: GPL-2.0-or-later
/* format/fhdr.c: the 76-byte file header and the 72-byte directory IV file:
 * round trip, every bit flip caught by parse or MAC, versions, flags, reserved
 * bytes, short and long buffers; the name binding. */
#include "kt.h"

static void make_fhdr(struct kformat_fhdr *h, int suite, uint16_t flags)
{
	memset(h, 0, sizeof(*h));
	h->suite = (uint8_t)suite;
	h->flags = flags;
	h->epoch = 0x01020304;
	kt_fill(h->file_id, 16, 31);
	kt_fill(h->bind, 16, 32);
	kt_fill(h->bind_prev, 16, 33);
}

static void test_fhdr_roundtrip(void **state)
{
	struct kformat_epoch_keys k;
	static const int suites[] = { KSUITE_AES256GCM, KSUITE_XCHACHA20POLY1305 };

	(void)state;
	kt_epoch_keys(&k, 0x01020304, 1);
	for (int s = 0; s < 2; s++) {
		for (uint16_t flags = 0; flags <= KFORMAT_FHDR_LINKED; flags++) {
			struct kformat_fhdr h, p;
			uint8_t buf[KFORMAT_FHDR_LEN + 8];

			make_fhdr(&h, suites[s], flags);
			memset(buf, 0xc5, sizeof(buf));
			assert_int_equal(kformat_fhdr_serialize(&h, &k, buf), 0);
			for (size_t i = KFORMAT_FHDR_LEN; i < sizeof(buf); i++)
				assert_int_equal(buf[i], 0xc5);
			/* fixed layout */
			assert_memory_equal(buf, "kF\x01", 3);
			assert_int_equal(buf[3], suites[s]);
			assert_int_equal(kget_le16(buf + 4), flags);
			assert_int_equal(kget_le16(buf + 6), 0);
			assert_int_equal(kget_le32(buf + 8), 0x01020304);
			assert_memory_equal(buf + 12, h.file_id, 16);
			assert_memory_equal(buf + 28, h.bind, 16);
			assert_memory_equal(buf + 44, h.bind_prev, 16);

			memset(&p, 0xee, sizeof(p));
			assert_int_equal(kformat_fhdr_parse(buf, KFORMAT_FHDR_LEN, &p), 0);
			assert_int_equal(kformat_fhdr_verify(buf, KFORMAT_FHDR_LEN, &k), 0);
			assert_int_equal(p.suite, h.suite);
			assert_int_equal(p.flags, h.flags);
			assert_int_equal(p.epoch, h.epoch);
			assert_memory_equal(p.file_id, h.file_id, 16);
			assert_memory_equal(p.bind, h.bind, 16);
			assert_memory_equal(p.bind_prev, h.bind_prev, 16);
			/* the header is the start of a longer file: trailing bytes are blocks */
			assert_int_equal(kformat_fhdr_parse(buf, sizeof(buf), &p), 0);
			assert_int_equal(kformat_fhdr_verify(buf, sizeof(buf), &k), 0);
		}
	}
}

static void test_fhdr_every_bit(void **state)
{
	struct kformat_epoch_keys k;
	struct kformat_fhdr h, p;
	uint8_t buf[KFORMAT_FHDR_LEN];

	(void)state;
	kt_epoch_keys(&k, 7, 2);
	make_fhdr(&h, KSUITE_AES256GCM, 0);
	h.epoch = 7;
	assert_int_equal(kformat_fhdr_serialize(&h, &k, buf), 0);
	for (size_t bit = 0; bit < KFORMAT_FHDR_LEN * 8; bit++) {
		int rp, rv;

		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		rp = kformat_fhdr_parse(buf, sizeof(buf), &p);
		rv = kformat_fhdr_verify(buf, sizeof(buf), &k);
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		/* the MAC covers every byte before it; a flip inside it fails too */
		kt_check(rv == KERR_AUTH, "bit %zu (byte %zu): verify %d", bit, bit / 8, rv);
		/* magic, version, unknown flag bits and the reserved field are checked
		 * by parse alone (bit 0 of byte 4 is LINKED, a known flag) */
		if (bit / 8 < 3 || (bit / 8 == 4 && bit % 8 != 0) || (bit / 8 >= 5 && bit / 8 < 8))
			kt_check(rp != 0, "bit %zu (byte %zu): structural byte not checked by parse", bit,
				 bit / 8);
	}
	/* every byte replaced by every other value */
	for (size_t i = 0; i < KFORMAT_FHDR_LEN; i++) {
		uint8_t orig = buf[i];

		for (int v = 0; v < 256; v++) {
			if (v == orig)
				continue;
			buf[i] = (uint8_t)v;
			kt_check(kformat_fhdr_parse(buf, sizeof(buf), &p) != 0 ||
					 kformat_fhdr_verify(buf, sizeof(buf), &k) != 0,
				 "byte %zu = 0x%02x accepted", i, v);
		}
		buf[i] = orig;
	}
	assert_int_equal(kformat_fhdr_verify(buf, sizeof(buf), &k), 0);
}

static void test_fhdr_version_flags(void **state)
{
	struct kformat_epoch_keys k;
	struct kformat_fhdr h, p;
	uint8_t buf[KFORMAT_FHDR_LEN], mod[KFORMAT_FHDR_LEN];

	(void)state;
	kt_epoch_keys(&k, 1, 3);
	make_fhdr(&h, KSUITE_XCHACHA20POLY1305, 0);
	assert_int_equal(kformat_fhdr_serialize(&h, &k, buf), 0);

	/* newer versions: KERR_VERSION; version 0: malformed */
	for (int v = 2; v < 256; v++) {
		memcpy(mod, buf, sizeof(mod));
		mod[2] = (uint8_t)v;
		kt_check(kformat_fhdr_parse(mod, sizeof(mod), &p) == KERR_VERSION, "version %d", v);
	}
	memcpy(mod, buf, sizeof(mod));
	mod[2] = 0;
	assert_int_equal(kformat_fhdr_parse(mod, sizeof(mod), &p), KERR_FORMAT);

	/* every unknown flag bit, alone and with LINKED, even with a valid MAC */
	for (int bit = 0; bit < 16; bit++) {
		uint16_t f = (uint16_t)(1u << bit);

		if (f & KFORMAT_FHDR_KNOWN_FLAGS)
			continue;
		for (int withlinked = 0; withlinked <= 1; withlinked++) {
			h.flags = (uint16_t)(f | (withlinked ? KFORMAT_FHDR_LINKED : 0));
			assert_int_equal(kformat_fhdr_serialize(&h, &k, mod), 0);
			assert_int_equal(kformat_fhdr_verify(mod, sizeof(mod), &k), 0);
			kt_check(kformat_fhdr_parse(mod, sizeof(mod), &p) == KERR_VERSION, "flags 0x%04x",
				 h.flags);
		}
	}
	h.flags = 0;

	/* reserved field non-zero */
	memcpy(mod, buf, sizeof(mod));
	mod[7] = 1;
	assert_int_equal(kformat_fhdr_parse(mod, sizeof(mod), &p), KERR_FORMAT);
	/* magic */
	memcpy(mod, buf, sizeof(mod));
	mod[1] = 'D';
	assert_int_equal(kformat_fhdr_parse(mod, sizeof(mod), &p), KERR_FORMAT);

	/* short buffers at every length */
	for (size_t n = 0; n < KFORMAT_FHDR_LEN; n++) {
		kt_check(kformat_fhdr_parse(buf, n, &p) == KERR_FORMAT, "parse of %zu bytes", n);
		kt_check(kformat_fhdr_verify(buf, n, &k) == KERR_FORMAT, "verify of %zu bytes", n);
	}
	/* keys of another epoch do not verify it */
	{
		struct kformat_epoch_keys k2;

		kt_epoch_keys(&k2, 2, 4);
		assert_int_equal(kformat_fhdr_verify(buf, sizeof(buf), &k2), KERR_AUTH);
	}
}

/* ---------------- directory IV ---------------- */

static void make_diriv(struct kformat_diriv *d, uint32_t epoch)
{
	memset(d, 0, sizeof(*d));
	d->epoch = epoch;
	kt_fill(d->iv, 16, 41);
	kt_fill(d->bind, 16, 42);
}

static void test_diriv_roundtrip(void **state)
{
	struct kformat_epoch_keys k;
	struct kformat_diriv d, p;
	uint8_t buf[KFORMAT_DIRIV_LEN + 8];

	(void)state;
	kt_epoch_keys(&k, 9, 5);
	make_diriv(&d, 9);
	{
		memset(buf, 0xc5, sizeof(buf));
		assert_int_equal(kformat_diriv_serialize(&d, &k, buf), 0);
		for (size_t i = KFORMAT_DIRIV_LEN; i < sizeof(buf); i++)
			assert_int_equal(buf[i], 0xc5);
		assert_memory_equal(buf, "kD\x01\x00", 4);
		assert_int_equal(kget_le32(buf + 4), 9);
		assert_memory_equal(buf + 8, d.iv, 16);
		assert_memory_equal(buf + 24, d.bind, 16);
		assert_memory_equal(buf + 40, d.bind_prev, 16);
		memset(&p, 0xee, sizeof(p));
		assert_int_equal(kformat_diriv_parse(buf, KFORMAT_DIRIV_LEN, &p), 0);
		assert_int_equal(kformat_diriv_verify(buf, KFORMAT_DIRIV_LEN, &k), 0);
		assert_int_equal(p.epoch, 9);
		assert_memory_equal(p.iv, d.iv, 16);
		assert_memory_equal(p.bind, d.bind, 16);
		assert_memory_equal(p.bind_prev, d.bind_prev, 16);
	}
	/* the file is exactly 72 bytes: longer is malformed */
	assert_int_equal(kformat_diriv_parse(buf, KFORMAT_DIRIV_LEN + 1, &p), KERR_FORMAT);
	assert_int_equal(kformat_diriv_verify(buf, KFORMAT_DIRIV_LEN + 1, &k), KERR_FORMAT);
	for (size_t n = 0; n < KFORMAT_DIRIV_LEN; n++) {
		kt_check(kformat_diriv_parse(buf, n, &p) == KERR_FORMAT, "parse of %zu bytes", n);
		kt_check(kformat_diriv_verify(buf, n, &k) == KERR_FORMAT, "verify of %zu bytes", n);
	}
}

/* kinko-format(5): bytes 40..55 are bind_prev (16 bytes), 56..71 the MAC;
 * there is no reserved field. A directory being renamed carries the binding of
 * its old place in bind_prev, and a reader accepts the directory from there.
 * (Known: the man page's BUGS section says 0.1.0 zeroes bytes 52..55.) */
static void test_diriv_bind_prev(void **state)
{
	struct kformat_epoch_keys k;
	struct kformat_diriv d, p;
	uint8_t buf[KFORMAT_DIRIV_LEN], spec[KFORMAT_DIRIV_LEN];

	(void)state;
	kt_epoch_keys(&k, 9, 5);
	make_diriv(&d, 9);
	kt_fill(d.bind_prev, 16, 43);
	assert_int_not_equal(kget_le32(d.bind_prev + 12), 0);

	/* a file laid out by the specification, MAC made independently */
	memcpy(spec, "kD\x01\x00", 4);
	kput_le32(spec + 4, 9);
	memcpy(spec + 8, d.iv, 16);
	memcpy(spec + 24, d.bind, 16);
	memcpy(spec + 40, d.bind_prev, 16);
	assert_int_equal(kcrypto_hash(spec + 56, 16, k.meta, sizeof(k.meta), spec, 56), 0);

	/* the writer produces exactly that */
	assert_int_equal(kformat_diriv_serialize(&d, &k, buf), 0);
	kt_check(memcmp(buf + 40, d.bind_prev, 16) == 0,
		 "serialize stored bind_prev cut short: bytes 52..55 written as %02x%02x%02x%02x",
		 buf[52], buf[53], buf[54], buf[55]);
	assert_memory_equal(buf, spec, sizeof(spec));

	/* and the reader accepts it with the whole bind_prev */
	memset(&p, 0, sizeof(p));
	kt_check(kformat_diriv_parse(spec, sizeof(spec), &p) == 0,
		 "parse refuses a directory IV file whose bind_prev ends in non-zero bytes: %d",
		 kformat_diriv_parse(spec, sizeof(spec), &p));
	assert_int_equal(kformat_diriv_verify(spec, sizeof(spec), &k), 0);
	assert_memory_equal(p.bind_prev, d.bind_prev, 16);
}

static void test_diriv_every_bit(void **state)
{
	struct kformat_epoch_keys k;
	struct kformat_diriv d, p;
	uint8_t buf[KFORMAT_DIRIV_LEN], mod[KFORMAT_DIRIV_LEN];

	(void)state;
	kt_epoch_keys(&k, 3, 6);
	make_diriv(&d, 3);
	assert_int_equal(kformat_diriv_serialize(&d, &k, buf), 0);
	for (size_t bit = 0; bit < KFORMAT_DIRIV_LEN * 8; bit++) {
		int rp, rv;

		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		rp = kformat_diriv_parse(buf, sizeof(buf), &p);
		rv = kformat_diriv_verify(buf, sizeof(buf), &k);
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		kt_check(rv == KERR_AUTH, "bit %zu (byte %zu): verify %d", bit, bit / 8, rv);
		if (bit / 8 < 4)
			kt_check(rp != 0, "bit %zu (byte %zu): structural byte not checked", bit, bit / 8);
	}
	for (size_t i = 0; i < KFORMAT_DIRIV_LEN; i++) {
		uint8_t orig = buf[i];

		for (int v = 0; v < 256; v++) {
			if (v == orig)
				continue;
			buf[i] = (uint8_t)v;
			kt_check(kformat_diriv_parse(buf, sizeof(buf), &p) != 0 ||
					 kformat_diriv_verify(buf, sizeof(buf), &k) != 0,
				 "byte %zu = 0x%02x accepted", i, v);
		}
		buf[i] = orig;
	}
	/* versions */
	for (int v = 2; v < 256; v++) {
		memcpy(mod, buf, sizeof(mod));
		mod[2] = (uint8_t)v;
		kt_check(kformat_diriv_parse(mod, sizeof(mod), &p) == KERR_VERSION, "version %d", v);
	}
	memcpy(mod, buf, sizeof(mod));
	mod[2] = 0;
	assert_int_equal(kformat_diriv_parse(mod, sizeof(mod), &p), KERR_FORMAT);
	/* the reserved byte after the version */
	memcpy(mod, buf, sizeof(mod));
	mod[3] = 1;
	assert_int_equal(kformat_diriv_parse(mod, sizeof(mod), &p), KERR_FORMAT);
	/* a file header is not a dir IV and vice versa */
	{
		struct kformat_fhdr h;

		assert_int_equal(kformat_fhdr_parse(buf, sizeof(buf), &h), KERR_FORMAT);
	}
	/* other epoch keys */
	{
		struct kformat_epoch_keys k2;

		kt_epoch_keys(&k2, 3, 7);
		assert_int_equal(kformat_diriv_verify(buf, sizeof(buf), &k2), KERR_AUTH);
	}
}

/* ---------------- binding ---------------- */

static void test_binding(void **state)
{
	uint8_t iv[16], iv2[16], b1[16], b2[16], zero[16] = { 0 };
	char name[300];

	(void)state;
	kt_fill(iv, 16, 51);
	memcpy(iv2, iv, 16);
	iv2[15] ^= 1;
	assert_int_equal(kformat_binding(b1, iv, "abc"), 0);
	assert_int_equal(kformat_binding(b2, iv, "abc"), 0);
	assert_memory_equal(b1, b2, 16);
	assert_false(kformat_binding_is_zero(b1));
	assert_int_equal(kformat_binding(b2, iv2, "abc"), 0);
	assert_memory_not_equal(b1, b2, 16);
	assert_int_equal(kformat_binding(b2, iv, "abd"), 0);
	assert_memory_not_equal(b1, b2, 16);
	assert_int_equal(kformat_binding(b2, iv, "ab"), 0);
	assert_memory_not_equal(b1, b2, 16);
	assert_int_equal(kformat_binding(b2, iv, ""), 0);
	assert_memory_not_equal(b1, b2, 16);
	memset(name, 'n', sizeof(name));
	name[255] = 0;
	assert_int_equal(kformat_binding(b2, iv, name), 0);
	name[255] = 'n';
	name[256] = 0;
	assert_int_equal(kformat_binding(b2, iv, name), -ENAMETOOLONG);
	assert_true(kformat_binding_is_zero(zero));
	/* kinko-format(5), EXAMPLES / A directory IV file: the top directory of
	 * compartment 3cc5...bc09 is bound with the compartment id as parent IV
	 * and its 32 hex digits as name */
	{
		static const char comp_hex[] = "3cc5b44682d4beeebfa09d00ee51bc09";
		uint8_t comp[16], expect[16];

		kt_unhex(comp, 16, comp_hex);
		kt_unhex(expect, 16, "1a379d6c921a724eed53f363f593ada4");
		assert_int_equal(kformat_binding(b1, comp, comp_hex), 0);
		assert_memory_equal(b1, expect, 16);
	}
	for (int i = 0; i < 16; i++) {
		zero[i] = 1;
		assert_false(kformat_binding_is_zero(zero));
		zero[i] = 0;
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fhdr_roundtrip),
		cmocka_unit_test(test_fhdr_every_bit),
		cmocka_unit_test(test_fhdr_version_flags),
		cmocka_unit_test(test_diriv_roundtrip),
		cmocka_unit_test(test_diriv_bind_prev),
		cmocka_unit_test(test_diriv_every_bit),
		cmocka_unit_test(test_binding),
	};

	return cmocka_run_group_tests_name("fhdr", tests, kt_group_setup, NULL);
}

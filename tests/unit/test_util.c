// SPDX-License-Identifier: GPL-2.0-or-later
/* util: bounded buffers (every short-read path), str8, hex, atomic file
 * helpers (replace/create/read with the size cap), user ids, time, errors. */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kt.h"

/* ---------------- kbuf reader ---------------- */

static const uint8_t seq[16] = { 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
				 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10 };

static void test_kbuf_get_values_le(void **state)
{
	struct kbuf b;
	uint8_t u8, raw[3];
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;
	const uint8_t *p;

	(void)state;
	kbuf_init_reader(&b, seq, sizeof(seq));
	assert_int_equal(kbuf_remaining(&b), 16);
	assert_ptr_equal(kbuf_cursor(&b), seq);
	assert_int_equal(kbuf_get_u8(&b, &u8), 0);
	assert_int_equal(u8, 0x01);
	assert_int_equal(kbuf_get_u16(&b, &u16), 0);
	assert_int_equal(u16, 0x0302);
	assert_int_equal(kbuf_get_u32(&b, &u32), 0);
	assert_int_equal(u32, 0x07060504u);
	assert_int_equal(kbuf_get_u64(&b, &u64), 0);
	assert_true(u64 == UINT64_C(0x0f0e0d0c0b0a0908));
	assert_int_equal(kbuf_remaining(&b), 1);
	assert_int_equal(kbuf_expect_end(&b), KERR_FORMAT);
	assert_int_equal(kbuf_get_ptr(&b, &p, 1), 0);
	assert_ptr_equal(p, seq + 15);
	assert_int_equal(kbuf_expect_end(&b), 0);
	/* zero-length reads succeed at the end and do not move */
	assert_int_equal(kbuf_get_raw(&b, raw, 0), 0);
	assert_int_equal(kbuf_get_ptr(&b, &p, 0), 0);
	assert_int_equal(kbuf_remaining(&b), 0);
}

/* Every getter, at every remaining length shorter than it needs, fails with
 * KERR_FORMAT, leaves the cursor where it was and does not write the output. */
static void test_kbuf_short_reads(void **state)
{
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;
	uint8_t raw[16];
	const uint8_t *p;

	(void)state;
	for (size_t avail = 0; avail < 16; avail++) {
		for (size_t pre = 0; pre <= 1; pre++) {
			struct kbuf b;
			uint8_t skip;

			/* a cursor that is not at the start must be honoured too */
			kbuf_init_reader(&b, seq, avail + pre);
			if (pre)
				assert_int_equal(kbuf_get_u8(&b, &skip), 0);
			assert_int_equal(kbuf_remaining(&b), avail);
			if (avail < 1) {
				u8 = 0xaa;
				assert_int_equal(kbuf_get_u8(&b, &u8), KERR_FORMAT);
				assert_int_equal(u8, 0xaa);
			}
			if (avail < 2) {
				u16 = 0xaaaa;
				assert_int_equal(kbuf_get_u16(&b, &u16), KERR_FORMAT);
				assert_int_equal(u16, 0xaaaa);
			}
			if (avail < 4) {
				u32 = 0xaaaaaaaa;
				assert_int_equal(kbuf_get_u32(&b, &u32), KERR_FORMAT);
				assert_int_equal(u32, 0xaaaaaaaa);
			}
			if (avail < 8) {
				u64 = 0xaaaa;
				assert_int_equal(kbuf_get_u64(&b, &u64), KERR_FORMAT);
				assert_true(u64 == 0xaaaa);
			}
			for (size_t want = avail + 1; want <= 16; want++) {
				memset(raw, 0xaa, sizeof(raw));
				assert_int_equal(kbuf_get_raw(&b, raw, want), KERR_FORMAT);
				for (size_t i = 0; i < sizeof(raw); i++)
					assert_int_equal(raw[i], 0xaa);
				p = NULL;
				assert_int_equal(kbuf_get_ptr(&b, &p, want), KERR_FORMAT);
				assert_null(p);
			}
			/* huge n must not wrap the bounds check */
			assert_int_equal(kbuf_get_ptr(&b, &p, SIZE_MAX), KERR_FORMAT);
			assert_int_equal(kbuf_get_ptr(&b, &p, SIZE_MAX / 2 + 1), KERR_FORMAT);
			assert_int_equal(kbuf_remaining(&b), avail);
			/* the exact length still works after all the failures */
			assert_int_equal(kbuf_get_raw(&b, raw, avail), 0);
			assert_memory_equal(raw, seq + pre, avail);
			assert_int_equal(kbuf_expect_end(&b), 0);
		}
	}
}

static void test_kbuf_str8(void **state)
{
	struct kbuf b;
	char out[KFORMAT_USERID_MAX + 1];
	uint8_t buf[64];

	(void)state;
	/* valid */
	memcpy(buf, "\x05hello", 6);
	kbuf_init_reader(&b, buf, 6);
	assert_int_equal(kbuf_get_str8(&b, out, 32), 0);
	assert_string_equal(out, "hello");
	assert_int_equal(kbuf_expect_end(&b), 0);

	/* exactly max, then max + 1 */
	buf[0] = 32;
	memset(buf + 1, 'a', 33);
	kbuf_init_reader(&b, buf, 33);
	assert_int_equal(kbuf_get_str8(&b, out, 32), 0);
	assert_int_equal(strlen(out), 32);
	buf[0] = 33;
	kbuf_init_reader(&b, buf, 34);
	assert_int_equal(kbuf_get_str8(&b, out, 32), KERR_FORMAT);

	/* empty string refused */
	buf[0] = 0;
	kbuf_init_reader(&b, buf, 1);
	assert_int_equal(kbuf_get_str8(&b, out, 32), KERR_FORMAT);

	/* no length byte */
	kbuf_init_reader(&b, buf, 0);
	assert_int_equal(kbuf_get_str8(&b, out, 32), KERR_FORMAT);

	/* length byte promises more than is there: every short length */
	for (size_t have = 0; have < 10; have++) {
		buf[0] = 10;
		memset(buf + 1, 'x', 10);
		kbuf_init_reader(&b, buf, 1 + have);
		assert_int_equal(kbuf_get_str8(&b, out, 32), KERR_FORMAT);
	}

	/* embedded NUL at every position */
	for (size_t pos = 0; pos < 6; pos++) {
		memcpy(buf, "\x06" "abcdef", 7);
		buf[1 + pos] = 0;
		kbuf_init_reader(&b, buf, 7);
		assert_int_equal(kbuf_get_str8(&b, out, 32), KERR_FORMAT);
	}

	/* 255 (the longest a u8 prefix can say) with a large max */
	{
		uint8_t big[256];
		char bigout[256];

		big[0] = 255;
		memset(big + 1, 'z', 255);
		kbuf_init_reader(&b, big, sizeof(big));
		assert_int_equal(kbuf_get_str8(&b, bigout, 255), 0);
		assert_int_equal(strlen(bigout), 255);
		kbuf_init_reader(&b, big, sizeof(big));
		assert_int_equal(kbuf_get_str8(&b, bigout, 254), KERR_FORMAT);
	}
}

/* ---------------- kbuf writer ---------------- */

static void test_kbuf_writer(void **state)
{
	struct kbuf b;
	char longs[300];
	uint8_t big[1000];
	static const uint8_t expect[] = { 0xab, 0x34, 0x12, 0x78, 0x56, 0x34, 0x12,
					  0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
					  0x03, 'a', 'b', 'c' };

	(void)state;
	kbuf_init_writer(&b);
	assert_int_equal(kbuf_put_u8(&b, 0xab), 0);
	assert_int_equal(kbuf_put_u16(&b, 0x1234), 0);
	assert_int_equal(kbuf_put_u32(&b, 0x12345678u), 0);
	assert_int_equal(kbuf_put_u64(&b, UINT64_C(0x0102030405060708)), 0);
	assert_int_equal(kbuf_put_str8(&b, "abc"), 0);
	assert_int_equal(b.len, sizeof(expect));
	assert_memory_equal(b.p, expect, sizeof(expect));

	/* str8: empty and longer than 255 refused, 255 accepted */
	assert_int_equal(kbuf_put_str8(&b, ""), KERR_USAGE);
	memset(longs, 'q', sizeof(longs));
	longs[256] = 0;
	assert_int_equal(kbuf_put_str8(&b, longs), KERR_USAGE);
	assert_int_equal(b.len, sizeof(expect));
	longs[255] = 0;
	assert_int_equal(kbuf_put_str8(&b, longs), 0);
	assert_int_equal(b.len, sizeof(expect) + 256);
	assert_int_equal(b.p[sizeof(expect)], 255);

	/* growth keeps earlier bytes */
	kt_fill(big, sizeof(big), 7);
	for (int i = 0; i < 20; i++)
		assert_int_equal(kbuf_put_raw(&b, big, sizeof(big)), 0);
	assert_int_equal(b.len, sizeof(expect) + 256 + 20 * sizeof(big));
	assert_memory_equal(b.p, expect, sizeof(expect));
	for (int i = 0; i < 20; i++)
		assert_memory_equal(b.p + sizeof(expect) + 256 + (size_t)i * sizeof(big), big, sizeof(big));
	assert_true(b.cap >= b.len);

	/* the 64 MiB cap: refused before anything is copied */
	{
		size_t before = b.len;

		assert_int_equal(kbuf_put_raw(&b, big, (64u << 20) + 1), -EFBIG);
		assert_int_equal(kbuf_put_raw(&b, big, SIZE_MAX), -EFBIG);
		assert_int_equal(b.len, before);
	}

	/* what was written reads back */
	{
		struct kbuf r;
		uint8_t u8;
		uint16_t u16;
		uint32_t u32;
		uint64_t u64;
		char s[8];

		kbuf_init_reader(&r, b.p, sizeof(expect));
		assert_int_equal(kbuf_get_u8(&r, &u8), 0);
		assert_int_equal(kbuf_get_u16(&r, &u16), 0);
		assert_int_equal(kbuf_get_u32(&r, &u32), 0);
		assert_int_equal(kbuf_get_u64(&r, &u64), 0);
		assert_int_equal(kbuf_get_str8(&r, s, 7), 0);
		assert_int_equal(u8, 0xab);
		assert_int_equal(u16, 0x1234);
		assert_int_equal(u32, 0x12345678u);
		assert_true(u64 == UINT64_C(0x0102030405060708));
		assert_string_equal(s, "abc");
		assert_int_equal(kbuf_expect_end(&r), 0);
	}
	kbuf_free(&b);
	assert_null(b.p);
	assert_int_equal(b.len, 0);
	kbuf_free(&b); /* twice is fine */
	kbuf_free(NULL);
}

/* a fixed (caller-owned) buffer used as a writer never overflows */
static void test_kbuf_fixed_writer(void **state)
{
	uint8_t store[10], guard[4];
	struct kbuf b;

	(void)state;
	memset(store, 0, sizeof(store));
	memset(guard, 0x5a, sizeof(guard));
	kbuf_init_reader(&b, store, 0);
	b.cap = 8;
	assert_int_equal(kbuf_put_u32(&b, 0x11223344), 0);
	assert_int_equal(kbuf_put_u16(&b, 0x5566), 0);
	assert_int_equal(kbuf_put_u32(&b, 0x778899aa), -ENOSPC);
	assert_int_equal(kbuf_put_u16(&b, 0x7788), 0);
	assert_int_equal(kbuf_put_u8(&b, 1), -ENOSPC);
	assert_int_equal(b.len, 8);
	assert_int_equal(store[8], 0);
	assert_int_equal(store[9], 0);
	kbuf_free(&b); /* does not free caller storage */
	assert_int_equal(store[0], 0x44);
}

/* ---------------- hex ---------------- */

static void test_hex(void **state)
{
	char out[2 * 16 + 1];
	uint8_t dec[16], all[256];
	char allhex[513];

	(void)state;
	khex_encode(out, seq, 4);
	assert_string_equal(out, "01020304");
	khex_encode(out, (const uint8_t *)"\xff\x00\xab", 3);
	assert_string_equal(out, "ff00ab");
	khex_encode(out, seq, 0);
	assert_string_equal(out, "");

	for (int i = 0; i < 256; i++)
		all[i] = (uint8_t)i;
	khex_encode(allhex, all, 256);
	assert_int_equal(strlen(allhex), 512);
	memset(dec, 0, sizeof(dec));
	{
		uint8_t back[256];

		assert_int_equal(khex_decode(back, 256, allhex), 0);
		assert_memory_equal(back, all, 256);
	}
	assert_int_equal(khex_decode(dec, 3, "FF00aB"), 0);
	assert_memory_equal(dec, "\xff\x00\xab", 3);
	assert_int_equal(khex_decode(dec, 0, ""), 0);

	/* wrong lengths */
	assert_int_equal(khex_decode(dec, 3, "ff00a"), KERR_FORMAT);
	assert_int_equal(khex_decode(dec, 3, "ff00abc"), KERR_FORMAT);
	assert_int_equal(khex_decode(dec, 3, "ff00abcd"), KERR_FORMAT);
	assert_int_equal(khex_decode(dec, 3, ""), KERR_FORMAT);
	/* bad characters at every position */
	for (int pos = 0; pos < 6; pos++) {
		static const char bad[] = "gG /:@`x-\xff";

		for (const char *c = bad; *c; c++) {
			char s[7] = "ff00ab";

			s[pos] = *c;
			assert_int_equal(khex_decode(dec, 3, s), KERR_FORMAT);
		}
	}
}

/* ---------------- files ---------------- */

struct tmpdir {
	char path[64];
	int fd;
};

static void tmpdir_open(struct tmpdir *t)
{
	snprintf(t->path, sizeof(t->path), "/tmp/kinko-unit-util.XXXXXX");
	assert_non_null(mkdtemp(t->path));
	t->fd = open(t->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(t->fd >= 0);
}

static int count_entries(int at, const char *sub)
{
	int fd = openat(at, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;
	struct dirent *de;
	int n = 0;

	assert_true(fd >= 0);
	d = fdopendir(fd);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void rm_rf_at(int at, const char *name)
{
	int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd >= 0) {
		DIR *d = fdopendir(fd);
		struct dirent *de;

		assert_non_null(d);
		while ((de = readdir(d)) != NULL)
			if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
				rm_rf_at(dirfd(d), de->d_name);
		closedir(d);
		assert_int_equal(unlinkat(at, name, AT_REMOVEDIR), 0);
	} else {
		assert_int_equal(unlinkat(at, name, 0), 0);
	}
}

static void tmpdir_close(struct tmpdir *t)
{
	close(t->fd);
	rm_rf_at(AT_FDCWD, t->path);
}

static void read_expect(int at, const char *name, const void *data, size_t len)
{
	uint8_t *buf = NULL;
	size_t n = 0;

	assert_int_equal(kfile_read_at(at, name, 1 << 20, &buf, &n), 0);
	assert_int_equal(n, len);
	assert_non_null(buf);
	if (len)
		assert_memory_equal(buf, data, len);
	free(buf);
}

static void test_kfile_replace(void **state)
{
	struct tmpdir t;
	struct stat st;
	char longname[600];

	(void)state;
	tmpdir_open(&t);
	assert_int_equal(kfile_replace_at(t.fd, "a", "first", 5, 0600), 0);
	read_expect(t.fd, "a", "first", 5);
	assert_int_equal(fstatat(t.fd, "a", &st, 0), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	/* replace with new content and mode; no temporary file is left behind */
	assert_int_equal(kfile_replace_at(t.fd, "a", "second!", 7, 0644), 0);
	read_expect(t.fd, "a", "second!", 7);
	assert_int_equal(fstatat(t.fd, "a", &st, 0), 0);
	assert_int_equal(st.st_mode & 0777 & ~0644, 0);
	assert_int_equal(count_entries(t.fd, "."), 1);
	/* empty content */
	assert_int_equal(kfile_replace_at(t.fd, "a", "", 0, 0600), 0);
	read_expect(t.fd, "a", "", 0);
	/* a path with a directory part */
	assert_int_equal(kmkdirs_at(t.fd, "sub/deeper", 0700), 0);
	assert_int_equal(kfile_replace_at(t.fd, "sub/deeper/f", "x", 1, 0600), 0);
	read_expect(t.fd, "sub/deeper/f", "x", 1);
	assert_int_equal(count_entries(t.fd, "sub/deeper"), 1);
	/* missing directory: error, nothing created */
	assert_int_equal(kfile_replace_at(t.fd, "nodir/f", "x", 1, 0600), -ENOENT);
	/* a name too long for the temporary name buffer */
	memset(longname, 'n', sizeof(longname));
	longname[sizeof(longname) - 1] = 0;
	assert_int_equal(kfile_replace_at(t.fd, longname, "x", 1, 0600), -ENAMETOOLONG);
	/* replacing over a directory fails and leaves no temporary behind */
	assert_true(kfile_replace_at(t.fd, "sub", "x", 1, 0600) < 0);
	assert_int_equal(count_entries(t.fd, "."), 2);
	tmpdir_close(&t);
}

static void test_kfile_create(void **state)
{
	struct tmpdir t;
	struct stat st;

	(void)state;
	tmpdir_open(&t);
	assert_int_equal(kfile_create_at(t.fd, "c", "one", 3, 0640), 0);
	assert_int_equal(fstatat(t.fd, "c", &st, 0), 0);
	assert_int_equal(st.st_mode & 0777 & ~0640, 0);
	read_expect(t.fd, "c", "one", 3);
	/* exclusive: a second create fails and keeps the first content */
	assert_int_equal(kfile_create_at(t.fd, "c", "two", 3, 0640), -EEXIST);
	read_expect(t.fd, "c", "one", 3);
	/* does not follow a symlink planted at the name */
	assert_int_equal(symlinkat("c", t.fd, "link"), 0);
	assert_int_equal(kfile_create_at(t.fd, "link", "evil", 4, 0600), -EEXIST);
	read_expect(t.fd, "c", "one", 3);
	/* in a subdirectory */
	assert_int_equal(mkdirat(t.fd, "d", 0700), 0);
	assert_int_equal(kfile_create_at(t.fd, "d/f", "z", 1, 0600), 0);
	read_expect(t.fd, "d/f", "z", 1);
	assert_int_equal(kfile_create_at(t.fd, "missing/f", "z", 1, 0600), -ENOENT);
	tmpdir_close(&t);
}

static void test_kfile_read(void **state)
{
	struct tmpdir t;
	uint8_t *buf, *data;
	size_t n, big = 300000;

	(void)state;
	tmpdir_open(&t);
	data = malloc(big);
	assert_non_null(data);
	kt_fill(data, big, 3);
	assert_int_equal(kfile_replace_at(t.fd, "big", data, big, 0600), 0);

	/* exactly max bytes is fine; max - 1 is -EFBIG with no output */
	assert_int_equal(kfile_read_at(t.fd, "big", big, &buf, &n), 0);
	assert_int_equal(n, big);
	assert_memory_equal(buf, data, big);
	free(buf);
	buf = (uint8_t *)1;
	n = 99;
	assert_int_equal(kfile_read_at(t.fd, "big", big - 1, &buf, &n), -EFBIG);
	assert_null(buf);
	assert_int_equal(n, 0);
	assert_int_equal(kfile_read_at(t.fd, "big", 0, &buf, &n), -EFBIG);

	/* empty file with max 0 */
	assert_int_equal(kfile_replace_at(t.fd, "empty", "", 0, 0600), 0);
	assert_int_equal(kfile_read_at(t.fd, "empty", 0, &buf, &n), 0);
	assert_int_equal(n, 0);
	free(buf);

	/* missing, directory, symlink */
	assert_int_equal(kfile_read_at(t.fd, "nope", 100, &buf, &n), -ENOENT);
	assert_null(buf);
	assert_int_equal(mkdirat(t.fd, "dir", 0700), 0);
	assert_int_equal(kfile_read_at(t.fd, "dir", 100, &buf, &n), KERR_FORMAT);
	assert_null(buf);
	assert_int_equal(symlinkat("empty", t.fd, "sym"), 0);
	assert_int_equal(kfile_read_at(t.fd, "sym", 100, &buf, &n), -ELOOP);
	assert_null(buf);
	free(data);
	tmpdir_close(&t);
}

static void test_kfile_io_loops(void **state)
{
	struct tmpdir t;
	uint8_t data[10000], back[10000];
	int fd;

	(void)state;
	tmpdir_open(&t);
	kt_fill(data, sizeof(data), 11);
	fd = openat(t.fd, "io", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(kwrite_all(fd, data, 100), 0);
	assert_int_equal(kpwrite_all(fd, data + 100, sizeof(data) - 100, 100), 0);
	assert_int_equal(kpread_full(fd, back, sizeof(back), 0), (ssize_t)sizeof(back));
	assert_memory_equal(back, data, sizeof(data));
	/* reading past the end returns what is there: a short count, not an error */
	assert_int_equal(kpread_full(fd, back, 100, (off_t)sizeof(data) - 30), 30);
	assert_memory_equal(back, data + sizeof(data) - 30, 30);
	assert_int_equal(kpread_full(fd, back, 100, (off_t)sizeof(data) + 5), 0);
	close(fd);
	assert_int_equal(kwrite_all(-1, data, 1), -EBADF);
	assert_int_equal(kpread_full(-1, back, 1, 0), -EBADF);
	assert_int_equal(kpwrite_all(-1, data, 1, 0), -EBADF);
	tmpdir_close(&t);
}

static void test_kmkdirs(void **state)
{
	struct tmpdir t;
	struct stat st;
	char longp[5000];

	(void)state;
	tmpdir_open(&t);
	assert_int_equal(kmkdirs_at(t.fd, "a/b/c", 0700), 0);
	assert_int_equal(fstatat(t.fd, "a/b/c", &st, 0), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(kmkdirs_at(t.fd, "a/b/c", 0700), 0); /* exists: fine */
	assert_int_equal(kmkdirs_at(t.fd, "a/b/d", 0700), 0);
	assert_int_equal(kmkdirs_at(t.fd, "", 0700), -ENAMETOOLONG);
	memset(longp, 'p', sizeof(longp));
	longp[sizeof(longp) - 1] = 0;
	assert_int_equal(kmkdirs_at(t.fd, longp, 0700), -ENAMETOOLONG);
	/* a file in the way */
	assert_int_equal(kfile_create_at(t.fd, "file", "x", 1, 0600), 0);
	assert_int_equal(kmkdirs_at(t.fd, "file/sub", 0700), -ENOTDIR);
	tmpdir_close(&t);
}

/* ---------------- misc ---------------- */

static void test_user_id(void **state)
{
	static const char *const good[] = { "a", "alice", "a.b_c-d", "0", "9lives",
					    "abcdefghijklmnopqrstuvwxyz012345" };
	static const char *const bad[] = { "", "Alice", ".a", "-a", "_a", "a b", "a/b", "a:b",
					   "abcdefghijklmnopqrstuvwxyz0123456", "\xc3\xa9", "a\n" };

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		kt_check(kuser_id_valid(good[i]), "good id '%s'", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		kt_check(!kuser_id_valid(bad[i]), "bad id '%s'", bad[i]);
}

static void test_time(void **state)
{
	char s[32];
	int64_t t;

	(void)state;
	ktime_iso(s, sizeof(s), 0);
	assert_string_equal(s, "1970-01-01T00:00:00Z");
	ktime_iso(s, sizeof(s), 1700000000);
	assert_string_equal(s, "2023-11-14T22:13:20Z");
	assert_int_equal(ktime_parse("2023-11-14T22:13:20Z", &t), 0);
	assert_true(t == 1700000000);
	assert_int_equal(ktime_parse("2023-11-14", &t), 0);
	assert_true(t == 1699920000);
	assert_int_equal(ktime_parse("1970-01-01T00:00:00Z", &t), 0);
	assert_true(t == 0);
	assert_int_equal(ktime_parse("", &t), -EINVAL);
	assert_int_equal(ktime_parse("yesterday", &t), -EINVAL);
	assert_int_equal(ktime_parse("2023-11-14T22:13:20", &t), -EINVAL);
	assert_int_equal(ktime_parse("2023-11-14T22:13:20Zx", &t), -EINVAL);
	assert_int_equal(ktime_parse("2023-11-14 junk", &t), -EINVAL);
	assert_true(ktime_now() > 1600000000);
}

static void test_errors(void **state)
{
	struct kerrinfo ei;

	(void)state;
	for (int r = KERR_FORMAT; r > KERR_LAST; r--) {
		const char *s = kinko_strerror(r);

		kt_check(strcmp(s, "unknown error") != 0, "code %d has no text", r);
		for (int q = KERR_FORMAT; q > r; q--)
			kt_check(strcmp(s, kinko_strerror(q)) != 0, "codes %d and %d share text", r, q);
	}
	assert_string_equal(kinko_strerror(0), "success");
	assert_string_equal(kinko_strerror(-ENOENT), strerror(ENOENT));
	assert_string_equal(kinko_strerror(KERR_LAST), "unknown error");
	assert_string_equal(kinko_strerror(5), "unknown error");
	kerr_set(&ei, "f", "x=%d", 3);
	assert_string_equal(ei.file, "f");
	assert_string_equal(ei.detail, "x=3");
	kerr_set(&ei, NULL, NULL);
	assert_string_equal(ei.file, "");
	assert_string_equal(ei.detail, "");
	kerr_set(NULL, "f", "ignored");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kbuf_get_values_le),
		cmocka_unit_test(test_kbuf_short_reads),
		cmocka_unit_test(test_kbuf_str8),
		cmocka_unit_test(test_kbuf_writer),
		cmocka_unit_test(test_kbuf_fixed_writer),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_kfile_replace),
		cmocka_unit_test(test_kfile_create),
		cmocka_unit_test(test_kfile_read),
		cmocka_unit_test(test_kfile_io_loops),
		cmocka_unit_test(test_kmkdirs),
		cmocka_unit_test(test_user_id),
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_errors),
	};

	return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}

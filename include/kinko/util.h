/* kinko util: errors, logging, bounded buffers, atomic file replacement, time.
 * Lowest layer: depends on libc only. */
#ifndef KINKO_UTIL_H
#define KINKO_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- errors: 0 or a negative errno; kinko-specific codes below -1000 ---- */
enum {
	KERR_BASE = 1000,
	KERR_FORMAT = -(KERR_BASE + 1),      /* malformed or corrupt on-disk structure */
	KERR_VERSION = -(KERR_BASE + 2),     /* format version or feature newer than this build */
	KERR_PASSWORD = -(KERR_BASE + 3),    /* wrong password (key file did not open) */
	KERR_AUTH = -(KERR_BASE + 4),        /* authentication tag / MAC / signature mismatch */
	KERR_KDFPARAM = -(KERR_BASE + 5),    /* KDF parameters out of the accepted range */
	KERR_MISMATCH = -(KERR_BASE + 6),    /* structures that must agree do not (ids, keys) */
	KERR_NOUSER = -(KERR_BASE + 7),      /* user not in policy / no key file */
	KERR_NOGRANT = -(KERR_BASE + 8),     /* user holds no usable grant */
	KERR_CRYPTO = -(KERR_BASE + 9),      /* crypto library failure */
	KERR_USAGE = -(KERR_BASE + 10),      /* bad argument */
	KERR_EXISTS = -(KERR_BASE + 11),     /* vault already exists */
	KERR_FACTOR = -(KERR_BASE + 12),     /* second factor missing or wrong */
	KERR_EXPIRED = -(KERR_BASE + 13),    /* password expired: must be changed */
	KERR_ROLLBACK = -(KERR_BASE + 14),   /* older policy than this host has seen */
	KERR_POLICY = -(KERR_BASE + 15),     /* refused by a policy rule */
	KERR_LAST = -(KERR_BASE + 16),
};
const char *kinko_strerror(int r);

/* Where an error happened, for the one clear line the CLI prints:
 * "<file>: <detail or kinko_strerror(r)>". Functions take it nullable. */
struct kerrinfo {
	char file[512];
	char detail[256];
};
void kerr_set(struct kerrinfo *ei, const char *file, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- logging ---- */
enum klog_level { KLOG_ERR = 3, KLOG_WARNING = 4, KLOG_NOTICE = 5, KLOG_INFO = 6, KLOG_DEBUG = 7 };
void klog_init(const char *ident, bool to_syslog, int max_level);
void klog_at(int level, const char *file, const char *func, int line, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
#define log_err(...) klog_at(KLOG_ERR, __FILE__, __func__, __LINE__, __VA_ARGS__)
#define log_warn(...) klog_at(KLOG_WARNING, __FILE__, __func__, __LINE__, __VA_ARGS__)
#define log_notice(...) klog_at(KLOG_NOTICE, __FILE__, __func__, __LINE__, __VA_ARGS__)
#define log_info(...) klog_at(KLOG_INFO, __FILE__, __func__, __LINE__, __VA_ARGS__)
#define log_debug(...) klog_at(KLOG_DEBUG, __FILE__, __func__, __LINE__, __VA_ARGS__)

/* ---- bounded buffer (reader and writer) ---- */
struct kbuf {
	uint8_t *p;    /* storage */
	size_t len;    /* bytes valid (writer) / total (reader) */
	size_t off;    /* read cursor */
	size_t cap;    /* allocated size (writer) */
	bool fixed;    /* storage not owned: never reallocated */
};
void kbuf_init_reader(struct kbuf *b, const void *data, size_t len);
void kbuf_init_writer(struct kbuf *b);
void kbuf_free(struct kbuf *b); /* wipes and frees owned storage */
size_t kbuf_remaining(const struct kbuf *b);
const uint8_t *kbuf_cursor(const struct kbuf *b);
int kbuf_get_u8(struct kbuf *b, uint8_t *v) __attribute__((warn_unused_result));
int kbuf_get_u16(struct kbuf *b, uint16_t *v) __attribute__((warn_unused_result));
int kbuf_get_u32(struct kbuf *b, uint32_t *v) __attribute__((warn_unused_result));
int kbuf_get_u64(struct kbuf *b, uint64_t *v) __attribute__((warn_unused_result));
int kbuf_get_raw(struct kbuf *b, void *out, size_t n) __attribute__((warn_unused_result));
/* pointer into the buffer, n bytes, no copy */
int kbuf_get_ptr(struct kbuf *b, const uint8_t **p, size_t n) __attribute__((warn_unused_result));
/* u8 length + bytes, 1..max; result NUL-terminated into out (size max+1); no embedded NUL */
int kbuf_get_str8(struct kbuf *b, char *out, size_t max) __attribute__((warn_unused_result));
int kbuf_expect_end(const struct kbuf *b) __attribute__((warn_unused_result));
int kbuf_put_u8(struct kbuf *b, uint8_t v);
int kbuf_put_u16(struct kbuf *b, uint16_t v);
int kbuf_put_u32(struct kbuf *b, uint32_t v);
int kbuf_put_u64(struct kbuf *b, uint64_t v);
int kbuf_put_raw(struct kbuf *b, const void *d, size_t n);
int kbuf_put_str8(struct kbuf *b, const char *s);

static inline void kput_le16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void kput_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline void kput_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t kget_le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t kget_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t kget_le64(const uint8_t *p)
{
	return (uint64_t)kget_le32(p) | ((uint64_t)kget_le32(p + 4) << 32);
}

/* ---- files ---- */
/* Replace dirfd/name atomically: name.tmp.<rand> (O_EXCL) -> write -> fsync -> rename -> fsync(dir). */
int kfile_replace_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode);
/* Read at most n-1 bytes of a small text file (/proc, /sys) into buf, NUL
 * terminated. Returns the length or -errno. */
ssize_t kread_text(const char *path, char *buf, size_t n);
/* /proc/PID/comm without its newline ("?" if the process is gone) */
void kproc_comm(pid_t pid, char out[17]);
/* Create dirfd/name exclusively (fails -EEXIST), write, fsync, fsync(dir). */
int kfile_create_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode);
/* Read a whole regular file of at most max bytes (-EFBIG if larger). *out is malloc'd. */
int kfile_read_at(int dirfd, const char *name, size_t max, uint8_t **out, size_t *outlen);
int kfsync_dir(int dirfd);
/* write/pread/pwrite loops that retry EINTR and short transfers */
int kwrite_all(int fd, const void *d, size_t n);
ssize_t kpread_full(int fd, void *d, size_t n, off_t off);
int kpwrite_all(int fd, const void *d, size_t n, off_t off);
/* remove dirfd/name and everything below it (directories at most 1024 deep);
 * each non-directory is first passed to before_unlink (NULL: none; kinko
 * overwrites key material there) and counted in *nfiles (may be NULL).
 * A missing name is not an error; a name that is not a directory is removed
 * as a file. 0 or the first error. */
int krmtree_at(int dirfd, const char *name, void (*before_unlink)(int dfd, const char *name),
	       uint64_t *nfiles);
/* mkdir -p relative to dirfd, each component 0700 unless mode given */
int kmkdirs_at(int dirfd, const char *path, mode_t mode);

/* ---- hex ---- */
void khex_encode(char *out, const uint8_t *in, size_t n); /* out: 2n+1 */
int khex_decode(uint8_t *out, size_t n, const char *in);  /* exactly 2n hex chars */

/* run the policy's alert_command (sh -c) with text on its stdin, detached: the
 * caller never waits for the command itself */
void krun_alert_hook(const char *cmd, const char *text);

/* ---- time ---- */
/* Wall-clock seconds since the epoch. Test builds honour KINKO_TEST_NOW (seconds). */
int64_t ktime_now(void);
/* ISO 8601 UTC "YYYY-MM-DDTHH:MM:SSZ" into out (>= 21 bytes) */
void ktime_iso(char *out, size_t n, int64_t t);
/* parse "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM:SSZ"; -EINVAL on bad input */
int ktime_parse(const char *s, int64_t *t);

/* ---- misc ---- */
bool kuser_id_valid(const char *id); /* [a-z0-9][a-z0-9._-]{0,31} */

#endif

// SPDX-License-Identifier: GPL-2.0-or-later
/* File helpers. Every rewrite of metadata goes through kfile_replace_at():
 * tmp (O_EXCL) -> write -> fsync -> rename -> fsync(dir), so a crash leaves
 * the old or the new version, never a torn one (also on NFS: rename is atomic). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <sys/random.h>
#include <unistd.h>

#include "kinko/util.h"

int kwrite_all(int fd, const void *d, size_t n)
{
	const uint8_t *p = d;

	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

ssize_t kpread_full(int fd, void *d, size_t n, off_t off)
{
	uint8_t *p = d;
	size_t got = 0;

	while (got < n) {
		ssize_t rd = pread(fd, p + got, n - got, off + (off_t)got);

		if (rd < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (rd == 0)
			break;
		got += (size_t)rd;
	}
	return (ssize_t)got;
}

int kpwrite_all(int fd, const void *d, size_t n, off_t off)
{
	const uint8_t *p = d;

	while (n) {
		ssize_t w = pwrite(fd, p, n, off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

int kfsync_dir(int dirfd)
{
	if (fsync(dirfd) < 0) {
		if (errno == EBADF) { /* an O_PATH fd: open the directory for real */
			int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			int r = 0;

			if (fd < 0)
				return -errno;
			if (fsync(fd) < 0 && errno != EINVAL && errno != EROFS)
				r = -errno;
			close(fd);
			return r;
		}
		if (errno != EINVAL && errno != EROFS)
			return -errno;
	}
	return 0;
}

static int write_new(int dirfd, const char *name, const void *data, size_t len, mode_t mode)
{
	int fd, r;

	fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return -errno;
	r = kwrite_all(fd, data, len);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r)
		unlinkat(dirfd, name, 0);
	return r;
}

/* fsync the directory that holds dirfd/name (name may contain '/') */
static int fsync_parent(int dirfd, const char *name)
{
	const char *slash = strrchr(name, '/');
	char dir[4096];
	int fd, r;

	if (!slash)
		return kfsync_dir(dirfd);
	if ((size_t)(slash - name) >= sizeof(dir))
		return -ENAMETOOLONG;
	memcpy(dir, name, (size_t)(slash - name));
	dir[slash - name] = 0;
	fd = openat(dirfd, dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = kfsync_dir(fd);
	close(fd);
	return r;
}

int kfile_create_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode)
{
	int r = write_new(dirfd, name, data, len, mode);

	if (r)
		return r;
	return fsync_parent(dirfd, name);
}

int kfile_replace_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode)
{
	char tmp[512];
	uint32_t rnd;
	int r;

	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		return -EIO;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%08x", name, rnd) >= sizeof(tmp))
		return -ENAMETOOLONG;
	if ((r = write_new(dirfd, tmp, data, len, mode)) != 0)
		return r;
	if (renameat(dirfd, tmp, dirfd, name) < 0) {
		r = -errno;
		unlinkat(dirfd, tmp, 0);
		return r;
	}
	return fsync_parent(dirfd, name);
}

int kfile_read_at(int dirfd, const char *name, size_t max, uint8_t **out, size_t *outlen)
{
	struct stat st;
	uint8_t *buf = NULL;
	ssize_t n;
	int fd, r;

	*out = NULL;
	*outlen = 0;
	/* O_NONBLOCK: a FIFO planted in the file's place must not hang the reader */
	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = KERR_FORMAT;
		goto out;
	}
	if ((uint64_t)st.st_size > max) {
		r = -EFBIG;
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	n = kpread_full(fd, buf, (size_t)st.st_size + 1, 0);
	if (n < 0) {
		r = (int)n;
		goto out;
	}
	if ((size_t)n > max) {
		r = -EFBIG;
		goto out;
	}
	*out = buf;
	*outlen = (size_t)n;
	buf = NULL;
	r = 0;
out:
	free(buf);
	close(fd);
	return r;
}

int kmkdirs_at(int dirfd, const char *path, mode_t mode)
{
	char buf[4096];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1;; p++) {
		if (*p == '/' || *p == 0) {
			char c = *p;

			*p = 0;
			if (mkdirat(dirfd, buf, mode) < 0 && errno != EEXIST)
				return -errno;
			*p = c;
			if (c == 0)
				break;
		}
	}
	return 0;
}

void khex_encode(char *out, const uint8_t *in, size_t n)
{
	static const char hx[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[in[i] >> 4];
		out[2 * i + 1] = hx[in[i] & 15];
	}
	out[2 * n] = 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int khex_decode(uint8_t *out, size_t n, const char *in)
{
	if (strlen(in) != 2 * n)
		return KERR_FORMAT;
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(in[2 * i]), lo = hexval(in[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return KERR_FORMAT;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

bool kuser_id_valid(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > 32)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');

		if (i == 0 && !alnum)
			return false;
		if (!alnum && c != '.' && c != '_' && c != '-')
			return false;
	}
	return true;
}

static int rmtree(int pfd, const char *name, void (*before_unlink)(int, const char *),
		  uint64_t *nfiles, int depth)
{
	int fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), r = 0;
	struct dirent *de;
	DIR *d;

	if (fd < 0 && errno == ENOTDIR && depth == 0) { /* a file (or symlink) given: remove it */
		if (before_unlink)
			before_unlink(pfd, name);
		if (unlinkat(pfd, name, 0) < 0 && errno != ENOENT)
			return -errno;
		if (nfiles)
			(*nfiles)++;
		return 0;
	}
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	fchmod(fd, 0700);
	if (!(d = fdopendir(fd))) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		int rr = 0;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			rr = depth < 1024 ? rmtree(dirfd(d), de->d_name, before_unlink, nfiles, depth + 1)
					  : -ELOOP;
		} else {
			if (before_unlink)
				before_unlink(dirfd(d), de->d_name);
			if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT)
				rr = -errno;
			else if (nfiles)
				(*nfiles)++;
		}
		if (rr && !r)
			r = rr;
	}
	if (before_unlink)
		fsync(dirfd(d));
	closedir(d);
	if (unlinkat(pfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && !r)
		r = -errno;
	return r;
}

int krmtree_at(int pfd, const char *name, void (*before_unlink)(int dfd, const char *name),
	       uint64_t *nfiles)
{
	return rmtree(pfd, name, before_unlink, nfiles, 0);
}

ssize_t kread_text(const char *path, char *buf, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t l;

	if (n == 0)
		return -EINVAL;
	if (fd < 0)
		return -errno;
	do
		l = read(fd, buf, n - 1);
	while (l < 0 && errno == EINTR);
	if (l < 0)
		l = -errno;
	close(fd);
	buf[l > 0 ? l : 0] = 0;
	return l;
}

void kproc_comm(pid_t pid, char out[17])
{
	char p[64];

	snprintf(p, sizeof(p), "/proc/%d/comm", (int)pid);
	if (kread_text(p, out, 17) <= 0)
		strcpy(out, "?");
	out[strcspn(out, "\n")] = 0;
}

// SPDX-License-Identifier: GPL-2.0-or-later
/* The vault lock: mounts share it, rekey and erase hold it alone.
 *
 * locks/vault.lock carries an flock (shared for mounts, exclusive for rekey
 * and erase). flock may not reach other hosts on every network filesystem
 * (sshfs, some SMB and NFS setups), so every holder also creates
 * locks/<host>.<random>.holder (whole file, never appended) and keeps an
 * exclusive flock on it while alive. A holder of this host whose file is not
 * locked and whose process is gone is stale and removed; a holder of another
 * host is trusted to be alive (it cannot be checked from here) until an
 * administrator removes its file. Holders are created before they check for
 * the other kind, so of two racing hosts at least one sees the other. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kinko/lifecycle.h"

#define HOLDER_MAX 4096

struct kvault_holder {
	int lockfd;    /* locks/vault.lock */
	int hfd;       /* our holder file */
	int kind;
	char name[160];
	char what[256];
	int64_t since;
};

static const char *const kind_names[] = { "mount", "rekey", "erase" };

static void host_name(char *out, size_t n)
{
	if (gethostname(out, n) != 0 || !out[0])
		snprintf(out, n, "unknown");
	out[n - 1] = 0;
	for (char *p = out; *p; p++)
		if (*p == '/' || *p == '.')
			*p = '_';
}

static int holder_write(struct kvault *v, struct kvault_holder *h)
{
	json_t *o = json_object();
	struct passwd *pw = getpwuid(getuid());
	char host[128], since[32], *s;
	int r;

	host_name(host, sizeof(host));
	ktime_iso(since, sizeof(since), h->since);
	json_object_set_new(o, "kind", json_string(kind_names[h->kind]));
	json_object_set_new(o, "host", json_string(host));
	json_object_set_new(o, "user", json_string(v->user ? v->user->id : "?"));
	json_object_set_new(o, "os_user", json_string(pw ? pw->pw_name : "?"));
	json_object_set_new(o, "pid", json_integer(getpid()));
	json_object_set_new(o, "since", json_string(since));
	json_object_set_new(o, "what", json_string(h->what));
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!s)
		return -ENOMEM;
	r = ftruncate(h->hfd, 0) < 0 ? -errno : kpwrite_all(h->hfd, s, strlen(s), 0);
	if (r == 0 && fsync(h->hfd) < 0)
		r = -errno;
	free(s);
	return r;
}

struct holder_info {
	char file[160];
	char kind[16], host[128], user[40], os_user[64], since[32], what[256];
	long pid;
};

/* 1: live (or cannot tell), 0: stale (removed), <0 error; fills hi */
static int holder_check(int ldfd, const char *name, struct holder_info *hi)
{
	char myhost[128], buf[HOLDER_MAX + 1];
	json_t *o;
	ssize_t n;
	int fd, live;

	memset(hi, 0, sizeof(*hi));
	snprintf(hi->file, sizeof(hi->file), "%s", name);
	fd = openat(ldfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	n = kpread_full(fd, buf, HOLDER_MAX, 0);
	buf[n > 0 ? n : 0] = 0;
	if ((o = json_loads(buf, 0, NULL)) != NULL) {
#define GETS(f) snprintf(hi->f, sizeof(hi->f), "%s", json_string_value(json_object_get(o, #f)) ? json_string_value(json_object_get(o, #f)) : "?")
		GETS(kind);
		GETS(host);
		GETS(user);
		GETS(os_user);
		GETS(since);
		GETS(what);
#undef GETS
		hi->pid = (long)json_integer_value(json_object_get(o, "pid"));
		json_decref(o);
	} else {
		snprintf(hi->kind, sizeof(hi->kind), "?");
		snprintf(hi->host, sizeof(hi->host), "?");
	}
	host_name(myhost, sizeof(myhost));
	if (strcmp(hi->host, myhost) != 0 && hi->host[0] != '?') {
		close(fd);
		return 1; /* another workstation: trusted to be alive */
	}
	/* this host: alive while its flock is held (or, where flock is not
	 * supported, while its process exists) */
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		live = 0;
		flock(fd, LOCK_UN);
	} else {
		live = errno == EWOULDBLOCK ? 1 : -1;
	}
	if (live < 0)
		live = hi->pid > 0 && (kill((pid_t)hi->pid, 0) == 0 || errno == EPERM);
	close(fd);
	if (!live && n >= 0) /* n < 0: a file we could not even read: leave it */
		unlinkat(ldfd, name, 0);
	return live;
}

/* the live holders of the other kind, as one line for the refusal; count */
static int scan_holders(int ldfd, const char *self, bool want_mounts, char *out, size_t outn)
{
	DIR *d;
	struct dirent *de;
	int fd = dup(ldfd), count = 0;
	size_t o = 0;

	out[0] = 0;
	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	while ((de = readdir(d)) != NULL) {
		struct holder_info hi;
		size_t l = strlen(de->d_name);

		if (l < 8 || strcmp(de->d_name + l - 7, ".holder") != 0 || strcmp(de->d_name, self) == 0)
			continue;
		if (holder_check(ldfd, de->d_name, &hi) <= 0)
			continue;
		if ((strcmp(hi.kind, "mount") == 0) != want_mounts)
			continue;
		count++;
		if (o < outn)
			o += (size_t)snprintf(out + o, outn - o, "%s%s by user '%s' (OS user %s) on host %s, pid %ld, since %s%s%s [locks/%s]",
					      count > 1 ? "; " : "", hi.kind, hi.user, hi.os_user, hi.host,
					      hi.pid, hi.since, hi.what[0] ? ": " : "", hi.what, hi.file);
	}
	closedir(d);
	return count;
}

int kvault_lock(struct kvault *v, int kind, const char *what, struct kerrinfo *ei)
{
	struct kvault_holder *h;
	char host[128], held[1400];
	uint8_t rnd[8];
	int ldfd = -1, r, n;

	if (v->holder)
		return 0;
	if (!(h = calloc(1, sizeof(*h))))
		return -ENOMEM;
	h->lockfd = h->hfd = -1;
	h->kind = kind;
	h->since = ktime_now();
	snprintf(h->what, sizeof(h->what), "%s", what ? what : "");
	if (mkdirat(v->vfd, "locks", 0755) < 0 && errno != EEXIST) {
		r = -errno;
		goto nolock;
	}
	ldfd = openat(v->vfd, "locks", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	h->lockfd = openat(v->vfd, "locks/vault.lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (ldfd < 0 || h->lockfd < 0) {
		r = -errno;
		goto nolock;
	}
	host_name(host, sizeof(host));
	kcrypto_random(rnd, sizeof(rnd));
	snprintf(h->name, sizeof(h->name), "%s.%02x%02x%02x%02x%02x%02x%02x%02x.holder", host, rnd[0],
		 rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	h->hfd = openat(ldfd, h->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (h->hfd < 0) {
		r = -errno;
		kerr_set(ei, "locks/", NULL);
		goto fail;
	}
	/* ours first, so a racing holder of the other kind sees us */
	if (flock(h->hfd, LOCK_EX | LOCK_NB) < 0 && errno != ENOLCK && errno != EOPNOTSUPP)
		log_debug("flock on %s: %s", h->name, strerror(errno));
	if ((r = holder_write(v, h)) != 0) {
		kerr_set(ei, "locks/", "cannot write the holder file: %s", strerror(-r));
		goto fail;
	}
	/* rekey and erase wait a moment: a daemon just unmounted (kinko umount
	 * does not wait for it) lets go of the lock a few milliseconds later */
	for (int i = 0; kind != KVAULT_LOCK_MOUNT && i < 60; i++) {
		struct timespec ts = { 0, 50 * 1000000L };

		if (flock(h->lockfd, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK)
			break;
		nanosleep(&ts, NULL);
	}
	if (flock(h->lockfd, (kind == KVAULT_LOCK_MOUNT ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0 &&
	    errno == EWOULDBLOCK) {
		n = scan_holders(ldfd, h->name, kind != KVAULT_LOCK_MOUNT, held, sizeof(held));
		if (!n)
			snprintf(held, sizeof(held), "a process that wrote no holder file");
		r = -EBUSY;
		kerr_set(ei, v->path, "the vault is in use: %s", held);
		goto fail;
	}
	n = scan_holders(ldfd, h->name, kind != KVAULT_LOCK_MOUNT, held, sizeof(held));
	if (n) {
		r = -EBUSY;
		kerr_set(ei, v->path, "the vault is in use: %s", held);
		goto fail;
	}
	close(ldfd);
	v->holder = h;
	return 0;
nolock:
	/* a vault on read-only media (or without write permission) can be
	 * mounted, not re-keyed: nobody can change it under the mount */
	if (kind == KVAULT_LOCK_MOUNT && (r == -EROFS || r == -EACCES || r == -EPERM)) {
		log_notice("vault %s is not writable here: mounted without the vault lock", v->path);
		r = 0;
	} else {
		kerr_set(ei, "locks/vault.lock", NULL);
	}
fail:
	if (h->hfd >= 0) {
		unlinkat(ldfd, h->name, 0);
		close(h->hfd);
	}
	if (h->lockfd >= 0)
		close(h->lockfd);
	if (ldfd >= 0)
		close(ldfd);
	free(h);
	return r;
}

void kvault_lock_forked(struct kvault *v)
{
	if (v && v->holder && holder_write(v, v->holder) != 0)
		log_warn("could not update the holder file locks/%s", v->holder->name);
}

void kvault_lock_release(struct kvault *v)
{
	struct kvault_holder *h;
	char p[200];

	if (!v || !(h = v->holder))
		return;
	snprintf(p, sizeof(p), "locks/%s", h->name);
	unlinkat(v->vfd, p, 0);
	close(h->hfd);
	close(h->lockfd);
	free(h);
	v->holder = NULL;
}

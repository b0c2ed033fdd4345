// SPDX-License-Identifier: GPL-2.0-or-later
/* The control socket of a mount: `kinko status`, `kinko lock`, `kinko unlock`.
 * One UNIX socket per mount in a 0700 directory of the mounting user; every
 * connection's peer credentials are checked (SO_PEERCRED: the mounting user
 * or root). One JSON request line, one JSON reply line. Secrets (the
 * password, a certificate passphrase) never go through JSON: they follow the
 * request line, one per line, and stay in the locked buffer the request is
 * read into, which is wiped after use. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "kinko/daemon.h"

#define KCTL_MAX_REQ 8192

struct kctl {
	int lfd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	pthread_t th;
	struct kfs *fs;
	struct kvault *v;
	char mountpoint[PATH_MAX];
	int64_t since;
};

static int run_dir(char *out, size_t n, bool create)
{
	const char *env = getenv("KINKO_RUN_DIR");
	uid_t uid = getuid();
	struct stat st;
	char user_run[64];

	snprintf(user_run, sizeof(user_run), "/run/user/%u", (unsigned)uid);
	if (env && *env)
		snprintf(out, n, "%s", env);
	else if (uid == 0)
		snprintf(out, n, "/run/kinko");
	else if (stat(user_run, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == uid)
		snprintf(out, n, "%s/kinko", user_run);
	else
		snprintf(out, n, "/tmp/kinko-%u", (unsigned)uid);
	if (create && mkdir(out, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (lstat(out, &st) < 0)
		return -errno;
	/* never trust a directory someone else made (e.g. in /tmp) */
	if (!S_ISDIR(st.st_mode) || st.st_uid != uid || (st.st_mode & 077))
		return -EPERM;
	return 0;
}

/* canonical path of a mount point without touching the mount itself (a stat
 * of a locked mount would be a denied, logged access): realpath of its parent */
static int canonical(const char *mnt, char *out, size_t n)
{
	char *copy = strdup(mnt), *slash, parent[PATH_MAX];
	const char *base;
	size_t len;
	int r = 0;

	if (!copy)
		return -ENOMEM;
	while ((len = strlen(copy)) > 1 && copy[len - 1] == '/')
		copy[len - 1] = 0;
	slash = strrchr(copy, '/');
	if (!slash) {
		base = copy;
		snprintf(parent, sizeof(parent), ".");
	} else if (slash == copy) {
		base = slash + 1;
		snprintf(parent, sizeof(parent), "/");
	} else {
		*slash = 0;
		base = slash + 1;
		snprintf(parent, sizeof(parent), "%s", copy);
	}
	{
		char real[PATH_MAX];

		if (!realpath(parent, real))
			r = -errno;
		else if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
			r = realpath(mnt, out) && strlen(out) < n ? 0 : -EINVAL;
		else if ((size_t)snprintf(out, n, "%s%s%s", real, strcmp(real, "/") ? "/" : "", base) >= n)
			r = -ENAMETOOLONG;
	}
	free(copy);
	return r;
}

int kdaemon_socket_path(const char *mountpoint, char *out, size_t n, bool create)
{
	char real[PATH_MAX], dir[PATH_MAX - 64], hex[33];
	uint8_t h[32];
	int r;

	if ((r = canonical(mountpoint, real, sizeof(real))) != 0)
		return r;
	if ((r = run_dir(dir, sizeof(dir), create)) != 0)
		return r;
	kcrypto_sha256(h, (const uint8_t *)real, strlen(real));
	khex_encode(hex, h, 16);
	if ((size_t)snprintf(out, n, "%s/%s.sock", dir, hex) >= n)
		return -ENAMETOOLONG;
	return 0;
}

static const char *state_name(int s)
{
	return s == KFS_OPEN ? "unlocked" : s == KFS_LOCKED ? "locked" : "anomaly-locked";
}

static json_t *status_json(struct kctl *c)
{
	struct kfs_status st;
	json_t *j, *comps = json_array();
	char since[32];

	kfs_status(c->fs, &st);
	ktime_iso(since, sizeof(since), c->since);
	for (size_t i = 0; c->v->ring && i < c->v->ring->ncomps; i++)
		json_array_append_new(comps, json_pack("{s:s,s:b}", "name", c->v->ring->comps[i].name,
						       "read_only", c->v->ring->comps[i].read_only));
	j = json_pack("{s:b,s:s,s:s,s:s,s:i,s:s,s:s,s:s,s:i,s:i,s:o,s:{s:b,s:s},s:I,s:s}", "ok", 1,
		      "mountpoint", c->mountpoint, "vault", c->v->path, "user", st.user, "pid",
		      (int)getpid(), "mounted_since", since, "state", state_name(st.state), "reason",
		      st.why, "idle_lock_s", st.idle_lock, "idle_left_s", st.idle_left,
		      "compartments", comps, "audit", "ok", st.audit_ok, "status", st.audit_why,
		      "integrity_errors", (json_int_t)st.integrity_errors,
		      "transport", st.io_uring ? "io_uring" : "dev_fuse");
	return j;
}

static json_t *error_json(int r, const struct kerrinfo *ei)
{
	char msg[800];

	if (ei->file[0])
		snprintf(msg, sizeof(msg), "%s: %s", ei->file, ei->detail[0] ? ei->detail : kinko_strerror(r));
	else
		snprintf(msg, sizeof(msg), "%s", ei->detail[0] ? ei->detail : kinko_strerror(r));
	return json_pack("{s:b,s:s,s:i}", "ok", 0, "error", msg, "code", r);
}

static const char *jstr(json_t *req, const char *k)
{
	json_t *v = json_object_get(req, k);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* the secrets after the request line: password, then an optional passphrase */
struct secrets {
	const char *pw, *pass;
	size_t pwlen;
};

static json_t *handle(struct kctl *c, json_t *req, uid_t peer, const struct secrets *sec)
{
	const char *op = jstr(req, "op");
	struct kerrinfo ei = { { 0 }, { 0 } };
	int r;

	if (!op)
		return json_pack("{s:b,s:s,s:i}", "ok", 0, "error", "bad request", "code", KERR_USAGE);
	if (strcmp(op, "status") == 0)
		return status_json(c);
	if (strcmp(op, "lock") == 0) {
		kfs_lock(c->fs, "locked by the user (kinko lock)");
		return status_json(c);
	}
	if (strcmp(op, "unlock") == 0 || strcmp(op, "clear") == 0) {
		struct kkeys_factor_in f = { .key_path = jstr(req, "cert_key"), .pass = sec->pass };

		if (!sec->pw)
			return json_pack("{s:b,s:s,s:i}", "ok", 0, "error", "no password", "code", KERR_USAGE);
		if (op[0] == 'u')
			r = kfs_unlock(c->fs, sec->pw, sec->pwlen, f.key_path ? &f : NULL, &ei);
		else if (!jstr(req, "admin") || !kuser_id_valid(jstr(req, "admin")))
			r = KERR_USAGE;
		else
			r = kfs_clear_anomaly(c->fs, jstr(req, "admin"), sec->pw, sec->pwlen,
					      f.key_path ? &f : NULL, &ei);
		return r ? error_json(r, &ei) : status_json(c);
	}
	if (strcmp(op, "guard-denied") == 0) {
		/* the root guard service refused a copy of this mount's file to
		 * removable media (kinko-guard(1)): record it in this mount's log */
		json_t *jp = json_object_get(req, "pid"), *ju = json_object_get(req, "uid");
		struct kfs_guard_report g = {
			.pid = json_is_integer(jp) ? (pid_t)json_integer_value(jp) : 0,
			.uid = json_is_integer(ju) ? (uint32_t)json_integer_value(ju) : 0,
			.comm = jstr(req, "comm"), .path = jstr(req, "path"), .dest = jstr(req, "dest"),
			.ciphertext = json_is_true(json_object_get(req, "ciphertext")),
		};

		if (peer != 0)
			return json_pack("{s:b,s:s,s:i}", "ok", 0, "error", "only the guard service (root)",
					 "code", -EPERM);
		if (!g.path || !g.dest)
			return json_pack("{s:b,s:s,s:i}", "ok", 0, "error", "bad request", "code", KERR_USAGE);
		kfs_guard_report(c->fs, &g);
		return json_pack("{s:b}", "ok", 1);
	}
	return json_pack("{s:b,s:s,s:i}", "ok", 0, "error", "unknown request", "code", KERR_USAGE);
}

static void serve(struct kctl *c, int fd)
{
	struct ucred cr;
	socklen_t cl = sizeof(cr);
	struct timeval tv = { 5, 0 };
	char *buf = ksecmem_alloc(KCTL_MAX_REQ + 1), *out = NULL, *nl, *p2;
	size_t len = 0;
	json_t *req = NULL, *resp;
	struct secrets sec = { NULL, NULL, 0 };

	if (!buf)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0 ||
	    (cr.uid != getuid() && cr.uid != 0)) {
		log_warn("control socket: refused a connection from uid %d", (int)cr.uid);
		ksecmem_free(buf);
		return;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	/* the client shuts its side down after the request and its secrets */
	while (len < KCTL_MAX_REQ) {
		ssize_t n = read(fd, buf + len, KCTL_MAX_REQ - len);

		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = 0;
	if ((nl = memchr(buf, '\n', len))) {
		*nl = 0;
		sec.pw = nl + 1;
		if ((p2 = strchr(sec.pw, '\n'))) {
			*p2 = 0;
			sec.pass = p2 + 1;
			if ((p2 = strchr(sec.pass, '\n')))
				*p2 = 0;
			if (!*sec.pass)
				sec.pass = NULL;
		}
		sec.pwlen = strlen(sec.pw);
		if (!sec.pwlen)
			sec.pw = NULL;
	}
	req = json_loads(buf, 0, NULL);
	resp = json_is_object(req) ? handle(c, req, cr.uid, &sec)
				   : json_pack("{s:b,s:s,s:i}", "ok", 0, "error", "bad request", "code", KERR_USAGE);
	json_decref(req);
	ksecmem_free(buf); /* wipes the secrets */
	if (resp && (out = json_dumps(resp, JSON_COMPACT))) {
		if (kwrite_all(fd, out, strlen(out)) != 0 || kwrite_all(fd, "\n", 1) != 0)
			log_warn("control socket: reply not delivered");
	}
	free(out);
	json_decref(resp);
}

static void *ctl_main(void *arg)
{
	struct kctl *c = arg;

	for (;;) {
		int fd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			break; /* shut down */
		}
		serve(c, fd);
		close(fd);
	}
	return NULL;
}

int kctl_start(struct kfs *fs, struct kvault *v, const char *mountpoint, struct kctl **out,
	       struct kerrinfo *ei)
{
	struct kctl *c = calloc(1, sizeof(*c));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int r;

	if (!c)
		return -ENOMEM;
	c->fs = fs;
	c->v = v;
	c->since = ktime_now();
	if (canonical(mountpoint, c->mountpoint, sizeof(c->mountpoint)) != 0)
		snprintf(c->mountpoint, sizeof(c->mountpoint), "%s", mountpoint);
	if ((r = kdaemon_socket_path(mountpoint, c->path, sizeof(c->path), true)) != 0) {
		kerr_set(ei, mountpoint, "cannot make the control socket directory: %s", strerror(-r));
		free(c);
		return r;
	}
	unlink(c->path); /* a stale socket of a daemon that died */
	memcpy(sa.sun_path, c->path, strlen(c->path) + 1);
	c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->lfd < 0 || bind(c->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(c->path, 0600) < 0 || listen(c->lfd, 8) < 0) {
		r = -errno;
		kerr_set(ei, c->path, "cannot open the control socket: %s", strerror(-r));
		if (c->lfd >= 0)
			close(c->lfd);
		free(c);
		return r;
	}
	if ((r = pthread_create(&c->th, NULL, ctl_main, c)) != 0) {
		close(c->lfd);
		unlink(c->path);
		free(c);
		return -r;
	}
	*out = c;
	return 0;
}

void kctl_stop(struct kctl *c)
{
	if (!c)
		return;
	shutdown(c->lfd, SHUT_RDWR);
	pthread_join(c->th, NULL);
	close(c->lfd);
	unlink(c->path);
	free(c);
}

int kdaemon_request(const char *mountpoint, const char *req, const char *const *secrets,
		    char **resp, struct kerrinfo *ei)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char path[sizeof(sa.sun_path)];
	struct kbuf b;
	int fd, r;

	*resp = NULL;
	if ((r = kdaemon_socket_path(mountpoint, path, sizeof(path), false)) != 0) {
		kerr_set(ei, mountpoint, r == -ENOENT ? "no such mount point" :
			 "no control socket directory (is this a kinko mount of yours?)");
		return r;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		kerr_set(ei, mountpoint, "not a kinko mount of this user (no control socket %s)", path);
		if (fd >= 0)
			close(fd);
		return r;
	}
	r = kwrite_all(fd, req, strlen(req));
	for (size_t i = 0; r == 0 && (i == 0 || (secrets && secrets[i - 1])); i++)
		if ((r = kwrite_all(fd, "\n", 1)) == 0 && secrets && secrets[i])
			r = kwrite_all(fd, secrets[i], strlen(secrets[i]));
	if (r) {
		close(fd);
		kerr_set(ei, path, "control socket: %s", strerror(-r));
		return r;
	}
	shutdown(fd, SHUT_WR);
	kbuf_init_writer(&b);
	for (;;) {
		char tmp[4096];
		ssize_t n = read(fd, tmp, sizeof(tmp));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || b.len > (1u << 20))
			break;
		kbuf_put_raw(&b, tmp, (size_t)n);
	}
	close(fd);
	kbuf_put_u8(&b, 0);
	if (!b.p || b.len < 2) {
		kbuf_free(&b);
		kerr_set(ei, path, "the mount's daemon did not answer");
		return -EIO;
	}
	*resp = strdup((char *)b.p);
	kbuf_free(&b);
	return *resp ? 0 : -ENOMEM;
}

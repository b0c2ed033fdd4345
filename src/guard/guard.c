/* kinko guard: the decision context (configuration, device cache) and the
 * client side of the guard service's job registration. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "kinko/guard.h"

#define DEVCACHE 32
#define MOUNTS_TTL_MS 1000
#define DEV_TTL_MS 5000

struct kguard {
	struct kguard_conf conf;
	pthread_mutex_t lk;
	struct { dev_t dev; int removable; int64_t at; } dc[DEVCACHE];
	size_t ndc, next;
	struct kguard_mounts mounts;
	int64_t mounts_at;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int kguard_new(const char *config_path, struct kguard **out, struct kerrinfo *ei)
{
	struct kguard *g = calloc(1, sizeof(*g));
	int r;

	*out = NULL;
	if (!g)
		return -ENOMEM;
	if ((r = kguard_conf_load(config_path, &g->conf, ei)) != 0) {
		free(g);
		return r;
	}
	pthread_mutex_init(&g->lk, NULL);
	g->mounts_at = -MOUNTS_TTL_MS * 2;
	*out = g;
	return 0;
}

void kguard_free(struct kguard *g)
{
	if (!g)
		return;
	kguard_conf_free(&g->conf);
	kguard_mounts_free(&g->mounts);
	pthread_mutex_destroy(&g->lk);
	free(g);
}

const struct kguard_conf *kguard_config(const struct kguard *g) { return &g->conf; }

static int dev_removable(struct kguard *g, dev_t dev)
{
	int64_t t = now_ms();
	int r;

	if (major(dev) == 0)
		return 0; /* tmpfs, fuse, overlay...: no block device */
	pthread_mutex_lock(&g->lk);
	for (size_t i = 0; i < g->ndc; i++)
		if (g->dc[i].dev == dev && t - g->dc[i].at < DEV_TTL_MS) {
			r = g->dc[i].removable;
			pthread_mutex_unlock(&g->lk);
			return r;
		}
	pthread_mutex_unlock(&g->lk);
	r = kguard_dev_removable(NULL, major(dev), minor(dev), NULL, 0) > 0;
	pthread_mutex_lock(&g->lk);
	{
		size_t i = g->ndc < DEVCACHE ? g->ndc++ : g->next++ % DEVCACHE;

		g->dc[i].dev = dev;
		g->dc[i].removable = r;
		g->dc[i].at = t;
	}
	pthread_mutex_unlock(&g->lk);
	return r;
}

bool kguard_file_removable(struct kguard *g, const char *path, dev_t dev)
{
	if (path && path[0] == '/' &&
	    kguard_path_below(g->conf.removable_paths, g->conf.n_removable, path))
		return true;
	return dev_removable(g, dev) > 0;
}

struct wr_ctx {
	struct kguard *g;
	char *why;
	size_t n;
};

/* a file open for writing on removable media: its mount's device, a listed
 * path, or a removable block device itself (dd of=/dev/sdb) */
static int wr_match(void *arg, const struct kguard_fd *f)
{
	struct wr_ctx *x = arg;
	const struct kguard_mount *m;
	dev_t dev = 0;

	if ((f->flags & O_ACCMODE) == O_RDONLY || f->path[0] != '/')
		return 0;
	if (strncmp(f->path, "/dev/", 5) == 0) {
		struct stat st;

		if (stat(f->path, &st) == 0 && S_ISBLK(st.st_mode) && dev_removable(x->g, st.st_rdev) > 0)
			goto yes;
		return 0;
	}
	pthread_mutex_lock(&x->g->lk);
	if (now_ms() - x->g->mounts_at > MOUNTS_TTL_MS) {
		kguard_mounts_free(&x->g->mounts);
		if (kguard_mounts_read(NULL, &x->g->mounts) == 0)
			x->g->mounts_at = now_ms();
	}
	m = f->fd < 0 ? kguard_mount_of(&x->g->mounts, f->path)
		      : kguard_mount_by_id(&x->g->mounts, f->mnt_id);
	if (m)
		dev = makedev(m->major, m->minor);
	pthread_mutex_unlock(&x->g->lk);
	if (!kguard_file_removable(x->g, f->path, dev))
		return 0;
yes:
	if (x->why && x->n)
		snprintf(x->why, x->n, "pid %d writes %s", (int)f->pid, f->path);
	return 1;
}

int kguard_writes_removable(struct kguard *g, pid_t pid, char *why, size_t n)
{
	struct wr_ctx x = { g, why, n };

	if (why && n)
		why[0] = 0;
	return kguard_proc_walk(pid, KGUARD_DOWNSTREAM, wr_match, &x);
}

/* ---- job registration (client) ---- */

const char *kguard_socket_path(void)
{
	const char *s = getenv("KINKO_GUARD_SOCKET");

	return s && s[0] ? s : KGUARD_SOCKET_DEFAULT;
}

int kguard_register_job(const char *kind, const char *medium, const char *dest, const char *user,
			const char *vault, struct kerrinfo *ei)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = kguard_socket_path();
	json_t *req = NULL, *resp = NULL;
	char *text = NULL, buf[4096];
	size_t len = 0;
	int fd = -1, r = -EIO;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	req = json_pack("{s:s,s:s,s:s,s:s,s:i,s:s,s:s}", "op", "register-job", "kind", kind,
			"medium", medium ? medium : "", "dest", dest, "pid", (int)getpid(),
			"user", user ? user : "", "vault", vault ? vault : "");
	if (!req || !(text = json_dumps(req, JSON_COMPACT))) {
		r = -ENOMEM;
		goto out;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		r = -errno;
		goto out;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		if (r != -ENOENT && r != -ECONNREFUSED)
			kerr_set(ei, path, "cannot reach the guard service: %s", strerror(-r));
		goto out;
	}
	if (kwrite_all(fd, text, strlen(text)) != 0 || kwrite_all(fd, "\n", 1) != 0) {
		kerr_set(ei, path, "the guard service did not take the request");
		goto out;
	}
	while (len < sizeof(buf) - 1 && !memchr(buf, '\n', len)) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);

		if (n <= 0)
			break;
		len += (size_t)n;
	}
	resp = json_loadb(buf, len, 0, NULL);
	if (!json_is_object(resp)) {
		kerr_set(ei, path, "no answer from the guard service");
		goto out;
	}
	if (json_is_true(json_object_get(resp, "ok"))) {
		r = 0;
	} else {
		json_t *e = json_object_get(resp, "error");

		kerr_set(ei, path, "the guard service refused the job: %s",
			 json_is_string(e) ? json_string_value(e) : "no reason given");
		r = -EPERM;
	}
out:
	if (fd >= 0)
		close(fd);
	free(text);
	json_decref(req);
	json_decref(resp);
	return r;
}

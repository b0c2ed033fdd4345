/* kinko guard: the root guard service (kinko-guard(1), second layer).
 *
 * fanotify permission events (FAN_OPEN_PERM) on every removable mount, and on
 * the mounts holding the removable_paths of kinko.conf(5); new mounts are
 * marked as they appear (POLLPRI on /proc/self/mountinfo, and a rescan every
 * few seconds). An open for writing there is refused when the opener, or a
 * process feeding it through pipes or socket pairs, holds open a file of a
 * kinko mount (fuse.kinko) or of a vault's ciphertext directory, unless the
 * opener belongs to a job registered over the guard socket (kinko backup,
 * kinko takeout export) and writes below the job's destination. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "kinko/guard.h"

#define JOBS_MAX 64
#define MARKS_MAX 256
#define RESCAN_MS 2000

struct job {
	pid_t pid;
	unsigned long long start;
	char *dest, *kind, *medium, *user, *vault;
};

struct svc {
	struct kguard *g;
	const struct kguard_service_opts *o;
	int fan, lfd, mfd;
	struct kguard_mounts mounts;
	int marked[MARKS_MAX];    /* mount ids marked */
	size_t nmarked;
	struct job jobs[JOBS_MAX];
	size_t njobs;
	char *vaults[KGUARD_PATHS_MAX * 2]; /* config vault_paths + vaults of kinko mounts */
	size_t nvaults;
};

static volatile sig_atomic_t stop;
static void on_signal(int s) { (void)s; stop = 1; }

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void say(struct svc *s, int prio, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(struct svc *s, int prio, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	syslog(prio, "%s", msg);
	if (s->o->foreground)
		fprintf(stderr, "kinko guard: %s\n", msg);
}

/* is the mount removable media, or does it hold a listed removable path? */
static bool mount_watched(struct svc *s, const struct kguard_mount *m)
{
	const struct kguard_conf *c = kguard_config(s->g);

	if (kguard_mount_is_kinko(m) || strncmp(m->fstype, "fuse", 4) == 0)
		return false; /* never a FUSE mount: answering would call into its daemon */
	if (kguard_path_below(c->removable_paths, c->n_removable, m->mountpoint))
		return true;
	for (size_t i = 0; i < c->n_removable; i++) {
		const struct kguard_mount *holder = kguard_mount_of(&s->mounts, c->removable_paths[i]);

		if (holder == m)
			return true;
	}
	return m->major != 0 && kguard_dev_removable(NULL, m->major, m->minor, NULL, 0) > 0;
}

static bool is_marked(struct svc *s, int id)
{
	for (size_t i = 0; i < s->nmarked; i++)
		if (s->marked[i] == id)
			return true;
	return false;
}

static void rescan(struct svc *s)
{
	const struct kguard_conf *c = kguard_config(s->g);
	struct kguard_mounts ms;
	size_t keep = 0;

	if (kguard_mounts_read(NULL, &ms) != 0)
		return;
	kguard_mounts_free(&s->mounts);
	s->mounts = ms;
	/* forget marks of mounts that are gone (the kernel dropped them) */
	for (size_t i = 0; i < s->nmarked; i++)
		if (kguard_mount_by_id(&s->mounts, s->marked[i]))
			s->marked[keep++] = s->marked[i];
	s->nmarked = keep;
	for (size_t i = 0; i < s->mounts.n; i++) {
		const struct kguard_mount *m = &s->mounts.m[i];

		if (is_marked(s, m->id) || !mount_watched(s, m) || s->nmarked >= MARKS_MAX)
			continue;
		if (fanotify_mark(s->fan, FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_OPEN_PERM, AT_FDCWD,
				  m->mountpoint) != 0) {
			say(s, LOG_ERR, "cannot watch %s: %s", m->mountpoint, strerror(errno));
			continue;
		}
		s->marked[s->nmarked++] = m->id;
		say(s, LOG_INFO, "watching %s (%s %s)", m->mountpoint, m->fstype, m->source);
	}
	/* the vaults: configured, and behind each kinko mount */
	for (size_t i = 0; i < s->nvaults; i++)
		free(s->vaults[i]);
	s->nvaults = 0;
	for (size_t i = 0; i < c->n_vault; i++)
		s->vaults[s->nvaults++] = strdup(c->vault_paths[i]);
	for (size_t i = 0; i < s->mounts.n && s->nvaults < KGUARD_PATHS_MAX * 2; i++) {
		const char *v = kguard_mount_vault(&s->mounts.m[i]);
		char real[PATH_MAX];

		if (v)
			s->vaults[s->nvaults++] = strdup(realpath(v, real) ? real : v);
	}
	for (size_t i = 0; i < s->nvaults; i++)
		if (!s->vaults[i])
			s->vaults[i] = strdup("/nonexistent/kinko");
}

/* the flags of the open the thread is blocked in: /proc/TID/syscall gives the
 * number and arguments of the system call being executed */
static int open_flags(pid_t tid, long *flags)
{
	int r = kguard_thread_opening(tid, tid, flags, NULL, 0);

	return r == 1 ? 0 : r == 0 ? -ENOSYS : r;
}

static pid_t tgid_of(pid_t tid)
{
	char p[64], buf[2048], *t;

	snprintf(p, sizeof(p), "/proc/%d/status", (int)tid);
	if (kread_text(p, buf, sizeof(buf)) <= 0)
		return tid;
	return (t = strstr(buf, "\nTgid:")) ? (pid_t)atoi(t + 6) : tid;
}


static uid_t uid_of(pid_t pid)
{
	char p[64];
	struct stat st;

	snprintf(p, sizeof(p), "/proc/%d", (int)pid);
	return stat(p, &st) == 0 ? st.st_uid : (uid_t)-1;
}

/* ---- jobs ---- */

static void job_free(struct job *j)
{
	free(j->dest);
	free(j->kind);
	free(j->medium);
	free(j->user);
	free(j->vault);
	memset(j, 0, sizeof(*j));
}

static void jobs_prune(struct svc *s)
{
	size_t keep = 0;

	for (size_t i = 0; i < s->njobs; i++) {
		if (kguard_proc_start(s->jobs[i].pid) == s->jobs[i].start) {
			s->jobs[keep++] = s->jobs[i];
		} else {
			say(s, LOG_INFO, "job %s of pid %d ended", s->jobs[i].kind, (int)s->jobs[i].pid);
			job_free(&s->jobs[i]);
		}
	}
	s->njobs = keep;
}

/* is pid (or an ancestor) a registered job writing below its destination? */
static const struct job *job_allows(struct svc *s, pid_t pid, const char *path)
{
	jobs_prune(s);
	for (int depth = 0; pid > 1 && depth < 64; depth++) {
		for (size_t i = 0; i < s->njobs; i++) {
			char *const dl[1] = { s->jobs[i].dest };

			if (s->jobs[i].pid == pid && kguard_path_below(dl, 1, path))
				return &s->jobs[i];
		}
		pid = kguard_proc_ppid(pid);
	}
	return NULL;
}

static bool descends_from(pid_t pid, pid_t ancestor)
{
	for (int depth = 0; pid > 0 && depth < 64; depth++) {
		if (pid == ancestor)
			return true;
		if (pid == 1)
			break;
		pid = kguard_proc_ppid(pid);
	}
	return false;
}

static const char *jstr(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

static json_t *register_job(struct svc *s, json_t *req, const struct ucred *cr)
{
	const char *kind = jstr(req, "kind"), *dest = jstr(req, "dest");
	json_t *jp = json_object_get(req, "pid");
	pid_t pid = json_is_integer(jp) ? (pid_t)json_integer_value(jp) : 0;
	struct job j = { 0 };
	char real[PATH_MAX];

	if (!kind || (strcmp(kind, "backup") != 0 && strcmp(kind, "takeout") != 0))
		return json_pack("{s:b,s:s}", "ok", 0, "error", "kind must be backup or takeout");
	if (!dest || dest[0] != '/')
		return json_pack("{s:b,s:s}", "ok", 0, "error", "dest must be an absolute directory");
	if (pid <= 0 || !descends_from(pid, cr->pid))
		return json_pack("{s:b,s:s}", "ok", 0, "error",
				 "pid must be the caller or one of its descendants");
	if (cr->uid != 0 && uid_of(pid) != cr->uid)
		return json_pack("{s:b,s:s}", "ok", 0, "error", "pid belongs to another user");
	jobs_prune(s);
	if (s->njobs >= JOBS_MAX)
		return json_pack("{s:b,s:s}", "ok", 0, "error", "too many jobs");
	j.pid = pid;
	j.start = kguard_proc_start(pid);
	j.dest = strdup(realpath(dest, real) ? real : dest);
	j.kind = strdup(kind);
	j.medium = strdup(jstr(req, "medium") ? jstr(req, "medium") : "");
	j.user = strdup(jstr(req, "user") ? jstr(req, "user") : "");
	j.vault = strdup(jstr(req, "vault") ? jstr(req, "vault") : "");
	if (!j.dest || !j.kind || !j.medium || !j.user || !j.vault || !j.start) {
		job_free(&j);
		return json_pack("{s:b,s:s}", "ok", 0, "error", "cannot register the job");
	}
	{
		size_t l = strlen(j.dest);

		while (l > 1 && j.dest[l - 1] == '/')
			j.dest[--l] = 0;
	}
	s->jobs[s->njobs++] = j;
	say(s, LOG_NOTICE, "registered %s job of pid %d (uid %d): medium '%s', user '%s', vault %s, "
	    "writes allowed below %s", j.kind, (int)pid, (int)cr->uid, j.medium, j.user, j.vault, j.dest);
	return json_pack("{s:b}", "ok", 1);
}

static void serve_client(struct svc *s, int fd)
{
	struct ucred cr;
	socklen_t cl = sizeof(cr);
	struct timeval tv = { 2, 0 };
	char buf[8192];
	size_t len = 0;
	json_t *req, *resp;
	char *out;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (len < sizeof(buf) - 1 && !memchr(buf, '\n', len)) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);

		if (n <= 0)
			break;
		len += (size_t)n;
	}
	req = json_loadb(buf, len, JSON_DISABLE_EOF_CHECK, NULL);
	if (!json_is_object(req) || !jstr(req, "op"))
		resp = json_pack("{s:b,s:s}", "ok", 0, "error", "bad request");
	else if (strcmp(jstr(req, "op"), "register-job") == 0)
		resp = register_job(s, req, &cr);
	else
		resp = json_pack("{s:b,s:s}", "ok", 0, "error", "unknown op");
	if (resp && (out = json_dumps(resp, JSON_COMPACT))) {
		if (kwrite_all(fd, out, strlen(out)) != 0 || kwrite_all(fd, "\n", 1) != 0)
			say(s, LOG_WARNING, "guard socket: reply not delivered");
		free(out);
	}
	json_decref(req);
	json_decref(resp);
}

/* ---- the decision ---- */

struct hold_ctx {
	struct svc *s;
	char held[PATH_MAX];
	int mnt_id;
	bool ciphertext;
	bool found;
	pid_t pid;
};

/* a file of a kinko mount, or below a vault's directory */
static int holds_vault(void *arg, const struct kguard_fd *f)
{
	struct hold_ctx *x = arg;
	const struct kguard_mount *m = kguard_mount_by_id(&x->s->mounts, f->mnt_id);
	bool cipher;

	if (f->path[0] != '/')
		return 0;
	if (f->fd < 0) /* being opened: its mount by path */
		m = kguard_mount_of(&x->s->mounts, f->path);
	if (m && kguard_mount_is_kinko(m))
		cipher = false;
	else if (kguard_path_below(x->s->vaults, x->s->nvaults, f->path))
		cipher = true;
	else
		return 0;
	/* keep looking for the most specific file (a file, not the directory
	 * rsync or find holds open) */
	if (strlen(f->path) > strlen(x->held)) {
		snprintf(x->held, sizeof(x->held), "%s", f->path);
		x->mnt_id = f->mnt_id;
		x->pid = f->pid;
		x->ciphertext = cipher;
		x->found = true;
	}
	return 0;
}

static bool watched_path(struct svc *s, int evfd, char *path, size_t n)
{
	const struct kguard_conf *c = kguard_config(s->g);
	char p[64], fi[256];
	ssize_t l;
	int mnt_id = -1;
	const struct kguard_mount *m;

	snprintf(p, sizeof(p), "/proc/self/fd/%d", evfd);
	if ((l = readlink(p, path, n - 1)) <= 0)
		return true; /* unknown: decide as if watched */
	path[l] = 0;
	if (kguard_path_below(c->removable_paths, c->n_removable, path))
		return true;
	snprintf(p, sizeof(p), "/proc/self/fdinfo/%d", evfd);
	if (kread_text(p, fi, sizeof(fi)) > 0) {
		char *t = strstr(fi, "mnt_id:");

		if (t)
			mnt_id = atoi(t + 7);
	}
	m = kguard_mount_by_id(&s->mounts, mnt_id);
	if (!m)
		return true;
	/* a mount marked only because it holds a listed path: other files pass */
	return m->major != 0 && kguard_dev_removable(NULL, m->major, m->minor, NULL, 0) > 0;
}

static void decide(struct svc *s, const struct fanotify_event_metadata *ev)
{
	struct fanotify_response resp = { .fd = ev->fd, .response = FAN_ALLOW };
	struct hold_ctx x = { .s = s };
	char path[PATH_MAX] = "?", vreal[PATH_MAX];
	long flags = 0;
	pid_t tid = ev->pid, pid;
	int r;

	/* never wait for ourselves (a listener's own opens are reported too) */
	if (!(ev->mask & FAN_OPEN_PERM) || tid == getpid())
		goto out;
	r = open_flags(tid, &flags);
	if (r == 0 && (flags & O_ACCMODE) == O_RDONLY && !(flags & (O_CREAT | O_TRUNC)))
		goto out; /* reading from the medium is not the guard's business */
	if (!watched_path(s, ev->fd, path, sizeof(path)))
		goto out;
	pid = tgid_of(tid);
	if (job_allows(s, pid, path))
		goto out;
	r = kguard_proc_walk(pid, KGUARD_UPSTREAM, holds_vault, &x);
	if (x.found) {
		struct kguard_refusal rf = { .pid = pid, .uid = uid_of(pid), .dest = path,
					     .held = x.held, .holder = x.pid,
					     .ciphertext = x.ciphertext };
		const struct kguard_mount *m = x.mnt_id >= 0 ? kguard_mount_by_id(&s->mounts, x.mnt_id)
							     : kguard_mount_of(&s->mounts, x.held);

		kproc_comm(pid, rf.comm);
		if (m && kguard_mount_is_kinko(m)) {
			rf.mountpoint = m->mountpoint;
			rf.vault = kguard_mount_vault(m);
		}
		/* raw ciphertext of a mounted vault: that mount's log records it */
		for (size_t i = 0; x.ciphertext && !rf.mountpoint && i < s->mounts.n; i++) {
			const char *v = kguard_mount_vault(&s->mounts.m[i]);
			char *const vl[1] = { vreal };

			if (v && realpath(v, vreal) && kguard_path_below(vl, 1, x.held)) {
				rf.mountpoint = s->mounts.m[i].mountpoint;
				rf.vault = vreal;
				say(s, LOG_INFO, "recorded in the log of %s", rf.mountpoint);
				break;
			}
		}
		resp.response = FAN_DENY;
		say(s, LOG_WARNING, "refused: %s (pid %d, uid %d) opening %s for writing on removable "
		    "media while %s holds %s%s", rf.comm, (int)pid, (int)rf.uid, path,
		    x.pid == pid ? "it" : "a process feeding it", x.held,
		    x.ciphertext ? " (vault ciphertext; only registered kinko backup/takeout jobs "
				   "may copy it)" : "");
		if (s->o->on_refusal)
			s->o->on_refusal(s->o->arg, &rf);
	}
out:
	if (write(s->fan, &resp, sizeof(resp)) != (ssize_t)sizeof(resp))
		say(s, LOG_ERR, "fanotify response: %s", strerror(errno));
	if (ev->fd >= 0)
		close(ev->fd);
}

static int listen_socket(struct svc *s, struct kerrinfo *ei)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = kguard_socket_path();
	char dir[PATH_MAX], *slash;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		kerr_set(ei, path, "socket path too long");
		return -ENAMETOOLONG;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) && slash != dir) {
		*slash = 0;
		mkdir(dir, 0755);
	}
	strcpy(sa.sun_path, path);
	unlink(path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || chmod(path, 0666) != 0 ||
	    listen(fd, 16) != 0) {
		int r = -errno;

		kerr_set(ei, path, "cannot listen: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return r;
	}
	s->lfd = fd;
	return 0;
}

int kguard_service_run(struct kguard *g, const struct kguard_service_opts *o, struct kerrinfo *ei)
{
	struct svc s = { .g = g, .o = o, .fan = -1, .lfd = -1, .mfd = -1 };
	struct sigaction sa = { .sa_handler = on_signal };
	char buf[8192] __attribute__((aligned(__alignof__(struct fanotify_event_metadata))));
	int64_t last_scan;
	int r;

	s.fan = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_UNLIMITED_QUEUE |
			      FAN_UNLIMITED_MARKS | FAN_REPORT_TID,
			      O_RDONLY | O_LARGEFILE | O_CLOEXEC | O_NOATIME);
	if (s.fan < 0) {
		r = -errno;
		kerr_set(ei, "fanotify", "fanotify_init(FAN_CLASS_CONTENT): %s (needs root and a kernel "
			 "with fanotify permission events)", strerror(errno));
		goto out;
	}
	if ((r = listen_socket(&s, ei)) != 0)
		goto out;
	s.mfd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	rescan(&s);
	last_scan = now_ms();
	say(&s, LOG_NOTICE, "started: %zu removable mount(s) watched, socket %s", s.nmarked,
	    kguard_socket_path());
	if (o->ready)
		o->ready(o->arg);
	while (!stop) {
		struct pollfd p[3] = { { s.fan, POLLIN, 0 }, { s.lfd, POLLIN, 0 },
				       { s.mfd, POLLPRI, 0 } };
		int n = poll(p, s.mfd >= 0 ? 3 : 2, RESCAN_MS);

		if (n < 0 && errno != EINTR) {
			r = -errno;
			break;
		}
		if (n > 0 && (p[0].revents & POLLIN)) {
			ssize_t len = read(s.fan, buf, sizeof(buf));
			const struct fanotify_event_metadata *ev = (void *)buf;

			for (; len > 0 && FAN_EVENT_OK(ev, len); ev = FAN_EVENT_NEXT(ev, len)) {
				if (ev->vers != FANOTIFY_METADATA_VERSION)
					continue;
				decide(&s, ev);
			}
		}
		if (n > 0 && (p[1].revents & POLLIN)) {
			int c = accept4(s.lfd, NULL, NULL, SOCK_CLOEXEC);

			if (c >= 0) {
				serve_client(&s, c);
				close(c);
			}
		}
		if ((n > 0 && (p[2].revents & (POLLPRI | POLLERR))) || now_ms() - last_scan >= RESCAN_MS) {
			if (s.mfd >= 0) {
				/* re-arm: the change is seen until the file is read again */
				close(s.mfd);
				s.mfd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
				if (s.mfd >= 0) {
					char junk[4096];

					while (read(s.mfd, junk, sizeof(junk)) > 0)
						;
				}
			}
			rescan(&s);
			last_scan = now_ms();
		}
	}
	r = 0;
	say(&s, LOG_NOTICE, "stopped");
out:
	if (s.lfd >= 0) {
		unlink(kguard_socket_path());
		close(s.lfd);
	}
	if (s.fan >= 0)
		close(s.fan);
	if (s.mfd >= 0)
		close(s.mfd);
	kguard_mounts_free(&s.mounts);
	for (size_t i = 0; i < s.njobs; i++)
		job_free(&s.jobs[i]);
	for (size_t i = 0; i < s.nvaults; i++)
		free(s.vaults[i]);
	return r;
}

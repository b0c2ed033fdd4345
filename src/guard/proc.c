/* kinko guard: what a process holds open, and who it feeds through pipes and
 * sockets (/proc, NETLINK_SOCK_DIAG). Nothing here stats a file a process holds:
 * a FUSE file would call back into a daemon. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "kinko/guard.h"

#define PEERS_MAX 4096

/* fdinfo "flags:" (octal) and "mnt_id:" */
static int read_fdinfo(pid_t pid, const char *fd, unsigned *flags, int *mnt_id)
{
	char p[320], buf[512];
	ssize_t l;
	char *s;

	snprintf(p, sizeof(p), "/proc/%d/fdinfo/%s", (int)pid, fd);
	if ((l = kread_text(p, buf, sizeof(buf))) <= 0)
		return l < 0 ? (int)l : -EIO;
	*flags = 0;
	*mnt_id = -1;
	if ((s = strstr(buf, "flags:")))
		*flags = (unsigned)strtoul(s + 6, NULL, 8);
	if ((s = strstr(buf, "mnt_id:")))
		*mnt_id = (int)strtol(s + 7, NULL, 10);
	return 0;
}

/* "pipe:[N]" -> 'p', "socket:[N]" -> 's', else 0 */
static char channel_of(const char *path, unsigned long long *ino)
{
	const char *b;

	if (strncmp(path, "pipe:[", 6) == 0)
		b = path + 6;
	else if (strncmp(path, "socket:[", 8) == 0)
		b = path + 8;
	else
		return 0;
	*ino = strtoull(b, NULL, 10);
	return path[0];
}

/* "/a/./b/../c" -> "/a/c" (lexical: the path is not touched) */
static void normalize(char *p)
{
	char *out = p, *in = p;

	while (*in) {
		if (in[0] == '/' && (in[1] == '/' || in[1] == 0) && out != p) {
			in++;
		} else if (in[0] == '/' && in[1] == '.' && (in[2] == '/' || in[2] == 0)) {
			in += 2;
		} else if (in[0] == '/' && in[1] == '.' && in[2] == '.' && (in[3] == '/' || in[3] == 0)) {
			in += 3;
			while (out > p && *--out != '/')
				;
		} else {
			*out++ = *in++;
			while (*in && *in != '/')
				*out++ = *in++;
		}
	}
	if (out == p)
		*out++ = '/';
	*out = 0;
}

static int read_string(pid_t tid, unsigned long addr, char *out, size_t n)
{
	char p[64];
	int fd;
	ssize_t l;

	snprintf(p, sizeof(p), "/proc/%d/mem", (int)tid);
	if ((fd = open(p, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	l = pread(fd, out, n - 1, (off_t)addr);
	close(fd);
	if (l <= 0)
		return -EIO;
	out[l] = 0;
	return memchr(out, 0, (size_t)l) ? 0 : -ENAMETOOLONG;
}

int kguard_thread_opening(pid_t pid, pid_t tid, long *flags, char *path, size_t n)
{
	char p[96], buf[512], name[PATH_MAX], base[PATH_MAX];
	unsigned long nr, a[6], name_arg = 0;
	long dirfd = AT_FDCWD;
	ssize_t l;

	if (path && n)
		path[0] = 0;
	snprintf(p, sizeof(p), "/proc/%d/task/%d/syscall", (int)pid, (int)tid);
	if ((l = kread_text(p, buf, sizeof(buf))) <= 0)
		return l < 0 ? (int)l : -EIO;
	if (sscanf(buf, "%lu %lx %lx %lx %lx %lx %lx", &nr, &a[0], &a[1], &a[2], &a[3], &a[4],
		   &a[5]) != 7)
		return 0; /* "running", or not in a system call */
	switch (nr) {
#ifdef SYS_open
	case SYS_open: *flags = (long)a[1]; name_arg = a[0]; break;
#endif
#ifdef SYS_creat
	case SYS_creat: *flags = O_WRONLY | O_CREAT | O_TRUNC; name_arg = a[0]; break;
#endif
	case SYS_openat: *flags = (long)a[2]; dirfd = (int)a[0]; name_arg = a[1]; break;
	case SYS_open_by_handle_at: *flags = (long)a[2]; break;
#ifdef SYS_openat2
	case SYS_openat2: {
		/* struct open_how starts with u64 flags, in the opener's memory */
		uint64_t f = 0;
		int mfd;

		snprintf(p, sizeof(p), "/proc/%d/mem", (int)tid);
		if ((mfd = open(p, O_RDONLY | O_CLOEXEC)) < 0)
			return -errno;
		l = pread(mfd, &f, sizeof(f), (off_t)a[2]);
		close(mfd);
		if (l != (ssize_t)sizeof(f))
			return -EIO;
		*flags = (long)f;
		dirfd = (int)a[0];
		name_arg = a[1];
		break;
	}
#endif
	default: return 0;
	}
	if (!path || !n || !name_arg || read_string(tid, name_arg, name, sizeof(name)) != 0)
		return 1;
	if (name[0] == '/') {
		snprintf(path, n, "%s", name);
	} else {
		if (dirfd == AT_FDCWD)
			snprintf(p, sizeof(p), "/proc/%d/task/%d/cwd", (int)pid, (int)tid);
		else
			snprintf(p, sizeof(p), "/proc/%d/fd/%ld", (int)pid, dirfd);
		if ((l = readlink(p, base, sizeof(base) - 1)) <= 0)
			return 1;
		base[l] = 0;
		if ((size_t)snprintf(path, n, "%s/%s", base, name) >= n) {
			path[0] = 0;
			return 1;
		}
	}
	normalize(path);
	return 1;
}

/* fn for every thread of pid until it returns non-zero (returned) */
typedef int (*task_fn)(void *arg, pid_t pid, pid_t tid);
static int each_task(pid_t pid, task_fn fn, void *arg)
{
	char dpath[64];
	DIR *d;
	struct dirent *e;
	int r = 0;

	snprintf(dpath, sizeof(dpath), "/proc/%d/task", (int)pid);
	if (!(d = opendir(dpath)))
		return 0;
	while (r == 0 && (e = readdir(d)))
		if (isdigit((unsigned char)e->d_name[0]))
			r = fn(arg, pid, (pid_t)atoi(e->d_name));
	closedir(d);
	return r;
}

struct opening_ctx {
	kguard_fd_fn fn;
	void *arg;
};

static int thread_opening(void *arg, pid_t pid, pid_t tid)
{
	struct opening_ctx *c = arg;
	char path[PATH_MAX];
	struct kguard_fd f = { .pid = pid, .fd = -1, .mnt_id = -1, .path = path };
	long flags = 0;

	if (kguard_thread_opening(pid, tid, &flags, path, sizeof(path)) != 1 || !path[0])
		return 0;
	f.flags = (unsigned)flags;
	return c->fn(c->arg, &f);
}

/* threads of pid in the middle of an open: reported as fd -1 with the flags
 * and path of that open (the file is not in the fd table yet) */
static int opening_of(pid_t pid, kguard_fd_fn fn, void *arg)
{
	struct opening_ctx c = { fn, arg };

	return each_task(pid, thread_opening, &c);
}

/* every open fd of pid; fn may be NULL. Returns 1 on a match, 0, or -errno
 * when the process cannot be read. */
typedef void (*chan_fn)(void *arg, pid_t pid, char kind, unsigned long long ino, unsigned flags);
static int fds_of(pid_t pid, kguard_fd_fn fn, void *arg, chan_fn cf, void *carg)
{
	char dpath[64], link[PATH_MAX];
	DIR *d;
	struct dirent *e;
	int r = 0;

	snprintf(dpath, sizeof(dpath), "/proc/%d/fd", (int)pid);
	if (!(d = opendir(dpath)))
		return -errno;
	while (r == 0 && (e = readdir(d))) {
		char lp[336];
		ssize_t l;
		struct kguard_fd f = { .pid = pid };
		char kind;

		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		snprintf(lp, sizeof(lp), "%s/%s", dpath, e->d_name);
		if ((l = readlink(lp, link, sizeof(link) - 1)) <= 0)
			continue;
		link[l] = 0;
		kind = channel_of(link, &f.ino);
		if (!fn && !kind)
			continue; /* the channel table needs pipes and sockets only */
		if (read_fdinfo(pid, e->d_name, &f.flags, &f.mnt_id) != 0)
			continue;
		f.fd = atoi(e->d_name);
		f.path = link;
		if (kind && cf)
			cf(carg, pid, kind, f.ino, f.flags);
		if (fn)
			r = fn(arg, &f);
	}
	closedir(d);
	if (r == 0 && fn)
		r = opening_of(pid, fn, arg);
	return r;
}

/* 1 if thread tid is running or runnable: then it may be between an open
 * that has been allowed and the moment its descriptor appears in /proc (its
 * syscall file says only "running") */
static int thread_running(void *arg, pid_t pid, pid_t tid)
{
	char p[96], buf[512], *s;

	(void)arg;
	snprintf(p, sizeof(p), "/proc/%d/task/%d/stat", (int)pid, (int)tid);
	return kread_text(p, buf, sizeof(buf)) > 0 && (s = strrchr(buf, ')')) && s[1] == ' ' &&
	       s[2] == 'R';
}

/* Waits until no thread of a peer is running, so that an open it is just
 * finishing is seen: the peer then blocks in its first read or write of the
 * pipe, with the new descriptor in place. One walk waits GUARD_SETTLE_US in
 * all (*left); a peer busy for longer is inspected as it is. Both ends of a
 * pipeline that has just started (cat FILE | tee MEDIUM) open at the same
 * moment, and on a loaded machine a peer can wait that long for a CPU with
 * its open half done: peers younger than GUARD_YOUNG_MS share a longer
 * budget (GUARD_SETTLE_YOUNG_US), so only a pipeline's first opens can wait
 * for it. */
#define GUARD_SETTLE_US 3000
#define GUARD_SETTLE_YOUNG_US 60000
#define GUARD_YOUNG_MS 2000
static void settle(pid_t pid, int *left)
{
	for (; *left > 0 && each_task(pid, thread_running, NULL); *left -= 100)
		usleep(100);
}

static int stat_fields(pid_t pid, pid_t *ppid, unsigned long long *start);

/* started less than GUARD_YOUNG_MS ago */
static bool young(pid_t pid)
{
	unsigned long long start = 0;
	struct timespec now;
	pid_t pp;
	long hz = sysconf(_SC_CLK_TCK);

	if (hz <= 0 || stat_fields(pid, &pp, &start) != 0 || clock_gettime(CLOCK_BOOTTIME, &now) != 0)
		return false;
	return (unsigned long long)now.tv_sec * 1000 + (unsigned long long)now.tv_nsec / 1000000 <
	       start * 1000 / (unsigned long long)hz + GUARD_YOUNG_MS;
}

/* ---- the channel table: who holds which pipe/socket, and socket-pair peers ---- */
struct chan {
	pid_t pid;
	char kind;
	unsigned long long ino;
	unsigned flags;
};
struct chans {
	struct chan *c;
	size_t n, cap;
	struct { unsigned long long a, b; bool named; } *peer; /* unix socket -> its peer */
	size_t np, peer_cap;
};

static void chan_add(void *arg, pid_t pid, char kind, unsigned long long ino, unsigned flags)
{
	struct chans *t = arg;

	if (t->n == t->cap) {
		size_t nc = t->cap ? t->cap * 2 : 256;
		struct chan *c = realloc(t->c, nc * sizeof(*c));

		if (!c)
			return;
		t->c = c;
		t->cap = nc;
	}
	t->c[t->n++] = (struct chan){ pid, kind, ino, flags };
}

/* every unix socket's peer inode (sock_diag dump with UDIAG_SHOW_PEER) */
static void unix_peers(struct chans *t)
{
	struct {
		struct nlmsghdr nh;
		struct unix_diag_req r;
	} req = {
		.nh = { .nlmsg_len = sizeof(req), .nlmsg_type = SOCK_DIAG_BY_FAMILY,
			.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP },
		.r = { .sdiag_family = AF_UNIX, .udiag_states = ~0U, .udiag_show = UDIAG_SHOW_PEER | UDIAG_SHOW_NAME },
	};
	long buf[8192 / sizeof(long)];
	int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	bool done = false;

	if (fd < 0)
		return;
	if (send(fd, &req, sizeof(req), 0) < 0) {
		close(fd);
		return;
	}
	while (!done) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		struct nlmsghdr *h = (struct nlmsghdr *)buf;

		if (n <= 0)
			break;
		for (; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			struct unix_diag_msg *m;
			struct rtattr *a;
			int len;

			if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) {
				done = true;
				break;
			}
			m = NLMSG_DATA(h);
			len = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
			bool named = false;
			uint32_t peer = 0;

			for (a = (struct rtattr *)(m + 1); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
				if (a->rta_type == UNIX_DIAG_NAME)
					named = true;
				else if (a->rta_type == UNIX_DIAG_PEER)
					peer = *(uint32_t *)RTA_DATA(a);
			}
			{
				if (t->np >= PEERS_MAX * 4)
					continue;
				if (t->np == t->peer_cap) {
					size_t nc = t->peer_cap ? t->peer_cap * 2 : 256;
					void *p = realloc(t->peer, nc * sizeof(*t->peer));

					if (!p)
						continue;
					t->peer = p;
					t->peer_cap = nc;
				}
				t->peer[t->np].a = m->udiag_ino;
				t->peer[t->np].b = peer;
				t->peer[t->np].named = named;
				t->np++;
			}
		}
	}
	close(fd);
}

/* the other end of a socket pair: both ends unix, connected and unnamed (a
 * connection to a named server socket such as journald's is not followed, or
 * every process on the system would be one's peer) */
static unsigned long long peer_of(const struct chans *t, unsigned long long ino)
{
	unsigned long long p = 0;

	for (size_t i = 0; i < t->np; i++)
		if (t->peer[i].a == ino) {
			if (t->peer[i].named || !t->peer[i].b)
				return 0;
			p = t->peer[i].b;
			break;
		}
	for (size_t i = 0; p && i < t->np; i++)
		if (t->peer[i].a == p)
			return t->peer[i].named ? 0 : p;
	return 0;
}

static void chans_scan(struct chans *t, pid_t skip)
{
	DIR *d = opendir("/proc");
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		pid_t p;

		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		p = (pid_t)atoi(e->d_name);
		if (p != skip)
			fds_of(p, NULL, NULL, chan_add, t);
	}
	closedir(d);
	unix_peers(t);
}

static bool can_write(unsigned flags) { return (flags & O_ACCMODE) != O_RDONLY; }
static bool can_read(unsigned flags) { return (flags & O_ACCMODE) != O_WRONLY; }

int kguard_proc_walk(pid_t pid, enum kguard_dir dir, kguard_fd_fn fn, void *arg)
{
	struct chans mine = { 0 }, all = { 0 };
	pid_t *seen = NULL, *queue;
	size_t nseen = 0, head = 0, cap = 64;
	int r, wait_left = GUARD_SETTLE_US, young_left = GUARD_SETTLE_YOUNG_US;

	/* the process itself (and its own channels) */
	r = fds_of(pid, fn, arg, dir == KGUARD_SELF ? NULL : chan_add, &mine);
	if (r != 0 || mine.n == 0)
		goto out;
	if (!(seen = malloc(cap * sizeof(*seen)))) {
		r = 0;
		goto out;
	}
	queue = seen;
	seen[nseen++] = pid;
	chans_scan(&all, 0);
	/* breadth first over processes reached through channels */
	while (head < nseen && r == 0) {
		pid_t p = queue[head++];

		for (size_t i = 0; i < all.n && nseen < PEERS_MAX; i++) {
			const struct chan *c = &all.c[i];
			unsigned long long want, want_peer = 0;
			bool ok;

			if (c->pid != p)
				continue;
			if (c->kind == 'p') {
				ok = dir == KGUARD_DOWNSTREAM ? can_write(c->flags) : can_read(c->flags);
			} else {
				want_peer = peer_of(&all, c->ino);
				ok = want_peer != 0;
			}
			if (!ok)
				continue;
			want = c->ino;
			for (size_t j = 0; j < all.n; j++) {
				const struct chan *o = &all.c[j];
				bool dup = false;

				if (o->pid == p || o->kind != c->kind ||
				    (o->ino != want && (!want_peer || o->ino != want_peer)))
					continue;
				if (o->kind == 'p' &&
				    !(dir == KGUARD_DOWNSTREAM ? can_read(o->flags) : can_write(o->flags)))
					continue;
				for (size_t k = 0; k < nseen; k++)
					if (seen[k] == o->pid)
						dup = true;
				if (dup)
					continue;
				if (nseen == cap) {
					pid_t *ns = realloc(seen, cap * 2 * sizeof(*ns));

					if (!ns)
						break;
					seen = queue = ns;
					cap *= 2;
				}
				seen[nseen++] = o->pid;
			}
		}
		if (p != pid) {
			int rr;

			settle(p, young(p) ? &young_left : &wait_left);
			rr = fds_of(p, fn, arg, NULL, NULL);

			if (rr > 0)
				r = rr;
		}
	}
out:
	free(seen);
	free(mine.c);
	free(all.c);
	free(all.peer);
	return r;
}

static int stat_fields(pid_t pid, pid_t *ppid, unsigned long long *start)
{
	char p[64], buf[1024], *s;
	ssize_t l;

	snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
	if ((l = kread_text(p, buf, sizeof(buf))) <= 0)
		return l < 0 ? (int)l : -EIO;
	/* comm may hold spaces and parentheses: fields start after the last ')' */
	if (!(s = strrchr(buf, ')')))
		return -EIO;
	{
		int pp = 0;
		unsigned long long st = 0;

		if (sscanf(s + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
			   "%*d %*d %llu", &pp, &st) != 2)
			return -EIO;
		*ppid = pp;
		*start = st;
	}
	return 0;
}

pid_t kguard_proc_ppid(pid_t pid)
{
	pid_t pp = 0;
	unsigned long long st;

	return stat_fields(pid, &pp, &st) == 0 ? pp : 0;
}

unsigned long long kguard_proc_start(pid_t pid)
{
	pid_t pp;
	unsigned long long st = 0;

	return stat_fields(pid, &pp, &st) == 0 ? st : 0;
}

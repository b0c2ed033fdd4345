// SPDX-License-Identifier: GPL-2.0-or-later
/* FUSE over io_uring (Linux 6.14 and later, when the administrator has set
 * /sys/module/fuse/parameters/enable_uring): requests and replies pass
 * through buffers the kernel and the daemon share, one system call per
 * request instead of a read and a write on /dev/fuse, and the request goes
 * to the queue of the caller's CPU.
 *
 * The kernel keeps one queue per possible CPU; kinko gives each queue
 * per_queue() worker threads, each with its own small io_uring and one
 * ring entry (a header buffer and a payload buffer as large as the largest
 * request), so one slow request (an fsync, say) does not hold up the other
 * requests of its CPU. A worker rebuilds the request as /dev/fuse would
 * have delivered it (header, per-operation header, payload) in front of the
 * payload it already holds and hands it to libfuse; libfuse's reply comes
 * back through kinko's writev hook (session.c), which copies it into the
 * entry; the worker then commits it and fetches the next request in one
 * submission.
 *
 * INIT, FORGET and INTERRUPT still travel over /dev/fuse, as does everything
 * when the kernel does not offer io_uring: libfuse's own loop keeps reading
 * it. The layout of the shared buffers is the kernel's ABI (uapi
 * <linux/fuse.h>, protocol 7.42), defined here because Debian 12's kernel
 * headers predate it. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <liburing.h>
#include <linux/fuse.h>

#include "fs_i.h"

#define URING_HDR_SZ 128 /* FUSE_URING_IN_OUT_HEADER_SZ */
#define URING_OP_SZ 128  /* FUSE_URING_OP_IN_OUT_SZ */
enum { URING_CMD_REGISTER = 1, URING_CMD_COMMIT_AND_FETCH = 2 };

struct uring_ent_in_out {
	uint64_t flags;
	uint64_t commit_id;
	uint32_t payload_sz;
	uint32_t padding;
	uint64_t reserved;
};

struct uring_req_header {
	char in_out[URING_HDR_SZ];
	char op_in[URING_OP_SZ];
	struct uring_ent_in_out ent;
};

/* in the 80-byte command area of a 128-byte SQE */
struct uring_cmd_req {
	uint64_t flags;
	uint64_t commit_id;
	uint16_t qid;
	uint8_t padding[6];
};

/* workers per queue: 4, or 2 on machines of more than 8 CPUs (a 1 MiB
 * buffer each) */
static unsigned per_queue(unsigned queues)
{
	return queues > 8 ? 2 : 4;
}
#define UD_ENTRY 1
#define UD_STOP 2
/* room in front of the payload for the headers a request is rebuilt with */
#define FRONT 4096

struct kuring_worker {
	struct kfs *fs;
	unsigned qid;
	pthread_t th;
	bool started;
	struct io_uring ring;
	bool ring_ok;
	struct uring_req_header hdr;
	struct iovec iov[2];
	uint8_t *mem;          /* FRONT bytes, then the payload buffer */
	size_t payload_cap;
	/* the request being served: set by the worker, the reply by whichever
	 * thread libfuse answers from */
	pthread_mutex_t lk;
	pthread_cond_t cv;
	uint64_t unique;       /* 0: none */
	bool replied;
	/* notifications the request's handler sent: written to /dev/fuse once
	 * the reply is committed (see kfs_uring_reply) */
	uint8_t *notes;
	size_t notes_len, notes_cap;
	bool notes_lost;
};

struct kuring {
	struct kfs *fs;
	struct kuring_worker *w;
	unsigned n, per;
	int stopfd;
	/* a spare ring: tells the kernel to give up on io_uring when a worker
	 * cannot register after INIT asked for it (requests would wait forever) */
	struct io_uring ctl;
	bool ctl_ok;
	_Atomic bool disabled;
	/* notifications from ring handlers, written by the notifier thread
	 * (never by a worker, whose next request may hold the lock one needs) */
	pthread_t notifier;
	bool notifier_started;
	uint8_t *nq;
	size_t nq_len, nq_cap;
	bool nq_lost;
	pthread_cond_t ncv;
	pthread_mutex_t lk;
	pthread_cond_t cv;
	bool go, stop;         /* go: the INIT reply is written */
	size_t payload_cap;
	_Atomic bool used;     /* a request has come through a ring (also fs->uring_used) */
	_Atomic bool reported;
};

static _Thread_local struct kuring_worker *cur;

static unsigned possible_cpus(void)
{
	FILE *f = fopen("/sys/devices/system/cpu/possible", "re");
	unsigned a = 0, b = 0, max = 0;
	int c;

	/* "0-3,8-11": the kernel makes one queue per possible CPU id */
	if (f) {
		while (fscanf(f, "%u", &a) == 1) {
			b = a;
			if ((c = fgetc(f)) == '-') {
				if (fscanf(f, "%u", &b) != 1)
					break;
				c = fgetc(f);
			}
			if (b + 1 > max)
				max = b + 1;
			if (c != ',')
				break;
		}
		fclose(f);
	}
	if (max == 0)
		max = (unsigned)get_nprocs_conf();
	return max;
}

static int submit_cmd(struct kuring_worker *w, unsigned op, uint64_t commit_id)
{
	int r;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
	struct uring_cmd_req *req;

	if (!sqe)
		return -EBUSY;
	memset(sqe, 0, 128);
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->fd = fuse_session_fd(w->fs->se);
	sqe->cmd_op = op;
	sqe->addr = (uint64_t)(uintptr_t)w->iov;
	sqe->len = 2;
	sqe->user_data = UD_ENTRY;
	req = (struct uring_cmd_req *)(void *)sqe->cmd;
	req->commit_id = commit_id;
	req->qid = (uint16_t)w->qid;
	/* with the stop poll queued before the first command, 2 go in at once:
	 * all that was queued must go in */
	r = io_uring_submit(&w->ring);
	if (r < 0)
		return r;
	return io_uring_sq_ready(&w->ring) == 0 ? 0 : -EIO;
}

static int arm_stop(struct kuring_worker *w, int stopfd)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);

	if (!sqe)
		return -EBUSY;
	memset(sqe, 0, 128);
	io_uring_prep_poll_add(sqe, stopfd, POLLIN);
	sqe->user_data = UD_STOP;
	return 0;
}

static void report_unavailable(struct kuring *u, int err)
{
	if (!atomic_exchange(&u->reported, true))
		log_notice("FUSE over io_uring not used (%s): requests go through /dev/fuse",
			   strerror(-err));
}

/* After INIT asked for io_uring the kernel holds every request until each
 * queue has an entry. A worker that cannot register says so: a REGISTER
 * for a queue that does not exist makes the kernel drop io_uring for this
 * mount (fc->io_uring = 0) and release the waiting requests to /dev/fuse. */
static void give_up(struct kuring *u, int err)
{
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	struct iovec iov[2];
	struct uring_req_header hdr;
	uint8_t byte;

	report_unavailable(u, err);
	if (atomic_load(&u->used) || atomic_exchange(&u->disabled, true) || !u->ctl_ok)
		return;
	iov[0].iov_base = &hdr;
	iov[0].iov_len = sizeof(hdr);
	iov[1].iov_base = &byte;
	iov[1].iov_len = 1;
	pthread_mutex_lock(&u->lk);
	if ((sqe = io_uring_get_sqe(&u->ctl))) {
		memset(sqe, 0, 128);
		sqe->opcode = IORING_OP_URING_CMD;
		sqe->fd = fuse_session_fd(u->fs->se);
		sqe->cmd_op = URING_CMD_REGISTER;
		sqe->addr = (uint64_t)(uintptr_t)iov;
		sqe->len = 2;
		((struct uring_cmd_req *)(void *)sqe->cmd)->qid = UINT16_MAX;
		if (io_uring_submit_and_wait(&u->ctl, 1) >= 1 && io_uring_peek_cqe(&u->ctl, &cqe) == 0)
			io_uring_cqe_seen(&u->ctl, cqe);
	}
	pthread_mutex_unlock(&u->lk);
}

static void *notifier_main(void *arg)
{
	struct kuring *u = arg;
	int fd = fuse_session_fd(u->fs->se);

	pthread_mutex_lock(&u->lk);
	for (;;) {
		uint8_t *buf;
		size_t len, pos = 0;
		bool lost;

		while (!u->nq_len && !u->nq_lost && !u->stop)
			pthread_cond_wait(&u->ncv, &u->lk);
		if (!u->nq_len && !u->nq_lost)
			break;
		buf = u->nq;
		len = u->nq_len;
		lost = u->nq_lost;
		u->nq = NULL;
		u->nq_len = u->nq_cap = 0;
		u->nq_lost = false;
		pthread_mutex_unlock(&u->lk);
		while (pos + sizeof(uint32_t) <= len) {
			uint32_t l;

			memcpy(&l, buf + pos, sizeof(l)); /* fuse_out_header.len */
			if (l < sizeof(struct fuse_out_header) || pos + l > len)
				break;
			if (write(fd, buf + pos, l) < 0 && errno != ENOENT)
				log_debug("FUSE over io_uring: a notification failed: %s", strerror(errno));
			pos += l;
		}
		free(buf);
		if (lost)
			log_warn("FUSE over io_uring: out of memory: a cache invalidation was dropped");
		pthread_mutex_lock(&u->lk);
	}
	pthread_mutex_unlock(&u->lk);
	return NULL;
}

/* serve one request held in w's entry; returns the commit id */
static uint64_t serve(struct kuring_worker *w)
{
	struct fuse_in_header ih;
	struct fuse_buf fb = { 0 };
	uint64_t id = w->hdr.ent.commit_id;
	size_t plen = w->hdr.ent.payload_sz, oplen;
	uint8_t *start;

	memcpy(&ih, w->hdr.in_out, sizeof(ih));
	if (ih.len < sizeof(ih) + plen || plen > w->payload_cap ||
	    (oplen = ih.len - sizeof(ih) - plen) > URING_OP_SZ) {
		/* not what the kernel sends: answer the request with EIO */
		struct fuse_out_header oh = { .len = sizeof(oh), .error = -EIO, .unique = ih.unique };

		memcpy(w->hdr.in_out, &oh, sizeof(oh));
		w->hdr.ent.payload_sz = 0;
		return id;
	}
	start = w->mem + FRONT - sizeof(ih) - oplen;
	memcpy(start, &ih, sizeof(ih));
	memcpy(start + sizeof(ih), w->hdr.op_in, oplen);
	kfs_note_request(w->fs, start, ih.len);
	pthread_mutex_lock(&w->lk);
	w->unique = ih.unique;
	w->replied = false;
	pthread_mutex_unlock(&w->lk);
	cur = w;
	fb.mem = start;
	fb.size = ih.len;
	fuse_session_process_buf(w->fs->se, &fb);
	cur = NULL;
	/* libfuse answers every request it is handed; one answered later, from
	 * another thread, is waited for here */
	pthread_mutex_lock(&w->lk);
	while (!w->replied)
		pthread_cond_wait(&w->cv, &w->lk);
	w->unique = 0;
	pthread_mutex_unlock(&w->lk);
	return id;
}

/* after the commit: the handler's notifications go to the notifier thread */
static void flush_notes(struct kuring_worker *w)
{
	struct kuring *u = w->fs->uring;

	if (!w->notes_len && !w->notes_lost)
		return;
	pthread_mutex_lock(&u->lk);
	if (w->notes_len) {
		if (u->nq_len + w->notes_len > u->nq_cap) {
			size_t nc = (u->nq_len + w->notes_len) * 2;
			uint8_t *n = realloc(u->nq, nc);

			if (n) {
				u->nq = n;
				u->nq_cap = nc;
			}
		}
		if (u->nq_len + w->notes_len <= u->nq_cap) {
			memcpy(u->nq + u->nq_len, w->notes, w->notes_len);
			u->nq_len += w->notes_len;
		} else {
			u->nq_lost = true;
		}
	}
	if (w->notes_lost)
		u->nq_lost = true;
	pthread_cond_signal(&u->ncv);
	pthread_mutex_unlock(&u->lk);
	w->notes_len = 0;
	w->notes_lost = false;
}

/* A notification from inside a handler of a ring request: with /dev/fuse
 * the reply would already be with the kernel when a handler notifies after
 * replying, but a ring reply goes in only when the handler returns, and
 * invalidating a name takes the directory lock that the request still
 * holds. So it waits for the commit. */
static bool queue_note(struct kuring_worker *w, const struct iovec *iov, int count, ssize_t *ret)
{
	size_t total = 0, pos;
	uint32_t len;

	for (int i = 0; i < count; i++)
		total += iov[i].iov_len;
	if (total > UINT32_MAX)
		return false;
	if (w->notes_len + total > w->notes_cap) {
		size_t nc = (w->notes_len + total) * 2;
		uint8_t *n = realloc(w->notes, nc);

		if (!n) {
			w->notes_lost = true;
			*ret = (ssize_t)total;
			return true;
		}
		w->notes = n;
		w->notes_cap = nc;
	}
	pos = w->notes_len;
	for (int i = 0; i < count; i++) {
		memcpy(w->notes + pos, iov[i].iov_base, iov[i].iov_len);
		pos += iov[i].iov_len;
	}
	len = (uint32_t)total;
	memcpy(w->notes + w->notes_len, &len, sizeof(len));
	w->notes_len = pos;
	*ret = (ssize_t)total;
	return true;
}

static void *worker_main(void *arg)
{
	struct kuring_worker *w = arg;
	struct kuring *u = w->fs->uring;
	struct io_uring_cqe *cqe;
	bool registered = false;
	int r;

	pthread_mutex_lock(&u->lk);
	while (!u->go && !u->stop)
		pthread_cond_wait(&u->cv, &u->lk);
	pthread_mutex_unlock(&u->lk);
	if (u->stop)
		return NULL;
	if ((r = arm_stop(w, u->stopfd)) != 0 || (r = submit_cmd(w, URING_CMD_REGISTER, 0)) != 0) {
		give_up(u, r);
		return NULL;
	}
	for (;;) {
		uint64_t ud;
		int res;

		r = io_uring_wait_cqe(&w->ring, &cqe);
		if (r == -EINTR)
			continue;
		if (r < 0)
			break;
		ud = cqe->user_data;
		res = cqe->res;
		io_uring_cqe_seen(&w->ring, cqe);
		if (ud == UD_STOP)
			break;
		if (res == -EAGAIN && !registered) {
			/* the kernel has not finished INIT yet */
			usleep(1000);
			if ((r = submit_cmd(w, URING_CMD_REGISTER, 0)) != 0) {
				give_up(u, r);
				break;
			}
			continue;
		}
		if (res < 0) {
			if (!registered && res != -ENOTCONN && res != -ECANCELED)
				give_up(u, res);
			break; /* -ENOTCONN, -ECANCELED: the mount is gone */
		}
		/* the answer to REGISTER is the first request */
		registered = true;
		if (!atomic_load_explicit(&u->used, memory_order_relaxed) && !atomic_exchange(&u->used, true)) {
			atomic_store(&w->fs->uring_used, true);
			log_notice("FUSE over io_uring in use: %u queues, %u workers each", u->n / u->per,
				   u->per);
		}
		r = submit_cmd(w, URING_CMD_COMMIT_AND_FETCH, serve(w));
		flush_notes(w);
		if (r != 0) {
			log_err("FUSE over io_uring: a reply could not be submitted: %s", strerror(-r));
			break;
		}
	}
	return NULL;
}

bool kfs_uring_reply(struct kfs *fs, const struct iovec *iov, int count, ssize_t *ret)
{
	struct kuring *u = fs->uring;
	struct kuring_worker *w = NULL;
	struct fuse_out_header oh;
	size_t total = 0, pos = 0;

	if (!u || count < 1 || iov[0].iov_len != sizeof(oh))
		return false;
	memcpy(&oh, iov[0].iov_base, sizeof(oh));
	if (oh.unique == 0) /* a notification: /dev/fuse, after the commit if from a ring worker */
		return cur ? queue_note(cur, iov, count, ret) : false;
	if (cur && cur->unique == oh.unique) {
		w = cur;
	} else if (!atomic_load_explicit(&u->used, memory_order_acquire)) {
		return false; /* no request has come through a ring */
	} else {
		for (unsigned i = 0; i < u->n && !w; i++) {
			pthread_mutex_lock(&u->w[i].lk);
			if (u->w[i].unique == oh.unique && !u->w[i].replied)
				w = &u->w[i];
			pthread_mutex_unlock(&u->w[i].lk);
		}
		if (!w)
			return false; /* a request that came through /dev/fuse */
	}
	for (int i = 1; i < count; i++)
		total += iov[i].iov_len;
	if (total > w->payload_cap) {
		oh.error = -EIO;
		oh.len = sizeof(oh);
		total = 0;
	}
	for (int i = 1; i < count && total; i++) {
		memmove(w->mem + FRONT + pos, iov[i].iov_base, iov[i].iov_len);
		pos += iov[i].iov_len;
	}
	memcpy(w->hdr.in_out, &oh, sizeof(oh));
	w->hdr.ent.payload_sz = (uint32_t)total;
	pthread_mutex_lock(&w->lk);
	w->replied = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->lk);
	*ret = (ssize_t)(sizeof(oh) + total);
	return true;
}

static struct kuring *uring_alloc(struct kfs *fs)
{
	struct kuring *u;
	unsigned q;

	u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	q = possible_cpus();
	u->per = per_queue(q);
	u->n = q * u->per;
	u->w = calloc(u->n, sizeof(*u->w));
	u->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!u->w || u->stopfd < 0) {
		if (u->stopfd >= 0)
			close(u->stopfd);
		free(u->w);
		free(u);
		return NULL;
	}
	pthread_mutex_init(&u->lk, NULL);
	pthread_cond_init(&u->cv, NULL);
	pthread_cond_init(&u->ncv, NULL);
	u->fs = fs;
	for (unsigned i = 0; i < u->n; i++) {
		u->w[i].fs = fs;
		u->w[i].qid = i / u->per;
		pthread_mutex_init(&u->w[i].lk, NULL);
		pthread_cond_init(&u->w[i].cv, NULL);
	}
	return u;
}

/* Before the INIT reply asks for io_uring: every worker's buffer, ring and
 * thread, or none (then the reply does not ask, and /dev/fuse serves). The
 * rings are not pinned to their queue's CPU: a worker there would have to
 * wait for the caller to give that CPU up; unpinned, random 4k I/O ran
 * twice as fast here (about 80,000 against 29,000-38,000 IOPS pinned and
 * 41,000 through /dev/fuse, 2 cores). */
int kfs_uring_setup(struct kfs *fs, size_t max_payload)
{
	struct kuring *u = uring_alloc(fs);
	int r = 0;

	if (!u) {
		log_warn("FUSE over io_uring: out of memory; requests go through /dev/fuse");
		return -ENOMEM;
	}
	fs->uring = u;
	u->payload_cap = max_payload;
	if ((r = io_uring_queue_init(2, &u->ctl, IORING_SETUP_SQE128)) != 0)
		goto fail;
	u->ctl_ok = true;
	for (unsigned i = 0; i < u->n; i++) {
		struct kuring_worker *w = &u->w[i];

		w->payload_cap = max_payload;
		if (!(w->mem = malloc(FRONT + max_payload))) {
			r = -ENOMEM;
			goto fail;
		}
		if ((r = io_uring_queue_init(4, &w->ring, IORING_SETUP_SQE128)) != 0)
			goto fail;
		w->ring_ok = true;
		w->iov[0].iov_base = &w->hdr;
		w->iov[0].iov_len = sizeof(w->hdr);
		w->iov[1].iov_base = w->mem + FRONT;
		w->iov[1].iov_len = max_payload;
	}
	for (unsigned i = 0; i < u->n; i++) {
		if ((r = -pthread_create(&u->w[i].th, NULL, worker_main, &u->w[i])) != 0)
			goto fail;
		u->w[i].started = true;
	}
	if ((r = -pthread_create(&u->notifier, NULL, notifier_main, u)) != 0)
		goto fail;
	u->notifier_started = true;
	return 0;
fail:
	report_unavailable(u, r);
	kfs_uring_free(fs); /* the workers are still waiting for go: they exit */
	return r;
}

/* set go or stop and wake whoever waits for either */
static void announce(struct kuring *u, bool *flag)
{
	pthread_mutex_lock(&u->lk);
	*flag = true;
	pthread_cond_broadcast(&u->cv);
	pthread_cond_broadcast(&u->ncv);
	pthread_mutex_unlock(&u->lk);
}

/* after the INIT reply went to the kernel: the workers register */
void kfs_uring_go(struct kfs *fs)
{
	if (fs->uring)
		announce(fs->uring, &fs->uring->go);
}

bool kfs_uring_active(struct kfs *fs)
{
	/* a flag of fs: the control thread may ask after the workers are gone */
	return atomic_load(&fs->uring_used);
}

void kfs_uring_free(struct kfs *fs)
{
	struct kuring *u = fs->uring;
	uint64_t one = 1;

	if (!u)
		return;
	announce(u, &u->stop);
	if (write(u->stopfd, &one, sizeof(one)) != (ssize_t)sizeof(one))
		log_warn("FUSE over io_uring: could not signal the workers to stop");
	for (unsigned i = 0; i < u->n; i++) {
		struct kuring_worker *w = &u->w[i];

		if (w->started)
			pthread_join(w->th, NULL);
	}
	if (u->notifier_started)
		pthread_join(u->notifier, NULL); /* the mount is going: what is left is dropped */
	for (unsigned i = 0; i < u->n; i++) {
		struct kuring_worker *w = &u->w[i];

		if (w->ring_ok)
			io_uring_queue_exit(&w->ring);
		free(w->mem);
		free(w->notes);
		pthread_mutex_destroy(&w->lk);
		pthread_cond_destroy(&w->cv);
	}
	if (u->ctl_ok)
		io_uring_queue_exit(&u->ctl);
	free(u->nq);
	close(u->stopfd);
	pthread_mutex_destroy(&u->lk);
	pthread_cond_destroy(&u->cv);
	pthread_cond_destroy(&u->ncv);
	free(u->w);
	free(u);
	fs->uring = NULL;
}

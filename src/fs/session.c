// SPDX-License-Identifier: GPL-2.0-or-later
/* The mount session around the file system: the gate every request passes
 * (lock state, audit health, allowed hours), audit entries with the caller's
 * identity and the plaintext path, lock (keys wiped) and unlock (password
 * again), the idle lock, and the anomaly windows that lock the mount and
 * raise an alert. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <sys/uio.h>

#include <jansson.h>
#include <linux/fuse.h>

#include "fs_i.h"
#include "kinko/takeout.h"

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- sliding windows: 60 buckets over the window ---- */

static void win_init(struct kwin *w, int window_s, long long limit)
{
	memset(w, 0, sizeof(*w));
	w->width_ms = (int64_t)window_s * 1000 / KWIN_BUCKETS;
	if (w->width_ms < 1)
		w->width_ms = 1;
	w->limit = limit;
}

/* add n; returns the sum over the window */
static long long win_add(struct kwin *w, int64_t now, long long n)
{
	int64_t slot = now / w->width_ms;
	struct kwin_bucket *b = &w->b[slot % KWIN_BUCKETS];
	long long sum = 0;

	if (b->slot != slot) {
		b->slot = slot;
		b->count = 0;
	}
	b->count += n;
	for (int i = 0; i < KWIN_BUCKETS; i++)
		if (w->b[i].slot > slot - KWIN_BUCKETS)
			sum += w->b[i].count;
	return sum;
}

/* ---- caller identity ---- */

static void caller_comm(struct kfs *fs, pid_t pid, char out[17])
{
	struct kcomm *c = &fs->comms[(unsigned)pid % KFS_COMM_CACHE];
	int64_t now = mono_ms();

	pthread_mutex_lock(&fs->comm_lock);
	if (c->pid == pid && now - c->at < 2000) {
		memcpy(out, c->comm, 17);
		pthread_mutex_unlock(&fs->comm_lock);
		return;
	}
	pthread_mutex_unlock(&fs->comm_lock);
	kproc_comm(pid, out);
	pthread_mutex_lock(&fs->comm_lock);
	c->pid = pid;
	c->at = now;
	memcpy(c->comm, out, 17);
	pthread_mutex_unlock(&fs->comm_lock);
}

void kfs_caller(struct kfs *fs, fuse_req_t req, struct kfile *f)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);

	f->uid = (uint32_t)ctx->uid;
	f->pid = ctx->pid;
	if (fs->audit)
		caller_comm(fs, ctx->pid, f->comm);
}

/* plaintext path of in (+ "/name") within the vault: COMPARTMENT/dir/file,
 * written from the end of out backwards, one inode lock at a time */
void kfs_path(struct kfs *fs, struct kinode *in, const char *name, char *out, size_t n)
{
	size_t pos = n - 1;
	bool first = true;

	out[pos] = 0;
	if (name) {
		size_t l = strlen(name);

		if (l >= pos)
			l = pos;
		pos -= l;
		memcpy(out + pos, name, l);
		first = false;
	}
	for (struct kinode *p = in, *next; p && p != &fs->root && pos > 1; p = next) {
		size_t l;

		if (!first)
			out[--pos] = '/';
		first = false;
		pthread_mutex_lock(&p->lk);
		l = p->pname ? strlen(p->pname) : 1;
		if (l > pos)
			l = pos;
		pos -= l;
		memcpy(out + pos, p->pname ? p->pname : "?", l);
		next = p->parent; /* read with its name: a rename changes both */
		pthread_mutex_unlock(&p->lk);
	}
	memmove(out, out + pos, n - pos);
}

static const char *reason_of(int err)
{
	switch (err) {
	case -EROFS: return "read-only";
	case -EACCES:
	case -EPERM: return "permission";
	default: return NULL;
	}
}

static void denied(struct kfs *fs, int64_t now);

void kfs_audit(struct kfs *fs, fuse_req_t req, const struct kfs_ev *e)
{
	const struct fuse_ctx *ctx = req ? fuse_req_ctx(req) : NULL;
	char path[4096], path2[4096], comm[17] = "";
	struct kaudit_rec r = { 0 };

	/* denials by permission or grant count towards the anomaly window; those
	 * of a mount already locked do not */
	if (e->err && !e->reason && reason_of(e->err))
		denied(fs, mono_ms());
	if (!fs->audit)
		return;
	if (e->opener) {
		ctx = NULL;
		snprintf(comm, sizeof(comm), "%s", e->opener->comm);
	} else if (ctx) {
		caller_comm(fs, ctx->pid, comm);
	}
	if (e->in)
		kfs_path(fs, e->in, e->name, path, sizeof(path));
	if (e->in2)
		kfs_path(fs, e->in2, e->name2, path2, sizeof(path2));
	r.action = e->action;
	r.path = e->in ? path : NULL;
	r.path2 = e->in2 ? path2 : NULL;
	r.detail = e->detail;
	r.err = e->err;
	r.reason = e->reason ? e->reason : reason_of(e->err);
	r.uid = e->opener ? e->opener->uid : ctx ? (uint32_t)ctx->uid : (uint32_t)getuid();
	r.pid = e->opener ? e->opener->pid : ctx ? ctx->pid : getpid();
	r.comm = e->opener || ctx ? comm : "kinko";
	r.has_bytes = e->bytes;
	r.bytes_read = e->rd;
	r.bytes_written = e->wr;
	kaudit_log(fs->audit, &r);
}

/* ---- the gate ---- */

static bool outside_hours(struct kfs *fs)
{
	time_t t = (time_t)ktime_now();
	struct tm tm;
	int m;

	if (fs->set.hours_from < 0)
		return false;
	/* worked out once a second (localtime is not cheap); racing threads
	 * compute the same answer */
	if (t != atomic_load_explicit(&fs->hours_checked_at, memory_order_acquire)) {
		localtime_r(&t, &tm);
		m = tm.tm_hour * 60 + tm.tm_min;
		atomic_store_explicit(&fs->hours_outside, fs->set.hours_from <= fs->set.hours_until ?
			(m < fs->set.hours_from || m >= fs->set.hours_until) :
			(m < fs->set.hours_from && m >= fs->set.hours_until), memory_order_relaxed);
		atomic_store_explicit(&fs->hours_checked_at, t, memory_order_release);
	}
	return atomic_load_explicit(&fs->hours_outside, memory_order_relaxed);
}

/* Called by request threads (inside the gate): takes only the leaf an_lock;
 * the timer thread wipes the keys and raises the alert. */
static void anomaly(struct kfs *fs, const char *why)
{
	bool signal = false;

	pthread_mutex_lock(&fs->an_lock);
	if (!fs->anomaly_pending && atomic_load(&fs->state) != KFS_ANOMALY) {
		snprintf(fs->anomaly_why, sizeof(fs->anomaly_why), "%s", why);
		fs->anomaly_pending = true;
		signal = true;
	}
	/* deny from now on */
	atomic_store(&fs->state, KFS_ANOMALY);
	pthread_mutex_unlock(&fs->an_lock);
	if (signal)
		pthread_cond_signal(&fs->timer_cv);
}

/* count n in window w; past the limit (in units of 1 << shift) an anomaly */
static void win_hit(struct kfs *fs, struct kwin *w, int64_t now, long long n, int limit,
		    int window, int shift, const char *what)
{
	long long sum;

	pthread_mutex_lock(&fs->an_lock);
	sum = win_add(w, now, n);
	pthread_mutex_unlock(&fs->an_lock);
	if (sum > (long long)limit << shift) {
		char why[128];

		snprintf(why, sizeof(why), "%lld %s within %d s (limit %d)", sum >> shift, what, window,
			 limit);
		anomaly(fs, why);
	}
}

static void denied(struct kfs *fs, int64_t now)
{
	if (fs->set.an_denials_limit)
		win_hit(fs, &fs->an_denials, now, 1, fs->set.an_denials_limit,
			fs->set.an_denials_window, 0, "denied accesses");
}

int kfs_enter(struct kfs *fs, fuse_req_t req, const char *op, struct kinode *in, const char *name)
{
	int st;
	const char *reason = NULL;

	pthread_rwlock_rdlock(&fs->gate);
	st = atomic_load_explicit(&fs->state, memory_order_acquire);
	if (st == KFS_OPEN && outside_hours(fs)) {
		anomaly(fs, "access outside the allowed hours (anomaly.hours)");
		st = KFS_ANOMALY;
	}
	if (st == KFS_OPEN && fs->audit && !kaudit_ok(fs->audit))
		reason = "audit-failed";
	else if (st == KFS_OPEN && in && in->comp && in->comp->closed)
		reason = "revoked";
	else if (st == KFS_LOCKED)
		reason = "locked";
	else if (st == KFS_ANOMALY)
		reason = "anomaly";
	if (!reason) {
		/* the virtual root (stat of the mount point by file managers, shells,
		 * df) is not an access to files: it does not hold off the idle lock */
		if (in != &fs->root)
			atomic_store_explicit(&fs->last_access, mono_ms(), memory_order_relaxed);
		return 0;
	}
	pthread_rwlock_unlock(&fs->gate);
	{
		struct kfs_ev e = { .action = op, .in = in, .name = name, .err = -EACCES,
				    .reason = reason };

		kfs_audit(fs, req, &e);
	}
	fuse_reply_err(req, EACCES);
	return -EACCES;
}

void kfs_leave(struct kfs *fs) { pthread_rwlock_unlock(&fs->gate); }

/* the seen-set: open addressing, rebuilt without the expired entries when
 * half full (under an_lock) */
static int seen_rebuild(struct kfs *fs, int64_t now, int64_t window)
{
	size_t cap = fs->seen_cap ? fs->seen_cap : 1024, n = 0;
	struct kseen *old = fs->seen, *t;

	for (size_t i = 0; i < fs->seen_cap; i++)
		n += old[i].key && now - old[i].at < window;
	while (n * 2 >= cap)
		cap *= 2;
	if (cap > (1u << 22) || !(t = calloc(cap, sizeof(*t))))
		return -ENOMEM;
	fs->seen_n = 0;
	for (size_t i = 0; i < fs->seen_cap; i++)
		if (old[i].key && now - old[i].at < window) {
			size_t h = (size_t)(old[i].key * 0x9E3779B97F4A7C15ull >> 7) & (cap - 1);

			while (t[h].key)
				h = (h + 1) & (cap - 1);
			t[h] = old[i];
			fs->seen_n++;
		}
	free(old);
	fs->seen = t;
	fs->seen_cap = cap;
	return 0;
}

/* true if key was not counted within the window (and is now) */
static bool seen_first(struct kfs *fs, uint64_t key, int64_t now, int64_t window)
{
	size_t h;

	key |= 1; /* 0 marks an empty slot */
	if ((fs->seen_n + 1) * 2 > fs->seen_cap && seen_rebuild(fs, now, window) != 0)
		return true; /* no memory: count it (errs towards locking) */
	h = (size_t)(key * 0x9E3779B97F4A7C15ull >> 7) & (fs->seen_cap - 1);
	while (fs->seen[h].key && fs->seen[h].key != key)
		h = (h + 1) & (fs->seen_cap - 1);
	if (fs->seen[h].key == key && now - fs->seen[h].at < window)
		return false;
	if (!fs->seen[h].key)
		fs->seen_n++;
	fs->seen[h].key = key;
	fs->seen[h].at = now;
	return true;
}

void kfs_count_open(struct kfs *fs, struct kinode *in)
{
	int64_t now = mono_ms();
	bool first;

	if (!fs->set.an_files_limit)
		return;
	pthread_mutex_lock(&fs->an_lock);
	first = seen_first(fs, (uint64_t)in->ino * 0x100000001b3ull ^ (uint64_t)in->dev, now,
			   (int64_t)fs->set.an_files_window * 1000);
	pthread_mutex_unlock(&fs->an_lock);
	if (first)
		win_hit(fs, &fs->an_files, now, 1, fs->set.an_files_limit, fs->set.an_files_window, 0,
			"distinct files opened");
}

/* every read passes here: bytes gather in an atomic and reach the window
 * (under its lock) once a MiB, the unit of the limit */
void kfs_count_read(struct kfs *fs, uint64_t bytes)
{
	uint64_t pending;

	if (!fs->set.an_read_mib_limit || !bytes)
		return;
	pending = atomic_fetch_add_explicit(&fs->read_pending, bytes, memory_order_relaxed) + bytes;
	if (pending < (1u << 20))
		return;
	pending = atomic_exchange_explicit(&fs->read_pending, 0, memory_order_relaxed);
	if (pending)
		win_hit(fs, &fs->an_read, mono_ms(), (long long)pending, fs->set.an_read_mib_limit,
			fs->set.an_read_window, 20, "MiB read");
}

/* ---- lock and unlock ---- */

static void wipe_ring(struct kkeyring *ring)
{
	for (size_t i = 0; ring && i < ring->ncomps; i++)
		for (size_t e = 0; e < ring->comps[i].nepochs; e++) {
			struct kformat_epoch_keys *k = &ring->comps[i].epochs[e];

			ksecmem_wipe(k->content, sizeof(k->content));
			ksecmem_wipe(k->names, sizeof(k->names));
			ksecmem_wipe(k->meta, sizeof(k->meta));
		}
}

/* the kernel must forget plaintext pages and attributes it holds */
static void invalidate_all(struct kfs *fs)
{
	fuse_ino_t *ids = NULL;
	size_t n = 0;

	if (!fs->se)
		return;
	pthread_mutex_lock(&fs->itab_lock);
	if (fs->itab_count && (ids = malloc(fs->itab_count * sizeof(*ids))))
		for (size_t i = 0; i < fs->itab_size; i++)
			for (struct kinode *in = fs->itab[i]; in && n < fs->itab_count; in = in->hnext)
				ids[n++] = (fuse_ino_t)(uintptr_t)in;
	pthread_mutex_unlock(&fs->itab_lock);
	for (size_t i = 0; i < n; i++)
		fuse_lowlevel_notify_inval_inode(fs->se, ids[i], 0, 0);
	free(ids);
}

static void do_lock(struct kfs *fs, int state, const char *why)
{
	struct kfs_ev e = { .action = state == KFS_ANOMALY ? "anomaly-lock" : "lock" };
	char detail[300];
	int prev;

	pthread_mutex_lock(&fs->state_lock);
	prev = atomic_exchange(&fs->state, state);
	if (prev == KFS_ANOMALY && state == KFS_LOCKED)
		atomic_store(&fs->state, KFS_ANOMALY); /* an anomaly lock is not downgraded */
	/* wait for requests in flight, then wipe */
	pthread_rwlock_wrlock(&fs->gate);
	if (!fs->keys_wiped) {
		wipe_ring(fs->v->ring);
		kkeys_user_free(fs->v->user);
		fs->v->user = NULL;
		kcrypto_scrub_all();
		kfs_encname_forget(fs);
		fs->keys_wiped = true;
	}
	pthread_rwlock_unlock(&fs->gate);
	/* an anomaly lock keeps its reason: the administrator must see why */
	if (!(prev == KFS_ANOMALY && state == KFS_LOCKED))
		snprintf(fs->lock_why, sizeof(fs->lock_why), "%s", why);
	pthread_mutex_unlock(&fs->state_lock);
	invalidate_all(fs);
	snprintf(detail, sizeof(detail), "{\"why\":\"%s\"}", why); /* why: our own fixed texts */
	e.detail = detail;
	kfs_audit(fs, NULL, &e);
	log_notice("%s locked: %s", fs->mountpoint, why);
}

int kfs_lock(struct kfs *fs, const char *why)
{
	do_lock(fs, KFS_LOCKED, why);
	return 0;
}

/* the keys of the grants the user still holds go back in place; a
 * compartment revoked while the mount was locked stays closed (EACCES) */
static void copy_ring(struct kkeyring *dst, const struct kkeyring *src)
{
	for (size_t i = 0; i < dst->ncomps; i++) {
		dst->comps[i].closed = true;
		for (size_t j = 0; j < src->ncomps; j++) {
			if (memcmp(dst->comps[i].id, src->comps[j].id, KFORMAT_ID_BYTES) != 0)
				continue;
			dst->comps[i].closed = false;
			dst->comps[i].read_only = src->comps[j].read_only;
			for (size_t e = 0; e < dst->comps[i].nepochs; e++) {
				const struct kformat_epoch_keys *k =
					kkeys_comp_epoch(&src->comps[j], dst->comps[i].epochs[e].epoch);

				if (k)
					dst->comps[i].epochs[e] = *k;
			}
		}
	}
}

int kfs_unlock(struct kfs *fs, const char *pw, size_t pwlen, const struct kkeys_factor_in *f,
	       struct kerrinfo *ei)
{
	struct kvault_unlock_opts o = { .need_grants = true };
	struct kkeyring *old;
	struct kfs_ev e = { .action = "unlock" };
	int r;

	if (f)
		o.factor = *f;
	pthread_mutex_lock(&fs->state_lock);
	if (atomic_load(&fs->state) == KFS_ANOMALY) {
		pthread_mutex_unlock(&fs->state_lock);
		kerr_set(ei, fs->mountpoint, "locked after an anomaly (%s): an administrator must clear it first (kinko unlock --as ADMIN)",
			 fs->lock_why);
		e.err = -EACCES;
		e.reason = "anomaly";
		kfs_audit(fs, NULL, &e);
		return -EACCES;
	}
	if (atomic_load(&fs->state) == KFS_OPEN) {
		pthread_mutex_unlock(&fs->state_lock);
		return 0;
	}
	/* requests are denied while locked: nothing uses the ring or the policy */
	old = fs->v->ring;
	fs->v->ring = NULL;
	r = kvault_unlock(fs->v, fs->user, pw, pwlen, &o, ei);
	if (r == 0) {
		pthread_rwlock_wrlock(&fs->gate);
		copy_ring(old, fs->v->ring);
		fs->keys_wiped = false;
		atomic_store(&fs->last_access, mono_ms());
		atomic_store(&fs->state, KFS_OPEN);
		pthread_rwlock_unlock(&fs->gate);
	}
	kkeys_ring_free(fs->v->ring);
	fs->v->ring = old;
	ksecmem_stack_scrub(65536); /* Argon2 and key unwrapping ran on this thread */
	pthread_mutex_unlock(&fs->state_lock);
	e.err = r == 0 ? 0 : -EACCES;
	e.reason = r == KERR_PASSWORD ? "password" : r ? "unlock-failed" : NULL;
	kfs_audit(fs, NULL, &e);
	if (r == 0)
		log_notice("%s unlocked", fs->mountpoint);
	return r;
}

int kfs_clear_anomaly(struct kfs *fs, const char *admin, const char *pw, size_t pwlen,
		      const struct kkeys_factor_in *f, struct kerrinfo *ei)
{
	struct kvault *v2 = NULL;
	struct kvault_unlock_opts o = { .need_grants = false };
	struct kfs_ev e = { .action = "anomaly-clear" };
	struct kpolicy_user *pu;
	char detail[128];
	int r;

	if (f)
		o.factor = *f;
	if ((r = kvault_open(fs->v->path, &v2, ei)) == 0 &&
	    (r = kvault_unlock(v2, admin, pw, pwlen, &o, ei)) == 0) {
		pu = kpolicy_user_find(v2->policy, admin);
		if (!pu || pu->role != KROLE_ADMIN) {
			kerr_set(ei, fs->mountpoint, "'%s' is not an administrator", admin);
			r = -EACCES;
		}
	}
	kvault_close(v2);
	ksecmem_stack_scrub(65536);
	snprintf(detail, sizeof(detail), "{\"admin\":\"%s\"}", kuser_id_valid(admin) ? admin : "?");
	e.detail = detail;
	e.err = r ? -EACCES : 0;
	e.reason = r ? "permission" : NULL;
	if (r == 0 && atomic_load(&fs->state) != KFS_ANOMALY) {
		kerr_set(ei, fs->mountpoint, "not locked after an anomaly (nothing for an administrator to clear)");
		return KERR_USAGE;
	}
	if (r == 0) {
		if (kvault_state_anomaly(fs->v->hdr.vault_id, fs->user, fs->unlock_gen, -1, NULL, 0) != 0)
			log_err("could not clear the recorded anomaly lock of %s", fs->user);
		pthread_mutex_lock(&fs->state_lock);
		if (atomic_load(&fs->state) == KFS_ANOMALY)
			atomic_store(&fs->state, KFS_LOCKED);
		pthread_mutex_lock(&fs->an_lock);
		fs->anomaly_pending = false;
		win_init(&fs->an_files, fs->set.an_files_window, fs->set.an_files_limit);
		win_init(&fs->an_read, fs->set.an_read_window, fs->set.an_read_mib_limit);
		win_init(&fs->an_denials, fs->set.an_denials_window, fs->set.an_denials_limit);
		free(fs->seen);
		fs->seen = NULL;
		fs->seen_cap = fs->seen_n = 0;
		pthread_mutex_unlock(&fs->an_lock);
		snprintf(fs->lock_why, sizeof(fs->lock_why), "anomaly cleared by %s; password needed", admin);
		pthread_mutex_unlock(&fs->state_lock);
	}
	kfs_audit(fs, NULL, &e);
	return r;
}

/* ---- alerts ---- */

static void alert(struct kfs *fs, const char *why)
{
	char host[65], machine[33], ts[32], json[1024];
	int64_t ms = kaudit_now_ms(NULL);

	kaudit_host(host, machine);
	kaudit_time_str(ts, ms);
	/* the lock outlives this mount: a new mount on this workstation is refused
	 * until an administrator clears it */
	if (kvault_state_anomaly(fs->v->hdr.vault_id, fs->user, fs->unlock_gen, 1, (char *)why, 0) != 0)
		log_err("could not record the anomaly lock of %s on this workstation", fs->user);
	{
		json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:s}", "event", "anomaly-lock",
				      "time", ts, "user", fs->user, "host", host, "machine_id", machine,
				      "mountpoint", fs->mountpoint, "vault", fs->v->path, "daemon_pid",
				      (int)getpid(), "reason", why);
		char *t = j ? json_dumps(j, JSON_COMPACT) : NULL;

		snprintf(json, sizeof(json), "%s\n", t ? t : "{}");
		free(t);
		json_decref(j);
	}
	syslog(LOG_AUTHPRIV | LOG_ALERT, "kinko: anomaly: user %s on %s locked: %s", fs->user, host,
	       why);
	if (fs->alert_command)
		krun_alert_hook(fs->alert_command, json);
}

/* ---- the timer thread: idle lock and pending anomaly locks ---- */

static void *timer_main(void *arg)
{
	struct kfs *fs = arg;

	pthread_mutex_lock(&fs->state_lock);
	while (!fs->timer_stop) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 250 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&fs->timer_cv, &fs->state_lock, &ts);
		if (fs->timer_stop)
			break;
		pthread_mutex_lock(&fs->an_lock);
		if (fs->anomaly_pending) {
			char why[160];

			fs->anomaly_pending = false;
			snprintf(why, sizeof(why), "%s", fs->anomaly_why);
			/* requests are refused already (anomaly() set the state): the
			 * status shows why from now on, not only once do_lock is done */
			snprintf(fs->lock_why, sizeof(fs->lock_why), "%s", why);
			pthread_mutex_unlock(&fs->an_lock);
			pthread_mutex_unlock(&fs->state_lock);
			do_lock(fs, KFS_ANOMALY, why);
			alert(fs, why);
			pthread_mutex_lock(&fs->state_lock);
			continue;
		}
		pthread_mutex_unlock(&fs->an_lock);
		/* a take-out vault: its period ends while mounted (an unlock is then
		 * refused by kvault_unlock's period check) */
		if (fs->takeout_until && atomic_load(&fs->state) == KFS_OPEN &&
		    ktime_now() >= fs->takeout_until) {
			pthread_mutex_unlock(&fs->state_lock);
			do_lock(fs, KFS_LOCKED, "take-out period ended");
			pthread_mutex_lock(&fs->state_lock);
			continue;
		}
		if (atomic_load(&fs->state) == KFS_OPEN &&
		    mono_ms() - atomic_load(&fs->last_access) >= (int64_t)fs->set.idle_lock * 1000) {
			char why[64];

			snprintf(why, sizeof(why), "idle for %d s", fs->set.idle_lock);
			pthread_mutex_unlock(&fs->state_lock);
			do_lock(fs, KFS_LOCKED, why);
			pthread_mutex_lock(&fs->state_lock);
		}
	}
	pthread_mutex_unlock(&fs->state_lock);
	return NULL;
}

int kfs_start(struct kfs *fs, struct fuse_session *se, struct kaudit *audit, const char *mountpoint)
{
	struct ktakeout_info ti;

	fs->se = se;
	fs->audit = audit;
	snprintf(fs->mountpoint, sizeof(fs->mountpoint), "%s", mountpoint);
	if (fs->v->policy && kpolicy_takeout(fs->v->policy, &ti) == 1)
		fs->takeout_until = ti.until;
	atomic_store(&fs->last_access, mono_ms());
	if (pthread_create(&fs->timer, NULL, timer_main, fs) != 0)
		return -EAGAIN;
	fs->timer_running = true;
	return 0;
}

void kfs_stop(struct kfs *fs)
{
	if (!fs || !fs->timer_running)
		return;
	pthread_mutex_lock(&fs->state_lock);
	fs->timer_stop = true;
	pthread_cond_signal(&fs->timer_cv);
	pthread_mutex_unlock(&fs->state_lock);
	pthread_join(fs->timer, NULL);
	fs->timer_running = false;
}

void kfs_session_init(struct kfs *fs)
{
	pthread_rwlockattr_t ra;

	pthread_rwlockattr_init(&ra);
	/* a lock waiting for the gate must not starve behind a stream of requests */
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&fs->gate, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_mutex_init(&fs->state_lock, NULL);
	pthread_mutex_init(&fs->an_lock, NULL);
	pthread_mutex_init(&fs->comm_lock, NULL);
	pthread_cond_init(&fs->timer_cv, NULL);
	kpolicy_settings_get(fs->v->policy, &fs->set);
	fs->alert_command = fs->set.alert_command ? strdup(fs->set.alert_command) : NULL;
	fs->set.alert_command = NULL; /* points into the policy, which unlock replaces */
	snprintf(fs->user, sizeof(fs->user), "%s", fs->v->user ? fs->v->user->id : "");
	{
		struct kpolicy_user *pu = kpolicy_user_find(fs->v->policy, fs->user);

		fs->unlock_gen = pu ? pu->unlock_gen : 0;
	}
	win_init(&fs->an_files, fs->set.an_files_window, fs->set.an_files_limit);
	win_init(&fs->an_read, fs->set.an_read_window, fs->set.an_read_mib_limit);
	win_init(&fs->an_denials, fs->set.an_denials_window, fs->set.an_denials_limit);
	atomic_store(&fs->state, KFS_OPEN);
}

void kfs_session_free(struct kfs *fs)
{
	kfs_stop(fs);
	free(fs->alert_command);
	free(fs->seen);
	pthread_rwlock_destroy(&fs->gate);
	pthread_mutex_destroy(&fs->state_lock);
	pthread_mutex_destroy(&fs->an_lock);
	pthread_mutex_destroy(&fs->comm_lock);
	pthread_cond_destroy(&fs->timer_cv);
}

void kfs_status(struct kfs *fs, struct kfs_status *st)
{
	int64_t idle = mono_ms() - atomic_load(&fs->last_access);

	memset(st, 0, sizeof(st[0]));
	pthread_mutex_lock(&fs->state_lock);
	st->state = atomic_load(&fs->state);
	snprintf(st->why, sizeof(st->why), "%s", st->state == KFS_OPEN ? "" : fs->lock_why);
	/* a request raised an anomaly (and is refused already) but the timer
	 * thread has not finished the lock yet: its reason, not a stale one */
	pthread_mutex_lock(&fs->an_lock);
	if (st->state == KFS_ANOMALY && fs->anomaly_pending)
		snprintf(st->why, sizeof(st->why), "%s", fs->anomaly_why);
	pthread_mutex_unlock(&fs->an_lock);
	pthread_mutex_unlock(&fs->state_lock);
	st->idle_lock = fs->set.idle_lock;
	st->idle_left = st->state == KFS_OPEN ? fs->set.idle_lock - (int)(idle / 1000) : 0;
	if (st->idle_left < 0)
		st->idle_left = 0;
	st->audit_ok = !fs->audit || kaudit_ok(fs->audit);
	kaudit_health(fs->audit, st->audit_why, sizeof(st->audit_why));
	if (!fs->audit)
		snprintf(st->audit_why, sizeof(st->audit_why), "off");
	st->integrity_errors = atomic_load(&fs->integrity_errors);
	st->io_uring = kfs_uring_active(fs);
	snprintf(st->user, sizeof(st->user), "%s", fs->user);
}

/* ---- the raw channel: FUSE_HANDLE_KILLPRIV_V2 ----
 *
 * Without it the kernel asks the file system for "security.capability"
 * (GETXATTR) before every write(2) through the page cache, to learn whether
 * a file capability must be removed: one extra round trip per write, which
 * kinko answers "not supported" (it keeps no security.* attributes). With
 * HANDLE_KILLPRIV_V2 the superblock is SB_NOSEC and the kernel asks once per
 * inode (again after each attribute refresh); in exchange the file system
 * itself removes set-user-ID and set-group-ID (with group execute) on a
 * write, a truncate or an O_TRUNC open by a caller without CAP_FSETID, which
 * the kernel marks in the request (kfs_kill_suidgid below).
 *
 * libfuse 3.14 neither negotiates the flag nor passes the per-request marks
 * on, so kinko reads and writes /dev/fuse through these hooks: the INIT
 * reply gets the flag when the kernel offered it, and each request's mark is
 * noted for the worker thread that reads it (libfuse processes a request in
 * the thread that read it). */

static _Thread_local bool req_kill;

bool kfs_kill_suidgid(struct kfs *fs)
{
	/* the kernel marks direct-I/O writes whether or not it runs with
	 * HANDLE_KILLPRIV_V2, and other requests only when it does */
	(void)fs;
	return req_kill;
}

void kfs_killed_suidgid(struct kfs *fs, struct kinode *in)
{
	/* the kernel caches the mode and refreshes it only when told: attributes
	 * only (offset -1), no page is touched, so this is safe inside a request */
	if (fs->se)
		fuse_lowlevel_notify_inval_inode(fs->se, (fuse_ino_t)(uintptr_t)in, -1, 0);
}

/* FUSE_OVER_IO_URING (1ULL << 41): newer than this system's <linux/fuse.h> */
#define KFS_FUSE_OVER_IO_URING (UINT64_C(1) << 41)

void kfs_note_request(struct kfs *fs, const void *buf, size_t n)
{
	struct fuse_in_header h;
	const char *arg = (const char *)buf + sizeof(h);
	size_t alen;

	req_kill = false;
	if (n < sizeof(h))
		return;
	memcpy(&h, buf, sizeof(h));
	alen = n - sizeof(h);
	switch (h.opcode) {
	case FUSE_INIT: {
		struct fuse_init_in in;
		uint64_t flags;

		if (alen < offsetof(struct fuse_init_in, flags2))
			break;
		memset(&in, 0, sizeof(in));
		memcpy(&in, arg, alen < sizeof(in) ? alen : sizeof(in));
		flags = in.flags;
		if ((flags & FUSE_INIT_EXT) && alen >= offsetof(struct fuse_init_in, flags2) + 4)
			flags |= (uint64_t)in.flags2 << 32;
		fs->init_killpriv = in.major == 7 && in.minor >= 33 && (flags & FUSE_HANDLE_KILLPRIV_V2) &&
				    !getenv("KINKO_NO_KILLPRIV_V2");
		fs->init_uring = in.major == 7 && (flags & KFS_FUSE_OVER_IO_URING) && !fs->opt.no_io_uring;
		if (fs->init_killpriv || fs->init_uring)
			atomic_store(&fs->init_unique, h.unique);
		break;
	}
	case FUSE_WRITE: {
		struct fuse_write_in w;

		if (alen >= sizeof(w)) {
			memcpy(&w, arg, sizeof(w));
			req_kill = (w.write_flags & FUSE_WRITE_KILL_SUIDGID) != 0;
		}
		break;
	}
	case FUSE_OPEN: {
		struct fuse_open_in o;

		if (alen >= sizeof(o)) {
			memcpy(&o, arg, sizeof(o));
			req_kill = (o.open_flags & FUSE_OPEN_KILL_SUIDGID) != 0;
		}
		break;
	}
	case FUSE_CREATE: {
		struct fuse_create_in c;

		if (alen >= sizeof(c)) {
			memcpy(&c, arg, sizeof(c));
			req_kill = (c.open_flags & FUSE_OPEN_KILL_SUIDGID) != 0;
		}
		break;
	}
	case FUSE_SETATTR: {
		struct fuse_setattr_in a;

		if (alen >= sizeof(a)) {
			memcpy(&a, arg, sizeof(a));
			req_kill = (a.valid & FATTR_KILL_SUIDGID) != 0;
		}
		break;
	}
	default:
		break;
	}
}

static ssize_t raw_read(int fd, void *buf, size_t len, void *userdata)
{
	ssize_t n = read(fd, buf, len);

	if (n >= 0)
		kfs_note_request(userdata, buf, (size_t)n);
	else
		req_kill = false;
	return n;
}

/* add what kinko negotiates to libfuse's INIT reply; returns the payload
 * size the io_uring buffers need when it asks for io_uring, else 0 */
static size_t init_reply(struct kfs *fs, char *out, size_t len)
{
	uint32_t f, f2, max_write;
	uint16_t max_pages;
	size_t need;

	memcpy(&f, out + offsetof(struct fuse_init_out, flags), sizeof(f));
	if (fs->init_killpriv) {
		f |= FUSE_HANDLE_KILLPRIV_V2;
		fs->killpriv_v2 = true;
	}
	need = offsetof(struct fuse_init_out, flags2) + sizeof(f2);
	if (fs->init_uring && len >= need) {
		memcpy(&f2, out + offsetof(struct fuse_init_out, flags2), sizeof(f2));
		memcpy(&max_write, out + offsetof(struct fuse_init_out, max_write), sizeof(max_write));
		memcpy(&max_pages, out + offsetof(struct fuse_init_out, max_pages), sizeof(max_pages));
		/* the kernel's ring payload: max(8 KiB, max_write, max_pages pages) */
		need = max_write > 8192 ? max_write : 8192;
		if (!(f & FUSE_MAX_PAGES))
			max_pages = 0;
		if ((size_t)max_pages * (size_t)getpagesize() > need)
			need = (size_t)max_pages * (size_t)getpagesize();
		/* ask only when every worker is ready: once asked, the kernel holds
		 * all requests until each CPU's queue has a registered entry */
		if (kfs_uring_setup(fs, need) == 0) {
			f |= FUSE_INIT_EXT;
			f2 |= (uint32_t)(KFS_FUSE_OVER_IO_URING >> 32);
			memcpy(out + offsetof(struct fuse_init_out, flags2), &f2, sizeof(f2));
			memcpy(out + offsetof(struct fuse_init_out, flags), &f, sizeof(f));
			return need;
		}
	}
	memcpy(out + offsetof(struct fuse_init_out, flags), &f, sizeof(f));
	return 0;
}

static ssize_t raw_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	struct kfs *fs = userdata;
	uint64_t init = atomic_load_explicit(&fs->init_unique, memory_order_relaxed);
	size_t uring_payload = 0;
	ssize_t r;

	if (init && count >= 2 && iov[0].iov_len >= sizeof(struct fuse_out_header) &&
	    iov[1].iov_len >= offsetof(struct fuse_init_out, flags) + sizeof(uint32_t)) {
		struct fuse_out_header oh;

		memcpy(&oh, iov[0].iov_base, sizeof(oh));
		if (oh.unique == init) {
			atomic_store(&fs->init_unique, 0);
			if (oh.error == 0)
				uring_payload = init_reply(fs, iov[1].iov_base, iov[1].iov_len);
		}
	} else if (fs->uring && kfs_uring_reply(fs, iov, count, &r)) {
		return r;
	}
	r = writev(fd, iov, count);
	if (uring_payload && r > 0)
		kfs_uring_go(fs);
	return r;
}

int kfs_notify_new_epoch(struct kfs *fs)
{
	/* FUSE_NOTIFY_INC_EPOCH = 8: newer than this system's <linux/fuse.h> */
	struct fuse_out_header oh = { .len = sizeof(oh), .error = 8, .unique = 0 };

	if (fs->proto_minor < 44 || !fs->se || getenv("KINKO_NO_EPOCH"))
		return -ENOSYS;
	return write(fuse_session_fd(fs->se), &oh, sizeof(oh)) == (ssize_t)sizeof(oh) ? 0 : -errno;
}

int kfs_raw_channel(struct kfs *fs, struct fuse_session *se)
{
	static const struct fuse_custom_io io = { .read = raw_read, .writev = raw_writev };
	int fd = fuse_session_fd(se);

	if (fd < 0)
		return -EBADF;
	(void)fs; /* the hooks receive the session's userdata, which is fs */
	return fuse_session_custom_io(se, &io, fd);
}

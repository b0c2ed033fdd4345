// SPDX-License-Identifier: GPL-2.0-or-later
/* The audit log writer: a queue filled by FUSE threads and CLI commands, one
 * writer thread that encrypts, chains and appends a batch every
 * KAUDIT_BATCH_MS, then replaces the head file. If a write fails the log is
 * "unhealthy" (callers deny access), the batch is kept and retried, so nothing
 * queued before the failure is lost while the process lives. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/timex.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "audit_i.h"
#include "kinko_config.h"

/* one queued entry: fixed fields and the strings packed behind it (one
 * allocation on the request path; the writer thread formats the JSON) */
struct kaudit_ev {
	struct kaudit_ev *next;
	int64_t ms;
	bool synced, has_bytes;
	int err;
	uint32_t uid;
	int32_t pid;
	uint64_t rd, wr;
	/* offsets into str[], 0xffff = absent */
	uint16_t user, comm, action, path, path2, detail, reason;
	char str[];
};

struct kaudit {
	int vfd;
	uint8_t vault_id[KFORMAT_ID_BYTES];
	char host[65], machine[33], user[KFORMAT_USERID_MAX + 1], kind[16];
	size_t nrecip;
	struct kaudit_recip *recip;

	/* segment state: writer thread (and open/close) only */
	struct kaudit_seg seg;

	pthread_mutex_t mu;
	pthread_cond_t cv, done_cv;
	struct kaudit_ev *qhead, **qtail;
	size_t qlen;
	uint64_t queued, written; /* entries queued / on disk, for flush */
	bool stop, started;
	pthread_t th;
	int health;              /* 0 or the last write error */
	_Atomic int health_fast; /* copy of health for the request path */
	char why[256];
	int64_t last_checkpoint;
};

static const char evolve_ctx[] = "kinko-audit-evolve";

int kaudit_evolve(uint8_t k[32])
{
	uint8_t n[32];
	/* raw: callers scrub the stack once per batch (kaudit_* run per entry) */
	int r = kcrypto_hash_raw(n, 32, k, 32, (const uint8_t *)evolve_ctx, sizeof(evolve_ctx) - 1);

	memcpy(k, n, 32);
	ksecmem_wipe(n, sizeof(n));
	return r;
}

int kaudit_entry_mac(uint8_t mac[32], const uint8_t k[32], const uint8_t sid[16], uint64_t seq,
		     const uint8_t *ct, size_t ctlen)
{
	uint8_t *buf = malloc(24 + ctlen);
	int r;

	if (!buf)
		return -ENOMEM;
	memcpy(buf, sid, 16);
	kput_le64(buf + 16, seq);
	memcpy(buf + 24, ct, ctlen);
	r = kcrypto_hash_raw(mac, 32, k, 32, buf, 24 + ctlen);
	free(buf);
	return r;
}

void kaudit_nonce(uint8_t nonce[24], uint8_t ad[24], const uint8_t sid[16], uint64_t seq)
{
	memset(nonce, 0, 24);
	kput_le64(nonce, seq);
	memcpy(ad, sid, 16);
	kput_le64(ad + 16, seq);
}

int kaudit_head_mac(uint8_t mac[32], const uint8_t k[32], const uint8_t *head, size_t len)
{
	return kcrypto_hash(mac, 32, k, 32, head, len);
}

/* ---- workstation identity and time ---- */

void kaudit_host(char host[65], char machine[33])
{
	char h[256] = "";
	size_t j = 0;
	FILE *f;

	if (gethostname(h, sizeof(h) - 1) != 0 || !h[0])
		strcpy(h, "localhost");
	for (size_t i = 0; h[i] && j < 64; i++) {
		char c = h[i];

		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  c == '-' || c == '_' || (c == '.' && j > 0);

		host[j++] = ok ? c : '_';
	}
	host[j] = 0;
	strcpy(machine, "unknown");
	if ((f = fopen("/etc/machine-id", "r"))) {
		char m[64];

		if (fgets(m, sizeof(m), f) && strlen(m) >= 32) {
			bool hex = true;

			for (int i = 0; i < 32; i++)
				hex &= (m[i] >= '0' && m[i] <= '9') || (m[i] >= 'a' && m[i] <= 'f');
			if (hex) {
				memcpy(machine, m, 32);
				machine[32] = 0;
			}
		}
		fclose(f);
	}
}

int64_t kaudit_now_ms(bool *synced)
{
	static _Atomic int64_t checked_at;
	static _Atomic int sync_state;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	if (synced) {
		int64_t now = ts.tv_sec;

		/* the kernel's view of synchronisation, asked at most once a second */
		if (atomic_load(&checked_at) != now) {
			struct timex tx;
			int st;

			memset(&tx, 0, sizeof(tx));
			st = adjtimex(&tx);
			atomic_store(&sync_state, st >= 0 && st != TIME_ERROR && !(tx.status & STA_UNSYNC));
			atomic_store(&checked_at, now);
		}
		*synced = atomic_load(&sync_state);
	}
#if KINKO_TEST_BUILD
	if (getenv("KINKO_TEST_NOW") && *getenv("KINKO_TEST_NOW"))
		return ktime_now() * 1000;
#endif
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void kaudit_time_str(char out[32], int64_t ms)
{
	char s[24];

	ktime_iso(s, sizeof(s), ms / 1000);
	s[19] = 0; /* drop the Z */
	snprintf(out, 32, "%s.%03dZ", s, (int)(ms % 1000));
}

/* ---- segments ---- */

static void seg_wipe(struct kaudit_seg *s)
{
	ksecmem_free(s->keys);
	s->keys = NULL;
}

/* create a new segment file with its header and head; s->keys = E || k (k0 evolved to k1) */
static int seg_start(struct kaudit *a, int64_t now_ms, struct kerrinfo *ei)
{
	struct kaudit_seg *s = &a->seg;
	struct kbuf b;
	char tm[32], dir[128], rnd[9];
	uint8_t sid[16], tag[32], *keys;
	time_t t = (time_t)(now_ms / 1000);
	struct tm g;
	int r;

	gmtime_r(&t, &g);
	kcrypto_random(sid, sizeof(sid));
	if (!(keys = ksecmem_alloc(64)))
		return -ENOMEM;
	kcrypto_random(keys, 64); /* E, k0 */
	strftime(tm, sizeof(tm), "%Y%m%dT%H%M%SZ", &g);
	strftime(s->month, sizeof(s->month), "%Y-%m", &g);
	khex_encode(rnd, sid, 4);
	snprintf(dir, sizeof(dir), "audit/%s/%s", a->host, s->month);
	snprintf(s->rel, sizeof(s->rel), "%s/%s-%s.kal", dir, tm, rnd);
	snprintf(s->headrel, sizeof(s->headrel), "%s/%s-%s.kal.head", dir, tm, rnd);

	kbuf_init_writer(&b);
	kbuf_put_raw(&b, KAUDIT_MAGIC, 4);
	kbuf_put_u32(&b, 0); /* header length, patched below */
	kbuf_put_raw(&b, a->vault_id, 16);
	kbuf_put_raw(&b, sid, 16);
	kbuf_put_u64(&b, (uint64_t)now_ms);
	if (kbuf_put_str8(&b, a->host) || kbuf_put_str8(&b, a->machine) || kbuf_put_str8(&b, a->user) ||
	    kbuf_put_str8(&b, a->kind) || kbuf_put_u8(&b, (uint8_t)a->nrecip)) {
		r = KERR_USAGE;
		goto fail;
	}
	for (size_t i = 0; i < a->nrecip; i++) {
		uint8_t sealed[64 + KCRYPTO_SEALBYTES];

		if ((r = kcrypto_seal(sealed, keys, 64, a->recip[i].pk)) != 0)
			goto fail;
		kbuf_put_str8(&b, a->recip[i].id);
		kbuf_put_raw(&b, sealed, sizeof(sealed));
	}
	if (!b.p) {
		r = -ENOMEM;
		goto fail;
	}
	kput_le32(b.p + 4, (uint32_t)(b.len + 32));
	if ((r = kcrypto_hash(tag, 32, keys + 32, 32, b.p, b.len)) != 0)
		goto fail;
	kbuf_put_raw(&b, tag, 32);
	if (!b.p) {
		r = -ENOMEM;
		goto fail;
	}
	if ((r = kmkdirs_at(a->vfd, dir, 0700)) != 0 ||
	    (r = kfile_create_at(a->vfd, s->rel, b.p, b.len, 0600)) != 0) {
		kerr_set(ei, s->rel, "cannot create the audit log segment: %s", strerror(-r));
		goto fail;
	}
	kbuf_free(&b);
	r = kaudit_evolve(keys + 32);
	ksecmem_stack_scrub(4096);
	if (r != 0)
		goto fail_nobuf;
	seg_wipe(s);
	s->keys = keys;
	memcpy(s->sid, sid, 16);
	memcpy(s->last_tag, tag, 32);
	s->seq = 0;
	s->head_dirty = true;
	return 0;
fail:
	kbuf_free(&b);
fail_nobuf:
	ksecmem_free(keys);
	return r;
}

/* head: magic, session id, count, last tag, closed, MAC under k[count+1] */
static int seg_write_head(struct kaudit *a, bool closed)
{
	struct kaudit_seg *s = &a->seg;
	uint8_t h[KAUDIT_HEAD_LEN];
	int r;

	memcpy(h, KAUDIT_HEAD_MAGIC, 4);
	memcpy(h + 4, s->sid, 16);
	kput_le64(h + 20, s->seq);
	memcpy(h + 28, s->last_tag, 32);
	h[60] = closed;
	if ((r = kaudit_head_mac(h + 61, s->keys + 32, h, 61)) != 0)
		return r;
	if ((r = kfile_replace_at(a->vfd, s->headrel, h, sizeof(h), 0600)) != 0)
		return r;
	s->head_dirty = false;
	return 0;
}

/* length of the valid UTF-8 sequence at s (1..4), or 0 */
static size_t utf8_len(const unsigned char *s)
{
	size_t n;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

/* a JSON string; bytes that are not UTF-8 (a Shift-JIS name, say) become the
 * text \xNN so the entry stays valid JSON and the name stays recognisable */
static void put_esc(struct kbuf *b, const char *s)
{
	static const char hx[] = "0123456789abcdef";

	kbuf_put_u8(b, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		size_t u;

		if (c >= 0x80) {
			u = utf8_len((const unsigned char *)s);
			if (u) {
				kbuf_put_raw(b, s, u);
				s += u - 1;
			} else {
				char x[6] = { '\\', '\\', 'x', hx[c >> 4], hx[c & 15], 0 };

				kbuf_put_raw(b, x, 5);
			}
			continue;
		}
		if (c == '"' || c == '\\') {
			kbuf_put_u8(b, '\\');
			kbuf_put_u8(b, c);
		} else if (c < 0x20 || c == 0x7f) {
			char esc[6] = { '\\', 'u', '0', '0', hx[c >> 4], hx[c & 15] };

			kbuf_put_raw(b, esc, 6);
		} else {
			kbuf_put_u8(b, c);
		}
	}
	kbuf_put_u8(b, '"');
}

static void put_key(struct kbuf *b, const char *k)
{
	kbuf_put_u8(b, ',');
	put_esc(b, k);
	kbuf_put_u8(b, ':');
}

static void put_field(struct kbuf *b, const struct kaudit_ev *e, const char *k, uint16_t off)
{
	if (off == 0xffff)
		return;
	put_key(b, k);
	put_esc(b, e->str + off);
}

static void put_num(struct kbuf *b, const char *k, long long v)
{
	char n[32];

	put_key(b, k);
	snprintf(n, sizeof(n), "%lld", v);
	kbuf_put_raw(b, n, strlen(n));
}

/* the entry as a JSON object (malloc'd, NUL-terminated); strings are escaped,
 * detail is a JSON object text of our own whose members are spliced in */
static char *ev_json(const struct kaudit_ev *e)
{
	struct kbuf b;
	char ts[32];
	char *out;

	kbuf_init_writer(&b);
	kaudit_time_str(ts, e->ms);
	kbuf_put_raw(&b, "{\"time\":", 8);
	put_esc(&b, ts);
	put_key(&b, "clock_synced");
	kbuf_put_raw(&b, e->synced ? "true" : "false", e->synced ? 4 : 5);
	put_field(&b, e, "user", e->user);
	put_num(&b, "uid", e->uid);
	put_num(&b, "pid", e->pid);
	put_field(&b, e, "comm", e->comm);
	put_field(&b, e, "action", e->action);
	put_field(&b, e, "path", e->path);
	put_field(&b, e, "path2", e->path2);
	if (e->has_bytes) {
		put_num(&b, "bytes_read", (long long)e->rd);
		put_num(&b, "bytes_written", (long long)e->wr);
	}
	put_key(&b, "result");
	put_esc(&b, e->err == 0 ? "ok" : e->reason != 0xffff ? "denied" : "error");
	if (e->err) {
		const char *name = strerrorname_np(-e->err);

		put_field(&b, e, "reason", e->reason);
		put_key(&b, "error");
		put_esc(&b, name ? name : "EIO");
	}
	if (e->detail != 0xffff) {
		const char *d = e->str + e->detail;
		size_t n = strlen(d);

		if (n > 2 && d[0] == '{' && d[n - 1] == '}') {
			kbuf_put_u8(&b, ',');
			kbuf_put_raw(&b, d + 1, n - 2);
		} else {
			put_field(&b, e, "detail", e->detail);
		}
	}
	kbuf_put_raw(&b, "}", 2); /* with the NUL */
	if (!b.p)
		return NULL;
	out = strdup((char *)b.p);
	kbuf_free(&b);
	return out;
}

/* encrypt + chain entries into b with a copy of the chain key; *last = tag */
static int seg_encode(struct kaudit *a, struct kaudit_ev *list, struct kbuf *b, uint8_t *k,
		      uint64_t *seq, uint8_t last[32])
{
	for (struct kaudit_ev *e = list; e; e = e->next) {
		char *txt = ev_json(e);
		size_t n = txt ? strlen(txt) : 0;
		uint8_t nonce[24], ad[24], *ct;
		int r;

		if (!txt)
			return -ENOMEM;
		if (n > KAUDIT_ENTRY_MAX) {
			/* never happens with bounded fields; keep framing bounded anyway */
			n = KAUDIT_ENTRY_MAX;
		}
		if (!(ct = malloc(n + KCRYPTO_TAGBYTES))) {
			free(txt);
			return -ENOMEM;
		}
		(*seq)++;
		kaudit_nonce(nonce, ad, a->seg.sid, *seq);
		r = kcrypto_aead_seal(KSUITE_XCHACHA20POLY1305, a->seg.keys, nonce, ad, 24,
				      (const uint8_t *)txt, n, ct, ct + n);
		free(txt);
		if (r == 0)
			r = kaudit_entry_mac(last, k, a->seg.sid, *seq, ct, n + KCRYPTO_TAGBYTES);
		if (r == 0)
			r = kaudit_evolve(k);
		if (r == 0) {
			kbuf_put_u32(b, (uint32_t)(n + KCRYPTO_TAGBYTES));
			kbuf_put_u64(b, *seq);
			kbuf_put_raw(b, ct, n + KCRYPTO_TAGBYTES);
			kbuf_put_raw(b, last, 32);
		}
		free(ct);
		if (r)
			return r;
	}
	return b->p ? 0 : -ENOMEM;
}

static int seg_append(struct kaudit *a, struct kaudit_ev *list)
{
	struct kaudit_seg *s = &a->seg;
	struct kbuf b;
	uint8_t *k = ksecmem_alloc(32), last[32];
	uint64_t seq = s->seq;
	struct stat st;
	int fd = -1, r;

	if (!k)
		return -ENOMEM;
	memcpy(k, s->keys + 32, 32);
	kbuf_init_writer(&b);
	if ((r = seg_encode(a, list, &b, k, &seq, last)) != 0)
		goto out;
	/* by path every time: a directory that became unwritable is noticed */
	fd = openat(a->vfd, s->rel, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if ((r = kwrite_all(fd, b.p, b.len)) != 0 || (fdatasync(fd) < 0 && (r = -errno))) {
		/* leave no partial batch behind */
		if (ftruncate(fd, st.st_size) < 0)
			log_warn("%s: cannot undo a partial audit write", s->rel);
		goto out;
	}
	/* committed: the old chain keys are gone */
	memcpy(s->keys + 32, k, 32);
	memcpy(s->last_tag, last, 32);
	s->seq = seq;
	s->head_dirty = true;
out:
	ksecmem_stack_scrub(4096); /* chain keys the hashes left in dead frames */
	if (fd >= 0)
		close(fd);
	kbuf_free(&b);
	ksecmem_free(k);
	return r;
}

static void checkpoint(struct kaudit *a, bool force)
{
	int64_t now = kaudit_now_ms(NULL);
	char vid[33], tag[33];

	if (!force && now - a->last_checkpoint < 60000)
		return;
	a->last_checkpoint = now;
	khex_encode(vid, a->vault_id, 16);
	khex_encode(tag, a->seg.last_tag, 16);
	syslog(LOG_AUTHPRIV | LOG_NOTICE,
	       "kinko-audit checkpoint vault=%s seg=%s entries=%llu tag=%s", vid,
	       a->seg.rel + 6, (unsigned long long)a->seg.seq, tag);
}

/* ---- queue and writer thread ---- */

static void ev_free_list(struct kaudit_ev *e)
{
	while (e) {
		struct kaudit_ev *n = e->next;

		free(e);
		e = n;
	}
}

static size_t list_len(struct kaudit_ev *e)
{
	size_t n = 0;

	for (; e; e = e->next)
		n++;
	return n;
}

static int write_pending(struct kaudit *a, struct kaudit_ev **pending)
{
	int r = 0;
	size_t n = list_len(*pending);

	if (*pending) {
		char month[8];
		time_t t = (time_t)(kaudit_now_ms(NULL) / 1000);
		struct tm g;

		gmtime_r(&t, &g);
		strftime(month, sizeof(month), "%Y-%m", &g);
		if (strcmp(month, a->seg.month) != 0) {
			/* a new month: close this segment, start the next */
			if ((r = seg_write_head(a, true)) != 0 ||
			    (r = seg_start(a, kaudit_now_ms(NULL), NULL)) != 0)
				return r;
		}
		if ((r = seg_append(a, *pending)) != 0)
			return r;
		ev_free_list(*pending);
		*pending = NULL;
	}
	if (a->seg.head_dirty && (r = seg_write_head(a, false)) != 0)
		return r;
	pthread_mutex_lock(&a->mu);
	a->written += n;
	pthread_cond_broadcast(&a->done_cv);
	pthread_mutex_unlock(&a->mu);
	return 0;
}

static void set_health(struct kaudit *a, int r)
{
	pthread_mutex_lock(&a->mu);
	if (r && !a->health)
		log_err("audit log %s cannot be written (%s): denying access until it can",
			a->seg.rel, strerror(-r));
	if (!r && a->health)
		log_notice("audit log %s is written again", a->seg.rel);
	a->health = r;
	atomic_store(&a->health_fast, r);
	if (r)
		snprintf(a->why, sizeof(a->why), "audit log %s cannot be written: %s", a->seg.rel,
			 r > -1000 ? strerror(-r) : kinko_strerror(r));
	pthread_cond_broadcast(&a->done_cv);
	pthread_mutex_unlock(&a->mu);
}

static void *writer(void *arg)
{
	struct kaudit *a = arg;
	struct kaudit_ev *pending = NULL, **ptail = &pending;
	bool stop = false;

	while (!stop) {
		struct timespec ts;
		int r;

		pthread_mutex_lock(&a->mu);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (a->health ? 500 : KAUDIT_BATCH_MS) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (!a->stop)
			pthread_cond_timedwait(&a->cv, &a->mu, &ts);
		stop = a->stop;
		if (a->qhead) {
			*ptail = a->qhead;
			ptail = a->qtail;
			a->qhead = NULL;
			a->qtail = &a->qhead;
			a->qlen = 0;
		}
		pthread_mutex_unlock(&a->mu);
		if (!pending && !a->seg.head_dirty)
			continue;
		r = write_pending(a, &pending);
		if (!pending)
			ptail = &pending;
		set_health(a, r);
		if (r == 0)
			checkpoint(a, false);
		if (stop && r) {
			log_err("audit log %s: %zu entries could not be written", a->seg.rel,
				list_len(pending));
		}
	}
	ev_free_list(pending);
	return NULL;
}

static int recipients(struct kaudit *a, const struct kpolicy *p)
{
	int pass;

	for (pass = 0; pass < 2 && !a->nrecip; pass++) {
		int want = pass == 0 ? KROLE_AUDITOR : KROLE_ADMIN;

		for (size_t i = 0; i < p->nusers; i++)
			if (p->users[i].role == want && p->users[i].active)
				a->nrecip++;
		if (!a->nrecip)
			continue;
		if (!(a->recip = calloc(a->nrecip, sizeof(*a->recip))))
			return -ENOMEM;
		a->nrecip = 0;
		for (size_t i = 0; i < p->nusers && a->nrecip < 255; i++)
			if (p->users[i].role == want && p->users[i].active) {
				strcpy(a->recip[a->nrecip].id, p->users[i].id);
				memcpy(a->recip[a->nrecip].pk, p->users[i].box_pk, 32);
				a->nrecip++;
			}
	}
	return a->nrecip ? 0 : KERR_POLICY;
}

static void kaudit_free(struct kaudit *a)
{
	if (!a)
		return;
	seg_wipe(&a->seg);
	free(a->recip);
	ev_free_list(a->qhead);
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->cv);
	pthread_cond_destroy(&a->done_cv);
	free(a);
}

int kaudit_open(int vfd, const struct kpolicy *p, const char *user, const char *kind,
		struct kaudit **out, struct kerrinfo *ei)
{
	struct kaudit *a = calloc(1, sizeof(*a));
	int r;

	if (!a)
		return -ENOMEM;
	a->vfd = vfd;
	memcpy(a->vault_id, p->vault_id, 16);
	kaudit_host(a->host, a->machine);
	/* an empty field would not frame (str8 needs 1..255 bytes) */
	snprintf(a->user, sizeof(a->user), "%s", user && *user ? user : "-");
	snprintf(a->kind, sizeof(a->kind), "%s", kind);
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	pthread_cond_init(&a->done_cv, NULL);
	a->qtail = &a->qhead;
	if ((r = recipients(a, p)) != 0) {
		kerr_set(ei, "policy", "no auditor or admin to seal the audit log to");
		goto fail;
	}
	if ((r = seg_start(a, kaudit_now_ms(NULL), ei)) != 0)
		goto fail;
	if ((r = seg_write_head(a, false)) != 0) {
		kerr_set(ei, a->seg.headrel, "cannot write the audit log: %s", strerror(-r));
		goto fail;
	}
	if ((r = pthread_create(&a->th, NULL, writer, a)) != 0) {
		r = -r;
		goto fail;
	}
	a->started = true;
	*out = a;
	return 0;
fail:
	kaudit_free(a);
	return r;
}

void kaudit_log(struct kaudit *a, const struct kaudit_rec *r)
{
	const char *strs[7] = { r->user ? r->user : a ? a->user : "", r->comm, r->action, r->path,
				r->path2, r->detail, r->err ? r->reason : NULL };
	size_t len[7], total = 0, off = 0;
	uint16_t *offs[7];
	struct kaudit_ev *e;

	if (!a)
		return;
	for (int i = 0; i < 7; i++) {
		len[i] = strs[i] ? strnlen(strs[i], 8191) : 0;
		total += strs[i] ? len[i] + 1 : 0;
	}
	if (!(e = malloc(sizeof(*e) + total)))
		return;
	offs[0] = &e->user;
	offs[1] = &e->comm;
	offs[2] = &e->action;
	offs[3] = &e->path;
	offs[4] = &e->path2;
	offs[5] = &e->detail;
	offs[6] = &e->reason;
	for (int i = 0; i < 7; i++) {
		if (!strs[i]) {
			*offs[i] = 0xffff;
			continue;
		}
		*offs[i] = (uint16_t)off;
		memcpy(e->str + off, strs[i], len[i]);
		e->str[off + len[i]] = 0;
		off += len[i] + 1;
	}
	e->ms = kaudit_now_ms(&e->synced);
	e->err = r->err;
	e->uid = r->uid;
	e->pid = r->pid;
	e->has_bytes = r->has_bytes;
	e->rd = r->bytes_read;
	e->wr = r->bytes_written;
	e->next = NULL;
	pthread_mutex_lock(&a->mu);
	*a->qtail = e;
	a->qtail = &e->next;
	a->queued++;
	if (++a->qlen >= 4096)
		pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
}

int kaudit_flush(struct kaudit *a)
{
	int r;

	if (!a)
		return 0;
	pthread_mutex_lock(&a->mu);
	{
		uint64_t want = a->queued;

		pthread_cond_signal(&a->cv);
		while (a->written < want && !a->health)
			pthread_cond_wait(&a->done_cv, &a->mu);
	}
	r = a->health;
	pthread_mutex_unlock(&a->mu);
	return r;
}

bool kaudit_ok(struct kaudit *a) { return !a || atomic_load_explicit(&a->health_fast, memory_order_relaxed) == 0; }

int kaudit_health(struct kaudit *a, char *why, size_t n)
{
	int r;

	if (!a)
		return 0;
	pthread_mutex_lock(&a->mu);
	r = a->health;
	if (why && n)
		snprintf(why, n, "%s", r ? a->why : "ok");
	pthread_mutex_unlock(&a->mu);
	return r;
}

int kaudit_close(struct kaudit *a)
{
	int r = 0;

	if (!a)
		return 0;
	if (a->started) {
		struct kaudit_rec end = { .action = "session-end", .uid = (uint32_t)getuid(),
					  .pid = getpid(), .comm = "kinko" };

		kaudit_log(a, &end);
		pthread_mutex_lock(&a->mu);
		a->stop = true;
		pthread_cond_signal(&a->cv);
		pthread_mutex_unlock(&a->mu);
		pthread_join(a->th, NULL);
		r = a->health;
		if (r == 0 && (r = seg_write_head(a, true)) == 0)
			checkpoint(a, true);
	}
	kaudit_free(a);
	return r;
}

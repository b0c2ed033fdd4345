// SPDX-License-Identifier: GPL-2.0-or-later
/* The audit log reader: decrypts and verifies every segment for an auditor
 * and names every gap, reordering, edit, truncation and foreign segment with
 * the segment and entry number. Every length read from disk is bounded. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "audit_i.h"

struct anchor {
	char vault[33];
	char seg[192];
	uint64_t entries;
	uint8_t tag[16];
};

struct scan {
	int vfd;
	const struct kkeys_user *reader;
	const struct kaudit_scan_cb *cb;
	char vault_hex[33];
	struct anchor *anchors;
	size_t nanchors;
	int issues;
	const char *takeout;   /* the take-out whose log is being read, or NULL */
	size_t prefix;         /* strlen of "@takeout/ID/" in segment names, or 0 */
};

static void issue(struct scan *s, const char *seg, uint64_t seq, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void issue(struct scan *s, const char *seg, uint64_t seq, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	s->issues++;
	if (s->cb->issue)
		s->cb->issue(s->cb->ctx, seg, seq, msg);
}

static void note(struct scan *s, const char *seg, const char *what)
{
	if (s->cb->note)
		s->cb->note(s->cb->ctx, seg, what);
}

/* chain key for entry seq: k1 evolved seq-1 times (cached forward) */
struct chain {
	uint8_t *k1, *cur; /* secure memory, 32 each */
	uint64_t cur_seq;
};

static int chain_key(struct chain *c, uint64_t seq, uint8_t out[32])
{
	if (seq == 0)
		return KERR_FORMAT;
	if (seq < c->cur_seq) {
		memcpy(c->cur, c->k1, 32);
		c->cur_seq = 1;
	}
	if (seq - c->cur_seq > (1u << 26)) /* more entries than a segment can hold */
		return KERR_FORMAT;
	while (c->cur_seq < seq) {
		if (kaudit_evolve(c->cur) != 0)
			return KERR_CRYPTO;
		c->cur_seq++;
	}
	memcpy(out, c->cur, 32);
	return 0;
}

static int read_exact(int fd, void *buf, size_t n, off_t off)
{
	ssize_t r = kpread_full(fd, buf, n, off);

	if (r < 0)
		return (int)r;
	return (size_t)r == n ? 0 : 1; /* 1: short (end of file) */
}

struct seen {
	uint64_t *seq;
	size_t n, cap;
	uint8_t (*tags)[16]; /* by seq - 1, up to ntags */
	size_t ntags;
};

static int seen_add(struct seen *v, uint64_t seq, const uint8_t tag[32])
{
	if (v->n == v->cap) {
		size_t nc = v->cap ? v->cap * 2 : 256;
		uint64_t *p = realloc(v->seq, nc * sizeof(*p));

		if (!p)
			return -ENOMEM;
		v->seq = p;
		v->cap = nc;
	}
	v->seq[v->n++] = seq;
	if (seq > v->ntags) {
		size_t nt = v->ntags ? v->ntags : 256;
		void *p;

		while (nt < seq)
			nt *= 2;
		if (!(p = realloc(v->tags, nt * 16)))
			return -ENOMEM;
		v->tags = p;
		memset(v->tags + v->ntags, 0, (nt - v->ntags) * 16);
		v->ntags = nt;
	}
	memcpy(v->tags[seq - 1], tag, 16);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct hdr {
	uint8_t vault_id[16], sid[16];
	uint64_t start;
	char host[65], machine[65], user[KFORMAT_USERID_MAX + 1], kind[17];
	uint32_t len;
	uint8_t keys[64]; /* wiped by the caller */
	bool readable;
	char recips[512];
};

static int parse_header(struct scan *s, int fd, const char *seg, struct hdr *h, struct chain *c)
{
	uint8_t pre[8], *buf = NULL, tag[32];
	struct kbuf b;
	uint8_t n;
	int r;

	if ((r = read_exact(fd, pre, 8, 0)) != 0 || memcmp(pre, KAUDIT_MAGIC, 4) != 0) {
		issue(s, seg, 0, "not an audit segment (bad magic or empty file)");
		return KERR_FORMAT;
	}
	h->len = kget_le32(pre + 4);
	if (h->len < 8 + 16 + 16 + 8 + 4 + 1 + 32 || h->len > KAUDIT_HEADER_MAX ||
	    !(buf = malloc(h->len)) || read_exact(fd, buf, h->len, 0) != 0) {
		free(buf);
		issue(s, seg, 0, "segment header truncated or of impossible length");
		return KERR_FORMAT;
	}
	kbuf_init_reader(&b, buf + 8, h->len - 8 - 32);
	r = kbuf_get_raw(&b, h->vault_id, 16) ?: kbuf_get_raw(&b, h->sid, 16)
		?: kbuf_get_u64(&b, &h->start) ?: kbuf_get_str8(&b, h->host, 64)
		?: kbuf_get_str8(&b, h->machine, 64) ?: kbuf_get_str8(&b, h->user, KFORMAT_USERID_MAX)
		?: kbuf_get_str8(&b, h->kind, 16) ?: kbuf_get_u8(&b, &n);
	for (unsigned i = 0; r == 0 && i < n; i++) {
		char id[KFORMAT_USERID_MAX + 1];
		const uint8_t *sealed;

		r = kbuf_get_str8(&b, id, KFORMAT_USERID_MAX) ?: kbuf_get_ptr(&b, &sealed, 64 + KCRYPTO_SEALBYTES);
		if (r)
			break;
		if (strlen(h->recips) + strlen(id) + 3 < sizeof(h->recips))
			snprintf(h->recips + strlen(h->recips), sizeof(h->recips) - strlen(h->recips),
				 "%s%s", h->recips[0] ? ", " : "", id);
		if (!h->readable && strcmp(id, s->reader->id) == 0 &&
		    kcrypto_seal_open(h->keys, sealed, 64 + KCRYPTO_SEALBYTES, s->reader->box_pk,
				      s->reader->box_sk) == 0)
			h->readable = true;
	}
	if (r == 0)
		r = kbuf_expect_end(&b);
	if (r) {
		free(buf);
		issue(s, seg, 0, "segment header malformed");
		return KERR_FORMAT;
	}
	if (h->readable) {
		if (kcrypto_hash(tag, 32, h->keys + 32, 32, buf, h->len - 32) != 0 ||
		    !kcrypto_memeq(tag, buf + h->len - 32, 32)) {
			free(buf);
			issue(s, seg, 0, "segment header edited (MAC mismatch)");
			return KERR_AUTH;
		}
		memcpy(c->k1, h->keys + 32, 32);
		if (kaudit_evolve(c->k1) != 0) {
			free(buf);
			return KERR_CRYPTO;
		}
		memcpy(c->cur, c->k1, 32);
		c->cur_seq = 1;
	}
	free(buf);
	return 0;
}

static void emit(struct scan *s, const char *seg, const struct hdr *h, uint64_t seq,
		 const uint8_t *pt, size_t n)
{
	json_t *j = json_loadb((const char *)pt, n, 0, NULL);
	char *txt;

	if (!json_is_object(j)) {
		json_decref(j);
		issue(s, seg, seq, "not a JSON object");
		return;
	}
	json_object_set_new(j, "segment", json_string(seg));
	json_object_set_new(j, "seq", json_integer((json_int_t)seq));
	json_object_set_new(j, "host", json_string(h->host));
	json_object_set_new(j, "machine_id", json_string(h->machine));
	json_object_set_new(j, "session", json_string(h->kind));
	if (s->takeout)
		json_object_set_new(j, "takeout", json_string(s->takeout));
	txt = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(j);
	if (txt && s->cb->entry)
		s->cb->entry(s->cb->ctx, seg, seq, txt);
	free(txt);
}

static void check_head(struct scan *s, const char *seg, struct chain *c, uint64_t maxseq,
		       const struct hdr *h)
{
	char rel[256];
	uint8_t *buf = NULL, mac[32], k[32];
	size_t len = 0;
	uint64_t count;
	int r;

	snprintf(rel, sizeof(rel), "audit/%s.head", seg);
	r = kfile_read_at(s->vfd, rel, KAUDIT_HEAD_LEN, &buf, &len);
	if (r == -ENOENT) {
		issue(s, seg, 0, "head file missing (segment truncated or replaced?)");
		return;
	}
	if (r != 0 || len != KAUDIT_HEAD_LEN || memcmp(buf, KAUDIT_HEAD_MAGIC, 4) != 0 ||
	    memcmp(buf + 4, h->sid, 16) != 0) {
		free(buf);
		issue(s, seg, 0, "head file malformed or of another segment");
		return;
	}
	count = kget_le64(buf + 20);
	if (count > (1u << 26) || chain_key(c, count + 1, k) != 0 ||
	    kaudit_head_mac(mac, k, buf, 61) != 0 || !kcrypto_memeq(mac, buf + 61, 32)) {
		issue(s, seg, 0, "head file edited or replaced (MAC mismatch)");
	} else if (count > maxseq) {
		issue(s, seg, maxseq + 1,
		      "truncated: the head records %llu entries, the segment holds %llu",
		      (unsigned long long)count, (unsigned long long)maxseq);
	} else {
		if (count < maxseq)
			note(s, seg, "entries after the last head update (written just before a crash)");
		if (!buf[60])
			note(s, seg, "session not closed (still running, or ended by a crash)");
	}
	ksecmem_wipe(k, sizeof(k));
	free(buf);
}

static void scan_segment(struct scan *s, const char *seg, const char *dirhost,
			 const uint8_t vault_id[16])
{
	char rel[256];
	struct hdr h;
	struct chain c = { 0 };
	struct seen v = { 0 };
	uint64_t maxseq = 0, *edited = NULL;
	size_t nedited = 0;
	off_t off;
	int fd;

	memset(&h, 0, sizeof(h));
	snprintf(rel, sizeof(rel), "audit/%s", seg);
	fd = openat(s->vfd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		issue(s, seg, 0, "cannot open: %s", strerror(errno));
		return;
	}
	c.k1 = ksecmem_alloc(32);
	c.cur = ksecmem_alloc(32);
	if (!c.k1 || !c.cur || parse_header(s, fd, seg, &h, &c) != 0)
		goto out;
	if (!kcrypto_memeq(h.vault_id, vault_id, 16))
		issue(s, seg, 0, "segment of another vault");
	{
		/* the writer names a segment after its start time and session id and
		 * files it under its host and start month: a copy (renamed, moved to
		 * another month or host) cannot sit where its header says it belongs,
		 * so this also catches a session that appears twice */
		char want[64], tm[32], month[8], sidhex[9];
		time_t t = (time_t)(h.start / 1000);
		struct tm g;
		const char *base = strrchr(seg, '/'), *in = seg + s->prefix;

		gmtime_r(&t, &g);
		strftime(tm, sizeof(tm), "%Y%m%dT%H%M%SZ", &g);
		strftime(month, sizeof(month), "%Y-%m", &g);
		khex_encode(sidhex, h.sid, 4);
		snprintf(want, sizeof(want), "%s-%s.kal", tm, sidhex);
		if (strcmp(h.host, dirhost) == 0 &&
		    (!base || strcmp(base + 1, want) != 0 || strncmp(in + strlen(dirhost) + 1, month, 7) != 0))
			issue(s, seg, 0, "segment renamed or moved (its header says %s/%s/%s)", h.host, month, want);
	}
	if (strcmp(h.host, dirhost) != 0)
		issue(s, seg, 0, "segment of host '%s' found under '%s' (copied from another host?)",
		      h.host, dirhost);
	if (!h.readable) {
		char msg[600];

		snprintf(msg, sizeof(msg), "not sealed to %s (readable by: %s); not verified",
			 s->reader->id, h.recips);
		note(s, seg, msg);
		goto out;
	}
	for (off = h.len;;) {
		uint8_t pre[12], *rec, k[32], mac[32], nonce[24], ad[24], *pt;
		uint32_t len;
		uint64_t seq;
		int r = read_exact(fd, pre, 12, off);

		if (r < 0) {
			issue(s, seg, maxseq, "read error: %s", strerror(-r));
			break;
		}
		if (r == 1) {
			struct stat st;

			if (fstat(fd, &st) == 0 && st.st_size > off)
				issue(s, seg, maxseq + 1, "truncated: partial record after entry %llu",
				      (unsigned long long)maxseq);
			break;
		}
		len = kget_le32(pre);
		seq = kget_le64(pre + 4);
		if (len < KCRYPTO_TAGBYTES || len > KAUDIT_ENTRY_MAX + KCRYPTO_TAGBYTES) {
			issue(s, seg, maxseq + 1, "record framing broken after entry %llu (edited?)",
			      (unsigned long long)maxseq);
			break;
		}
		if (!(rec = malloc(len + 32)) || (r = read_exact(fd, rec, len + 32, off + 12)) != 0) {
			free(rec);
			issue(s, seg, maxseq + 1, "truncated: partial record after entry %llu",
			      (unsigned long long)maxseq);
			break;
		}
		off += 12 + len + 32;
		if (chain_key(&c, seq, k) != 0 || kaudit_entry_mac(mac, k, h.sid, seq, rec, len) != 0 ||
		    !kcrypto_memeq(mac, rec + len, 32)) {
			uint64_t *p = realloc(edited, (nedited + 1) * sizeof(*p));

			issue(s, seg, seq, "entry %llu edited (MAC mismatch)", (unsigned long long)seq);
			if (p) {
				edited = p;
				edited[nedited++] = seq;
			}
			free(rec);
			continue;
		}
		ksecmem_wipe(k, sizeof(k));
		if (seq < maxseq)
			issue(s, seg, seq, "entry %llu out of order (found after entry %llu)",
			      (unsigned long long)seq, (unsigned long long)maxseq);
		maxseq = seq > maxseq ? seq : maxseq;
		if (seen_add(&v, seq, mac) != 0) {
			free(rec);
			break;
		}
		kaudit_nonce(nonce, ad, h.sid, seq);
		if ((pt = malloc(len)) &&
		    kcrypto_aead_open(KSUITE_XCHACHA20POLY1305, h.keys, nonce, ad, 24, rec,
				      len - KCRYPTO_TAGBYTES, rec + len - KCRYPTO_TAGBYTES, pt) == 0)
			emit(s, seg, &h, seq, pt, len - KCRYPTO_TAGBYTES);
		else
			issue(s, seg, seq, "entry %llu does not decrypt", (unsigned long long)seq);
		free(pt);
		free(rec);
	}
	/* gaps: numbers below the highest that never appeared (and were not edited) */
	if (v.n)
		qsort(v.seq, v.n, sizeof(*v.seq), cmp_u64);
	for (size_t i = 1; i < v.n; i++)
		if (v.seq[i] == v.seq[i - 1] && (i < 2 || v.seq[i - 2] != v.seq[i]))
			issue(s, seg, v.seq[i], "entry %llu appears twice", (unsigned long long)v.seq[i]);
	for (uint64_t want = 1, i = 0; want <= maxseq; want++) {
		bool ed = false;

		while (i < v.n && v.seq[i] < want)
			i++;
		if (i < v.n && v.seq[i] == want)
			continue;
		for (size_t e = 0; e < nedited; e++)
			ed |= edited[e] == want;
		if (!ed)
			issue(s, seg, want, "gap: entry %llu missing", (unsigned long long)want);
	}
	check_head(s, seg, &c, maxseq, &h);
	for (size_t i = 0; i < s->nanchors; i++) {
		struct anchor *a = &s->anchors[i];

		if (strcmp(a->seg, seg) != 0 || a->entries == 0)
			continue;
		if (a->entries > maxseq)
			issue(s, seg, maxseq + 1,
			      "truncated below the syslog checkpoint (%llu entries, segment holds %llu)",
			      (unsigned long long)a->entries, (unsigned long long)maxseq);
		else if (a->entries <= v.ntags && memcmp(v.tags[a->entries - 1], a->tag, 16) != 0)
			issue(s, seg, a->entries, "entry %llu differs from the syslog checkpoint",
			      (unsigned long long)a->entries);
	}
out:
	ksecmem_stack_scrub(4096);
	ksecmem_wipe(h.keys, sizeof(h.keys));
	ksecmem_free(c.k1);
	ksecmem_free(c.cur);
	free(v.seq);
	free(v.tags);
	free(edited);
	close(fd);
}

static int load_anchors(struct scan *s, const char *path, struct kerrinfo *ei)
{
	FILE *f = fopen(path, "r");
	char line[2048];

	if (!f) {
		kerr_set(ei, path, "cannot read the checkpoint file: %s", strerror(errno));
		return -errno;
	}
	while (fgets(line, sizeof(line), f)) {
		char *p = strstr(line, "kinko-audit checkpoint"), *q, tag[33];
		struct anchor a;
		unsigned long long n;

		if (!p || !(q = strstr(p, " seg=")))
			continue;
		memset(&a, 0, sizeof(a));
		{
			char *vp = strstr(p, " vault=");

			if (!vp || sscanf(vp, " vault=%32s", a.vault) != 1 || strcmp(a.vault, s->vault_hex) != 0)
				continue; /* another vault's checkpoint */
		}
		if (sscanf(q, " seg=%191s entries=%llu tag=%32s", a.seg, &n, tag) != 3 ||
		    khex_decode(a.tag, 16, tag) != 0)
			continue;
		a.entries = n;
		{
			struct anchor *na = realloc(s->anchors, (s->nanchors + 1) * sizeof(*na));

			if (!na) {
				fclose(f);
				return -ENOMEM;
			}
			s->anchors = na;
			s->anchors[s->nanchors++] = a;
		}
	}
	fclose(f);
	return 0;
}

/* names of the entries of dir (relative to vfd), sorted; filter by suffix */
static int list_dir(int vfd, const char *rel, const char *suffix, char ***out, size_t *n)
{
	/* no symlinks: a log directory pointing elsewhere is not read */
	int fd = openat(vfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d;
	struct dirent *e;
	char **v = NULL;
	size_t cnt = 0;

	*out = NULL;
	*n = 0;
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!(d = fdopendir(fd))) {
		close(fd);
		return -errno;
	}
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name), sl = suffix ? strlen(suffix) : 0;
		char **nv;

		if (e->d_name[0] == '.' || (suffix && (l <= sl || strcmp(e->d_name + l - sl, suffix))))
			continue;
		if (!(nv = realloc(v, (cnt + 1) * sizeof(*v))) || !(nv[cnt] = strdup(e->d_name))) {
			free(nv ? nv : v);
			closedir(d);
			return -ENOMEM;
		}
		v = nv;
		cnt++;
	}
	closedir(d);
	for (size_t i = 1; i < cnt; i++)
		for (size_t j = i; j > 0 && strcmp(v[j - 1], v[j]) > 0; j--) {
			char *t = v[j];

			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	*out = v;
	*n = cnt;
	return 0;
}

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static bool is_month(const char *m)
{
	int mon;

	if (strlen(m) != 7 || m[4] != '-')
		return false;
	for (int i = 0; i < 7; i++)
		if (i != 4 && (m[i] < '0' || m[i] > '9'))
			return false;
	mon = (m[5] - '0') * 10 + (m[6] - '0');
	return mon >= 1 && mon <= 12;
}

/* the segments under audit/<base>: <host>/<month>/<ts>-<sid>.kal; prefix is
 * base + "/" ("" for the vault's own log) */
static void scan_tree(struct scan *s, const char *prefix, const uint8_t vault_id[16])
{
	char rel[256], **hosts = NULL;
	size_t nh = 0;

	snprintf(rel, sizeof(rel), "audit/%s", prefix);
	if (list_dir(s->vfd, rel, NULL, &hosts, &nh) != 0)
		return;
	for (size_t i = 0; i < nh; i++) {
		char **months = NULL;
		size_t nm = 0;

		if (hosts[i][0] == '@')
			continue; /* @takeout: read on its own */
		snprintf(rel, sizeof(rel), "audit/%s%s", prefix, hosts[i]);
		if (list_dir(s->vfd, rel, NULL, &months, &nm) != 0)
			continue;
		for (size_t m = 0; m < nm; m++) {
			char **segs = NULL;
			size_t ns = 0;

			if (!is_month(months[m]))
				continue;
			snprintf(rel, sizeof(rel), "audit/%s%s/%s", prefix, hosts[i], months[m]);
			if (list_dir(s->vfd, rel, ".kal", &segs, &ns) != 0)
				continue;
			for (size_t k = 0; k < ns; k++) {
				char seg[192];

				snprintf(seg, sizeof(seg), "%s%s/%s/%s", prefix, hosts[i], months[m], segs[k]);
				scan_segment(s, seg, hosts[i], vault_id);
			}
			free_list(segs, ns);
			/* a head without its segment: a session deleted */
			if (list_dir(s->vfd, rel, ".kal.head", &segs, &ns) != 0)
				continue;
			for (size_t k = 0; k < ns; k++) {
				char seg[600];
				struct stat st;

				if ((size_t)snprintf(seg, sizeof(seg), "%s/%s", rel, segs[k]) >= sizeof(seg))
					continue;
				seg[strlen(seg) - 5] = 0; /* drop ".head" */
				if (fstatat(s->vfd, seg, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
					issue(s, seg + 6, 0, "segment deleted (its head file remains)");
			}
			free_list(segs, ns);
		}
		free_list(months, nm);
	}
	free_list(hosts, nh);
}

int kaudit_scan(int vfd, const uint8_t vault_id[16], const struct kkeys_user *reader,
		const char *anchors, const struct kaudit_takeout_log *tos, size_t ntos,
		const struct kaudit_scan_cb *cb, struct kerrinfo *ei)
{
	struct scan s = { .vfd = vfd, .reader = reader, .cb = cb };
	char **ids = NULL;
	size_t nid = 0;
	int r;

	khex_encode(s.vault_hex, vault_id, 16);
	if (anchors && (r = load_anchors(&s, anchors, ei)) != 0)
		return r;
	if ((r = list_dir(vfd, "audit", NULL, &ids, &nid)) != 0) {
		kerr_set(ei, "audit", "cannot list the audit log: %s", strerror(-r));
		free(s.anchors);
		return r;
	}
	free_list(ids, nid);
	scan_tree(&s, "", vault_id);
	/* the logs take-outs brought back (kinko takeout close): each under the
	 * vault id its export recorded in the ledger */
	if (list_dir(vfd, "audit/" KAUDIT_TAKEOUT_DIR, NULL, &ids, &nid) == 0) {
		for (size_t i = 0; i < nid; i++) {
			const struct kaudit_takeout_log *t = NULL;
			char prefix[96];

			for (size_t k = 0; k < ntos; k++)
				if (strcmp(tos[k].id, ids[i]) == 0)
					t = &tos[k];
			snprintf(prefix, sizeof(prefix), KAUDIT_TAKEOUT_DIR "/%s/", ids[i]);
			if (!t) {
				issue(&s, prefix, 0, "log of take-out '%s' that the ledger does not record as closed",
				      ids[i]);
				continue;
			}
			s.takeout = t->id;
			s.prefix = strlen(prefix);
			scan_tree(&s, prefix, t->vault_id);
			s.takeout = NULL;
			s.prefix = 0;
		}
		free_list(ids, nid);
	}
	/* checkpoints naming segments that are gone */
	for (size_t i = 0; i < s.nanchors; i++) {
		char rel[256];
		struct stat st;

		snprintf(rel, sizeof(rel), "audit/%s", s.anchors[i].seg);
		if (fstatat(vfd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0)
			issue(&s, s.anchors[i].seg, 0, "segment named by a syslog checkpoint is missing");
	}
	free(s.anchors);
	return s.issues;
}

/* ---- bringing a take-out's log home ---- */

/* copy src/name to dst/name: tmp, fsync, rename; an identical file already
 * there is fine (a close run again), a different one is an error */
static int copy_one(int sdir, int ddir, const char *name, struct kerrinfo *ei, const char *where)
{
	uint8_t *a = NULL, *b = NULL;
	size_t al = 0, bl = 0;
	int r;

	if ((r = kfile_read_at(sdir, name, 64u << 20, &a, &al)) != 0) {
		kerr_set(ei, where, "cannot read: %s", strerror(-r));
		return r;
	}
	if (kfile_read_at(ddir, name, 64u << 20, &b, &bl) == 0) {
		r = bl == al && memcmp(a, b, al) == 0 ? 0 : -EEXIST;
		if (r)
			kerr_set(ei, where, "a different file of that name is already in the vault's log");
	} else {
		r = kfile_create_at(ddir, name, a, al, 0444);
		if (r)
			kerr_set(ei, where, "cannot copy into the vault's log: %s", strerror(-r));
	}
	free(a);
	free(b);
	return r;
}

static int mkdir_open(int pfd, const char *name)
{
	if (mkdirat(pfd, name, 0755) < 0 && errno != EEXIST)
		return -errno;
	int fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

int kaudit_import(int src_vfd, int dst_vfd, const char *id, size_t *segments, struct kerrinfo *ei)
{
	char **hosts = NULL;
	size_t nh = 0;
	int base = -1, r;

	*segments = 0;
	if ((r = list_dir(src_vfd, "audit", NULL, &hosts, &nh)) != 0) {
		kerr_set(ei, "audit", "cannot list the take-out's audit log: %s", strerror(-r));
		return r;
	}
	{
		int a = mkdir_open(dst_vfd, "audit"), t = a < 0 ? a : mkdir_open(a, KAUDIT_TAKEOUT_DIR);

		base = t < 0 ? t : mkdir_open(t, id);
		if (a >= 0)
			close(a);
		if (t >= 0)
			close(t);
		if (base < 0) {
			r = base;
			kerr_set(ei, "audit/" KAUDIT_TAKEOUT_DIR, "cannot create: %s", strerror(-r));
			goto out;
		}
	}
	for (size_t i = 0; i < nh && r == 0; i++) {
		char rel[256], **months = NULL;
		size_t nm = 0;
		int hfd;

		snprintf(rel, sizeof(rel), "audit/%s", hosts[i]);
		if (list_dir(src_vfd, rel, NULL, &months, &nm) != 0)
			continue;
		if ((hfd = mkdir_open(base, hosts[i])) < 0) {
			r = hfd;
			free_list(months, nm);
			break;
		}
		for (size_t m = 0; m < nm && r == 0; m++) {
			char **files = NULL;
			size_t nf = 0;
			int sfd, mfd;

			if (!is_month(months[m]))
				continue;
			snprintf(rel, sizeof(rel), "audit/%s/%s", hosts[i], months[m]);
			if (list_dir(src_vfd, rel, NULL, &files, &nf) != 0)
				continue;
			sfd = openat(src_vfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (nf > 100000) {
				r = -E2BIG;
				kerr_set(ei, rel, "more than 100000 files: not a take-out's audit log");
			}
			mfd = sfd < 0 ? -1 : mkdir_open(hfd, months[m]);
			if (sfd < 0 || mfd < 0) {
				r = sfd < 0 ? -errno : mfd;
				kerr_set(ei, rel, "cannot copy: %s", strerror(-r));
			}
			for (size_t k = 0; k < nf && r == 0; k++) {
				size_t l = strlen(files[k]);
				char where[512];

				if (!(l > 4 && strcmp(files[k] + l - 4, ".kal") == 0) &&
				    !(l > 9 && strcmp(files[k] + l - 9, ".kal.head") == 0))
					continue;
				snprintf(where, sizeof(where), "%s/%s", rel, files[k]);
				if ((r = copy_one(sfd, mfd, files[k], ei, where)) == 0 && files[k][l - 1] == 'l')
					(*segments)++;
			}
			if (r == 0 && mfd >= 0)
				r = kfsync_dir(mfd);
			if (sfd >= 0)
				close(sfd);
			if (mfd >= 0)
				close(mfd);
			free_list(files, nf);
		}
		if (r == 0)
			r = kfsync_dir(hfd);
		close(hfd);
		free_list(months, nm);
	}
	if (r == 0)
		r = kfsync_dir(base);
out:
	if (base >= 0)
		close(base);
	free_list(hosts, nh);
	return r;
}

/* ---- retention ---- */

int kaudit_prune(int vfd, const char *before, int retention_years, int64_t now,
		 struct kerrinfo *ei)
{
	char **hosts = NULL;
	size_t nh = 0;
	int removed = 0, r, pass;

	if (!is_month(before)) {
		kerr_set(ei, before, "give the month as YYYY-MM");
		return KERR_USAGE;
	}
	if ((r = list_dir(vfd, "audit", NULL, &hosts, &nh)) != 0)
		return r;
	/* pass 0 checks every month against the retention period, pass 1 removes */
	for (pass = 0; pass < 2 && r == 0; pass++)
		for (size_t i = 0; i < nh; i++) {
			char rel[256], **months = NULL;
			size_t nm = 0;
			int hfd;

			snprintf(rel, sizeof(rel), "audit/%s", hosts[i]);
			if (list_dir(vfd, rel, NULL, &months, &nm) != 0)
				continue;
			hfd = openat(vfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			for (size_t m = 0; m < nm && hfd >= 0; m++) {
				struct tm tm = { 0 };
				int64_t keep_until;

				if (!is_month(months[m]) || strcmp(months[m], before) >= 0)
					continue;
				tm.tm_year = atoi(months[m]) - 1900 + retention_years;
				tm.tm_mon = atoi(months[m] + 5); /* the month after (0-based + 1) */
				tm.tm_mday = 1;
				keep_until = (int64_t)timegm(&tm);
				if (pass == 0 && keep_until > now) {
					char iso[32];

					ktime_iso(iso, sizeof(iso), keep_until);
					iso[10] = 0;
					kerr_set(ei, rel, "%s must be kept until %s (audit.retention_years = %d)",
						 months[m], iso, retention_years);
					r = KERR_POLICY;
				}
				if (pass == 1 && krmtree_at(hfd, months[m], NULL, NULL) == 0)
					removed++;
			}
			if (hfd >= 0)
				close(hfd);
			free_list(months, nm);
			if (r)
				break;
		}
	free_list(hosts, nh);
	return r ? r : removed;
}

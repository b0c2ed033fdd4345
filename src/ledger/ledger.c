// SPDX-License-Identifier: GPL-2.0-or-later
/* kinko ledger: record framing, atomic one-file-per-record append, scan/verify. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kinko/crypto.h"
#include "kinko/keys.h"
#include "kinko/ledger.h"

void kledger_rec_clear(struct kledger_rec *r)
{
	if (!r)
		return;
	free(r->body);
	memset(r, 0, sizeof(*r));
}

int kledger_body_check(const char *body, size_t len, char *why, size_t whylen)
{
	json_error_t jerr;
	json_t *j;
	int r = 0;

	if (len == 0 || len > KLEDGER_BODY_MAX || memchr(body, 0, len)) {
		snprintf(why, whylen, "body length %zu out of range or with NUL", len);
		return KERR_FORMAT;
	}
	/* jansson checks UTF-8 and depth; the size is already bounded */
	j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j) {
		snprintf(why, whylen, "body is not JSON: %s", jerr.text);
		return KERR_FORMAT;
	}
	if (!json_is_object(j) || !json_is_string(json_object_get(j, "event"))) {
		snprintf(why, whylen, "body is not an object with an \"event\"");
		r = KERR_FORMAT;
	}
	json_decref(j);
	return r;
}

int kledger_rec_parse(const uint8_t *buf, size_t len, struct kledger_rec *r, char *why,
		      size_t whylen)
{
	struct kbuf b;
	uint8_t magic[4];
	uint32_t total, blen;
	uint64_t t;
	const uint8_t *body;
	int e;

	memset(r, 0, sizeof(*r));
	snprintf(why, whylen, "truncated");
	if (len < KLEDGER_REC_MIN || len > KLEDGER_REC_MAX) {
		snprintf(why, whylen, "size %zu out of range", len);
		return KERR_FORMAT;
	}
	kbuf_init_reader(&b, buf, len);
	if ((e = kbuf_get_raw(&b, magic, 4)) != 0 || memcmp(magic, KLEDGER_MAGIC, 4) != 0) {
		snprintf(why, whylen, "bad magic or version");
		return KERR_FORMAT;
	}
	if ((e = kbuf_get_u32(&b, &total)) != 0 || total != len) {
		snprintf(why, whylen, "length field %u does not match the file (%zu)", total, len);
		return KERR_FORMAT;
	}
	if (kbuf_get_raw(&b, r->vault_id, 16) || kbuf_get_u64(&b, &r->seq) ||
	    kbuf_get_raw(&b, r->prev, KLEDGER_HASHBYTES) || kbuf_get_u64(&b, &t))
		return KERR_FORMAT;
	r->time_ms = (int64_t)t;
	if (r->seq == 0 || r->time_ms < 0) {
		snprintf(why, whylen, "sequence number 0 or negative time");
		return KERR_FORMAT;
	}
	if (kbuf_get_str8(&b, r->signer, KFORMAT_USERID_MAX) || !kuser_id_valid(r->signer)) {
		snprintf(why, whylen, "bad signer id");
		return KERR_FORMAT;
	}
	if (kbuf_get_u32(&b, &blen))
		return KERR_FORMAT;
	if (blen == 0 || blen > KLEDGER_BODY_MAX || blen > kbuf_remaining(&b)) {
		snprintf(why, whylen, "body length %u out of range", blen);
		return KERR_FORMAT;
	}
	if (kbuf_get_ptr(&b, &body, blen) || kbuf_get_raw(&b, r->sig, 64))
		return KERR_FORMAT;
	if (kbuf_expect_end(&b)) {
		snprintf(why, whylen, "trailing bytes");
		return KERR_FORMAT;
	}
	if ((e = kledger_body_check((const char *)body, blen, why, whylen)) != 0)
		return e;
	if (!(r->body = malloc(blen + 1)))
		return -ENOMEM;
	memcpy(r->body, body, blen);
	r->body[blen] = 0;
	r->bodylen = blen;
	if (kcrypto_hash(r->hash, KLEDGER_HASHBYTES, NULL, 0, buf, len) != 0) {
		kledger_rec_clear(r);
		return KERR_CRYPTO;
	}
	why[0] = 0;
	return 0;
}

int kledger_rec_serialize(struct kledger_rec *r, const uint8_t sk[64], uint8_t **out,
			  size_t *outlen)
{
	struct kbuf b;
	int e = -ENOMEM;

	*out = NULL;
	*outlen = 0;
	if (!r->body || r->bodylen == 0 || r->bodylen > KLEDGER_BODY_MAX || r->seq == 0 ||
	    !kuser_id_valid(r->signer))
		return KERR_USAGE;
	kbuf_init_writer(&b);
	if (kbuf_put_raw(&b, KLEDGER_MAGIC, 4) || kbuf_put_u32(&b, 0) ||
	    kbuf_put_raw(&b, r->vault_id, 16) || kbuf_put_u64(&b, r->seq) ||
	    kbuf_put_raw(&b, r->prev, KLEDGER_HASHBYTES) || kbuf_put_u64(&b, (uint64_t)r->time_ms) ||
	    kbuf_put_str8(&b, r->signer) || kbuf_put_u32(&b, (uint32_t)r->bodylen) ||
	    kbuf_put_raw(&b, r->body, r->bodylen))
		goto out;
	kput_le32(b.p + 4, (uint32_t)(b.len + 64));
	if ((e = kcrypto_sign(r->sig, b.p, b.len, sk)) != 0)
		goto out;
	if ((e = kbuf_put_raw(&b, r->sig, 64)) != 0)
		goto out;
	if ((e = kcrypto_hash(r->hash, KLEDGER_HASHBYTES, NULL, 0, b.p, b.len)) != 0)
		goto out;
	*out = b.p;
	*outlen = b.len;
	return 0;
out:
	kbuf_free(&b);
	return e ? e : -ENOMEM;
}

int kledger_rec_verify(const uint8_t *buf, size_t len, const uint8_t pk[32])
{
	if (len < KLEDGER_REC_MIN)
		return KERR_FORMAT;
	return kcrypto_verify(buf + len - 64, buf, len - 64, pk) == 0 ? 0 : KERR_AUTH;
}

/* "000000000042.klr" -> 42; 0 if the name is not a record name */
static uint64_t name_seq(const char *n)
{
	uint64_t s = 0;

	for (int i = 0; i < KLEDGER_NAME_DIGITS; i++) {
		if (n[i] < '0' || n[i] > '9')
			return 0;
		s = s * 10 + (uint64_t)(n[i] - '0');
	}
	return strcmp(n + KLEDGER_NAME_DIGITS, ".klr") == 0 ? s : 0;
}

static void rec_name(char *out, size_t n, uint64_t seq)
{
	snprintf(out, n, "%0*llu.klr", KLEDGER_NAME_DIGITS, (unsigned long long)seq);
}

static int open_dir(int vfd, bool create, int *dfd)
{
	if (create && mkdirat(vfd, KLEDGER_DIR, 0700) < 0 && errno != EEXIST)
		return -errno;
	*dfd = openat(vfd, KLEDGER_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	return *dfd < 0 ? -errno : 0;
}

/* highest record number present (0: none) */
static int max_seq(int dfd, uint64_t *max)
{
	DIR *d;
	struct dirent *de;
	int fd = dup(dfd);

	*max = 0;
	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	rewinddir(d);
	while ((de = readdir(d))) {
		uint64_t s = name_seq(de->d_name);

		if (s > *max)
			*max = s;
	}
	closedir(d);
	return 0;
}

int kledger_append(int vfd, const struct kpolicy *p, const struct kkeys_user *u, const char *body,
		   uint64_t *seq, struct kerrinfo *ei)
{
	const struct kpolicy_user *pu = kpolicy_user_find(p, u->id);
	struct kledger_rec rec;
	char name[32], tmp[48], why[128];
	uint8_t *out = NULL, *prev = NULL;
	size_t outlen, prevlen;
	uint32_t rnd;
	int dfd = -1, r = -EIO;

	memset(&rec, 0, sizeof(rec));
	if (!pu || !pu->active || !kcrypto_memeq(pu->sign_pk, u->sign_pk, 32)) {
		kerr_set(ei, KLEDGER_DIR, "user '%s' is not an active user of the policy", u->id);
		return -EACCES;
	}
	if ((r = kledger_body_check(body, strlen(body), why, sizeof(why))) != 0) {
		kerr_set(ei, KLEDGER_DIR, "%s", why);
		return r;
	}
	if ((r = open_dir(vfd, true, &dfd)) != 0) {
		kerr_set(ei, KLEDGER_DIR, "cannot open: %s", strerror(-r));
		return r;
	}
	for (int attempt = 0; attempt < 1000; attempt++) {
		uint64_t max;

		if ((r = max_seq(dfd, &max)) != 0)
			break;
		memset(rec.prev, 0, sizeof(rec.prev));
		if (max > 0) {
			rec_name(name, sizeof(name), max);
			free(prev);
			prev = NULL;
			r = kfile_read_at(dfd, name, KLEDGER_REC_MAX, &prev, &prevlen);
			if (r == -ENOENT)
				continue; /* raced with something odd: look again */
			if (r == -EFBIG) {
				kerr_set(ei, name, "ledger record too large");
				break;
			}
			if (r)
				break;
			if ((r = kcrypto_hash(rec.prev, KLEDGER_HASHBYTES, NULL, 0, prev, prevlen)) != 0)
				break;
		}
		memcpy(rec.vault_id, p->vault_id, 16);
		rec.seq = max + 1;
		rec.time_ms = ktime_now() * 1000;
		{
			struct timespec ts;

			/* milliseconds from the real clock unless a test fixed the time */
			if (!getenv("KINKO_TEST_NOW") && clock_gettime(CLOCK_REALTIME, &ts) == 0)
				rec.time_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
		}
		snprintf(rec.signer, sizeof(rec.signer), "%s", u->id);
		rec.body = (char *)body;
		rec.bodylen = strlen(body);
		free(out);
		out = NULL;
		r = kledger_rec_serialize(&rec, u->sign_sk, &out, &outlen);
		rec.body = NULL;
		if (r)
			break;
		if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd)) {
			r = -EIO;
			break;
		}
		snprintf(tmp, sizeof(tmp), ".tmp.%08x", rnd);
		rec_name(name, sizeof(name), rec.seq);
		if ((r = kfile_create_at(dfd, tmp, out, outlen, 0600)) != 0)
			break;
		/* link(2) is atomic and exclusive, NFS included: one winner per number */
		r = linkat(dfd, tmp, dfd, name, 0) < 0 ? -errno : 0;
		unlinkat(dfd, tmp, 0);
		if (r == -EEXIST)
			continue;
		if (r == 0) {
			r = kfsync_dir(dfd);
			if (seq)
				*seq = rec.seq;
			if (kledger_seen_set(p->vault_id, rec.seq, rec.hash, true) != 0)
				log_warn("cannot note ledger record %llu in the workstation state",
					 (unsigned long long)rec.seq);
		}
		break;
	}
	if (r == -EEXIST)
		kerr_set(ei, KLEDGER_DIR, "too many concurrent writers");
	else if (r && ei && !ei->detail[0])
		kerr_set(ei, KLEDGER_DIR, "cannot append: %s", r > -1000 ? strerror(-r) : kinko_strerror(r));
	free(out);
	free(prev);
	close(dfd);
	return r;
}

struct entry {
	uint64_t seq;
	char name[64];
};

static int cmp_entry(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int kledger_scan(int vfd, const struct kpolicy *p, kledger_rec_fn rec_cb,
		 kledger_problem_fn problem, void *ctx, size_t *records, size_t *problems)
{
	struct entry *ents = NULL;
	size_t n = 0, cap = 0;
	uint8_t prevhash[KLEDGER_HASHBYTES], seen_hash[KLEDGER_HASHBYTES], last_hash[KLEDGER_HASHBYTES];
	uint64_t seen_seq = 0, last_seq = 0;
	bool prev_known = true;
	uint64_t expect = 1;
	char path[96], msg[256];
	DIR *d = NULL;
	struct dirent *de;
	int dfd = -1, fd, r;

	*records = *problems = 0;
	memset(prevhash, 0, sizeof(prevhash));
#define PROBLEM(file, seq, ...)                                   \
	do {                                                      \
		snprintf(msg, sizeof(msg), __VA_ARGS__);          \
		(*problems)++;                                    \
		if (problem)                                      \
			problem(ctx, file, seq, msg);             \
	} while (0)
	if ((r = open_dir(vfd, false, &dfd)) != 0)
		return r == -ENOENT ? 0 : r; /* no ledger yet: nothing to verify */
	if ((fd = dup(dfd)) < 0 || !(d = fdopendir(fd))) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		goto out;
	}
	while ((de = readdir(d))) {
		uint64_t s = name_seq(de->d_name);

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    strncmp(de->d_name, ".tmp.", 5) == 0)
			continue;
		if (s == 0) {
			snprintf(path, sizeof(path), KLEDGER_DIR "/%.60s", de->d_name);
			PROBLEM(path, 0, "not a ledger record (unexpected file)");
			continue;
		}
		if (n == cap) {
			struct entry *ne = realloc(ents, (cap = cap ? 2 * cap : 64) * sizeof(*ents));

			if (!ne) {
				r = -ENOMEM;
				goto out;
			}
			ents = ne;
		}
		ents[n].seq = s;
		snprintf(ents[n].name, sizeof(ents[n].name), "%.40s", de->d_name);
		n++;
	}
	qsort(ents, n, sizeof(*ents), cmp_entry);
	if (kledger_seen_get(p->vault_id, &seen_seq, seen_hash) != 0)
		seen_seq = 0;
	for (size_t i = 0; i < n; i++) {
		struct kledger_rec rec;
		const struct kpolicy_user *pu;
		uint8_t *buf = NULL;
		size_t len;
		char why[160];
		bool ok = true;

		snprintf(path, sizeof(path), KLEDGER_DIR "/%s", ents[i].name);
		if (ents[i].seq > expect) {
			if (ents[i].seq == expect + 1)
				PROBLEM(path, expect, "record %llu missing (deleted)",
					(unsigned long long)expect);
			else
				PROBLEM(path, expect, "records %llu to %llu missing (deleted)",
					(unsigned long long)expect, (unsigned long long)ents[i].seq - 1);
			prev_known = false;
		}
		expect = ents[i].seq + 1;
		r = kfile_read_at(dfd, ents[i].name, KLEDGER_REC_MAX, &buf, &len);
		if (r) {
			PROBLEM(path, ents[i].seq, "record %llu unreadable: %s",
				(unsigned long long)ents[i].seq, r == -EFBIG ? "too large" : strerror(-r));
			prev_known = false;
			continue;
		}
		if (kledger_rec_parse(buf, len, &rec, why, sizeof(why)) != 0) {
			PROBLEM(path, ents[i].seq, "record %llu malformed (edited?): %s",
				(unsigned long long)ents[i].seq, why);
			free(buf);
			prev_known = false;
			continue;
		}
		if (rec.seq != ents[i].seq) {
			PROBLEM(path, ents[i].seq,
				"record %llu holds number %llu (renamed or reordered)",
				(unsigned long long)ents[i].seq, (unsigned long long)rec.seq);
			ok = false;
		}
		if (memcmp(rec.vault_id, p->vault_id, 16) != 0) {
			PROBLEM(path, ents[i].seq, "record %llu belongs to another vault",
				(unsigned long long)ents[i].seq);
			ok = false;
		}
		pu = kpolicy_user_find(p, rec.signer);
		if (!pu) {
			PROBLEM(path, ents[i].seq, "record %llu: signer '%s' is not in the policy",
				(unsigned long long)ents[i].seq, rec.signer);
			ok = false;
		} else if (kledger_rec_verify(buf, len, pu->sign_pk) != 0) {
			PROBLEM(path, ents[i].seq,
				"record %llu edited: the signature of '%s' does not verify",
				(unsigned long long)ents[i].seq, rec.signer);
			ok = false;
		}
		if (prev_known && !kcrypto_memeq(rec.prev, prevhash, KLEDGER_HASHBYTES)) {
			if (ents[i].seq == 1)
				PROBLEM(path, 1, "record 1 does not start the chain");
			else
				PROBLEM(path, ents[i].seq,
					"record %llu does not chain to record %llu "
					"(one of them was replaced, or they were reordered)",
					(unsigned long long)ents[i].seq,
					(unsigned long long)ents[i].seq - 1);
			ok = false;
		}
		if (ents[i].seq == seen_seq && !kcrypto_memeq(rec.hash, seen_hash, KLEDGER_HASHBYTES)) {
			PROBLEM(path, ents[i].seq,
				"record %llu is not the record %llu this workstation saw (replaced)",
				(unsigned long long)ents[i].seq, (unsigned long long)seen_seq);
			ok = false;
		}
		memcpy(prevhash, rec.hash, KLEDGER_HASHBYTES);
		prev_known = true;
		last_seq = ents[i].seq;
		memcpy(last_hash, rec.hash, KLEDGER_HASHBYTES);
		if (ok) {
			(*records)++;
			if (rec_cb)
				rec_cb(ctx, &rec);
		}
		kledger_rec_clear(&rec);
		free(buf);
	}
	if (seen_seq > (n ? ents[n - 1].seq : 0)) {
		char file[64];

		snprintf(file, sizeof(file), KLEDGER_DIR "/%0*llu.klr", KLEDGER_NAME_DIGITS,
			 (unsigned long long)seen_seq);
		if (seen_seq == (n ? ents[n - 1].seq : 0) + 1)
			PROBLEM(file, seen_seq, "record %llu missing (deleted): this workstation saw it",
				(unsigned long long)seen_seq);
		else
			PROBLEM(file, seen_seq, "records %llu to %llu missing (deleted): this "
				"workstation saw them", (unsigned long long)(n ? ents[n - 1].seq + 1 : 1),
				(unsigned long long)seen_seq);
	}
	if (*problems == 0 && last_seq > seen_seq)
		(void)kledger_seen_set(p->vault_id, last_seq, last_hash, true);
	r = 0;
out:
#undef PROBLEM
	if (d)
		closedir(d);
	free(ents);
	close(dfd);
	return r;
}

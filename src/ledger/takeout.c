// SPDX-License-Identifier: GPL-2.0-or-later
/* kinko ledger: take-outs (持出し) folded from verified records, and the
 * sealing of a request's personal fields. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinko/keys.h"
#include "kinko/ledger.h"
#include "kinko/policy.h"

static const char *const state_names[] = { "pending", "approved", "rejected",
					   "exported", "closed", "lost" };

const char *kledger_takeout_state_name(int s)
{
	return s >= 0 && s <= KTO_LOST ? state_names[s] : "?";
}

struct kledger_takeout *kledger_takeout_find(const struct kledger_takeouts *t, const char *id)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->t[i].id, id) == 0)
			return &t->t[i];
	return NULL;
}

void kledger_takeouts_free(struct kledger_takeouts *t)
{
	for (size_t i = 0; i < t->n; i++) {
		struct kledger_takeout *x = &t->t[i];

		free(x->medium);
		free(x->details);
		free(x->note);
		free(x->reason);
		free(x->lost_note);
		free(x->export_vault);
		free(x->export_root_pk);
		free(x->export_to);
	}
	free(t->t);
	t->t = NULL;
	t->n = 0;
}

bool kledger_takeout_overdue(const struct kledger_takeout *t, int64_t now)
{
	return t->state == KTO_EXPORTED && now >= t->until;
}

static const char *text(json_t *b, const char *k)
{
	const char *s = json_string_value(json_object_get(b, k));

	return s && kledger_text_valid(s) ? s : NULL;
}

static int dup_to(char **field, const char *v)
{
	if (!v)
		return 0;
	free(*field);
	return (*field = strdup(v)) ? 0 : -ENOMEM;
}

/* an administrator of the policy, active or disabled since: roles never
 * change in kinko, and a step an administrator took stays taken when they
 * are disabled later (the ledger only accepts new records from active users) */
static bool is_admin(const struct kpolicy *p, const char *id)
{
	const struct kpolicy_user *u = kpolicy_user_find(p, id);

	return u && u->role == KROLE_ADMIN;
}

static int add_request(struct kledger_takeouts *t, const struct kledger_rec *r, json_t *b)
{
	const char *req = json_string_value(json_object_get(b, "requester"));
	const char *medium = text(b, "medium");
	json_t *from = json_object_get(b, "from"), *until = json_object_get(b, "until");
	json_t *det = json_object_get(b, "details");
	struct kledger_takeout *n, *x;

	if (!req || strcmp(req, r->signer) != 0 || !medium || !kledger_id_valid(medium) ||
	    !json_is_integer(from) || !json_is_integer(until) ||
	    json_integer_value(from) >= json_integer_value(until) || !json_is_object(det))
		return 0;
	if (!(n = realloc(t->t, (t->n + 1) * sizeof(*n))))
		return -ENOMEM;
	t->t = n;
	x = &t->t[t->n];
	memset(x, 0, sizeof(*x));
	snprintf(x->id, sizeof(x->id), "T%llu", (unsigned long long)r->seq);
	x->seq = r->seq;
	memcpy(x->req_hash, r->hash, sizeof(x->req_hash));
	snprintf(x->requester, sizeof(x->requester), "%s", r->signer);
	x->from = (int64_t)json_integer_value(from);
	x->until = (int64_t)json_integer_value(until);
	x->requested_ms = r->time_ms;
	x->state = KTO_PENDING;
	x->medium = strdup(medium);
	x->details = json_dumps(det, JSON_COMPACT | JSON_SORT_KEYS);
	if (!x->medium || !x->details) {
		free(x->medium);
		free(x->details);
		return -ENOMEM;
	}
	t->n++;
	return 0;
}

int kledger_takeout_apply(struct kledger_takeouts *t, const struct kpolicy *p,
			  const struct kledger_rec *r)
{
	json_t *b = json_loadb(r->body, r->bodylen, 0, NULL);
	const char *ev = json_string_value(json_object_get(b, "event"));
	const char *id = json_string_value(json_object_get(b, "takeout"));
	struct kledger_takeout *x;
	bool own, admin;
	int e = 0;

	if (!b || !ev || strncmp(ev, "takeout-", 8) != 0)
		goto out;
	if (strcmp(ev, "takeout-request") == 0) {
		e = add_request(t, r, b);
		goto out;
	}
	if (!id || !(x = kledger_takeout_find(t, id)))
		goto out;
	own = strcmp(r->signer, x->requester) == 0;
	admin = is_admin(p, r->signer);
	if (strcmp(ev, "takeout-approve") == 0 || strcmp(ev, "takeout-reject") == 0) {
		const char *h = json_string_value(json_object_get(b, "request"));
		char hex[2 * KLEDGER_HASHBYTES + 1];
		bool approve = ev[8] == 'a';

		khex_encode(hex, x->req_hash, KLEDGER_HASHBYTES);
		if (x->state != KTO_PENDING || own || !admin || !h || strcmp(h, hex) != 0)
			goto out;
		if (approve) {
			x->state = KTO_APPROVED;
			x->approved_ms = r->time_ms;
			memcpy(x->approved_by, r->signer, sizeof(x->approved_by));
			e = dup_to(&x->note, text(b, "note"));
		} else {
			x->state = KTO_REJECTED;
			x->rejected_ms = r->time_ms;
			memcpy(x->rejected_by, r->signer, sizeof(x->rejected_by));
			e = dup_to(&x->reason, text(b, "reason"));
		}
	} else if (strcmp(ev, "takeout-export") == 0) {
		json_t *f = json_object_get(b, "files"), *by = json_object_get(b, "bytes");

		if (x->state != KTO_APPROVED || !own || !text(b, "vault_id"))
			goto out;
		x->state = KTO_EXPORTED;
		x->exported_ms = r->time_ms;
		x->export_files = json_is_integer(f) ? (uint64_t)json_integer_value(f) : 0;
		x->export_bytes = json_is_integer(by) ? (uint64_t)json_integer_value(by) : 0;
		if ((e = dup_to(&x->export_vault, text(b, "vault_id"))) == 0 &&
		    (e = dup_to(&x->export_root_pk, text(b, "root_pk"))) == 0)
			e = dup_to(&x->export_to, text(b, "to"));
	} else if (strcmp(ev, "takeout-close") == 0 || strcmp(ev, "takeout-lost") == 0) {
		bool close = ev[8] == 'c';

		if (x->state != KTO_EXPORTED || !(own || admin))
			goto out;
		if (close) {
			json_t *n = json_object_get(b, "audit_segments");

			x->state = KTO_CLOSED;
			x->closed_ms = r->time_ms;
			memcpy(x->closed_by, r->signer, sizeof(x->closed_by));
			x->audit_segments = json_is_integer(n) ? (uint64_t)json_integer_value(n) : 0;
		} else {
			x->state = KTO_LOST;
			x->lost_ms = r->time_ms;
			memcpy(x->lost_by, r->signer, sizeof(x->lost_by));
			e = dup_to(&x->lost_note, text(b, "note"));
		}
	}
out:
	json_decref(b);
	return e;
}

/* ---- sealed personal fields ---- */

#define DETAILS_AD "kinko takeout details v1"
#define DETAILS_MAX 6144

int kledger_details_seal(const char *plain, const struct kpolicy *p, const char *requester,
			 char **out)
{
	size_t len = strlen(plain);
	uint8_t *key = NULL, nonce[24], *ct = NULL, sealed[32 + KCRYPTO_SEALBYTES];
	char *b64 = NULL, kb[128], nb[64];
	json_t *o = NULL, *to = NULL;
	int r = -ENOMEM;

	*out = NULL;
	if (len > DETAILS_MAX)
		return -E2BIG;
	if (!(key = ksecmem_alloc(32)) || !(ct = malloc(len + 16)) ||
	    !(b64 = malloc(kcrypto_b64url_len(len + 16) + 1)) || !(o = json_object()) ||
	    !(to = json_object()))
		goto out;
	kcrypto_random(key, 32);
	kcrypto_random(nonce, sizeof(nonce));
	if ((r = kcrypto_wrap(key, nonce, (const uint8_t *)DETAILS_AD, strlen(DETAILS_AD),
			      (const uint8_t *)plain, len, ct)) != 0)
		goto out;
	for (size_t i = 0; i < p->nusers; i++) {
		const struct kpolicy_user *u = &p->users[i];

		if (strcmp(u->id, requester) != 0 &&
		    (!u->active || (u->role != KROLE_ADMIN && u->role != KROLE_AUDITOR)))
			continue;
		if ((r = kcrypto_seal(sealed, key, 32, u->box_pk)) != 0 ||
		    (r = kcrypto_b64url_encode(kb, sizeof(kb), sealed, sizeof(sealed))) != 0)
			goto out;
		json_object_set_new(to, u->id, json_string(kb));
	}
	if ((r = kcrypto_b64url_encode(nb, sizeof(nb), nonce, sizeof(nonce))) != 0 ||
	    (r = kcrypto_b64url_encode(b64, kcrypto_b64url_len(len + 16) + 1, ct, len + 16)) != 0)
		goto out;
	json_object_set_new(o, "to", to);
	to = NULL;
	json_object_set_new(o, "nonce", json_string(nb));
	json_object_set_new(o, "ct", json_string(b64));
	r = (*out = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS)) ? 0 : -ENOMEM;
out:
	ksecmem_free(key);
	free(ct);
	free(b64);
	json_decref(o);
	json_decref(to);
	return r;
}

int kledger_details_open(const char *sealed, const struct kkeys_user *u, char **plain)
{
	json_t *o = json_loads(sealed, 0, NULL);
	const char *kb = json_string_value(json_object_get(json_object_get(o, "to"), u->id));
	const char *nb = json_string_value(json_object_get(o, "nonce"));
	const char *cb = json_string_value(json_object_get(o, "ct"));
	uint8_t sk[32 + KCRYPTO_SEALBYTES], nonce[24], *key = NULL, *ct = NULL;
	size_t kl, nl, cl;
	char *pt = NULL;
	int r;

	*plain = NULL;
	if (!o || !nb || !cb) {
		r = KERR_FORMAT;
		goto out;
	}
	if (!kb) {
		r = KERR_NOGRANT;
		goto out;
	}
	r = -ENOMEM;
	if (strlen(cb) > 2 * DETAILS_MAX || !(key = ksecmem_alloc(32)) || !(ct = malloc(strlen(cb))))
		goto out;
	if (kcrypto_b64url_decode(sk, sizeof(sk), &kl, kb, strlen(kb)) != 0 || kl != sizeof(sk) ||
	    kcrypto_b64url_decode(nonce, sizeof(nonce), &nl, nb, strlen(nb)) != 0 || nl != 24 ||
	    kcrypto_b64url_decode(ct, strlen(cb), &cl, cb, strlen(cb)) != 0 || cl < 16) {
		r = KERR_FORMAT;
		goto out;
	}
	if (kcrypto_seal_open(key, sk, sizeof(sk), u->box_pk, u->box_sk) != 0) {
		r = KERR_AUTH;
		goto out;
	}
	if (!(pt = malloc(cl - 16 + 1))) {
		r = -ENOMEM;
		goto out;
	}
	if (kcrypto_unwrap(key, nonce, (const uint8_t *)DETAILS_AD, strlen(DETAILS_AD), ct, cl, (uint8_t *)pt) != 0) {
		free(pt);
		r = KERR_AUTH;
		goto out;
	}
	pt[cl - 16] = 0;
	*plain = pt;
	r = 0;
out:
	ksecmem_free(key);
	free(ct);
	json_decref(o);
	return r;
}

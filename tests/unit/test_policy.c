// SPDX-License-Identifier: GPL-2.0-or-later
/* policy: the JSON body (kpolicy_parse_body / kpolicy_to_json): a valid body
 * round-trips; malformed and hostile bodies are refused without a crash; and
 * the signed policy file through kpolicy_store / kpolicy_load. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "kinko/policy.h"
#include "kt.h"

#define JP_NAME "\xe5\xb1\xb1\xe7\x94\xb0 \xe5\xa4\xaa\xe9\x83\x8e" /* 山田 太郎 */

struct keys {
	uint8_t root_pk[32], root_sk[64];
	uint8_t admin_pk[32], admin_sk[64];
	uint8_t staff_pk[32], staff_sk[64];
};

static void keys_make(struct keys *k)
{
	uint8_t seed[32];

	kt_fill(seed, 32, 201);
	assert_int_equal(kcrypto_sign_seed_keypair(k->root_pk, k->root_sk, seed), 0);
	kt_fill(seed, 32, 202);
	assert_int_equal(kcrypto_sign_seed_keypair(k->admin_pk, k->admin_sk, seed), 0);
	kt_fill(seed, 32, 203);
	assert_int_equal(kcrypto_sign_seed_keypair(k->staff_pk, k->staff_sk, seed), 0);
}

static void add_user(struct kpolicy *p, const char *id, int role, bool active, const char *name,
		     const uint8_t sign_pk[32], uint32_t seed)
{
	struct kpolicy_user u;

	memset(&u, 0, sizeof(u));
	snprintf(u.id, sizeof(u.id), "%s", id);
	u.role = role;
	u.active = active;
	u.name = (char *)name;
	u.dept = (char *)"\xe7\xb7\x8f\xe5\x8b\x99\xe9\x83\xa8"; /* 総務部 */
	u.contact = (char *)"ext. 1234 \"quoted\" \\ back";
	kt_fill(u.box_pk, 32, seed);
	memcpy(u.sign_pk, sign_pk, 32);
	u.created = 1700000000 + seed;
	u.password_changed = 1700000100 + seed;
	u.unlock_gen = seed;
	if (seed % 2) {
		u.has_cert = true;
		kt_fill(u.cert_sha256, 32, seed + 1);
	}
	assert_int_equal(kpolicy_user_add(p, &u), 0);
}

/* a policy exercising every field */
static struct kpolicy *sample(const struct keys *k, uint64_t serial)
{
	uint8_t vid[16], c1[16], c2[16], cm[32];
	struct kpolicy *p;
	struct kpolicy_comp *c;
	json_t *nested;

	kt_fill(vid, 16, 210);
	kt_fill(c1, 16, 211);
	kt_fill(c2, 16, 212);
	p = kpolicy_new(vid);
	assert_non_null(p);
	p->serial = serial;
	p->updated = 1700001000;
	snprintf(p->updated_by, sizeof(p->updated_by), "admin1");
	add_user(p, "admin1", KROLE_ADMIN, true, JP_NAME, k->admin_pk, 1);
	add_user(p, "staff.two", KROLE_STAFF, true, "", k->staff_pk, 2);
	add_user(p, "aud-3", KROLE_AUDITOR, false, "Auditor Three", k->staff_pk, 3);
	add_user(p, "bk_4", KROLE_BACKUP, true, "B", k->staff_pk, 4);
	assert_int_equal(kpolicy_comp_add(p, c1, "main", KCLASS_HIMITSU), 0);
	assert_int_equal(kpolicy_comp_add(p, c2, "\xe7\xb5\xa6\xe4\xb8\x8e", KCLASS_GOKUHI), 0); /* 給与 */
	c = kpolicy_comp_find(p, c1);
	kt_fill(cm, 32, 213);
	assert_int_equal(kpolicy_epoch_add(c, 1, cm, 1700000500), 0);
	c = kpolicy_comp_find(p, c2);
	for (uint32_t e = 1; e <= 3; e++) {
		kt_fill(cm, 32, 214 + e);
		assert_int_equal(kpolicy_epoch_add(c, e, cm, 1700000600 + e), 0);
	}
	assert_int_equal(kpolicy_grant_set(p, "admin1", c1, false), 0);
	assert_int_equal(kpolicy_grant_set(p, "admin1", c2, false), 0);
	assert_int_equal(kpolicy_grant_set(p, "staff.two", c1, true), 0);
	json_object_set_new(p->settings, "password.min_length", json_integer(12));
	nested = json_pack("{s:[i,s,b,n], s:{s:f}}", "list", 1, "two", 1, "obj", "real", 2.5);
	assert_non_null(nested);
	json_object_set_new(p->settings, "x-extra", nested);
	return p;
}

static void policy_equal(const struct kpolicy *a, const struct kpolicy *b)
{
	assert_memory_equal(a->vault_id, b->vault_id, 16);
	assert_true(a->serial == b->serial);
	assert_true(a->updated == b->updated);
	assert_string_equal(a->updated_by, b->updated_by);
	assert_int_equal(a->nusers, b->nusers);
	for (size_t i = 0; i < a->nusers; i++) {
		const struct kpolicy_user *x = &a->users[i], *y = &b->users[i];

		assert_string_equal(x->id, y->id);
		assert_int_equal(x->role, y->role);
		assert_int_equal(x->active, y->active);
		assert_string_equal(x->name, y->name);
		assert_string_equal(x->dept, y->dept);
		assert_string_equal(x->contact, y->contact);
		assert_memory_equal(x->box_pk, y->box_pk, 32);
		assert_memory_equal(x->sign_pk, y->sign_pk, 32);
		assert_true(x->created == y->created);
		assert_true(x->password_changed == y->password_changed);
		assert_int_equal(x->unlock_gen, y->unlock_gen);
		assert_int_equal(x->has_cert, y->has_cert);
		if (x->has_cert)
			assert_memory_equal(x->cert_sha256, y->cert_sha256, 32);
	}
	assert_int_equal(a->ncomps, b->ncomps);
	for (size_t i = 0; i < a->ncomps; i++) {
		const struct kpolicy_comp *x = &a->comps[i], *y = &b->comps[i];

		assert_memory_equal(x->id, y->id, 16);
		assert_string_equal(x->hexid, y->hexid);
		assert_string_equal(x->name, y->name);
		assert_int_equal(x->klass, y->klass);
		assert_int_equal(x->current_epoch, y->current_epoch);
		assert_int_equal(x->nepochs, y->nepochs);
		for (size_t j = 0; j < x->nepochs; j++) {
			assert_int_equal(x->epochs[j].epoch, y->epochs[j].epoch);
			assert_memory_equal(x->epochs[j].commitment, y->epochs[j].commitment, 32);
			assert_true(x->epochs[j].created == y->epochs[j].created);
		}
	}
	assert_int_equal(a->ngrants, b->ngrants);
	for (size_t i = 0; i < a->ngrants; i++) {
		assert_string_equal(a->grants[i].user, b->grants[i].user);
		assert_memory_equal(a->grants[i].comp, b->grants[i].comp, 16);
		assert_int_equal(a->grants[i].read_only, b->grants[i].read_only);
	}
	assert_true(json_equal(a->settings, b->settings));
}

static int parse_str(const char *s, struct kpolicy **out)
{
	struct kerrinfo ei;
	int r;

	memset(&ei, 0, sizeof(ei));
	r = kpolicy_parse_body((const uint8_t *)s, strlen(s), out, &ei);
	if (r) {
		kt_check(*out == NULL, "output set on failure");
		kt_check(ei.detail[0] != 0, "no detail for a refused body");
	}
	return r;
}

/* ---------------- round trip ---------------- */

static void test_roundtrip(void **state)
{
	struct keys k;
	struct kpolicy *p, *q = NULL, *r2 = NULL;
	char *body, *body2;
	size_t len, len2;

	(void)state;
	keys_make(&k);
	p = sample(&k, 42);
	assert_int_equal(kpolicy_to_json(p, &body, &len), 0);
	assert_int_equal(strlen(body), len);
	/* plain ASCII on disk (non-ASCII as \u escapes) */
	for (size_t i = 0; i < len; i++)
		kt_check((unsigned char)body[i] < 0x80, "non-ASCII byte at %zu", i);
	assert_int_equal(kpolicy_parse_body((const uint8_t *)body, len, &q, NULL), 0);
	assert_non_null(q);
	policy_equal(p, q);
	assert_string_equal(q->users[0].name, JP_NAME);
	assert_int_equal(kpolicy_to_json(q, &body2, &len2), 0);
	assert_int_equal(len2, len);
	assert_string_equal(body2, body);
	/* lookups on the parsed policy */
	assert_non_null(kpolicy_user_find(q, "staff.two"));
	assert_null(kpolicy_user_find(q, "staff"));
	assert_non_null(kpolicy_comp_find_name(q, "main"));
	assert_int_equal(kpolicy_comp_find_name(q, "\xe7\xb5\xa6\xe4\xb8\x8e")->current_epoch, 3);
	assert_non_null(kpolicy_epoch_find(kpolicy_comp_find_name(q, "\xe7\xb5\xa6\xe4\xb8\x8e"), 2));
	assert_null(kpolicy_epoch_find(kpolicy_comp_find_name(q, "main"), 2));
	assert_true(kpolicy_grant_find(q, "staff.two", q->comps[0].id)->read_only);
	assert_null(kpolicy_grant_find(q, "staff.two", q->comps[1].id));
	/* parsing does not depend on a terminating NUL or on the buffer end */
	{
		uint8_t *exact = malloc(len);

		assert_non_null(exact);
		memcpy(exact, body, len);
		assert_int_equal(kpolicy_parse_body(exact, len, &r2, NULL), 0);
		policy_equal(p, r2);
		kpolicy_free(r2);
		r2 = NULL;
		/* a prefix is not a policy */
		for (size_t n = 0; n < len; n += 1 + n / 8)
			kt_check(kpolicy_parse_body(exact, n, &r2, NULL) != 0, "prefix of %zu bytes", n);
		free(exact);
	}
	free(body);
	free(body2);
	kpolicy_free(p);
	kpolicy_free(q);
	kpolicy_free(NULL);
}

/* a body written by hand (not by kpolicy_to_json): any valid JSON layout,
 * upper-case hex, a bare date, unknown members ignored */
static void test_handwritten(void **state)
{
	static const char doc[] =
		"{\"vault_id\":\"00112233445566778899AABBCCDDEEFF\",\"format\":1,\"serial\":9,"
		"\"updated\":\"2024-02-29\",\"updated_by\":\"root-admin\",\"settings\":{},\"future\":[1,2],"
		"\"users\":[{\"id\":\"root-admin\",\"role\":\"admin\",\"state\":\"active\",\"name\":\"R\","
		"\"dept\":\"\",\"contact\":\"\",\"box_pk\":\"" "0000000000000000000000000000000000000000000000000000000000000001"
		"\",\"sign_pk\":\"" "00000000000000000000000000000000000000000000000000000000000000ff"
		"\",\"created\":\"2024-01-01T00:00:00Z\",\"password_changed\":\"2024-01-02\",\"extra\":true}],"
		"\"compartments\":[{\"id\":\"0123456789abcdef0123456789abcdef\",\"name\":\"c\",\"class\":\"shagaihi\","
		"\"current_epoch\":5,\"epochs\":[{\"epoch\":5,\"commitment\":\""
		"1111111111111111111111111111111111111111111111111111111111111111\",\"created\":\"2024-01-03\"},"
		"{\"epoch\":2,\"commitment\":\"2222222222222222222222222222222222222222222222222222222222222222\","
		"\"created\":\"2024-01-01T12:00:00Z\"}]}],"
		"\"grants\":[{\"user\":\"root-admin\",\"compartment\":\"0123456789ABCDEF0123456789ABCDEF\","
		"\"access\":\"ro\"}]}";
	struct kpolicy *p = NULL;

	(void)state;
	assert_int_equal(parse_str(doc, &p), 0);
	assert_non_null(p);
	assert_int_equal(p->vault_id[0], 0x00);
	assert_int_equal(p->vault_id[15], 0xff);
	assert_true(p->serial == 9);
	assert_true(p->updated == 1709164800); /* 2024-02-29T00:00:00Z */
	assert_int_equal(p->nusers, 1);
	assert_int_equal(p->users[0].role, KROLE_ADMIN);
	assert_true(p->users[0].active);
	assert_int_equal(p->users[0].box_pk[31], 1);
	assert_int_equal(p->users[0].sign_pk[31], 0xff);
	assert_int_equal(p->users[0].unlock_gen, 0);
	assert_false(p->users[0].has_cert);
	assert_true(p->users[0].created == 1704067200);
	assert_int_equal(p->ncomps, 1);
	assert_string_equal(p->comps[0].hexid, "0123456789abcdef0123456789abcdef");
	assert_int_equal(p->comps[0].klass, KCLASS_SHAGAIHI);
	assert_int_equal(p->comps[0].nepochs, 2);
	assert_int_equal(p->comps[0].current_epoch, 5);
	assert_true(p->comps[0].epochs[1].created == 1704067200 + 12 * 3600);
	assert_int_equal(p->ngrants, 1);
	assert_true(p->grants[0].read_only);
	kpolicy_free(p);
}

/* ---------------- structural mutations ---------------- */

static json_t *load_sample(void)
{
	struct keys k;
	struct kpolicy *p;
	char *body;
	size_t len;
	json_t *j;

	keys_make(&k);
	p = sample(&k, 5);
	assert_int_equal(kpolicy_to_json(p, &body, &len), 0);
	j = json_loadb(body, len, 0, NULL);
	assert_non_null(j);
	free(body);
	kpolicy_free(p);
	return j;
}

static int parse_json(json_t *j, char **dump)
{
	struct kpolicy *p = NULL;
	struct kerrinfo ei;
	char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	int r;

	assert_non_null(s);
	memset(&ei, 0, sizeof(ei));
	r = kpolicy_parse_body((const uint8_t *)s, strlen(s), &p, &ei);
	if (r) {
		kt_check(p == NULL, "output set on failure");
		kt_check(ei.detail[0] != 0, "no detail for a refused body");
	}
	kpolicy_free(p);
	if (dump)
		*dump = s;
	else
		free(s);
	return r;
}

/* the objects whose members are all checked: the root, one of each kind */
static json_t *object_at(json_t *root, int which)
{
	switch (which) {
	case 0: return root;
	case 1: return json_array_get(json_object_get(root, "users"), 0); /* admin1, has_cert */
	case 2: return json_array_get(json_object_get(root, "users"), 3); /* bk_4: no grants */
	case 3: return json_array_get(json_object_get(root, "compartments"), 1);
	case 4: return json_array_get(json_object_get(json_array_get(json_object_get(root, "compartments"), 1),
						      "epochs"),
				      1);
	case 5: return json_array_get(json_object_get(root, "grants"), 2);
	default: return NULL;
	}
}

static bool optional_member(const char *key)
{
	return strcmp(key, "unlock_gen") == 0 || strcmp(key, "cert_sha256") == 0;
}

/* every member deleted; every member replaced by a value of another JSON type */
static void test_missing_and_wrong_types(void **state)
{
	json_t *base = load_sample();

	(void)state;
	assert_int_equal(parse_json(base, NULL), 0);
	for (int which = 0; which <= 5; which++) {
		json_t *o = object_at(base, which);
		const char *key;
		json_t *val;
		char *keys[32];
		int nkeys = 0;

		assert_non_null(o);
		/* the member names first: the loop below deletes and re-adds members */
		json_object_foreach(o, key, val) {
			assert_true(nkeys < 32);
			keys[nkeys] = strdup(key);
			assert_non_null(keys[nkeys]);
			nkeys++;
		}
		for (int ki = 0; ki < nkeys; ki++) {
			json_t *variants[7];
			char *k2 = keys[ki];

			val = json_object_get(o, k2);
			assert_non_null(val);
			json_incref(val);
			/* deleted */
			assert_int_equal(json_object_del(o, k2), 0);
			if (optional_member(k2))
				kt_check(parse_json(base, NULL) == 0, "optional '%s' deleted: refused", k2);
			else
				kt_check(parse_json(base, NULL) != 0, "object %d without '%s' accepted", which, k2);
			/* replaced by other types */
			variants[0] = json_integer(1);
			variants[1] = json_string("x");
			variants[2] = json_null();
			variants[3] = json_true();
			variants[4] = json_array();
			variants[5] = json_object();
			variants[6] = json_real(1.0);
			for (int v = 0; v < 7; v++) {
				if (json_typeof(variants[v]) == json_typeof(val) ||
				    (json_is_boolean(variants[v]) && json_is_boolean(val))) {
					json_decref(variants[v]);
					continue;
				}
				assert_int_equal(json_object_set_new(o, k2, variants[v]), 0);
				kt_check(parse_json(base, NULL) != 0, "object %d: '%s' as JSON type %d accepted", which,
					 k2, json_typeof(variants[v]));
			}
			/* restored */
			assert_int_equal(json_object_set_new(o, k2, val), 0);
			free(k2);
		}
		kt_check(nkeys >= 3, "object %d has only %d members", which, nkeys);
		/* an unknown member is ignored */
		json_object_set_new(o, "zz-unknown", json_string("ignored"));
		kt_check(parse_json(base, NULL) == 0, "object %d: unknown member refused", which);
		json_object_del(o, "zz-unknown");
		/* the whole object replaced by another type inside its array */
		if (which > 0 && which != 4) {
			static const char *const arr[] = { NULL, "users", "users", "compartments", NULL, "grants" };
			json_t *a = json_object_get(base, arr[which]);
			size_t idx = which == 1 ? 0 : which == 2 ? 3 : which == 3 ? 1 : 2;

			json_incref(o);
			json_array_set_new(a, idx, json_string("not an object"));
			kt_check(parse_json(base, NULL) != 0, "array %s with a string accepted", arr[which]);
			json_array_set_new(a, idx, o);
		}
	}
	assert_int_equal(parse_json(base, NULL), 0);
	/* the settings member is required: an object */
	json_object_del(base, "settings");
	assert_int_not_equal(parse_json(base, NULL), 0);
	json_decref(base);
}

/* set root/path member to a JSON value given as text; expect refusal or not */
static void expect_member(json_t *base, int which, const char *key, const char *jsontext, bool ok)
{
	json_t *o = object_at(base, which), *old, *nv = json_loads(jsontext, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	int r;

	assert_non_null(o);
	kt_check(nv != NULL, "bad test JSON %s", jsontext);
	old = json_object_get(o, key);
	if (old)
		json_incref(old);
	assert_int_equal(json_object_set_new(o, key, nv), 0);
	r = parse_json(base, NULL);
	if (ok)
		kt_check(r == 0, "object %d: %s = %s refused (%d)", which, key, jsontext, r);
	else
		kt_check(r != 0, "object %d: %s = %s accepted", which, key, jsontext);
	if (old)
		json_object_set_new(o, key, old);
	else
		json_object_del(o, key);
}

static void test_field_values(void **state)
{
	json_t *b = load_sample();
	char s256[300], s255[300], jp85[300], jp86[300];

	(void)state;
	/* root */
	expect_member(b, 0, "format", "2", false);
	expect_member(b, 0, "format", "0", false);
	expect_member(b, 0, "format", "-1", false);
	expect_member(b, 0, "format", "\"1\"", false);
	expect_member(b, 0, "serial", "-1", false);
	expect_member(b, 0, "serial", "0", true); /* the envelope refuses 0; the body only parses */
	expect_member(b, 0, "serial", "9223372036854775807", true);
	expect_member(b, 0, "vault_id", "\"0011223344556677889900aabbccddee\"", true);
	expect_member(b, 0, "vault_id", "\"0011223344556677889900aabbccdde\"", false);
	expect_member(b, 0, "vault_id", "\"0011223344556677889900aabbccddeeff\"", false);
	expect_member(b, 0, "vault_id", "\"0011223344556677889900aabbccddeg\"", false);
	expect_member(b, 0, "vault_id", "\"0011223344556677889900aabbccdd e\"", false);
	expect_member(b, 0, "vault_id", "\"\"", false);
	expect_member(b, 0, "updated", "\"2024-13-01\"", false);
	expect_member(b, 0, "updated", "\"yesterday\"", false);
	expect_member(b, 0, "updated", "\"2024-01-01T00:00:00\"", false);
	expect_member(b, 0, "updated", "\"2024-01-01\"", true);
	expect_member(b, 0, "updated_by", "\"abcdefghijklmnopqrstuvwxyz0123456\"", false);
	expect_member(b, 0, "settings", "{\"a\":[[[[[[[[[[1]]]]]]]]]],\"b\":{\"c\":null}}", true);

	/* user */
	expect_member(b, 2, "id", "\"Staff\"", false);
	expect_member(b, 2, "id", "\"\"", false);
	expect_member(b, 2, "id", "\"a/b\"", false);
	expect_member(b, 2, "id", "\"abcdefghijklmnopqrstuvwxyz012345\"", true);
	expect_member(b, 2, "id", "\"abcdefghijklmnopqrstuvwxyz0123456\"", false);
	expect_member(b, 2, "id", "\"admin1\"", false); /* duplicate user */
	expect_member(b, 2, "role", "\"root\"", false);
	expect_member(b, 2, "role", "\"Admin\"", false);
	expect_member(b, 2, "role", "\"\"", false);
	expect_member(b, 2, "role", "\"auditor\"", true);
	expect_member(b, 2, "state", "\"enabled\"", false);
	expect_member(b, 2, "state", "\"disabled\"", true);
	expect_member(b, 2, "box_pk", "\"00\"", false);
	expect_member(b, 2, "sign_pk", "\"zz00000000000000000000000000000000000000000000000000000000000000\"", false);
	expect_member(b, 2, "created", "\"\"", false);
	expect_member(b, 2, "unlock_gen", "4294967295", true);
	expect_member(b, 2, "unlock_gen", "4294967296", false);
	expect_member(b, 2, "unlock_gen", "-1", false);
	expect_member(b, 1, "cert_sha256", "\"00\"", false);
	/* text lengths: 255 bytes allowed, 256 refused; UTF-8 counts bytes */
	memset(s256, 'n', sizeof(s256));
	s256[0] = '"';
	s256[257] = '"';
	s256[258] = 0;
	memcpy(s255, s256, sizeof(s255));
	s255[256] = '"';
	s255[257] = 0;
	jp85[0] = jp86[0] = '"';
	for (int i = 0; i < 86; i++) {
		memcpy(jp86 + 1 + 3 * i, "\xe6\x97\xa5", 3);
		if (i < 85)
			memcpy(jp85 + 1 + 3 * i, "\xe6\x97\xa5", 3);
	}
	memcpy(jp85 + 1 + 255, "\"", 2);
	memcpy(jp86 + 1 + 258, "\"", 2);
	for (int f = 0; f < 3; f++) {
		static const char *const fields[] = { "name", "dept", "contact" };

		expect_member(b, 2, fields[f], s255, true);
		expect_member(b, 2, fields[f], s256, false);
		expect_member(b, 2, fields[f], jp85, true);
		expect_member(b, 2, fields[f], jp86, false);
		expect_member(b, 2, fields[f], "\"a\\u0000b\"", false); /* embedded NUL */
		expect_member(b, 2, fields[f], "\"\"", true);
	}

	/* compartment */
	expect_member(b, 3, "id", "\"0011\"", false);
	expect_member(b, 3, "name", "\"\"", false);
	expect_member(b, 3, "name", "\".\"", false);
	expect_member(b, 3, "name", "\"..\"", false);
	expect_member(b, 3, "name", "\"a/b\"", false);
	expect_member(b, 3, "name", "\"main\"", false); /* duplicate name */
	expect_member(b, 3, "name", s255, true);
	expect_member(b, 3, "name", s256, false);
	expect_member(b, 3, "name", "\"x\\u0000\"", false);
	expect_member(b, 3, "class", "\"secret\"", false);
	expect_member(b, 3, "class", "\"GOKUHI\"", false);
	expect_member(b, 3, "class", "\"shagaihi\"", true);
	expect_member(b, 3, "current_epoch", "2", false);
	expect_member(b, 3, "current_epoch", "4", false);
	expect_member(b, 3, "current_epoch", "0", false);
	expect_member(b, 3, "current_epoch", "4294967299", false);
	expect_member(b, 3, "epochs", "[]", false);
	/* epoch entries */
	expect_member(b, 4, "epoch", "0", false);
	expect_member(b, 4, "epoch", "1", false); /* duplicate */
	expect_member(b, 4, "epoch", "4294967298", false);
	expect_member(b, 4, "epoch", "-2", false);
	expect_member(b, 4, "commitment", "\"11\"", false);
	expect_member(b, 4, "created", "\"never\"", false);
	/* grants */
	expect_member(b, 5, "user", "\"nobody\"", false);
	expect_member(b, 5, "user", "\"aud-3\"", true); /* a disabled user may hold a grant */
	expect_member(b, 5, "compartment", "\"ffffffffffffffffffffffffffffffff\"", false);
	expect_member(b, 5, "compartment", "\"fff\"", false);
	expect_member(b, 5, "access", "\"RW\"", false);
	expect_member(b, 5, "access", "\"rwx\"", false);
	expect_member(b, 5, "access", "\"\"", false);
	expect_member(b, 5, "access", "\"rw\"", true);
	/* grant naming a user in the same compartment twice */
	expect_member(b, 5, "user", "\"admin1\"", false);
	assert_int_equal(parse_json(b, NULL), 0);

	/* duplicate compartment id */
	{
		json_t *comps = json_object_get(b, "compartments");
		json_t *dup = json_deep_copy(json_array_get(comps, 0));

		json_object_set_new(dup, "name", json_string("other"));
		json_array_append_new(comps, dup);
		assert_int_not_equal(parse_json(b, NULL), 0);
		json_array_remove(comps, 2);
		assert_int_equal(parse_json(b, NULL), 0);
	}
	/* duplicate user object */
	{
		json_t *users = json_object_get(b, "users");

		json_array_append_new(users, json_deep_copy(json_array_get(users, 3)));
		assert_int_not_equal(parse_json(b, NULL), 0);
		json_array_remove(users, 4);
	}
	/* a grant before its user: users are read first, order inside the object does not matter */
	assert_int_equal(parse_json(b, NULL), 0);
	json_decref(b);
}

static void test_not_json(void **state)
{
	static const char *const docs[] = {
		"", " ", "{", "}", "[]", "null", "1", "\"policy\"", "{}", "{\"format\":1}",
		"{\"format\":1,}", "{'format':1}", "{\"format\":1 \"serial\":1}", "\xef\xbb\xbf{}",
		"{\"format\":99999999999999999999999}", "{\"format\":1e999}", "{\"a\":\"\xff\xfe\"}",
		"{\"a\":\"\xc0\xaf\"}", "{\"format\":1,\"format\":1}", "{\"a\":1}{\"b\":2}", "NaN",
	};
	struct kpolicy *p = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
		kt_check(parse_str(docs[i], &p) != 0, "document %zu accepted", i);
	/* raw NUL byte inside */
	{
		static const char withnul[] = "{\"format\":1\0}";

		assert_int_not_equal(kpolicy_parse_body((const uint8_t *)withnul, sizeof(withnul) - 1, &p, NULL), 0);
		assert_null(p);
	}
	/* duplicate member names in a real document */
	{
		json_t *b = load_sample();
		char *s;
		size_t n;

		assert_int_equal(parse_json(b, &s), 0);
		n = strlen(s);
		/* "{...}" -> "{...,"serial":5}" */
		s = realloc(s, n + 32);
		assert_non_null(s);
		snprintf(s + n - 1, 32, ",\"serial\":5}");
		assert_int_not_equal(parse_str(s, &p), 0);
		free(s);
		json_decref(b);
	}
	/* deep nesting: refused (or accepted) without running out of stack */
	{
		size_t depth = 200000;
		char *d = malloc(2 * depth + 64);
		size_t n = 0;

		assert_non_null(d);
		n += (size_t)sprintf(d, "{\"settings\":");
		for (size_t i = 0; i < depth; i++)
			d[n++] = '[';
		for (size_t i = 0; i < depth; i++)
			d[n++] = ']';
		d[n++] = '}';
		d[n] = 0;
		assert_int_not_equal(parse_str(d, &p), 0);
		free(d);
	}
}

/* many entries: the parser stays linear enough and frees everything */
static void test_many_entries(void **state)
{
	json_t *b = load_sample();
	json_t *users = json_object_get(b, "users"), *grants = json_object_get(b, "grants");
	json_t *tmpl = json_array_get(users, 1);
	char *s;
	struct kpolicy *p = NULL;

	(void)state;
	for (int i = 0; i < 2000; i++) {
		json_t *u = json_deep_copy(tmpl);
		char id[32];

		snprintf(id, sizeof(id), "user%d", i);
		json_object_set_new(u, "id", json_string(id));
		json_array_append_new(users, u);
		json_array_append_new(grants, json_pack("{s:s,s:s,s:s}", "user", id, "compartment",
							json_string_value(json_object_get(
								json_array_get(json_object_get(b, "compartments"), 0), "id")),
							"access", i % 2 ? "ro" : "rw"));
	}
	assert_int_equal(parse_json(b, &s), 0);
	assert_int_equal(parse_str(s, &p), 0);
	assert_int_equal(p->nusers, 4 + 2000);
	assert_int_equal(p->ngrants, 3 + 2000);
	assert_non_null(kpolicy_user_find(p, "user1999"));
	kpolicy_free(p);
	free(s);
	json_decref(b);
}

/* settings of the wrong types fall back to the documented defaults */
static void test_settings_hostile(void **state)
{
	struct keys k;
	struct kpolicy *p;
	struct kpolicy_settings st;

	(void)state;
	keys_make(&k);
	p = sample(&k, 1);
	json_object_clear(p->settings);
	kpolicy_settings_get(p, &st);
	assert_int_equal(st.max_admins, 2);
	assert_int_equal(st.pw_min_length, 8);
	json_object_set_new(p->settings, "admin.max", json_string("3"));
	json_object_set_new(p->settings, "password.min_length", json_integer(-5));
	json_object_set_new(p->settings, "password.max_age_days", json_integer(INT64_MAX));
	json_object_set_new(p->settings, "unlock.delay_ms", json_real(1e300));
	json_object_set_new(p->settings, "password.mode", json_integer(1));
	json_object_set_new(p->settings, "second_factor.classes", json_pack("[i,s,n,s]", 1, "nope", "gokuhi"));
	json_object_set_new(p->settings, "ids.forbidden", json_string("alice"));
	kpolicy_settings_get(p, &st);
	assert_int_equal(st.max_admins, 2);
	assert_int_equal(st.pw_min_length, 8);
	assert_int_equal(st.pw_max_age_days, 60);
	assert_int_equal(st.unlock_delay_ms, 1000);
	assert_int_equal(st.pw_mode, KPW_EXPIRING);
	assert_true(st.second_factor_class[KCLASS_GOKUHI]);
	assert_false(st.second_factor_class[KCLASS_HIMITSU]);
	assert_false(kpolicy_id_forbidden(p, "alice"));
	assert_true(kpolicy_id_forbidden(p, "admin"));
	kpolicy_free(p);
}

/* ---------------- signed policy files ---------------- */

static int vault_dir(char *path, size_t n)
{
	int fd;

	snprintf(path, n, "/tmp/kinko-unit-policy.XXXXXX");
	assert_non_null(mkdtemp(path));
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(mkdirat(fd, "policy", 0755), 0);
	return fd;
}

static void rm_tree(int at, const char *name)
{
	int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd >= 0) {
		DIR *d = fdopendir(fd);
		struct dirent *de;

		assert_non_null(d);
		while ((de = readdir(d)) != NULL)
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				rm_tree(dirfd(d), de->d_name);
		closedir(d);
		assert_int_equal(unlinkat(at, name, AT_REMOVEDIR), 0);
	} else {
		assert_int_equal(unlinkat(at, name, 0), 0);
	}
}

static void test_store_load(void **state)
{
	struct keys k;
	struct kpolicy *p, *q = NULL;
	struct kerrinfo ei;
	char dir[64];
	int vfd = vault_dir(dir, sizeof(dir));

	(void)state;
	keys_make(&k);
	p = sample(&k, 1);
	assert_int_equal(kpolicy_store(vfd, p, "admin1", k.admin_sk, k.root_sk, NULL), 0);
	assert_string_equal(p->updated_by, "admin1");
	assert_int_equal(kpolicy_load(vfd, p->vault_id, k.root_pk, &q, NULL), 0);
	policy_equal(p, q);
	kpolicy_free(q);
	q = NULL;
	/* a policy file is never overwritten */
	assert_int_equal(kpolicy_store(vfd, p, "admin1", k.admin_sk, k.root_sk, NULL), -EEXIST);
	/* the newest serial wins */
	p->serial = 2;
	assert_int_equal(kpolicy_user_find(p, "bk_4")->role, KROLE_BACKUP);
	kpolicy_user_find(p, "bk_4")->active = false;
	assert_int_equal(kpolicy_store(vfd, p, "admin1", k.admin_sk, k.root_sk, NULL), 0);
	assert_int_equal(kpolicy_load(vfd, p->vault_id, k.root_pk, &q, NULL), 0);
	assert_true(q->serial == 2);
	assert_false(kpolicy_user_find(q, "bk_4")->active);
	kpolicy_free(q);
	q = NULL;
	/* wrong root key, wrong vault id */
	memset(&ei, 0, sizeof(ei));
	assert_int_equal(kpolicy_load(vfd, p->vault_id, k.admin_pk, &q, &ei), KERR_AUTH);
	assert_null(q);
	assert_string_equal(ei.file, "policy/policy.2");
	{
		uint8_t other[16];

		memcpy(other, p->vault_id, 16);
		other[0] ^= 1;
		assert_int_equal(kpolicy_load(vfd, other, k.root_pk, &q, NULL), KERR_MISMATCH);
	}
	/* a renamed (replayed) file: serial 2 presented as 3 */
	assert_int_equal(renameat(vfd, "policy/policy.2", vfd, "policy/policy.3"), 0);
	assert_int_equal(kpolicy_load(vfd, p->vault_id, k.root_pk, &q, NULL), KERR_MISMATCH);
	assert_int_equal(unlinkat(vfd, "policy/policy.3", 0), 0);
	/* signed by a staff member (valid signature, not an admin) */
	p->serial = 4;
	assert_int_equal(kpolicy_store(vfd, p, "staff.two", k.staff_sk, k.root_sk, NULL), 0);
	assert_int_equal(kpolicy_load(vfd, p->vault_id, k.root_pk, &q, NULL), KERR_AUTH);
	/* signed by someone not in the policy */
	p->serial = 5;
	assert_int_equal(kpolicy_store(vfd, p, "ghost", k.admin_sk, k.root_sk, NULL), 0);
	assert_int_equal(kpolicy_load(vfd, p->vault_id, k.root_pk, &q, NULL), KERR_AUTH);
	/* the admin's name on another key's signature */
	p->serial = 6;
	assert_int_equal(kpolicy_store(vfd, p, "admin1", k.staff_sk, k.root_sk, NULL), 0);
	assert_int_equal(kpolicy_load(vfd, p->vault_id, k.root_pk, &q, NULL), KERR_AUTH);
	/* body serial differs from the envelope's */
	{
		char *body;
		size_t blen;
		struct kbuf b;

		p->serial = 7;
		assert_int_equal(kpolicy_to_json(p, &body, &blen), 0);
		kbuf_init_writer(&b);
		assert_int_equal(kformat_policy_serialize(p->vault_id, 8, body, blen, "admin1", k.admin_sk, k.root_sk,
							  &b),
				 0);
		assert_int_equal(kfile_create_at(vfd, "policy/policy.8", b.p, b.len, 0644), 0);
		assert_int_equal(kpolicy_load(vfd, p->vault_id, k.root_pk, &q, NULL), KERR_MISMATCH);
		kbuf_free(&b);
		free(body);
	}
	/* a corrupt body under valid signatures */
	{
		struct kbuf b;
		static const char junk[] = "{\"format\":1,\"vault_id\":\"nothex\"}";

		kbuf_init_writer(&b);
		assert_int_equal(kformat_policy_serialize(p->vault_id, 9, junk, strlen(junk), "admin1", k.admin_sk,
							  k.root_sk, &b),
				 0);
		assert_int_equal(kfile_create_at(vfd, "policy/policy.9", b.p, b.len, 0644), 0);
		memset(&ei, 0, sizeof(ei));
		assert_int_equal(kpolicy_load(vfd, p->vault_id, k.root_pk, &q, &ei), KERR_FORMAT);
		assert_string_equal(ei.file, "policy/policy.9");
		kbuf_free(&b);
	}
	/* a truncated newest file */
	assert_int_equal(kfile_create_at(vfd, "policy/policy.10", "KINKOPOL", 8, 0644), 0);
	assert_int_equal(kpolicy_load(vfd, p->vault_id, k.root_pk, &q, NULL), KERR_FORMAT);
	assert_null(q);
	kpolicy_free(p);
	close(vfd);
	rm_tree(AT_FDCWD, dir);
}

/* policy.h: "the signer must be an active admin of that policy" */
static void test_load_disabled_admin(void **state)
{
	struct keys k;
	struct kpolicy *p, *q = NULL;
	char dir[64];
	int vfd = vault_dir(dir, sizeof(dir)), r;

	(void)state;
	keys_make(&k);
	p = sample(&k, 1);
	kpolicy_user_find(p, "admin1")->active = false;
	assert_int_equal(kpolicy_store(vfd, p, "admin1", k.admin_sk, k.root_sk, NULL), 0);
	r = kpolicy_load(vfd, p->vault_id, k.root_pk, &q, NULL);
	kpolicy_free(q);
	kpolicy_free(p);
	close(vfd);
	rm_tree(AT_FDCWD, dir);
	kt_check(r == KERR_AUTH, "a policy signed by a disabled administrator was loaded (r=%d)", r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_handwritten),
		cmocka_unit_test(test_missing_and_wrong_types),
		cmocka_unit_test(test_field_values),
		cmocka_unit_test(test_not_json),
		cmocka_unit_test(test_many_entries),
		cmocka_unit_test(test_settings_hostile),
		cmocka_unit_test(test_store_load),
		cmocka_unit_test(test_load_disabled_admin),
	};

	return cmocka_run_group_tests_name("policy", tests, kt_group_setup, NULL);
}

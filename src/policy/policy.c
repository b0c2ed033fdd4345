// SPDX-License-Identifier: GPL-2.0-or-later
/* Policy body (JSON, parsed with jansson) and its signed envelope on disk. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "kinko/policy.h"

#define MAX_USERS 100000
#define MAX_COMPS 10000
#define MAX_EPOCHS 100000
#define MAX_GRANTS 1000000

static const char *const role_names[] = { "staff", "admin", "auditor", "backup" };
static const char *const class_names[] = { "gokuhi", "himitsu", "shagaihi" };

const char *krole_name(int role)
{
	return role >= 0 && role < 4 ? role_names[role] : "unknown";
}

int krole_from_name(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, role_names[i]) == 0)
			return i;
	return KERR_USAGE;
}

const char *kclass_name(int c)
{
	return c >= 0 && c < 3 ? class_names[c] : "unknown";
}

int kclass_from_name(const char *s)
{
	for (int i = 0; i < 3; i++)
		if (strcmp(s, class_names[i]) == 0)
			return i;
	return KERR_USAGE;
}

struct kpolicy *kpolicy_new(const uint8_t vault_id[16])
{
	struct kpolicy *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	memcpy(p->vault_id, vault_id, 16);
	p->settings = json_object();
	if (!p->settings) {
		free(p);
		return NULL;
	}
	return p;
}

void kpolicy_free(struct kpolicy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->nusers; i++) {
		free(p->users[i].name);
		free(p->users[i].dept);
		free(p->users[i].contact);
	}
	for (size_t i = 0; i < p->ncomps; i++) {
		free(p->comps[i].name);
		free(p->comps[i].epochs);
	}
	free(p->users);
	free(p->comps);
	free(p->grants);
	json_decref(p->settings);
	free(p);
}

/* ---- lookup ---- */

struct kpolicy_user *kpolicy_user_find(const struct kpolicy *p, const char *id)
{
	for (size_t i = 0; i < p->nusers; i++)
		if (strcmp(p->users[i].id, id) == 0)
			return &p->users[i];
	return NULL;
}

struct kpolicy_comp *kpolicy_comp_find(const struct kpolicy *p, const uint8_t id[16])
{
	for (size_t i = 0; i < p->ncomps; i++)
		if (memcmp(p->comps[i].id, id, 16) == 0)
			return &p->comps[i];
	return NULL;
}

struct kpolicy_comp *kpolicy_comp_find_name(const struct kpolicy *p, const char *name)
{
	for (size_t i = 0; i < p->ncomps; i++)
		if (strcmp(p->comps[i].name, name) == 0)
			return &p->comps[i];
	return NULL;
}

const struct kpolicy_epoch *kpolicy_epoch_find(const struct kpolicy_comp *c, uint32_t epoch)
{
	for (size_t i = 0; i < c->nepochs; i++)
		if (c->epochs[i].epoch == epoch)
			return &c->epochs[i];
	return NULL;
}

const struct kpolicy_grant *kpolicy_grant_find(const struct kpolicy *p, const char *user,
					       const uint8_t comp[16])
{
	for (size_t i = 0; i < p->ngrants; i++)
		if (strcmp(p->grants[i].user, user) == 0 && memcmp(p->grants[i].comp, comp, 16) == 0)
			return &p->grants[i];
	return NULL;
}

/* ---- mutation ---- */

static int grow(void **arr, size_t n, size_t elem)
{
	void *np = realloc(*arr, (n + 1) * elem);

	if (!np)
		return -ENOMEM;
	*arr = np;
	memset((char *)np + n * elem, 0, elem);
	return 0;
}

static char *dupstr(const char *s) { return strdup(s ? s : ""); }

int kpolicy_user_add(struct kpolicy *p, const struct kpolicy_user *u)
{
	struct kpolicy_user *d;

	if (kpolicy_user_find(p, u->id))
		return -EEXIST;
	if ((u->name && strlen(u->name) > KPOLICY_TEXT_MAX) ||
	    (u->dept && strlen(u->dept) > KPOLICY_TEXT_MAX) ||
	    (u->contact && strlen(u->contact) > KPOLICY_TEXT_MAX))
		return KERR_USAGE;
	if (p->nusers >= MAX_USERS || grow((void **)&p->users, p->nusers, sizeof(*p->users)))
		return -ENOMEM;
	d = &p->users[p->nusers];
	*d = *u;
	d->name = dupstr(u->name);
	d->dept = dupstr(u->dept);
	d->contact = dupstr(u->contact);
	if (!d->name || !d->dept || !d->contact) {
		free(d->name);
		free(d->dept);
		free(d->contact);
		return -ENOMEM;
	}
	p->nusers++;
	return 0;
}

int kpolicy_comp_add(struct kpolicy *p, const uint8_t id[16], const char *name, int klass)
{
	struct kpolicy_comp *c;

	if (kpolicy_comp_find(p, id) || kpolicy_comp_find_name(p, name))
		return -EEXIST;
	if (p->ncomps >= MAX_COMPS || grow((void **)&p->comps, p->ncomps, sizeof(*p->comps)))
		return -ENOMEM;
	c = &p->comps[p->ncomps];
	memcpy(c->id, id, 16);
	khex_encode(c->hexid, id, 16);
	c->name = strdup(name);
	c->klass = klass;
	if (!c->name)
		return -ENOMEM;
	p->ncomps++;
	return 0;
}

int kpolicy_epoch_add(struct kpolicy_comp *c, uint32_t epoch, const uint8_t commitment[32],
		      int64_t created)
{
	if (epoch == 0 || kpolicy_epoch_find(c, epoch))
		return -EEXIST;
	if (c->nepochs >= MAX_EPOCHS || grow((void **)&c->epochs, c->nepochs, sizeof(*c->epochs)))
		return -ENOMEM;
	c->epochs[c->nepochs].epoch = epoch;
	memcpy(c->epochs[c->nepochs].commitment, commitment, 32);
	c->epochs[c->nepochs].created = created;
	c->nepochs++;
	if (epoch > c->current_epoch)
		c->current_epoch = epoch;
	return 0;
}

int kpolicy_grant_set(struct kpolicy *p, const char *user, const uint8_t comp[16], bool read_only)
{
	struct kpolicy_grant *g = (struct kpolicy_grant *)kpolicy_grant_find(p, user, comp);

	if (!g) {
		if (p->ngrants >= MAX_GRANTS || grow((void **)&p->grants, p->ngrants, sizeof(*p->grants)))
			return -ENOMEM;
		g = &p->grants[p->ngrants++];
		snprintf(g->user, sizeof(g->user), "%s", user);
		memcpy(g->comp, comp, 16);
	}
	g->read_only = read_only;
	return 0;
}

/* ---- JSON ---- */

static json_t *hexstr(const uint8_t *b, size_t n)
{
	char h[2 * 64 + 1];

	khex_encode(h, b, n);
	return json_string(h);
}

static json_t *isotime(int64_t t)
{
	char s[32];

	ktime_iso(s, sizeof(s), t);
	return json_string(s);
}

int kpolicy_to_json(const struct kpolicy *p, char **body, size_t *len)
{
	json_t *root = json_object(), *users = json_array(), *comps = json_array(),
	       *grants = json_array();
	int r = -ENOMEM;

	if (!root || !users || !comps || !grants)
		goto out;
	json_object_set_new(root, "format", json_integer(1));
	json_object_set_new(root, "vault_id", hexstr(p->vault_id, 16));
	json_object_set_new(root, "serial", json_integer((json_int_t)p->serial));
	json_object_set_new(root, "updated", isotime(p->updated));
	json_object_set_new(root, "updated_by", json_string(p->updated_by));
	json_object_set(root, "settings", p->settings);
	for (size_t i = 0; i < p->nusers; i++) {
		const struct kpolicy_user *u = &p->users[i];
		json_t *o = json_object();

		json_object_set_new(o, "id", json_string(u->id));
		json_object_set_new(o, "role", json_string(krole_name(u->role)));
		json_object_set_new(o, "state", json_string(u->active ? "active" : "disabled"));
		json_object_set_new(o, "name", json_string(u->name));
		json_object_set_new(o, "dept", json_string(u->dept));
		json_object_set_new(o, "contact", json_string(u->contact));
		json_object_set_new(o, "box_pk", hexstr(u->box_pk, 32));
		json_object_set_new(o, "sign_pk", hexstr(u->sign_pk, 32));
		json_object_set_new(o, "created", isotime(u->created));
		json_object_set_new(o, "password_changed", isotime(u->password_changed));
		json_object_set_new(o, "unlock_gen", json_integer(u->unlock_gen));
		if (u->has_cert)
			json_object_set_new(o, "cert_sha256", hexstr(u->cert_sha256, 32));
		json_array_append_new(users, o);
	}
	for (size_t i = 0; i < p->ncomps; i++) {
		const struct kpolicy_comp *c = &p->comps[i];
		json_t *o = json_object(), *eps = json_array();

		json_object_set_new(o, "id", json_string(c->hexid));
		json_object_set_new(o, "name", json_string(c->name));
		json_object_set_new(o, "class", json_string(kclass_name(c->klass)));
		json_object_set_new(o, "current_epoch", json_integer(c->current_epoch));
		for (size_t j = 0; j < c->nepochs; j++) {
			json_t *e = json_object();

			json_object_set_new(e, "epoch", json_integer(c->epochs[j].epoch));
			json_object_set_new(e, "commitment", hexstr(c->epochs[j].commitment, 32));
			json_object_set_new(e, "created", isotime(c->epochs[j].created));
			json_array_append_new(eps, e);
		}
		json_object_set_new(o, "epochs", eps);
		json_array_append_new(comps, o);
	}
	for (size_t i = 0; i < p->ngrants; i++) {
		json_t *o = json_object();

		json_object_set_new(o, "user", json_string(p->grants[i].user));
		json_object_set_new(o, "compartment", hexstr(p->grants[i].comp, 16));
		json_object_set_new(o, "access", json_string(p->grants[i].read_only ? "ro" : "rw"));
		json_array_append_new(grants, o);
	}
	json_object_set_new(root, "users", users);
	json_object_set_new(root, "compartments", comps);
	json_object_set_new(root, "grants", grants);
	users = comps = grants = NULL;
	*body = json_dumps(root, JSON_INDENT(1) | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
	if (!*body)
		goto out;
	*len = strlen(*body);
	r = 0;
out:
	json_decref(users);
	json_decref(comps);
	json_decref(grants);
	json_decref(root);
	return r;
}

/* bounded field getters: every one checks type and size */
static int get_str(json_t *o, const char *k, size_t max, const char **out)
{
	json_t *v = json_object_get(o, k);

	if (!json_is_string(v) || json_string_length(v) > max)
		return KERR_FORMAT;
	*out = json_string_value(v);
	if (strlen(*out) != json_string_length(v))
		return KERR_FORMAT; /* embedded NUL */
	return 0;
}

static int get_hex(json_t *o, const char *k, uint8_t *out, size_t n)
{
	const char *s;
	int r = get_str(o, k, 2 * n, &s);

	return r ? r : khex_decode(out, n, s);
}

static int get_time(json_t *o, const char *k, int64_t *t)
{
	const char *s;
	int r = get_str(o, k, 40, &s);

	if (r)
		return r;
	return ktime_parse(s, t) ? KERR_FORMAT : 0;
}

static int get_uint(json_t *o, const char *k, uint64_t max, uint64_t *v)
{
	json_t *j = json_object_get(o, k);

	if (!json_is_integer(j) || json_integer_value(j) < 0 ||
	    (uint64_t)json_integer_value(j) > max)
		return KERR_FORMAT;
	*v = (uint64_t)json_integer_value(j);
	return 0;
}

static int parse_user(json_t *o, struct kpolicy *p)
{
	struct kpolicy_user u;
	const char *id, *role, *state, *name, *dept, *contact;
	int r;

	memset(&u, 0, sizeof(u));
	if (!json_is_object(o))
		return KERR_FORMAT;
	if ((r = get_str(o, "id", KFORMAT_USERID_MAX, &id)) || (r = get_str(o, "role", 16, &role)) ||
	    (r = get_str(o, "state", 16, &state)) ||
	    (r = get_str(o, "name", KPOLICY_TEXT_MAX, &name)) ||
	    (r = get_str(o, "dept", KPOLICY_TEXT_MAX, &dept)) ||
	    (r = get_str(o, "contact", KPOLICY_TEXT_MAX, &contact)) ||
	    (r = get_hex(o, "box_pk", u.box_pk, 32)) || (r = get_hex(o, "sign_pk", u.sign_pk, 32)) ||
	    (r = get_time(o, "created", &u.created)) ||
	    (r = get_time(o, "password_changed", &u.password_changed)))
		return r;
	if (!kuser_id_valid(id) || (u.role = krole_from_name(role)) < 0)
		return KERR_FORMAT;
	if (json_object_get(o, "unlock_gen")) {
		uint64_t g;

		if ((r = get_uint(o, "unlock_gen", UINT32_MAX, &g)) != 0)
			return r;
		u.unlock_gen = (uint32_t)g;
	}
	if (json_object_get(o, "cert_sha256")) {
		if ((r = get_hex(o, "cert_sha256", u.cert_sha256, 32)) != 0)
			return r;
		u.has_cert = true;
	}
	if (strcmp(state, "active") != 0 && strcmp(state, "disabled") != 0)
		return KERR_FORMAT;
	u.active = strcmp(state, "active") == 0;
	snprintf(u.id, sizeof(u.id), "%s", id);
	u.name = (char *)name;
	u.dept = (char *)dept;
	u.contact = (char *)contact;
	r = kpolicy_user_add(p, &u);
	return r == -EEXIST ? KERR_FORMAT : r;
}

static int parse_comp(json_t *o, struct kpolicy *p)
{
	uint8_t id[16];
	const char *name, *klass;
	json_t *eps, *e;
	uint64_t cur;
	size_t i;
	int r, kl;
	struct kpolicy_comp *c;

	if (!json_is_object(o))
		return KERR_FORMAT;
	if ((r = get_hex(o, "id", id, 16)) || (r = get_str(o, "name", KPOLICY_TEXT_MAX, &name)) ||
	    (r = get_str(o, "class", 16, &klass)) || (r = get_uint(o, "current_epoch", UINT32_MAX, &cur)))
		return r;
	if (!kformat_name_valid(name, strlen(name)) || (kl = kclass_from_name(klass)) < 0)
		return KERR_FORMAT;
	if ((r = kpolicy_comp_add(p, id, name, kl)) != 0)
		return r == -EEXIST ? KERR_FORMAT : r;
	c = &p->comps[p->ncomps - 1];
	eps = json_object_get(o, "epochs");
	if (!json_is_array(eps) || json_array_size(eps) == 0 || json_array_size(eps) > MAX_EPOCHS)
		return KERR_FORMAT;
	json_array_foreach(eps, i, e) {
		uint64_t ep;
		uint8_t cm[32];
		int64_t created;

		if (!json_is_object(e) || (r = get_uint(e, "epoch", UINT32_MAX, &ep)) ||
		    (r = get_hex(e, "commitment", cm, 32)) || (r = get_time(e, "created", &created)))
			return r ? r : KERR_FORMAT;
		if ((r = kpolicy_epoch_add(c, (uint32_t)ep, cm, created)) != 0)
			return r == -EEXIST ? KERR_FORMAT : r;
	}
	if (c->current_epoch != cur)
		return KERR_FORMAT;
	return 0;
}

static int parse_grant(json_t *o, struct kpolicy *p)
{
	const char *user, *access;
	uint8_t comp[16];
	int r;

	if (!json_is_object(o))
		return KERR_FORMAT;
	if ((r = get_str(o, "user", KFORMAT_USERID_MAX, &user)) ||
	    (r = get_hex(o, "compartment", comp, 16)) || (r = get_str(o, "access", 4, &access)))
		return r;
	if (!kpolicy_user_find(p, user) || !kpolicy_comp_find(p, comp) ||
	    kpolicy_grant_find(p, user, comp))
		return KERR_FORMAT;
	if (strcmp(access, "rw") != 0 && strcmp(access, "ro") != 0)
		return KERR_FORMAT;
	return kpolicy_grant_set(p, user, comp, strcmp(access, "ro") == 0);
}

int kpolicy_parse_body(const uint8_t *body, size_t len, struct kpolicy **out, struct kerrinfo *ei)
{
	json_t *root = NULL, *a, *e, *settings;
	json_error_t jerr;
	struct kpolicy *p = NULL;
	uint8_t vid[16];
	uint64_t serial, fmt;
	const char *by;
	size_t i;
	int r = KERR_FORMAT;

	*out = NULL;
	root = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		kerr_set(ei, NULL, "policy is not valid JSON (line %d: %s)", jerr.line, jerr.text);
		goto out;
	}
	if (!json_is_object(root) || get_uint(root, "format", 100, &fmt) || fmt != 1 ||
	    get_hex(root, "vault_id", vid, 16) || get_uint(root, "serial", INT64_MAX, &serial) ||
	    get_str(root, "updated_by", KFORMAT_USERID_MAX, &by)) {
		kerr_set(ei, NULL, "policy fields missing or malformed");
		goto out;
	}
	if (!(p = kpolicy_new(vid))) {
		r = -ENOMEM;
		goto out;
	}
	p->serial = serial;
	snprintf(p->updated_by, sizeof(p->updated_by), "%s", by);
	if (get_time(root, "updated", &p->updated))
		goto bad;
	settings = json_object_get(root, "settings");
	if (!json_is_object(settings))
		goto bad;
	json_decref(p->settings);
	p->settings = json_incref(settings);
	a = json_object_get(root, "users");
	if (!json_is_array(a) || json_array_size(a) > MAX_USERS)
		goto bad;
	json_array_foreach(a, i, e) if ((r = parse_user(e, p)) != 0) goto bad;
	a = json_object_get(root, "compartments");
	if (!json_is_array(a) || json_array_size(a) > MAX_COMPS)
		goto bad;
	json_array_foreach(a, i, e) if ((r = parse_comp(e, p)) != 0) goto bad;
	a = json_object_get(root, "grants");
	if (!json_is_array(a) || json_array_size(a) > MAX_GRANTS)
		goto bad;
	json_array_foreach(a, i, e) if ((r = parse_grant(e, p)) != 0) goto bad;
	*out = p;
	p = NULL;
	r = 0;
	goto out;
bad:
	if (r == 0 || r == KERR_FORMAT)
		r = KERR_FORMAT;
	kerr_set(ei, NULL, "policy content malformed");
out:
	kpolicy_free(p);
	json_decref(root);
	return r;
}

/* ---- on disk ---- */

static int newest_serial(int vfd, uint64_t *serial)
{
	int dfd = openat(vfd, "policy", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;
	struct dirent *de;

	*serial = 0;
	if (dfd < 0)
		return -errno;
	d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -errno;
	}
	while ((de = readdir(d)) != NULL) {
		unsigned long long v;
		int n = 0;

		if (sscanf(de->d_name, "policy.%llu%n", &v, &n) == 1 && de->d_name[n] == 0 &&
		    v > *serial)
			*serial = v;
	}
	closedir(d);
	return *serial ? 0 : -ENOENT;
}

int kpolicy_load(int vfd, const uint8_t vault_id[16], const uint8_t root_pk[32],
		 struct kpolicy **out, struct kerrinfo *ei)
{
	char path[80];
	uint8_t *buf = NULL;
	size_t len;
	uint64_t serial;
	int r;

	*out = NULL;
	if ((r = newest_serial(vfd, &serial)) != 0) {
		kerr_set(ei, "policy/", "no policy file found (vault damaged or incomplete)");
		return r == -ENOENT ? KERR_FORMAT : r;
	}
	snprintf(path, sizeof(path), "policy/policy.%" PRIu64, serial);
	if ((r = kfile_read_at(vfd, path, KPOLICY_FILE_MAX, &buf, &len)) != 0) {
		kerr_set(ei, path, NULL);
		return r;
	}
	r = kpolicy_open(buf, len, serial, vault_id, root_pk, path, out, ei);
	free(buf);
	return r;
}

int kpolicy_open(const uint8_t *buf, size_t len, uint64_t serial, const uint8_t vault_id[16],
		 const uint8_t root_pk[32], const char *path, struct kpolicy **out,
		 struct kerrinfo *ei)
{
	struct kformat_policy_env env;
	struct kpolicy *p = NULL;
	struct kpolicy_user *signer;
	int r;

	*out = NULL;
	if ((r = kformat_policy_parse(buf, len, &env)) != 0) {
		kerr_set(ei, path, "%s", kinko_strerror(r));
		goto out;
	}
	if ((r = kformat_policy_verify_root(buf, &env, root_pk)) != 0) {
		kerr_set(ei, path, "signature does not verify with the vault's root key (forged or edited policy)");
		goto out;
	}
	if (memcmp(env.vault_id, vault_id, 16) != 0 || env.serial != serial) {
		r = KERR_MISMATCH;
		kerr_set(ei, path, "policy belongs to another vault or serial (replayed or renamed file)");
		goto out;
	}
	if ((r = kpolicy_parse_body(env.body, env.body_len, &p, ei)) != 0) {
		if (ei)
			snprintf(ei->file, sizeof(ei->file), "%s", path);
		goto out;
	}
	if (memcmp(p->vault_id, vault_id, 16) != 0 || p->serial != serial) {
		r = KERR_MISMATCH;
		kerr_set(ei, path, "policy body does not match its envelope");
		goto out;
	}
	signer = kpolicy_user_find(p, env.signer);
	if (!signer || signer->role != KROLE_ADMIN || !signer->active ||
	    kformat_policy_verify_signer(buf, &env, signer->sign_pk) != 0) {
		r = KERR_AUTH;
		kerr_set(ei, path, "not signed by an active administrator of this policy");
		goto out;
	}
	*out = p;
	p = NULL;
	r = 0;
out:
	kpolicy_free(p);
	return r;
}

int kpolicy_store(int vfd, struct kpolicy *p, const char *signer, const uint8_t signer_sk[64],
		  const uint8_t root_sk[64], struct kerrinfo *ei)
{
	char path[80], *body = NULL;
	size_t blen;
	struct kbuf b;
	int r;

	kbuf_init_writer(&b);
	p->updated = ktime_now();
	snprintf(p->updated_by, sizeof(p->updated_by), "%s", signer);
	if ((r = kpolicy_to_json(p, &body, &blen)) != 0)
		goto out;
	if ((r = kformat_policy_serialize(p->vault_id, p->serial, body, blen, signer, signer_sk,
					  root_sk, &b)) != 0)
		goto out;
	snprintf(path, sizeof(path), "policy/policy.%" PRIu64, p->serial);
	if ((r = kfile_create_at(vfd, path, b.p, b.len, 0644)) != 0)
		kerr_set(ei, path, r == -EEXIST ? "another administrator changed the policy at the same time; retry" : NULL);
out:
	free(body);
	kbuf_free(&b);
	return r;
}

int kpolicy_grant_remove(struct kpolicy *p, const char *user, const uint8_t comp[16])
{
	for (size_t i = 0; i < p->ngrants; i++)
		if (strcmp(p->grants[i].user, user) == 0 && memcmp(p->grants[i].comp, comp, 16) == 0) {
			memmove(&p->grants[i], &p->grants[i + 1], (p->ngrants - i - 1) * sizeof(*p->grants));
			p->ngrants--;
			return 0;
		}
	return -ENOENT;
}

int kpolicy_user_remove(struct kpolicy *p, const char *id)
{
	size_t i, kept = 0;

	for (i = 0; i < p->ngrants; i++)
		if (strcmp(p->grants[i].user, id) != 0)
			p->grants[kept++] = p->grants[i];
	p->ngrants = kept;
	for (i = 0; i < p->nusers; i++)
		if (strcmp(p->users[i].id, id) == 0) {
			free(p->users[i].name);
			free(p->users[i].dept);
			free(p->users[i].contact);
			memmove(&p->users[i], &p->users[i + 1], (p->nusers - i - 1) * sizeof(*p->users));
			p->nusers--;
			return 0;
		}
	return -ENOENT;
}

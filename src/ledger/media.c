// SPDX-License-Identifier: GPL-2.0-or-later
/* kinko ledger: the media table folded from verified records. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "kinko/ledger.h"

static const char *const kinds[] = { "usb", "hdd", "sd", "tape", "laptop", NULL };

const char *kledger_kind_name(int k)
{
	return k >= 0 && k < (int)(sizeof(kinds) / sizeof(kinds[0])) - 1 ? kinds[k] : "?";
}

int kledger_kind_from_name(const char *s)
{
	for (int i = 0; kinds[i]; i++)
		if (strcmp(kinds[i], s) == 0)
			return i;
	return -1;
}

bool kledger_id_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64 || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
			return false;
	return true;
}

bool kledger_text_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);

	if (n == 0 || n > KLEDGER_TEXT_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] == 0x7f)
			return false;
	/* valid UTF-8: let jansson judge */
	json_t *j = json_stringn(s, n);

	if (!j)
		return false;
	json_decref(j);
	return true;
}

struct kledger_medium *kledger_media_find(const struct kledger_media *t, const char *id)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->m[i].id, id) == 0)
			return &t->m[i];
	return NULL;
}

static void medium_clear(struct kledger_medium *m)
{
	free(m->id);
	free(m->kind);
	free(m->serial);
	free(m->label);
	free(m->location);
	free(m->holder);
	free(m->dispose_method);
	free(m->certificate_sha256);
}

void kledger_media_free(struct kledger_media *t)
{
	for (size_t i = 0; i < t->n; i++)
		medium_clear(&t->m[i]);
	free(t->m);
	t->m = NULL;
	t->n = 0;
}

static const char *str(json_t *b, const char *k)
{
	const char *s = json_string_value(json_object_get(b, k));

	return s && kledger_text_valid(s) ? s : NULL;
}

static int set(char **field, const char *v)
{
	char *d = v ? strdup(v) : NULL;

	if (v && !d)
		return -ENOMEM;
	free(*field);
	*field = d;
	return 0;
}

int kledger_media_apply(struct kledger_media *t, const struct kledger_rec *r)
{
	json_t *b = json_loadb(r->body, r->bodylen, 0, NULL);
	const char *ev = json_string_value(json_object_get(b, "event"));
	const char *id = str(b, "medium");
	struct kledger_medium *m;
	int e = 0;

	if (!b || !ev || !id) {
		json_decref(b);
		return 0;
	}
	m = kledger_media_find(t, id);
	if (strcmp(ev, "register") == 0) {
		struct kledger_medium *nm;

		if (m) /* a second registration of a live id is void */
			goto out;
		if (!(nm = realloc(t->m, (t->n + 1) * sizeof(*nm)))) {
			e = -ENOMEM;
			goto out;
		}
		t->m = nm;
		m = &t->m[t->n++];
		memset(m, 0, sizeof(*m));
		if ((e = set(&m->id, id)) || (e = set(&m->kind, str(b, "kind"))) ||
		    (e = set(&m->serial, str(b, "serial"))) || (e = set(&m->label, str(b, "label"))) ||
		    (e = set(&m->location, str(b, "location"))) ||
		    (e = set(&m->holder, str(b, "holder"))))
			goto out;
		m->registered_ms = m->updated_ms = r->time_ms;
		memcpy(m->registered_by, r->signer, sizeof(m->registered_by));
	} else if (!m) {
		goto out; /* events of unknown media are verified but change nothing */
	} else if (strcmp(ev, "move") == 0 && !m->disposed) {
		e = set(&m->location, str(b, "location"));
		m->updated_ms = r->time_ms;
	} else if (strcmp(ev, "handover") == 0 && !m->disposed) {
		e = set(&m->holder, str(b, "to"));
		m->updated_ms = r->time_ms;
	} else if (strcmp(ev, "dispose") == 0 && !m->disposed) {
		m->disposed = true;
		m->disposed_ms = m->updated_ms = r->time_ms;
		if ((e = set(&m->dispose_method, str(b, "method"))) == 0)
			e = set(&m->certificate_sha256, str(b, "certificate_sha256"));
	} else if (strcmp(ev, "backup") == 0) {
		m->backups++;
		m->last_backup_ms = r->time_ms;
	}
out:
	json_decref(b);
	return e;
}

// SPDX-License-Identifier: GPL-2.0-or-later
/* Policy rules: settings with defaults, forbidden user ids, password rules and
 * expiry. The rules come from the health ministry's guideline (OPS 5.1): at
 * least 8 characters mixing letters, digits and symbols, changed within 60
 * days; or 13+ mixed characters without expiry; or a second factor and 8+. */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kinko/policy.h"

const char *const kpolicy_default_forbidden_ids[] = {
	"admin", "administrator", "root", "guest", "user", "users", "test", "tester", "shared",
	"common", "kinko", "system", "sys", "operator", "default", "public", "everyone", "all",
	"staff", "auditor", "backup", "service", "support", "sa", "superuser", "anonymous",
	"nobody", "daemon", "office", "group", "team", "temp", "tmp", NULL,
};

const char *const kpolicy_setting_keys[] = {
	"admin.max", "password.mode", "password.min_length", "password.long_min_length",
	"password.max_age_days", "password.warn_days", "unlock.max_failures", "unlock.delay_ms",
	"second_factor.classes", "ids.forbidden", "audit.retention_years", "lock.idle_seconds",
	"lock.idle_max_seconds", "anomaly.files_limit", "anomaly.files_window",
	"anomaly.read_mib_limit", "anomaly.read_window", "anomaly.denials_limit",
	"anomaly.denials_window", "anomaly.hours", "takeout.max_days", "alert_command", NULL,
};

static int get_int(const struct kpolicy *p, const char *key, int def, int lo, int hi)
{
	json_t *v = json_object_get(p->settings, key);
	json_int_t i;

	if (!json_is_integer(v))
		return def;
	i = json_integer_value(v);
	return i < lo || i > hi ? def : (int)i;
}

/* "HH:MM-HH:MM" -> minutes of the day; "" or "any" -> -1/-1 */
static int parse_hours(const char *v, int *from, int *until)
{
	unsigned h1, m1, h2, m2;
	char end;

	*from = *until = -1;
	if (!*v || strcmp(v, "any") == 0)
		return 0;
	if (sscanf(v, "%2u:%2u-%2u:%2u%c", &h1, &m1, &h2, &m2, &end) != 4 || h1 > 24 || h2 > 24 ||
	    m1 > 59 || m2 > 59 || (h1 == 24 && m1) || (h2 == 24 && m2))
		return -1;
	*from = (int)(h1 * 60 + m1);
	*until = (int)(h2 * 60 + m2);
	if (*from == *until) { /* an empty window would lock at once */
		*from = *until = -1;
		return -1;
	}
	return 0;
}

#define INT_SETTING(key, field, def, lo, hi) { key, offsetof(struct kpolicy_settings, field), def, lo, hi }
/* the whole-number settings: key, field, default and accepted range, in one place */
const struct kpolicy_int_setting kpolicy_int_settings[] = {
	INT_SETTING("admin.max", max_admins, 2, 1, 100),
	INT_SETTING("password.min_length", pw_min_length, 8, 8, 1024),
	INT_SETTING("password.long_min_length", pw_long_min_length, 13, 13, 1024),
	INT_SETTING("password.max_age_days", pw_max_age_days, 60, 1, 3650),
	INT_SETTING("password.warn_days", pw_warn_days, 7, 0, 365),
	INT_SETTING("unlock.max_failures", unlock_max_failures, 5, 1, 1000),
	INT_SETTING("unlock.delay_ms", unlock_delay_ms, 1000, 0, 60000),
	INT_SETTING("audit.retention_years", audit_retention_years, 5, 1, 100),
	INT_SETTING("lock.idle_seconds", idle_lock, 300, 1, 86400),
	INT_SETTING("lock.idle_max_seconds", idle_max, 300, 1, 86400),
	INT_SETTING("anomaly.files_limit", an_files_limit, 5000, 0, 100000000),
	INT_SETTING("anomaly.files_window", an_files_window, 600, 1, 86400),
	INT_SETTING("anomaly.read_mib_limit", an_read_mib_limit, 20480, 0, 100000000),
	INT_SETTING("anomaly.read_window", an_read_window, 600, 1, 86400),
	INT_SETTING("anomaly.denials_limit", an_denials_limit, 200, 0, 100000000),
	INT_SETTING("anomaly.denials_window", an_denials_window, 600, 1, 86400),
	INT_SETTING("takeout.max_days", takeout_max_days, 30, 1, 366),
	{ NULL, 0, 0, 0, 0 },
};

void kpolicy_settings_get(const struct kpolicy *p, struct kpolicy_settings *s)
{
	json_t *v, *e;
	size_t i;

	for (const struct kpolicy_int_setting *d = kpolicy_int_settings; d->key; d++)
		*(int *)((char *)s + d->offset) = get_int(p, d->key, d->def, d->lo, d->hi);
	if (s->idle_lock > s->idle_max)
		s->idle_lock = s->idle_max;
	s->hours_from = s->hours_until = -1;
	v = json_object_get(p->settings, "anomaly.hours");
	if (json_is_string(v))
		parse_hours(json_string_value(v), &s->hours_from, &s->hours_until);
	v = json_object_get(p->settings, "alert_command");
	s->alert_command = json_is_string(v) && json_string_length(v) ? json_string_value(v) : NULL;
	s->pw_mode = KPW_EXPIRING;
	v = json_object_get(p->settings, "password.mode");
	if (json_is_string(v)) {
		if (strcmp(json_string_value(v), "long") == 0)
			s->pw_mode = KPW_LONG;
		else if (strcmp(json_string_value(v), "two-factor") == 0)
			s->pw_mode = KPW_TWOFACTOR;
	}
	v = json_object_get(p->settings, "second_factor.classes");
	s->second_factor_class[KCLASS_GOKUHI] = false; /* none by default: needs the CA first */
	s->second_factor_class[KCLASS_HIMITSU] = false;
	s->second_factor_class[KCLASS_SHAGAIHI] = false;
	if (json_is_array(v))
		json_array_foreach(v, i, e) {
			int c = json_is_string(e) ? kclass_from_name(json_string_value(e)) : -1;

			if (c >= 0)
				s->second_factor_class[c] = true;
		}
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *s == 0 || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

int kpolicy_setting_set(struct kpolicy *p, const char *key, const char *value, char *why,
			size_t whylen)
{
	const struct kpolicy_int_setting *ints = kpolicy_int_settings;
	long v;

	for (size_t i = 0; ints[i].key; i++) {
		if (strcmp(key, ints[i].key) != 0)
			continue;
		if (parse_int(value, ints[i].lo, ints[i].hi, &v) != 0) {
			snprintf(why, whylen, "%s takes a whole number from %ld to %ld", key, ints[i].lo,
				 ints[i].hi);
			return KERR_USAGE;
		}
		if (strncmp(key, "lock.idle", 9) == 0) {
			struct kpolicy_settings cur;

			kpolicy_settings_get(p, &cur);
			if (key[10] == 's' && v > cur.idle_max) {
				snprintf(why, whylen, "lock.idle_seconds may not exceed lock.idle_max_seconds (%d)",
					 cur.idle_max);
				return KERR_USAGE;
			}
			if (key[10] == 'm' && v < cur.idle_lock) {
				snprintf(why, whylen, "lower lock.idle_seconds (%d) first", cur.idle_lock);
				return KERR_USAGE;
			}
		}
		json_object_set_new(p->settings, key, json_integer(v));
		return 0;
	}
	if (strcmp(key, "anomaly.hours") == 0 || strcmp(key, "alert_command") == 0) {
		int f, u;

		if (key[0] == 'a' && key[1] == 'n' && parse_hours(value, &f, &u) != 0) {
			snprintf(why, whylen, "anomaly.hours is HH:MM-HH:MM (e.g. 07:00-21:00) or any");
			return KERR_USAGE;
		}
		if (strlen(value) > 1024) {
			snprintf(why, whylen, "%s is too long", key);
			return KERR_USAGE;
		}
		json_object_set_new(p->settings, key, json_string(value));
		return 0;
	}
	if (strcmp(key, "password.mode") == 0) {
		if (strcmp(value, "expiring") && strcmp(value, "long") && strcmp(value, "two-factor")) {
			snprintf(why, whylen, "password.mode is expiring, long or two-factor");
			return KERR_USAGE;
		}
		json_object_set_new(p->settings, key, json_string(value));
		return 0;
	}
	if (strcmp(key, "second_factor.classes") == 0 || strcmp(key, "ids.forbidden") == 0) {
		json_t *a = json_array();
		char *copy = strdup(value), *save = NULL;

		if (!a || !copy) {
			json_decref(a);
			free(copy);
			return -ENOMEM;
		}
		for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
			bool ok = key[0] == 's' ? kclass_from_name(t) >= 0 : kuser_id_valid(t);

			if (!ok) {
				snprintf(why, whylen, "'%s' is not a %s", t,
					 key[0] == 's' ? "class (gokuhi, himitsu, shagaihi)" : "user id");
				json_decref(a);
				free(copy);
				return KERR_USAGE;
			}
			json_array_append_new(a, json_string(t));
		}
		free(copy);
		json_object_set_new(p->settings, key, a);
		return 0;
	}
	snprintf(why, whylen, "unknown setting '%s' (see kinko policy show)", key);
	return KERR_USAGE;
}

int kpolicy_ca_cert(const struct kpolicy *p, uint8_t **der, size_t *len)
{
	json_t *v = json_object_get(p->settings, "second_factor.ca_cert");
	size_t n;

	*der = NULL;
	*len = 0;
	if (!json_is_string(v))
		return -ENOENT;
	n = json_string_length(v);
	if (n > 200000 || !(*der = malloc(n)))
		return n > 200000 ? KERR_FORMAT : -ENOMEM;
	if (kcrypto_b64_decode(*der, n, len, json_string_value(v)) != 0) {
		free(*der);
		*der = NULL;
		return KERR_FORMAT;
	}
	return 0;
}

int kpolicy_set_ca_cert(struct kpolicy *p, const uint8_t *der, size_t len)
{
	size_t n = len * 4 / 3 + 8;
	char *s = malloc(n);
	int r;

	if (!s)
		return -ENOMEM;
	if ((r = kcrypto_b64_encode(s, n, der, len)) == 0)
		json_object_set_new(p->settings, "second_factor.ca_cert", json_string(s));
	free(s);
	return r;
}

bool kpolicy_id_forbidden(const struct kpolicy *p, const char *id)
{
	json_t *extra = p ? json_object_get(p->settings, "ids.forbidden") : NULL, *e;
	size_t i;

	for (i = 0; kpolicy_default_forbidden_ids[i]; i++)
		if (strcmp(id, kpolicy_default_forbidden_ids[i]) == 0)
			return true;
	if (json_is_array(extra))
		json_array_foreach(extra, i, e)
			if (json_is_string(e) && strcmp(json_string_value(e), id) == 0)
				return true;
	return false;
}

/* case-insensitive substring search on bytes */
static bool contains_ci(const char *hay, size_t hlen, const char *needle)
{
	size_t n = strlen(needle);

	if (n == 0 || n > hlen)
		return false;
	for (size_t i = 0; i + n <= hlen; i++) {
		size_t j = 0;

		while (j < n && tolower((unsigned char)hay[i + j]) == tolower((unsigned char)needle[j]))
			j++;
		if (j == n)
			return true;
	}
	return false;
}

int kpolicy_password_check(const struct kpolicy *p, const char *id, const char *pw, size_t len,
			   const char *old, size_t oldlen, bool has_factor, char *why, size_t whylen)
{
	struct kpolicy_settings s;
	bool letter = false, digit = false, symbol = false;
	size_t chars = 0;
	int min;

	kpolicy_settings_get(p, &s);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)pw[i];

		if ((c & 0xc0) != 0x80)
			chars++; /* count UTF-8 characters, not bytes */
		if (isalpha(c))
			letter = true;
		else if (isdigit(c))
			digit = true;
		else if (c >= 0x21 && c < 0x7f)
			symbol = true;
		else if (c >= 0x80)
			letter = true; /* non-ASCII characters count as letters */
	}
	min = s.pw_mode == KPW_LONG ? s.pw_long_min_length : s.pw_min_length;
	if (chars < (size_t)min) {
		snprintf(why, whylen, "password too short: at least %d characters%s", min,
			 s.pw_mode == KPW_LONG ? " (password.mode long)" : "");
		return KERR_POLICY;
	}
	if (!letter || !digit || !symbol) {
		snprintf(why, whylen, "password must mix letters, digits and symbols (missing %s)",
			 !letter ? "a letter" : !digit ? "a digit" : "a symbol");
		return KERR_POLICY;
	}
	if (contains_ci(pw, len, id)) {
		snprintf(why, whylen, "password must not contain the user id '%s'", id);
		return KERR_POLICY;
	}
	if (old && oldlen == len && kcrypto_memeq(old, pw, len)) {
		snprintf(why, whylen, "the new password must differ from the previous one");
		return KERR_POLICY;
	}
	if (s.pw_mode == KPW_TWOFACTOR && !has_factor) {
		snprintf(why, whylen, "password.mode two-factor: user '%s' has no second factor", id);
		return KERR_POLICY;
	}
	return 0;
}

int kpolicy_password_age(const struct kpolicy *p, int64_t changed, int64_t now, int *days_left)
{
	struct kpolicy_settings s;
	int64_t expires;

	kpolicy_settings_get(p, &s);
	*days_left = 0;
	if (s.pw_mode != KPW_EXPIRING)
		return 0;
	expires = changed + (int64_t)s.pw_max_age_days * 86400;
	if (now >= expires)
		return KERR_EXPIRED;
	*days_left = (int)((expires - now + 86399) / 86400);
	return *days_left <= s.pw_warn_days ? 1 : 0;
}

int kpolicy_count_admins(const struct kpolicy *p)
{
	int n = 0;

	for (size_t i = 0; i < p->nusers; i++)
		n += p->users[i].role == KROLE_ADMIN;
	return n;
}

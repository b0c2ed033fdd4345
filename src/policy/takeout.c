// SPDX-License-Identifier: GPL-2.0-or-later
/* The take-out settings of a signed policy (settings "takeout", written by
 * vault/takeout.c): read back for the period check at every unlock. */
#include <string.h>

#include <jansson.h>

#include "kinko/policy.h"
#include "kinko/takeout.h"

static int str_field(json_t *o, const char *k, char *out, size_t n, bool need)
{
	json_t *v = json_object_get(o, k);

	if (!v && !need) {
		out[0] = 0;
		return 0;
	}
	if (!json_is_string(v) || json_string_length(v) >= n ||
	    strlen(json_string_value(v)) != json_string_length(v) || (need && !json_string_length(v)))
		return KERR_FORMAT;
	memcpy(out, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

static int time_field(json_t *o, const char *k, int64_t *t)
{
	json_t *v = json_object_get(o, k);

	if (!json_is_string(v) || json_string_length(v) > 40 || ktime_parse(json_string_value(v), t))
		return KERR_FORMAT;
	return 0;
}

int kpolicy_takeout(const struct kpolicy *p, struct ktakeout_info *t)
{
	json_t *o = p && p->settings ? json_object_get(p->settings, "takeout") : NULL;
	char hex[33];

	memset(t, 0, sizeof(*t));
	if (!o)
		return 0;
	if (!json_is_object(o) || str_field(o, "id", t->id, sizeof(t->id), true) ||
	    str_field(o, "requester", t->requester, sizeof(t->requester), true) ||
	    str_field(o, "medium", t->medium, sizeof(t->medium), false) ||
	    str_field(o, "approver", t->approver, sizeof(t->approver), false) ||
	    str_field(o, "request", t->request, sizeof(t->request), false) ||
	    str_field(o, "main_vault", hex, sizeof(hex), true) ||
	    khex_decode(t->main_vault_id, 16, hex) || time_field(o, "from", &t->from) ||
	    time_field(o, "until", &t->until) || t->until <= t->from) {
		memset(t, 0, sizeof(*t));
		return KERR_FORMAT;
	}
	return 1;
}

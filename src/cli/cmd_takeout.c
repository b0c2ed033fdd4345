// SPDX-License-Identifier: GPL-2.0-or-later
/* kinko takeout: approved take-out (持出し) of files to a registered medium.
 * The seven fields of OPS 4.3.2 (所属, 氏名, 連絡先, information, medium,
 * purpose, period) are a request record in the signed ledger; an admin other
 * than the requester approves or rejects it; the requester exports the approved
 * files into a small vault of their own on the registered medium, usable only
 * within the period; close brings its audit log back and destroys it.
 * Who may do what: kinko-takeout(1). */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_ledger.h"
#include "kinko/guard.h"
#include "kinko/ledger.h"
#include "kinko/lifecycle.h"
#include "kinko/takeout.h"

#define FILES_MAX 64

enum { T_FILES = 7000, T_MEDIUM, T_PURPOSE, T_FROM, T_UNTIL, T_CONTACT, T_NAME, T_DEPT,
       T_JSON, T_PENDING, T_OVERDUE, T_ALL, T_NOTE, T_REASON, T_TO, T_QUIET };

struct topts {
	const char *vault;
	struct cli_auth auth;
	char *files[FILES_MAX];
	size_t nfiles;
	const char *medium, *purpose, *from, *until, *contact, *name, *dept, *note, *reason, *to;
	bool json, pending, overdue, all, quiet;
	int npos;
	char *pos[FILES_MAX + 1];
};

static const char *const sub_usage =
	"request --files VPATH... --medium ID --purpose TEXT --from DATE --until DATE [--contact C]\n"
	"       list [--pending|--overdue|--all] [--json] | show ID [--json]\n"
	"       approve ID [--note TEXT] | reject ID --reason TEXT\n"
	"       export ID --to DIR [--files VPATH...] | close ID --from DIR\n"
	"       report-lost ID [--note TEXT] | check [--json]";

static int parse(const char *sub, int argc, char **argv, struct topts *o)
{
	static const struct option lo[] = {
		CLI_VAULT_OPTIONS,
		{ "files", required_argument, 0, T_FILES },
		{ "medium", required_argument, 0, T_MEDIUM },
		{ "purpose", required_argument, 0, T_PURPOSE },
		{ "from", required_argument, 0, T_FROM },
		{ "until", required_argument, 0, T_UNTIL },
		{ "contact", required_argument, 0, T_CONTACT },
		{ "name", required_argument, 0, T_NAME },
		{ "dept", required_argument, 0, T_DEPT },
		{ "json", no_argument, 0, T_JSON },
		{ "pending", no_argument, 0, T_PENDING },
		{ "overdue", no_argument, 0, T_OVERDUE },
		{ "all", no_argument, 0, T_ALL },
		{ "note", required_argument, 0, T_NOTE },
		{ "reason", required_argument, 0, T_REASON },
		{ "to", required_argument, 0, T_TO },
		{ "quiet", no_argument, 0, T_QUIET },
		{ 0, 0, 0, 0 },
	};
	bool files_mode = false;
	int c;

	memset(o, 0, sizeof(*o));
	o->vault = getenv("KINKO_VAULT");
	o->auth.user = cli_default_user();
	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (cli_vault_option(c, optarg, &o->vault, &o->auth))
			continue;
		switch (c) {
		case T_FILES:
			if (o->nfiles >= FILES_MAX) {
				cli_usage_error("takeout", "at most %d paths per take-out", FILES_MAX);
				return KEXIT_USAGE;
			}
			o->files[o->nfiles++] = optarg;
			files_mode = true;
			break;
		case T_MEDIUM: o->medium = optarg; break;
		case T_PURPOSE: o->purpose = optarg; break;
		case T_FROM: o->from = optarg; break;
		case T_UNTIL: o->until = optarg; break;
		case T_CONTACT: o->contact = optarg; break;
		case T_NAME: o->name = optarg; break;
		case T_DEPT: o->dept = optarg; break;
		case T_JSON: o->json = true; break;
		case T_PENDING: o->pending = true; break;
		case T_OVERDUE: o->overdue = true; break;
		case T_ALL: o->all = true; break;
		case T_NOTE: o->note = optarg; break;
		case T_REASON: o->reason = optarg; break;
		case T_TO: o->to = optarg; break;
		case T_QUIET: o->quiet = true; break;
		default: cli_usage_error("takeout", "bad option"); return KEXIT_USAGE;
		}
	}
	if (cli_positionals("takeout", argc, argv, o->pos, FILES_MAX + 1, &o->npos) != 0)
		return KEXIT_USAGE;
	/* "--files a b c": the positionals after --files are paths too (request,
	 * export: the ID comes first) */
	if (files_mode) {
		int first = strcmp(sub, "request") == 0 ? 0 : 1;

		for (int i = first; i < o->npos; i++) {
			if (o->nfiles >= FILES_MAX) {
				cli_usage_error("takeout", "at most %d paths per take-out", FILES_MAX);
				return KEXIT_USAGE;
			}
			o->files[o->nfiles++] = o->pos[i];
		}
		o->npos = o->npos < first ? o->npos : first;
	}
	return cli_need_vault("takeout", o->vault);
}

/* ---- dates: YYYY-MM-DD in local time (until: the end of that day), or ISO UTC ---- */
static int parse_date(const char *s, bool until, int64_t *t)
{
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%d", &tm);
	if (end && !*end) {
		if (until)
			tm.tm_mday++;
		tm.tm_isdst = -1;
		*t = (int64_t)mktime(&tm);
		return *t == -1 ? -EINVAL : 0;
	}
	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (!end || *end)
		return -EINVAL;
	*t = (int64_t)timegm(&tm);
	return 0;
}

static void iso(char out[32], int64_t secs)
{
	ktime_iso(out, 32, secs);
}

/* whole local days as "2026-12-01 .. 2026-12-05" (the last day inclusive),
 * anything else as ISO UTC times */
static void period_text(char *out, size_t n, int64_t from, int64_t until)
{
	time_t a = (time_t)from, b = (time_t)until - 1;
	struct tm ta, tb, tu;
	time_t u = (time_t)until;

	localtime_r(&a, &ta);
	localtime_r(&u, &tu);
	localtime_r(&b, &tb);
	if (ta.tm_hour == 0 && ta.tm_min == 0 && ta.tm_sec == 0 && tu.tm_hour == 0 &&
	    tu.tm_min == 0 && tu.tm_sec == 0) {
		char d1[16], d2[16];

		strftime(d1, sizeof(d1), "%Y-%m-%d", &ta);
		strftime(d2, sizeof(d2), "%Y-%m-%d", &tb);
		snprintf(out, n, "%s .. %s", d1, d2);
	} else {
		char i1[32], i2[32];

		iso(i1, from);
		iso(i2, until);
		snprintf(out, n, "%s .. %s", i1, i2);
	}
}

/* ---- the ledger's take-outs and media ---- */
struct view {
	struct kledger_takeouts t;
	struct kledger_media m;
	const struct kpolicy *p;
	size_t problems;
	int err;
};

static void on_rec(void *ctx, const struct kledger_rec *r)
{
	struct view *w = ctx;
	int e = kledger_takeout_apply(&w->t, w->p, r);

	if (!e)
		e = kledger_media_apply(&w->m, r);
	if (e)
		w->err = e;
}

static void on_problem(void *ctx, const char *file, uint64_t seq, const char *problem)
{
	struct view *w = ctx;

	(void)file;
	(void)seq;
	(void)problem;
	w->problems++;
}

static void view_free(struct view *w);

static int load(int vfd, const struct kpolicy *p, const char *vault, struct view *w)
{
	size_t n;
	int r;

	memset(w, 0, sizeof(*w));
	w->p = p;
	r = kledger_scan(vfd, p, on_rec, on_problem, w, &n, &w->problems);
	if (!r)
		r = w->err;
	if (r) {
		view_free(w);
		fprintf(stderr, "kinko: %s/ledger: cannot read the ledger: %s\n", vault,
			r > -1000 ? strerror(-r) : kinko_strerror(r));
		return KEXIT_ERROR;
	}
	if (w->problems)
		fprintf(stderr, "kinko: %s: warning: the ledger has %zu problem(s); see kinko ledger verify\n",
			vault, w->problems);
	return 0;
}

static void view_free(struct view *w)
{
	kledger_takeouts_free(&w->t);
	kledger_media_free(&w->m);
}

int cli_ledger_takeouts(struct kvault *v, struct kledger_takeouts *out)
{
	struct view w;
	int rc = load(v->vfd, v->policy, v->path, &w);

	memset(out, 0, sizeof(*out));
	if (rc)
		return rc;
	*out = w.t;
	memset(&w.t, 0, sizeof(w.t));
	view_free(&w);
	return 0;
}

/* the take-out named by id, or a message */
static struct kledger_takeout *find(struct view *w, const char *vault, const char *id)
{
	struct kledger_takeout *x = kledger_takeout_find(&w->t, id);

	if (!x)
		fprintf(stderr, "kinko: %s: no take-out '%s' in the ledger (kinko takeout list)\n", vault, id);
	return x;
}

static json_t *details_of(const struct kledger_takeout *x, const struct kkeys_user *u, bool *sealed)
{
	char *plain = NULL;
	json_t *d = NULL;

	*sealed = true;
	if (u && kledger_details_open(x->details, u, &plain) == 0) {
		d = json_loads(plain, 0, NULL);
		ksecmem_wipe(plain, strlen(plain));
		free(plain);
		if (json_is_object(d))
			*sealed = false;
		else {
			json_decref(d);
			d = NULL;
		}
	}
	return d;
}

static json_t *ms_json(int64_t ms)
{
	char t[32];

	if (!ms)
		return json_null();
	iso(t, ms / 1000);
	return json_string(t);
}

static json_t *str_or_null(const char *s)
{
	return s && s[0] ? json_string(s) : json_null();
}

static json_t *to_json(const struct kledger_takeout *x, const struct kkeys_user *u, int64_t now)
{
	json_t *o = json_object(), *d;
	char t[32];
	bool sealed;

	json_object_set_new(o, "id", json_string(x->id));
	json_object_set_new(o, "state", json_string(kledger_takeout_state_name(x->state)));
	json_object_set_new(o, "overdue", json_boolean(kledger_takeout_overdue(x, now)));
	json_object_set_new(o, "requester", json_string(x->requester));
	d = details_of(x, u, &sealed);
	json_object_set_new(o, "sealed", json_boolean(sealed));
	for (const char *const *k = (const char *const[]){ "name", "dept", "contact", "files",
							    "purpose", NULL }; *k; k++) {
		json_t *v = d ? json_object_get(d, *k) : NULL;

		json_object_set(o, *k, v ? v : json_null());
	}
	json_decref(d);
	json_object_set_new(o, "medium", json_string(x->medium));
	iso(t, x->from);
	json_object_set_new(o, "from", json_string(t));
	iso(t, x->until);
	json_object_set_new(o, "until", json_string(t));
	json_object_set_new(o, "requested", ms_json(x->requested_ms));
	json_object_set_new(o, "approved_by", str_or_null(x->approved_by));
	json_object_set_new(o, "approved", ms_json(x->approved_ms));
	json_object_set_new(o, "note", str_or_null(x->note));
	json_object_set_new(o, "rejected_by", str_or_null(x->rejected_by));
	json_object_set_new(o, "rejected", ms_json(x->rejected_ms));
	json_object_set_new(o, "reason", str_or_null(x->reason));
	json_object_set_new(o, "exported", ms_json(x->exported_ms));
	json_object_set_new(o, "export_vault", str_or_null(x->export_vault));
	json_object_set_new(o, "export_to", str_or_null(x->export_to));
	json_object_set_new(o, "export_files", x->exported_ms ? json_integer((json_int_t)x->export_files) : json_null());
	json_object_set_new(o, "export_bytes", x->exported_ms ? json_integer((json_int_t)x->export_bytes) : json_null());
	json_object_set_new(o, "closed", ms_json(x->closed_ms));
	json_object_set_new(o, "closed_by", str_or_null(x->closed_by));
	json_object_set_new(o, "audit_segments", x->closed_ms ? json_integer((json_int_t)x->audit_segments) : json_null());
	json_object_set_new(o, "lost", ms_json(x->lost_ms));
	json_object_set_new(o, "lost_by", str_or_null(x->lost_by));
	json_object_set_new(o, "lost_note", str_or_null(x->lost_note));
	return o;
}

static int print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (!s)
		return KEXIT_ERROR;
	printf("%s\n", s);
	free(s);
	return 0;
}

static bool role_is(const struct kvault *v, int role)
{
	const struct kpolicy_user *pu = kpolicy_user_find(v->policy, v->user->id);

	return pu && pu->role == role;
}

static int refuse(struct kvault *v, const char *action, const char *id, const char *reason,
		  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* print the refusal (kinko: VAULT: take-out ID: ...), audit it; KEXIT_DENIED */
static int refuse(struct kvault *v, const char *action, const char *id, const char *reason,
		  const char *fmt, ...)
{
	char msg[512], det[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "kinko: %s: %s%s%s\n", v->path, id ? "take-out " : "", id ? id : "", msg);
	snprintf(det, sizeof(det), "{\"takeout\":\"%s\"}", id ? id : "");
	cli_audit(v, v->user ? v->user->id : "-", action, det, -EACCES, reason);
	return KEXIT_DENIED;
}

static int need_text(const char *what, const char *s)
{
	if (!s || !s[0]) {
		cli_usage_error("takeout", "%s is required", what);
		return KEXIT_USAGE;
	}
	if (!kledger_text_valid(s)) {
		cli_usage_error("takeout", "%s: 1 to %d bytes of UTF-8 without control characters",
				what, KLEDGER_TEXT_MAX);
		return KEXIT_USAGE;
	}
	return 0;
}

static const struct kledger_medium *live_medium(struct kvault *v, struct view *w, const char *id,
						 const char *action, const char *tid, int *rc)
{
	const struct kledger_medium *m = kledger_media_find(&w->m, id);

	if (!m || m->disposed) {
		*rc = refuse(v, action, tid, m ? "medium-disposed" : "medium-not-registered",
			     "%smedium '%s' %s", tid ? ": " : "", id,
			     m ? "was disposed of" : "is not registered in the media ledger (kinko media register)");
		return NULL;
	}
	return m;
}

/* a VPATH: COMPARTMENT[/path], no empty, "." or ".." components */
static bool vpath_ok(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > 4000 || s[0] == '/')
		return false;
	for (const char *p = s; *p;) {
		const char *e = strchr(p, '/');
		size_t l = e ? (size_t)(e - p) : strlen(p);

		if (l == 0 || (l == 1 && p[0] == '.') || (l == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		p += l;
		if (*p)
			p++;
		if (e && !*p)
			return false; /* trailing slash */
	}
	return true;
}

/* is path equal to or below one of the approved paths? */
static bool covered(json_t *approved, const char *path)
{
	size_t i;
	json_t *a;

	json_array_foreach(approved, i, a) {
		const char *s = json_string_value(a);
		size_t l = s ? strlen(s) : 0;

		if (s && strncmp(path, s, l) == 0 && (path[l] == 0 || path[l] == '/'))
			return true;
	}
	return false;
}

/* ---- request ---- */
static int do_request(struct topts *o)
{
	struct kvault *v = NULL;
	struct view w;
	const struct kpolicy_user *pu;
	struct kpolicy_settings set;
	const struct kledger_medium *m;
	int64_t from, until, now = ktime_now();
	const char *name, *dept, *contact;
	json_t *det = NULL, *files = NULL, *body = NULL, *sealed = NULL;
	char *plain = NULL, *seal = NULL, f1[32], f2[32], id[32];
	uint64_t seq = 0;
	int rc;

	if (!o->nfiles || !o->medium || !o->purpose || !o->from || !o->until || o->npos) {
		cli_usage_error("takeout", "takeout request --files VPATH... --medium ID --purpose TEXT --from DATE --until DATE");
		return KEXIT_USAGE;
	}
	if ((rc = need_text("--purpose", o->purpose)) || (o->contact && (rc = need_text("--contact", o->contact))) ||
	    (o->name && (rc = need_text("--name", o->name))) || (o->dept && (rc = need_text("--dept", o->dept))))
		return rc;
	if (parse_date(o->from, false, &from) || parse_date(o->until, true, &until)) {
		cli_usage_error("takeout", "dates are YYYY-MM-DD (local time) or YYYY-MM-DDTHH:MM:SSZ");
		return KEXIT_USAGE;
	}
	for (size_t i = 0; i < o->nfiles; i++)
		if (!vpath_ok(o->files[i])) {
			cli_usage_error("takeout", "'%s' is not COMPARTMENT/path/in/it", o->files[i]);
			return KEXIT_USAGE;
		}
	if ((rc = cli_open_unlock(o->vault, &o->auth, true, &v)) != 0)
		return rc;
	pu = kpolicy_user_find(v->policy, v->user->id);
	name = o->name ? o->name : pu && pu->name ? pu->name : NULL;
	dept = o->dept ? o->dept : pu && pu->dept ? pu->dept : NULL;
	contact = o->contact ? o->contact : pu && pu->contact ? pu->contact : NULL;
	if (!name || !name[0] || !dept || !dept[0] || !contact || !contact[0]) {
		cli_usage_error("takeout", "%s is not in %s's user record: give it with %s",
				!name || !name[0] ? "the name (氏名)" : !dept || !dept[0] ? "the department (所属)" : "the contact (連絡先)",
				v->user->id, !name || !name[0] ? "--name" : !dept || !dept[0] ? "--dept" : "--contact");
		rc = KEXIT_USAGE;
		goto out;
	}
	kpolicy_settings_get(v->policy, &set);
	iso(f1, from);
	iso(f2, until);
	if (until <= from) {
		rc = refuse(v, "takeout-request", NULL, "period", "the period ends (%s) before it starts (%s)", f2, f1);
		goto out;
	}
	if (until <= now) {
		rc = refuse(v, "takeout-request", NULL, "period", "the period ends in the past (%s)", f2);
		goto out;
	}
	if (until - from > (int64_t)set.takeout_max_days * 86400) {
		rc = refuse(v, "takeout-request", NULL, "period",
			    "the period %s .. %s is longer than the policy allows (takeout.max_days = %d)",
			    f1, f2, set.takeout_max_days);
		goto out;
	}
	if ((rc = load(v->vfd, v->policy, v->path, &w)) != 0)
		goto out;
	m = live_medium(v, &w, o->medium, "takeout-request", NULL, &rc);
	view_free(&w); /* m points into it: o->medium from here */
	if (!m)
		goto out;
	files = json_array();
	for (size_t i = 0; i < o->nfiles; i++) {
		struct kerrinfo ei = { "", "" };
		int r = kvault_vpath_check(v, o->files[i], &ei);

		if (r) {
			fprintf(stderr, "kinko: %s: %s: %s\n", v->path, o->files[i],
				ei.detail[0] ? ei.detail : r > -1000 ? strerror(-r) : kinko_strerror(r));
			cli_audit(v, v->user->id, "takeout-request", NULL, -EACCES, "path");
			rc = r == -ENOENT ? KEXIT_ERROR : KEXIT_DENIED;
			goto out;
		}
		json_array_append_new(files, json_string(o->files[i]));
	}
	det = json_pack("{s:s,s:s,s:s,s:O,s:s}", "name", name, "dept", dept, "contact", contact,
			"files", files, "purpose", o->purpose);
	plain = det ? json_dumps(det, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	if (!plain || kledger_details_seal(plain, v->policy, v->user->id, &seal) != 0 ||
	    !(sealed = json_loads(seal, 0, NULL))) {
		fprintf(stderr, "kinko: %s: the request is too large (fewer or shorter paths)\n", v->path);
		rc = KEXIT_ERROR;
		goto out;
	}
	body = json_pack("{s:s,s:s,s:s,s:I,s:I,s:O}", "event", "takeout-request", "requester",
			 v->user->id, "medium", o->medium, "from", (json_int_t)from, "until",
			 (json_int_t)until, "details", sealed);
	if (!body || (rc = cli_ledger_record(v, "takeout-request", body, &seq)) != 0) {
		rc = rc ? rc : KEXIT_ERROR;
		goto out;
	}
	snprintf(id, sizeof(id), "T%llu", (unsigned long long)seq);
	if (o->json) {
		json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:O,s:s}", "id", id, "state", "pending",
				      "requester", v->user->id, "from", f1, "until", f2, "files", files,
				      "medium", o->medium);

		rc = print_json(j);
		json_decref(j);
	} else {
		char per[80];

		period_text(per, sizeof(per), from, until);
		printf("kinko: take-out %s requested: %zu path(s) on medium %s, %s; waiting for an administrator's approval\n",
		       id, o->nfiles, o->medium, per);
	}
out:
	if (plain) {
		ksecmem_wipe(plain, strlen(plain));
		free(plain);
	}
	free(seal);
	json_decref(det);
	json_decref(files);
	json_decref(sealed);
	json_decref(body);
	kvault_close(v);
	return rc;
}

/* ---- list, show ---- */
static bool may_see(const struct kvault *v, const struct kledger_takeout *x)
{
	return strcmp(x->requester, v->user->id) == 0 || role_is(v, KROLE_ADMIN) ||
	       role_is(v, KROLE_AUDITOR);
}

static void table_row(const struct kledger_takeout *x, const struct kkeys_user *u, int64_t now)
{
	json_t *j = to_json(x, u, now);
	char from[11], until[11], purpose[41];
	const char *p = json_string_value(json_object_get(j, "purpose"));
	size_t nf = json_array_size(json_object_get(j, "files"));

	snprintf(from, sizeof(from), "%s", json_string_value(json_object_get(j, "from")));
	snprintf(until, sizeof(until), "%s", json_string_value(json_object_get(j, "until")));
	snprintf(purpose, sizeof(purpose), "%s", p ? p : "(sealed)");
	printf("%-8s %-9s%s %-12s %-12s %-10s %-10s %5zu  %s\n", x->id,
	       kledger_takeout_state_name(x->state), kledger_takeout_overdue(x, now) ? "!" : " ",
	       x->requester, x->medium, from, until, nf, purpose);
	json_decref(j);
}

static int do_list(struct topts *o, bool show)
{
	struct kvault *v = NULL;
	struct view w;
	int64_t now = ktime_now();
	json_t *arr = json_array();
	size_t shown = 0;
	int rc;

	if ((show && o->npos != 1) || (!show && o->npos)) {
		cli_usage_error("takeout", show ? "takeout show ID" : "takeout list [--pending|--overdue|--all] [--json]");
		json_decref(arr);
		return KEXIT_USAGE;
	}
	if ((rc = cli_open_unlock(o->vault, &o->auth, false, &v)) != 0) {
		json_decref(arr);
		return rc;
	}
	if ((rc = load(v->vfd, v->policy, v->path, &w)) != 0)
		goto out;
	if (show) {
		struct kledger_takeout *x = find(&w, v->path, o->pos[0]);

		if (!x) {
			rc = KEXIT_ERROR;
		} else if (!may_see(v, x)) {
			rc = refuse(v, "takeout-show", x->id, "permission", ": only its requester, administrators and auditors may see it");
		} else {
			json_t *j = to_json(x, v->user, now);

			if (o->json) {
				rc = print_json(j);
			} else {
				const char *k;
				json_t *val;

				json_object_foreach(j, k, val) {
					if (json_is_array(val)) {
						size_t i;
						json_t *e;

						printf("%-15s", k);
						json_array_foreach(val, i, e)
							printf("%s%s\n", i ? "               " : "", json_string_value(e));
						if (!json_array_size(val))
							printf("\n");
					} else if (!json_is_null(val)) {
						char *s = json_is_string(val) ? NULL : json_dumps(val, JSON_ENCODE_ANY);

						printf("%-15s%s\n", k, s ? s : json_string_value(val));
						free(s);
					}
				}
			}
			json_decref(j);
		}
		if (rc != KEXIT_DENIED) /* a refusal is audited by refuse() */
			cli_audit(v, v->user->id, "takeout-show", NULL, rc ? -EIO : 0, NULL);
		view_free(&w);
		goto out;
	}
	for (size_t i = 0; i < w.t.n; i++) {
		const struct kledger_takeout *x = &w.t.t[i];
		bool want = o->all ? true : o->pending ? x->state == KTO_PENDING :
			    o->overdue ? kledger_takeout_overdue(x, now) :
			    x->state != KTO_CLOSED && x->state != KTO_REJECTED;

		if (!want || !may_see(v, x))
			continue;
		if (o->json) {
			json_array_append_new(arr, to_json(x, v->user, now));
		} else {
			if (!shown)
				printf("%-8s %-10s %-12s %-12s %-10s %-10s %5s  %s\n", "ID", "STATE", "REQUESTER",
				       "MEDIUM", "FROM", "UNTIL", "PATHS", "PURPOSE");
			table_row(x, v->user, now);
		}
		shown++;
	}
	if (o->json)
		rc = print_json(arr);
	else if (!shown)
		printf("kinko: no take-outs%s\n", o->pending ? " pending" : o->overdue ? " overdue" : "");
	cli_audit(v, v->user->id, "takeout-list", NULL, 0, NULL);
	view_free(&w);
out:
	json_decref(arr);
	kvault_close(v);
	return rc;
}

/* ---- approve, reject ---- */

/* what the requester's own kinko checked, again with the approver's: the
 * period (a hand-made request could ask for years), and the administrator
 * must be able to read what they approve */
static int approvable(struct kvault *v, const struct kledger_takeout *x)
{
	struct kpolicy_settings set;
	bool sealed;
	json_t *d;
	char f1[32], f2[32];

	kpolicy_settings_get(v->policy, &set);
	iso(f1, x->from);
	iso(f2, x->until);
	if (x->until - x->from > (int64_t)set.takeout_max_days * 86400)
		return refuse(v, "takeout-approve", x->id, "period",
			      ": the period %s .. %s is longer than the policy allows (takeout.max_days = %d)",
			      f1, f2, set.takeout_max_days);
	if (x->until <= ktime_now())
		return refuse(v, "takeout-approve", x->id, "period", ": its period ended at %s", f2);
	d = details_of(x, v->user, &sealed);
	json_decref(d);
	if (sealed)
		return refuse(v, "takeout-approve", x->id, "sealed",
			      ": its details (files, purpose) are not sealed to %s, who became an administrator after the request; the requester must request again",
			      v->user->id);
	return 0;
}
static int do_decide(struct topts *o, bool approve)
{
	const char *action = approve ? "takeout-approve" : "takeout-reject";
	struct kvault *v = NULL;
	struct kledger_takeout *x;
	struct view w;
	char hex[2 * KLEDGER_HASHBYTES + 1];
	json_t *body;
	int rc;

	if (o->npos != 1 || (!approve && !o->reason)) {
		cli_usage_error("takeout", approve ? "takeout approve ID [--note TEXT]" : "takeout reject ID --reason TEXT");
		return KEXIT_USAGE;
	}
	if ((o->reason && (rc = need_text("--reason", o->reason))) || (o->note && (rc = need_text("--note", o->note))))
		return rc;
	if ((rc = cli_open_role(o->vault, &o->auth, 1u << KROLE_ADMIN, action, &v)) != 0)
		return rc;
	if ((rc = load(v->vfd, v->policy, v->path, &w)) != 0)
		goto out;
	if (!(x = find(&w, v->path, o->pos[0]))) {
		rc = KEXIT_ERROR;
	} else if (strcmp(x->requester, v->user->id) == 0) {
		rc = refuse(v, action, x->id, "self-approval",
			    ": an administrator cannot %s their own take-out; another administrator must",
			    approve ? "approve" : "reject");
	} else if (x->state != KTO_PENDING) {
		rc = refuse(v, action, x->id, "state", " is %s, not pending", kledger_takeout_state_name(x->state));
	} else if (approve && (rc = approvable(v, x)) != 0) {
		/* refused and audited there */
	} else {
		khex_encode(hex, x->req_hash, KLEDGER_HASHBYTES);
		body = json_pack("{s:s,s:s,s:s}", "event", action, "takeout", x->id, "request", hex);
		if (approve && o->note)
			json_object_set_new(body, "note", json_string(o->note));
		if (!approve)
			json_object_set_new(body, "reason", json_string(o->reason));
		rc = body ? cli_ledger_record(v, action, body, NULL) : KEXIT_ERROR;
		json_decref(body);
		if (!rc)
			printf("kinko: take-out %s of %s %s\n", x->id, x->requester,
			       approve ? "approved: the requester may export it now (kinko takeout export)" : "rejected");
	}
	view_free(&w);
out:
	kvault_close(v);
	return rc;
}

/* ---- export ---- */

/* overwrite and remove everything in dir (not dir itself), through one
 * descriptor opened without following symlinks */
static int destroy_fd_contents(int dfd)
{
	DIR *d;
	struct dirent *e;
	int fd = dup(dfd), r = 0;

	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			int q = kvault_shred_tree(dfd, e->d_name, NULL);

			if (q && !r)
				r = q;
		}
	closedir(d);
	return r;
}

static int destroy_contents(const char *dir)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), r;

	if (dfd < 0)
		return -errno;
	r = destroy_fd_contents(dfd);
	close(dfd);
	return r;
}
struct prog {
	struct cli_bar bar;
};

static void export_progress(void *ctx, uint64_t bytes, uint64_t total, uint64_t files)
{
	struct prog *p = ctx;

	cli_bar_draw(&p->bar, bytes, total, files, files);
}

static int do_export(struct topts *o)
{
	struct kvault *v = NULL;
	struct kpassword pw = { NULL, 0 };
	struct kledger_takeout *x;
	const struct kledger_medium *m;
	struct view w;
	struct kguard_conf conf;
	struct kerrinfo ei = { "", "" };
	struct ktakeout_export ex;
	struct ktakeout_stats st;
	struct prog pr;
	int64_t now = ktime_now();
	char serial[160], src[PATH_MAX + 64], hex[2 * KLEDGER_HASHBYTES + 1], vid[33], f1[32], f2[32];
	char rpk[65];
	char *paths[FILES_MAX];
	size_t npaths = 0;
	json_t *det = NULL, *approved, *body;
	bool sealed, have_conf = false;
	int rc, r;

	if (o->npos != 1 || !o->to) {
		cli_usage_error("takeout", "takeout export ID --to DIR [--files VPATH...]");
		return KEXIT_USAGE;
	}
	if ((rc = kvault_open(o->vault, &v, &ei)) != 0)
		return cli_fail(rc, &ei, o->vault);
	if ((rc = cli_unlock_keep(v, &o->auth, true, &pw)) != 0)
		goto out0;
	if ((rc = load(v->vfd, v->policy, v->path, &w)) != 0)
		goto out0;
	if (!(x = find(&w, v->path, o->pos[0]))) {
		rc = KEXIT_ERROR;
		goto out;
	}
	if (strcmp(x->requester, v->user->id) != 0) {
		rc = refuse(v, "takeout-export", x->id, "not-requester", ": only its requester (%s) may export it",
			    x->requester);
		goto out;
	}
	if (x->state != KTO_APPROVED) {
		rc = refuse(v, "takeout-export", x->id, "state", " is %s: %s", kledger_takeout_state_name(x->state),
			    x->state == KTO_PENDING ? "an administrator has not approved it yet" :
			    x->state == KTO_REJECTED ? "it was rejected" :
			    x->state == KTO_EXPORTED ? "it was exported already; close it first" :
			    "it is over");
		goto out;
	}
	iso(f1, x->from);
	iso(f2, x->until);
	if (now >= x->until) {
		rc = refuse(v, "takeout-export", x->id, "period", ": its period ended at %s", f2);
		goto out;
	}
	if (!(m = live_medium(v, &w, x->medium, "takeout-export", x->id, &rc)))
		goto out;
	det = details_of(x, v->user, &sealed);
	approved = json_object_get(det, "files");
	if (!json_is_array(approved)) {
		fprintf(stderr, "kinko: %s: take-out %s: the request's details do not open for %s\n", v->path,
			x->id, v->user->id);
		rc = KEXIT_CORRUPT;
		goto out;
	}
	if (o->nfiles) {
		for (size_t i = 0; i < o->nfiles; i++) {
			if (!vpath_ok(o->files[i]) || !covered(approved, o->files[i])) {
				rc = refuse(v, "takeout-export", x->id, "not-approved", ": '%s' is not approved for take-out %s",
					    o->files[i], x->id);
				goto out;
			}
			paths[npaths++] = o->files[i];
		}
	} else {
		size_t i;
		json_t *a;

		json_array_foreach(approved, i, a)
			if (npaths < FILES_MAX && json_string_value(a))
				paths[npaths++] = (char *)json_string_value(a);
	}
	/* the registered medium, by its serial */
	if ((r = kguard_conf_load(NULL, &conf, &ei)) != 0) {
		rc = cli_fail(r, &ei, NULL);
		goto out;
	}
	have_conf = true;
	r = kguard_medium_serial(&conf, NULL, o->to, serial, sizeof(serial), src, sizeof(src));
	if (r) {
		rc = refuse(v, "takeout-export", x->id, "medium-unknown",
			    ": cannot tell which medium %s is on (no serial number; a workstation administrator can name it in kinko.conf [media])",
			    o->to);
		goto out;
	}
	if (!m->serial || strcmp(serial, m->serial) != 0) {
		rc = refuse(v, "takeout-export", x->id, "wrong-medium",
			    ": %s is on the medium with serial %s, not on %s (serial %s) as approved",
			    o->to, serial, m->id, m->serial ? m->serial : "?");
		goto out;
	}
	r = kguard_register_job("takeout", m->id, o->to, v->user->id, v->path, &ei);
	if (r && r != -ENOENT && r != -ECONNREFUSED) {
		cli_fail(r, &ei, o->to);
		cli_audit(v, v->user->id, "takeout-export", NULL, -EACCES, "guard-refused");
		rc = KEXIT_DENIED;
		goto out;
	}
	khex_encode(hex, x->req_hash, KLEDGER_HASHBYTES);
	memset(&ex, 0, sizeof(ex));
	ex.id = x->id;
	ex.medium = m->id;
	ex.approver = x->approved_by;
	ex.from = x->from;
	ex.until = x->until;
	ex.request_hash = hex;
	ex.files = paths;
	ex.nfiles = npaths;
	memset(&st, 0, sizeof(st));
	cli_bar_init(&pr.bar, "export", o->quiet);
	ei.file[0] = ei.detail[0] = 0;
	r = kvault_takeout_export(v, pw.s, pw.len, &ex, o->to, export_progress, &pr, &st, &ei);
	cli_bar_end(&pr.bar);
	if (r) {
		rc = cli_fail(r, &ei, o->to);
		cli_audit(v, v->user->id, "takeout-export", NULL, -EIO, "export-failed");
		goto out;
	}
	khex_encode(vid, st.vault_id, 16);
	khex_encode(rpk, st.root_pk, 32);
	{
		char abs[PATH_MAX];
		const char *to = realpath(o->to, abs) ? abs : o->to;

		body = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:I}", "event", "takeout-export", "takeout",
				 x->id, "vault_id", vid, "root_pk", rpk, "medium", m->id, "files",
				 (json_int_t)st.files, "bytes", (json_int_t)st.bytes);
		if (body && kledger_text_valid(to))
			json_object_set_new(body, "to", json_string(to));
	}
	rc = body ? cli_ledger_record(v, "takeout-export", body, NULL) : KEXIT_ERROR;
	json_decref(body);
	if (!rc) {
		/* two exports of one take-out at once: only the first record counts */
		struct view w2;
		const struct kledger_takeout *y;

		if (load(v->vfd, v->policy, v->path, &w2) == 0) {
			y = kledger_takeout_find(&w2.t, x->id);
			if (!y || y->state != KTO_EXPORTED || !y->export_vault || strcmp(y->export_vault, vid))
				rc = refuse(v, "takeout-export", x->id, "state",
					    ": another export of it was recorded first; this one is destroyed");
			view_free(&w2);
		}
	}
	if (!rc) {
		/* the directory written is still on the approved medium (not swapped
		 * for a symlink to somewhere else while the export ran) */
		char again[160];

		if (kguard_medium_serial(&conf, NULL, o->to, again, sizeof(again), src, sizeof(src)) != 0 ||
		    strcmp(again, serial) != 0)
			rc = refuse(v, "takeout-export", x->id, "wrong-medium",
				    ": %s moved to another medium while the export ran; the export is destroyed",
				    o->to);
	}
	if (rc) {
		/* an export the ledger does not record must not stay usable */
		destroy_contents(o->to);
		rmdir(o->to);
		goto out;
	}
	if (o->json) {
		json_t *j = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:s,s:s}", "id", x->id, "to", o->to,
				      "vault_id", vid, "files", (json_int_t)st.files, "bytes",
				      (json_int_t)st.bytes, "skipped", (json_int_t)st.skipped, "from", f1,
				      "until", f2, "user", v->user->id);

		rc = print_json(j);
		json_decref(j);
	} else {
		char per[80];

		period_text(per, sizeof(per), x->from, x->until);
		printf("kinko: take-out %s exported to %s: %llu files, %llu bytes; usable %s by %s\n",
		       x->id, o->to, (unsigned long long)st.files, (unsigned long long)st.bytes, per,
		       v->user->id);
		if (st.skipped)
			printf("kinko: %llu special file(s) (FIFOs, devices) were not exported\n",
			       (unsigned long long)st.skipped);
	}
out:
	json_decref(det);
	if (have_conf)
		kguard_conf_free(&conf);
	view_free(&w);
out0:
	cli_password_free(&pw);
	kvault_close(v);
	return rc;
}

/* unlock (no grants), read the ledger, find take-out o->pos[0]: 0 with *v, *w
 * and *x set (the caller frees w and closes v), or an exit code (nothing to free) */
static int open_find(struct topts *o, struct kvault **v, struct view *w, struct kledger_takeout **x)
{
	int rc;

	if ((rc = cli_open_unlock(o->vault, &o->auth, false, v)) != 0)
		return rc;
	if ((rc = load((*v)->vfd, (*v)->policy, (*v)->path, w)) != 0) {
		kvault_close(*v);
		return rc;
	}
	if (!(*x = find(w, (*v)->path, o->pos[0]))) {
		view_free(w);
		kvault_close(*v);
		return KEXIT_ERROR;
	}
	return 0;
}

/* ---- close: audit log home, keys destroyed, ledger record ---- */
static int do_close(struct topts *o)
{
	struct kvault *v = NULL, *t = NULL;
	struct kledger_takeout *x;
	struct view w;
	struct kerrinfo ei = { "", "" };
	struct kpolicy *tp = NULL;
	struct ktakeout_info ti;
	char vid[33], rpk[65];
	size_t segs = 0;
	json_t *body;
	int rc, r;

	if (o->npos != 1 || !o->from) {
		cli_usage_error("takeout", "takeout close ID --from DIR");
		return KEXIT_USAGE;
	}
	if ((rc = open_find(o, &v, &w, &x)) != 0)
		return rc;
	if (strcmp(x->requester, v->user->id) != 0 && !role_is(v, KROLE_ADMIN)) {
		rc = refuse(v, "takeout-close", x->id, "permission", ": only its requester or an administrator may close it");
		goto out;
	}
	if (x->state != KTO_EXPORTED) {
		rc = refuse(v, "takeout-close", x->id, "state", " is %s, not exported", kledger_takeout_state_name(x->state));
		goto out;
	}
	/* the take-out vault that came back: the one exported */
	if ((r = kvault_open(o->from, &t, &ei)) != 0) {
		rc = cli_fail(r, &ei, o->from);
		cli_audit(v, v->user->id, "takeout-close", NULL, -EIO, "not-returned");
		goto out;
	}
	khex_encode(vid, t->hdr.vault_id, 16);
	khex_encode(rpk, t->hdr.root_pk, 32);
	if (!x->export_vault || strcmp(vid, x->export_vault) != 0 ||
	    (x->export_root_pk && strcmp(rpk, x->export_root_pk) != 0)) {
		rc = refuse(v, "takeout-close", x->id, "wrong-vault", ": %s holds vault %s, not the export of %s (%s)",
			    o->from, vid, x->id, x->export_vault ? x->export_vault : "?");
		goto out;
	}
	if ((r = kpolicy_load(t->vfd, t->hdr.vault_id, t->hdr.root_pk, &tp, &ei)) != 0 ||
	    kpolicy_takeout(tp, &ti) != 1 || strcmp(ti.id, x->id) != 0) {
		if (r)
			cli_fail(r, &ei, o->from);
		rc = refuse(v, "takeout-close", x->id, "wrong-vault", ": the policy of %s does not name this take-out",
			    o->from);
		goto out;
	}
	/* 1. its audit log into the main vault's (copied, then verified by auditors) */
	if ((r = kaudit_import(t->vfd, v->vfd, x->id, &segs, &ei)) != 0) {
		rc = cli_fail(r, &ei, o->from);
		goto out;
	}
	/* 2. its keys: grants and key files overwritten and removed */
	if ((r = kvault_shred_tree(t->vfd, "grants", NULL)) != 0 && r != -ENOENT) {
		fprintf(stderr, "kinko: %s/grants: cannot destroy: %s\n", o->from, strerror(-r));
		rc = KEXIT_ERROR;
		goto out;
	}
	if ((r = kvault_shred_tree(t->vfd, "keys", NULL)) != 0 && r != -ENOENT) {
		fprintf(stderr, "kinko: %s/keys: cannot destroy: %s\n", o->from, strerror(-r));
		rc = KEXIT_ERROR;
		goto out;
	}
	/* 3. the return, in the ledger */
	body = json_pack("{s:s,s:s,s:s,s:I,s:b}", "event", "takeout-close", "takeout", x->id,
			 "vault_id", vid, "audit_segments", (json_int_t)segs, "keys_destroyed", 1);
	rc = body ? cli_ledger_record(v, "takeout-close", body, NULL) : KEXIT_ERROR;
	json_decref(body);
	if (rc)
		goto out;
	/* 4. the ciphertext: nothing readable is left, remove the rest (through the
	 * descriptor close checked, never by the path again) */
	if (destroy_fd_contents(t->vfd) != 0)
		fprintf(stderr, "kinko: %s: warning: keys destroyed, but the ciphertext could not all be removed\n",
			o->from);
	kvault_close(t);
	t = NULL;
	rmdir(o->from); /* only if empty */
	if (o->json) {
		json_t *j = json_pack("{s:s,s:s,s:I,s:b}", "id", x->id, "state", "closed", "audit_segments",
				      (json_int_t)segs, "keys_destroyed", 1);

		rc = print_json(j);
		json_decref(j);
	} else {
		printf("kinko: take-out %s closed: %zu audit segment(s) merged into the vault's log, its keys destroyed\n",
		       x->id, segs);
	}
out:
	view_free(&w);
	kpolicy_free(tp);
	kvault_close(t);
	kvault_close(v);
	return rc;
}

/* ---- alerts: lost, overdue ---- */
static void takeout_alert(const struct kpolicy *p, const char *vault, const char *what,
			  const struct kledger_takeout *x, const char *by, const char *note)
{
	struct kpolicy_settings set;
	char host[65], machine[33], ts[32], until[32];
	json_t *j;
	char *txt;

	kpolicy_settings_get(p, &set);
	kaudit_host(host, machine);
	kaudit_time_str(ts, kaudit_now_ms(NULL));
	iso(until, x->until);
	j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "alert", what, "takeout", x->id,
		      "time", ts, "requester", x->requester, "medium", x->medium, "until", until,
		      "host", host, "machine_id", machine, "vault", vault);
	if (j && by)
		json_object_set_new(j, "reported_by", json_string(by));
	if (j && note)
		json_object_set_new(j, "note", json_string(note));
	txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
	syslog(LOG_AUTHPRIV | LOG_ALERT, "kinko: %s: take-out %s of %s on medium %s (until %s), vault %s",
	       what, x->id, x->requester, x->medium, until, vault);
	if (txt && set.alert_command) {
		size_t l = strlen(txt);
		char *line = malloc(l + 2);

		if (line) {
			memcpy(line, txt, l);
			line[l] = '\n';
			line[l + 1] = 0;
			krun_alert_hook(set.alert_command, line);
			free(line);
		}
	}
	free(txt);
	json_decref(j);
}

static int do_lost(struct topts *o)
{
	struct kvault *v = NULL;
	struct kledger_takeout *x;
	struct view w;
	json_t *body;
	int rc;

	if (o->npos != 1) {
		cli_usage_error("takeout", "takeout report-lost ID [--note TEXT]");
		return KEXIT_USAGE;
	}
	if (o->note && (rc = need_text("--note", o->note)))
		return rc;
	if ((rc = open_find(o, &v, &w, &x)) != 0)
		return rc;
	if (strcmp(x->requester, v->user->id) != 0 && !role_is(v, KROLE_ADMIN)) {
		rc = refuse(v, "takeout-lost", x->id, "permission", ": only its requester or an administrator may report it");
	} else if (x->state != KTO_EXPORTED) {
		rc = refuse(v, "takeout-lost", x->id, "state", " is %s: only an exported take-out can be lost",
			    kledger_takeout_state_name(x->state));
	} else {
		body = json_pack("{s:s,s:s}", "event", "takeout-lost", "takeout", x->id);
		if (body && o->note)
			json_object_set_new(body, "note", json_string(o->note));
		rc = body ? cli_ledger_record(v, "takeout-lost", body, NULL) : KEXIT_ERROR;
		json_decref(body);
		if (!rc)
			takeout_alert(v->policy, v->path, "takeout-lost", x, v->user->id, o->note);
		if (!rc)
			printf("kinko: take-out %s reported lost by %s; the administrators are alerted\n", x->id,
			       v->user->id);
	}
	view_free(&w);
	kvault_close(v);
	return rc;
}

/* no password: the clear fields of the ledger say what is overdue */
static int do_check(struct topts *o)
{
	struct kvault *v = NULL;
	struct kerrinfo ei = { "", "" };
	struct view w;
	int64_t now = ktime_now();
	json_t *arr = json_array();
	size_t n = 0;
	int rc, r;

	if (o->npos) {
		cli_usage_error("takeout", "takeout check [--json]");
		json_decref(arr);
		return KEXIT_USAGE;
	}
	if ((r = kvault_open(o->vault, &v, &ei)) != 0 ||
	    (r = kpolicy_load(v->vfd, v->hdr.vault_id, v->hdr.root_pk, &v->policy, &ei)) != 0) {
		json_decref(arr);
		rc = cli_fail(r, &ei, o->vault);
		kvault_close(v);
		return rc;
	}
	if ((rc = load(v->vfd, v->policy, v->path, &w)) != 0)
		goto out;
	for (size_t i = 0; i < w.t.n; i++) {
		const struct kledger_takeout *x = &w.t.t[i];
		char until[32];

		if (!kledger_takeout_overdue(x, now))
			continue;
		n++;
		iso(until, x->until);
		takeout_alert(v->policy, v->path, "takeout-overdue", x, NULL, NULL);
		if (o->json)
			json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s}", "id", x->id, "requester",
							     x->requester, "medium", x->medium, "until", until));
		else
			printf("kinko: take-out %s of %s on medium %s is overdue: its period ended at %s\n",
			       x->id, x->requester, x->medium, until);
	}
	if (o->json)
		print_json(arr);
	else if (!n)
		printf("kinko: no take-out is overdue\n");
	{
		char det[64];

		snprintf(det, sizeof(det), "{\"overdue\":%zu}", n);
		cli_audit(v, "-", "takeout-check", det, 0, NULL);
	}
	rc = n ? KEXIT_DAMAGED : 0;
	view_free(&w);
out:
	json_decref(arr);
	kvault_close(v);
	return rc;
}

int cmd_takeout(int argc, char **argv)
{
	struct topts o;
	const char *sub;
	int r;

	if (argc < 2) {
		cli_usage_error("takeout", "which subcommand? %s", sub_usage);
		return KEXIT_USAGE;
	}
	sub = argv[1];
	if ((r = parse(sub, argc - 1, argv + 1, &o)) != 0)
		return r;
	if (!strcmp(sub, "request"))
		return do_request(&o);
	if (!strcmp(sub, "list"))
		return do_list(&o, false);
	if (!strcmp(sub, "show"))
		return do_list(&o, true);
	if (!strcmp(sub, "approve"))
		return do_decide(&o, true);
	if (!strcmp(sub, "reject"))
		return do_decide(&o, false);
	if (!strcmp(sub, "export"))
		return do_export(&o);
	if (!strcmp(sub, "close"))
		return do_close(&o);
	if (!strcmp(sub, "report-lost"))
		return do_lost(&o);
	if (!strcmp(sub, "check"))
		return do_check(&o);
	cli_usage_error("takeout", "unknown subcommand '%s'", sub);
	return KEXIT_USAGE;
}

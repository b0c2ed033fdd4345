// SPDX-License-Identifier: GPL-2.0-or-later
/* kinko audit show | verify | export | prune (auditors), and the audit entries
 * every CLI command writes (unlocks, administration, reviews). */
#include <fnmatch.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_ledger.h"
#include "kinko_config.h"

char cli_cmdline[1024];

void cli_set_cmdline(int argc, char **argv)
{
	size_t n = 0;

	cli_cmdline[0] = 0;
	for (int i = 0; i < argc && n < sizeof(cli_cmdline) - 1; i++) {
		int w = snprintf(cli_cmdline + n, sizeof(cli_cmdline) - n, "%s%s", i ? " " : "", argv[i]);

		if (w < 0)
			break;
		n += (size_t)w;
	}
	if (n >= sizeof(cli_cmdline))
		n = sizeof(cli_cmdline) - 1;
	cli_cmdline[n] = 0;
}

int cli_audit(struct kvault *v, const char *user, const char *action, const char *detail, int err,
	      const char *reason)
{
	struct kaudit *a = NULL;
	struct kerrinfo ei = { "", "" };
	struct kaudit_rec rec = { 0 };
	json_t *d = detail ? json_loads(detail, 0, NULL) : json_object();
	char *txt;
	int r;

	if (!v || !v->policy) {
		json_decref(d);
		return 0;
	}
	if (!json_is_object(d)) {
		json_decref(d);
		d = json_object();
	}
	json_object_set_new(d, "command", json_string(cli_cmdline));
	txt = json_dumps(d, JSON_COMPACT);
	json_decref(d);
	if ((r = kaudit_open(v->vfd, v->policy, user, "cli", &a, &ei)) != 0) {
		free(txt);
		return cli_fail(r, &ei, v->path);
	}
	rec.action = action;
	rec.detail = txt;
	rec.err = err;
	rec.reason = reason;
	rec.uid = (uint32_t)getuid();
	rec.pid = getpid();
	rec.comm = "kinko";
	rec.user = user;
	kaudit_log(a, &rec);
	r = kaudit_close(a);
	free(txt);
	if (r) {
		fprintf(stderr, "kinko: %s: the audit log could not be written: %s\n", v->path,
			r > -1000 ? strerror(-r) : kinko_strerror(r));
		return KEXIT_ERROR;
	}
	return 0;
}

enum { U_VAULT = 4000, U_AS, U_PWFILE, U_CERTKEY, U_CERTPASS, U_JSON, U_USER, U_PATH, U_SINCE,
       U_UNTIL, U_ACTION, U_RESULT, U_FORMAT, U_OUT, U_ANCHORS, U_BEFORE, U_NEWPW };

struct uopts {
	const char *vault;
	struct cli_auth auth;
	bool json;
	const char *user, *path, *action, *result, *format, *out, *anchors, *before;
	int64_t since, until;
	bool has_since, has_until;
};

static int parse(const char *sub, int argc, char **argv, struct uopts *o)
{
	static const struct option lo[] = {
		CLI_VAULT_OPTIONS,
		{ "json", no_argument, 0, U_JSON },
		{ "user", required_argument, 0, U_USER },
		{ "path", required_argument, 0, U_PATH },
		{ "since", required_argument, 0, U_SINCE },
		{ "until", required_argument, 0, U_UNTIL },
		{ "action", required_argument, 0, U_ACTION },
		{ "result", required_argument, 0, U_RESULT },
		{ "format", required_argument, 0, U_FORMAT },
		{ "out", required_argument, 0, U_OUT },
		{ "anchors", required_argument, 0, U_ANCHORS },
		{ "before", required_argument, 0, U_BEFORE },
			{ 0, 0, 0, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	o->vault = getenv("KINKO_VAULT");
	o->auth.user = cli_default_user();
	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (cli_vault_option(c, optarg, &o->vault, &o->auth))
			continue;
		switch (c) {
		case U_JSON: o->json = true; break;
		case U_USER: o->user = optarg; break;
		case U_PATH: o->path = optarg; break;
		case U_ACTION: o->action = optarg; break;
		case U_RESULT: o->result = optarg; break;
		case U_FORMAT: o->format = optarg; break;
		case U_OUT: o->out = optarg; break;
		case U_ANCHORS: o->anchors = optarg; break;
		case U_BEFORE: o->before = optarg; break;
		case U_SINCE:
		case U_UNTIL:
			if (ktime_parse(optarg, c == U_SINCE ? &o->since : &o->until) != 0) {
				cli_usage_error("audit", "%s: give YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ", optarg);
				return KEXIT_USAGE;
			}
			if (c == U_SINCE)
				o->has_since = true;
			else
				o->has_until = true;
			break;
		default: cli_usage_error("audit", "bad option"); return KEXIT_USAGE;
		}
	}
	if (optind != argc) {
		cli_usage_error("audit", "unexpected argument '%s' to audit %s", argv[optind], sub);
		return KEXIT_USAGE;
	}
	if (!o->vault) {
		cli_usage_error("audit", "which vault? give --vault DIR or set KINKO_VAULT");
		return KEXIT_USAGE;
	}
	if (o->result && strcmp(o->result, "ok") && strcmp(o->result, "denied") &&
	    strcmp(o->result, "error")) {
		cli_usage_error("audit", "--result is ok, denied or error");
		return KEXIT_USAGE;
	}
	return 0;
}

/* open the vault as o->auth.user and require one of the roles */
static int open_role(struct uopts *o, int role1, int role2, struct kvault **v)
{
	struct kpolicy_user *pu;
	int r;

	if ((r = cli_open_unlock(o->vault, &o->auth, false, v)) != 0)
		return r;
	pu = kpolicy_user_find((*v)->policy, o->auth.user);
	/* until the vault has an auditor, the log is sealed to the administrators,
	 * who then carry the review duty */
	if (pu && pu->active && pu->role == KROLE_ADMIN && role1 == KROLE_AUDITOR) {
		bool any = false;

		for (size_t i = 0; i < (*v)->policy->nusers; i++)
			any |= (*v)->policy->users[i].role == KROLE_AUDITOR && (*v)->policy->users[i].active;
		if (!any)
			return 0;
	}
#if KINKO_TEST_BUILD
	/* tests show that other users' keys open nothing, past this role check */
	if (getenv("KINKO_TEST_AUDIT_ANY_ROLE"))
		return 0;
#endif
	if (!pu || (pu->role != role1 && pu->role != role2)) {
		fprintf(stderr, "kinko: %s: user '%s' is %s; the audit log is for %s%s%s\n", o->vault,
			o->auth.user, pu ? krole_name(pu->role) : "unknown", krole_name(role1),
			role2 != role1 ? " and " : "", role2 != role1 ? krole_name(role2) : "");
		cli_audit(*v, o->auth.user, "audit-review", NULL, -EACCES, "permission");
		kvault_close(*v);
		*v = NULL;
		return KEXIT_DENIED;
	}
	return 0;
}

struct review {
	struct uopts *o;
	FILE *out;
	int mode; /* 0 table, 1 jsonl, 2 csv */
	size_t entries, shown, segments;
	json_t *issues, *notes;
	json_t *matched; /* entries to print, sorted by time at the end */
	const char *lastseg;
	char lastsegbuf[256];
};

static bool matches(struct uopts *o, json_t *e)
{
	const char *s;

	if (o->user && (!(s = json_string_value(json_object_get(e, "user"))) || strcmp(s, o->user)))
		return false;
	if (o->action && (!(s = json_string_value(json_object_get(e, "action"))) || strcmp(s, o->action)))
		return false;
	if (o->result && (!(s = json_string_value(json_object_get(e, "result"))) || strcmp(s, o->result)))
		return false;
	if (o->path) {
		const char *p1 = json_string_value(json_object_get(e, "path"));
		const char *p2 = json_string_value(json_object_get(e, "path2"));

		if (!(p1 && fnmatch(o->path, p1, 0) == 0) && !(p2 && fnmatch(o->path, p2, 0) == 0))
			return false;
	}
	if (o->has_since || o->has_until) {
		char t[32];
		int64_t ts;

		if (!(s = json_string_value(json_object_get(e, "time"))))
			return false;
		snprintf(t, sizeof(t), "%.19sZ", s);
		if (ktime_parse(t, &ts) != 0 || (o->has_since && ts < o->since) ||
		    (o->has_until && ts >= o->until))
			return false;
	}
	return true;
}

static const char *const csv_cols[] = {
	"time", "clock_synced", "user", "uid", "pid", "comm", "host", "machine_id", "action",
	"path", "path2", "result", "reason", "error", "bytes_read", "bytes_written", "mode",
	"truncate", "append", "changes", "xattr", "why", "command", "session", "segment", "seq", NULL,
};

static void csv_field(FILE *f, json_t *v)
{
	char buf[64];
	const char *s = buf;

	if (json_is_string(v))
		s = json_string_value(v);
	else if (json_is_integer(v))
		snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
	else if (json_is_boolean(v))
		snprintf(buf, sizeof(buf), "%s", json_is_true(v) ? "true" : "false");
	else if (json_is_object(v) || json_is_array(v)) {
		char *t = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);

		if (t) {
			fputc('"', f);
			for (const char *p = t; *p; p++) {
				if (*p == '"')
					fputc('"', f);
				fputc(*p, f);
			}
			fputc('"', f);
			free(t);
		}
		return;
	} else
		buf[0] = 0;
	if (strpbrk(s, ",\"\n\r")) {
		fputc('"', f);
		for (; *s; s++) {
			if (*s == '"')
				fputc('"', f);
			fputc(*s, f);
		}
		fputc('"', f);
	} else {
		fputs(s, f);
	}
}

static void print_entry(struct review *rv, json_t *e)
{
	{
		if (rv->mode == 1) {
			char *txt = json_dumps(e, JSON_COMPACT | JSON_SORT_KEYS);

			fprintf(rv->out, "%s\n", txt ? txt : "{}");
			free(txt);
		} else if (rv->mode == 2) {
			for (int i = 0; csv_cols[i]; i++) {
				if (i)
					fputc(',', rv->out);
				csv_field(rv->out, json_object_get(e, csv_cols[i]));
			}
			fputc('\n', rv->out);
		} else if (rv->mode == 0) {
			const char *p2 = json_string_value(json_object_get(e, "path2"));
			const char *reason = json_string_value(json_object_get(e, "reason"));
			const char *path = json_string_value(json_object_get(e, "path"));
			json_t *br = json_object_get(e, "bytes_read"), *bw = json_object_get(e, "bytes_written");

			fprintf(rv->out, "%-24s %-10s %-12s %-10s %-12s %-6s %s%s%s",
				json_string_value(json_object_get(e, "time")),
				json_string_value(json_object_get(e, "user")),
				json_string_value(json_object_get(e, "host")),
				json_string_value(json_object_get(e, "comm")) ?
					json_string_value(json_object_get(e, "comm")) : "-",
				json_string_value(json_object_get(e, "action")),
				json_string_value(json_object_get(e, "result")), path ? path : "-",
				p2 ? " -> " : "", p2 ? p2 : "");
			if (reason)
				fprintf(rv->out, " [%s]", reason);
			if (json_is_integer(br))
				fprintf(rv->out, " (read %lld, written %lld bytes)",
					(long long)json_integer_value(br), (long long)json_integer_value(bw));
			if (json_object_get(e, "command") && !path)
				fprintf(rv->out, " %s", json_string_value(json_object_get(e, "command")));
			fputc('\n', rv->out);
		}
	}
}

static void on_entry(void *ctx, const char *seg, uint64_t seq, const char *txt)
{
	struct review *rv = ctx;
	json_t *e = json_loads(txt, 0, NULL);

	(void)seg;
	(void)seq;
	rv->entries++;
	if (!e)
		return;
	if (rv->mode != 3 && matches(rv->o, e)) {
		rv->shown++;
		json_array_append(rv->matched, e);
	}
	json_decref(e);
}

static int cmp_entries(const void *a, const void *b)
{
	json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	const char *tx = json_string_value(json_object_get(x, "time"));
	const char *ty = json_string_value(json_object_get(y, "time"));
	int c = strcmp(tx ? tx : "", ty ? ty : "");

	if (c)
		return c;
	c = strcmp(json_string_value(json_object_get(x, "segment")) ?: "",
		   json_string_value(json_object_get(y, "segment")) ?: "");
	if (c)
		return c;
	return json_integer_value(json_object_get(x, "seq")) <
		       json_integer_value(json_object_get(y, "seq")) ? -1 : 1;
}

/* chronological across hosts and sessions */
static void print_sorted(struct review *rv)
{
	size_t n = json_array_size(rv->matched);
	json_t **v = n ? malloc(n * sizeof(*v)) : NULL;

	for (size_t i = 0; v && i < n; i++)
		v[i] = json_array_get(rv->matched, i);
	if (v)
		qsort(v, n, sizeof(*v), cmp_entries);
	for (size_t i = 0; v && i < n; i++)
		print_entry(rv, v[i]);
	free(v);
}

static void on_issue(void *ctx, const char *seg, uint64_t seq, const char *what)
{
	struct review *rv = ctx;

	json_array_append_new(rv->issues,
			      json_pack("{s:s,s:I,s:s}", "segment", seg, "entry", (json_int_t)seq, "problem", what));
}

static void on_note(void *ctx, const char *seg, const char *what)
{
	struct review *rv = ctx;

	json_array_append_new(rv->notes, json_pack("{s:s,s:s}", "segment", seg, "note", what));
}

/* the take-outs whose logs came home: closed ones, with their vault ids */
static size_t takeout_logs(struct kvault *v, struct kledger_takeouts *t, struct kaudit_takeout_log **out)
{
	size_t n = 0;

	*out = NULL;
	/* a ledger that cannot be read is named there; its take-out logs are
	 * then reported as not recorded */
	if (cli_ledger_takeouts(v, t) != 0 || !t->n || !(*out = calloc(t->n, sizeof(**out))))
		return 0;
	for (size_t i = 0; i < t->n; i++) {
		const struct kledger_takeout *x = &t->t[i];
		if (x->state != KTO_CLOSED || !x->export_vault || strlen(x->export_vault) != 32 ||
		    khex_decode((*out)[n].vault_id, 16, x->export_vault) != 0)
			continue;
		(*out)[n++].id = x->id;
	}
	return n;
}

static int scan(struct kvault *v, struct review *rv, int *issues)
{
	struct kaudit_scan_cb cb = { on_entry, on_issue, on_note, rv };
	struct kerrinfo ei = { "", "" };
	struct kaudit_takeout_log *tos = NULL;
	struct kledger_takeouts tw = { 0 };
	size_t ntos;
	int r;

	rv->issues = json_array();
	rv->notes = json_array();
	rv->matched = json_array();
	ntos = takeout_logs(v, &tw, &tos);
	r = kaudit_scan(v->vfd, v->hdr.vault_id, v->user, rv->o->anchors, tos, ntos, &cb, &ei);
	free(tos);
	kledger_takeouts_free(&tw);
	if (r < 0)
		return cli_fail(r, &ei, v->path);
	*issues = r;
	return 0;
}

static void print_problems(struct review *rv, FILE *f)
{
	json_t *x;
	size_t i;

	json_array_foreach(rv->issues, i, x)
		fprintf(f, "kinko: audit/%s: entry %lld: %s\n",
			json_string_value(json_object_get(x, "segment")),
			(long long)json_integer_value(json_object_get(x, "entry")),
			json_string_value(json_object_get(x, "problem")));
}

/* the review itself goes into the log: who looked at what */
static int log_review(struct kvault *v, struct uopts *o, const char *what, size_t shown)
{
	json_t *d = json_pack("{s:s,s:I}", "review", what, "entries_shown", (json_int_t)shown);
	char *t;
	int r;

	if (o->user)
		json_object_set_new(d, "filter_user", json_string(o->user));
	if (o->path)
		json_object_set_new(d, "filter_path", json_string(o->path));
	if (o->action)
		json_object_set_new(d, "filter_action", json_string(o->action));
	if (o->result)
		json_object_set_new(d, "filter_result", json_string(o->result));
	if (o->has_since || o->has_until) {
		char iso[32];

		if (o->has_since) {
			ktime_iso(iso, sizeof(iso), o->since);
			json_object_set_new(d, "filter_since", json_string(iso));
		}
		if (o->has_until) {
			ktime_iso(iso, sizeof(iso), o->until);
			json_object_set_new(d, "filter_until", json_string(iso));
		}
	}
	t = json_dumps(d, JSON_COMPACT);
	json_decref(d);
	r = cli_audit(v, o->auth.user, "audit-review", t, 0, NULL);
	free(t);
	return r;
}

/* free a review; the exit code: the first error, else 9 if the log has problems */
static int review_done(struct review *rv, struct kvault *v, int r, int issues)
{
	json_decref(rv->issues);
	json_decref(rv->notes);
	json_decref(rv->matched);
	kvault_close(v);
	return r ? r : issues ? KEXIT_DAMAGED : KEXIT_OK;
}

static int audit_show(int argc, char **argv, bool export)
{
	struct uopts o;
	struct kvault *v = NULL;
	struct review rv;
	int r, issues = 0;

	memset(&rv, 0, sizeof(rv));
	if ((r = parse(export ? "export" : "show", argc, argv, &o)) != 0)
		return r;
	rv.o = &o;
	rv.out = stdout;
	rv.mode = o.json ? 1 : 0;
	if (export) {
		if (!o.format || (strcmp(o.format, "csv") && strcmp(o.format, "jsonl"))) {
			cli_usage_error("audit", "export needs --format csv or --format jsonl");
			return KEXIT_USAGE;
		}
		rv.mode = strcmp(o.format, "csv") == 0 ? 2 : 1;
	}
	if ((r = open_role(&o, KROLE_AUDITOR, KROLE_AUDITOR, &v)) != 0)
		return r;
	if (o.out && !(rv.out = fopen(o.out, "wx"))) {
		fprintf(stderr, "kinko: %s: cannot create the export file: %s\n", o.out, strerror(errno));
		kvault_close(v);
		return KEXIT_ERROR;
	}
	if (rv.mode == 2) {
		for (int i = 0; csv_cols[i]; i++)
			fprintf(rv.out, "%s%s", i ? "," : "", csv_cols[i]);
		fputc('\n', rv.out);
	} else if (rv.mode == 0) {
		fprintf(rv.out, "%-24s %-10s %-12s %-10s %-12s %-6s %s\n", "TIME (UTC)", "USER", "HOST",
			"COMMAND", "ACTION", "RESULT", "PATH");
	}
	if ((r = scan(v, &rv, &issues)) == 0) {
		print_sorted(&rv);
		print_problems(&rv, stderr);
		if (issues)
			fprintf(stderr, "kinko: %d problem(s) in the audit log: run kinko audit verify\n", issues);
		r = log_review(v, &o, export ? "export" : "show", rv.shown);
	}
	if (rv.out != stdout && fclose(rv.out) != 0 && !r) {
		fprintf(stderr, "kinko: %s: write failed\n", o.out);
		r = KEXIT_ERROR;
	}
	return review_done(&rv, v, r, issues);
}

static int audit_verify(int argc, char **argv)
{
	struct uopts o;
	struct kvault *v = NULL;
	struct review rv;
	int r, issues = 0;

	memset(&rv, 0, sizeof(rv));
	if ((r = parse("verify", argc, argv, &o)) != 0)
		return r;
	rv.o = &o;
	rv.mode = 3; /* count only */
	if ((r = open_role(&o, KROLE_AUDITOR, KROLE_AUDITOR, &v)) != 0)
		return r;
	if ((r = scan(v, &rv, &issues)) == 0) {
		if (o.json) {
			json_t *j = json_pack("{s:I,s:i,s:O,s:O}", "entries", (json_int_t)rv.entries,
					      "problems", issues, "issues", rv.issues, "notes", rv.notes);
			char *t = json_dumps(j, JSON_INDENT(2));

			printf("%s\n", t ? t : "{}");
			free(t);
			json_decref(j);
		} else {
			json_t *x;
			size_t i;

			print_problems(&rv, stdout);
			json_array_foreach(rv.notes, i, x)
				printf("note: audit/%s: %s\n", json_string_value(json_object_get(x, "segment")),
				       json_string_value(json_object_get(x, "note")));
			printf("%zu entries verified, %d problem(s)%s\n", rv.entries, issues,
			       issues ? "" : ": the audit log is intact");
		}
		r = log_review(v, &o, "verify", rv.entries);
	}
	return review_done(&rv, v, r, issues);
}

static int audit_prune(int argc, char **argv)
{
	struct uopts o;
	struct kvault *v = NULL;
	struct kpolicy_settings set;
	struct kerrinfo ei = { "", "" };
	char d[64];
	int r, n;

	if ((r = parse("prune", argc, argv, &o)) != 0)
		return r;
	if (!o.before || strlen(o.before) != 7 || o.before[4] != '-' || atoi(o.before + 5) < 1 ||
	    atoi(o.before + 5) > 12) {
		cli_usage_error("audit", "prune needs --before YYYY-MM");
		return KEXIT_USAGE;
	}
	if ((r = open_role(&o, KROLE_AUDITOR, KROLE_ADMIN, &v)) != 0)
		return r;
	kpolicy_settings_get(v->policy, &set);
	n = kaudit_prune(v->vfd, o.before, set.audit_retention_years, ktime_now(), &ei);
	snprintf(d, sizeof(d), "{\"before\":\"%.7s\"}", o.before);
	if (n < 0) {
		cli_audit(v, o.auth.user, "audit-prune", d, -EACCES, "retention");
		r = cli_fail(n, &ei, v->path);
	} else {
		r = cli_audit(v, o.auth.user, "audit-prune", d, 0, NULL);
		printf("kinko: removed %d month(s) of audit segments before %s\n", n, o.before);
	}
	kvault_close(v);
	return r;
}

int cmd_audit(int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : NULL;

	if (!sub) {
		cli_usage_error("audit", "which subcommand? show, verify, export or prune");
		return KEXIT_USAGE;
	}
	if (strcmp(sub, "show") == 0)
		return audit_show(argc - 1, argv + 1, false);
	if (strcmp(sub, "export") == 0)
		return audit_show(argc - 1, argv + 1, true);
	if (strcmp(sub, "verify") == 0)
		return audit_verify(argc - 1, argv + 1);
	if (strcmp(sub, "prune") == 0)
		return audit_prune(argc - 1, argv + 1);
	cli_usage_error("audit", "unknown subcommand '%s'", sub);
	return KEXIT_USAGE;
}

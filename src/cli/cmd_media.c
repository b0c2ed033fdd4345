// SPDX-License-Identifier: GPL-2.0-or-later
/* kinko media | ledger: the media ledger (台帳).
 * Who may do what (kinko-media(1)):
 *   register, move, handover, dispose   admin
 *   list, export-usbguard                admin, auditor, backup
 *   ledger verify, ledger print          admin, auditor, backup
 *   (backup records are written by kinko backup create, role backup)
 * Every command writes an audit entry (action "media" or "ledger"). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_ledger.h"
#include "kinko/ledger.h"

enum { M_JSON = 6000, M_CSV, M_KIND, M_SERIAL,
       M_LABEL, M_LOCATION, M_HOLDER, M_TO, M_METHOD, M_CERTIFICATE, M_RULES, M_UDEV };

struct mopts {
	const char *vault;
	struct cli_auth auth;
	bool json, csv;
	const char *kind, *serial, *label, *location, *holder, *to, *method, *certificate;
	const char *rules, *udev;
	int npos;
	char *pos[4];
};

static int parse(const char *cmd, int argc, char **argv, struct mopts *o)
{
	static const struct option lo[] = {
		CLI_VAULT_OPTIONS,
		{ "json", no_argument, 0, M_JSON },
		{ "csv", no_argument, 0, M_CSV },
		{ "kind", required_argument, 0, M_KIND },
		{ "serial", required_argument, 0, M_SERIAL },
		{ "label", required_argument, 0, M_LABEL },
		{ "location", required_argument, 0, M_LOCATION },
		{ "holder", required_argument, 0, M_HOLDER },
		{ "to", required_argument, 0, M_TO },
		{ "method", required_argument, 0, M_METHOD },
		{ "certificate", required_argument, 0, M_CERTIFICATE },
		{ "rules", required_argument, 0, M_RULES },
		{ "udev", required_argument, 0, M_UDEV },
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
		case M_JSON: o->json = true; break;
		case M_CSV: o->csv = true; break;
		case M_KIND: o->kind = optarg; break;
		case M_SERIAL: o->serial = optarg; break;
		case M_LABEL: o->label = optarg; break;
		case M_LOCATION: o->location = optarg; break;
		case M_HOLDER: o->holder = optarg; break;
		case M_TO: o->to = optarg; break;
		case M_METHOD: o->method = optarg; break;
		case M_CERTIFICATE: o->certificate = optarg; break;
		case M_RULES: o->rules = optarg; break;
		case M_UDEV: o->udev = optarg; break;
		default: cli_usage_error(cmd, "bad option"); return KEXIT_USAGE;
		}
	}
	if (cli_positionals(cmd, argc, argv, o->pos, 4, &o->npos) != 0)
		return KEXIT_USAGE;
	if (cli_need_vault(cmd, o->vault) != 0)
		return KEXIT_USAGE;
	return 0;
}

int cli_open_role(const char *vault, const struct cli_auth *auth, unsigned roles,
		  const char *action, struct kvault **out)
{
	const struct kpolicy_user *pu;
	struct kvault *v;
	int r;

	*out = NULL;
	if ((r = cli_open_unlock(vault, auth, false, &v)) != 0)
		return r;
	pu = kpolicy_user_find(v->policy, v->user->id);
	if (!pu || !(roles & (1u << pu->role))) {
		fprintf(stderr, "kinko: %s: user '%s' (role %s) may not do this\n", vault,
			v->user->id, pu ? krole_name(pu->role) : "?");
		cli_audit(v, v->user->id, action, NULL, -EACCES, "permission");
		kvault_close(v);
		return KEXIT_DENIED;
	}
	*out = v;
	return 0;
}

struct lview {
	struct kledger_media t;
	json_t *recs;    /* verified records, for print */
	json_t *issues;  /* problems */
	int err;
};

static void on_rec(void *ctx, const struct kledger_rec *r)
{
	struct lview *l = ctx;
	int e = kledger_media_apply(&l->t, r);

	if (e)
		l->err = e;
	if (l->recs) {
		json_t *o = json_object();
		char t[32];

		json_object_set_new(o, "seq", json_integer((json_int_t)r->seq));
		ktime_iso(t, sizeof(t), r->time_ms / 1000);
		json_object_set_new(o, "time", json_string(t));
		json_object_set_new(o, "signer", json_string(r->signer));
		json_object_set_new(o, "body", json_loadb(r->body, r->bodylen, 0, NULL));
		json_array_append_new(l->recs, o);
	}
}

static void on_problem(void *ctx, const char *file, uint64_t seq, const char *problem)
{
	struct lview *l = ctx;
	json_t *o = json_object();

	json_object_set_new(o, "file", json_string(file));
	json_object_set_new(o, "record", json_integer((json_int_t)seq));
	json_object_set_new(o, "problem", json_string(problem));
	json_array_append_new(l->issues, o);
}

/* scan the ledger into l; prints nothing */
static int load(struct kvault *v, struct lview *l, bool keep_recs, size_t *nrec)
{
	size_t probs;
	int r;

	memset(l, 0, sizeof(*l));
	l->issues = json_array();
	l->recs = keep_recs ? json_array() : NULL;
	r = kledger_scan(v->vfd, v->policy, on_rec, on_problem, l, nrec, &probs);
	return r ? r : l->err;
}

static void lview_free(struct lview *l)
{
	kledger_media_free(&l->t);
	json_decref(l->recs);
	json_decref(l->issues);
}

static void warn_issues(const struct lview *l, const char *vault)
{
	if (json_array_size(l->issues))
		fprintf(stderr, "kinko: %s: warning: the ledger has %zu problem(s); "
				"see kinko ledger verify\n", vault, json_array_size(l->issues));
}

int cli_ledger_media(struct kvault *v, struct kledger_media *out, size_t *problems)
{
	struct lview l;
	size_t n;
	int r = load(v, &l, false, &n);

	*problems = json_array_size(l.issues);
	*out = l.t;
	l.t.m = NULL;
	l.t.n = 0;
	lview_free(&l);
	return r;
}

/* append a record and audit it; returns an exit code */
int cli_ledger_record(struct kvault *v, const char *action, json_t *body, uint64_t *seqp)
{
	struct kerrinfo ei = { "", "" };
	char *txt = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
	uint64_t seq = 0;
	int r, rc = 0;

	r = txt ? kledger_append(v->vfd, v->policy, v->user, txt, &seq, &ei) : -ENOMEM;
	if (r)
		rc = cli_fail(r, &ei, v->path);
	else
		json_object_set_new(body, "ledger_seq", json_integer((json_int_t)seq));
	free(txt);
	txt = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
	r = cli_audit(v, v->user->id, action, txt, r ? -EIO : 0, NULL);
	free(txt);
	if (!rc && r)
		rc = r;
	if (seqp)
		*seqp = seq;
	return rc;
}

#define ROLE(x) (1u << (x))
#define READERS (ROLE(KROLE_ADMIN) | ROLE(KROLE_AUDITOR) | ROLE(KROLE_BACKUP))

static int need_text(const char *what, const char *s)
{
	if (!s) {
		cli_usage_error("media", "%s is required", what);
		return KEXIT_USAGE;
	}
	if (!kledger_text_valid(s)) {
		cli_usage_error("media", "%s: 1 to %d bytes of UTF-8 without control characters",
				what, KLEDGER_TEXT_MAX);
		return KEXIT_USAGE;
	}
	return 0;
}

/* the medium named by pos[0], live (not disposed); prints why not */
static struct kledger_medium *live_medium(struct kledger_media *t, const char *id, const char *vault)
{
	struct kledger_medium *m = kledger_media_find(t, id);

	if (!m)
		fprintf(stderr, "kinko: %s: medium '%s' is not registered in the ledger\n", vault, id);
	else if (m->disposed)
		fprintf(stderr, "kinko: %s: medium '%s' was disposed of (%s)\n", vault, id,
			m->dispose_method ? m->dispose_method : "?");
	return m && !m->disposed ? m : NULL;
}

static int file_sha256(const char *path, char hex[65])
{
	struct kcrypto_sha256 h;
	uint8_t buf[65536], d[32];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	kcrypto_sha256_init(&h);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		kcrypto_sha256_update(&h, buf, (size_t)n);
	close(fd);
	kcrypto_sha256_final(&h, d);
	if (n < 0)
		return -EIO;
	khex_encode(hex, d, 32);
	return 0;
}

static int media_change(struct mopts *o, const char *sub)
{
	struct kvault *v;
	struct lview l;
	struct kledger_medium *m = NULL;
	json_t *b = NULL;
	size_t n;
	char hex[65];
	int rc, r;

	if (o->npos != 1 || !kledger_id_valid(o->pos[0])) {
		cli_usage_error("media", "media %s ID: ID is 1 to 64 of [A-Za-z0-9._-]", sub);
		return KEXIT_USAGE;
	}
	if (strcmp(sub, "register") == 0) {
		if (!o->kind || kledger_kind_from_name(o->kind) < 0) {
			cli_usage_error("media", "--kind usb|hdd|sd|tape|laptop is required");
			return KEXIT_USAGE;
		}
		if ((rc = need_text("--serial", o->serial)) || (rc = need_text("--label", o->label)) ||
		    (rc = need_text("--location", o->location)) ||
		    (rc = need_text("--holder", o->holder)))
			return rc;
	} else if (strcmp(sub, "move") == 0) {
		if ((rc = need_text("--location", o->location)))
			return rc;
	} else if (strcmp(sub, "handover") == 0) {
		if ((rc = need_text("--to", o->to)))
			return rc;
	} else {
		if (!o->method || (strcmp(o->method, "crush") && strcmp(o->method, "wipe"))) {
			cli_usage_error("media", "--method crush|wipe is required");
			return KEXIT_USAGE;
		}
		if (!o->certificate) {
			cli_usage_error("media", "--certificate FILE (the disposal certificate) is required");
			return KEXIT_USAGE;
		}
		if ((r = file_sha256(o->certificate, hex)) != 0) {
			fprintf(stderr, "kinko: %s: %s\n", o->certificate, strerror(-r));
			return KEXIT_ERROR;
		}
	}
	if ((rc = cli_open_role(o->vault, &o->auth, ROLE(KROLE_ADMIN), "media", &v)) != 0)
		return rc;
	if ((r = load(v, &l, false, &n)) != 0) {
		rc = cli_fail(r, NULL, v->path);
		goto out;
	}
	warn_issues(&l, v->path);
	if (strcmp(sub, "register") == 0) {
		if ((m = kledger_media_find(&l.t, o->pos[0]))) {
			fprintf(stderr, "kinko: %s: medium '%s' is already in the ledger%s\n", v->path,
				o->pos[0], m->disposed ? " (disposed of; ids are never reused)" : "");
			cli_audit(v, v->user->id, "media", NULL, -EEXIST, "exists");
			rc = KEXIT_EXISTS;
			goto out;
		}
		b = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "event", "register", "medium",
			      o->pos[0], "kind", o->kind, "serial", o->serial, "label", o->label,
			      "location", o->location, "holder", o->holder);
	} else {
		if (!(m = live_medium(&l.t, o->pos[0], v->path))) {
			cli_audit(v, v->user->id, "media", NULL, -ENOENT, "not-registered");
			rc = KEXIT_ERROR;
			goto out;
		}
		if (strcmp(sub, "move") == 0)
			b = json_pack("{s:s,s:s,s:s,s:s}", "event", "move", "medium", m->id, "from",
				      m->location, "location", o->location);
		else if (strcmp(sub, "handover") == 0)
			b = json_pack("{s:s,s:s,s:s,s:s,s:s}", "event", "handover", "medium", m->id,
				      "from", m->holder, "to", o->to, "by", v->user->id);
		else {
			const char *base = strrchr(o->certificate, '/');

			base = base ? base + 1 : o->certificate;
			b = json_pack("{s:s,s:s,s:s,s:s,s:s}", "event", "dispose", "medium", m->id,
				      "method", o->method, "certificate", base,
				      "certificate_sha256", hex);
			if (b && !kledger_text_valid(base))
				json_object_set_new(b, "certificate", json_string("(unprintable name)"));
		}
	}
	{
		uint64_t seq = 0;

		rc = b ? cli_ledger_record(v, "media", b, &seq) : KEXIT_ERROR;
		if (!rc)
			printf("kinko: medium %s: %s recorded (ledger record %llu)\n", o->pos[0], sub,
			       (unsigned long long)seq);
	}
out:
	json_decref(b);
	lview_free(&l);
	kvault_close(v);
	return rc;
}

static void ms_iso(char *t, size_t n, int64_t ms)
{
	if (ms <= 0)
		snprintf(t, n, "-");
	else
		ktime_iso(t, n, ms / 1000);
}

static void csv_str(FILE *f, const char *s, bool last)
{
	fputc('"', f);
	for (; s && *s; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	fputc('"', f);
	fputs(last ? "\r\n" : ",", f);
}

static json_t *jstr(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *medium_json(const struct kledger_medium *m)
{
	json_t *o = json_object();
	char t[32];

#define S(k, v) json_object_set_new(o, k, jstr(v))
	S("id", m->id);
	S("kind", m->kind);
	S("serial", m->serial);
	S("label", m->label);
	S("location", m->location);
	S("holder", m->holder);
	S("state", m->disposed ? "disposed" : "active");
	ms_iso(t, sizeof(t), m->registered_ms);
	S("registered", t);
	S("registered_by", m->registered_by);
	ms_iso(t, sizeof(t), m->updated_ms);
	S("updated", t);
	S("dispose_method", m->dispose_method);
	S("certificate_sha256", m->certificate_sha256);
	json_object_set_new(o, "backups", json_integer((json_int_t)m->backups));
	ms_iso(t, sizeof(t), m->last_backup_ms);
	S("last_backup", m->last_backup_ms ? t : NULL);
#undef S
	return o;
}

static int media_list(struct mopts *o)
{
	static const char *const hdr[] = { "媒体ID", "種別", "製造番号", "ラベル", "保管場所",
					   "保管者", "状態", "登録日時", "登録者", "最終更新",
					   "廃棄方法", "廃棄証明書SHA-256", "バックアップ回数",
					   "最終バックアップ" };
	struct kvault *v;
	struct lview l;
	size_t n;
	int rc, r;

	if ((rc = cli_open_role(o->vault, &o->auth, READERS, "media", &v)) != 0)
		return rc;
	if ((r = load(v, &l, false, &n)) != 0) {
		rc = cli_fail(r, NULL, v->path);
		goto out;
	}
	warn_issues(&l, v->path);
	if (o->json) {
		json_t *a = json_array();
		char *s;

		for (size_t i = 0; i < l.t.n; i++)
			json_array_append_new(a, medium_json(&l.t.m[i]));
		s = json_dumps(a, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("%s\n", s ? s : "[]");
		free(s);
		json_decref(a);
	} else if (o->csv) {
		fputs("\xef\xbb\xbf", stdout); /* BOM: spreadsheets read the headers as UTF-8 */
		for (size_t i = 0; i < sizeof(hdr) / sizeof(hdr[0]); i++)
			csv_str(stdout, hdr[i], i + 1 == sizeof(hdr) / sizeof(hdr[0]));
		for (size_t i = 0; i < l.t.n; i++) {
			json_t *m = medium_json(&l.t.m[i]);
			static const char *const keys[] = { "id", "kind", "serial", "label", "location",
							    "holder", "state", "registered",
							    "registered_by", "updated", "dispose_method",
							    "certificate_sha256", "backups", "last_backup" };
			for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
				json_t *f = json_object_get(m, keys[k]);
				char num[32];
				const char *s = json_string_value(f);

				if (json_is_integer(f)) {
					snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(f));
					s = num;
				}
				csv_str(stdout, s ? s : "", k + 1 == sizeof(keys) / sizeof(keys[0]));
			}
			json_decref(m);
		}
	} else {
		printf("%-14s %-6s %-18s %-16s %-16s %-12s %-8s %s\n", "ID", "KIND", "SERIAL", "LABEL",
		       "LOCATION", "HOLDER", "STATE", "BACKUPS");
		for (size_t i = 0; i < l.t.n; i++) {
			const struct kledger_medium *m = &l.t.m[i];

			printf("%-14s %-6s %-18s %-16s %-16s %-12s %-8s %llu\n", m->id,
			       m->kind ? m->kind : "?", m->serial ? m->serial : "",
			       m->label ? m->label : "", m->location ? m->location : "",
			       m->holder ? m->holder : "", m->disposed ? "disposed" : "active",
			       (unsigned long long)m->backups);
		}
	}
	rc = cli_audit(v, v->user->id, "media", "{\"event\":\"list\"}", 0, NULL);
out:
	lview_free(&l);
	kvault_close(v);
	return rc;
}

/* USBGuard rules: registered, live USB media (kinds usb and hdd) by serial */
static bool usb_kind(const struct kledger_medium *m)
{
	return m->kind && (strcmp(m->kind, "usb") == 0 || strcmp(m->kind, "hdd") == 0);
}

/* USBGuard and udev strings: the serial is printed inside "..." */
static bool rule_safe(const char *s)
{
	for (; *s; s++)
		if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20)
			return false;
	return true;
}

static void write_usbguard(FILE *f, const struct kledger_media *t, const char *vault)
{
	char now[32];

	ktime_iso(now, sizeof(now), ktime_now());
	fprintf(f, "# USBGuard rules generated by kinko media export-usbguard\n"
		   "# from the media ledger of %s at %s.\n"
		   "# Registered, not disposed USB media (kinds usb, hdd) are allowed by serial;\n"
		   "# every other device with a mass-storage interface (class 08) is blocked.\n"
		   "# Other devices (keyboards, ...) fall through to the rules that follow or to\n"
		   "# ImplicitPolicyTarget in usbguard-daemon.conf. Regenerate after each ledger change.\n",
		vault, now);
	for (size_t i = 0; i < t->n; i++) {
		const struct kledger_medium *m = &t->m[i];

		if (m->disposed || !usb_kind(m) || !m->serial)
			continue;
		if (!rule_safe(m->serial) || !rule_safe(m->id)) {
			fprintf(f, "# medium %s skipped: serial not expressible in a rule\n",
				rule_safe(m->id) ? m->id : "?");
			continue;
		}
		fprintf(f, "# kinko medium %s\nallow serial \"%s\" with-interface one-of { 08:*:* }\n",
			m->id, m->serial);
	}
	fprintf(f, "# unregistered mass storage\nblock with-interface one-of { 08:*:* }\n");
}

static void write_udev(FILE *f, const struct kledger_media *t, const char *vault)
{
	char now[32];

	ktime_iso(now, sizeof(now), ktime_now());
	fprintf(f, "# udev rules generated by kinko media export-usbguard\n"
		   "# from the media ledger of %s at %s.\n"
		   "# For systems without USBGuard: the mass-storage interface (class 08) of a USB\n"
		   "# device whose serial is not a registered, live medium is de-authorised.\n"
		   "# Install as /etc/udev/rules.d/70-kinko-media.rules; udevadm control --reload.\n",
		vault, now);
	fprintf(f, "ACTION!=\"add\", GOTO=\"kinko_media_end\"\n"
		   "SUBSYSTEM!=\"usb\", GOTO=\"kinko_media_end\"\n"
		   "ENV{DEVTYPE}!=\"usb_interface\", GOTO=\"kinko_media_end\"\n"
		   "ATTR{bInterfaceClass}!=\"08\", GOTO=\"kinko_media_end\"\n");
	for (size_t i = 0; i < t->n; i++) {
		const struct kledger_medium *m = &t->m[i];

		if (m->disposed || !usb_kind(m) || !m->serial || !rule_safe(m->serial) ||
		    !rule_safe(m->id) || strpbrk(m->serial, "*?[|"))
			continue;
		fprintf(f, "# kinko medium %s\nATTRS{serial}==\"%s\", GOTO=\"kinko_media_end\"\n",
			m->id, m->serial);
	}
	fprintf(f, "ATTR{authorized}=\"0\", "
		   "RUN+=\"/usr/bin/logger -p auth.warning -t kinko unregistered USB storage blocked: %%p\"\n"
		   "LABEL=\"kinko_media_end\"\n");
}

static int write_to(const char *path, const struct kledger_media *t, const char *vault, bool udev)
{
	FILE *f = path ? fopen(path, "w") : stdout;

	if (!f) {
		perror(path);
		return KEXIT_ERROR;
	}
	if (udev)
		write_udev(f, t, vault);
	else
		write_usbguard(f, t, vault);
	if (path && fclose(f) != 0) {
		perror(path);
		return KEXIT_ERROR;
	}
	return 0;
}

static int media_export(struct mopts *o)
{
	struct kvault *v;
	struct lview l;
	size_t n;
	int rc, r;

	if ((rc = cli_open_role(o->vault, &o->auth, READERS, "media", &v)) != 0)
		return rc;
	if ((r = load(v, &l, false, &n)) != 0) {
		rc = cli_fail(r, NULL, v->path);
		goto out;
	}
	warn_issues(&l, v->path);
	if (o->rules || !o->udev)
		rc = write_to(o->rules, &l.t, v->path, false);
	if (!rc && o->udev)
		rc = write_to(o->udev, &l.t, v->path, true);
	if (!rc)
		rc = cli_audit(v, v->user->id, "media", "{\"event\":\"export-usbguard\"}", 0, NULL);
out:
	lview_free(&l);
	kvault_close(v);
	return rc;
}

int cmd_media(int argc, char **argv)
{
	struct mopts o;
	const char *sub;
	int r;

	if (argc < 2) {
		cli_usage_error("media", "which subcommand?");
		return KEXIT_USAGE;
	}
	sub = argv[1];
	if ((r = parse("media", argc - 1, argv + 1, &o)) != 0)
		return r;
	if (!strcmp(sub, "register") || !strcmp(sub, "move") || !strcmp(sub, "handover") ||
	    !strcmp(sub, "dispose"))
		return media_change(&o, sub);
	if (!strcmp(sub, "list"))
		return media_list(&o);
	if (!strcmp(sub, "export-usbguard"))
		return media_export(&o);
	cli_usage_error("media", "unknown subcommand '%s'", sub);
	return KEXIT_USAGE;
}

static void event_text(char *out, size_t n, json_t *b)
{
	const char *k;
	json_t *val;
	size_t off = 0;

	out[0] = 0;
	json_object_foreach(b, k, val) {
		char v[160];

		if (!strcmp(k, "event") || !strcmp(k, "medium"))
			continue;
		if (json_is_string(val))
			snprintf(v, sizeof(v), "%s", json_string_value(val));
		else if (json_is_integer(val))
			snprintf(v, sizeof(v), "%lld", (long long)json_integer_value(val));
		else
			continue;
		off += (size_t)snprintf(out + off, off < n ? n - off : 0, "%s%s=%s", off ? " " : "", k, v);
		if (off >= n)
			break;
	}
}

static int ledger_print(struct mopts *o, struct kvault *v, struct lview *l)
{
	static const char *const hdr[] = { "番号", "日時(UTC)", "記録者", "事象", "媒体ID", "内容" };
	size_t nrec = json_array_size(l->recs);

	if (o->json) {
		char *s = json_dumps(l->recs, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

		printf("%s\n", s ? s : "[]");
		free(s);
		return 0;
	}
	if (o->csv) {
		fputs("\xef\xbb\xbf", stdout);
		for (size_t i = 0; i < 6; i++)
			csv_str(stdout, hdr[i], i == 5);
	} else {
		printf("媒体管理台帳 (kinko ledger print) — %s\n", v->path);
		printf("%-6s %-20s %-12s %-9s %-14s %s\n", "No.", "UTC", "BY", "EVENT", "MEDIUM",
		       "DETAILS");
	}
	for (size_t i = 0; i < nrec; i++) {
		json_t *e = json_array_get(l->recs, i), *b = json_object_get(e, "body");
		const char *ev = json_string_value(json_object_get(b, "event"));
		const char *md = json_string_value(json_object_get(b, "medium"));
		char seq[24], det[1024];

		snprintf(seq, sizeof(seq), "%lld", (long long)json_integer_value(json_object_get(e, "seq")));
		event_text(det, sizeof(det), b);
		if (o->csv) {
			csv_str(stdout, seq, false);
			csv_str(stdout, json_string_value(json_object_get(e, "time")), false);
			csv_str(stdout, json_string_value(json_object_get(e, "signer")), false);
			csv_str(stdout, ev, false);
			csv_str(stdout, md ? md : "", false);
			csv_str(stdout, det, true);
		} else {
			printf("%-6s %-20s %-12s %-9s %-14s %s\n", seq,
			       json_string_value(json_object_get(e, "time")),
			       json_string_value(json_object_get(e, "signer")), ev ? ev : "?",
			       md ? md : "", det);
		}
	}
	return 0;
}

int cmd_ledger(int argc, char **argv)
{
	struct mopts o;
	struct kvault *v;
	struct lview l;
	const char *sub;
	size_t nrec = 0, nprob;
	int r, rc;

	if (argc < 2 || (strcmp(argv[1], "verify") && strcmp(argv[1], "print"))) {
		cli_usage_error("ledger", "ledger verify|print");
		return KEXIT_USAGE;
	}
	sub = argv[1];
	if ((r = parse("ledger", argc - 1, argv + 1, &o)) != 0)
		return r;
	if (o.npos) {
		cli_usage_error("ledger", "unexpected argument '%s'", o.pos[0]);
		return KEXIT_USAGE;
	}
	if ((rc = cli_open_role(o.vault, &o.auth, READERS, "ledger", &v)) != 0)
		return rc;
	if ((r = load(v, &l, true, &nrec)) != 0) {
		rc = cli_fail(r, NULL, v->path);
		goto out;
	}
	nprob = json_array_size(l.issues);
	if (strcmp(sub, "verify") == 0) {
		if (o.json) {
			json_t *j = json_pack("{s:I,s:I,s:O}", "records", (json_int_t)nrec, "problems",
					      (json_int_t)nprob, "issues", l.issues);
			char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

			printf("%s\n", s ? s : "{}");
			free(s);
			json_decref(j);
		} else {
			for (size_t i = 0; i < nprob; i++) {
				json_t *e = json_array_get(l.issues, i);

				printf("kinko: %s: %s\n", json_string_value(json_object_get(e, "file")),
				       json_string_value(json_object_get(e, "problem")));
			}
			printf("kinko: ledger: %zu record(s) verified, %zu problem(s)\n", nrec, nprob);
		}
		rc = nprob ? KEXIT_DAMAGED : KEXIT_OK;
	} else {
		warn_issues(&l, v->path);
		rc = ledger_print(&o, v, &l);
	}
	{
		char d[96];

		snprintf(d, sizeof(d), "{\"event\":\"%s\",\"records\":%zu,\"problems\":%zu}", sub, nrec,
			 nprob);
		r = cli_audit(v, v->user->id, "ledger", d, 0, NULL);
		if (r && !rc)
			rc = r;
	}
out:
	lview_free(&l);
	kvault_close(v);
	return rc;
}

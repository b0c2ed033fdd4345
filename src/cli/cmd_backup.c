// SPDX-License-Identifier: GPL-2.0-or-later
/* kinko backup create | verify | restore.
 *   create   role backup (their own key signs the manifest); the medium must
 *            be registered in the ledger and not disposed of; the job is
 *            registered with the guard service first; the backup is recorded
 *            in the ledger and the audit log.
 *   verify   no vault and no key: the manifest's signature (against the policy
 *            inside the backup) and every file's hash.
 *   restore  role admin of the restored vault (checked on the result, which is
 *            removed again if the user is not its admin). */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_ledger.h"
#include "kinko/backup.h"
#include "kinko/guard.h"

enum { B_VAULT = 7000, B_AS, B_PWFILE, B_CERTKEY, B_CERTPASS, B_JSON, B_MEDIA, B_TO, B_QUIET };

struct bopts {
	const char *vault;
	struct cli_auth auth;
	bool json, quiet;
	const char *media, *to;
	int npos;
	char *pos[2];
};

static int parse(int argc, char **argv, struct bopts *o)
{
	static const struct option lo[] = {
		CLI_VAULT_OPTIONS,
		{ "json", no_argument, 0, B_JSON },
		{ "media", required_argument, 0, B_MEDIA },
		{ "to", required_argument, 0, B_TO },
		{ "quiet", no_argument, 0, B_QUIET },
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
		case B_JSON: o->json = true; break;
		case B_MEDIA: o->media = optarg; break;
		case B_TO: o->to = optarg; break;
		case B_QUIET: o->quiet = true; break;
		default: cli_usage_error("backup", "bad option"); return KEXIT_USAGE;
		}
	}
	for (int i = optind; i < argc; i++) {
		if (o->npos >= 2) {
			cli_usage_error("backup", "too many arguments");
			return KEXIT_USAGE;
		}
		o->pos[o->npos++] = argv[i];
	}
	return 0;
}

static void print_stats(const struct bopts *o, const char *verb, const char *dir,
			const struct kbackup_stats *st, size_t problems)
{
	if (o->json) {
		json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:s,s:I}",
				      "backup", dir, "vault_id", st->vault_id, "medium", st->medium,
				      "signer", st->signer, "created", st->created,
				      "files", (json_int_t)st->files, "bytes", (json_int_t)st->bytes,
				      "copied_files", (json_int_t)st->copied_files,
				      "copied_bytes", (json_int_t)st->copied_bytes,
				      "read_files", (json_int_t)st->read_files,
				      "read_bytes", (json_int_t)st->read_bytes,
				      "removed_objects", (json_int_t)st->removed_objects,
				      "manifest_sha256", st->manifest_sha256,
				      "problems", (json_int_t)problems);
		char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

		printf("%s\n", s ? s : "{}");
		free(s);
		json_decref(j);
		return;
	}
	printf("kinko: %s %s: %llu files, %llu bytes; copied %llu files, %llu bytes (medium %s, "
	       "signed by %s)\n", verb, dir, (unsigned long long)st->files,
	       (unsigned long long)st->bytes, (unsigned long long)st->copied_files,
	       (unsigned long long)st->copied_bytes, st->medium, st->signer);
}

/* absolute, symlink-free form of p, which need not exist yet (its nearest
 * existing ancestor is resolved; the rest is appended) */
static int abs_path(const char *p, char out[PATH_MAX], int depth)
{
	char parent[PATH_MAX], *slash;
	const char *base;

	if (realpath(p, out))
		return 0;
	if (errno != ENOENT || depth > 64 || strlen(p) >= sizeof(parent))
		return -1;
	strcpy(parent, p);
	while ((slash = strrchr(parent, '/')) && slash[1] == 0 && slash != parent)
		*slash = 0; /* trailing slashes */
	slash = strrchr(parent, '/');
	if (!slash) {
		base = p;
		strcpy(parent, ".");
	} else {
		*slash = 0;
		base = p + (slash - parent) + 1;
		if (!parent[0])
			strcpy(parent, "/");
	}
	if (!strcmp(base, "..") || !strcmp(base, ".") || abs_path(parent, out, depth + 1) != 0)
		return -1;
	if (strlen(out) + 1 + strlen(base) >= PATH_MAX)
		return -1;
	if (strcmp(out, "/"))
		strcat(out, "/");
	strcat(out, base);
	/* drop trailing slashes copied with base */
	for (size_t n = strlen(out); n > 1 && out[n - 1] == '/'; n--)
		out[n - 1] = 0;
	return 0;
}

static int backup_create(struct bopts *o)
{
	struct kerrinfo ei = { "", "" };
	struct kbackup_stats st;
	struct kledger_media t = { 0 };
	struct kledger_medium *m;
	struct kbackup_progress pr;
	struct cli_bar bar;
	struct kvault *v;
	json_t *b = NULL;
	char dest[PATH_MAX], detail[256];
	uint64_t seq = 0;
	size_t probs;
	int r, rc;

	if (!o->media || !o->to || o->npos) {
		cli_usage_error("backup", "backup create --media ID --to DIR");
		return KEXIT_USAGE;
	}
	if (!o->vault) {
		cli_usage_error("backup", "which vault? give --vault DIR or set KINKO_VAULT");
		return KEXIT_USAGE;
	}
	if ((rc = cli_open_role(o->vault, &o->auth, 1u << KROLE_BACKUP, "backup", &v)) != 0)
		return rc;
	if ((r = cli_ledger_media(v, &t, &probs)) != 0) {
		rc = cli_fail(r, NULL, v->path);
		goto out;
	}
	if (probs)
		fprintf(stderr, "kinko: %s: warning: the ledger has %zu problem(s); see kinko ledger "
				"verify\n", v->path, probs);
	m = kledger_media_find(&t, o->media);
	if (!m || m->disposed) {
		fprintf(stderr, "kinko: backup refused: medium '%s' %s\n", o->media,
			!m ? "is not registered in the media ledger (kinko media register)"
			   : "was disposed of; a disposed medium may not receive backups");
		snprintf(detail, sizeof(detail), "{\"event\":\"backup\",\"medium\":\"%s\"}", o->media);
		cli_audit(v, v->user->id, "backup", detail, -EACCES,
			  !m ? "medium-not-registered" : "medium-disposed");
		rc = KEXIT_DENIED;
		goto out;
	}
	if (abs_path(o->to, dest, 0) != 0) {
		fprintf(stderr, "kinko: %s: cannot resolve the path\n", o->to);
		rc = KEXIT_ERROR;
		goto out;
	}
	{
		size_t vl = strlen(v->path);

		if (strncmp(dest, v->path, vl) == 0 && (dest[vl] == '/' || dest[vl] == 0)) {
			fprintf(stderr, "kinko: %s: a backup cannot be written inside the vault\n", dest);
			rc = KEXIT_USAGE;
			goto out;
		}
	}
	if ((r = kmkdirs_at(AT_FDCWD, dest, 0700)) != 0 && r != -EEXIST) {
		fprintf(stderr, "kinko: %s: %s\n", dest, strerror(-r));
		rc = KEXIT_ERROR;
		goto out;
	}
	r = kguard_register_job("backup", m->id, dest, v->user->id, v->path, &ei);
	if (r == -ENOENT || r == -ECONNREFUSED) {
		if (!o->quiet && isatty(STDERR_FILENO))
			fprintf(stderr, "kinko: note: no guard service runs; nothing to register\n");
	} else if (r) {
		cli_fail(r, &ei, dest);
		cli_audit(v, v->user->id, "backup", NULL, -EACCES, "guard-refused");
		rc = KEXIT_DENIED;
		goto out;
	}
	cli_bar_init(&bar, "backup", o->quiet);
	pr.fn = cli_bar_draw;
	pr.ctx = &bar;
	r = kbackup_create(v->vfd, v->policy, v->user, m->id, dest, &pr, &st, &ei);
	cli_bar_end(&bar);
	if (r) {
		rc = cli_fail(r, &ei, dest);
		cli_audit(v, v->user->id, "backup", NULL, -EIO, NULL);
		goto out;
	}
	b = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:s}", "event", "backup", "medium", m->id,
		      "dest", dest, "files", (json_int_t)st.files, "bytes", (json_int_t)st.bytes,
		      "copied_files", (json_int_t)st.copied_files, "copied_bytes",
		      (json_int_t)st.copied_bytes, "manifest_sha256", st.manifest_sha256);
	if (b && !kledger_text_valid(dest))
		json_object_set_new(b, "dest", json_string("(unprintable path)"));
	rc = b ? cli_ledger_record(v, "backup", b, &seq) : KEXIT_ERROR;
	if (!rc)
		print_stats(o, "backup", dest, &st, 0);
	if (!rc && !o->json)
		printf("kinko: recorded in the ledger as record %llu\n", (unsigned long long)seq);
out:
	json_decref(b);
	kledger_media_free(&t);
	kvault_close(v);
	return rc;
}

struct vrep {
	bool json;
	json_t *issues;
};

static void on_problem(void *ctx, const char *path, const char *problem)
{
	struct vrep *v = ctx;

	json_array_append_new(v->issues, json_pack("{s:s,s:s}", "file", path, "problem", problem));
	if (!v->json)
		printf("kinko: %s: %s\n", path, problem);
}

static int backup_verify(struct bopts *o)
{
	struct kerrinfo ei = { "", "" };
	struct kbackup_stats st;
	struct kbackup_progress pr;
	struct vrep rep = { o->json, json_array() };
	struct cli_bar bar;
	size_t problems = 0;
	int r, rc;

	if (o->npos != 1) {
		cli_usage_error("backup", "backup verify DIR");
		json_decref(rep.issues);
		return KEXIT_USAGE;
	}
	cli_bar_init(&bar, "verify", o->quiet);
	pr.fn = cli_bar_draw;
	pr.ctx = &bar;
	r = kbackup_verify(o->pos[0], on_problem, &rep, &pr, &st, &problems, &ei);
	cli_bar_end(&bar);
	if (r) {
		rc = cli_fail(r, &ei, o->pos[0]);
		if (o->json) {
			json_t *j = json_pack("{s:s,s:b,s:s}", "backup", o->pos[0], "ok", 0, "error",
					      ei.detail[0] ? ei.detail : kinko_strerror(r));
			char *s = json_dumps(j, JSON_INDENT(2));

			printf("%s\n", s);
			free(s);
			json_decref(j);
		}
		json_decref(rep.issues);
		return rc;
	}
	if (o->json) {
		json_t *j = json_pack("{s:s,s:b,s:s,s:s,s:s,s:I,s:I,s:I,s:O}", "backup", o->pos[0], "ok",
				      problems == 0, "signer", st.signer, "medium", st.medium,
				      "created", st.created, "files", (json_int_t)st.files, "bytes",
				      (json_int_t)st.bytes, "problems", (json_int_t)problems, "issues",
				      rep.issues);
		char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

		printf("%s\n", s);
		free(s);
		json_decref(j);
	} else {
		printf("kinko: backup %s (medium %s, %s, signed by %s): %llu files, %llu bytes, "
		       "%zu problem(s)\n", o->pos[0], st.medium, st.created, st.signer,
		       (unsigned long long)st.files, (unsigned long long)st.bytes, problems);
	}
	json_decref(rep.issues);
	return problems ? KEXIT_DAMAGED : KEXIT_OK;
}

static int backup_restore(struct bopts *o)
{
	struct kerrinfo ei = { "", "" };
	struct kbackup_stats st;
	struct kbackup_progress pr;
	struct cli_bar bar;
	struct kvault *v = NULL;
	int r, rc;

	if (o->npos != 1 || !o->to) {
		cli_usage_error("backup", "backup restore DIR --to NEWVAULT --as ADMIN");
		return KEXIT_USAGE;
	}
	cli_bar_init(&bar, "restore", o->quiet);
	pr.fn = cli_bar_draw;
	pr.ctx = &bar;
	r = kbackup_restore(o->pos[0], o->to, &pr, &st, &ei);
	cli_bar_end(&bar);
	if (r)
		return cli_fail(r, &ei, o->pos[0]);
	/* the restored vault's own policy decides who may have restored it */
	rc = cli_open_role(o->to, &o->auth, 1u << KROLE_ADMIN, "backup", &v);
	if (rc) {
		fprintf(stderr, "kinko: %s: restore undone: only an administrator of the backed-up "
				"vault may restore it\n", o->to);
		kbackup_remove_tree(o->to);
		return rc;
	}
	{
		/* the restored ledger is older than what this workstation may have
		 * seen of the vault: an administrator's restore starts it again,
		 * with a record of the restore on top */
		uint8_t zero[32] = { 0 };
		char from[PATH_MAX];
		uint64_t seq = 0;
		json_t *b;

		(void)kledger_seen_set(v->policy->vault_id, 0, zero, false);
		if (!realpath(o->pos[0], from))
			snprintf(from, sizeof(from), "%s", o->pos[0]);
		b = json_pack("{s:s,s:s,s:I,s:I,s:s,s:s}", "event", "restore", "from", from, "files",
			      (json_int_t)st.files, "bytes", (json_int_t)st.bytes, "manifest_sha256",
			      st.manifest_sha256, "backup_created", st.created);
		if (b && kledger_id_valid(st.medium))
			json_object_set_new(b, "medium", json_string(st.medium));
		if (b && !kledger_text_valid(from))
			json_object_set_new(b, "from", json_string("(unprintable path)"));
		rc = b ? cli_ledger_record(v, "backup", b, &seq) : KEXIT_ERROR;
		json_decref(b);
		if (!rc) {
			st.copied_files = st.files;
			st.copied_bytes = st.bytes;
			print_stats(o, "restored", o->to, &st, 0);
			if (!o->json)
				printf("kinko: recorded in the ledger as record %llu\n",
				       (unsigned long long)seq);
		}
	}
	kvault_close(v);
	return rc;
}

int cmd_backup(int argc, char **argv)
{
	struct bopts o;
	const char *sub;
	int r;

	if (argc < 2) {
		cli_usage_error("backup", "which subcommand?");
		return KEXIT_USAGE;
	}
	sub = argv[1];
	if ((r = parse(argc - 1, argv + 1, &o)) != 0)
		return r;
	if (!strcmp(sub, "create"))
		return backup_create(&o);
	if (!strcmp(sub, "verify"))
		return backup_verify(&o);
	if (!strcmp(sub, "restore"))
		return backup_restore(&o);
	cli_usage_error("backup", "unknown subcommand '%s'", sub);
	return KEXIT_USAGE;
}

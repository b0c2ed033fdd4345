// SPDX-License-Identifier: GPL-2.0-or-later
/* kinko key | recovery | certificate | compartment erase: the key lifecycle
 * (DESIGN.md section 10). Authentication as for the other administration
 * commands: --vault DIR (or $KINKO_VAULT), --as ID, --password-file F,
 * --cert-key F. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "kinko/ledger.h"
#include "kinko/lifecycle.h"

enum { K_JSON = 5000, K_REVOKE, K_PROGRESS,
       K_NOPROGRESS, K_OUT, K_REPLACE, K_KEY, K_RO, K_YES };

#define MAX_REVOKE 32

struct kopts {
	const char *vault;
	struct cli_auth auth;
	bool json, progress, no_progress, replace, read_only, yes;
	const char *out, *key;
	const char *revoke[MAX_REVOKE];
	size_t nrevoke;
	int npos;
	char *pos[4];
};

static const struct option key_lo[] = {
	CLI_VAULT_OPTIONS,
	{ "json", no_argument, 0, K_JSON },
	{ "revoke", required_argument, 0, K_REVOKE },
	{ "progress", no_argument, 0, K_PROGRESS },
	{ "no-progress", no_argument, 0, K_NOPROGRESS },
	{ "out", required_argument, 0, K_OUT },
	{ "replace", no_argument, 0, K_REPLACE },
	{ "key", required_argument, 0, K_KEY },
	{ "read-only", no_argument, 0, K_RO },
	{ "yes", no_argument, 0, K_YES },
	{ 0, 0, 0, 0 },
};

static int kparse(const char *cmd, int argc, char **argv, struct kopts *o, bool need_vault)
{
	int c;

	memset(o, 0, sizeof(*o));
	o->vault = getenv("KINKO_VAULT");
	o->auth.user = cli_default_user();
	optind = 1;
	while ((c = getopt_long(argc, argv, "", key_lo, NULL)) != -1) {
		if (cli_vault_option(c, optarg, &o->vault, &o->auth))
			continue;
		switch (c) {
		case K_JSON: o->json = true; break;
		case K_REVOKE:
			if (o->nrevoke == MAX_REVOKE) {
				cli_usage_error(cmd, "at most %d --revoke", MAX_REVOKE);
				return KEXIT_USAGE;
			}
			o->revoke[o->nrevoke++] = optarg;
			break;
		case K_PROGRESS: o->progress = true; break;
		case K_NOPROGRESS: o->no_progress = true; break;
		case K_OUT: o->out = optarg; break;
		case K_REPLACE: o->replace = true; break;
		case K_KEY: o->key = optarg; break;
		case K_RO: o->read_only = true; break;
		case K_YES: o->yes = true; break;
		default: cli_usage_error(cmd, "bad option"); return KEXIT_USAGE;
		}
	}
	if (cli_positionals(cmd, argc, argv, o->pos, 4, &o->npos) != 0)
		return KEXIT_USAGE;
	if (need_vault && cli_need_vault(cmd, o->vault) != 0)
		return KEXIT_USAGE;
	return 0;
}

static int open_admin(struct kopts *o, struct kvault **v)
{
	struct kerrinfo ei = { "", "" };
	int r;

	if ((r = cli_open_unlock(o->vault, &o->auth, true, v)) != 0)
		return r;
	if ((r = kvault_admin_open(*v, &ei)) != 0) {
		int code = cli_fail(r, &ei, o->vault);

		cli_audit(*v, (*v)->user->id, "admin", NULL, -EACCES, "permission");
		kvault_close(*v);
		*v = NULL;
		return code;
	}
	return 0;
}

/* every key-lifecycle command ends in the audit log (with its command line) */
static int key_done(struct kvault *v, int rc)
{
	int ar = cli_audit(v, v->user ? v->user->id : NULL, "admin", NULL, rc ? -EIO : 0, NULL);

	kvault_close(v);
	return rc ? rc : ar;
}

static void print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	printf("%s\n", s ? s : "null");
	free(s);
	json_decref(j);
}

static int busy_exit(int r)
{
	return r == -EBUSY ? KEXIT_ERROR : cli_exit_code(r);
}

/* ---- mount lock ---- */

int cli_mount_lock(struct kvault *v, const char *mountpoint)
{
	struct kerrinfo ei = { "", "" };
	char *rp = realpath(mountpoint, NULL);
	int r = kvault_lock(v, KVAULT_LOCK_MOUNT, rp ? rp : mountpoint, &ei);

	free(rp);
	if (r) {
		cli_fail(r, &ei, v->path);
		return KEXIT_MOUNT;
	}
	for (size_t i = 0; i < v->ring->ncomps; i++)
		if (kvault_rekey_pending(v, v->ring->comps[i].hexid)) {
			fprintf(stderr, "kinko: %s: compartment '%s' has an unfinished re-key (data/%s/kinko.rekey); an administrator must run kinko key rekey %s first\n",
				v->path, v->ring->comps[i].name, v->ring->comps[i].hexid, v->ring->comps[i].name);
			kvault_lock_release(v);
			return KEXIT_MOUNT;
		}
	return 0;
}

int cli_init_recovery(const char *vault, const char *user, const struct kpassword *pw,
		      const char *out)
{
	struct kerrinfo ei = { "", "" };
	struct kvault_unlock_opts uo;
	struct kvault *v = NULL;
	size_t unc = 0;
	int r;

	memset(&uo, 0, sizeof(uo));
	if ((r = kvault_open(vault, &v, &ei)) == 0 &&
	    (r = kvault_unlock(v, user, pw->s, pw->len, &uo, &ei)) == 0 &&
	    (r = kvault_admin_open(v, &ei)) == 0)
		r = kvault_recovery_create(v, out, false, &unc, &ei);
	if (r) {
		r = cli_fail(r, &ei, vault);
		fprintf(stderr, "kinko: the vault was created; make its recovery key with kinko recovery create --out FILE\n");
	} else {
		printf("kinko: recovery key written to %s (mode 0600): store it offline now and delete this copy\n",
		       out);
	}
	kvault_close(v);
	return r;
}

/* ---- progress ---- */

struct pctx {
	const char *comp;
	bool bar;
	bool json;
	uint64_t reported;
};

static void human(char *out, size_t n, double b)
{
	static const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int i = 0;

	while (b >= 1024 && i < 4) {
		b /= 1024;
		i++;
	}
	snprintf(out, n, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

static void on_progress(void *ctx, const struct kvault_rekey_progress *p, bool final)
{
	struct pctx *pc = ctx;
	char done[32], total[32], rate[32];
	double bps = p->elapsed > 0 ? (double)p->bytes_done / p->elapsed : 0, left;
	int pct;

	if (!pc->bar)
		return;
	human(done, sizeof(done), (double)p->bytes_done);
	human(total, sizeof(total), (double)p->bytes_total);
	human(rate, sizeof(rate), bps);
	left = bps > 0 && p->bytes_total > p->bytes_done ? (double)(p->bytes_total - p->bytes_done) / bps : 0;
	pct = p->bytes_total ? (int)(100.0 * (double)p->bytes_done / (double)p->bytes_total) :
	      p->files_total ? (int)(100.0 * (double)p->files_done / (double)p->files_total) : 100;
	if (pct > 100)
		pct = 100;
	{
		char bar[21];

		for (int i = 0; i < 20; i++)
			bar[i] = i < pct / 5 ? '#' : '.';
		bar[20] = 0;
		fprintf(stderr, "\rrekey %s [%s] %3d%%  %llu/%llu files  %s/%s  %s/s  %d:%02d left ",
			pc->comp, bar, pct, (unsigned long long)p->files_done,
			(unsigned long long)p->files_total, done, total, rate, (int)left / 60,
			(int)left % 60);
	}
	if (final)
		fputc('\n', stderr);
	fflush(stderr);
}

static void on_damage(void *ctx, const char *path, const char *why)
{
	struct pctx *pc = ctx;

	if (pc->bar)
		fputc('\n', stderr);
	fprintf(stderr, "kinko: %s: %s: %s\n", pc->comp, path, why);
	pc->reported++;
}

static int do_rekey(struct kvault *v, const char *comp, bool bar, bool json)
{
	struct kerrinfo ei = { "", "" };
	struct kvault_rekey_result res;
	struct pctx pc = { comp, bar, json, 0 };
	char what[300], bytes[32], rate[32];
	double bps;
	int r;

	snprintf(what, sizeof(what), "compartment %s", comp);
	if ((r = kvault_lock(v, KVAULT_LOCK_REKEY, what, &ei)) != 0) {
		cli_fail(r, &ei, v->path);
		fprintf(stderr, "kinko: rekey never races a mount: unmount (or wait for) the holders above, then run kinko key rekey %s again\n",
			comp);
		return busy_exit(r);
	}
	r = kvault_rekey(v, comp, on_progress, on_damage, &pc, &res, &ei);
	kvault_lock_release(v);
	if (r)
		return cli_fail(r, &ei, v->path);
	bps = res.p.elapsed > 0 ? (double)res.p.bytes_done / res.p.elapsed : 0;
	if (json) {
		json_t *j = json_object(), *d = json_array();
		char *s;

		for (size_t i = 0; i < res.ndestroyed; i++)
			json_array_append_new(d, json_integer(res.destroyed[i]));
		json_object_set_new(j, "compartment", json_string(comp));
		json_object_set_new(j, "epoch", json_integer(res.target));
		json_object_set_new(j, "files", json_integer((json_int_t)res.p.files_done));
		json_object_set_new(j, "bytes", json_integer((json_int_t)res.p.bytes_done));
		json_object_set_new(j, "items", json_integer((json_int_t)res.p.items));
		json_object_set_new(j, "seconds", json_real(res.p.elapsed));
		json_object_set_new(j, "bytes_per_second", json_real(bps));
		json_object_set_new(j, "destroyed_epochs", d);
		s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("%s\n", s ? s : "null");
		free(s);
		json_decref(j);
		return KEXIT_OK;
	}
	human(bytes, sizeof(bytes), (double)res.p.bytes_done);
	human(rate, sizeof(rate), bps);
	printf("kinko: compartment '%s' re-keyed to epoch %u: %llu file(s), %s in %.2f s (%s/s), %llu other item(s)",
	       comp, res.target, (unsigned long long)res.p.files_done, bytes, res.p.elapsed, rate,
	       (unsigned long long)res.p.items);
	if (res.ndestroyed) {
		printf("; keys of epoch");
		for (size_t i = 0; i < res.ndestroyed; i++)
			printf(" %u", res.destroyed[i]);
		printf(" destroyed\n");
	} else {
		printf("; no older epoch left\n");
	}
	return KEXIT_OK;
}

int cli_rotate_rekey(struct kvault *v, char **comps, size_t ncomps, bool json)
{
	struct kerrinfo ei = { "", "" };
	uint32_t e;
	int rc = KEXIT_OK, r;

	for (size_t i = 0; i < ncomps; i++) {
		if ((r = kvault_rotate(v, comps[i], NULL, 0, &e, &ei)) != 0)
			return cli_fail(r, &ei, v->path);
		if (!json)
			printf("kinko: compartment '%s' rotated to epoch %u\n", comps[i], e);
	}
	for (size_t i = 0; i < ncomps; i++) {
		r = do_rekey(v, comps[i], isatty(2), json);
		if (r && rc == KEXIT_OK)
			rc = r;
	}
	return rc;
}

/* ---- kinko key ---- */

int cmd_key(int argc, char **argv)
{
	struct kopts o;
	struct kerrinfo ei = { "", "" };
	struct kvault *v;
	const char *sub = argc > 1 ? argv[1] : "";
	int r;

	if (argc < 2) {
		cli_usage_error("key", "expected rotate or rekey");
		return KEXIT_USAGE;
	}
	if ((r = kparse("key", argc - 1, argv + 1, &o, true)) != 0)
		return r;
	if (strcmp(sub, "rotate") == 0) {
		uint32_t e;

		if (o.npos != 1) {
			cli_usage_error("key", "key rotate COMPARTMENT [--revoke USER]...");
			return KEXIT_USAGE;
		}
		if ((r = open_admin(&o, &v)) != 0)
			return r;
		r = kvault_rotate(v, o.pos[0], o.revoke, o.nrevoke, &e, &ei);
		if (r) {
			r = cli_fail(r, &ei, v->path);
		} else if (o.json) {
			json_t *j = json_object(), *rv = json_array();

			for (size_t i = 0; i < o.nrevoke; i++)
				json_array_append_new(rv, json_string(o.revoke[i]));
			json_object_set_new(j, "compartment", json_string(o.pos[0]));
			json_object_set_new(j, "epoch", json_integer(e));
			json_object_set_new(j, "policy_serial", json_integer((json_int_t)v->policy->serial));
			json_object_set_new(j, "revoked", rv);
			print_json(j);
		} else {
			printf("kinko: compartment '%s' rotated to epoch %u (policy serial %llu)%s; new files use it now, also on mounted workstations; run kinko key rekey %s to re-encrypt the rest and destroy the old keys\n",
			       o.pos[0], e, (unsigned long long)v->policy->serial,
			       o.nrevoke ? ", revoked grants removed" : "", o.pos[0]);
		}
		return key_done(v, r);
	}
	if (strcmp(sub, "rekey") == 0) {
		if (o.npos != 1) {
			cli_usage_error("key", "key rekey COMPARTMENT [--progress|--no-progress] [--json]");
			return KEXIT_USAGE;
		}
		if ((r = open_admin(&o, &v)) != 0)
			return r;
		r = do_rekey(v, o.pos[0], o.progress || (!o.no_progress && !o.json && isatty(2)), o.json);
		return key_done(v, r);
	}
	cli_usage_error("key", "unknown subcommand '%s'", sub);
	return KEXIT_USAGE;
}

/* ---- kinko compartment erase ---- */

static bool confirm(const char *comp)
{
	char line[300];
	FILE *tty = fopen("/dev/tty", "r+");

	if (!tty)
		return false;
	fprintf(tty, "This destroys every key of compartment '%s' and its data, for good.\nType the compartment name to confirm: ", comp);
	fflush(tty);
	if (!fgets(line, sizeof(line), tty)) {
		fclose(tty);
		return false;
	}
	fclose(tty);
	line[strcspn(line, "\n")] = 0;
	return strcmp(line, comp) == 0;
}

int cli_comp_erase(int argc, char **argv)
{
	struct kopts o;
	struct kerrinfo ei = { "", "" };
	struct kvault_erase_result res;
	struct kvault *v;
	char what[300];
	int r;

	if ((r = kparse("compartment", argc, argv, &o, true)) != 0)
		return r;
	if (o.npos != 1) {
		cli_usage_error("compartment", "compartment erase COMPARTMENT [--yes] [--json]");
		return KEXIT_USAGE;
	}
	if (!o.yes && !isatty(0)) {
		cli_usage_error("compartment", "erase asks for confirmation on the terminal; give --yes in scripts");
		return KEXIT_USAGE;
	}
	if ((r = open_admin(&o, &v)) != 0)
		return r;
	if (!o.yes && !confirm(o.pos[0])) {
		fprintf(stderr, "kinko: not confirmed; nothing erased\n");
		return key_done(v, KEXIT_ERROR);
	}
	snprintf(what, sizeof(what), "erase of compartment %s", o.pos[0]);
	if ((r = kvault_lock(v, KVAULT_LOCK_ERASE, what, &ei)) != 0) {
		r = cli_fail(r, &ei, v->path);
		return key_done(v, busy_exit(r));
	}
	r = kvault_comp_erase(v, o.pos[0], &res, &ei);
	if (r == 0) {
		/* the erasure goes into the signed ledger (OPS 4.2.2: records of erasure) */
		json_t *b = json_pack("{s:s,s:s,s:I,s:I,s:I,s:s,s:s}", "event", "erase", "compartment",
				      o.pos[0], "files", (json_int_t)res.files, "ciphertext_bytes",
				      (json_int_t)res.bytes, "key_files", (json_int_t)res.key_files,
				      "method", "crypto-erase (every sealed key copy overwritten and removed)",
				      "certificate", res.cert_path);
		char *t = b ? json_dumps(b, JSON_COMPACT) : NULL;
		uint64_t seq = 0;
		int lr = t ? kledger_append(v->vfd, v->policy, v->user, t, &seq, &ei) : -ENOMEM;

		if (lr)
			fprintf(stderr, "kinko: %s: erased, but the ledger record failed: %s\n", v->path,
				ei.detail[0] ? ei.detail : kinko_strerror(lr));
		free(t);
		json_decref(b);
	}
	if (r) {
		r = cli_fail(r, &ei, v->path);
	} else if (o.json) {
		json_t *j = json_object();
		char cert[4200];

		snprintf(cert, sizeof(cert), "%s/%s", v->path, res.cert_path);
		json_object_set_new(j, "compartment", json_string(o.pos[0]));
		json_object_set_new(j, "files", json_integer((json_int_t)res.files));
		json_object_set_new(j, "directories", json_integer((json_int_t)res.dirs));
		json_object_set_new(j, "symlinks", json_integer((json_int_t)res.symlinks));
		json_object_set_new(j, "ciphertext_bytes", json_integer((json_int_t)res.bytes));
		json_object_set_new(j, "key_files", json_integer((json_int_t)res.key_files));
		json_object_set_new(j, "certificate", json_string(cert));
		print_json(j);
	} else {
		printf("kinko: compartment '%s' erased: %llu file(s), %llu byte(s) of ciphertext, %llu key file(s) destroyed\n"
		       "kinko: erasure certificate: %s/%s (check it with kinko certificate verify)\n",
		       o.pos[0], (unsigned long long)res.files, (unsigned long long)res.bytes,
		       (unsigned long long)res.key_files, v->path, res.cert_path);
	}
	return key_done(v, r);
}

/* ---- kinko certificate ---- */

int cmd_certificate(int argc, char **argv)
{
	struct kopts o;
	struct kerrinfo ei = { "", "" };
	struct kvault *v = NULL;
	char *body = NULL;
	const char *sub = argc > 1 ? argv[1] : "";
	int r;

	if (argc < 2 || strcmp(sub, "verify") != 0) {
		cli_usage_error("certificate", "expected verify FILE");
		return KEXIT_USAGE;
	}
	if ((r = kparse("certificate", argc - 1, argv + 1, &o, false)) != 0)
		return r;
	if (o.npos != 1) {
		cli_usage_error("certificate", "certificate verify FILE [--vault DIR] [--json]");
		return KEXIT_USAGE;
	}
	if (o.vault && (r = kvault_open(o.vault, &v, &ei)) != 0)
		return cli_fail(r, &ei, o.vault);
	r = kcert_verify_file(o.pos[0], v, &body, &ei);
	kvault_close(v);
	if (r)
		return cli_fail(r, &ei, o.pos[0]);
	{
		json_t *j = json_loads(body, 0, NULL), *c = json_object_get(j, "compartment"),
		       *e = json_object_get(j, "erased"), *by = json_object_get(j, "erased_by");

		if (o.json) {
			json_object_set_new(j, "valid", json_true());
			json_object_set_new(j, "checked_against_vault", json_boolean(o.vault != NULL));
			body = (free(body), json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER));
			printf("%s\n", body ? body : "null");
		} else {
			printf("kinko: %s: valid erasure certificate%s\n"
			       "  compartment %s (%s, id %s)\n"
			       "  erased %lld file(s), %lld dir(s), %lld symlink(s), %lld byte(s) of ciphertext, %lld key file(s)\n"
			       "  by %s on %s, completed %s\n"
			       "  signed by the administrator and by the vault root key %s\n",
			       o.pos[0], o.vault ? " of this vault" : " (give --vault DIR to check it is this vault's root key)",
			       json_string_value(json_object_get(c, "name")),
			       json_string_value(json_object_get(c, "class")),
			       json_string_value(json_object_get(c, "id")),
			       (long long)json_integer_value(json_object_get(e, "files")),
			       (long long)json_integer_value(json_object_get(e, "directories")),
			       (long long)json_integer_value(json_object_get(e, "symlinks")),
			       (long long)json_integer_value(json_object_get(e, "ciphertext_bytes")),
			       (long long)json_integer_value(json_object_get(e, "key_files_destroyed")),
			       json_string_value(json_object_get(by, "user")),
			       json_string_value(json_object_get(by, "host")),
			       json_string_value(json_object_get(j, "completed")),
			       json_string_value(json_object_get(json_object_get(j, "vault"), "root_public_key")));
		}
		json_decref(j);
	}
	free(body);
	return KEXIT_OK;
}

/* ---- kinko recovery ---- */

int cmd_recovery(int argc, char **argv)
{
	struct kopts o;
	struct kerrinfo ei = { "", "" };
	struct kvault *v;
	const char *sub = argc > 1 ? argv[1] : "";
	int r;

	if (argc < 2) {
		cli_usage_error("recovery", "expected create, grant or status");
		return KEXIT_USAGE;
	}
	if ((r = kparse("recovery", argc - 1, argv + 1, &o, true)) != 0)
		return r;
	if (strcmp(sub, "create") == 0) {
		size_t unc = 0;

		if (o.npos != 0 || !o.out) {
			cli_usage_error("recovery", "recovery create --out FILE [--replace]");
			return KEXIT_USAGE;
		}
		if ((r = open_admin(&o, &v)) != 0)
			return r;
		r = kvault_recovery_create(v, o.out, o.replace, &unc, &ei);
		if (r) {
			r = cli_fail(r, &ei, v->path);
		} else {
			printf("kinko: recovery key written to %s (mode 0600): store it offline now (paper or an offline medium in a safe) and delete this copy\n",
			       o.out);
			if (unc)
				printf("kinko: %zu epoch key(s) you hold no grant of are not covered; rotate those compartments (kinko key rotate) so their new keys are sealed to the recovery key\n",
				       unc);
		}
		return key_done(v, r);
	}
	if (strcmp(sub, "grant") == 0) {
		if (o.npos != 2 || !o.key) {
			cli_usage_error("recovery", "recovery grant COMPARTMENT USER --key RECOVERY-KEY-FILE [--read-only]");
			return KEXIT_USAGE;
		}
		if ((r = open_admin(&o, &v)) != 0)
			return r;
		r = kvault_recovery_grant(v, o.key, o.pos[0], o.pos[1], o.read_only, &ei);
		if (r)
			r = cli_fail(r, &ei, v->path);
		else
			printf("kinko: break-glass: compartment '%s' granted to '%s' with the recovery key (policy serial %llu)\n",
			       o.pos[0], o.pos[1], (unsigned long long)v->policy->serial);
		return key_done(v, r);
	}
	if (strcmp(sub, "status") == 0) {
		uint8_t pk[32];
		json_t *j = json_object(), *a = json_array();

		if (o.npos != 0) {
			json_decref(j);
			json_decref(a);
			cli_usage_error("recovery", "recovery status [--json]");
			return KEXIT_USAGE;
		}
		if ((r = cli_open_unlock(o.vault, &o.auth, false, &v)) != 0) {
			json_decref(j);
			json_decref(a);
			return r;
		}
		json_object_set_new(j, "recovery_key", json_boolean(kvault_recovery_pk(v->policy, pk)));
		if (!o.json)
			printf("recovery key: %s\n", json_is_true(json_object_get(j, "recovery_key")) ?
			       "set" : "none (kinko recovery create --out FILE)");
		for (size_t i = 0; i < v->policy->ncomps; i++) {
			const struct kpolicy_comp *c = &v->policy->comps[i];
			json_t *e = json_object(), *cov = json_array();

			if (!o.json)
				printf("%-24s epochs covered:", c->name);
			for (size_t k = 0; k < c->nepochs; k++) {
				char p[128];

				snprintf(p, sizeof(p), "recovery/%s/%u.grant", c->hexid, c->epochs[k].epoch);
				if (faccessat(v->vfd, p, F_OK, 0) == 0) {
					json_array_append_new(cov, json_integer(c->epochs[k].epoch));
					if (!o.json)
						printf(" %u", c->epochs[k].epoch);
				}
			}
			if (!o.json)
				printf("%s\n", json_array_size(cov) ? "" : " none");
			json_object_set_new(e, "name", json_string(c->name));
			json_object_set_new(e, "current_epoch", json_integer(c->current_epoch));
			json_object_set_new(e, "covered_epochs", cov);
			json_array_append_new(a, e);
		}
		json_object_set_new(j, "compartments", a);
		if (o.json) {
			char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

			printf("%s\n", s ? s : "null");
			free(s);
		}
		json_decref(j);
		kvault_close(v);
		return KEXIT_OK;
	}
	cli_usage_error("recovery", "unknown subcommand '%s'", sub);
	return KEXIT_USAGE;
}

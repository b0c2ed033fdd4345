// SPDX-License-Identifier: GPL-2.0-or-later
/* kinko init | mount | umount | passwd | fsck */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "kinko/guard.h"
#include "kinko_config.h"

enum { OPT_USER = 1000, OPT_PWFILE, OPT_NEWPWFILE, OPT_CIPHER, OPT_COMP, OPT_CLASS, OPT_JSON, OPT_RECOVERY,
       OPT_DEBUG, OPT_CERTKEY, OPT_CERTPASS, OPT_VAULT, OPT_CONFIG };

/* the authentication options of every command that unlocks a user */
#define AUTH_OPTIONS                                                     \
	{ "user", required_argument, 0, OPT_USER },                       \
	{ "password-file", required_argument, 0, OPT_PWFILE },            \
	{ "new-password-file", required_argument, 0, OPT_NEWPWFILE },     \
	{ "cert-key", required_argument, 0, OPT_CERTKEY },                \
	{ "cert-pass-file", required_argument, 0, OPT_CERTPASS }

bool cli_vault_option(int c, const char *arg, const char **vault, struct cli_auth *a)
{
	switch (c) {
	case CLI_O_VAULT: *vault = arg; return true;
	case CLI_O_AS: a->user = arg; return true;
	case CLI_O_PWFILE: a->pwfile = arg; return true;
	case CLI_O_CERTKEY: a->certkey = arg; return true;
	case CLI_O_CERTPASS: a->certpassfile = arg; return true;
	case CLI_O_NEWPW: a->newpwfile = arg; return true;
	default: return false;
	}
}

int cli_positionals(const char *cmd, int argc, char **argv, char **pos, int max, int *npos)
{
	*npos = 0;
	for (int i = optind; i < argc; i++) {
		if (*npos >= max) {
			cli_usage_error(cmd, "too many arguments");
			return KEXIT_USAGE;
		}
		pos[(*npos)++] = argv[i];
	}
	return 0;
}

int cli_need_vault(const char *cmd, const char *vault)
{
	if (vault)
		return 0;
	cli_usage_error(cmd, "which vault? give --vault DIR or set KINKO_VAULT");
	return KEXIT_USAGE;
}

static bool auth_option(int c, struct cli_auth *a)
{
	switch (c) {
	case OPT_USER: a->user = optarg; return true;
	case OPT_PWFILE: a->pwfile = optarg; return true;
	case OPT_NEWPWFILE: a->newpwfile = optarg; return true;
	case OPT_CERTKEY: a->certkey = optarg; return true;
	case OPT_CERTPASS: a->certpassfile = optarg; return true;
	default: return false;
	}
}

int cli_unlock(struct kvault *v, const struct cli_auth *a, bool need_grants)
{
	return cli_unlock_keep(v, a, need_grants, NULL);
}

int cli_unlock_keep(struct kvault *v, const struct cli_auth *a, bool need_grants,
		    struct kpassword *keep)
{
	struct kerrinfo ei = { "", "" };
	struct kpassword pw = { NULL, 0 }, newpw = { NULL, 0 }, cp = { NULL, 0 };
	struct kvault_unlock_opts uo;
	char prompt[128];
	int r;

	memset(&uo, 0, sizeof(uo));
	uo.need_grants = need_grants;
	uo.factor.key_path = a->certkey;
	snprintf(prompt, sizeof(prompt), "Password for %s: ", a->user);
	if ((r = cli_password_get(a->pwfile, prompt, false, &pw)) != 0)
		goto out;
	if (a->certpassfile) {
		if ((r = cli_password_get(a->certpassfile, "", false, &cp)) != 0)
			goto out;
		uo.factor.pass = cp.s;
	}
	if (a->newpwfile) {
		if ((r = cli_password_get(a->newpwfile, "", false, &newpw)) != 0)
			goto out;
		uo.newpw = newpw.s;
		uo.newlen = newpw.len;
	}
	r = kvault_unlock(v, a->user, pw.s, pw.len, &uo, &ei);
	if (r == KERR_EXPIRED && !a->newpwfile && !a->pwfile) {
		/* interactive: first use or expired password, ask for a new one */
		fprintf(stderr, "kinko: %s\n", ei.detail);
		if ((r = cli_password_get(NULL, "New password: ", true, &newpw)) != 0)
			goto out;
		uo.newpw = newpw.s;
		uo.newlen = newpw.len;
		ei.file[0] = ei.detail[0] = 0;
		r = kvault_unlock(v, a->user, pw.s, pw.len, &uo, &ei);
	}
	if (r) {
		/* a refused unlock is an access attempt: logged when the policy was read */
		const char *why = r == KERR_PASSWORD ? "password" : r == KERR_FACTOR ? "second-factor" :
				  r == -EACCES ? "locked-out-or-disabled" : r == KERR_EXPIRED ? "password-expired" :
				  "unlock-failed";
		int code = cli_fail(r, &ei, v->path);

		cli_audit(v, a->user, "unlock", NULL, r == KERR_PASSWORD || r == KERR_FACTOR ||
			  r == -EACCES ? -EACCES : -EIO, why);
		r = code;
		goto done;
	}
	if (v->notice[0])
		fprintf(stderr, "kinko: %s\n", v->notice);
	if (keep) {
		/* the password the key file is wrapped under now */
		struct kpassword *cur = uo.newpw ? &newpw : &pw;

		*keep = *cur;
		cur->s = NULL;
		cur->len = 0;
	}
	r = 0;
	goto done;
out:
	r = cli_exit_code(r);
done:
	cli_password_free(&pw);
	cli_password_free(&newpw);
	cli_password_free(&cp);
	return r;
}

static int vault_open_or_fail(const char *path, struct kvault **v)
{
	struct kerrinfo ei = { "", "" };
	int r = kvault_open(path, v, &ei);

	return r ? cli_fail(r, &ei, path) : 0;
}

int cli_open_unlock(const char *vault, const struct cli_auth *a, bool need_grants,
		    struct kvault **out)
{
	struct kvault *v = NULL;
	int r;

	*out = NULL;
	if ((r = vault_open_or_fail(vault, &v)) != 0)
		return r;
	if ((r = cli_unlock(v, a, need_grants)) != 0) {
		kvault_close(v);
		return r;
	}
	*out = v;
	return 0;
}

int cmd_init(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "user", required_argument, 0, OPT_USER },
		{ "password-file", required_argument, 0, OPT_PWFILE },
		{ "cipher", required_argument, 0, OPT_CIPHER },
		{ "compartment", required_argument, 0, OPT_COMP },
		{ "class", required_argument, 0, OPT_CLASS },
		{ "recovery-out", required_argument, 0, OPT_RECOVERY },
		{ 0, 0, 0, 0 },
	};
	struct kvault_init_opts o;
	const char *recovery_out = NULL;
	struct kerrinfo ei = { "", "" };
	struct kpassword pw = { NULL, 0 };
	const char *pwfile = NULL;
	int c, r;

	memset(&o, 0, sizeof(o));
	o.user = cli_default_user();
	o.suite = KSUITE_AES256GCM;
	o.compartment = "main";
	o.klass = KCLASS_GOKUHI;
	kkeys_kdf_default(&o.kdf);
	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case OPT_USER: o.user = optarg; break;
		case OPT_PWFILE: pwfile = optarg; break;
		case OPT_CIPHER:
			if ((o.suite = kcrypto_suite_from_name(optarg)) < 0) {
				cli_usage_error("init", "unknown cipher '%s'", optarg);
				return KEXIT_USAGE;
			}
			break;
		case OPT_COMP: o.compartment = optarg; break;
		case OPT_RECOVERY: recovery_out = optarg; break;
		case OPT_CLASS:
			if ((o.klass = kclass_from_name(optarg)) < 0) {
				cli_usage_error("init", "unknown class '%s'", optarg);
				return KEXIT_USAGE;
			}
			break;
		default: cli_usage_error("init", "bad option"); return KEXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		cli_usage_error("init", "expected one VAULT directory");
		return KEXIT_USAGE;
	}
	if (!kuser_id_valid(o.user)) {
		fprintf(stderr, "kinko: '%s' is not a valid user id (a-z, 0-9, '.', '_', '-'; at most 32)\n", o.user);
		return KEXIT_USAGE;
	}
	if (!kformat_name_valid(o.compartment, strlen(o.compartment))) {
		fprintf(stderr, "kinko: '%s' is not a valid compartment name\n", o.compartment);
		return KEXIT_USAGE;
	}
	if (recovery_out && access(recovery_out, F_OK) == 0) {
		fprintf(stderr, "kinko: %s: exists; the recovery key is written once, to a new file (nothing created)\n",
			recovery_out);
		return KEXIT_EXISTS;
	}
	if ((r = cli_password_get(pwfile, "New vault password: ", true, &pw)) != 0)
		return cli_exit_code(r);
	o.pw = pw.s;
	o.pwlen = pw.len;
	r = kvault_init(argv[optind], &o, &ei);
	if (r) {
		cli_password_free(&pw);
		return cli_fail(r, &ei, argv[optind]);
	}
	printf("kinko: created vault %s (cipher %s) with administrator '%s' and compartment '%s'\n",
	       argv[optind], kcrypto_suite_name(o.suite), o.user, o.compartment);
	{
		/* the first entry of the log (sealed to the administrator until an
		 * auditor exists): the policy is public, no unlock needed */
		struct kvault *v = NULL;

		if (kvault_open(argv[optind], &v, &ei) == 0 &&
		    kpolicy_load(v->vfd, v->hdr.vault_id, v->hdr.root_pk, &v->policy, &ei) == 0)
			r = cli_audit(v, o.user, "admin", NULL, 0, NULL);
		kvault_close(v);
	}
	if (r == 0)
		r = recovery_out ? cli_init_recovery(argv[optind], o.user, &pw, recovery_out) : KEXIT_OK;
	cli_password_free(&pw);
	if (!recovery_out)
		printf("kinko: no recovery key yet: create one with kinko recovery create --out FILE (or init --recovery-out FILE)\n");
	return r;
}

static int parse_mount_opts(char *s, struct kdaemon_opts *o)
{
	for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
		if (strcmp(tok, "allow_other") == 0)
			o->fs.allow_other = true;
		else if (strcmp(tok, "ro") == 0)
			o->read_only = true;
		else if (strcmp(tok, "writeback_cache") == 0)
			o->fs.writeback_cache = true;
		else if (strcmp(tok, "no_writeback_cache") == 0)
			o->fs.writeback_cache = false;
		else if (strcmp(tok, "no_io_uring") == 0)
			o->fs.no_io_uring = true;
		else if (strcmp(tok, "default_permissions") == 0)
			o->fs.default_permissions = true;
		else if (strcmp(tok, "rw") == 0)
			;
		else {
			fprintf(stderr, "kinko mount: unknown mount option '%s' (allow_other, default_permissions, ro, writeback_cache, no_writeback_cache, no_io_uring)\n", tok);
			return -1;
		}
	}
	return 0;
}

int cmd_mount(int argc, char **argv)
{
	static const struct option lo[] = {
		AUTH_OPTIONS,
		{ "debug", no_argument, 0, OPT_DEBUG },
		{ "config", required_argument, 0, OPT_CONFIG },
		{ 0, 0, 0, 0 },
	};
	const char *config = NULL;
	struct kdaemon_opts o;
	struct kerrinfo ei = { "", "" };
	struct cli_auth a = { cli_default_user(), NULL, NULL, NULL, NULL };
	struct kvault *v = NULL;
	int c, r;

	memset(&o, 0, sizeof(o));
	o.fs.attr_timeout = 1.0;
	o.fs.entry_timeout = 1.0;
	/* no writeback cache by default: with it the kernel keeps its own file
	 * sizes and misses changes made by other workstations sharing the vault
	 * (-o writeback_cache is for vaults used by one workstation only) */
	o.fs.writeback_cache = false;
	optind = 1;
	while ((c = getopt_long(argc, argv, "fo:", lo, NULL)) != -1) {
		if (auth_option(c, &a))
			continue;
		switch (c) {
		case OPT_DEBUG: o.debug = o.foreground = true; break;
		case OPT_CONFIG: config = optarg; break;
		case 'f': o.foreground = true; break;
		case 'o':
			if (parse_mount_opts(optarg, &o) != 0)
				return KEXIT_USAGE;
			break;
		default: cli_usage_error("mount", "bad option"); return KEXIT_USAGE;
		}
	}
	if (optind != argc - 2) {
		cli_usage_error("mount", "expected VAULT and MOUNTPOINT");
		return KEXIT_USAGE;
	}
	o.mountpoint = argv[optind + 1];
	/* the removable-media guard reads the workstation configuration first:
	 * a broken kinko.conf stops the mount before any password is asked */
#if KINKO_TEST_BUILD
	if (!getenv("KINKO_TEST_NO_GUARD")) /* benchmark of the guard's cost */
#endif
	if ((r = kguard_new(config, &o.fs.guard, &ei)) != 0)
		return cli_fail(r, &ei, config ? config : KGUARD_CONFIG_DEFAULT);
	r = cli_open_unlock(argv[optind], &a, true, &v);
	ksecmem_stack_scrub(65536); /* the daemon inherits this stack */
	if (r != 0) {
		kguard_free(o.fs.guard);
		return r;
	}
	if (v->ring->ncomps == 0) {
		fprintf(stderr, "kinko: %s: user '%s' holds no compartment grant; nothing to mount\n",
			argv[optind], a.user);
		kguard_free(o.fs.guard);
		kvault_close(v);
		return KEXIT_DENIED;
	}
	if ((r = cli_mount_lock(v, o.mountpoint)) != 0) {
		kguard_free(o.fs.guard);
		kvault_close(v);
		return r;
	}
#if KINKO_TEST_BUILD
	o.no_audit = getenv("KINKO_TEST_NO_AUDIT") != NULL; /* benchmark of the audit's cost */
#endif
	r = kdaemon_run(v, &o, &ei); /* takes v */
	if (r) {
		cli_fail(r, &ei, o.mountpoint);
		return KEXIT_MOUNT;
	}
	return KEXIT_OK;
}

/* is path the mount point of a fuse.kinko filesystem (per /proc/self/mountinfo)? */
static bool is_kinko_mount(const char *path)
{
	char *real = realpath(path, NULL), line[8192];
	FILE *f = fopen("/proc/self/mountinfo", "re");
	bool found = false;

	while (real && f && fgets(line, sizeof(line), f)) {
		char *save = NULL, *fields[12], *sep;
		int n = 0;

		for (char *t = strtok_r(line, " ", &save); t && n < 12; t = strtok_r(NULL, " ", &save))
			fields[n++] = t;
		if (n < 10)
			continue;
		/* fields after " - ": fstype source options */
		sep = NULL;
		for (int i = 6; i < n; i++)
			if (strcmp(fields[i], "-") == 0) {
				sep = fields[i + 1 < n ? i + 1 : i];
				break;
			}
		if (sep && strcmp(sep, "fuse.kinko") == 0) {
			/* mountinfo escapes space, tab, newline and backslash as \ooo */
			char mp[4096];
			size_t o = 0;

			for (const char *q = fields[4]; *q && o + 1 < sizeof(mp); q++) {
				if (q[0] == '\\' && q[1] >= '0' && q[1] <= '3' && q[2] >= '0' &&
				    q[2] <= '7' && q[3] >= '0' && q[3] <= '7') {
					mp[o++] = (char)((q[1] - '0') * 64 + (q[2] - '0') * 8 + (q[3] - '0'));
					q += 3;
				} else {
					mp[o++] = *q;
				}
			}
			mp[o] = 0;
			if (strcmp(mp, real) == 0)
				found = true;
		}
	}
	if (f)
		fclose(f);
	free(real);
	return found;
}

/* the pid of the daemon serving mnt (from its control socket), or 0 */
static pid_t daemon_of(const char *mnt)
{
	struct kerrinfo ei = { "", "" };
	char *resp = NULL;
	json_t *j;
	pid_t pid = 0;

	if (kdaemon_request(mnt, "{\"op\":\"status\"}", NULL, &resp, &ei) != 0)
		return 0;
	if ((j = json_loads(resp, 0, NULL)) && json_is_integer(json_object_get(j, "pid")))
		pid = (pid_t)json_integer_value(json_object_get(j, "pid"));
	json_decref(j);
	free(resp);
	return pid;
}

/* after the unmount the daemon still completes the audit log and wipes its
 * keys: return only when it is done, so the vault is quiet (a backup or a
 * copy right after kinko umount sees every file complete) */
static int wait_daemon(const char *mnt, pid_t pid)
{
	for (int i = 0; pid > 0 && i < 1500; i++) {
		if (kill(pid, 0) != 0 && errno == ESRCH)
			return KEXIT_OK;
		usleep(10000);
	}
	if (pid > 0)
		fprintf(stderr, "kinko: %s: unmounted, but its daemon (pid %d) is still finishing\n", mnt,
			(int)pid);
	return KEXIT_OK;
}

int cmd_umount(int argc, char **argv)
{
	pid_t pid, dpid;
	int st;

	if (argc != 2) {
		cli_usage_error("umount", "expected MOUNTPOINT");
		return KEXIT_USAGE;
	}
	if (!is_kinko_mount(argv[1])) {
		fprintf(stderr, "kinko: %s: not a kinko mount; nothing unmounted\n", argv[1]);
		return KEXIT_ERROR;
	}
	dpid = daemon_of(argv[1]);
	if (geteuid() == 0) {
		if (umount2(argv[1], 0) == 0)
			return wait_daemon(argv[1], dpid);
		if (errno != EBUSY) {
			fprintf(stderr, "kinko: %s: cannot unmount: %s\n", argv[1], strerror(errno));
			return KEXIT_ERROR;
		}
		fprintf(stderr, "kinko: %s: busy (files open or a shell inside); close them and retry\n", argv[1]);
		return KEXIT_ERROR;
	}
	pid = fork();
	if (pid == 0) {
		execlp("fusermount3", "fusermount3", "-u", "--", argv[1], (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "kinko: %s: cannot unmount (fusermount3 failed)\n", argv[1]);
		return KEXIT_ERROR;
	}
	return wait_daemon(argv[1], dpid);
}

int cmd_passwd(int argc, char **argv)
{
	static const struct option lo[] = {
		AUTH_OPTIONS,
		{ "vault", required_argument, 0, OPT_VAULT },
		{ 0, 0, 0, 0 },
	};
	struct kerrinfo ei = { "", "" };
	struct cli_auth a = { cli_default_user(), NULL, NULL, NULL, NULL };
	struct kpassword oldpw = { NULL, 0 }, newpw = { NULL, 0 };
	struct kvault *v = NULL;
	const char *vault = getenv("KINKO_VAULT");
	char prompt[128];
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (auth_option(c, &a))
			continue;
		switch (c) {
		case OPT_VAULT: vault = optarg; break;
		default: cli_usage_error("passwd", "bad option"); return KEXIT_USAGE;
		}
	}
	if (optind == argc - 1)
		vault = argv[optind];
	else if (optind != argc || !vault) {
		cli_usage_error("passwd", "expected VAULT (or --vault / $KINKO_VAULT)");
		return KEXIT_USAGE;
	}
	if (a.pwfile && a.newpwfile && strcmp(a.pwfile, "-") == 0 && strcmp(a.newpwfile, "-") == 0) {
		cli_usage_error("passwd", "only one of the password files can be stdin");
		return KEXIT_USAGE;
	}
	if ((r = vault_open_or_fail(vault, &v)) != 0)
		return r;
	snprintf(prompt, sizeof(prompt), "Current password (or enrolment secret) for %s: ", a.user);
	if ((r = cli_password_get(a.pwfile, prompt, false, &oldpw)) != 0)
		goto out;
	if ((r = cli_password_get(a.newpwfile, "New password: ", true, &newpw)) != 0)
		goto out;
	{
		struct kvault_unlock_opts uo;
		struct kpassword cp = { NULL, 0 };

		memset(&uo, 0, sizeof(uo));
		uo.factor.key_path = a.certkey;
		if (a.certpassfile && (r = cli_password_get(a.certpassfile, "", false, &cp)) != 0)
			goto out;
		uo.factor.pass = cp.s;
		/* an enrolment secret or expired password is replaced during the unlock */
		uo.newpw = newpw.s;
		uo.newlen = newpw.len;
		r = kvault_unlock(v, a.user, oldpw.s, oldpw.len, &uo, &ei);
		cli_password_free(&cp);
	}
	if (r) {
		int code = cli_fail(r, &ei, vault);

		cli_audit(v, a.user, "passwd", NULL, r == KERR_PASSWORD || r == KERR_POLICY ||
			  r == -EACCES ? -EACCES : -EIO, r == KERR_PASSWORD ? "password" :
			  r == KERR_POLICY ? "policy" : r == -EACCES ? "permission" : NULL);
		r = code;
		goto done;
	}
	printf("kinko: password of '%s' changed (key file re-wrapped; no data re-encrypted)\n", a.user);
	r = cli_audit(v, a.user, "passwd", NULL, 0, NULL);
	goto done;
out:
	r = cli_exit_code(r);
done:
	cli_password_free(&oldpw);
	cli_password_free(&newpw);
	kvault_close(v);
	return r;
}

struct fsck_ctx {
	bool json;
	json_t *items, *notes;
};

/* one damaged item (DAMAGED line / "damaged" array) or note (NOTE / "notes") */
static void fsck_item(struct fsck_ctx *ctx, bool damaged, const char *comp, const char *path,
		      const char *text)
{
	if (ctx->json) {
		json_t *o = json_object();

		json_object_set_new(o, "compartment", json_string(comp));
		json_object_set_new(o, "path", json_string(path));
		json_object_set_new(o, damaged ? "reason" : "note", json_string(text));
		json_array_append_new(damaged ? ctx->items : ctx->notes, o);
	} else {
		printf("%s %s/%s: %s\n", damaged ? "DAMAGED" : "NOTE", comp,
		       path[0] == '/' ? path + 1 : path, text);
	}
}

static void fsck_report(void *vctx, const char *comp, const char *path, const char *reason)
{
	fsck_item(vctx, true, comp, path, reason);
}

static void fsck_note(void *vctx, const char *comp, const char *path, const char *what)
{
	fsck_item(vctx, false, comp, path, what);
}

int cmd_fsck(int argc, char **argv)
{
	static const struct option lo[] = {
		AUTH_OPTIONS,
		{ "json", no_argument, 0, OPT_JSON },
		{ 0, 0, 0, 0 },
	};
	struct cli_auth a = { cli_default_user(), NULL, NULL, NULL, NULL };
	struct kvault *v = NULL;
	struct kvault_fsck_stats st;
	struct fsck_ctx ctx = { false, NULL, NULL };
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (auth_option(c, &a))
			continue;
		switch (c) {
		case OPT_JSON: ctx.json = true; break;
		default: cli_usage_error("fsck", "bad option"); return KEXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		cli_usage_error("fsck", "expected VAULT");
		return KEXIT_USAGE;
	}
	if ((r = cli_open_unlock(argv[optind], &a, true, &v)) != 0)
		return r;
	ctx.items = json_array();
	ctx.notes = json_array();
	r = kvault_fsck(v, fsck_report, fsck_note, &ctx, &st);
	if (r) {
		json_decref(ctx.items);
		json_decref(ctx.notes);
		kvault_close(v);
		return cli_fail(r, NULL, argv[optind]);
	}
	if (ctx.json) {
		json_t *o = json_object();
		char *s;

		json_object_set_new(o, "vault", json_string(argv[optind]));
		json_object_set_new(o, "user", json_string(a.user));
		json_object_set_new(o, "clean", json_boolean(st.damaged == 0));
		json_object_set_new(o, "directories", json_integer((json_int_t)st.dirs));
		json_object_set_new(o, "files", json_integer((json_int_t)st.files));
		json_object_set_new(o, "symlinks", json_integer((json_int_t)st.symlinks));
		json_object_set_new(o, "blocks", json_integer((json_int_t)st.blocks));
		json_object_set_new(o, "bytes", json_integer((json_int_t)st.bytes));
		json_object_set_new(o, "xattrs", json_integer((json_int_t)st.xattrs));
		json_object_set_new(o, "compartments_skipped", json_integer((json_int_t)st.skipped));
		json_object_set_new(o, "damaged", ctx.items);
		json_object_set_new(o, "notes", ctx.notes);
		ctx.items = ctx.notes = NULL;
		s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("%s\n", s);
		free(s);
		json_decref(o);
	} else {
		printf("kinko fsck: %llu directories, %llu files, %llu symlinks, %llu blocks verified (%llu bytes)\n",
		       (unsigned long long)st.dirs, (unsigned long long)st.files,
		       (unsigned long long)st.symlinks, (unsigned long long)st.blocks,
		       (unsigned long long)st.bytes);
		if (st.skipped)
			printf("kinko fsck: %llu compartment(s) skipped: user '%s' holds no key for them\n",
			       (unsigned long long)st.skipped, a.user);
		printf("kinko fsck: %s\n", st.damaged ? "DAMAGED" : "clean");
	}
	json_decref(ctx.items);
	json_decref(ctx.notes);
	{
		/* fsck decrypts every file the user holds: an access like any other */
		char d[128];

		snprintf(d, sizeof(d), "{\"files\":%llu,\"damaged\":%llu}",
			 (unsigned long long)st.files, (unsigned long long)st.damaged);
		r = cli_audit(v, a.user, "fsck", d, 0, NULL);
	}
	kvault_close(v);
	return r ? r : st.damaged ? KEXIT_DAMAGED : KEXIT_OK;
}

#if KINKO_TEST_BUILD
/* Test builds only (meson -Dtest_hooks=true): print the derived keys of the
 * user's compartments in hex, so tests can search a daemon's memory for them
 * after a lock. Release builds do not contain this command. */
int cmd_test_keys(int argc, char **argv)
{
	static const struct option lo[] = { AUTH_OPTIONS, { 0, 0, 0, 0 } };
	struct cli_auth a = { cli_default_user(), NULL, NULL, NULL, NULL };
	struct kvault *v = NULL;
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1)
		if (!auth_option(c, &a))
			return KEXIT_USAGE;
	if (optind != argc - 1)
		return KEXIT_USAGE;
	if ((r = cli_open_unlock(argv[optind], &a, true, &v)) != 0)
		return r;
	for (size_t i = 0; i < v->ring->ncomps; i++)
		for (size_t e = 0; e < v->ring->comps[i].nepochs; e++) {
			const struct kformat_epoch_keys *k = &v->ring->comps[i].epochs[e];
			char h1[65], h2[129], h3[65];

			khex_encode(h1, k->content, 32);
			khex_encode(h2, k->names, 64);
			khex_encode(h3, k->meta, 32);
			printf("%s %u content=%s names=%s meta=%s\n", v->ring->comps[i].name, k->epoch, h1, h2, h3);
		}
	kvault_close(v);
	return 0;
}
#endif

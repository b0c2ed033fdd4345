/* kinko CLI: the only code that prints for people. */
#ifndef KINKO_CLI_H
#define KINKO_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "kinko/audit.h"
#include "kinko/daemon.h"
#include "kinko/vault.h"

/* exit codes: documented in kinko(1); scripts rely on them */
enum kexit {
	KEXIT_OK = 0,
	KEXIT_ERROR = 1,      /* any other error */
	KEXIT_USAGE = 2,      /* bad command line */
	KEXIT_NOVAULT = 3,    /* vault directory or kinko.vault missing */
	KEXIT_VERSION = 4,    /* vault format newer than this kinko */
	KEXIT_CORRUPT = 5,    /* corrupt or tampered vault structure */
	KEXIT_PASSWORD = 6,   /* wrong password */
	KEXIT_DENIED = 7,     /* user unknown, disabled, or without grants */
	KEXIT_MOUNT = 8,      /* mounting failed */
	KEXIT_DAMAGED = 9,    /* fsck found damage */
	KEXIT_EXISTS = 10,    /* init: a vault or files already there */
};

struct kcmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
	const char *usage;
};

/* print "kinko: <file>: <reason>" and map r to an exit code */
int cli_fail(int r, const struct kerrinfo *ei, const char *fallback_file);
int cli_exit_code(int r);
void cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *cli_default_user(void);
bool cli_want_help(int argc, char **argv);
void cli_print_help(const char *cmd);

/* passwords: secure memory; caller frees with cli_password_free */
struct kpassword {
	char *s;
	size_t len;
};
/* from --password-file F (first line; "-" = stdin) or the terminal.
 * confirm: ask twice on the terminal (new passwords). */
int cli_password_get(const char *file, const char *prompt, bool confirm, struct kpassword *pw);
void cli_password_free(struct kpassword *pw);

/* a progress bar on stderr, drawn only when stderr is a terminal */
struct cli_bar {
	const char *what;
	bool on, drawn;
	struct timespec last;
};
void cli_bar_init(struct cli_bar *p, const char *what, bool quiet);
/* bytes b of tb, files f of tf (at most every 100 ms) */
void cli_bar_draw(void *ctx, uint64_t b, uint64_t tb, uint64_t f, uint64_t tf);
void cli_bar_end(struct cli_bar *p);

/* how a command authenticates its user */
struct cli_auth {
	const char *user;
	const char *pwfile;       /* --password-file */
	const char *newpwfile;    /* --new-password-file (enrolment, expired, passwd) */
	const char *certkey;      /* --cert-key: private key of the second-factor certificate */
	const char *certpassfile; /* --cert-pass-file: its passphrase */
};
/* unlock v as a->user: prompts where no file is given; sets a new password when
 * the vault asks for one (first use, expiry). Prints warnings. On failure prints
 * the one-line reason and returns the exit code; 0 on success. */
int cli_unlock(struct kvault *v, const struct cli_auth *a, bool need_grants);
/* the same, handing the password (the new one if it was changed) to *keep */
int cli_unlock_keep(struct kvault *v, const struct cli_auth *a, bool need_grants,
		    struct kpassword *keep);

/* the options every command that works on a vault as some user takes
 * (kinko user|compartment|grant|revoke|policy|key|recovery|audit|media|backup):
 * put CLI_VAULT_OPTIONS in the getopt_long table and let cli_vault_option()
 * take them (true if c was one of them) */
enum { CLI_O_VAULT = 900, CLI_O_AS, CLI_O_PWFILE, CLI_O_CERTKEY, CLI_O_CERTPASS, CLI_O_NEWPW };
#define CLI_VAULT_OPTIONS                                                  \
	{ "vault", required_argument, 0, CLI_O_VAULT },                     \
	{ "as", required_argument, 0, CLI_O_AS },                           \
	{ "password-file", required_argument, 0, CLI_O_PWFILE },            \
	{ "cert-key", required_argument, 0, CLI_O_CERTKEY },                \
	{ "cert-pass-file", required_argument, 0, CLI_O_CERTPASS },         \
	{ "new-password-file", required_argument, 0, CLI_O_NEWPW }
bool cli_vault_option(int c, const char *arg, const char **vault, struct cli_auth *a);
/* argv[optind..] into pos (at most max); KEXIT_USAGE with a message if more */
int cli_positionals(const char *cmd, int argc, char **argv, char **pos, int max, int *npos);
/* the vault given, or a usage error naming --vault and $KINKO_VAULT */
int cli_need_vault(const char *cmd, const char *vault);
int cli_open_unlock(const char *vault, const struct cli_auth *a, bool need_grants,
		    struct kvault **out);

int cmd_init(int argc, char **argv);
int cmd_mount(int argc, char **argv);
int cmd_umount(int argc, char **argv);
int cmd_passwd(int argc, char **argv);
int cmd_fsck(int argc, char **argv);
int cmd_user(int argc, char **argv);
int cmd_compartment(int argc, char **argv);
int cmd_grant(int argc, char **argv);
int cmd_revoke(int argc, char **argv);
int cmd_policy(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_lock(int argc, char **argv);
int cmd_unlock(int argc, char **argv);
int cmd_guard(int argc, char **argv);
int cmd_test_keys(int argc, char **argv); /* test builds only */
int cmd_test_export(int argc, char **argv); /* test builds only */

/* the command line (no secrets are ever in argv), for audit entries */
extern char cli_cmdline[1024];
void cli_set_cmdline(int argc, char **argv);
/* one audit entry from this command (its own "cli" segment); 0 or an exit code */
int cli_audit(struct kvault *v, const char *user, const char *action, const char *detail, int err,
	      const char *reason);
/* key lifecycle (cmd_key.c) */
int cmd_key(int argc, char **argv);
int cmd_takeout(int argc, char **argv);
int cmd_recovery(int argc, char **argv);
int cmd_certificate(int argc, char **argv);
int cli_comp_erase(int argc, char **argv);
/* after a user or grant removal with --rotate: rotate and rekey comps */
int cli_rotate_rekey(struct kvault *v, char **comps, size_t ncomps, bool json);
/* init --recovery-out FILE: the new vault's recovery key */
int cli_init_recovery(const char *vault, const char *user, const struct kpassword *pw,
		      const char *out);
/* mount: the vault's shared lock (refused while a rekey or erase runs) */
int cli_mount_lock(struct kvault *v, const char *mountpoint);

#endif

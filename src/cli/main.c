// SPDX-License-Identifier: GPL-2.0-or-later
/* kinko: git-style subcommands dispatched from one table. */
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_ledger.h"
#include "kinko_config.h"

static const struct kcmd commands[] = {
	{ "init", cmd_init, "create a new vault with its first user and compartment",
	  "kinko init VAULT [--user ID] [--password-file F] [--cipher aes-256-gcm|xchacha20-poly1305]\n"
	  "                 [--compartment NAME] [--class gokuhi|himitsu|shagaihi] [--recovery-out FILE]" },
	{ "mount", cmd_mount, "unlock a vault and mount its compartments",
	  "kinko mount VAULT MOUNTPOINT [--user ID] [--password-file F] [--new-password-file F]\n"
	  "                  [--cert-key F] [--cert-pass-file F] [-f] [-o OPTIONS] [--debug]\n"
	  "                  [--config FILE]   (workstation configuration, kinko.conf(5))\n"
	  "  OPTIONS: allow_other, default_permissions, ro, writeback_cache, no_io_uring" },
	{ "umount", cmd_umount, "unmount a kinko mount (keys are wiped)", "kinko umount MOUNTPOINT" },
	{ "passwd", cmd_passwd, "change a user's password (re-wraps the key file only)",
	  "kinko passwd VAULT [--user ID] [--password-file OLD] [--new-password-file NEW] [--cert-key F]" },
	{ "fsck", cmd_fsck, "verify every block, header and name the user can decrypt",
	  "kinko fsck VAULT [--user ID] [--password-file F] [--cert-key F] [--json]" },
	{ "user", cmd_user, "manage users (admin): add, list, show, disable, enable, remove",
	  "kinko user add ID --role staff|admin|auditor|backup [--name N] [--dept D] [--contact C]\n"
	  "                  [--cert PEM] [--secret-file F]\n"
	  "       kinko user list|show ID [--json]\n"
	  "       kinko user disable|enable ID\n"
	  "       kinko user remove ID [--rotate]   (--rotate: rotate and re-key the user's compartments)\n"
	  "  common: --vault DIR (or $KINKO_VAULT) --as ID [--password-file F] [--cert-key F]" },
	{ "compartment", cmd_compartment, "manage compartments (admin): create, list, erase",
	  "kinko compartment create NAME --class gokuhi|himitsu|shagaihi\n"
	  "       kinko compartment list [--json]\n"
	  "       kinko compartment erase NAME [--yes] [--json]   (crypto-erasure + signed certificate)\n"
	  "  common: --vault DIR (or $KINKO_VAULT) --as ID [--password-file F] [--cert-key F]" },
	{ "grant", cmd_grant, "give a user a compartment's keys (admin)",
	  "kinko grant USER COMPARTMENT [--read-only] --vault DIR --as ADMIN [--password-file F]" },
	{ "revoke", cmd_revoke, "remove a user's grant of a compartment (admin)",
	  "kinko revoke USER COMPARTMENT [--rotate] --vault DIR --as ADMIN [--password-file F]\n"
	  "  --rotate: also rotate the compartment's key and re-key its data (complete revocation)" },
	{ "policy", cmd_policy, "show or change the signed policy settings",
	  "kinko policy show [--json]\n"
	  "       kinko policy set KEY VALUE        (admin; keys: see kinko-policy(1))\n"
	  "       kinko policy set-ca CA-CERT.pem   (admin; CA of second-factor certificates)\n"
	  "  common: --vault DIR (or $KINKO_VAULT) --as ID [--password-file F] [--cert-key F]" },
	{ "audit", cmd_audit, "read and verify the access log (auditors)",
	  "kinko audit show [--user U] [--path GLOB] [--since T] [--until T] [--action A]\n"
	  "                 [--result ok|denied|error] [--json]\n"
	  "       kinko audit verify [--anchors SYSLOG-FILE] [--json]\n"
	  "       kinko audit export --format csv|jsonl [--out FILE] [filters as for show]\n"
	  "       kinko audit prune --before YYYY-MM   (auditor or admin; keeps audit.retention_years)\n"
	  "  common: --vault DIR (or $KINKO_VAULT) --as AUDITOR [--password-file F] [--cert-key F]" },
	{ "status", cmd_status, "show a mount's user, compartments, lock state and audit health",
	  "kinko status [MOUNTPOINT] [--json]" },
	{ "lock", cmd_lock, "lock a mount now: keys wiped, every access denied until unlock",
	  "kinko lock [MOUNTPOINT]" },
	{ "unlock", cmd_unlock, "unlock a locked mount with the password again",
	  "kinko unlock [MOUNTPOINT] [--password-file F] [--cert-key F] [--cert-pass-file F]\n"
	  "       kinko unlock [MOUNTPOINT] --as ADMIN [--password-file F]   (clears an anomaly lock)" },
	{ "media", cmd_media, "the media ledger: register, move, hand over, dispose, list (admin)",
	  "kinko media register ID --kind usb|hdd|sd|tape|laptop --serial S --label L\n"
	  "                     --location LOC --holder WHO                 (admin)\n"
	  "       kinko media move ID --location LOC                      (admin)\n"
	  "       kinko media handover ID --to WHO                        (admin)\n"
	  "       kinko media dispose ID --method crush|wipe --certificate FILE   (admin)\n"
	  "       kinko media list [--json|--csv]              (admin, auditor, backup)\n"
	  "       kinko media export-usbguard [--rules FILE] [--udev FILE]\n"
	  "  common: --vault DIR (or $KINKO_VAULT) --as ID [--password-file F] [--cert-key F]" },
	{ "ledger", cmd_ledger, "verify or print the signed media ledger",
	  "kinko ledger verify [--json]\n"
	  "       kinko ledger print [--csv|--json]\n"
	  "  common: --vault DIR (or $KINKO_VAULT) --as ID [--password-file F] [--cert-key F]" },
	{ "backup", cmd_backup, "ciphertext-only backups: create (backup role), verify, restore (admin)",
	  "kinko backup create --media ID --to DIR [--json] [--quiet]   (role backup)\n"
	  "       kinko backup verify DIR [--json] [--quiet]              (no key needed)\n"
	  "       kinko backup restore DIR --to NEWVAULT [--quiet]        (admin of the backed-up vault)\n"
	  "  common: --vault DIR (or $KINKO_VAULT) --as ID [--password-file F] [--cert-key F]" },
	{ "takeout", cmd_takeout, "approved take-out (持出し) of files to a registered medium",
	  "kinko takeout request --files VPATH... --medium ID --purpose TEXT --from DATE --until DATE\n"
	  "                      [--contact C] [--name N] [--dept D] [--json]   (any user)\n"
	  "       kinko takeout list [--pending|--overdue|--all] [--json]\n"
	  "       kinko takeout show ID [--json]\n"
	  "       kinko takeout approve ID [--note TEXT]                  (admin, not their own)\n"
	  "       kinko takeout reject ID --reason TEXT                   (admin)\n"
	  "       kinko takeout export ID --to DIR [--files VPATH...] [--json]   (the requester)\n"
	  "       kinko takeout close ID --from DIR [--json]    (the requester or an admin)\n"
	  "       kinko takeout report-lost ID [--note TEXT]    (the requester or an admin)\n"
	  "       kinko takeout check [--json]                  (no password: overdue take-outs, exit 9)\n"
	  "  VPATH: COMPARTMENT/path; DATE: YYYY-MM-DD (local) or YYYY-MM-DDTHH:MM:SSZ\n"
	  "  common: --vault DIR (or $KINKO_VAULT) --as ID [--password-file F] [--cert-key F]" },
	{ "guard", cmd_guard, "(root) refuse copies of vault files to removable media (fanotify)",
	  "kinko guard [--config FILE] [-f]   (kinko.conf(5): removable_paths, vault_paths)" },
#if KINKO_TEST_BUILD
	{ "test-keys", cmd_test_keys, "(test builds only) print the user's derived compartment keys",
	  "kinko test-keys VAULT [--user ID] [--password-file F]" },
	{ "test-export", cmd_test_export, "(test builds only) write a take-out vault without the ledger",
	  "kinko test-export VAULT --user U --password-file F --to DIR --id T1 --from UNIX --until UNIX\n"
	  "                  --file VPATH [--file VPATH]... [--progress]\n"
	  "       kinko test-export VAULT --user U --password-file F --check-only --file VPATH...\n"
	  "  (--check-only: kvault_vpath_check of each VPATH)" },
#endif
	{ "key", cmd_key, "rotate a compartment's key, re-key its data (admin)",
	  "kinko key rotate COMPARTMENT [--revoke USER]... [--json]\n"
	  "       kinko key rekey COMPARTMENT [--progress|--no-progress] [--json]\n"
	  "  common: --vault DIR (or $KINKO_VAULT) --as ID [--password-file F] [--cert-key F]" },
	{ "recovery", cmd_recovery, "the offline recovery key: create, break-glass grant, status",
	  "kinko recovery create --out FILE [--replace]          (admin)\n"
	  "       kinko recovery grant COMPARTMENT USER --key FILE [--read-only]   (admin, break-glass)\n"
	  "       kinko recovery status [--json]\n"
	  "  common: --vault DIR (or $KINKO_VAULT) --as ID [--password-file F] [--cert-key F]" },
	{ "certificate", cmd_certificate, "verify a signed erasure certificate",
	  "kinko certificate verify FILE [--vault DIR] [--json]" },
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const char exit_codes[] =
	"Exit codes: 0 ok, 1 error, 2 usage, 3 no vault, 4 vault newer than kinko,\n"
	"            5 corrupt or tampered vault, 6 wrong password, 7 access denied,\n"
	"            8 mount failed, 9 fsck found damage, 10 vault already exists.\n";

static void main_help(FILE *f)
{
	fprintf(f, "kinko %s: encrypted file vault for specific personal information\n\n"
		   "usage: kinko COMMAND [ARGS]   (kinko COMMAND --help for details)\n\n",
		KINKO_VERSION);
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n%s\nSee kinko(1) and kinko-COMMAND(1).\n", exit_codes);
}

void cli_print_help(const char *cmd)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, cmd) == 0) {
			printf("kinko %s: %s\n\nusage: %s\n\n%sSee kinko-%s(1).\n", cmd, commands[i].summary,
			       commands[i].usage, exit_codes, cmd);
			return;
		}
}

void cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "kinko %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, cmd) == 0)
			fprintf(stderr, "\nusage: %s\n", commands[i].usage);
}

bool cli_want_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return true;
	return false;
}

const char *cli_default_user(void)
{
	struct passwd *pw = getpwuid(getuid());

	return pw ? pw->pw_name : "unknown";
}

int cli_exit_code(int r)
{
	switch (r) {
	case 0: return KEXIT_OK;
	case KERR_USAGE: return KEXIT_USAGE;
	case KERR_VERSION: return KEXIT_VERSION;
	case KERR_FORMAT:
	case KERR_AUTH:
	case KERR_MISMATCH:
	case KERR_KDFPARAM: return KEXIT_CORRUPT;
	case KERR_PASSWORD:
	case KERR_FACTOR: return KEXIT_PASSWORD;
	case KERR_EXPIRED:
	case KERR_POLICY: return KEXIT_DENIED;
	case KERR_ROLLBACK: return KEXIT_CORRUPT;
	case KERR_NOUSER:
	case KERR_NOGRANT:
	case -EACCES: return KEXIT_DENIED;
	case KERR_EXISTS:
	case -ENOTEMPTY: return KEXIT_EXISTS;
	case -ENOENT:
	case -ENOTDIR: return KEXIT_NOVAULT;
	default: return KEXIT_ERROR;
	}
}

int cli_fail(int r, const struct kerrinfo *ei, const char *fallback_file)
{
	const char *file = ei && ei->file[0] ? ei->file : fallback_file;
	const char *why = ei && ei->detail[0] ? ei->detail : kinko_strerror(r);

	if (file && *file)
		fprintf(stderr, "kinko: %s: %s\n", file, why);
	else
		fprintf(stderr, "kinko: %s\n", why);
	return cli_exit_code(r);
}

int main(int argc, char **argv)
{
	const char *cmd;

	kdaemon_harden();
	if (kcrypto_init() != 0) {
		fprintf(stderr, "kinko: cannot initialise the crypto libraries\n");
		return KEXIT_ERROR;
	}
	klog_init("kinko", false, getenv("KINKO_DEBUG") ? KLOG_DEBUG : KLOG_NOTICE);
	if (argc < 2) {
		main_help(stderr);
		return KEXIT_USAGE;
	}
	cmd = argv[1];
	cli_set_cmdline(argc, argv);
	if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
		printf("kinko %s (format %d)\n", KINKO_VERSION, KFORMAT_VERSION);
		return KEXIT_OK;
	}
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		main_help(stdout);
		return KEXIT_OK;
	}
	if (strcmp(cmd, "help") == 0) {
		if (argc > 2)
			cli_print_help(argv[2]);
		else
			main_help(stdout);
		return KEXIT_OK;
	}
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, cmd) == 0) {
			if (cli_want_help(argc - 1, argv + 1)) {
				cli_print_help(cmd);
				return KEXIT_OK;
			}
			return commands[i].fn(argc - 1, argv + 1);
		}
	fprintf(stderr, "kinko: '%s' is not a kinko command (see kinko --help)\n", cmd);
	return KEXIT_USAGE;
}

// SPDX-License-Identifier: GPL-2.0-or-later
/* Test builds only (meson -Dtest_hooks=true): kinko test-export writes a
 * take-out vault straight from the vault layer (kvault_takeout_export), with
 * approver "test" and medium "TEST", so the take-out vault is tested without
 * the ledger workflow of kinko takeout. Release builds do not contain it. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kinko/takeout.h"
#include "kinko_config.h"

#if KINKO_TEST_BUILD
enum { OPT_USER = 1, OPT_PWFILE, OPT_TO, OPT_ID, OPT_FROM, OPT_UNTIL, OPT_FILE, OPT_PROGRESS, OPT_CHECK };

/* --progress: one line per file on stderr, for tests of the callback */
static void progress(void *ctx, uint64_t bytes, uint64_t total, uint64_t files)
{
	(void)ctx;
	fprintf(stderr, "progress %" PRIu64 "/%" PRIu64 " %" PRIu64 "\n", bytes, total, files);
}

static int parse_time(const char *s, int64_t *t)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end)
		return ktime_parse(s, t);
	*t = v;
	return 0;
}

int cmd_test_export(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "user", required_argument, 0, OPT_USER },
		{ "password-file", required_argument, 0, OPT_PWFILE },
		{ "to", required_argument, 0, OPT_TO },
		{ "id", required_argument, 0, OPT_ID },
		{ "from", required_argument, 0, OPT_FROM },
		{ "until", required_argument, 0, OPT_UNTIL },
		{ "file", required_argument, 0, OPT_FILE },
		{ "progress", no_argument, 0, OPT_PROGRESS },
		{ "check-only", no_argument, 0, OPT_CHECK },
		{ 0, 0, 0, 0 },
	};
	struct cli_auth a = { cli_default_user(), NULL, NULL, NULL, NULL };
	struct ktakeout_export x;
	struct ktakeout_stats st;
	struct kerrinfo ei = { "", "" };
	struct kpassword pw = { NULL, 0 };
	struct kvault *v = NULL;
	const char *to = NULL;
	char **files = NULL, vid[33];
	size_t nfiles = 0;
	bool have_from = false, have_until = false, want_progress = false, check_only = false;
	int c, r;

	memset(&x, 0, sizeof(x));
	x.approver = "test";
	x.medium = "TEST";
	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case OPT_USER: a.user = optarg; break;
		case OPT_PWFILE: a.pwfile = optarg; break;
		case OPT_TO: to = optarg; break;
		case OPT_PROGRESS: want_progress = true; break;
		case OPT_CHECK: check_only = true; break;
		case OPT_ID: x.id = optarg; break;
		case OPT_FROM:
			if (parse_time(optarg, &x.from)) {
				cli_usage_error("test-export", "--from: unix seconds or YYYY-MM-DDTHH:MM:SSZ");
				goto usage;
			}
			have_from = true;
			break;
		case OPT_UNTIL:
			if (parse_time(optarg, &x.until)) {
				cli_usage_error("test-export", "--until: unix seconds or YYYY-MM-DDTHH:MM:SSZ");
				goto usage;
			}
			have_until = true;
			break;
		case OPT_FILE: {
			char **nf = realloc(files, (nfiles + 1) * sizeof(*files));

			if (!nf)
				goto usage;
			files = nf;
			files[nfiles++] = optarg;
			break;
		}
		default: cli_usage_error("test-export", "bad option"); goto usage;
		}
	}
	if (check_only && optind == argc - 1 && nfiles) {
		/* kvault_vpath_check of each --file: "ok VPATH" or the refusal */
		if ((r = cli_open_unlock(argv[optind], &a, true, &v)) != 0) {
			free(files);
			return r;
		}
		for (size_t i = 0; i < nfiles && r == 0; i++) {
			memset(&ei, 0, sizeof(ei));
			if ((r = kvault_vpath_check(v, files[i], &ei)) != 0)
				r = cli_fail(r, &ei, files[i]);
			else
				printf("ok %s\n", files[i]);
		}
		kvault_close(v);
		free(files);
		return r;
	}
	if (optind != argc - 1 || !to || !x.id || !have_from || !have_until || !nfiles ||
	    !a.pwfile || strcmp(a.pwfile, "-") == 0) {
		cli_usage_error("test-export", "expected VAULT --to DIR --id ID --from T --until T "
				"--password-file F (not stdin) and at least one --file VPATH");
		goto usage;
	}
	x.files = files;
	x.nfiles = nfiles;
	if ((r = cli_password_get(a.pwfile, NULL, false, &pw)) != 0) {
		free(files);
		return cli_fail(r, NULL, a.pwfile);
	}
	if ((r = cli_open_unlock(argv[optind], &a, true, &v)) != 0)
		goto out;
	r = kvault_takeout_export(v, pw.s, pw.len, &x, to, want_progress ? progress : NULL,
				  NULL, &st, &ei);
	if (r) {
		r = cli_fail(r, &ei, to);
		goto out;
	}
	khex_encode(vid, st.vault_id, 16);
	printf("kinko: take-out %s exported to %s: %" PRIu64 " files, %" PRIu64 " bytes, %" PRIu64
	       " directories, %" PRIu64 " skipped; vault %s\n",
	       x.id, to, st.files, st.bytes, st.dirs, st.skipped, vid);
	r = KEXIT_OK;
out:
	cli_password_free(&pw);
	kvault_close(v);
	free(files);
	return r;
usage:
	free(files);
	return KEXIT_USAGE;
}
#endif

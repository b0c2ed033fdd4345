// SPDX-License-Identifier: GPL-2.0-or-later
/* kinko status | lock | unlock: talk to a mount's daemon over its control socket. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

enum { S_JSON = 3000, S_PWFILE, S_AS, S_CERTKEY, S_CERTPASS };

/* kinko mounts in /proc/self/mountinfo (fstype fuse.kinko) */
static int kinko_mounts(char ***out, size_t *n)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[8192];

	*out = NULL;
	*n = 0;
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *sep = strstr(line, " - "), *mp, *save = NULL, *fld, **nv, *dst;
		int i = 0;

		if (!sep || strncmp(sep + 3, "fuse.kinko ", 11) != 0)
			continue;
		for (fld = strtok_r(line, " ", &save), mp = NULL; fld && i < 5;
		     fld = strtok_r(NULL, " ", &save), i++)
			if (i == 4)
				mp = fld;
		if (!mp)
			continue;
		/* undo the octal escapes of mountinfo (\040 for a space) */
		for (dst = mp, fld = mp; *fld; fld++) {
			if (fld[0] == '\\' && fld[1] >= '0' && fld[1] <= '7' && fld[2] && fld[3]) {
				*dst++ = (char)((fld[1] - '0') * 64 + (fld[2] - '0') * 8 + (fld[3] - '0'));
				fld += 3;
			} else {
				*dst++ = *fld;
			}
		}
		*dst = 0;
		if (!(nv = realloc(*out, (*n + 1) * sizeof(*nv))))
			break;
		*out = nv;
		if (((*out)[*n] = strdup(mp)))
			(*n)++;
	}
	fclose(f);
	return 0;
}

static void free_mounts(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* send req to mnt; on success *resp holds the parsed reply */
static int request(const char *mnt, json_t *req, const char *const *secrets, json_t **resp)
{
	struct kerrinfo ei = { "", "" };
	char *txt = json_dumps(req, JSON_COMPACT), *out = NULL;
	int r;

	*resp = NULL;
	if (!txt)
		return KEXIT_ERROR;
	r = kdaemon_request(mnt, txt, secrets, &out, &ei);
	free(txt);
	if (r)
		return cli_fail(r, &ei, mnt);
	*resp = json_loads(out, 0, NULL);
	free(out);
	if (!json_is_object(*resp)) {
		fprintf(stderr, "kinko: %s: unreadable answer from the mount's daemon\n", mnt);
		return KEXIT_ERROR;
	}
	if (!json_is_true(json_object_get(*resp, "ok"))) {
		json_t *code = json_object_get(*resp, "code");
		const char *err = json_string_value(json_object_get(*resp, "error"));

		fprintf(stderr, "kinko: %s\n", err ? err : "request refused");
		r = cli_exit_code(json_is_integer(code) ? (int)json_integer_value(code) : -EIO);
		json_decref(*resp);
		*resp = NULL;
		return r ? r : KEXIT_ERROR;
	}
	return 0;
}

static void print_status(json_t *s)
{
	json_t *comps = json_object_get(s, "compartments"), *c;
	const char *state = json_string_value(json_object_get(s, "state"));
	const char *why = json_string_value(json_object_get(s, "reason"));
	size_t i;

	printf("%s\n", json_string_value(json_object_get(s, "mountpoint")));
	printf("  vault:        %s\n", json_string_value(json_object_get(s, "vault")));
	printf("  user:         %s (daemon pid %lld, since %s)\n",
	       json_string_value(json_object_get(s, "user")),
	       (long long)json_integer_value(json_object_get(s, "pid")),
	       json_string_value(json_object_get(s, "mounted_since")));
	printf("  state:        %s%s%s%s\n", state, why && *why ? " (" : "", why ? why : "",
	       why && *why ? ")" : "");
	if (state && strcmp(state, "unlocked") == 0)
		printf("  idle lock:    after %lld s without access (%lld s left)\n",
		       (long long)json_integer_value(json_object_get(s, "idle_lock_s")),
		       (long long)json_integer_value(json_object_get(s, "idle_left_s")));
	printf("  compartments:");
	json_array_foreach(comps, i, c)
		printf(" %s%s", json_string_value(json_object_get(c, "name")),
		       json_is_true(json_object_get(c, "read_only")) ? " (read-only)" : "");
	printf("\n  audit log:    %s\n",
	       json_string_value(json_object_get(json_object_get(s, "audit"), "status")));
	if (json_string_value(json_object_get(s, "transport")))
		printf("  requests via: %s\n", strcmp(json_string_value(json_object_get(s, "transport")),
						     "io_uring") == 0 ? "io_uring" : "/dev/fuse");
	if (json_integer_value(json_object_get(s, "integrity_errors")))
		printf("  integrity:    %lld damaged blocks or names seen (see the system log)\n",
		       (long long)json_integer_value(json_object_get(s, "integrity_errors")));
}

struct sopts {
	bool json;
	const char *pwfile, *as, *certkey, *certpass;
	const char *mnt;
};

static int parse(const char *cmd, int argc, char **argv, struct sopts *o, bool auth)
{
	static const struct option lo[] = {
		{ "json", no_argument, 0, S_JSON },
		{ "password-file", required_argument, 0, S_PWFILE },
		{ "as", required_argument, 0, S_AS },
		{ "cert-key", required_argument, 0, S_CERTKEY },
		{ "cert-pass-file", required_argument, 0, S_CERTPASS },
		{ 0, 0, 0, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (!auth && c != S_JSON)
			c = '?';
		switch (c) {
		case S_JSON: o->json = true; break;
		case S_PWFILE: o->pwfile = optarg; break;
		case S_AS: o->as = optarg; break;
		case S_CERTKEY: o->certkey = optarg; break;
		case S_CERTPASS: o->certpass = optarg; break;
		default: cli_usage_error(cmd, "bad option"); return KEXIT_USAGE;
		}
	}
	if (optind < argc - 1) {
		cli_usage_error(cmd, "too many arguments");
		return KEXIT_USAGE;
	}
	o->mnt = optind < argc ? argv[optind] : NULL;
	return 0;
}

/* the mount point given, or the only kinko mount of this user */
static int pick_mount(const char *cmd, struct sopts *o, char **owned)
{
	char **m;
	size_t n, usable = 0;
	const char *pick = NULL;

	*owned = NULL;
	if (o->mnt)
		return 0;
	kinko_mounts(&m, &n);
	for (size_t i = 0; i < n; i++) {
		char sock[256];

		if (kdaemon_socket_path(m[i], sock, sizeof(sock), false) == 0 &&
		    access(sock, F_OK) == 0) {
			usable++;
			pick = m[i];
		}
	}
	if (usable != 1) {
		fprintf(stderr, "kinko %s: %s; name the mount point\n", cmd,
			usable ? "more than one kinko mount" : "no kinko mount of this user");
		free_mounts(m, n);
		return usable ? KEXIT_USAGE : KEXIT_ERROR;
	}
	*owned = strdup(pick);
	free_mounts(m, n);
	o->mnt = *owned;
	return *owned ? 0 : KEXIT_ERROR;
}

int cmd_status(int argc, char **argv)
{
	struct sopts o;
	char **m = NULL;
	size_t n = 0, shown = 0;
	json_t *all = json_array(), *resp;
	int r, rc = 0;

	if ((r = parse("status", argc, argv, &o, false)) != 0)
		return r;
	if (o.mnt) {
		m = calloc(1, sizeof(*m));
		if (m && (m[0] = strdup(o.mnt)))
			n = 1;
	} else {
		kinko_mounts(&m, &n);
	}
	for (size_t i = 0; i < n; i++) {
		json_t *req;
		char sock[256];

		if (!o.mnt && (kdaemon_socket_path(m[i], sock, sizeof(sock), false) != 0 ||
			       access(sock, F_OK) != 0))
			continue; /* another user's mount */
		req = json_pack("{s:s}", "op", "status");
		r = request(m[i], req, NULL, &resp);
		json_decref(req);
		if (r) {
			rc = r;
			continue;
		}
		json_object_del(resp, "ok");
		if (!o.json) {
			if (shown)
				printf("\n");
			print_status(resp);
		}
		json_array_append_new(all, resp);
		shown++;
	}
	if (o.json) {
		char *t = json_dumps(all, JSON_INDENT(2));

		printf("%s\n", t ? t : "[]");
		free(t);
	} else if (!shown && !rc) {
		printf("no kinko mounts\n");
	}
	json_decref(all);
	free_mounts(m, n);
	return rc;
}

int cmd_lock(int argc, char **argv)
{
	struct sopts o;
	char *owned;
	json_t *req, *resp;
	int r;

	if ((r = parse("lock", argc, argv, &o, false)) != 0 || (r = pick_mount("lock", &o, &owned)) != 0)
		return r;
	req = json_pack("{s:s}", "op", "lock");
	r = request(o.mnt, req, NULL, &resp);
	json_decref(req);
	if (r == 0) {
		printf("kinko: %s locked: keys wiped; kinko unlock %s to continue\n", o.mnt, o.mnt);
		json_decref(resp);
	}
	free(owned);
	return r;
}

int cmd_unlock(int argc, char **argv)
{
	struct sopts o;
	struct kpassword pw = { NULL, 0 }, cp = { NULL, 0 };
	char *owned = NULL, prompt[128];
	json_t *req = NULL, *resp;
	int r;

	if ((r = parse("unlock", argc, argv, &o, true)) != 0 ||
	    (r = pick_mount("unlock", &o, &owned)) != 0)
		return r;
	if (o.as && !kuser_id_valid(o.as)) {
		cli_usage_error("unlock", "'%s' is not a user id", o.as);
		free(owned);
		return KEXIT_USAGE;
	}
	snprintf(prompt, sizeof(prompt), o.as ? "Password for %s (administrator): " : "Password%s: ",
		 o.as ? o.as : "");
	if ((r = cli_password_get(o.pwfile, prompt, false, &pw)) != 0 ||
	    (o.certpass && (r = cli_password_get(o.certpass, "", false, &cp)) != 0)) {
		r = cli_exit_code(r);
		goto out;
	}
	req = json_pack("{s:s}", "op", o.as ? "clear" : "unlock");
	if (req && o.as)
		json_object_set_new(req, "admin", json_string(o.as));
	if (req && o.certkey)
		json_object_set_new(req, "cert_key", json_string(o.certkey));
	if (!req) {
		r = KEXIT_ERROR;
		goto out;
	}
	{
		/* the secrets travel after the JSON line, from locked memory */
		const char *secrets[] = { pw.s, cp.s, NULL };

		r = request(o.mnt, req, secrets, &resp);
	}
	if (r == 0) {
		const char *state = json_string_value(json_object_get(resp, "state"));

		if (o.as)
			printf("kinko: %s: anomaly lock cleared by %s; the user unlocks with kinko unlock %s\n",
			       o.mnt, o.as, o.mnt);
		else
			printf("kinko: %s %s\n", o.mnt, state ? state : "unlocked");
		json_decref(resp);
	}
out:
	json_decref(req);
	cli_password_free(&pw);
	cli_password_free(&cp);
	free(owned);
	return r;
}

// SPDX-License-Identifier: GPL-2.0-or-later
/* kinko user | compartment | grant | revoke | policy: administration.
 * Every command authenticates its user (--as ID, password prompt or
 * --password-file, --cert-key for a second factor) against the vault given by
 * --vault DIR or $KINKO_VAULT, and verifies the signed policy. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "cli.h"
#include "kinko/x509.h"

enum { A_JSON = 2000, A_ROLE, A_NAME, A_DEPT,
       A_CONTACT, A_CERT, A_SECRETFILE, A_CLASS, A_RO, A_ROTATE };

struct aopts {
	const char *vault;
	struct cli_auth auth;
	bool json;
	const char *role, *name, *dept, *contact, *cert, *secretfile, *klass;
	bool read_only;
	bool rotate; /* user remove, revoke: rotate and re-key afterwards */
	int npos;
	char *pos[4];
};

static const struct option admin_lo[] = {
	CLI_VAULT_OPTIONS,
	{ "json", no_argument, 0, A_JSON },
	{ "role", required_argument, 0, A_ROLE },
	{ "name", required_argument, 0, A_NAME },
	{ "dept", required_argument, 0, A_DEPT },
	{ "contact", required_argument, 0, A_CONTACT },
	{ "cert", required_argument, 0, A_CERT },
	{ "secret-file", required_argument, 0, A_SECRETFILE },
	{ "class", required_argument, 0, A_CLASS },
	{ "read-only", no_argument, 0, A_RO },
	{ "rotate", no_argument, 0, A_ROTATE },
	{ 0, 0, 0, 0 },
};

/* argv[0] is the (sub)command name */
static int parse(const char *cmd, int argc, char **argv, struct aopts *o)
{
	int c;

	memset(o, 0, sizeof(*o));
	o->vault = getenv("KINKO_VAULT");
	o->auth.user = cli_default_user();
	optind = 1;
	while ((c = getopt_long(argc, argv, "", admin_lo, NULL)) != -1) {
		if (cli_vault_option(c, optarg, &o->vault, &o->auth))
			continue;
		switch (c) {
		case A_JSON: o->json = true; break;
		case A_ROLE: o->role = optarg; break;
		case A_NAME: o->name = optarg; break;
		case A_DEPT: o->dept = optarg; break;
		case A_CONTACT: o->contact = optarg; break;
		case A_CERT: o->cert = optarg; break;
		case A_SECRETFILE: o->secretfile = optarg; break;
		case A_CLASS: o->klass = optarg; break;
		case A_RO: o->read_only = true; break;
		case A_ROTATE: o->rotate = true; break;
		default: cli_usage_error(cmd, "bad option"); return KEXIT_USAGE;
		}
	}
	if (cli_positionals(cmd, argc, argv, o->pos, 4, &o->npos) != 0)
		return KEXIT_USAGE;
	if (cli_need_vault(cmd, o->vault) != 0)
		return KEXIT_USAGE;
	return 0;
}

static int open_as(struct aopts *o, bool admin, struct kvault **v)
{
	struct kerrinfo ei = { "", "" };
	int r;

	if ((r = cli_open_unlock(o->vault, &o->auth, admin, v)) != 0)
		return r;
	if (admin && (r = kvault_admin_open(*v, &ei)) != 0) {
		int code = cli_fail(r, &ei, o->vault);

		/* a refused administration attempt is logged like a done one */
		cli_audit(*v, (*v)->user->id, "admin", NULL, -EACCES, "permission");
		kvault_close(*v);
		*v = NULL;
		return code;
	}
	return 0;
}

static int finish(struct kvault *v, int r, struct kerrinfo *ei, const char *what)
{
	int rc = r ? cli_fail(r, ei, v->path) : KEXIT_OK;
	int ar = cli_audit(v, v->user ? v->user->id : NULL, "admin", NULL,
			   r ? (r == -EACCES || r == KERR_POLICY ? -EACCES : -EIO) : 0,
			   r == -EACCES || r == KERR_POLICY ? "permission" : NULL);

	if (ar && !rc)
		rc = ar;

	if (!r && what)
		printf("kinko: %s (policy serial %llu)\n", what, (unsigned long long)v->policy->serial);
	kvault_close(v);
	return rc;
}

static json_t *user_json(const struct kvault *v, const struct kpolicy_user *u)
{
	json_t *o = json_object(), *g = json_array();
	char t[32];

	json_object_set_new(o, "id", json_string(u->id));
	json_object_set_new(o, "role", json_string(krole_name(u->role)));
	json_object_set_new(o, "state", json_string(u->active ? "active" : "disabled"));
	json_object_set_new(o, "name", json_string(u->name));
	json_object_set_new(o, "dept", json_string(u->dept));
	json_object_set_new(o, "contact", json_string(u->contact));
	ktime_iso(t, sizeof(t), u->created);
	json_object_set_new(o, "created", json_string(t));
	json_object_set_new(o, "second_factor", json_boolean(u->has_cert));
	for (size_t i = 0; i < v->policy->ngrants; i++)
		if (strcmp(v->policy->grants[i].user, u->id) == 0) {
			const struct kpolicy_comp *c = kpolicy_comp_find(v->policy, v->policy->grants[i].comp);
			json_t *e = json_object();

			json_object_set_new(e, "compartment", json_string(c ? c->name : "?"));
			json_object_set_new(e, "access", json_string(v->policy->grants[i].read_only ? "ro" : "rw"));
			json_array_append_new(g, e);
		}
	json_object_set_new(o, "grants", g);
	return o;
}

static void print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	printf("%s\n", s ? s : "null");
	free(s);
	json_decref(j);
}

static int write_secret_file(const char *path, const char *secret)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	int r;

	if (fd < 0) {
		perror(path);
		return -1;
	}
	r = kwrite_all(fd, secret, strlen(secret));
	if (r == 0)
		r = kwrite_all(fd, "\n", 1);
	if (fsync(fd) < 0)
		r = -1;
	close(fd);
	return r;
}

static int user_add(struct aopts *o)
{
	struct kerrinfo ei = { "", "" };
	struct kvault_user_spec spec;
	struct kvault *v;
	char secret[KVAULT_SECRET_LEN + 1];
	int r, role;

	if (o->npos != 1 || !o->role) {
		cli_usage_error("user", "user add ID --role staff|admin|auditor|backup [...]");
		return KEXIT_USAGE;
	}
	if ((role = krole_from_name(o->role)) < 0) {
		cli_usage_error("user", "unknown role '%s' (staff, admin, auditor, backup)", o->role);
		return KEXIT_USAGE;
	}
	if ((r = open_as(o, true, &v)) != 0)
		return r;
	memset(&spec, 0, sizeof(spec));
	spec.id = o->pos[0];
	spec.role = role;
	spec.name = o->name;
	spec.dept = o->dept;
	spec.contact = o->contact;
	spec.cert_path = o->cert;
	if ((r = kvault_user_add(v, &spec, secret, &ei)) != 0)
		return finish(v, r, &ei, NULL);
	if (o->secretfile) {
		if (write_secret_file(o->secretfile, secret) != 0) {
			fprintf(stderr, "kinko: %s: could not write the enrolment secret; the user exists: remove and add again\n",
				o->secretfile);
			ksecmem_wipe(secret, sizeof(secret));
			kvault_close(v);
			return KEXIT_ERROR;
		}
		printf("kinko: enrolment secret for '%s' written to %s (mode 0600); give it to the user in person\n",
		       spec.id, o->secretfile);
	} else {
		printf("kinko: enrolment secret for '%s' (shown once; the user must change it at first use):\n  %s\n",
		       spec.id, secret);
	}
	ksecmem_wipe(secret, sizeof(secret));
	return finish(v, 0, &ei, "user added");
}

int cmd_user(int argc, char **argv)
{
	struct aopts o;
	struct kerrinfo ei = { "", "" };
	struct kvault *v;
	const char *sub = argc > 1 ? argv[1] : "";
	int r;

	if (argc < 2) {
		cli_usage_error("user", "expected add, list, show, disable, enable or remove");
		return KEXIT_USAGE;
	}
	if ((r = parse("user", argc - 1, argv + 1, &o)) != 0)
		return r;
	if (strcmp(sub, "add") == 0)
		return user_add(&o);
	if (strcmp(sub, "list") == 0 || strcmp(sub, "show") == 0) {
		const struct kpolicy_user *only = NULL;

		if ((strcmp(sub, "show") == 0) != (o.npos == 1) || o.npos > 1) {
			cli_usage_error("user", "user list | user show ID");
			return KEXIT_USAGE;
		}
		if ((r = open_as(&o, false, &v)) != 0)
			return r;
		if (o.npos == 1 && !(only = kpolicy_user_find(v->policy, o.pos[0]))) {
			kerr_set(&ei, o.pos[0], "no such user");
			return finish(v, KERR_NOUSER, &ei, NULL);
		}
		if (o.json) {
			json_t *a = json_array();

			for (size_t i = 0; i < v->policy->nusers; i++)
				if (!only || only == &v->policy->users[i])
					json_array_append_new(a, user_json(v, &v->policy->users[i]));
			print_json(only ? json_incref(json_array_get(a, 0)) : json_incref(a));
			json_decref(a);
		} else {
			if (!only)
				printf("%-16s %-8s %-8s %-3s %s\n", "ID", "ROLE", "STATE", "2FA", "NAME / DEPT");
			for (size_t i = 0; i < v->policy->nusers; i++) {
				const struct kpolicy_user *u = &v->policy->users[i];

				if (only && only != u)
					continue;
				printf("%-16s %-8s %-8s %-3s %s%s%s\n", u->id, krole_name(u->role),
				       u->active ? "active" : "disabled", u->has_cert ? "yes" : "no", u->name,
				       u->dept[0] ? " / " : "", u->dept);
				if (only) {
					printf("contact: %s\ngrants:", u->contact);
					for (size_t j = 0; j < v->policy->ngrants; j++)
						if (strcmp(v->policy->grants[j].user, u->id) == 0) {
							const struct kpolicy_comp *c =
								kpolicy_comp_find(v->policy, v->policy->grants[j].comp);

							printf(" %s(%s)", c ? c->name : "?",
							       v->policy->grants[j].read_only ? "ro" : "rw");
						}
					printf("\n");
				}
			}
		}
		return finish(v, 0, &ei, NULL);
	}
	if (!strcmp(sub, "disable") || !strcmp(sub, "enable") || !strcmp(sub, "remove")) {
		if (o.npos != 1) {
			cli_usage_error("user", "user %s ID", sub);
			return KEXIT_USAGE;
		}
		if ((r = open_as(&o, true, &v)) != 0)
			return r;
		if (!strcmp(sub, "remove") && o.rotate) {
			/* OPS 5.1: grants removed, affected compartments rotated and re-keyed */
			char *held[64];
			size_t n = 0;

			for (size_t i = 0; i < v->policy->ngrants && n < 64; i++)
				if (!strcmp(v->policy->grants[i].user, o.pos[0])) {
					const struct kpolicy_comp *c = kpolicy_comp_find(v->policy, v->policy->grants[i].comp);

					size_t holders = 0;

					for (size_t j = 0; c && j < v->policy->ngrants; j++)
						holders += !memcmp(v->policy->grants[j].comp, c->id, 16);
					if (c && holders == 1) {
						kerr_set(&ei, o.pos[0], "refused: holds the last grant of compartment '%s'; without it nobody could read it again (grant someone else first, or erase the compartment)",
							 c->name);
						for (size_t j = 0; j < n; j++)
							free(held[j]);
						return finish(v, KERR_POLICY, &ei, NULL);
					}
					if (c && (held[n] = strdup(c->name)) != NULL)
						n++;
				}
			r = kvault_user_remove(v, o.pos[0], &ei);
			if (r == 0) {
				printf("kinko: user removed (policy serial %llu)\n", (unsigned long long)v->policy->serial);
				r = cli_rotate_rekey(v, held, n, o.json);
			} else {
				r = cli_fail(r, &ei, v->path);
			}
			for (size_t i = 0; i < n; i++)
				free(held[i]);
			kvault_close(v);
			return r;
		}
		if (!strcmp(sub, "remove"))
			r = kvault_user_remove(v, o.pos[0], &ei);
		else
			r = kvault_user_set_active(v, o.pos[0], !strcmp(sub, "enable"), &ei);
		return finish(v, r, &ei, !strcmp(sub, "remove") ? "user removed" :
			      !strcmp(sub, "enable") ? "user enabled" : "user disabled");
	}
	cli_usage_error("user", "unknown subcommand '%s'", sub);
	return KEXIT_USAGE;
}

int cmd_compartment(int argc, char **argv)
{
	struct aopts o;
	struct kerrinfo ei = { "", "" };
	struct kvault *v;
	const char *sub = argc > 1 ? argv[1] : "";
	int r, klass;

	if (argc < 2) {
		cli_usage_error("compartment", "expected create, list or erase");
		return KEXIT_USAGE;
	}
	if (strcmp(sub, "erase") == 0)
		return cli_comp_erase(argc - 1, argv + 1);
	if ((r = parse("compartment", argc - 1, argv + 1, &o)) != 0)
		return r;
	if (strcmp(sub, "create") == 0) {
		if (o.npos != 1 || !o.klass || (klass = kclass_from_name(o.klass)) < 0) {
			cli_usage_error("compartment", "compartment create NAME --class gokuhi|himitsu|shagaihi");
			return KEXIT_USAGE;
		}
		if ((r = open_as(&o, true, &v)) != 0)
			return r;
		r = kvault_comp_create(v, o.pos[0], klass, &ei);
		return finish(v, r, &ei, "compartment created (you hold its first grant)");
	}
	if (strcmp(sub, "list") == 0) {
		json_t *a = json_array();

		if ((r = open_as(&o, false, &v)) != 0) {
			json_decref(a);
			return r;
		}
		if (!o.json)
			printf("%-24s %-9s %-6s %s\n", "NAME", "CLASS", "EPOCH", "GRANTEES");
		for (size_t i = 0; i < v->policy->ncomps; i++) {
			const struct kpolicy_comp *c = &v->policy->comps[i];
			json_t *e = json_object(), *g = json_array();

			if (!o.json)
				printf("%-24s %-9s %-6u", c->name, kclass_name(c->klass), c->current_epoch);
			for (size_t j = 0; j < v->policy->ngrants; j++)
				if (!memcmp(v->policy->grants[j].comp, c->id, 16)) {
					json_t *ge = json_object();

					json_object_set_new(ge, "user", json_string(v->policy->grants[j].user));
					json_object_set_new(ge, "access", json_string(v->policy->grants[j].read_only ? "ro" : "rw"));
					json_array_append_new(g, ge);
					if (!o.json)
						printf(" %s(%s)", v->policy->grants[j].user,
						       v->policy->grants[j].read_only ? "ro" : "rw");
				}
			if (!o.json)
				printf("\n");
			json_object_set_new(e, "name", json_string(c->name));
			json_object_set_new(e, "id", json_string(c->hexid));
			json_object_set_new(e, "class", json_string(kclass_name(c->klass)));
			json_object_set_new(e, "epoch", json_integer(c->current_epoch));
			json_object_set_new(e, "grantees", g);
			json_array_append_new(a, e);
		}
		if (o.json)
			print_json(a);
		else
			json_decref(a);
		return finish(v, 0, &ei, NULL);
	}
	cli_usage_error("compartment", "unknown subcommand '%s'", sub);
	return KEXIT_USAGE;
}

static int grant_revoke(int argc, char **argv, bool grant)
{
	struct aopts o;
	struct kerrinfo ei = { "", "" };
	struct kvault *v;
	int r;

	if ((r = parse(grant ? "grant" : "revoke", argc, argv, &o)) != 0)
		return r;
	if (o.npos != 2) {
		cli_usage_error(grant ? "grant" : "revoke", "expected USER COMPARTMENT");
		return KEXIT_USAGE;
	}
	if ((r = open_as(&o, true, &v)) != 0)
		return r;
	if (grant)
		r = kvault_grant(v, o.pos[0], o.pos[1], o.read_only, &ei);
	else
		r = kvault_revoke(v, o.pos[0], o.pos[1], &ei);
	if (!grant && o.rotate && r == 0) {
		printf("kinko: grant removed (policy serial %llu)\n", (unsigned long long)v->policy->serial);
		r = cli_rotate_rekey(v, &o.pos[1], 1, o.json);
		kvault_close(v);
		return r;
	}
	return finish(v, r, &ei, grant ? (o.read_only ? "read-only grant given" : "grant given") :
		      "grant removed (rotate the compartment's key to make copied keys useless)");
}

int cmd_grant(int argc, char **argv) { return grant_revoke(argc, argv, true); }
int cmd_revoke(int argc, char **argv) { return grant_revoke(argc, argv, false); }

int cmd_policy(int argc, char **argv)
{
	struct aopts o;
	struct kerrinfo ei = { "", "" };
	struct kvault *v;
	const char *sub = argc > 1 ? argv[1] : "";
	int r;

	if (argc < 2) {
		cli_usage_error("policy", "expected show, set or set-ca");
		return KEXIT_USAGE;
	}
	if ((r = parse("policy", argc - 1, argv + 1, &o)) != 0)
		return r;
	if (strcmp(sub, "show") == 0) {
		struct kpolicy_settings s;
		static const char *modes[] = { "expiring", "long", "two-factor" };

		if ((r = open_as(&o, false, &v)) != 0)
			return r;
		kpolicy_settings_get(v->policy, &s);
		if (o.json) {
			json_t *j = json_object(), *cls = json_array();

			json_object_set_new(j, "serial", json_integer((json_int_t)v->policy->serial));
			json_object_set_new(j, "updated_by", json_string(v->policy->updated_by));
			for (const struct kpolicy_int_setting *d = kpolicy_int_settings; d->key; d++)
				json_object_set_new(j, d->key, json_integer(*(const int *)((const char *)&s + d->offset)));
			json_object_set_new(j, "password.mode", json_string(modes[s.pw_mode]));
			for (int c = 0; c < 3; c++)
				if (s.second_factor_class[c])
					json_array_append_new(cls, json_string(kclass_name(c)));
			json_object_set_new(j, "second_factor.classes", cls);
			{
				json_t *x = json_object_get(v->policy->settings, "ids.forbidden");

				json_object_set_new(j, "ids.forbidden", x ? json_deep_copy(x) : json_array());
			}
			json_object_set_new(j, "second_factor.ca_cert",
					    json_boolean(json_object_get(v->policy->settings, "second_factor.ca_cert") != NULL));
			{
				json_t *h = json_object_get(v->policy->settings, "anomaly.hours");

				json_object_set_new(j, "anomaly.hours", json_string(json_is_string(h) ? json_string_value(h) : "any"));
			}
			json_object_set_new(j, "alert_command", s.alert_command ? json_string(s.alert_command) : json_null());
			print_json(j);
		} else {
			printf("policy serial %llu, last changed by %s\n",
			       (unsigned long long)v->policy->serial, v->policy->updated_by);
			printf("password.mode             %s\n", modes[s.pw_mode]);
			for (const struct kpolicy_int_setting *d = kpolicy_int_settings; d->key; d++)
				printf("%-25s %d\n", d->key, *(const int *)((const char *)&s + d->offset));
			printf("second_factor.classes    ");
			for (int c = 0; c < 3; c++)
				if (s.second_factor_class[c])
					printf(" %s", kclass_name(c));
			printf("\nsecond_factor.ca_cert     %s\n",
			       json_object_get(v->policy->settings, "second_factor.ca_cert") ? "set" : "not set");
			{
				json_t *h = json_object_get(v->policy->settings, "anomaly.hours");

				printf("anomaly.hours             %s\n", json_is_string(h) ? json_string_value(h) : "any");
			}
			printf("alert_command             %s\n", s.alert_command ? s.alert_command : "(none)");
			printf("ids.forbidden             (built in:");
			for (int i = 0; kpolicy_default_forbidden_ids[i]; i++)
				printf(" %s", kpolicy_default_forbidden_ids[i]);
			printf(")\n");
			{
				json_t *x = json_object_get(v->policy->settings, "ids.forbidden"), *e;
				size_t i;

				printf("ids.forbidden (policy)   ");
				if (json_is_array(x))
					json_array_foreach(x, i, e)
						printf(" %s", json_string_value(e) ? json_string_value(e) : "?");
				printf("\n");
			}
		}
		return finish(v, 0, &ei, NULL);
	}
	if (strcmp(sub, "set") == 0) {
		char why[256];

		if (o.npos != 2) {
			cli_usage_error("policy", "policy set KEY VALUE");
			return KEXIT_USAGE;
		}
		if ((r = open_as(&o, true, &v)) != 0)
			return r;
		if ((r = kpolicy_setting_set(v->policy, o.pos[0], o.pos[1], why, sizeof(why))) != 0) {
			kerr_set(&ei, o.pos[0], "%s", why);
			return finish(v, r, &ei, NULL);
		}
		if (strcmp(o.pos[0], "password.mode") == 0 && strcmp(o.pos[1], "two-factor") == 0 &&
		    !v->meta.cert) {
			kerr_set(&ei, o.pos[0], "refused: you ('%s') have no second factor yourself and would be locked out; bind a certificate to an administrator first",
				 v->user->id);
			return finish(v, KERR_POLICY, &ei, NULL);
		}
		if (strcmp(o.pos[0], "second_factor.classes") == 0 && o.pos[1][0] &&
		    !json_object_get(v->policy->settings, "second_factor.ca_cert")) {
			kerr_set(&ei, o.pos[0], "set the organisation's CA first (kinko policy set-ca CA.pem): without it nobody could open those compartments");
			return finish(v, KERR_POLICY, &ei, NULL);
		}
		r = kvault_policy_commit(v, &ei);
		return finish(v, r, &ei, "policy updated");
	}
	if (strcmp(sub, "set-ca") == 0) {
		uint8_t *der = NULL;
		size_t len;

		if (o.npos != 1) {
			cli_usage_error("policy", "policy set-ca CA-CERT.pem");
			return KEXIT_USAGE;
		}
		if ((r = open_as(&o, true, &v)) != 0)
			return r;
		if ((r = kx509_cert_load(o.pos[0], &der, &len, &ei)) == 0 &&
		    (r = kpolicy_set_ca_cert(v->policy, der, len)) == 0)
			r = kvault_policy_commit(v, &ei);
		free(der);
		return finish(v, r, &ei, "CA certificate for second factors set");
	}
	cli_usage_error("policy", "unknown subcommand '%s'", sub);
	return KEXIT_USAGE;
}

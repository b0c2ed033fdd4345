/* kinko guard: workstation configuration (kinko.conf(5)) and mountinfo. */
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinko/guard.h"

struct conf_ctx {
	struct kguard_conf *c;
	int err;
	int line;
	char what[160];
};

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = 0;
	return s;
}

/* "PATH[, PATH...]": absolute paths, trailing slashes dropped */
static int add_paths(char **list, size_t *n, const char *value, char *what, size_t wn)
{
	char *dup = strdup(value), *save = NULL, *tok;
	int r = 0;

	if (!dup)
		return -ENOMEM;
	for (tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *p = trim(tok);
		size_t l = strlen(p);

		if (!l)
			continue;
		if (p[0] != '/') {
			snprintf(what, wn, "'%s' is not an absolute path", p);
			r = -EINVAL;
			break;
		}
		while (l > 1 && p[l - 1] == '/')
			p[--l] = 0;
		if (*n >= KGUARD_PATHS_MAX) {
			snprintf(what, wn, "more than %d paths", KGUARD_PATHS_MAX);
			r = -E2BIG;
			break;
		}
		if (!(list[*n] = strdup(p))) {
			r = -ENOMEM;
			break;
		}
		(*n)++;
	}
	free(dup);
	return r;
}

static int on_entry(void *user, const char *section, const char *name, const char *value)
{
	struct conf_ctx *x = user;
	int r = 0;

	if (x->err)
		return 0;
	if (strcmp(section, "media") == 0) {
		char *dst[KGUARD_PATHS_MAX] = { NULL };
		size_t nd = 0;

		if (x->c->n_media >= KGUARD_PATHS_MAX) {
			snprintf(x->what, sizeof(x->what), "more than %d [media] entries", KGUARD_PATHS_MAX);
			x->err = -E2BIG;
			return 0;
		}
		if (!name[0] || strlen(name) > 128 || strpbrk(name, " \t")) {
			snprintf(x->what, sizeof(x->what), "[media]: '%s' is not a serial number", name);
			x->err = -EINVAL;
			return 0;
		}
		r = add_paths(dst, &nd, value, x->what, sizeof(x->what));
		if (r || nd != 1) {
			if (!r)
				snprintf(x->what, sizeof(x->what), "[media] %s: exactly one absolute path", name);
			for (size_t i = 0; i < nd; i++)
				free(dst[i]);
			x->err = r ? r : -EINVAL;
			return 0;
		}
		if (!(x->c->media_serials[x->c->n_media] = strdup(name))) {
			free(dst[0]);
			x->err = -ENOMEM;
			return 0;
		}
		x->c->media_paths[x->c->n_media++] = dst[0];
		return 1;
	}
	/* keys live at the top or in [guard]; other sections belong to others */
	if (section[0] && strcmp(section, "guard") != 0)
		return 1;
	if (strcmp(name, "removable_paths") == 0)
		r = add_paths(x->c->removable_paths, &x->c->n_removable, value, x->what, sizeof(x->what));
	else if (strcmp(name, "vault_paths") == 0)
		r = add_paths(x->c->vault_paths, &x->c->n_vault, value, x->what, sizeof(x->what));
	else
		snprintf(x->what, sizeof(x->what), "unknown key '%s'", name), r = -EINVAL;
	if (r)
		x->err = r;
	return r ? 0 : 1;
}

int kguard_conf_load(const char *path, struct kguard_conf *c, struct kerrinfo *ei)
{
	struct conf_ctx x = { .c = c };
	bool named = path != NULL;
	FILE *f;
	int r;

	memset(c, 0, sizeof(*c));
	if (!path)
		path = getenv("KINKO_CONFIG");
	if (path)
		named = true;
	else
		path = KGUARD_CONFIG_DEFAULT;
	if (!(f = fopen(path, "re"))) {
		r = -errno;
		if (r == -ENOENT && !named)
			return 0;
		kerr_set(ei, path, "cannot read the configuration: %s", strerror(-r));
		return r;
	}
	r = ini_parse_file(f, on_entry, &x);
	fclose(f);
	if (x.err || r != 0) {
		if (x.err)
			kerr_set(ei, path, "%s", x.what);
		else
			kerr_set(ei, path, "line %d: syntax error", r);
		kguard_conf_free(c);
		return x.err ? x.err : -EINVAL;
	}
	return 0;
}

void kguard_conf_free(struct kguard_conf *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_removable; i++)
		free(c->removable_paths[i]);
	for (size_t i = 0; i < c->n_vault; i++)
		free(c->vault_paths[i]);
	for (size_t i = 0; i < c->n_media; i++) {
		free(c->media_serials[i]);
		free(c->media_paths[i]);
	}
	memset(c, 0, sizeof(*c));
}

bool kguard_path_below(char *const *list, size_t n, const char *path)
{
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(list[i]);

		if (l == 1 && list[i][0] == '/')
			return true;
		if (strncmp(path, list[i], l) == 0 && (path[l] == 0 || path[l] == '/'))
			return true;
	}
	return false;
}

/* ---- /proc/self/mountinfo ---- */

/* undo the octal escapes (\040 space, \011 tab, \012 newline, \134 backslash) */
static char *unescape(const char *s)
{
	char *o = malloc(strlen(s) + 1), *p = o;

	if (!o)
		return NULL;
	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*p++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 4;
		} else {
			*p++ = *s++;
		}
	}
	*p = 0;
	return o;
}

static void mount_free(struct kguard_mount *m)
{
	free(m->root);
	free(m->mountpoint);
	free(m->fstype);
	free(m->source);
}

/* "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue" */
static int parse_line(char *line, struct kguard_mount *m)
{
	char *f[16], *save = NULL, *t;
	int n = 0, sep = -1;

	for (t = strtok_r(line, " \n", &save); t && n < 16; t = strtok_r(NULL, " \n", &save)) {
		if (strcmp(t, "-") == 0 && sep < 0)
			sep = n;
		f[n++] = t;
	}
	if (n < 6 || sep < 6 || sep + 2 >= n)
		return -EINVAL;
	if (sscanf(f[0], "%d", &m->id) != 1 || sscanf(f[2], "%u:%u", &m->major, &m->minor) != 2)
		return -EINVAL;
	m->root = unescape(f[3]);
	m->mountpoint = unescape(f[4]);
	m->fstype = unescape(f[sep + 1]);
	m->source = unescape(f[sep + 2]);
	if (!m->root || !m->mountpoint || !m->fstype || !m->source) {
		mount_free(m);
		return -ENOMEM;
	}
	return 0;
}

int kguard_mounts_read(const char *path, struct kguard_mounts *out)
{
	FILE *f = fopen(path ? path : "/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0, alloc = 0;
	int r = 0;

	out->m = NULL;
	out->n = 0;
	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		struct kguard_mount m = { 0 };

		if (parse_line(line, &m) != 0)
			continue;
		if (out->n == alloc) {
			size_t na = alloc ? alloc * 2 : 32;
			struct kguard_mount *nm = realloc(out->m, na * sizeof(*nm));

			if (!nm) {
				mount_free(&m);
				r = -ENOMEM;
				break;
			}
			out->m = nm;
			alloc = na;
		}
		out->m[out->n++] = m;
	}
	free(line);
	fclose(f);
	if (r)
		kguard_mounts_free(out);
	return r;
}

void kguard_mounts_free(struct kguard_mounts *ms)
{
	if (!ms)
		return;
	for (size_t i = 0; i < ms->n; i++)
		mount_free(&ms->m[i]);
	free(ms->m);
	ms->m = NULL;
	ms->n = 0;
}

const struct kguard_mount *kguard_mount_of(const struct kguard_mounts *ms, const char *path)
{
	const struct kguard_mount *best = NULL;
	size_t bl = 0;

	/* later lines are mounted over earlier ones: take the last longest */
	for (size_t i = 0; i < ms->n; i++) {
		const char *mp = ms->m[i].mountpoint;
		size_t l = strlen(mp);
		bool in = (l == 1 && mp[0] == '/') ||
			  (strncmp(path, mp, l) == 0 && (path[l] == 0 || path[l] == '/'));

		if (in && l >= bl) {
			best = &ms->m[i];
			bl = l;
		}
	}
	return best;
}

const struct kguard_mount *kguard_mount_by_id(const struct kguard_mounts *ms, int id)
{
	for (size_t i = 0; i < ms->n; i++)
		if (ms->m[i].id == id)
			return &ms->m[i];
	return NULL;
}

bool kguard_mount_is_kinko(const struct kguard_mount *m)
{
	return strcmp(m->fstype, "fuse.kinko") == 0;
}

const char *kguard_mount_vault(const struct kguard_mount *m)
{
	if (!kguard_mount_is_kinko(m) || strncmp(m->source, "kinko:", 6) != 0 || m->source[6] != '/')
		return NULL;
	return m->source + 6;
}

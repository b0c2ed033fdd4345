// SPDX-License-Identifier: GPL-2.0-or-later
/* Per-workstation state of a vault, kept outside the vault directory (which
 * other workstations and users can write): the newest policy serial this host
 * has seen (an older, validly signed policy replayed later is refused) and the
 * failed unlock counts per user. One JSON file per vault, replaced atomically.
 * Location: $KINKO_STATE_DIR, else /var/lib/kinko (root), else
 * $XDG_STATE_HOME/kinko or ~/.local/state/kinko. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "kinko/vault.h"

static int state_dir(char *out, size_t n)
{
	const char *e = getenv("KINKO_STATE_DIR"), *home;

	if (e && *e)
		snprintf(out, n, "%s", e);
	else if (geteuid() == 0)
		snprintf(out, n, "/var/lib/kinko");
	else if ((e = getenv("XDG_STATE_HOME")) && *e)
		snprintf(out, n, "%s/kinko", e);
	else if ((home = getenv("HOME")) && *home)
		snprintf(out, n, "%s/.local/state/kinko", home);
	else
		return -ENOENT;
	return kmkdirs_at(AT_FDCWD, out, 0700);
}

/* load under an exclusive lock (released by state_unlock): concurrent kinko
 * processes on this workstation must not lose each other's updates */
static int state_load(const uint8_t vault_id[16], json_t **out, char *path, size_t n, int *lockfd)
{
	char dir[4096], hex[33], lockpath[4200];
	uint8_t *buf = NULL;
	size_t len;
	int r;

	*out = NULL;
	*lockfd = -1;
	if ((r = state_dir(dir, sizeof(dir))) != 0)
		return r;
	khex_encode(hex, vault_id, 16);
	snprintf(path, n, "%s/%s.json", dir, hex);
	snprintf(lockpath, sizeof(lockpath), "%s/%s.lock", dir, hex);
	*lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (*lockfd < 0)
		return -errno;
	while (flock(*lockfd, LOCK_EX) < 0)
		if (errno != EINTR) {
			r = -errno;
			close(*lockfd);
			*lockfd = -1;
			return r;
		}
	r = kfile_read_at(AT_FDCWD, path, 1 << 20, &buf, &len);
	if (r == -ENOENT) {
		*out = json_object();
		return *out ? 0 : -ENOMEM;
	}
	if (r) {
		close(*lockfd);
		*lockfd = -1;
		return r;
	}
	*out = json_loadb((const char *)buf, len, 0, NULL);
	free(buf);
	if (!json_is_object(*out)) {
		/* a corrupt state file: start again rather than lock everyone out */
		json_decref(*out);
		*out = json_object();
	}
	return *out ? 0 : -ENOMEM;
}

static void state_unlock(int lockfd)
{
	if (lockfd >= 0)
		close(lockfd); /* releases the flock */
}

static int state_store(json_t *st, const char *path)
{
	char *s = json_dumps(st, JSON_INDENT(1) | JSON_SORT_KEYS);
	int r;

	if (!s)
		return -ENOMEM;
	r = kfile_replace_at(AT_FDCWD, path, s, strlen(s), 0600);
	free(s);
	return r;
}

int kvault_state_check_serial(const uint8_t vault_id[16], uint64_t serial, struct kerrinfo *ei)
{
	char path[4200];
	json_t *st = NULL, *v;
	int r, lk;

	if ((r = state_load(vault_id, &st, path, sizeof(path), &lk)) != 0) {
		log_warn("cannot read this workstation's kinko state (%s): replay detection is off",
			 kinko_strerror(r));
		return 0;
	}
	v = json_object_get(st, "policy_serial");
	if (json_is_integer(v) && (uint64_t)json_integer_value(v) > serial) {
		kerr_set(ei, "policy/", "policy serial %llu is older than serial %lld already seen on this workstation (replayed or rolled-back policy)",
			 (unsigned long long)serial, (long long)json_integer_value(v));
		json_decref(st);
		state_unlock(lk);
		return KERR_ROLLBACK;
	}
	if (!json_is_integer(v) || (uint64_t)json_integer_value(v) < serial) {
		json_object_set_new(st, "policy_serial", json_integer((json_int_t)serial));
		if (state_store(st, path) != 0)
			log_warn("cannot record the policy serial in %s", path);
	}
	json_decref(st);
	state_unlock(lk);
	return 0;
}

/* delta 0: read; +1: count one more attempt, refused (-EACCES) when max
 * attempts are already counted (max 0: no limit); -1: reset */
int kvault_state_failures(const uint8_t vault_id[16], const char *user, uint32_t gen, int delta,
			  int max, int *count)
{
	char path[4200];
	json_t *st = NULL, *f, *u;
	int r, c = 0, lk;

	*count = 0;
	if ((r = state_load(vault_id, &st, path, sizeof(path), &lk)) != 0)
		return r;
	f = json_object_get(st, "failures");
	if (!json_is_object(f)) {
		f = json_object();
		json_object_set_new(st, "failures", f);
	}
	u = json_object_get(f, user);
	if (json_is_object(u) && json_integer_value(json_object_get(u, "gen")) == (json_int_t)gen)
		c = (int)json_integer_value(json_object_get(u, "count"));
	*count = c;
	if (delta == 0 || (delta < 0 && c == 0)) {
		r = 0;
		goto out;
	}
	if (delta > 0 && max > 0 && c >= max) {
		r = -EACCES;
		goto out;
	}
	c = delta < 0 ? 0 : c + delta;
	u = json_object();
	json_object_set_new(u, "count", json_integer(c));
	json_object_set_new(u, "gen", json_integer(gen));
	json_object_set_new(u, "last", json_integer(ktime_now()));
	json_object_set_new(f, user, u);
	r = state_store(st, path);
out:
	json_decref(st);
	state_unlock(lk);
	return r;
}

int kvault_state_anomaly(const uint8_t vault_id[16], const char *user, uint32_t gen, int op,
			 char *why, size_t n)
{
	char path[4200];
	json_t *st = NULL, *a, *u;
	int r, lk;

	if ((r = state_load(vault_id, &st, path, sizeof(path), &lk)) != 0)
		return r;
	a = json_object_get(st, "anomaly");
	if (!json_is_object(a)) {
		a = json_object();
		json_object_set_new(st, "anomaly", a);
	}
	u = json_object_get(a, user);
	if (op == 0) {
		r = json_is_object(u) && json_integer_value(json_object_get(u, "gen")) == (json_int_t)gen;
		if (r && why && n) {
			const char *w = json_string_value(json_object_get(u, "why"));
			char iso[32];

			ktime_iso(iso, sizeof(iso), (int64_t)json_integer_value(json_object_get(u, "at")));
			snprintf(why, n, "%s, %s", w ? w : "?", iso);
		}
	} else if (op > 0) {
		u = json_object();
		json_object_set_new(u, "gen", json_integer(gen));
		json_object_set_new(u, "why", json_string(why ? why : ""));
		json_object_set_new(u, "at", json_integer(ktime_now()));
		json_object_set_new(a, user, u);
		r = state_store(st, path);
	} else {
		json_object_del(a, user);
		r = state_store(st, path);
	}
	json_decref(st);
	state_unlock(lk);
	return r;
}

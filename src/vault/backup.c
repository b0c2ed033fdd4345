// SPDX-License-Identifier: GPL-2.0-or-later
/* kinko backup: ciphertext-only, content-addressed, incremental backups with a
 * signed manifest; verification without keys; restore. See kinko/backup.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kinko/backup.h"
#include "kinko/keys.h"
#include "kinko/crypto.h"

#define CHUNK (1u << 20)
#define SIG_TAIL (8 + 128 + 1) /* "ed25519:" hex "\n" */

struct ent {
	char *path;
	char type;        /* 'f', 'd', 'l'; special files 'p' (FIFO), 's', 'c', 'b' */
	uint64_t rdev;    /* 'c', 'b' */
	uint32_t mode;
	uint64_t size;
	int64_t mtime_ns;
	char *target;     /* symlinks */
	char sha[65];     /* files */
};

struct list {
	struct ent *e;
	size_t n, cap;
};

static void list_free(struct list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->e[i].path);
		free(l->e[i].target);
	}
	free(l->e);
	memset(l, 0, sizeof(*l));
}

static struct ent *list_add(struct list *l)
{
	if (l->n == l->cap) {
		struct ent *ne = realloc(l->e, (l->cap = l->cap ? 2 * l->cap : 256) * sizeof(*ne));

		if (!ne)
			return NULL;
		l->e = ne;
	}
	memset(&l->e[l->n], 0, sizeof(l->e[0]));
	return &l->e[l->n++];
}

static int cmp_ent(const void *a, const void *b)
{
	return strcmp(((const struct ent *)a)->path, ((const struct ent *)b)->path);
}

bool kbackup_path_valid(const char *p)
{
	size_t n = strnlen(p, KBACKUP_PATH_MAX + 1);
	const char *c = p;

	if (n == 0 || n > KBACKUP_PATH_MAX || p[0] == '/')
		return false;
	while (*c) {
		const char *s = strchr(c, '/');
		size_t len = s ? (size_t)(s - c) : strlen(c);

		if (len == 0 || len > NAME_MAX || (len == 1 && c[0] == '.') ||
		    (len == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		if (!s)
			break;
		c = s + 1;
		if (!*c)
			return false; /* trailing slash */
	}
	return true;
}

int kbackup_manifest_split(const uint8_t *text, size_t len, size_t *signed_len, uint8_t sig[64])
{
	const uint8_t *t;

	if (len <= SIG_TAIL + 2 || len > KBACKUP_MANIFEST_MAX)
		return KERR_FORMAT;
	t = text + len - SIG_TAIL;
	if (t[-1] != '\n' || memcmp(t, "ed25519:", 8) != 0 || text[len - 1] != '\n')
		return KERR_FORMAT;
	{
		char hex[129];

		memcpy(hex, t + 8, 128);
		hex[128] = 0;
		if (khex_decode(sig, 64, hex) != 0)
			return KERR_FORMAT;
	}
	*signed_len = len - SIG_TAIL;
	return 0;
}

/* ---- walking the vault ---- */
static int walk(int dirfd, const char *rel, struct list *l, int depth)
{
	DIR *d;
	struct dirent *de;
	int fd, r = 0;

	if (depth > 256)
		return -ELOOP;
	if ((fd = dup(dirfd)) < 0)
		return -errno;
	if (!(d = fdopendir(fd))) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		struct stat st;
		struct ent *e;
		char path[KBACKUP_PATH_MAX + 1];

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s%s%s", rel, *rel ? "/" : "", de->d_name) >=
		    sizeof(path)) {
			r = -ENAMETOOLONG;
			break;
		}
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue; /* vanished (a temporary file) */
			r = -errno;
			break;
		}
		if (!(e = list_add(l)) || !(e->path = strdup(path))) {
			r = -ENOMEM;
			break;
		}
		e->mode = st.st_mode & 07777;
		e->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
		if (S_ISREG(st.st_mode)) {
			e->type = 'f';
			e->size = (uint64_t)st.st_size;
		} else if (!S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode)) {
			/* special files made in a mount (mknod): kept as such, no content */
			e->type = S_ISFIFO(st.st_mode) ? 'p' : S_ISSOCK(st.st_mode) ? 's' :
				  S_ISCHR(st.st_mode) ? 'c' : 'b';
			e->rdev = (uint64_t)st.st_rdev;
		} else if (S_ISLNK(st.st_mode)) {
			char t[PATH_MAX];
			ssize_t n = readlinkat(dirfd, de->d_name, t, sizeof(t) - 1);

			if (n < 0) {
				r = -errno;
				break;
			}
			t[n] = 0;
			e->type = 'l';
			if (!(e->target = strdup(t))) {
				r = -ENOMEM;
				break;
			}
		} else {
			int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			e->type = 'd';
			if (sub < 0) {
				r = -errno;
				break;
			}
			r = walk(sub, path, l, depth + 1);
			close(sub);
			if (r)
				break;
		}
	}
	closedir(d);
	return r;
}

/* ---- objects ---- */
static void obj_name(char *out, size_t n, const char *sha)
{
	snprintf(out, n, KBACKUP_OBJECTS "/%.2s/%s", sha, sha);
}

static void tick(const struct kbackup_progress *pr, uint64_t b, uint64_t tb, uint64_t f, uint64_t tf)
{
	if (pr && pr->fn)
		pr->fn(pr->ctx, b, tb, f, tf);
}

/* hash fd from the start; *size = bytes read */
static int hash_fd(int fd, char hex[65], uint64_t *size, const struct kbackup_progress *pr,
		   uint64_t *done, uint64_t total, uint64_t files, uint64_t tfiles, int outfd,
		   uint8_t *buf)
{
	struct kcrypto_sha256 h;
	uint8_t d[32];
	uint64_t got = 0;
	ssize_t n;
	int r = 0;

	kcrypto_sha256_init(&h);
	while ((n = kpread_full(fd, buf, CHUNK, (off_t)got)) > 0) {
		kcrypto_sha256_update(&h, buf, (size_t)n);
		if (outfd >= 0 && (r = kwrite_all(outfd, buf, (size_t)n)) != 0)
			break;
		got += (uint64_t)n;
		*done += (uint64_t)n;
		tick(pr, *done, total, files, tfiles);
		if ((size_t)n < CHUNK)
			break;
	}
	if (n < 0)
		r = (int)n;
	kcrypto_sha256_final(&h, d);
	khex_encode(hex, d, 32);
	*size = got;
	return r;
}

static bool obj_present(int dfd, const char *sha, uint64_t size)
{
	char name[128];
	struct stat st;

	obj_name(name, sizeof(name), sha);
	return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
	       (uint64_t)st.st_size == size;
}

/* the previous manifest's files, when its signature verifies with pk */
static json_t *load_prev(int dfd, const struct kpolicy *p)
{
	uint8_t *buf = NULL, sig[64], pk[32];
	size_t len, slen;
	json_t *j = NULL, *files = NULL;
	const struct kpolicy_user *pu;
	const char *signer, *pkhex;

	if (kfile_read_at(dfd, KBACKUP_MANIFEST, KBACKUP_MANIFEST_MAX, &buf, &len) != 0)
		return NULL;
	if (kbackup_manifest_split(buf, len, &slen, sig) != 0)
		goto out;
	if (!(j = json_loadb((const char *)buf, slen, JSON_REJECT_DUPLICATES, NULL)))
		goto out;
	signer = json_string_value(json_object_get(j, "signer"));
	pkhex = json_string_value(json_object_get(j, "signer_pk"));
	if (!signer || !pkhex || khex_decode(pk, 32, pkhex) != 0 ||
	    !(pu = kpolicy_user_find(p, signer)) || !kcrypto_memeq(pu->sign_pk, pk, 32) ||
	    kcrypto_verify(sig, buf, slen, pk) != 0)
		goto out;
	files = json_incref(json_object_get(j, "files"));
out:
	json_decref(j);
	free(buf);
	return json_is_array(files) ? files : (json_decref(files), NULL);
}

/* the previous manifest lists files sorted by path: binary search (an entry
 * not found, e.g. in an unsorted list, only means the file is hashed again) */
static json_t *prev_find(json_t *files, const char *path)
{
	size_t lo = 0, hi = json_array_size(files);

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		json_t *e = json_array_get(files, mid);
		const char *p = json_string_value(json_object_get(e, "path"));
		int c = p ? strcmp(p, path) : -1;

		if (c == 0)
			return e;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int copy_obj(int vfd, struct ent *e, int dfd, bool *dirty, const struct kbackup_progress *pr,
		    uint64_t *done, uint64_t total, uint64_t files, uint64_t tfiles, uint8_t *buf,
		    struct kbackup_stats *st)
{
	char tmp[64], name[128], sha[65], sub[16];
	uint64_t size;
	uint32_t rnd;
	int fd = -1, out = -1, r;

	if ((fd = openat(vfd, e->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return -errno;
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd)) {
		close(fd);
		return -EIO;
	}
	snprintf(tmp, sizeof(tmp), KBACKUP_OBJECTS "/.tmp.%08x", rnd);
	if ((out = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
		r = -errno;
		goto out;
	}
	if ((r = hash_fd(fd, sha, &size, pr, done, total, files, tfiles, out, buf)) != 0)
		goto out;
	if (fsync(out) < 0) {
		r = -errno;
		goto out;
	}
	close(out);
	out = -1;
	/* the file may have changed since it was hashed: the copy's hash names it */
	memcpy(e->sha, sha, sizeof(sha));
	e->size = size;
	snprintf(sub, sizeof(sub), KBACKUP_OBJECTS "/%.2s", sha);
	if (mkdirat(dfd, sub, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		goto out;
	}
	obj_name(name, sizeof(name), sha);
	if (renameat(dfd, tmp, dfd, name) < 0) {
		r = -errno;
		goto out;
	}
	dirty[strtoul((char[3]){ sha[0], sha[1], 0 }, NULL, 16) & 0xff] = true;
	st->copied_files++;
	st->copied_bytes += size;
	r = 0;
out:
	if (out >= 0) {
		close(out);
	}
	if (r)
		unlinkat(dfd, tmp, 0);
	close(fd);
	return r;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* remove objects no manifest entry refers to (and stale temporaries) */
static uint64_t gc(int dfd, struct list *l)
{
	char **keep = calloc(l->n + 1, sizeof(char *));
	size_t nk = 0;
	uint64_t removed = 0;
	int ofd;
	DIR *d;
	struct dirent *de;

	if (!keep)
		return 0;
	for (size_t i = 0; i < l->n; i++)
		if (l->e[i].type == 'f')
			keep[nk++] = l->e[i].sha;
	qsort(keep, nk, sizeof(char *), cmp_str);
	if ((ofd = openat(dfd, KBACKUP_OBJECTS, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    !(d = fdopendir(ofd))) {
		if (ofd >= 0)
			close(ofd);
		free(keep);
		return 0;
	}
	while ((de = readdir(d))) {
		int sfd;
		DIR *sd;
		struct dirent *se;

		if (de->d_name[0] == '.') {
			if (!strncmp(de->d_name, ".tmp.", 5))
				unlinkat(ofd, de->d_name, 0);
			continue;
		}
		if ((sfd = openat(ofd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
			continue;
		if (!(sd = fdopendir(sfd))) {
			close(sfd);
			continue;
		}
		while ((se = readdir(sd))) {
			const char *k = se->d_name;

			if (k[0] == '.')
				continue;
			if (!bsearch(&k, keep, nk, sizeof(char *), cmp_str) &&
			    unlinkat(sfd, se->d_name, 0) == 0)
				removed++;
		}
		closedir(sd);
		unlinkat(ofd, de->d_name, AT_REMOVEDIR); /* only when empty */
	}
	closedir(d);
	free(keep);
	return removed;
}

static json_t *ent_json(const struct ent *e)
{
	json_t *o = json_object();
	char t[2] = { e->type, 0 };

	json_object_set_new(o, "path", json_string(e->path));
	json_object_set_new(o, "type", json_string(t));
	json_object_set_new(o, "mode", json_integer(e->mode));
	json_object_set_new(o, "mtime_ns", json_integer(e->mtime_ns));
	if (e->type == 'f') {
		json_object_set_new(o, "size", json_integer((json_int_t)e->size));
		json_object_set_new(o, "sha256", json_string(e->sha));
	} else if (e->type == 'l') {
		json_object_set_new(o, "target", json_string(e->target));
	} else if (e->type == 'c' || e->type == 'b') {
		json_object_set_new(o, "rdev", json_integer((json_int_t)e->rdev));
	}
	return o;
}

int kbackup_create(int vfd, const struct kpolicy *p, const struct kkeys_user *u,
		   const char *medium, const char *dest, const struct kbackup_progress *pr,
		   struct kbackup_stats *st, struct kerrinfo *ei)
{
	struct list l = { 0 };
	json_t *prev = NULL, *man = NULL, *arr = NULL;
	const struct kpolicy_user *pu = kpolicy_user_find(p, u->id);
	uint8_t *buf = NULL, sig[64], d[32];
	char *txt = NULL, *full = NULL, hex[129], vid[33], pkhex[65];
	uint64_t total = 0, done = 0, nf = 0, fi = 0;
	bool dirty[256] = { false };
	size_t tlen;
	int dfd = -1, r;

	memset(st, 0, sizeof(*st));
	if (!pu || !kcrypto_memeq(pu->sign_pk, u->sign_pk, 32)) {
		kerr_set(ei, dest, "the signer's key is not the policy's key of '%s'", u->id);
		return -EACCES;
	}
	if ((r = kmkdirs_at(AT_FDCWD, dest, 0700)) != 0 && r != -EEXIST) {
		kerr_set(ei, dest, "cannot create: %s", strerror(-r));
		return r;
	}
	if ((dfd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		r = -errno;
		kerr_set(ei, dest, "cannot open: %s", strerror(-r));
		return r;
	}
	if (mkdirat(dfd, KBACKUP_OBJECTS, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		kerr_set(ei, dest, "cannot create objects/: %s", strerror(-r));
		goto out;
	}
	if ((r = walk(vfd, "", &l, 0)) != 0) {
		kerr_set(ei, "vault", "cannot list the vault: %s", strerror(-r));
		goto out;
	}
	qsort(l.e, l.n, sizeof(*l.e), cmp_ent);
	for (size_t i = 0; i < l.n; i++)
		if (l.e[i].type == 'f') {
			total += l.e[i].size;
			nf++;
		}
	prev = load_prev(dfd, p);
	if (!(buf = malloc(CHUNK))) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < l.n; i++) {
		struct ent *e = &l.e[i];
		json_t *pe;
		const char *psha;
		uint64_t size;
		int fd;

		if (e->type != 'f')
			continue;
		fi++;
		/* unchanged since the last backup (size, mtime, object present): not read */
		pe = prev ? prev_find(prev, e->path) : NULL;
		if (pe && (psha = json_string_value(json_object_get(pe, "sha256"))) &&
		    strlen(psha) == 64 &&
		    json_integer_value(json_object_get(pe, "size")) == (json_int_t)e->size &&
		    json_integer_value(json_object_get(pe, "mtime_ns")) == e->mtime_ns &&
		    obj_present(dfd, psha, e->size)) {
			memcpy(e->sha, psha, 65);
			done += e->size;
			tick(pr, done, total, fi, nf);
			continue;
		}
		if ((fd = openat(vfd, e->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
			r = -errno;
			if (r == -ENOENT) { /* vanished: leave it out */
				e->type = 'x';
				continue;
			}
			kerr_set(ei, e->path, "cannot read: %s", strerror(-r));
			goto out;
		}
		{
			uint64_t before = done;

			r = hash_fd(fd, e->sha, &size, NULL, &done, total, fi, nf, -1, buf);
			close(fd);
			st->read_files++;
			st->read_bytes += size;
			done = before;
		}
		if (r) {
			kerr_set(ei, e->path, "cannot read: %s", strerror(-r));
			goto out;
		}
		e->size = size;
		if (obj_present(dfd, e->sha, size)) {
			done += size;
			tick(pr, done, total, fi, nf);
			continue;
		}
		if ((r = copy_obj(vfd, e, dfd, dirty, pr, &done, total, fi, nf, buf, st)) != 0) {
			kerr_set(ei, e->path, "cannot copy: %s", r > -1000 ? strerror(-r) : kinko_strerror(r));
			goto out;
		}
	}
	for (int i = 0; i < 256; i++)
		if (dirty[i]) {
			char sub[16];
			int sfd;

			snprintf(sub, sizeof(sub), KBACKUP_OBJECTS "/%02x", i);
			if ((sfd = openat(dfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
				fsync(sfd);
				close(sfd);
			}
		}
	/* the manifest */
	arr = json_array();
	for (size_t i = 0; i < l.n; i++) {
		const struct ent *e = &l.e[i];

		if (e->type == 'x')
			continue;
		json_array_append_new(arr, ent_json(e));
		if (e->type == 'f') {
			st->files++;
			st->bytes += e->size;
		} else if (e->type == 'd') {
			st->dirs++;
		} else if (e->type == 'l') {
			st->symlinks++;
		}
	}
	khex_encode(vid, p->vault_id, 16);
	khex_encode(pkhex, u->sign_pk, 32);
	{
		struct timespec ts;
		int64_t now_ms;

		clock_gettime(CLOCK_REALTIME, &ts);
		now_ms = getenv("KINKO_TEST_NOW") ? ktime_now() * 1000
						  : (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
		ktime_iso(st->created, sizeof(st->created), now_ms / 1000);
		man = json_pack("{s:s,s:s,s:s,s:s,s:I,s:s,s:s,s:I,s:I,s:I,s:I,s:o}", "format",
				KBACKUP_FORMAT, "vault_id", vid, "medium", medium, "created",
				st->created, "created_ms", (json_int_t)now_ms, "signer", u->id,
				"signer_pk", pkhex, "files_count", (json_int_t)st->files, "bytes",
				(json_int_t)st->bytes, "copied_files", (json_int_t)st->copied_files,
				"copied_bytes", (json_int_t)st->copied_bytes, "files", arr);
	}
	arr = NULL;
	if (!man || !(txt = json_dumps(man, JSON_INDENT(1) | JSON_PRESERVE_ORDER))) {
		r = -ENOMEM;
		goto out;
	}
	tlen = strlen(txt);
	if (!(full = malloc(tlen + 1 + SIG_TAIL + 1))) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(full, txt, tlen);
	full[tlen++] = '\n';
	if ((r = kcrypto_sign(sig, (uint8_t *)full, tlen, u->sign_sk)) != 0)
		goto out;
	khex_encode(hex, sig, 64);
	tlen += (size_t)sprintf(full + tlen, "ed25519:%s\n", hex);
	if ((r = kfile_replace_at(dfd, KBACKUP_MANIFEST, full, tlen, 0600)) != 0) {
		kerr_set(ei, dest, "cannot write the manifest: %s", strerror(-r));
		goto out;
	}
	kcrypto_sha256(d, (uint8_t *)full, tlen);
	khex_encode(st->manifest_sha256, d, 32);
	snprintf(st->signer, sizeof(st->signer), "%s", u->id);
	snprintf(st->medium, sizeof(st->medium), "%s", medium);
	memcpy(st->vault_id, vid, sizeof(vid));
	st->removed_objects = gc(dfd, &l);
	r = 0;
out:
	free(buf);
	free(txt);
	free(full);
	json_decref(arr);
	json_decref(man);
	json_decref(prev);
	list_free(&l);
	close(dfd);
	return r;
}

/* ---- verify ---- */
struct vctx {
	kbackup_problem_fn problem;
	void *ctx;
	size_t *problems;
};

static void report(struct vctx *c, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void report(struct vctx *c, const char *path, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	(*c->problems)++;
	if (c->problem)
		c->problem(c->ctx, path, msg);
}

/* read an object whole (small files: header, policy) after checking its hash */
static int read_obj(int dfd, json_t *e, uint8_t **out, size_t *len)
{
	const char *sha = json_string_value(json_object_get(e, "sha256"));
	char name[128], hex[65];
	uint8_t d[32];
	int r;

	if (!sha || strlen(sha) != 64 || strspn(sha, "0123456789abcdef") != 64)
		return KERR_FORMAT;
	obj_name(name, sizeof(name), sha);
	if ((r = kfile_read_at(dfd, name, 16u << 20, out, len)) != 0)
		return r;
	kcrypto_sha256(d, *out, *len);
	khex_encode(hex, d, 32);
	if (strcmp(hex, sha) != 0) {
		free(*out);
		*out = NULL;
		return KERR_AUTH;
	}
	return 0;
}


/* the signer must be an active backup (or admin) user of the newest policy
 * inside the backup, with the manifest's key; the policy and the vault header
 * are read from the backup's objects and checked in memory */
static int check_signer(int dfd, json_t *man, const uint8_t *text, size_t slen,
			const uint8_t sig[64], struct vctx *c, struct kerrinfo *ei)
{
	json_t *files = json_object_get(man, "files"), *e, *newest = NULL;
	const char *signer = json_string_value(json_object_get(man, "signer"));
	const char *pkhex = json_string_value(json_object_get(man, "signer_pk"));
	const char *vid = json_string_value(json_object_get(man, "vault_id"));
	struct kformat_vault hdr;
	struct kpolicy *pol = NULL;
	const struct kpolicy_user *pu;
	uint8_t pk[32], id[16], *buf = NULL;
	unsigned long long serial = 0;
	struct kerrinfo pe = { "", "" };
	size_t i, len;
	bool hdr_ok = false;
	int r;

	if (!signer || !pkhex || !vid || khex_decode(pk, 32, pkhex) || khex_decode(id, 16, vid)) {
		kerr_set(ei, KBACKUP_MANIFEST, "manifest lacks signer, signer_pk or vault_id");
		return KERR_FORMAT;
	}
	if (kcrypto_verify(sig, text, slen, pk) != 0) {
		kerr_set(ei, KBACKUP_MANIFEST, "the manifest's signature does not verify (edited)");
		return KERR_AUTH;
	}
	json_array_foreach(files, i, e) {
		const char *p = json_string_value(json_object_get(e, "path"));
		const char *t = json_string_value(json_object_get(e, "type"));
		unsigned long long v;
		int n = 0;

		if (!p || !t || strcmp(t, "f"))
			continue;
		if (strcmp(p, KFORMAT_VAULT_FILE) == 0) {
			if (read_obj(dfd, e, &buf, &len) != 0)
				continue; /* reported by the hash pass */
			hdr_ok = kformat_vault_parse(buf, len, &hdr) == 0;
			free(buf);
			buf = NULL;
		} else if (sscanf(p, "policy/policy.%llu%n", &v, &n) == 1 && p[n] == 0 && v > serial) {
			serial = v;
			newest = e;
		}
	}
	if (!hdr_ok || memcmp(hdr.vault_id, id, 16) != 0) {
		report(c, KFORMAT_VAULT_FILE, "vault header missing, damaged or of another vault: "
			  "the signer cannot be checked against the policy");
		return 0;
	}
	if (!newest || read_obj(dfd, newest, &buf, &len) != 0 || len > KPOLICY_FILE_MAX ||
	    (r = kpolicy_open(buf, len, serial, hdr.vault_id, hdr.root_pk, "policy/", &pol, &pe)) != 0) {
		report(c, "policy/", "the policy in the backup does not load (%s): the signer cannot "
			  "be checked", pe.detail[0] ? pe.detail : "missing or damaged");
		free(buf);
		return 0;
	}
	free(buf);
	pu = kpolicy_user_find(pol, signer);
	r = 0;
	if (!pu || !pu->active || (pu->role != KROLE_BACKUP && pu->role != KROLE_ADMIN) ||
	    !kcrypto_memeq(pu->sign_pk, pk, 32)) {
		kerr_set(ei, KBACKUP_MANIFEST,
			 "signer '%s' is not an active backup user of the backed-up policy with this key",
			 signer);
		r = KERR_AUTH;
	}
	kpolicy_free(pol);
	return r;
}

/* load and check the manifest; *out = parsed JSON */
static int manifest_load(int dfd, json_t **out, struct vctx *c, struct kbackup_stats *st,
			 struct kerrinfo *ei)
{
	uint8_t *buf = NULL, sig[64];
	size_t len, slen;
	json_error_t jerr;
	json_t *j = NULL;
	const char *s;
	int r;

	*out = NULL;
	if ((r = kfile_read_at(dfd, KBACKUP_MANIFEST, KBACKUP_MANIFEST_MAX, &buf, &len)) != 0) {
		kerr_set(ei, KBACKUP_MANIFEST, r == -ENOENT ? "no manifest: not a kinko backup" :
			 r == -EFBIG ? "manifest too large" : "%s", strerror(-r));
		return r == -EFBIG ? KERR_FORMAT : r;
	}
	if ((r = kbackup_manifest_split(buf, len, &slen, sig)) != 0) {
		kerr_set(ei, KBACKUP_MANIFEST, "no signature line (truncated or edited)");
		goto out;
	}
	if (!(j = json_loadb((const char *)buf, slen, JSON_REJECT_DUPLICATES, &jerr)) ||
	    !json_is_object(j) || !(s = json_string_value(json_object_get(j, "format"))) ||
	    strcmp(s, KBACKUP_FORMAT) || !json_is_array(json_object_get(j, "files"))) {
		kerr_set(ei, KBACKUP_MANIFEST, "not a %s manifest%s%s", KBACKUP_FORMAT,
			 j ? "" : ": ", j ? "" : jerr.text);
		r = KERR_FORMAT;
		goto out;
	}
	if ((r = check_signer(dfd, j, buf, slen, sig, c, ei)) != 0)
		goto out;
	snprintf(st->signer, sizeof(st->signer), "%s", json_string_value(json_object_get(j, "signer")));
	if ((s = json_string_value(json_object_get(j, "medium"))))
		snprintf(st->medium, sizeof(st->medium), "%s", s);
	if ((s = json_string_value(json_object_get(j, "created"))))
		snprintf(st->created, sizeof(st->created), "%s", s);
	if ((s = json_string_value(json_object_get(j, "vault_id"))))
		snprintf(st->vault_id, sizeof(st->vault_id), "%s", s);
	{
		uint8_t d[32];

		kcrypto_sha256(d, buf, len);
		khex_encode(st->manifest_sha256, d, 32);
	}
	*out = j;
	j = NULL;
out:
	json_decref(j);
	free(buf);
	return r;
}

static int entry_check(json_t *e, const char **path, char *type)
{
	const char *p = json_string_value(json_object_get(e, "path"));
	const char *t = json_string_value(json_object_get(e, "type"));

	if (!json_is_object(e) || !p || !kbackup_path_valid(p) || !t || strlen(t) != 1 ||
	    !strchr("fdlpscb", t[0]) || !json_is_integer(json_object_get(e, "mode")))
		return KERR_FORMAT;
	if (t[0] == 'f') {
		const char *sha = json_string_value(json_object_get(e, "sha256"));
		json_t *sz = json_object_get(e, "size");

		if (!sha || strlen(sha) != 64 || strspn(sha, "0123456789abcdef") != 64 ||
		    !json_is_integer(sz) || json_integer_value(sz) < 0)
			return KERR_FORMAT;
	}
	if (t[0] == 'l') {
		const char *tg = json_string_value(json_object_get(e, "target"));

		if (!tg || !*tg || strlen(tg) >= PATH_MAX)
			return KERR_FORMAT;
	}
	if ((t[0] == 'c' || t[0] == 'b') && !json_is_integer(json_object_get(e, "rdev")))
		return KERR_FORMAT;
	*path = p;
	*type = t[0];
	return 0;
}

static int verify_dfd(int dfd, json_t **manp, kbackup_problem_fn problem, void *ctx,
		      const struct kbackup_progress *pr, struct kbackup_stats *st, size_t *problems,
		      struct kerrinfo *ei)
{
	struct vctx c = { problem, ctx, problems };
	json_t *man = NULL, *files, *e;
	uint8_t *buf = NULL;
	uint64_t total = 0, done = 0, nf = 0, fi = 0;
	const char *prevpath = NULL;
	size_t i;
	int r;

	memset(st, 0, sizeof(*st));
	*problems = 0;
	if ((r = manifest_load(dfd, &man, &c, st, ei)) != 0)
		return r;
	files = json_object_get(man, "files");
	json_array_foreach(files, i, e) {
		json_t *sz = json_object_get(e, "size");

		if (json_is_integer(sz) && json_integer_value(sz) > 0) {
			total += (uint64_t)json_integer_value(sz);
			nf++;
		}
	}
	if (!(buf = malloc(CHUNK))) {
		r = -ENOMEM;
		goto out;
	}
	json_array_foreach(files, i, e) {
		const char *path, *sha;
		char type, name[128], hex[65];
		uint64_t size, want;
		struct stat sb;
		int fd;

		if (entry_check(e, &path, &type) != 0) {
			char where[64];

			snprintf(where, sizeof(where), "%s entry %zu", KBACKUP_MANIFEST, i + 1);
			report(&c, where, "malformed entry");
			continue;
		}
		if (prevpath && strcmp(prevpath, path) >= 0)
			report(&c, path, "listed twice or out of order in the manifest");
		prevpath = path;
		if (type != 'f')
			continue;
		fi++;
		sha = json_string_value(json_object_get(e, "sha256"));
		want = (uint64_t)json_integer_value(json_object_get(e, "size"));
		obj_name(name, sizeof(name), sha);
		if ((fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
			report(&c, path, "missing from the backup (%s)", name);
			done += want;
			continue;
		}
		if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
			report(&c, path, "not a regular file in the backup (%s)", name);
			close(fd);
			continue;
		}
		r = hash_fd(fd, hex, &size, pr, &done, total, fi, nf, -1, buf);
		close(fd);
		if (r) {
			report(&c, path, "unreadable (%s): %s", name, strerror(-r));
			continue;
		}
		if (size != want)
			report(&c, path, "size %llu, manifest says %llu: truncated or edited (%s)",
			       (unsigned long long)size, (unsigned long long)want, name);
		else if (strcmp(hex, sha) != 0)
			report(&c, path, "hash differs from the manifest: edited (%s)", name);
		st->files++;
		st->bytes += want;
	}
	tick(pr, total, total, nf, nf);
	r = 0;
	if (manp) {
		*manp = man;
		man = NULL;
	}
out:
	free(buf);
	json_decref(man);
	return r;
}

int kbackup_verify(const char *dir, kbackup_problem_fn problem, void *ctx,
		   const struct kbackup_progress *pr, struct kbackup_stats *st, size_t *problems,
		   struct kerrinfo *ei)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r;

	*problems = 0;
	if (dfd < 0) {
		r = -errno;
		kerr_set(ei, dir, "%s", strerror(-r));
		return r;
	}
	r = verify_dfd(dfd, NULL, problem, ctx, pr, st, problems, ei);
	close(dfd);
	return r;
}

/* parent directory of path under root, created as needed, never through a symlink */
static int open_parent(int root, const char *path, const char **leaf)
{
	char comp[NAME_MAX + 1];
	const char *c = path, *s;
	int fd = dup(root);

	if (fd < 0)
		return -errno;
	while ((s = strchr(c, '/'))) {
		size_t n = (size_t)(s - c);
		int nfd;

		memcpy(comp, c, n);
		comp[n] = 0;
		if (mkdirat(fd, comp, 0700) < 0 && errno != EEXIST) {
			close(fd);
			return -errno;
		}
		nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		if (nfd < 0)
			return -errno;
		fd = nfd;
		c = s + 1;
	}
	*leaf = c;
	return fd;
}

int kbackup_remove_tree(const char *path)
{
	return krmtree_at(AT_FDCWD, path, NULL, NULL);
}

static void restore_problem(void *ctx, const char *path, const char *problem)
{
	struct kerrinfo *ei = ctx;

	if (ei && !ei->detail[0])
		kerr_set(ei, path, "%s", problem);
}

/* Symlinks restored so far whose target is in a side file (kinko.lt:...):
 * hard links of one symlink share the side file, and the manifest lists each
 * name as a symlink of its own; restored as separate symlinks, removing one
 * would take the others' side file. The second name is a hard link again. */
struct lt_seen {
	const char **target, **path; /* strings of the manifest */
	size_t n, cap;
};

static int restore_symlink(struct lt_seen *lt, int vfd, const char *path, int pfd, const char *leaf,
			   const char *target)
{
	if (!kformat_symlink_is_ref(target))
		return symlinkat(target, pfd, leaf) < 0 ? -errno : 0;
	for (size_t k = 0; k < lt->n; k++)
		if (!strcmp(lt->target[k], target))
			return linkat(vfd, lt->path[k], pfd, leaf, 0) < 0 ? -errno : 0;
	if (lt->n == lt->cap) {
		size_t cap = lt->cap ? 2 * lt->cap : 16;
		const char **t = realloc(lt->target, cap * sizeof(*t)), **p;

		if (!t)
			return -ENOMEM;
		lt->target = t;
		if (!(p = realloc(lt->path, cap * sizeof(*p))))
			return -ENOMEM;
		lt->path = p;
		lt->cap = cap;
	}
	if (symlinkat(target, pfd, leaf) < 0)
		return -errno;
	lt->target[lt->n] = target;
	lt->path[lt->n++] = path;
	return 0;
}

int kbackup_restore(const char *dir, const char *newvault, const struct kbackup_progress *pr,
		    struct kbackup_stats *st, struct kerrinfo *ei)
{
	json_t *man = NULL, *files, *e;
	struct lt_seen lt = { 0 };
	uint8_t *buf = NULL;
	uint64_t total, done = 0, fi = 0, nf;
	size_t problems = 0, i;
	int dfd = -1, vfd = -1, r;
	bool created = false;

	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		r = -errno;
		kerr_set(ei, dir, "%s", strerror(-r));
		return r;
	}
	if ((r = verify_dfd(dfd, &man, restore_problem, ei, NULL, st, &problems, ei)) != 0)
		goto out;
	if (problems) {
		r = KERR_AUTH;
		goto out; /* ei names the first bad file */
	}
	if (mkdir(newvault, 0700) == 0) {
		created = true;
	} else if (errno != EEXIST) {
		r = -errno;
		kerr_set(ei, newvault, "cannot create: %s", strerror(-r));
		goto out;
	}
	if ((vfd = open(newvault, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		r = -errno;
		kerr_set(ei, newvault, "%s", strerror(-r));
		goto out;
	}
	{
		DIR *d = fdopendir(dup(vfd));
		struct dirent *de;
		bool empty = true;

		while (d && (de = readdir(d)))
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				empty = false;
		if (d)
			closedir(d);
		if (!empty) {
			kerr_set(ei, newvault, "exists and is not empty");
			r = KERR_EXISTS;
			goto out;
		}
	}
	created = true;
	if (!(buf = malloc(CHUNK))) {
		r = -ENOMEM;
		goto out;
	}
	files = json_object_get(man, "files");
	total = st->bytes;
	nf = st->files;
	json_array_foreach(files, i, e) {
		const char *path, *leaf = NULL;
		char type, name[128], hex[65];
		int pfd, in = -1, out = -1;
		uint64_t size;

		if (entry_check(e, &path, &type) != 0)
			continue; /* cannot happen: verified */
		if ((pfd = open_parent(vfd, path, &leaf)) < 0) {
			r = pfd;
			kerr_set(ei, path, "cannot create its directory: %s", strerror(-r));
			goto out;
		}
		if (type == 'd') {
			r = mkdirat(pfd, leaf, 0700) < 0 && errno != EEXIST ? -errno : 0;
		} else if (type == 'l') {
			r = restore_symlink(&lt, vfd, path, pfd, leaf,
					    json_string_value(json_object_get(e, "target")));
		} else if (type != 'f') {
			mode_t m = (mode_t)json_integer_value(json_object_get(e, "mode")) & 07777;
			mode_t fmt = type == 'p' ? S_IFIFO : type == 's' ? S_IFSOCK :
				     type == 'c' ? S_IFCHR : S_IFBLK;

			r = mknodat(pfd, leaf, fmt | (m & 0777),
				    (dev_t)json_integer_value(json_object_get(e, "rdev"))) < 0 ? -errno : 0;
		} else {
			fi++;
			obj_name(name, sizeof(name), json_string_value(json_object_get(e, "sha256")));
			if ((in = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
			    (out = openat(pfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
					  0600)) < 0) {
				r = -errno;
			} else {
				r = hash_fd(in, hex, &size, pr, &done, total, fi, nf, out, buf);
				if (!r && strcmp(hex, json_string_value(json_object_get(e, "sha256"))))
					r = KERR_AUTH; /* changed since verification */
				if (!r && fsync(out) < 0)
					r = -errno;
				if (!r) {
					int64_t ns = json_integer_value(json_object_get(e, "mtime_ns"));
					struct timespec ts[2] = { { ns / 1000000000LL, ns % 1000000000LL },
								  { ns / 1000000000LL, ns % 1000000000LL } };

					fchmod(out, (mode_t)json_integer_value(json_object_get(e, "mode")) & 0777);
					futimens(out, ts);
				}
			}
			if (in >= 0)
				close(in);
			if (out >= 0)
				close(out);
		}
		close(pfd);
		if (r) {
			kerr_set(ei, path, "cannot restore: %s", r > -1000 ? strerror(-r) : kinko_strerror(r));
			goto out;
		}
	}
	/* directory modes last (a read-only directory would refuse its files) */
	json_array_foreach(files, i, e) {
		const char *path;
		char type;

		if (entry_check(e, &path, &type) == 0 && type == 'd')
			fchmodat(vfd, path, (mode_t)json_integer_value(json_object_get(e, "mode")) & 0777,
				 0);
	}
	fsync(vfd);
	r = 0;
out:
	if (r && created && vfd >= 0) {
		/* leave nothing half-restored behind */
		close(vfd);
		vfd = -1;
		krmtree_at(AT_FDCWD, newvault, NULL, NULL);
	}
	free(buf);
	free(lt.target);
	free(lt.path);
	json_decref(man);
	if (vfd >= 0)
		close(vfd);
	close(dfd);
	return r;
}

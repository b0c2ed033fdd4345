// SPDX-License-Identifier: GPL-2.0-or-later
/* Creating, opening and unlocking a vault. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kinko/vault.h"

static int dir_is_empty(int fd)
{
	int dup_fd = dup(fd);
	DIR *d;
	struct dirent *de;
	int empty = 1;

	if (dup_fd < 0)
		return -errno;
	d = fdopendir(dup_fd);
	if (!d) {
		close(dup_fd);
		return -errno;
	}
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			empty = 0;
			break;
		}
	closedir(d);
	return empty;
}

/* create data/<comp>/ with its directory IV file */
static int comp_dir_create(int vfd, const uint8_t comp[16], const struct kformat_epoch_keys *k)
{
	struct kformat_diriv d;
	uint8_t buf[KFORMAT_DIRIV_LEN];
	char hex[33], path[64];
	int r;

	khex_encode(hex, comp, 16);
	snprintf(path, sizeof(path), "data/%s", hex);
	if (mkdirat(vfd, path, 0700) < 0)
		return -errno;
	memset(&d, 0, sizeof(d));
	d.epoch = k->epoch;
	kcrypto_random(d.iv, 16);
	if ((r = kformat_binding(d.bind, comp, hex)) != 0 ||
	    (r = kformat_diriv_serialize(&d, k, buf)) != 0)
		return r;
	snprintf(path, sizeof(path), "data/%s/" KFORMAT_DIRIV_NAME, hex);
	return kfile_create_at(vfd, path, buf, sizeof(buf), 0400);
}

int kvault_init(const char *path, const struct kvault_init_opts *o, struct kerrinfo *ei)
{
	struct kformat_vault hdr;
	struct kkeys_user *u = NULL;
	struct kpolicy *p = NULL;
	struct kpolicy_user pu;
	struct kformat_epoch_keys *ek = NULL;
	uint8_t *root_seed = NULL, *root_sk = NULL, *epoch_key = NULL, comp[16], cm[32];
	uint8_t hbuf[KFORMAT_VAULT_LEN];
	int vfd = -1, r;

	if (!kuser_id_valid(o->user)) {
		kerr_set(ei, o->user, "not a valid user id (use a-z, 0-9, '.', '_', '-'; at most 32)");
		return KERR_USAGE;
	}
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		kerr_set(ei, path, NULL);
		return r;
	}
	vfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (vfd < 0) {
		r = -errno;
		kerr_set(ei, path, NULL);
		return r;
	}
	if (faccessat(vfd, KFORMAT_VAULT_FILE, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		r = KERR_EXISTS;
		kerr_set(ei, path, "a vault already exists here; nothing changed");
		goto out;
	}
	if ((r = dir_is_empty(vfd)) <= 0) {
		r = r < 0 ? r : -ENOTEMPTY;
		kerr_set(ei, path, "directory is not empty; kinko init needs a new or empty directory");
		goto out;
	}
	r = -ENOMEM;
	if (!(u = kkeys_user_alloc()) || !(root_seed = ksecmem_alloc(32)) ||
	    !(root_sk = ksecmem_alloc(64)) || !(epoch_key = ksecmem_alloc(32)) ||
	    !(ek = ksecmem_alloc(sizeof(*ek))))
		goto out;
	memset(&hdr, 0, sizeof(hdr));
	kcrypto_random(hdr.vault_id, 16);
	hdr.suite = (uint8_t)o->suite;
	hdr.created = ktime_now();
	kcrypto_random(root_seed, 32);
	if ((r = kcrypto_sign_seed_keypair(hdr.root_pk, root_sk, root_seed)) != 0 ||
	    (r = kkeys_user_generate(u, o->user)) != 0)
		goto out;
	if (mkdirat(vfd, "policy", 0755) < 0 || mkdirat(vfd, "keys", 0755) < 0 ||
	    mkdirat(vfd, "grants", 0755) < 0 || mkdirat(vfd, "data", 0700) < 0) {
		r = -errno;
		kerr_set(ei, path, NULL);
		goto out;
	}
	if ((r = kkeys_keyfile_write(vfd, hdr.vault_id, hdr.root_pk, u, o->pw, o->pwlen, &o->kdf,
				     false, ei)) != 0 ||
	    (r = kkeys_root_seal(vfd, u->id, u->box_pk, root_seed, ei)) != 0)
		goto out;
	/* the first compartment, epoch 1 */
	kcrypto_random(comp, 16);
	kcrypto_random(epoch_key, 32);
	if ((r = kformat_epoch_keys_derive(ek, 1, epoch_key)) != 0 ||
	    (r = kformat_epoch_commitment(cm, epoch_key, hdr.vault_id, comp, 1)) != 0)
		goto out;
	if ((r = comp_dir_create(vfd, comp, ek)) != 0) {
		kerr_set(ei, "data/", NULL);
		goto out;
	}
	r = -ENOMEM;
	if (!(p = kpolicy_new(hdr.vault_id)))
		goto out;
	p->serial = 1;
	memset(&pu, 0, sizeof(pu));
	snprintf(pu.id, sizeof(pu.id), "%s", u->id);
	pu.role = KROLE_ADMIN;
	pu.active = true;
	memcpy(pu.box_pk, u->box_pk, 32);
	memcpy(pu.sign_pk, u->sign_pk, 32);
	pu.created = pu.password_changed = ktime_now();
	if ((r = kpolicy_user_add(p, &pu)) != 0 ||
	    (r = kpolicy_comp_add(p, comp, o->compartment, o->klass)) != 0 ||
	    (r = kpolicy_epoch_add(&p->comps[0], 1, cm, ktime_now())) != 0 ||
	    (r = kpolicy_grant_set(p, u->id, comp, false)) != 0)
		goto out;
	if ((r = kkeys_grant_write(vfd, hdr.vault_id, comp, 1, u->id, u->box_pk, epoch_key, ei)) != 0 ||
	    (r = kpolicy_store(vfd, p, u->id, u->sign_sk, root_sk, ei)) != 0)
		goto out;
	/* the header last: its presence marks a complete vault */
	if ((r = kformat_vault_serialize(&hdr, root_sk, hbuf)) != 0)
		goto out;
	if ((r = kfile_create_at(vfd, KFORMAT_VAULT_FILE, hbuf, sizeof(hbuf), 0644)) != 0)
		kerr_set(ei, KFORMAT_VAULT_FILE, NULL);
out:
	kpolicy_free(p);
	kkeys_user_free(u);
	ksecmem_free(root_seed);
	ksecmem_free(root_sk);
	ksecmem_free(epoch_key);
	ksecmem_free(ek);
	if (vfd >= 0)
		close(vfd);
	return r;
}

int kvault_open(const char *path, struct kvault **out, struct kerrinfo *ei)
{
	struct kvault *v = calloc(1, sizeof(*v));
	uint8_t *buf = NULL;
	size_t len;
	char where[4200];
	int r;

	*out = NULL;
	if (!v)
		return -ENOMEM;
	v->vfd = v->datafd = -1;
	v->path = realpath(path, NULL);
	if (!v->path && errno != ENOENT && errno != ENOTDIR)
		v->path = strdup(path);
	snprintf(where, sizeof(where), "%s/%s", path, KFORMAT_VAULT_FILE);
	v->vfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (v->vfd < 0 || !v->path) {
		r = v->vfd < 0 ? -errno : -ENOMEM;
		kerr_set(ei, path, r == -ENOENT ? "no such vault directory" : NULL);
		goto out;
	}
	if ((r = kfile_read_at(v->vfd, KFORMAT_VAULT_FILE, 4096, &buf, &len)) != 0) {
		kerr_set(ei, where, r == -ENOENT ? "not a kinko vault (no kinko.vault)" :
			 r == -EFBIG ? "vault header too large (corrupt)" : NULL);
		if (r == -EFBIG)
			r = KERR_FORMAT;
		goto out;
	}
	if ((r = kformat_vault_parse(buf, len, &v->hdr)) != 0) {
		kerr_set(ei, where, "%s", r == KERR_VERSION ?
			 "vault format is newer than this kinko; upgrade kinko" :
			 r == KERR_AUTH ? "vault header signature does not verify (corrupt or edited)" :
			 "vault header is corrupt");
		goto out;
	}
	if ((r = kformat_geom_init(&v->geom, v->hdr.suite)) != 0)
		goto out;
	v->datafd = openat(v->vfd, "data", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (v->datafd < 0) {
		r = -errno;
		kerr_set(ei, "data/", NULL);
		goto out;
	}
	*out = v;
	v = NULL;
	r = 0;
out:
	free(buf);
	kvault_close(v);
	return r;
}

int kvault_unlock_user(struct kvault *v, const char *user, const char *pw, size_t pwlen,
		       struct kerrinfo *ei)
{
	kkeys_user_free(v->user);
	v->user = NULL;
	return kkeys_unlock(v->vfd, v->hdr.vault_id, v->hdr.root_pk, user, pw, pwlen, &v->user, ei);
}

int kvault_unlock(struct kvault *v, const char *user, const char *pw, size_t pwlen,
		  struct kerrinfo *ei)
{
	struct kpolicy_user *pu;
	int r;

	if ((r = kvault_unlock_user(v, user, pw, pwlen, ei)) != 0)
		return r;
	kpolicy_free(v->policy);
	v->policy = NULL;
	if ((r = kpolicy_load(v->vfd, v->hdr.vault_id, v->hdr.root_pk, &v->policy, ei)) != 0)
		return r;
	pu = kpolicy_user_find(v->policy, user);
	if (!pu) {
		kerr_set(ei, "policy/", "user '%s' is not in the signed policy", user);
		return KERR_NOUSER;
	}
	if (!kcrypto_memeq(pu->box_pk, v->user->box_pk, 32) ||
	    !kcrypto_memeq(pu->sign_pk, v->user->sign_pk, 32)) {
		char kp[96];

		snprintf(kp, sizeof(kp), "keys/%s.key", user);
		kerr_set(ei, kp, "key file does not match the user's keys in the signed policy (replaced key file)");
		return KERR_MISMATCH;
	}
	if (!pu->active) {
		kerr_set(ei, "policy/", "user '%s' is disabled", user);
		return -EACCES;
	}
	kkeys_ring_free(v->ring);
	v->ring = NULL;
	return kkeys_ring_load(v->vfd, v->policy, v->user, &v->ring, ei);
}

int kvault_passwd(struct kvault *v, const char *newpw, size_t newlen, struct kerrinfo *ei)
{
	struct kkdf_params kdf;

	if (!v->user)
		return KERR_USAGE;
	kkeys_kdf_default(&kdf);
	return kkeys_keyfile_write(v->vfd, v->hdr.vault_id, v->hdr.root_pk, v->user, newpw, newlen,
				   &kdf, true, ei);
}

void kvault_relock(struct kvault *v)
{
	if (!v)
		return;
	ksecmem_relock(v->user, sizeof(*v->user));
	if (v->ring)
		ksecmem_relock(v->ring->arena, v->ring->arena_len);
}

void kvault_close(struct kvault *v)
{
	if (!v)
		return;
	kkeys_ring_free(v->ring);
	kkeys_user_free(v->user);
	kpolicy_free(v->policy);
	if (v->datafd >= 0)
		close(v->datafd);
	if (v->vfd >= 0)
		close(v->vfd);
	free(v->path);
	free(v);
}

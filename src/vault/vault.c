// SPDX-License-Identifier: GPL-2.0-or-later
/* Creating, opening and unlocking a vault. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <time.h>

#include "kinko/lifecycle.h"
#include "kinko/takeout.h"
#include "kinko/vault.h"
#include "kinko/x509.h"

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
int kvault_comp_dir_create(int vfd, const uint8_t comp[16], const struct kformat_epoch_keys *k)
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
	struct kkeys_wrap wrap;
	struct kformat_epoch_keys *ek = NULL;
	uint8_t *root_seed = NULL, *root_sk = NULL, *epoch_key = NULL, comp[16], cm[32];
	uint8_t hbuf[KFORMAT_VAULT_LEN];
	int vfd = -1, r;

	if (!kuser_id_valid(o->user)) {
		kerr_set(ei, o->user, "not a valid user id (use a-z, 0-9, '.', '_', '-'; at most 32)");
		return KERR_USAGE;
	}

	/* every refusal comes before the first change on disk */
	vfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (vfd < 0 && errno != ENOENT) {
		r = -errno;
		kerr_set(ei, path, NULL);
		return r;
	}
	if (vfd >= 0 && faccessat(vfd, KFORMAT_VAULT_FILE, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		r = KERR_EXISTS;
		kerr_set(ei, path, "a vault already exists here; nothing changed");
		goto out;
	}
	if (vfd >= 0 && (r = dir_is_empty(vfd)) <= 0) {
		r = r < 0 ? r : -ENOTEMPTY;
		kerr_set(ei, path, "directory is not empty; kinko init needs a new or empty directory");
		goto out;
	}
	if (kpolicy_id_forbidden(NULL, o->user)) {
		r = KERR_POLICY;
		kerr_set(ei, o->user, "looks like a shared or default id; every person needs an id of their own (use --user)");
		goto out;
	}
	{
		/* the first password already follows the default rules */
		struct kpolicy *tp = kpolicy_new((const uint8_t *)"0123456789abcdef");
		char why[256];

		r = tp ? kpolicy_password_check(tp, o->user, o->pw, o->pwlen, NULL, 0, false, why,
						sizeof(why)) : -ENOMEM;
		kpolicy_free(tp);
		if (r) {
			kerr_set(ei, "password", "%s", r == KERR_POLICY ? why : kinko_strerror(r));
			goto out;
		}
	}
	if (vfd < 0) {
		if (mkdir(path, 0700) < 0 || (vfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
			r = -errno;
			kerr_set(ei, path, NULL);
			goto out;
		}
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
	memset(&wrap, 0, sizeof(wrap));
	wrap.kdf = o->kdf;
	wrap.pw_changed = ktime_now();
	if ((r = kkeys_keyfile_write(vfd, hdr.vault_id, hdr.root_pk, u, o->pw, o->pwlen, &wrap,
				     false, ei)) != 0 ||
	    (r = kkeys_root_seal(vfd, u->id, u->box_pk, root_seed, ei)) != 0)
		goto out;
	/* the first compartment, epoch 1 */
	kcrypto_random(comp, 16);
	kcrypto_random(epoch_key, 32);
	if ((r = kformat_epoch_keys_derive(ek, 1, epoch_key)) != 0 ||
	    (r = kformat_epoch_commitment(cm, epoch_key, hdr.vault_id, comp, 1)) != 0)
		goto out;
	if ((r = kvault_comp_dir_create(vfd, comp, ek)) != 0) {
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

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int rewrap(struct kvault *v, const char *oldpw, size_t oldlen, const char *newpw,
		  size_t newlen, struct kerrinfo *ei)
{
	struct kkeys_wrap w;
	char why[256];
	uint8_t *fsec = NULL;
	int r;

	if ((r = kpolicy_password_check(v->policy, v->user->id, newpw, newlen, oldpw, oldlen,
					 v->meta.cert != NULL, why, sizeof(why))) != 0) {
		kerr_set(ei, "new password", "%s", why);
		return r;
	}
	memset(&w, 0, sizeof(w));
	kkeys_kdf_default(&w.kdf);
	/* never lower a cost an administrator raised */
	if (v->meta.kdf.m_kib > w.kdf.m_kib)
		w.kdf.m_kib = v->meta.kdf.m_kib;
	if (v->meta.kdf.t_cost > w.kdf.t_cost)
		w.kdf.t_cost = v->meta.kdf.t_cost;
	if (v->meta.kdf.p_cost > w.kdf.p_cost)
		w.kdf.p_cost = v->meta.kdf.p_cost;
	w.pw_changed = ktime_now();
	if (v->meta.cert) {
		/* keep the certificate binding: a fresh factor secret sealed to it */
		if (!(fsec = ksecmem_alloc(KX509_SECRETBYTES)))
			return -ENOMEM;
		kcrypto_random(fsec, KX509_SECRETBYTES);
		free(v->meta.factor);
		v->meta.factor = NULL;
		if ((r = kx509_seal(v->meta.cert, v->meta.certlen, fsec, &v->meta.factor,
				    &v->meta.factorlen, ei)) != 0)
			goto out;
		w.cert = v->meta.cert;
		w.certlen = v->meta.certlen;
		w.factor_blob = v->meta.factor;
		w.bloblen = v->meta.factorlen;
		w.factor_secret = fsec;
	}
	if ((r = kkeys_keyfile_write(v->vfd, v->hdr.vault_id, v->hdr.root_pk, v->user, newpw, newlen,
				     &w, true, ei)) == 0) {
		v->meta.pw_changed = w.pw_changed;
		v->meta.enrolment = false;
	}
out:
	ksecmem_free(fsec);
	return r;
}

int kvault_unlock(struct kvault *v, const char *user, const char *pw, size_t pwlen,
		  const struct kvault_unlock_opts *o, struct kerrinfo *ei)
{
	struct kpolicy_settings set;
	struct kpolicy_user *pu;
	char kp[96];
	int r, fails = 0, age, days;

	snprintf(kp, sizeof(kp), "keys/%s.key", user);
	kpolicy_free(v->policy);
	v->policy = NULL;
	if ((r = kpolicy_load(v->vfd, v->hdr.vault_id, v->hdr.root_pk, &v->policy, ei)) != 0)
		return r;
	{
		/* a take-out vault opens only within its period (before the
		 * password is tried: no failure is counted) */
		struct ktakeout_info t;
		int64_t now = ktime_now();
		char when[32];

		r = kpolicy_takeout(v->policy, &t);
		if (r < 0) {
			kerr_set(ei, "policy/", "take-out settings of the policy are malformed");
			return r;
		}
		if (r == 1 && now < t.from) {
			ktime_iso(when, sizeof(when), t.from);
			kerr_set(ei, v->path, "take-out %s may be used from %s", t.id, when);
			return -EACCES;
		}
		if (r == 1 && now >= t.until) {
			ktime_iso(when, sizeof(when), t.until);
			kerr_set(ei, v->path, "take-out %s ended at %s; hand it back (kinko takeout close)",
				 t.id, when);
			return -EACCES;
		}
	}
	kpolicy_settings_get(v->policy, &set);
	pu = kpolicy_user_find(v->policy, user);
	if (!pu) {
		kerr_set(ei, "policy/", "user '%s' is not in the signed policy", user);
		return KERR_NOUSER;
	}
	if (!pu->active) {
		kerr_set(ei, "policy/", "user '%s' is disabled; an administrator can run kinko user enable %s",
			 user, user);
		return -EACCES;
	}
	/* failed unlocks: every attempt is counted first (so parallel guesses
	 * cannot slip past the limit) and taken back on success; a growing delay,
	 * then locked out on this workstation */
	r = kvault_state_failures(v->hdr.vault_id, user, pu->unlock_gen, 1, set.unlock_max_failures,
				  &fails);
	if (r == -EACCES) {
		kerr_set(ei, kp, "user '%s' is locked after %d failed unlocks on this workstation; an administrator must run kinko user enable %s",
			 user, fails, user);
		return -EACCES;
	}
	{
		char why[256];

		if (kvault_state_anomaly(v->hdr.vault_id, user, pu->unlock_gen, 0, why, sizeof(why)) == 1) {
			kvault_state_failures(v->hdr.vault_id, user, pu->unlock_gen, -1, 0, &fails);
			kerr_set(ei, kp, "user '%s' was locked on this workstation after an anomaly (%s); an administrator must run kinko user enable %s",
				 user, why, user);
			return -EACCES;
		}
	}
	if (fails && set.unlock_delay_ms) {
		long ms = (long)set.unlock_delay_ms << (fails - 1 < 5 ? fails - 1 : 5);

		sleep_ms(ms > 30000 ? 30000 : (int)ms);
	}
	kkeys_user_free(v->user);
	v->user = NULL;
	kkeys_meta_clear(&v->meta);
	r = kkeys_unlock(v->vfd, v->hdr.vault_id, v->hdr.root_pk, user, pw, pwlen,
			 o ? &o->factor : NULL, &v->user, &v->meta, ei);
	if (r == KERR_PASSWORD || r == KERR_FACTOR)
		return r; /* already counted */
	kvault_state_failures(v->hdr.vault_id, user, pu->unlock_gen, -1, 0, &fails);
	if (r)
		return r;
	/* the root key is authenticated now (it is in the key file's AD): the policy is */
	if ((r = kvault_state_check_serial(v->hdr.vault_id, v->policy->serial, ei)) != 0)
		return r;
	if (!kcrypto_memeq(pu->box_pk, v->user->box_pk, 32) ||
	    !kcrypto_memeq(pu->sign_pk, v->user->sign_pk, 32)) {
		kerr_set(ei, kp, "key file does not match the user's keys in the signed policy (replaced key file)");
		return KERR_MISMATCH;
	}
	if (pu->has_cert) {
		uint8_t fp[32], *ca = NULL;
		size_t calen;

		if (!v->meta.cert) {
			kerr_set(ei, kp, "the policy binds user '%s' to a certificate but the key file has none", user);
			return KERR_MISMATCH;
		}
		kx509_fingerprint(v->meta.cert, v->meta.certlen, fp);
		if (!kcrypto_memeq(fp, pu->cert_sha256, 32)) {
			kerr_set(ei, kp, "certificate in the key file differs from the one in the signed policy");
			return KERR_MISMATCH;
		}
		if (kpolicy_ca_cert(v->policy, &ca, &calen) != 0) {
			kerr_set(ei, "policy/", "no CA certificate in the policy to check second factors");
			return KERR_FACTOR;
		}
		r = kx509_verify(v->meta.cert, v->meta.certlen, ca, calen, ktime_now(), ei);
		free(ca);
		if (r) {
			if (ei && !ei->file[0])
				snprintf(ei->file, sizeof(ei->file), "%s", kp);
			return KERR_FACTOR;
		}
	}
	if (set.pw_mode == KPW_TWOFACTOR && !v->meta.cert) {
		kerr_set(ei, kp, "password.mode two-factor: user '%s' has no second factor (an administrator must bind a certificate)",
			 user);
		return KERR_POLICY;
	}
	/* enrolment secret, an expired password, or one the current rules no longer
	 * accept (mode or length changed): a new one first */
	age = v->meta.enrolment ? KERR_EXPIRED :
	      kpolicy_password_age(v->policy, v->meta.pw_changed, ktime_now(), &days);
	if (age != KERR_EXPIRED) {
		char why[256];

		if (kpolicy_password_check(v->policy, user, pw, pwlen, NULL, 0, v->meta.cert != NULL,
					   why, sizeof(why)) != 0) {
			if (!o || !o->newpw) {
				kerr_set(ei, kp, "the password of '%s' no longer meets the policy (%s): choose a new one",
					 user, why);
				return KERR_EXPIRED;
			}
			age = KERR_EXPIRED;
		}
	}
	if (age == KERR_EXPIRED || (o && o->newpw)) {
		if (!o || !o->newpw) {
			kerr_set(ei, kp, v->meta.enrolment ?
				 "first use: user '%s' must choose a new password (--new-password-file or the prompt)" :
				 "the password of '%s' has expired: choose a new one (--new-password-file or the prompt)",
				 user);
			return KERR_EXPIRED;
		}
		if ((r = rewrap(v, pw, pwlen, o->newpw, o->newlen, ei)) != 0)
			return r;
		age = 0;
	}
	v->pw_days_left = age == 1 ? days : 0;
	if (age == 1)
		snprintf(v->notice, sizeof(v->notice),
			 "warning: the password of '%s' expires in %d day(s); change it with kinko passwd",
			 user, days);
	if (!o || !o->need_grants)
		return 0;
	kkeys_ring_free(v->ring);
	v->ring = NULL;
	if ((r = kkeys_ring_load(v->vfd, v->policy, v->user, &v->ring, ei)) != 0)
		return r;
	/* compartments whose class needs a second factor stay closed without one */
	if (!v->meta.cert) {
		size_t kept = 0;

		for (size_t i = 0; i < v->ring->ncomps; i++) {
			if (set.second_factor_class[v->ring->comps[i].klass]) {
				log_notice("compartment '%s' (%s) requires a second factor: its keys stay closed",
					   v->ring->comps[i].name, kclass_name(v->ring->comps[i].klass));
				free(v->ring->comps[i].name);
				continue;
			}
			v->ring->comps[kept++] = v->ring->comps[i];
		}
		v->ring->ncomps = kept;
	}
	return 0;
}

int kvault_passwd(struct kvault *v, const char *oldpw, size_t oldlen, const char *newpw,
		  size_t newlen, struct kerrinfo *ei)
{
	if (!v->user || !v->policy)
		return KERR_USAGE;
	return rewrap(v, oldpw, oldlen, newpw, newlen, ei);
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
	kvault_lock_release(v);
	kkeys_meta_clear(&v->meta);
	ksecmem_free(v->root_sk);
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

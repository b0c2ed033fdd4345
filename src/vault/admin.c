// SPDX-License-Identifier: GPL-2.0-or-later
/* Administration: users, compartments, grants. Every change is a new policy
 * serial signed by the acting administrator and the vault's root key; grants
 * seal each epoch key of a compartment to the user's public key, so access is
 * decided by keys, not only by checks in the daemon. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kinko/lifecycle.h"
#include "kinko/vault.h"
#include "kinko/x509.h"

int kvault_admin_open(struct kvault *v, struct kerrinfo *ei)
{
	struct kpolicy_user *pu = kpolicy_user_find(v->policy, v->user->id);

	if (!pu || pu->role != KROLE_ADMIN || !pu->active) {
		kerr_set(ei, "policy/", "user '%s' is not an active administrator of this vault",
			 v->user->id);
		return -EACCES;
	}
	ksecmem_free(v->root_sk);
	v->root_sk = NULL;
	return kkeys_root_open(v->vfd, v->user, v->hdr.root_pk, &v->root_sk, ei);
}

int kvault_policy_commit(struct kvault *v, struct kerrinfo *ei)
{
	int r;

	if (!v->root_sk)
		return KERR_USAGE;
	v->policy->serial++;
	if ((r = kpolicy_store(v->vfd, v->policy, v->user->id, v->user->sign_sk, v->root_sk, ei)) != 0) {
		v->policy->serial--;
		return r;
	}
	return kvault_state_check_serial(v->hdr.vault_id, v->policy->serial, ei);
}

static const char b32[] = "abcdefghijkmnpqrstuvwxyz23456789";

static void make_secret(char out[KVAULT_SECRET_LEN + 1])
{
	uint8_t rnd[20];
	size_t o = 0;

	kcrypto_random(rnd, sizeof(rnd));
	for (size_t i = 0; i < 20; i++) {
		if (i && i % 5 == 0)
			out[o++] = '-';
		out[o++] = b32[rnd[i] & 31];
	}
	out[o] = 0;
	ksecmem_wipe(rnd, sizeof(rnd));
}

static void unlink_user_files(struct kvault *v, const char *id)
{
	char p[320];
	DIR *d;
	struct dirent *ce, *ee;
	int gfd;

	snprintf(p, sizeof(p), "keys/%s.key", id);
	unlinkat(v->vfd, p, 0);
	snprintf(p, sizeof(p), "keys/%s.root", id);
	unlinkat(v->vfd, p, 0);
	gfd = openat(v->vfd, "grants", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (gfd < 0 || !(d = fdopendir(gfd))) {
		if (gfd >= 0)
			close(gfd);
		return;
	}
	while ((ce = readdir(d)) != NULL) {
		int cfd;
		DIR *cd;

		if (ce->d_name[0] == '.')
			continue;
		cfd = openat(dirfd(d), ce->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (cfd < 0 || !(cd = fdopendir(cfd))) {
			if (cfd >= 0)
				close(cfd);
			continue;
		}
		while ((ee = readdir(cd)) != NULL) {
			if (ee->d_name[0] == '.')
				continue;
			snprintf(p, sizeof(p), "%s/%s.grant", ee->d_name, id);
			unlinkat(dirfd(cd), p, 0);
		}
		closedir(cd);
	}
	closedir(d);
}

int kvault_user_add(struct kvault *v, const struct kvault_user_spec *spec,
		    char secret[KVAULT_SECRET_LEN + 1], struct kerrinfo *ei)
{
	struct kpolicy_settings set;
	struct kpolicy_user pu;
	struct kkeys_user *u = NULL;
	struct kkeys_wrap w;
	uint8_t *cert = NULL, *blob = NULL, *fsec = NULL, *ca = NULL;
	size_t certlen = 0, bloblen = 0, calen = 0;
	char kp[96];
	int r;

	kpolicy_settings_get(v->policy, &set);
	snprintf(kp, sizeof(kp), "keys/%s.key", spec->id);
	if (!kuser_id_valid(spec->id)) {
		kerr_set(ei, spec->id, "not a valid user id (a-z, 0-9, '.', '_', '-'; at most 32)");
		return KERR_USAGE;
	}
	if (kpolicy_id_forbidden(v->policy, spec->id)) {
		kerr_set(ei, spec->id, "looks like a shared or default id (see ids.forbidden in kinko policy show); every person needs an id of their own");
		return KERR_POLICY;
	}
	if (kpolicy_user_find(v->policy, spec->id)) {
		kerr_set(ei, spec->id, "user already exists");
		return KERR_EXISTS;
	}
	if ((spec->name && strlen(spec->name) > KPOLICY_TEXT_MAX) ||
	    (spec->dept && strlen(spec->dept) > KPOLICY_TEXT_MAX) ||
	    (spec->contact && strlen(spec->contact) > KPOLICY_TEXT_MAX)) {
		kerr_set(ei, spec->id, "name, department and contact are limited to %d bytes each (85 Japanese characters)",
			 KPOLICY_TEXT_MAX);
		return KERR_USAGE;
	}
	if (spec->role == KROLE_ADMIN && kpolicy_count_admins(v->policy) >= set.max_admins) {
		kerr_set(ei, spec->id, "refused: the vault already has %d administrator(s), the maximum (admin.max = %d; OPS 5.2.2 allows at most 2 unless the policy says otherwise)",
			 kpolicy_count_admins(v->policy), set.max_admins);
		return KERR_POLICY;
	}
	r = -ENOMEM;
	if (!(u = kkeys_user_alloc()))
		goto out;
	if ((r = kkeys_user_generate(u, spec->id)) != 0)
		goto out;
	memset(&w, 0, sizeof(w));
	kkeys_kdf_default(&w.kdf);
	w.enrolment = true;
	w.pw_changed = ktime_now();
	memset(&pu, 0, sizeof(pu));
	if (spec->cert_path) {
		if ((r = kx509_cert_load(spec->cert_path, &cert, &certlen, ei)) != 0)
			goto out;
		if (kpolicy_ca_cert(v->policy, &ca, &calen) != 0) {
			r = KERR_POLICY;
			kerr_set(ei, spec->cert_path, "set the organisation's CA first: kinko policy set-ca CA.pem");
			goto out;
		}
		if ((r = kx509_verify(cert, certlen, ca, calen, ktime_now(), ei)) != 0) {
			if (ei && !ei->file[0])
				snprintf(ei->file, sizeof(ei->file), "%s", spec->cert_path);
			r = KERR_POLICY; /* refused: not our CA, expired, not yet valid */
			goto out;
		}
		r = -ENOMEM;
		if (!(fsec = ksecmem_alloc(KX509_SECRETBYTES)))
			goto out;
		kcrypto_random(fsec, KX509_SECRETBYTES);
		if ((r = kx509_seal(cert, certlen, fsec, &blob, &bloblen, ei)) != 0) {
			if (ei)
				snprintf(ei->file, sizeof(ei->file), "%s", spec->cert_path);
			r = KERR_POLICY;
			goto out;
		}
		w.cert = cert;
		w.certlen = certlen;
		w.factor_blob = blob;
		w.bloblen = bloblen;
		w.factor_secret = fsec;
		pu.has_cert = true;
		kx509_fingerprint(cert, certlen, pu.cert_sha256);
	}
	make_secret(secret);
	if ((r = kkeys_keyfile_write(v->vfd, v->hdr.vault_id, v->hdr.root_pk, u, secret, strlen(secret),
				     &w, false, ei)) != 0)
		goto out;
	if (spec->role == KROLE_ADMIN &&
	    (r = kkeys_root_seal(v->vfd, u->id, u->box_pk, v->root_sk, ei)) != 0)
		goto undo;
	snprintf(pu.id, sizeof(pu.id), "%s", spec->id);
	pu.role = spec->role;
	pu.active = true;
	pu.name = (char *)(spec->name ? spec->name : "");
	pu.dept = (char *)(spec->dept ? spec->dept : "");
	pu.contact = (char *)(spec->contact ? spec->contact : "");
	memcpy(pu.box_pk, u->box_pk, 32);
	memcpy(pu.sign_pk, u->sign_pk, 32);
	pu.created = pu.password_changed = ktime_now();
	/* a random start: a re-added id never inherits an old lockout count */
	kcrypto_random(&pu.unlock_gen, sizeof(pu.unlock_gen));
	pu.unlock_gen &= 0x7fffffff;
	if ((r = kpolicy_user_add(v->policy, &pu)) != 0)
		goto undo;
	if ((r = kvault_policy_commit(v, ei)) != 0) {
		kpolicy_user_remove(v->policy, spec->id);
		goto undo;
	}
	goto out;
undo:
	unlink_user_files(v, spec->id);
	ksecmem_wipe(secret, KVAULT_SECRET_LEN + 1);
out:
	kkeys_user_free(u);
	ksecmem_free(fsec);
	free(cert);
	free(blob);
	free(ca);
	return r;
}

static struct kpolicy_user *other_user(struct kvault *v, const char *id, struct kerrinfo *ei, int *r)
{
	struct kpolicy_user *pu = kpolicy_user_find(v->policy, id);

	*r = 0;
	if (!pu) {
		kerr_set(ei, id, "no such user");
		*r = KERR_NOUSER;
	} else if (strcmp(id, v->user->id) == 0) {
		kerr_set(ei, id, "an administrator cannot do this to their own account");
		*r = KERR_POLICY;
	}
	return *r ? NULL : pu;
}

int kvault_user_set_active(struct kvault *v, const char *id, bool active, struct kerrinfo *ei)
{
	struct kpolicy_user *pu;
	int r;

	if (!(pu = other_user(v, id, ei, &r)))
		return r;
	pu->active = active;
	if (active)
		pu->unlock_gen++; /* clears failed-unlock lockouts on every workstation */
	return kvault_policy_commit(v, ei);
}

/* does user hold the only grant of compartment comp? */
static bool sole_holder(const struct kpolicy *p, const char *user, const uint8_t comp[16])
{
	size_t holders = 0;

	for (size_t i = 0; i < p->ngrants; i++)
		holders += !memcmp(p->grants[i].comp, comp, 16);
	return holders == 1 && kpolicy_grant_find(p, user, comp);
}

/* the compartment whose only grant user holds, or NULL */
static const struct kpolicy_comp *sole_grant(const struct kpolicy *p, const char *user)
{
	for (size_t c = 0; c < p->ncomps; c++)
		if (sole_holder(p, user, p->comps[c].id))
			return &p->comps[c];
	return NULL;
}

int kvault_user_remove(struct kvault *v, const char *id, struct kerrinfo *ei)
{
	const struct kpolicy_comp *c;
	int r;

	if (!other_user(v, id, ei, &r))
		return r;
	if ((c = sole_grant(v->policy, id))) {
		kerr_set(ei, c->name, "refused: '%s' holds the last grant; without it nobody could ever read the compartment again (grant someone else first)",
			 id);
		return KERR_POLICY;
	}
	kpolicy_user_remove(v->policy, id);
	if ((r = kvault_policy_commit(v, ei)) != 0)
		return r;
	unlink_user_files(v, id);
	return 0;
}

int kvault_comp_create(struct kvault *v, const char *name, int klass, struct kerrinfo *ei)
{
	struct kformat_epoch_keys *ek = NULL;
	uint8_t *key = NULL, comp[16], cm[32];
	int r;

	if (!kformat_name_valid(name, strlen(name))) {
		kerr_set(ei, name, "not a valid compartment name");
		return KERR_USAGE;
	}
	if (kpolicy_comp_find_name(v->policy, name)) {
		kerr_set(ei, name, "compartment already exists");
		return KERR_EXISTS;
	}
	r = -ENOMEM;
	if (!(key = ksecmem_alloc(32)) || !(ek = ksecmem_alloc(sizeof(*ek))))
		goto out;
	kcrypto_random(comp, 16);
	kcrypto_random(key, 32);
	if ((r = kformat_epoch_keys_derive(ek, 1, key)) != 0 ||
	    (r = kformat_epoch_commitment(cm, key, v->hdr.vault_id, comp, 1)) != 0)
		goto out;
	if ((r = kvault_comp_dir_create(v->vfd, comp, ek)) != 0) {
		kerr_set(ei, "data/", NULL);
		goto out;
	}
	/* the creating administrator holds the first grant: the key must be sealed to someone */
	if ((r = kkeys_grant_write(v->vfd, v->hdr.vault_id, comp, 1, v->user->id, v->user->box_pk, key,
				   ei)) != 0 ||
	    (r = kvault_recovery_seal(v, comp, 1, key, ei)) != 0) /* and to the recovery key */
		goto out;
	if ((r = kpolicy_comp_add(v->policy, comp, name, klass)) != 0 ||
	    (r = kpolicy_epoch_add(&v->policy->comps[v->policy->ncomps - 1], 1, cm, ktime_now())) != 0 ||
	    (r = kpolicy_grant_set(v->policy, v->user->id, comp, false)) != 0)
		goto out;
	r = kvault_policy_commit(v, ei);
out:
	ksecmem_free(key);
	ksecmem_free(ek);
	return r;
}

static struct kpolicy_comp *find_comp(struct kvault *v, const char *name, struct kerrinfo *ei)
{
	struct kpolicy_comp *c = kpolicy_comp_find_name(v->policy, name);

	if (!c)
		kerr_set(ei, name, "no such compartment (see kinko compartment list)");
	return c;
}

int kvault_grant(struct kvault *v, const char *user, const char *comp, bool read_only,
		 struct kerrinfo *ei)
{
	struct kpolicy_settings set;
	struct kpolicy_user *pu = kpolicy_user_find(v->policy, user);
	struct kpolicy_comp *c = find_comp(v, comp, ei);
	uint8_t *key = NULL;
	int r;

	if (!c)
		return KERR_NOGRANT;
	if (!pu) {
		kerr_set(ei, user, "no such user");
		return KERR_NOUSER;
	}
	if (pu->role == KROLE_AUDITOR || pu->role == KROLE_BACKUP) {
		kerr_set(ei, user, "refused: %s users hold no compartment keys", krole_name(pu->role));
		return KERR_POLICY;
	}
	kpolicy_settings_get(v->policy, &set);
	if (set.second_factor_class[c->klass] && !pu->has_cert) {
		kerr_set(ei, user, "refused: compartment '%s' is %s and the policy requires a second factor, which user '%s' does not have",
			 c->name, kclass_name(c->klass), user);
		return KERR_POLICY;
	}
	if (!(key = ksecmem_alloc(32)))
		return -ENOMEM;
	/* seal every epoch key the administrator holds to the user */
	for (size_t i = 0; i < c->nepochs; i++) {
		r = kkeys_grant_open(v->vfd, v->hdr.vault_id, c, c->epochs[i].epoch, v->user, key, ei);
		if (r == -ENOENT && c->epochs[i].epoch != c->current_epoch)
			continue;
		if (r) {
			if (r == -ENOENT) {
				kerr_set(ei, comp, "administrator '%s' holds no key of this compartment; an administrator who holds it must grant",
					 v->user->id);
				r = KERR_NOGRANT;
			}
			goto out;
		}
		r = kkeys_grant_write(v->vfd, v->hdr.vault_id, c->id, c->epochs[i].epoch, user,
				      pu->box_pk, key, ei);
		ksecmem_wipe(key, 32);
		if (r)
			goto out;
	}
	if ((r = kpolicy_grant_set(v->policy, user, c->id, read_only)) != 0)
		goto out;
	r = kvault_policy_commit(v, ei);
out:
	ksecmem_free(key);
	return r;
}

int kvault_revoke(struct kvault *v, const char *user, const char *comp, struct kerrinfo *ei)
{
	struct kpolicy_comp *c = find_comp(v, comp, ei);
	char p[160];
	int r;

	if (!c)
		return KERR_NOGRANT;
	if (sole_holder(v->policy, user, c->id)) {
		kerr_set(ei, comp, "refused: '%s' holds the last grant; without it nobody could ever read the compartment again (grant someone else first)",
			 user);
		return KERR_POLICY;
	}
	if (kpolicy_grant_remove(v->policy, user, c->id) != 0) {
		kerr_set(ei, user, "holds no grant of compartment '%s'", comp);
		return KERR_NOGRANT;
	}
	if ((r = kvault_policy_commit(v, ei)) != 0)
		return r;
	for (size_t i = 0; i < c->nepochs; i++) {
		snprintf(p, sizeof(p), "grants/%s/%" PRIu32 "/%s.grant", c->hexid, c->epochs[i].epoch, user);
		unlinkat(v->vfd, p, 0);
	}
	return 0;
}

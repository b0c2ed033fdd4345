// SPDX-License-Identifier: GPL-2.0-or-later
/* User key files, the sealed root key, grants and the mount keyring. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kinko/keys.h"
#include "kinko/x509.h"

struct kkeys_user *kkeys_user_alloc(void)
{
	return ksecmem_alloc(sizeof(struct kkeys_user));
}

void kkeys_user_free(struct kkeys_user *u)
{
	ksecmem_free(u);
}

static int user_from_seeds(struct kkeys_user *u, const uint8_t box_seed_or_sk[32],
			   const uint8_t sign_seed[32], bool box_is_sk)
{
	int r;

	if (box_is_sk) {
		memcpy(u->box_sk, box_seed_or_sk, 32);
		r = kcrypto_box_pk_from_sk(u->box_pk, u->box_sk);
	} else {
		r = kcrypto_box_seed_keypair(u->box_pk, u->box_sk, box_seed_or_sk);
	}
	if (r)
		return r;
	return kcrypto_sign_seed_keypair(u->sign_pk, u->sign_sk, sign_seed);
}

int kkeys_user_generate(struct kkeys_user *u, const char *id)
{
	uint8_t *seeds = ksecmem_alloc(64);
	int r;

	if (!seeds)
		return -ENOMEM;
	if (!kuser_id_valid(id)) {
		ksecmem_free(seeds);
		return KERR_USAGE;
	}
	snprintf(u->id, sizeof(u->id), "%s", id);
	kcrypto_random(seeds, 64);
	r = user_from_seeds(u, seeds, seeds + 32, false);
	ksecmem_free(seeds);
	return r;
}

void kkeys_kdf_default(struct kkdf_params *k)
{
	k->m_kib = KCRYPTO_ARGON2_DEF_MKIB;
	k->t_cost = KCRYPTO_ARGON2_DEF_T;
	k->p_cost = KCRYPTO_ARGON2_DEF_P;
}

static void keyfile_path(char *out, size_t n, const char *id, const char *ext)
{
	snprintf(out, n, "keys/%s.%s", id, ext);
}

void kkeys_meta_clear(struct kkeys_meta *m)
{
	if (!m)
		return;
	free(m->cert);
	free(m->factor);
	memset(m, 0, sizeof(*m));
}

/* KEK = Argon2id(password) [mixed with the second factor's secret] */
static int kek_derive(uint8_t kek[32], const char *pw, size_t pwlen,
		      const struct kformat_keyfile *kf, const uint8_t *factor_secret)
{
	uint8_t *a = ksecmem_alloc(32 + 48);
	int r;

	if (!a)
		return -ENOMEM;
	if ((r = kcrypto_argon2id(a, 32, pw, pwlen, kf->salt, kf->m_kib, kf->t_cost, kf->p_cost)) != 0)
		goto out;
	if (!factor_secret) {
		memcpy(kek, a, 32);
		goto out;
	}
	memcpy(a + 32, "kinko-2fa-v1\0\0\0\0", 16);
	memcpy(a + 48, factor_secret, 32);
	r = kcrypto_hash(kek, 32, a, 32, a + 32, 48);
out:
	ksecmem_free(a);
	return r;
}

int kkeys_keyfile_write(int vfd, const uint8_t vault_id[16], const uint8_t root_pk[32],
			const struct kkeys_user *u, const char *pw, size_t pwlen,
			const struct kkeys_wrap *w, bool replace, struct kerrinfo *ei)
{
	const struct kkdf_params *kdf = &w->kdf;
	struct kformat_keyfile kf;
	struct kbuf b;
	uint8_t *sec = ksecmem_alloc(32 + 64);
	char path[96];
	int r = -ENOMEM;

	kbuf_init_writer(&b);
	keyfile_path(path, sizeof(path), u->id, "key");
	if (!sec)
		goto out;
	memset(&kf, 0, sizeof(kf));
	memcpy(kf.vault_id, vault_id, 16);
	memcpy(kf.root_pk, root_pk, 32);
	snprintf(kf.user, sizeof(kf.user), "%s", u->id);
	memcpy(kf.box_pk, u->box_pk, 32);
	memcpy(kf.sign_pk, u->sign_pk, 32);
	kf.kdf_alg = KFORMAT_KDF_ARGON2ID;
	kf.m_kib = kdf->m_kib;
	kf.t_cost = kdf->t_cost;
	kf.p_cost = kdf->p_cost;
	kf.pw_changed = w->pw_changed;
	kf.enrolment = w->enrolment;
	kf.cert = w->cert;
	kf.certlen = w->certlen;
	kf.factor = w->factor_blob;
	kf.factorlen = w->bloblen;
	kcrypto_random(kf.salt, sizeof(kf.salt));
	kcrypto_random(kf.nonce, sizeof(kf.nonce));
	if ((r = kek_derive(sec, pw, pwlen, &kf, w->cert ? w->factor_secret : NULL)) != 0)
		goto out;
	memcpy(sec + 32, u->box_sk, 32);
	memcpy(sec + 64, u->sign_sk, 32); /* the Ed25519 seed */
	if ((r = kformat_keyfile_serialize_ad(&kf, &b)) != 0)
		goto out;
	if ((r = kcrypto_wrap(sec, kf.nonce, b.p, b.len, sec + 32, 64, kf.wrapped)) != 0)
		goto out;
	if ((r = kformat_keyfile_serialize_tail(&kf, &b)) != 0)
		goto out;
	if (replace)
		r = kfile_replace_at(vfd, path, b.p, b.len, 0600);
	else
		r = kfile_create_at(vfd, path, b.p, b.len, 0600);
out:
	if (r)
		kerr_set(ei, path, NULL);
	ksecmem_free(sec);
	kbuf_free(&b);
	return r;
}

int kkeys_unlock(int vfd, const uint8_t vault_id[16], const uint8_t root_pk[32], const char *id,
		 const char *pw, size_t pwlen, const struct kkeys_factor_in *f,
		 struct kkeys_user **out, struct kkeys_meta *meta, struct kerrinfo *ei)
{
	struct kformat_keyfile kf;
	struct kkeys_user *u = NULL;
	uint8_t *buf = NULL, *sec = NULL, *fsec = NULL;
	size_t len;
	char path[96];
	int r;

	*out = NULL;
	if (!kuser_id_valid(id)) {
		kerr_set(ei, id, "not a valid user id");
		return KERR_USAGE;
	}
	keyfile_path(path, sizeof(path), id, "key");
	if ((r = kfile_read_at(vfd, path, 1 << 20, &buf, &len)) != 0) {
		kerr_set(ei, path, r == -ENOENT ? "no key file for user '%s'" : NULL, id);
		return r == -ENOENT ? KERR_NOUSER : r;
	}
	if ((r = kformat_keyfile_parse(buf, len, &kf)) != 0) {
		kerr_set(ei, path, "%s", kinko_strerror(r));
		goto out;
	}
	if (memcmp(kf.vault_id, vault_id, 16) != 0 || strcmp(kf.user, id) != 0) {
		r = KERR_MISMATCH;
		kerr_set(ei, path, "key file belongs to another vault or user ('%s')", kf.user);
		goto out;
	}
	if (!kcrypto_memeq(kf.root_pk, root_pk, 32)) {
		r = KERR_MISMATCH;
		kerr_set(ei, path, "root key differs from kinko.vault (header or key file replaced)");
		goto out;
	}
	r = -ENOMEM;
	if (!(sec = ksecmem_alloc(32 + 64)) || !(u = kkeys_user_alloc()))
		goto out;
	if (kf.cert) {
		if (!f || !f->key_path) {
			r = KERR_FACTOR;
			kerr_set(ei, path, "user '%s' needs a second factor: give the certificate's private key with --cert-key FILE", id);
			goto out;
		}
		if (!(fsec = ksecmem_alloc(KX509_SECRETBYTES))) {
			r = -ENOMEM;
			goto out;
		}
		if ((r = kx509_open(f->key_path, f->pass, kf.cert, kf.certlen, kf.factor, kf.factorlen,
				    fsec, ei)) != 0) {
			/* a key we cannot read is a usage problem, not a damaged vault */
			r = r == KERR_AUTH ? KERR_FACTOR : (r < 0 && r > -KERR_BASE) ? KERR_USAGE : r;
			goto out;
		}
	}
	if ((r = kek_derive(sec, pw, pwlen, &kf, fsec)) != 0) {
		kerr_set(ei, path, "%s", kinko_strerror(r));
		goto out;
	}
	if ((r = kcrypto_unwrap(sec, kf.nonce, buf, kf.ad_len, kf.wrapped, sizeof(kf.wrapped),
				sec + 32)) != 0) {
		r = KERR_PASSWORD;
		kerr_set(ei, path, "wrong password for user '%s' (or the key file was altered)", id);
		goto out;
	}
	snprintf(u->id, sizeof(u->id), "%s", id);
	if ((r = user_from_seeds(u, sec + 32, sec + 64, true)) != 0)
		goto out;
	if (!kcrypto_memeq(u->box_pk, kf.box_pk, 32) || !kcrypto_memeq(u->sign_pk, kf.sign_pk, 32)) {
		r = KERR_FORMAT;
		kerr_set(ei, path, "public keys do not match the secret keys");
		goto out;
	}
	if (meta) {
		memset(meta, 0, sizeof(*meta));
		meta->pw_changed = kf.pw_changed;
		meta->kdf.m_kib = kf.m_kib;
		meta->kdf.t_cost = kf.t_cost;
		meta->kdf.p_cost = kf.p_cost;
		meta->enrolment = kf.enrolment;
		if (kf.cert) {
			meta->cert = malloc(kf.certlen);
			meta->factor = malloc(kf.factorlen);
			if (!meta->cert || !meta->factor) {
				kkeys_meta_clear(meta);
				r = -ENOMEM;
				goto out;
			}
			memcpy(meta->cert, kf.cert, kf.certlen);
			memcpy(meta->factor, kf.factor, kf.factorlen);
			meta->certlen = kf.certlen;
			meta->factorlen = kf.factorlen;
		}
	}
	*out = u;
	u = NULL;
	r = 0;
out:
	kkeys_user_free(u);
	ksecmem_free(sec);
	ksecmem_free(fsec);
	free(buf);
	return r;
}

/* ---- root key ---- */

static const char root_magic[8] = { 'K', 'I', 'N', 'K', 'O', 'R', 'T', 'K' };
#define ROOTFILE_LEN (8 + 2 + 2 + 32 + KCRYPTO_SEALBYTES)

int kkeys_root_seal(int vfd, const char *admin, const uint8_t admin_box_pk[32],
		    const uint8_t root_seed[32], struct kerrinfo *ei)
{
	uint8_t buf[ROOTFILE_LEN];
	char path[96];
	int r;

	memcpy(buf, root_magic, 8);
	kput_le16(buf + 8, KFORMAT_VERSION);
	kput_le16(buf + 10, 0);
	if ((r = kcrypto_seal(buf + 12, root_seed, 32, admin_box_pk)) != 0)
		return r;
	keyfile_path(path, sizeof(path), admin, "root");
	if ((r = kfile_replace_at(vfd, path, buf, sizeof(buf), 0600)) != 0)
		kerr_set(ei, path, NULL);
	return r;
}

int kkeys_root_open(int vfd, const struct kkeys_user *admin, const uint8_t root_pk[32],
		    uint8_t **root_sk, struct kerrinfo *ei)
{
	uint8_t *buf = NULL, *seed = NULL, *sk = NULL, pk[32];
	size_t len;
	char path[96];
	int r;

	*root_sk = NULL;
	keyfile_path(path, sizeof(path), admin->id, "root");
	if ((r = kfile_read_at(vfd, path, 4096, &buf, &len)) != 0) {
		kerr_set(ei, path, r == -ENOENT ? "user '%s' holds no administrator key" : NULL,
			 admin->id);
		return r == -ENOENT ? -EACCES : r;
	}
	r = KERR_FORMAT;
	if (len != ROOTFILE_LEN || memcmp(buf, root_magic, 8) != 0 || kget_le16(buf + 10) != 0) {
		kerr_set(ei, path, "malformed root key file");
		goto out;
	}
	if (kget_le16(buf + 8) != KFORMAT_VERSION) {
		r = KERR_VERSION;
		kerr_set(ei, path, "%s", kinko_strerror(r));
		goto out;
	}
	r = -ENOMEM;
	if (!(seed = ksecmem_alloc(32)) || !(sk = ksecmem_alloc(64)))
		goto out;
	if ((r = kcrypto_seal_open(seed, buf + 12, len - 12, admin->box_pk, admin->box_sk)) != 0 ||
	    (r = kcrypto_sign_seed_keypair(pk, sk, seed)) != 0) {
		kerr_set(ei, path, "cannot open the root key: %s", kinko_strerror(r));
		goto out;
	}
	if (!kcrypto_memeq(pk, root_pk, 32)) {
		r = KERR_MISMATCH;
		kerr_set(ei, path, "root key does not match kinko.vault");
		goto out;
	}
	*root_sk = sk;
	sk = NULL;
	r = 0;
out:
	ksecmem_free(seed);
	ksecmem_free(sk);
	free(buf);
	return r;
}

/* ---- grants ---- */

static void grant_path(char *out, size_t n, const uint8_t comp[16], uint32_t epoch,
		       const char *user)
{
	char hex[33];

	khex_encode(hex, comp, 16);
	snprintf(out, n, "grants/%s/%" PRIu32 "/%s.grant", hex, epoch, user);
}

int kkeys_grant_write(int vfd, const uint8_t vault_id[16], const uint8_t comp[16], uint32_t epoch,
		      const char *user, const uint8_t user_box_pk[32], const uint8_t epoch_key[32],
		      struct kerrinfo *ei)
{
	struct kformat_grant g;
	struct kbuf b;
	char path[160], dir[160], *slash;
	int r;

	kbuf_init_writer(&b);
	memset(&g, 0, sizeof(g));
	memcpy(g.vault_id, vault_id, 16);
	memcpy(g.comp_id, comp, 16);
	g.epoch = epoch;
	snprintf(g.user, sizeof(g.user), "%s", user);
	grant_path(path, sizeof(path), comp, epoch, user);
	if ((r = kformat_epoch_commitment(g.commitment, epoch_key, vault_id, comp, epoch)) != 0 ||
	    (r = kcrypto_seal(g.sealed, epoch_key, 32, user_box_pk)) != 0 ||
	    (r = kformat_grant_serialize(&g, &b)) != 0)
		goto out;
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	*slash = 0;
	if ((r = kmkdirs_at(vfd, dir, 0755)) != 0)
		goto out;
	r = kfile_replace_at(vfd, path, b.p, b.len, 0644);
out:
	if (r)
		kerr_set(ei, path, NULL);
	kbuf_free(&b);
	return r;
}

int kkeys_grant_open(int vfd, const uint8_t vault_id[16], const struct kpolicy_comp *c,
		     uint32_t epoch, const struct kkeys_user *u, uint8_t epoch_key[32],
		     struct kerrinfo *ei)
{
	struct kformat_grant g;
	const struct kpolicy_epoch *pe = kpolicy_epoch_find(c, epoch);
	uint8_t *buf = NULL, cm[32];
	size_t len;
	char path[160];
	int r;

	grant_path(path, sizeof(path), c->id, epoch, u->id);
	if (!pe) {
		kerr_set(ei, path, "epoch %" PRIu32 " not in policy", epoch);
		return KERR_MISMATCH;
	}
	if ((r = kfile_read_at(vfd, path, 4096, &buf, &len)) != 0) {
		kerr_set(ei, path, r == -ENOENT ? "grant file missing" : NULL);
		return r;
	}
	if ((r = kformat_grant_parse(buf, len, &g)) != 0) {
		kerr_set(ei, path, "%s", kinko_strerror(r));
		goto out;
	}
	r = KERR_MISMATCH;
	if (memcmp(g.vault_id, vault_id, 16) || memcmp(g.comp_id, c->id, 16) || g.epoch != epoch ||
	    strcmp(g.user, u->id) != 0) {
		kerr_set(ei, path, "grant belongs to another vault, compartment, epoch or user");
		goto out;
	}
	if (!kcrypto_memeq(g.commitment, pe->commitment, 32)) {
		kerr_set(ei, path, "key commitment differs from the signed policy (forged grant)");
		goto out;
	}
	if ((r = kcrypto_seal_open(epoch_key, g.sealed, sizeof(g.sealed), u->box_pk, u->box_sk)) != 0) {
		kerr_set(ei, path, "grant is not sealed to user '%s'", u->id);
		goto out;
	}
	if ((r = kformat_epoch_commitment(cm, epoch_key, vault_id, c->id, epoch)) != 0)
		goto out;
	if (!kcrypto_memeq(cm, pe->commitment, 32)) {
		r = KERR_AUTH;
		ksecmem_wipe(epoch_key, 32);
		kerr_set(ei, path, "sealed key does not match the signed commitment (forged grant)");
		goto out;
	}
	r = 0;
out:
	free(buf);
	return r;
}

/* ---- keyring ---- */

void kkeys_ring_free(struct kkeyring *ring)
{
	if (!ring)
		return;
	for (size_t i = 0; i < ring->ncomps; i++)
		free(ring->comps[i].name);
	free(ring->comps);
	ksecmem_free(ring->arena);
	free(ring);
}

size_t kkeys_comp_nepochs(const struct kkeys_comp *c)
{
	return __atomic_load_n(&c->nepochs, __ATOMIC_ACQUIRE);
}

const struct kformat_epoch_keys *kkeys_comp_epoch(const struct kkeys_comp *c, uint32_t epoch)
{
	size_t n = kkeys_comp_nepochs(c);

	for (size_t i = 0; i < n; i++)
		if (c->epochs[i].epoch == epoch)
			return &c->epochs[i];
	return NULL;
}

int kkeys_symlink_read(const struct kformat_geom *g, const struct kkeys_comp *c, int datafd,
		       int dirfd, const char *name, char *raw, char *out, size_t outmax, size_t *outlen,
		       uint32_t *epoch)
{
	char t[KFORMAT_SYMLINK_MAX + 2], enc[KFORMAT_SYMLINK_ENC_MAX + 1];
	const struct kformat_epoch_keys *k;
	ssize_t n = readlinkat(dirfd, name, t, sizeof(t) - 1);
	uint32_t ep;
	int r;

	if (n < 0)
		return -errno;
	if (n == 0 || (size_t)n >= sizeof(t) - 1)
		return KERR_FORMAT;
	t[n] = 0;
	if (raw)
		memcpy(raw, t, (size_t)n + 1);
	if ((r = kformat_symlink_load(datafd, c->hexid, t, enc)) != 0 ||
	    (r = kformat_symlink_epoch(enc, &ep)) != 0)
		return r;
	if (epoch)
		*epoch = ep;
	if (!(k = kkeys_comp_epoch(c, ep)))
		return KERR_NOGRANT;
	return kformat_symlink_decrypt(g, k, enc, out, outmax, outlen);
}

int kkeys_ring_load(int vfd, const struct kpolicy *p, const struct kkeys_user *u,
		    struct kkeyring **out, struct kerrinfo *ei)
{
	struct kkeyring *ring = calloc(1, sizeof(*ring));
	uint8_t *ek = NULL;
	size_t total = 0, used = 0;
	int r = -ENOMEM;

	*out = NULL;
	if (!ring || !(ek = ksecmem_alloc(32)))
		goto out;
	for (size_t i = 0; i < p->ngrants; i++)
		if (strcmp(p->grants[i].user, u->id) == 0) {
			const struct kpolicy_comp *c = kpolicy_comp_find(p, p->grants[i].comp);

			total += c ? c->nepochs + KKEYS_EPOCH_SPARE : 0;
			ring->ncomps++;
		}
	if (ring->ncomps == 0) {
		*out = ring;
		ring = NULL;
		r = 0;
		goto out;
	}
	ring->comps = calloc(ring->ncomps, sizeof(*ring->comps));
	ring->arena_len = total * sizeof(struct kformat_epoch_keys);
	if (!ring->comps || !(ring->arena = ksecmem_alloc(ring->arena_len ? ring->arena_len : 1)))
		goto out;
	ring->ncomps = 0;
	for (size_t i = 0; i < p->ngrants; i++) {
		const struct kpolicy_grant *g = &p->grants[i];
		const struct kpolicy_comp *c;
		struct kkeys_comp *kc;

		if (strcmp(g->user, u->id) != 0)
			continue;
		c = kpolicy_comp_find(p, g->comp);
		if (!c)
			continue;
		kc = &ring->comps[ring->ncomps++];
		memcpy(kc->id, c->id, 16);
		memcpy(kc->hexid, c->hexid, sizeof(kc->hexid));
		kc->name = strdup(c->name);
		kc->klass = c->klass;
		kc->read_only = g->read_only;
		kc->current_epoch = c->current_epoch;
		kc->epochs = (struct kformat_epoch_keys *)ring->arena + used;
		kc->cap = c->nepochs + KKEYS_EPOCH_SPARE;
		used += kc->cap;
		if (!kc->name) {
			r = -ENOMEM;
			goto out;
		}
		for (size_t j = 0; j < c->nepochs; j++) {
			r = kkeys_grant_open(vfd, p->vault_id, c, c->epochs[j].epoch, u, ek, ei);
			if (r == -ENOENT && c->epochs[j].epoch != c->current_epoch)
				continue; /* an old epoch not sealed to this user (granted later) */
			if (r == -ENOENT)
				r = KERR_FORMAT; /* the policy grants it: the file must be there */
			if (r)
				goto out;
			r = kformat_epoch_keys_derive(&kc->epochs[kc->nepochs], c->epochs[j].epoch, ek);
			ksecmem_wipe(ek, 32);
			if (r)
				goto out;
			kc->nepochs++;
		}
	}
	ring->serial = p->serial;
	*out = ring;
	ring = NULL;
	r = 0;
out:
	ksecmem_free(ek);
	kkeys_ring_free(ring);
	return r;
}

int kkeys_ring_refresh(int vfd, const struct kpolicy *p, const struct kkeys_user *u,
		       struct kkeyring *ring, struct kerrinfo *ei)
{
	uint8_t *ek = ksecmem_alloc(32);
	int r = 0;

	if (!ek)
		return -ENOMEM;
	for (size_t i = 0; i < ring->ncomps; i++) {
		struct kkeys_comp *kc = &ring->comps[i];
		const struct kpolicy_comp *c = kpolicy_comp_find(p, kc->id);

		/* an erased compartment or a revoked grant: no new keys */
		if (!c || !kpolicy_grant_find(p, u->id, kc->id))
			continue;
		for (size_t j = 0; j < c->nepochs; j++) {
			size_t n = kc->nepochs;
			int rr;

			if (kkeys_comp_epoch(kc, c->epochs[j].epoch))
				continue;
			if (n >= kc->cap) {
				log_warn("compartment '%s': no room for epoch %u (remount to use it)",
					 kc->name, c->epochs[j].epoch);
				break;
			}
			rr = kkeys_grant_open(vfd, p->vault_id, c, c->epochs[j].epoch, u, ek, ei);
			if (rr == 0)
				rr = kformat_epoch_keys_derive(&kc->epochs[n], c->epochs[j].epoch, ek);
			ksecmem_wipe(ek, 32);
			if (rr) {
				if (rr != -ENOENT && !r)
					r = rr;
				continue;
			}
			__atomic_store_n(&kc->nepochs, n + 1, __ATOMIC_RELEASE);
		}
		if (c->current_epoch != kc->current_epoch && kkeys_comp_epoch(kc, c->current_epoch))
			__atomic_store_n(&kc->current_epoch, c->current_epoch, __ATOMIC_RELEASE);
	}
	if (r == 0)
		ring->serial = p->serial;
	ksecmem_free(ek);
	return r;
}

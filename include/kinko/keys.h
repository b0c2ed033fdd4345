/* kinko keys: user key files (Argon2id-wrapped X25519 + Ed25519 secrets),
 * the vault root signing key sealed to admins, grants (epoch keys sealed to
 * users, checked against the commitments in the signed policy) and the
 * keyring of an unlocked mount. All secrets live in ksecmem. */
#ifndef KINKO_KEYS_H
#define KINKO_KEYS_H

#include "kinko/policy.h"

struct kkeys_user {
	char id[KFORMAT_USERID_MAX + 1];
	uint8_t box_pk[32];
	uint8_t sign_pk[32];
	uint8_t box_sk[32];  /* secret */
	uint8_t sign_sk[64]; /* secret */
};
/* allocated in secure memory */
struct kkeys_user *kkeys_user_alloc(void);
void kkeys_user_free(struct kkeys_user *u);
/* fresh random key pairs */
int kkeys_user_generate(struct kkeys_user *u, const char *id) __attribute__((warn_unused_result));

struct kkdf_params {
	uint32_t m_kib, t_cost, p_cost;
};
void kkeys_kdf_default(struct kkdf_params *k);

/* how a key file is wrapped */
struct kkeys_wrap {
	struct kkdf_params kdf;
	bool enrolment;          /* password is a one-time enrolment secret */
	int64_t pw_changed;
	/* second factor: certificate, the factor secret sealed to it, and the secret */
	const uint8_t *cert;
	size_t certlen;
	const uint8_t *factor_blob;
	size_t bloblen;
	const uint8_t *factor_secret; /* KX509_SECRETBYTES, secure memory */
};
/* what an unlock learned from the key file (malloc'd copies) */
struct kkeys_meta {
	struct kkdf_params kdf;   /* the cost the key file was wrapped with */
	int64_t pw_changed;
	bool enrolment;
	uint8_t *cert, *factor;
	size_t certlen, factorlen;
};
void kkeys_meta_clear(struct kkeys_meta *m);
/* second factor for unlocking: the certificate's private key */
struct kkeys_factor_in {
	const char *key_path; /* PEM, PKCS#12, or "provider:URI" */
	const char *pass;     /* its passphrase, or NULL */
};

/* write keys/<id>.key wrapping u's secrets under password (replace if exists) */
int kkeys_keyfile_write(int vfd, const uint8_t vault_id[16], const uint8_t root_pk[32],
			const struct kkeys_user *u, const char *pw, size_t pwlen,
			const struct kkeys_wrap *w, bool replace, struct kerrinfo *ei)
	__attribute__((warn_unused_result));
/* open keys/<id>.key with password (and second factor if the key file is bound
 * to a certificate); checks vault id, root key and user id */
int kkeys_unlock(int vfd, const uint8_t vault_id[16], const uint8_t root_pk[32], const char *id,
		 const char *pw, size_t pwlen, const struct kkeys_factor_in *f,
		 struct kkeys_user **out, struct kkeys_meta *meta, struct kerrinfo *ei)
	__attribute__((warn_unused_result));

/* root signing key: seed sealed to an admin in keys/<id>.root */
int kkeys_root_seal(int vfd, const char *admin, const uint8_t admin_box_pk[32],
		    const uint8_t root_seed[32], struct kerrinfo *ei) __attribute__((warn_unused_result));
/* returns the 64-byte signing key in secure memory (caller ksecmem_free) */
int kkeys_root_open(int vfd, const struct kkeys_user *admin, const uint8_t root_pk[32],
		    uint8_t **root_sk, struct kerrinfo *ei) __attribute__((warn_unused_result));

/* grants/<comp hex>/<epoch>/<user>.grant */
int kkeys_grant_write(int vfd, const uint8_t vault_id[16], const uint8_t comp[16], uint32_t epoch,
		      const char *user, const uint8_t user_box_pk[32], const uint8_t epoch_key[32],
		      struct kerrinfo *ei) __attribute__((warn_unused_result));
int kkeys_grant_open(int vfd, const uint8_t vault_id[16], const struct kpolicy_comp *c,
		     uint32_t epoch, const struct kkeys_user *u, uint8_t epoch_key[32],
		     struct kerrinfo *ei) __attribute__((warn_unused_result));

/* the compartments a mount can use, with every epoch's key schedule */
struct kkeys_comp {
	uint8_t id[KFORMAT_ID_BYTES];
	char hexid[2 * KFORMAT_ID_BYTES + 1];
	char *name;
	int klass;
	bool read_only;
	uint32_t current_epoch;   /* atomic: a mount picks up a rotation (kkeys_ring_refresh) */
	size_t nepochs;           /* atomic: slots [0, nepochs) are filled and never change */
	size_t cap;               /* slots reserved for epochs added while mounted */
	struct kformat_epoch_keys *epochs; /* points into the ring's secure arena */
	bool closed;                       /* an unlock of a locked mount no longer found the grant */
};
#define KKEYS_EPOCH_SPARE 16 /* rotations a mount can pick up without remounting */
struct kkeyring {
	size_t ncomps;
	struct kkeys_comp *comps;
	void *arena;
	size_t arena_len;
	uint64_t serial;  /* policy serial the keys were last loaded from */
};
/* unseal every grant of u in policy p (every epoch of each granted compartment) */
int kkeys_ring_load(int vfd, const struct kpolicy *p, const struct kkeys_user *u,
		    struct kkeyring **out, struct kerrinfo *ei) __attribute__((warn_unused_result));
void kkeys_ring_free(struct kkeyring *r);
const struct kformat_epoch_keys *kkeys_comp_epoch(const struct kkeys_comp *c, uint32_t epoch);
size_t kkeys_comp_nepochs(const struct kkeys_comp *c);
/* A symlink's plaintext target: reads the backing symlink dirfd/name (name
 * "" for an O_PATH fd of it), the side file of a long target (in
 * datafd/<c's directory>/kinko.lt) and decrypts with c's key of the epoch the
 * target names (KERR_NOGRANT: none). raw (NULL or KFORMAT_SYMLINK_MAX + 1
 * bytes) gets the backing target; epoch (may be NULL) the epoch. */
int kkeys_symlink_read(const struct kformat_geom *g, const struct kkeys_comp *c, int datafd,
		       int dirfd, const char *name, char *raw, char *out, size_t outmax, size_t *outlen,
		       uint32_t *epoch) __attribute__((warn_unused_result));
/* Add the epochs of newer policy p to a live ring (a rotation while mounted):
 * new keys go to spare slots, then nepochs and current_epoch are published
 * with release stores; existing slots never move, so lock-free readers stay
 * valid. Callers serialize refreshes. */
int kkeys_ring_refresh(int vfd, const struct kpolicy *p, const struct kkeys_user *u,
		       struct kkeyring *ring, struct kerrinfo *ei) __attribute__((warn_unused_result));

#endif

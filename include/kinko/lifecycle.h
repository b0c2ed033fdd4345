/* kinko key lifecycle: rotation, re-encryption (rekey), crypto-erasure with
 * signed certificates, the offline recovery key, and the vault lock that keeps
 * rekey and erase away from mounts. DESIGN.md section 10; byte layouts in
 * kinko-format(5). */
#ifndef KINKO_LIFECYCLE_H
#define KINKO_LIFECYCLE_H

#include "kinko/vault.h"

/* ---- vault lock (vault/lock.c) ----
 * locks/vault.lock: mounts hold a shared flock, rekey and erase an exclusive
 * one. Each holder also keeps locks/<host>.<id>.holder (JSON: kind, host,
 * user, OS user, pid, since, what) with an flock on it while alive, so a
 * refusal can say who holds the vault, and so a holder on a network store
 * where flock does not reach other hosts is still seen. */
enum kvault_lock_kind { KVAULT_LOCK_MOUNT = 0, KVAULT_LOCK_REKEY, KVAULT_LOCK_ERASE };
/* -EBUSY with ei naming the holders when the vault is held the other way */
int kvault_lock(struct kvault *v, int kind, const char *what, struct kerrinfo *ei)
	__attribute__((warn_unused_result));
/* after fork(): the holder file names the serving process */
void kvault_lock_forked(struct kvault *v);
void kvault_lock_release(struct kvault *v);

/* ---- mounted workstations pick up rotations (vault/rotate.c) ---- */
/* The keys new content and names of compartment c use. At most once a second
 * it looks for a newer policy serial (one faccessat) and, if there is one,
 * loads it (signatures and rollback checked) and adds its new epochs. */
const struct kformat_epoch_keys *kvault_current_keys(struct kvault *v, struct kkeys_comp *c);

/* ---- rotation (vault/rotate.c); v unlocked by an admin (kvault_admin_open) ---- */
/* New epoch key sealed to every remaining grantee and the recovery key;
 * revoke[] lose their grants (and grant files) at the same time. */
int kvault_rotate(struct kvault *v, const char *comp, const char *const *revoke, size_t nrevoke,
		  uint32_t *new_epoch, struct kerrinfo *ei) __attribute__((warn_unused_result));

/* ---- rekey (vault/rekey.c) ---- */
struct kvault_rekey_progress {
	uint64_t files_total, bytes_total; /* estimated by a first pass */
	uint64_t files_done, bytes_done;
	uint64_t items;                    /* names, symlinks, xattrs, directories re-keyed */
	double elapsed;                    /* seconds */
};
typedef void (*kvault_rekey_progress_fn)(void *ctx, const struct kvault_rekey_progress *p,
					 bool final);
typedef void (*kvault_rekey_report_fn)(void *ctx, const char *path, const char *reason);
struct kvault_rekey_result {
	uint32_t target;
	uint32_t destroyed[64];  /* epochs whose keys were destroyed */
	size_t ndestroyed;
	uint64_t damaged;        /* items that could not be re-keyed: old keys kept */
	struct kvault_rekey_progress p;
};
/* Re-encrypt everything of comp under older epochs, then destroy the old
 * epoch keys. The caller holds the exclusive lock. Resumable: the state is on
 * disk (every item says its epoch), a crash at any point loses nothing. */
int kvault_rekey(struct kvault *v, const char *comp, kvault_rekey_progress_fn progress,
		 kvault_rekey_report_fn report, void *ctx, struct kvault_rekey_result *res,
		 struct kerrinfo *ei) __attribute__((warn_unused_result));
/* data/<comp>/kinko.rekey exists: a rekey was interrupted (mounts refuse) */
bool kvault_rekey_pending(struct kvault *v, const char *hexid);

/* ---- erasure (vault/erase.c) ---- */
struct kvault_erase_result {
	uint64_t files, dirs, symlinks, bytes, key_files;
	char cert_path[512];     /* relative to the vault */
};
int kvault_comp_erase(struct kvault *v, const char *comp, struct kvault_erase_result *res,
		      struct kerrinfo *ei) __attribute__((warn_unused_result));
/* certificates: verify signer and root signatures; vault (may be NULL) must
 * have the certificate's root key. *body gets the JSON body (malloc'd). */
int kcert_verify_file(const char *path, const struct kvault *v, char **body,
		      struct kerrinfo *ei) __attribute__((warn_unused_result));

/* ---- recovery key (vault/recovery.c) ---- */
#define KRECOVERY_SETTING_PK "recovery.public_key"
#define KRECOVERY_SETTING_CREATED "recovery.created"
/* the recovery public key of the policy, if any */
bool kvault_recovery_pk(const struct kpolicy *p, uint8_t pk[32]);
/* recovery/<comp hex>/<epoch>.grant: the epoch key sealed to the recovery key */
int kvault_recovery_seal(struct kvault *v, const uint8_t comp[16], uint32_t epoch,
			 const uint8_t epoch_key[32], struct kerrinfo *ei)
	__attribute__((warn_unused_result));
/* new recovery key pair: the secret written once (0600, O_EXCL) to out, the
 * public key in the policy, every epoch key the admin holds sealed to it.
 * *uncovered counts epochs that could not be sealed (admin holds no key). */
int kvault_recovery_create(struct kvault *v, const char *out, bool replace, size_t *uncovered,
			   struct kerrinfo *ei) __attribute__((warn_unused_result));
/* break-glass: open comp's epoch keys with the recovery key file and grant
 * them to user (an admin acts; the policy records the grant) */
int kvault_recovery_grant(struct kvault *v, const char *keyfile, const char *comp,
			  const char *user, bool read_only, struct kerrinfo *ei)
	__attribute__((warn_unused_result));
/* load a recovery key file (secret into secure memory, 32 bytes) */
int kvault_recovery_load(const struct kvault *v, const char *keyfile, uint8_t **sk,
			 struct kerrinfo *ei) __attribute__((warn_unused_result));

/* ---- small policy helpers (vault/rotate.c) ---- */
/* the newest policy (signatures and rollback checked) replaces v->policy */
int kvault_policy_reload(struct kvault *v, struct kerrinfo *ei);
/* securely overwrite and unlink every file under dirfd/path, then the directories */
int kvault_shred_tree(int dirfd, const char *path, uint64_t *nfiles);

#endif

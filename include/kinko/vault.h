/* kinko vault: whole-vault work outside FUSE: init, open + unlock, password
 * change, fsck. */
#ifndef KINKO_VAULT_H
#define KINKO_VAULT_H

#include <stdio.h>
#include <sys/stat.h>

#include "kinko/keys.h"

struct kvault {
	int vfd;   /* directory fd of VAULT */
	int datafd; /* VAULT/data */
	char *path;
	struct kformat_vault hdr;
	struct kformat_geom geom;
	struct kpolicy *policy;
	struct kkeys_user *user;
	struct kkeys_meta meta;   /* what the user's key file says (password date, factor) */
	struct kkeyring *ring;
	uint8_t *root_sk;         /* admins only, after kvault_admin_open */
	int pw_days_left;         /* > 0: the password expires in that many days (warn) */
	char notice[256];         /* a warning for the CLI to print, or "" */
	struct kvault_holder *holder; /* vault lock held (kinko/lifecycle.h), or NULL */
};

/* how to unlock */
struct kvault_unlock_opts {
	struct kkeys_factor_in factor;   /* second factor, if the user has one */
	const char *newpw;               /* set a new password (enrolment / expired / passwd) */
	size_t newlen;
	bool need_grants;                /* load the user's compartment keys (mount, fsck) */
};

struct kvault_init_opts {
	const char *user;
	const char *pw;
	size_t pwlen;
	int suite;
	const char *compartment;
	int klass;
	struct kkdf_params kdf;
};

int kvault_init(const char *path, const struct kvault_init_opts *o, struct kerrinfo *ei)
	__attribute__((warn_unused_result));
/* open the directory and read + check kinko.vault (no secrets needed) */
int kvault_open(const char *path, struct kvault **out, struct kerrinfo *ei)
	__attribute__((warn_unused_result));
/* The signed policy (checked against this workstation's newest serial), the
 * failed-unlock lockout, the user's key file (password [+ second factor]), the
 * user's state and certificate, the password's age (an enrolment secret or an
 * expired password must be replaced: o->newpw, checked against the rules), and
 * with o->need_grants the keys of the user's compartments. */
int kvault_unlock(struct kvault *v, const char *user, const char *pw, size_t pwlen,
		  const struct kvault_unlock_opts *o, struct kerrinfo *ei)
	__attribute__((warn_unused_result));
/* re-wrap the unlocked user's key file under a new password (rules checked) */
int kvault_passwd(struct kvault *v, const char *oldpw, size_t oldlen, const char *newpw,
		  size_t newlen, struct kerrinfo *ei) __attribute__((warn_unused_result));

/* per-workstation state (vault/state.c) */
int kvault_state_check_serial(const uint8_t vault_id[16], uint64_t serial, struct kerrinfo *ei)
	__attribute__((warn_unused_result));
/* Failed-unlock counts per user (per policy unlock_gen), under a lock. delta 0:
 * read; +1: count an attempt, -EACCES if max are already counted; -1: reset.
 * *count is the count before the change. */
int kvault_state_failures(const uint8_t vault_id[16], const char *user, uint32_t gen, int delta,
			  int max, int *count);
/* Anomaly locks outlive the mount: op 1 records one (why), -1 clears it, 0
 * asks (1 and why filled if one is recorded for this unlock_gen, else 0). */
int kvault_state_anomaly(const uint8_t vault_id[16], const char *user, uint32_t gen, int op,
			 char *why, size_t n);

/* data/<comp>/ with its directory IV file for epoch keys k */
int kvault_comp_dir_create(int vfd, const uint8_t comp[16], const struct kformat_epoch_keys *k)
	__attribute__((warn_unused_result));

/* ---- administration (vault/admin.c): v unlocked by an active admin ---- */
int kvault_admin_open(struct kvault *v, struct kerrinfo *ei) __attribute__((warn_unused_result));
/* sign and store the modified policy as the next serial */
int kvault_policy_commit(struct kvault *v, struct kerrinfo *ei) __attribute__((warn_unused_result));
struct kvault_user_spec {
	const char *id;
	int role;
	const char *name, *dept, *contact;
	const char *cert_path; /* second factor certificate (PEM/DER), or NULL */
};
#define KVAULT_SECRET_LEN 24 /* printable enrolment secret */
int kvault_user_add(struct kvault *v, const struct kvault_user_spec *spec,
		    char secret[KVAULT_SECRET_LEN + 1], struct kerrinfo *ei)
	__attribute__((warn_unused_result));
int kvault_user_set_active(struct kvault *v, const char *id, bool active, struct kerrinfo *ei)
	__attribute__((warn_unused_result));
int kvault_user_remove(struct kvault *v, const char *id, struct kerrinfo *ei)
	__attribute__((warn_unused_result));
int kvault_comp_create(struct kvault *v, const char *name, int klass, struct kerrinfo *ei)
	__attribute__((warn_unused_result));
int kvault_grant(struct kvault *v, const char *user, const char *comp, bool read_only,
		 struct kerrinfo *ei) __attribute__((warn_unused_result));
int kvault_revoke(struct kvault *v, const char *user, const char *comp, struct kerrinfo *ei)
	__attribute__((warn_unused_result));
void kvault_close(struct kvault *v);
/* re-mlock secrets after fork() */
void kvault_relock(struct kvault *v);

/* fsck: verify every diriv, name, header, block, symlink and xattr the user can decrypt */
struct kvault_fsck_stats {
	uint64_t dirs, files, symlinks, others, blocks, bytes, xattrs;
	uint64_t damaged;   /* items reported */
	uint64_t notes;     /* leftovers reported that damage nothing (orphan side files) */
	uint64_t skipped;   /* compartments without a key */
};
/* report(ctx, comp, path, reason) for each damaged item, note(...) for each
 * leftover that damages nothing; path is plaintext where known */
typedef void (*kvault_fsck_report_fn)(void *ctx, const char *comp, const char *path,
				      const char *reason);
int kvault_fsck(struct kvault *v, kvault_fsck_report_fn report, kvault_fsck_report_fn note,
		void *ctx, struct kvault_fsck_stats *st) __attribute__((warn_unused_result));


/* ---- the verified walk of a compartment (vault/walk.c), shared by fsck and
 * the take-out exporter. Every directory IV file (+ binding), name, file
 * header (+ name binding unless LINKED), block, symlink target and xattr is
 * authenticated before its plaintext reaches a callback. Paths are plaintext,
 * relative to the compartment root ("" = the root). Callbacks (each may be
 * NULL) return 0 to go on; any other value ends the walk, and kvault_walk_comp
 * returns it. ---- */
enum kvault_walk_kind { KVAULT_WALK_DIR, KVAULT_WALK_FILE, KVAULT_WALK_SYMLINK, KVAULT_WALK_OTHER };
struct kvault_walk_ops {
	/* visit the entry at path? 0: skip it (not verified, not entered), else visit */
	int (*want)(void *ctx, const char *path, int kind);
	/* a damaged item ("/" names the root); fsck goes on, the exporter stops */
	int (*damage)(void *ctx, const char *path, const char *why);
	/* a leftover that damages nothing (an orphan side file) */
	int (*note)(void *ctx, const char *path, const char *what);
	/* a verified directory, before its xattrs and entries; dir_leave after them */
	int (*dir_enter)(void *ctx, const char *path, const struct stat *st);
	int (*dir_leave)(void *ctx, const char *path, const struct stat *st);
	/* a verified user xattr of the entry being visited (file or directory) */
	int (*xattr)(void *ctx, const char *path, const char *name, const uint8_t *val, size_t len);
	/* a regular file: begin (size: plaintext size from the backing size),
	 * then xattrs, data in order (authenticated blocks), end (ok: every byte
	 * verified). begin > 0: nothing more of this file is wanted (no end). */
	int (*file_begin)(void *ctx, const char *path, const struct stat *st, uint64_t size);
	int (*file_data)(void *ctx, const uint8_t *p, size_t n);
	int (*file_end)(void *ctx, const char *path, bool ok);
	int (*symlink)(void *ctx, const char *path, const char *target, const struct stat *st);
	int (*other)(void *ctx, const char *path, const struct stat *st); /* FIFO, device, socket */
};
/* walk compartment c of unlocked v, adding to *st (not reset); 0, -ENOMEM, or
 * the value a callback ended the walk with */
int kvault_walk_comp(struct kvault *v, const struct kkeys_comp *c, const struct kvault_walk_ops *ops,
		     void *ctx, struct kvault_fsck_stats *st) __attribute__((warn_unused_result));

#endif

/* kinko vault: whole-vault work outside FUSE: init, open + unlock, password
 * change, fsck. */
#ifndef KINKO_VAULT_H
#define KINKO_VAULT_H

#include <stdio.h>

#include "kinko/keys.h"

struct kvault {
	int vfd;   /* directory fd of VAULT */
	int datafd; /* VAULT/data */
	char *path;
	struct kformat_vault hdr;
	struct kformat_geom geom;
	struct kpolicy *policy;
	struct kkeys_user *user;
	struct kkeyring *ring;
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
/* key file with password, then the signed policy, then the user's grants */
int kvault_unlock(struct kvault *v, const char *user, const char *pw, size_t pwlen,
		  struct kerrinfo *ei) __attribute__((warn_unused_result));
/* only the key file: for passwd */
int kvault_unlock_user(struct kvault *v, const char *user, const char *pw, size_t pwlen,
		       struct kerrinfo *ei) __attribute__((warn_unused_result));
int kvault_passwd(struct kvault *v, const char *newpw, size_t newlen, struct kerrinfo *ei)
	__attribute__((warn_unused_result));
void kvault_close(struct kvault *v);
/* re-mlock secrets after fork() */
void kvault_relock(struct kvault *v);

/* fsck: verify every diriv, name, header, block, symlink and xattr the user can decrypt */
struct kvault_fsck_stats {
	uint64_t dirs, files, symlinks, others, blocks, bytes, xattrs;
	uint64_t damaged;   /* items reported */
	uint64_t skipped;   /* compartments without a key */
};
/* report(kind, path, reason) for each damaged item; path is plaintext where known */
typedef void (*kvault_fsck_report_fn)(void *ctx, const char *comp, const char *path,
				      const char *reason);
int kvault_fsck(struct kvault *v, kvault_fsck_report_fn report, void *ctx,
		struct kvault_fsck_stats *st) __attribute__((warn_unused_result));

#endif

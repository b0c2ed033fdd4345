/* kinko take-out (持出し, issue 7): the vault layer. A take-out vault is an
 * ordinary format-v1 vault holding only the approved files, read-only, keyed to
 * the requester (same key pair, same password), with the take-out id and period
 * in its signed policy (settings "takeout"). Layout: kinko-format(5), TAKE-OUT
 * VAULT. */
#ifndef KINKO_TAKEOUT_H
#define KINKO_TAKEOUT_H

#include <stddef.h>
#include <stdint.h>

#include "kinko/util.h"

struct kvault;
struct kpolicy;

struct ktakeout_export {
	const char *id;              /* "T7" */
	const char *medium;          /* ledger medium id */
	const char *approver;        /* admin id */
	int64_t from, until;         /* unix seconds: mounts allowed in [from, until) */
	const char *request_hash;    /* hex of the request record */
	char *const *files;          /* VPATHs "COMP/path" or "COMP" */
	size_t nfiles;
};

struct ktakeout_stats {
	uint64_t files;   /* regular files and symbolic links written */
	uint64_t dirs;    /* directories written (compartment roots not counted) */
	uint64_t bytes;   /* plaintext bytes of the regular files */
	uint64_t skipped; /* FIFOs, devices, sockets (not taken out) */
	uint8_t vault_id[16];                 /* of the take-out vault */
	uint8_t root_pk[32];
};

typedef void (*ktakeout_progress_fn)(void *ctx, uint64_t bytes, uint64_t total_bytes,
				     uint64_t files);

/* v unlocked (need_grants) as the requester; pw: their password (wraps the
 * take-out key file with the same KDF parameters as their key file). dir: new
 * or empty (KERR_EXISTS if it holds a vault, -ENOTEMPTY otherwise). Every
 * VPATH is checked before anything is written; every byte is authenticated on
 * the way out (a damaged source fails with -EIO naming it). Nothing is left
 * at dir on failure (what was made is removed; a directory that existed stays,
 * empty). progress (may be NULL) is called after each file or symlink with
 * the plaintext bytes written so far, the total (from a first pass) and the
 * count so far (as in st->files). */
int kvault_takeout_export(struct kvault *v, const char *pw, size_t pwlen,
			  const struct ktakeout_export *x, const char *dir,
			  ktakeout_progress_fn progress, void *ctx, struct ktakeout_stats *st,
			  struct kerrinfo *ei) __attribute__((warn_unused_result));

/* Does VPATH exist in v (unlocked with grants) and can the user read it? 0, or
 * -ENOENT (no such compartment or path), KERR_NOGRANT (no key for the
 * compartment), -EIO (damaged on the way) with ei naming the path and reason. */
int kvault_vpath_check(struct kvault *v, const char *vpath, struct kerrinfo *ei)
	__attribute__((warn_unused_result));

/* The take-out settings of a policy (policy module): 1 with t filled for a
 * take-out vault, 0 for any other vault, KERR_FORMAT if "takeout" is present
 * but malformed (a caller must refuse such a vault). */
struct ktakeout_info {
	char id[32];
	char requester[33];
	char medium[129];
	char approver[33];
	int64_t from, until;
	uint8_t main_vault_id[16];
	char request[129];   /* hex hash of the request record ("" if none) */
};
int kpolicy_takeout(const struct kpolicy *p, struct ktakeout_info *t);

/* the synthetic administrator that signs a take-out vault's only policy */
#define KTAKEOUT_SIGNER "kinko-takeout"

#endif

/* kinko backup: ciphertext-only backups (src/vault/backup.c).
 *
 * A backup directory holds
 *   kinko-backup.manifest   JSON (every file, directory and symlink of the vault
 *                           with size, mtime and SHA-256) + "ed25519:<hex>\n",
 *                           signed by the backup user (kinko-format(5), BACKUP)
 *   objects/<aa>/<sha256>   file contents by hash (ciphertext and key files as
 *                           they are on disk: no key is needed or used)
 * A new backup into the same directory copies only objects that are not there
 * yet; files whose size and mtime match the previous manifest are not even read. */
#ifndef KINKO_BACKUP_H
#define KINKO_BACKUP_H

#include <stdint.h>

#include "kinko/format.h"

struct kpolicy;
struct kkeys_user;
struct kerrinfo;

#define KBACKUP_MANIFEST "kinko-backup.manifest"
#define KBACKUP_OBJECTS "objects"
#define KBACKUP_FORMAT "kinko-backup/1"
#define KBACKUP_MANIFEST_MAX (256u << 20)
#define KBACKUP_PATH_MAX 4096

struct kbackup_progress {
	/* called now and then: bytes done of total, files done of total */
	void (*fn)(void *ctx, uint64_t bytes, uint64_t total_bytes, uint64_t files,
		   uint64_t total_files);
	void *ctx;
};

struct kbackup_stats {
	uint64_t files, bytes;               /* regular files and their bytes in the manifest */
	uint64_t dirs, symlinks;             /* (and special files: neither) */
	uint64_t copied_files, copied_bytes; /* written to the medium by this run */
	uint64_t read_files, read_bytes;     /* read from the vault (hashed) by this run */
	uint64_t removed_objects;            /* objects no longer referenced, removed */
	char manifest_sha256[65];
	char signer[KFORMAT_USERID_MAX + 1];
	char medium[130];
	char created[32];
	char vault_id[33];
};

/* Back up the vault at vfd into dest (created if needed), signing the manifest
 * as u (whose policy key must match). */
int kbackup_create(int vfd, const struct kpolicy *p, const struct kkeys_user *u,
		   const char *medium, const char *dest, const struct kbackup_progress *pr,
		   struct kbackup_stats *st, struct kerrinfo *ei) __attribute__((warn_unused_result));

/* Verify the manifest's signature (signer: a backup or admin user of the policy
 * inside the backup, with that key) and every object's size and hash. problem()
 * names each bad file. Returns 0 (check *problems), KERR_AUTH when the manifest
 * itself does not verify, or another error. No key is needed. */
typedef void (*kbackup_problem_fn)(void *ctx, const char *path, const char *problem);
int kbackup_verify(const char *dir, kbackup_problem_fn problem, void *ctx,
		   const struct kbackup_progress *pr, struct kbackup_stats *st, size_t *problems,
		   struct kerrinfo *ei) __attribute__((warn_unused_result));

/* Verify, then rebuild the vault at newvault (must not exist, or be empty). */
int kbackup_restore(const char *dir, const char *newvault, const struct kbackup_progress *pr,
		    struct kbackup_stats *st, struct kerrinfo *ei) __attribute__((warn_unused_result));

/* rm -rf path (never following symlinks): undo a refused restore */
int kbackup_remove_tree(const char *path);

/* the manifest without its signature line, bounded: for unit tests and fuzzing.
 * Splits text into the signed part (*signed_len bytes) and the 64-byte signature. */
int kbackup_manifest_split(const uint8_t *text, size_t len, size_t *signed_len, uint8_t sig[64])
	__attribute__((warn_unused_result));
/* a relative path of the manifest: components not empty, ".", ".."; no NUL; bounded */
bool kbackup_path_valid(const char *p);

#endif

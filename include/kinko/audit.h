/* kinko audit: the access log for auditors (kinko-audit(1), kinko-format(5)).
 *
 * Every mount session and every CLI command writes its own segment file,
 * VAULT/audit/<host>/<YYYY-MM>/<start>-<session>.kal, so workstations sharing
 * a vault never append to the same file. Entries are JSON objects encrypted
 * (XChaCha20-Poly1305) under a per-segment key that is sealed only to the
 * auditors in the signed policy: the writer needs no secret of its own and
 * cannot read the log back once the segment key is wiped. Each entry also
 * carries a MAC under a chain key that evolves (k[i+1] = H(k[i])) and is wiped
 * after use, so the writing host cannot later rewrite or drop entries without
 * `kinko audit verify` noticing; a head file (count, last tag, MAC under the
 * current chain key) and checkpoints sent to syslog catch truncation. */
#ifndef KINKO_AUDIT_H
#define KINKO_AUDIT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "kinko/keys.h"

/* one event, as the file system and the CLI describe it (strings are copied) */
struct kaudit_rec {
	const char *action;   /* open, create, unlink, rename, ..., mount, lock, admin */
	const char *path;     /* plaintext path within the vault (COMPARTMENT/...) or NULL */
	const char *path2;    /* rename: the new name */
	const char *detail;   /* a JSON object text merged into the entry, or NULL */
	int err;              /* 0 ok, else the negative errno returned */
	const char *reason;   /* for denials: permission, read-only, locked, anomaly, ... */
	const char *user;     /* vault user, NULL: the session's user */
	uint32_t uid;         /* OS uid, pid and command of the caller */
	int32_t pid;
	const char *comm;
	bool has_bytes;       /* release: bytes read and written while open */
	uint64_t bytes_read, bytes_written;
};

struct kaudit;

/* Start a segment for this session. kind: "mount", "cli". The recipients are
 * the policy's active auditors (or, while the vault has none, its admins).
 * Fails (-errno / KERR_*) if the segment cannot be created: callers refuse to
 * go on without a log. */
int kaudit_open(int vfd, const struct kpolicy *p, const char *user, const char *kind,
		struct kaudit **out, struct kerrinfo *ei) __attribute__((warn_unused_result));
/* queue an entry (never blocks on I/O); written within KAUDIT_BATCH_MS */
void kaudit_log(struct kaudit *a, const struct kaudit_rec *r);
/* wait until everything queued so far is on disk; 0 or the write error */
int kaudit_flush(struct kaudit *a);
/* cheap check for the request path: true while the log is being written */
bool kaudit_ok(struct kaudit *a);
/* 0 if the log is being written, else the error with why (fail closed) */
int kaudit_health(struct kaudit *a, char *why, size_t n);
/* write what is queued and a closing entry, stop the writer, free */
int kaudit_close(struct kaudit *a);
#define KAUDIT_BATCH_MS 100

/* Fields of this workstation: host name and /etc/machine-id */
void kaudit_host(char host[65], char machine[33]);
/* wall clock in ms (test builds: KINKO_TEST_NOW) and whether the kernel's
 * clock is synchronised to a time source (adjtimex) */
int64_t kaudit_now_ms(bool *synced);
/* "YYYY-MM-DDTHH:MM:SS.mmmZ" */
void kaudit_time_str(char out[32], int64_t ms);

/* ---- reading (auditors) ---- */
struct kaudit_scan_cb {
	/* a verified entry: JSON text with seq, segment, host, machine_id added */
	void (*entry)(void *ctx, const char *seg, uint64_t seq, const char *json);
	/* a problem: gap, reorder, edit, truncation, foreign host, unreadable */
	void (*issue)(void *ctx, const char *seg, uint64_t seq, const char *what);
	/* a remark that is not tampering (segment sealed to other auditors, still open) */
	void (*note)(void *ctx, const char *seg, const char *what);
	void *ctx;
};
/* take-outs whose logs came home (audit/@takeout/ID/...): their id and the
 * vault id of the take-out vault, from the ledger's export records */
#define KAUDIT_TAKEOUT_DIR "@takeout"
struct kaudit_takeout_log {
	const char *id;
	uint8_t vault_id[16];
};
/* Read and verify every segment under VAULT/audit with the auditor's box key,
 * and the take-out logs under audit/@takeout/ID/ against the vault ids in tos
 * (entries get "takeout": ID; a take-out log not in tos is an issue).
 * anchors: a file of syslog lines with checkpoints (or NULL). Returns the
 * number of issues found (>= 0) or a negative error. */
int kaudit_scan(int vfd, const uint8_t vault_id[16], const struct kkeys_user *reader, const char *anchors,
		const struct kaudit_takeout_log *tos, size_t ntos, const struct kaudit_scan_cb *cb,
		struct kerrinfo *ei);
/* copy the audit log of the take-out vault at src_vfd into audit/@takeout/ID/
 * of the vault at dst_vfd (files fsynced; a run again finds identical files);
 * *segments: how many segments */
int kaudit_import(int src_vfd, int dst_vfd, const char *id, size_t *segments, struct kerrinfo *ei);

/* remove the month directories older than `before` ("YYYY-MM"); refuses
 * any month younger than retention_years. Returns the number removed. */
int kaudit_prune(int vfd, const char *before, int retention_years, int64_t now,
		 struct kerrinfo *ei);

#endif
